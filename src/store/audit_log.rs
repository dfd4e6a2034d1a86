//! Appending to and reading the audit log. The hash chain itself is `crate::audit`.

use crate::audit::{entry_hash, AuditEntry, ChainError, ChainVerifier, GENESIS_HASH};
use crate::store::{with_pool, with_tx, Store, StoreResult, StoreTx, TxLock};
use sqlx::Row;

/// Entries read per page when verifying, so the whole log is never in memory.
const AUDIT_PAGE_ROWS: i64 = 10_000;

impl StoreTx {
    /// Appends one entry chained to the last, inside the caller's transaction, so the
    /// state change and its record commit or vanish together.
    pub async fn append_audit(
        &mut self,
        at: &str,
        actor: &str,
        action: &str,
        object: &str,
        detail: &str,
    ) -> StoreResult<i64> {
        self.lock(TxLock::AuditAppend).await?;
        let last_sql = "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1";
        let insert_sql =
            "INSERT INTO audit_log (seq, at, actor, action, object, detail, prev_hash, hash) \
                          VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
        let seq = with_tx!(self, conn, Db => {
            let last = sqlx::query(last_sql).fetch_optional(&mut *conn).await?;
            let (last_seq, prev_hash) = match last {
                Some(row) => (row.try_get::<i64, _>("seq")?, row.try_get::<String, _>("hash")?),
                None => (0, GENESIS_HASH.to_string()),
            };
            let seq = last_seq + 1;
            let hash = entry_hash(seq, at, actor, action, object, detail, &prev_hash);
            sqlx::query(insert_sql)
                .bind(seq).bind(at).bind(actor).bind(action).bind(object).bind(detail)
                .bind(&prev_hash).bind(&hash)
                .execute(&mut *conn)
                .await?;
            seq
        });
        Ok(seq)
    }
}

/// The result of checking the whole chain.
#[derive(Debug)]
pub struct AuditVerification {
    pub entries_checked: i64,
    pub first_break: Option<ChainError>,
}

impl Store {
    /// Walks the audit log in order, page by page, and reports the first break.
    pub async fn verify_audit_chain(&self) -> StoreResult<AuditVerification> {
        let mut verifier = ChainVerifier::default();
        let mut after_seq = 0_i64;
        loop {
            let page = self.audit_entries(after_seq, AUDIT_PAGE_ROWS).await?;
            if page.is_empty() {
                break;
            }
            for entry in &page {
                if let Err(error) = verifier.check(entry) {
                    let entries_checked = verifier.entries_checked();
                    return Ok(AuditVerification {
                        entries_checked,
                        first_break: Some(error),
                    });
                }
            }
            after_seq = page.last().map_or(after_seq, |entry| entry.seq);
        }
        Ok(AuditVerification {
            entries_checked: verifier.entries_checked(),
            first_break: None,
        })
    }

    /// Entries with `seq > after_seq`, in order, at most `limit`.
    pub async fn audit_entries(&self, after_seq: i64, limit: i64) -> StoreResult<Vec<AuditEntry>> {
        let sql = "SELECT seq, at, actor, action, object, detail, prev_hash, hash FROM audit_log \
                   WHERE seq > $1 ORDER BY seq LIMIT $2";
        let entries = with_pool!(self, pool, Db => {
            sqlx::query(sql)
                .bind(after_seq)
                .bind(limit)
                .fetch_all(pool)
                .await?
                .into_iter()
                .map(|row| {
                    Ok::<_, sqlx::Error>(AuditEntry {
                        seq: row.try_get("seq")?,
                        at: row.try_get("at")?,
                        actor: row.try_get("actor")?,
                        action: row.try_get("action")?,
                        object: row.try_get("object")?,
                        detail: row.try_get("detail")?,
                        prev_hash: row.try_get("prev_hash")?,
                        hash: row.try_get("hash")?,
                    })
                })
                .collect::<Result<Vec<_>, _>>()?
        });
        Ok(entries)
    }
}
