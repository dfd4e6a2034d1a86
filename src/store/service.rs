//! The service's storage (issue #6): leases, API tokens, and the read models the HTTP
//! API, the web page and `/metrics` need (run lists, counts, audit pages).
//!
//! **Invariants:** a lease is held by at most one holder at a time: taking it is one
//! conditional upsert (free, expired, or already ours), so two instances racing on one
//! PostgreSQL cannot both win; renew and release touch only the holder's own row. Only
//! a token's SHA-256 is stored, never the token.

use crate::store::runs::{run_from_row, PlainRow};
use crate::store::{with_pool, with_tx, RunRecord, Store, StoreResult, StoreTx};

/// An API token as stored (without the token).
#[derive(Clone, Debug, serde::Serialize)]
pub struct ApiTokenRecord {
    pub user_name: String,
    pub role: String,
    pub created_by: String,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

/// A result file as recorded, for the page.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ResultFileRecord {
    pub file_name: String,
    pub sha256: String,
    pub format: String,
    pub result_count: i64,
    pub ingested_at: String,
}

impl Store {
    /// Takes the lease `name` for `holder` until `expires_at` if it is free, expired
    /// at `now`, or already `holder`'s. True when `holder` holds it afterwards.
    pub async fn take_lease(
        &self,
        name: &str,
        holder: &str,
        now: &str,
        expires_at: &str,
    ) -> StoreResult<bool> {
        let sql = "INSERT INTO lease (name, holder, expires_at) VALUES ($1, $2, $3) \
                   ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
                   WHERE lease.expires_at <= $4 OR lease.holder = excluded.holder";
        let affected = with_pool!(self, pool, Db => {
            sqlx::query(sql).bind(name).bind(holder).bind(expires_at).bind(now)
                .execute(pool).await?.rows_affected()
        });
        Ok(affected == 1)
    }

    /// Extends `holder`'s lease; false when it was lost (expired and taken).
    pub async fn renew_lease(
        &self,
        name: &str,
        holder: &str,
        expires_at: &str,
    ) -> StoreResult<bool> {
        let sql = "UPDATE lease SET expires_at = $3 WHERE name = $1 AND holder = $2";
        let affected = with_pool!(self, pool, Db => {
            sqlx::query(sql).bind(name).bind(holder).bind(expires_at).execute(pool).await?.rows_affected()
        });
        Ok(affected == 1)
    }

    pub async fn release_lease(&self, name: &str, holder: &str) -> StoreResult<()> {
        let sql = "DELETE FROM lease WHERE name = $1 AND holder = $2";
        with_pool!(self, pool, Db => {
            sqlx::query(sql).bind(name).bind(holder).execute(pool).await?;
        });
        Ok(())
    }

    /// The live (not revoked) token with this SHA-256.
    pub async fn api_token(&self, token_sha256: &str) -> StoreResult<Option<ApiTokenRecord>> {
        let sql = "SELECT * FROM api_token WHERE token_sha256 = $1 AND revoked_at IS NULL";
        let found = with_pool!(self, pool, Db => {
            match sqlx::query(sql).bind(token_sha256).fetch_optional(pool).await? {
                Some(row) => Some(ApiTokenRecord {
                    user_name: row.text("user_name")?,
                    role: row.text("role")?,
                    created_by: row.text("created_by")?,
                    created_at: row.text("created_at")?,
                    revoked_at: row.opt_text("revoked_at")?,
                }),
                None => None,
            }
        });
        Ok(found)
    }

    /// Every run, newest month first.
    pub async fn all_runs(&self) -> StoreResult<Vec<RunRecord>> {
        let sql = "SELECT * FROM run ORDER BY month DESC, run_no DESC";
        let runs = with_pool!(self, pool, Db => {
            sqlx::query(sql).fetch_all(pool).await?.iter().map(run_from_row).collect::<StoreResult<Vec<_>>>()?
        });
        Ok(runs)
    }

    /// Runs of a programme and month, cancelled ones included.
    pub async fn runs_of_month(&self, programme: &str, month: &str) -> StoreResult<Vec<RunRecord>> {
        let sql = "SELECT * FROM run WHERE programme = $1 AND month = $2 ORDER BY run_no";
        let runs = with_pool!(self, pool, Db => {
            sqlx::query(sql).bind(programme).bind(month).fetch_all(pool).await?
                .iter().map(run_from_row).collect::<StoreResult<Vec<_>>>()?
        });
        Ok(runs)
    }

    /// (value, count) of `run.state` or `payment.status`.
    pub async fn counts_by(&self, what: CountOf) -> StoreResult<Vec<(String, i64)>> {
        let sql = match what {
            CountOf::RunState => {
                "SELECT state AS k, COUNT(*) AS n FROM run GROUP BY state ORDER BY 1"
            }
            CountOf::PaymentStatus => {
                "SELECT status AS k, COUNT(*) AS n FROM payment GROUP BY status ORDER BY 1"
            }
        };
        let counts = with_pool!(self, pool, Db => {
            sqlx::query(sql).fetch_all(pool).await?.iter()
                .map(|row| Ok((row.text("k")?, row.int("n")?)))
                .collect::<StoreResult<Vec<_>>>()?
        });
        Ok(counts)
    }

    /// The latest result files, newest first.
    pub async fn recent_result_files(&self, limit: i64) -> StoreResult<Vec<ResultFileRecord>> {
        let sql = "SELECT file_name, sha256, format, result_count, ingested_at FROM result_file \
                   ORDER BY result_file_id DESC LIMIT $1";
        let files = with_pool!(self, pool, Db => {
            sqlx::query(sql).bind(limit).fetch_all(pool).await?.iter().map(|row| Ok(ResultFileRecord {
                file_name: row.text("file_name")?,
                sha256: row.text("sha256")?,
                format: row.text("format")?,
                result_count: row.int("result_count")?,
                ingested_at: row.text("ingested_at")?,
            })).collect::<StoreResult<Vec<_>>>()?
        });
        Ok(files)
    }
}

/// What `counts_by` counts.
#[derive(Clone, Copy, Debug)]
pub enum CountOf {
    RunState,
    PaymentStatus,
}

impl StoreTx {
    pub async fn insert_api_token(
        &mut self,
        token_sha256: &str,
        user_name: &str,
        role: &str,
        created_by: &str,
        created_at: &str,
    ) -> StoreResult<()> {
        let sql = "INSERT INTO api_token (token_sha256, user_name, role, created_by, created_at) \
                   VALUES ($1, $2, $3, $4, $5)";
        with_tx!(self, conn, Db => {
            sqlx::query(sql).bind(token_sha256).bind(user_name).bind(role).bind(created_by)
                .bind(created_at).execute(&mut *conn).await?;
        });
        Ok(())
    }
}
