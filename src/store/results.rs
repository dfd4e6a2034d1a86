//! Bank results, exceptions, holds and the batches they answer, in the store: what
//! `engine::ingest` and `engine::reconcile` read and write.

use crate::domain::household::{TreasuryVoucher, VoucherType};
use crate::domain::ids::BankCode;
use crate::domain::money::Fen;
use crate::domain::month::parse_date;
use crate::run::{payment_key_of, PAYMENT_KEY_LINES, RUN_LINES_MAX};
use crate::store::export::{batch_from_row, BatchRecord};
use crate::store::raw_sqlite::{text_ref, with_raw, Prepared};
use crate::store::runs::PlainRow;
use crate::store::values::SqlValue;
use crate::store::{
    with_pool, with_tx, Store, StoreError, StoreResult, StoreTx, INSERT_BATCH_ROWS,
};
use rusqlite::ToSql;
use sqlx::QueryBuilder;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Payments of one batch in one status: how many, and their sum.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaymentStatusTotal {
    pub batch_id: String,
    pub status: String,
    pub count: i64,
    pub amount: Fen,
}

/// An instructed payment and where its results stand. The household and account it
/// was sent to are read only for the few payments that end in a hold
/// (`StoreTx::payment_accounts`).
#[derive(Clone, Debug)]
pub struct InstructedPayment {
    pub end_to_end_id: String,
    /// Run and batch ids and the run's state are shared by every payment of a run or a
    /// batch: one allocation each, not one per payment.
    pub run_id: Arc<str>,
    pub batch_id: Arc<str>,
    pub amount: Fen,
    pub results_seen: i64,
    /// The state of the payment's run (`reconciled` closes the month).
    pub run_state: Arc<str>,
    /// Its key in the store (`run::payment_key`): the update finds it by the key, and
    /// on SQLite the key is the row's rowid.
    pub payment_key: i64,
}

/// The household a payment pays and the account its line sent it to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaymentAccount {
    pub household_id: String,
    pub account_number: String,
}

/// The payments a result file names: the `k`-th id asked about names `payments[j]`
/// when `of_id[k]` is `Some(j)`, and no payment when it is `None`. An id asked about
/// twice maps to the same payment. `payments` may hold payments no id named.
#[derive(Debug, Default)]
pub struct FoundPayments {
    pub payments: Vec<InstructedPayment>,
    pub of_id: Vec<Option<usize>>,
}

/// A payment's new state and the reason and serial of the result that set it.
#[derive(Clone, Debug)]
pub struct PaymentUpdate<'a> {
    pub payment_key: i64,
    pub end_to_end_id: &'a str,
    pub status: &'static str,
    pub results_seen: i64,
    pub reason_code: Option<&'a str>,
    pub reason_text: Option<String>,
    pub bank_serial: Option<&'a str>,
}

/// One result line as received, and what it did (`applied`, `unchanged`, `exception`).
#[derive(Clone, Debug)]
pub struct ResultLine<'a> {
    pub line: i64,
    pub end_to_end_id: &'a str,
    pub status: &'static str,
    pub amount: Option<Fen>,
    pub reason_code: Option<&'a str>,
    pub reason_text: Option<String>,
    pub bank_serial: Option<&'a str>,
    pub outcome: &'static str,
}

/// An exception row as stored.
#[derive(Clone, Debug)]
pub struct StoredException {
    pub run_id: Option<String>,
    pub kind: String,
    pub batch_id: String,
    pub end_to_end_id: String,
    pub voucher_no: String,
    pub amount: Option<Fen>,
    pub detail: String,
    pub source: String,
}

/// A household held after a failed payment (account problem, or reported deceased).
#[derive(Clone, Debug)]
pub struct HouseholdHold {
    pub household_id: String,
    pub end_to_end_id: String,
    pub reason_code: String,
    pub account_number: String,
}

fn voucher_from_row(row: &(impl PlainRow + ?Sized)) -> StoreResult<TreasuryVoucher> {
    let voucher_no = row.text("voucher_no")?;
    let corrupt = |what: &str| StoreError::Corrupt(format!("voucher {voucher_no}: {what}"));
    Ok(TreasuryVoucher {
        voucher_type: VoucherType::parse(&row.text("voucher_type")?)
            .ok_or_else(|| corrupt("type"))?,
        original_voucher_no: row.opt_text("original_voucher_no")?,
        batch_id: row.text("batch_id")?,
        bank_code: BankCode::parse(&row.text("bank_code")?).map_err(|_| corrupt("bank_code"))?,
        amount: Fen::new(row.int("amount_fen")?),
        date: parse_date(&row.text("voucher_date")?).map_err(|_| corrupt("date"))?,
        voucher_no: voucher_no.clone(),
    })
}

impl Store {
    /// (file name, ingested at) of a result file ingested before, by SHA-256.
    pub async fn result_file_by_sha(&self, sha256: &str) -> StoreResult<Option<(String, String)>> {
        self.result_file_where("sha256 = $1", sha256, None).await
    }

    /// The same, by the bank's own file id within a format.
    pub async fn result_file_by_bank_id(
        &self,
        format: &str,
        bank_file_id: &str,
    ) -> StoreResult<Option<(String, String)>> {
        self.result_file_where(
            "bank_file_id = $1 AND format = $2",
            bank_file_id,
            Some(format),
        )
        .await
    }

    async fn result_file_where(
        &self,
        condition: &str,
        first: &str,
        second: Option<&str>,
    ) -> StoreResult<Option<(String, String)>> {
        let sql = format!("SELECT file_name, ingested_at FROM result_file WHERE {condition}");
        let found = with_pool!(self, pool, Db => {
            let mut query = sqlx::query(&sql).bind(first);
            if let Some(second) = second {
                query = query.bind(second);
            }
            query.fetch_optional(pool).await?.map(|row| Ok::<_, StoreError>((row.text("file_name")?, row.text("ingested_at")?))).transpose()?
        });
        Ok(found)
    }

    pub async fn batch_record(&self, batch_id: &str) -> StoreResult<Option<BatchRecord>> {
        let found = with_pool!(self, pool, Db => {
            sqlx::query("SELECT * FROM batch WHERE batch_id = $1").bind(batch_id).fetch_optional(pool).await?
                .as_ref().map(batch_from_row).transpose()?
        });
        Ok(found)
    }

    /// How many payments of a run are in each status, and their sum, by batch, in
    /// batch and status order: reconcile's instructed and result figures from one pass.
    pub async fn payment_status_totals_of_run(
        &self,
        run_id: &str,
    ) -> StoreResult<Vec<PaymentStatusTotal>> {
        let sql = &format!(
            "SELECT batch_id, status, COUNT(*) AS n, \
                   CAST(COALESCE(SUM(amount_fen), 0) AS BIGINT) AS total \
                   FROM payment WHERE {} GROUP BY batch_id, status ORDER BY batch_id, status",
            payments_of_run()
        );
        let found = with_pool!(self, pool, Db => {
            sqlx::query(sql).bind(run_id).fetch_all(pool).await?.iter().map(|row| Ok(PaymentStatusTotal {
                batch_id: row.text("batch_id")?,
                status: row.text("status")?,
                count: row.int("n")?,
                amount: Fen::new(row.int("total")?),
            })).collect::<StoreResult<Vec<_>>>()?
        });
        Ok(found)
    }

    pub async fn vouchers(&self) -> StoreResult<Vec<TreasuryVoucher>> {
        let found = with_pool!(self, pool, Db => {
            sqlx::query("SELECT * FROM treasury_voucher ORDER BY voucher_no").fetch_all(pool).await?
                .iter().map(voucher_from_row).collect::<StoreResult<Vec<_>>>()?
        });
        Ok(found)
    }

    /// Exceptions of a run, and those no run could be found for (unknown payments):
    /// those appear on every report until a person resolves them.
    pub async fn exceptions_for_run(&self, run_id: &str) -> StoreResult<Vec<StoredException>> {
        let sql =
            "SELECT * FROM exception WHERE run_id = $1 OR run_id IS NULL ORDER BY exception_id";
        let found = with_pool!(self, pool, Db => {
            sqlx::query(sql).bind(run_id).fetch_all(pool).await?.iter().map(|row| Ok(StoredException {
                run_id: row.opt_text("run_id")?,
                kind: row.text("kind")?,
                batch_id: row.text("batch_id")?,
                end_to_end_id: row.text("end_to_end_id")?,
                voucher_no: row.text("voucher_no")?,
                amount: row.opt_int("amount_fen")?.map(Fen::new),
                detail: row.text("detail")?,
                source: row.text("source")?,
            })).collect::<StoreResult<Vec<_>>>()?
        });
        Ok(found)
    }
}

/// `WHERE` condition for the payments of run `$1`: the range of their keys
/// (`run::payment_key` of its lines 1 to `RUN_LINES_MAX`), read by the primary key on
/// both backends; nothing
/// indexes `run_id` itself (migration 0011).
pub(crate) fn payments_of_run() -> String {
    let run_no = "(SELECT run_no FROM run WHERE run_id = $1)";
    format!(
        "payment_key BETWEEN {run_no} * {PAYMENT_KEY_LINES} + 1 AND {run_no} * {PAYMENT_KEY_LINES} + {RUN_LINES_MAX} \
         AND run_id = $1"
    )
}

/// PostgreSQL: a payment's columns and its run's state (the query's `WHERE` follows).
/// A payment is never read beside its line: export writes every payment from its line,
/// and no line is ever deleted (issue #7: the line's lookup was a fifth of ingest).
const PG_PAYMENT_SELECT: &str =
    "SELECT p.end_to_end_id, p.run_id, p.batch_id, p.amount_fen, p.results_seen, \
     p.payment_key, r.state AS run_state FROM payment p JOIN run r ON r.run_id = p.run_id";

/// SQLite: a payment's columns by position, its key last (the query's `WHERE`
/// follows). As on PostgreSQL, the line is not read; the run's state is read once per
/// run (`RunStates`).
const SQLITE_PAYMENT_SELECT: &str =
    "SELECT p.end_to_end_id, p.run_id, p.batch_id, p.amount_fen, p.results_seen, p.payment_key \
     FROM payment p";

/// SQLite: result lines per INSERT statement (9 values each, far below SQLite's 32766).
const RESULT_LINES_PER_INSERT: usize = 64;

/// One `Arc<str>` per distinct text (run ids, batch ids, run states).
#[derive(Default)]
struct Shared {
    all: HashSet<Arc<str>>,
    /// The text asked for last: rows come a batch at a time, so it is usually asked again.
    last: Option<Arc<str>>,
}

impl Shared {
    fn get(&mut self, text: &str) -> Arc<str> {
        if let Some(last) = self.last.as_ref().filter(|last| ***last == *text) {
            return last.clone();
        }
        let shared = match self.all.get(text) {
            Some(shared) => shared.clone(),
            None => {
                let shared: Arc<str> = Arc::from(text);
                self.all.insert(shared.clone());
                shared
            }
        };
        self.last = Some(shared.clone());
        shared
    }
}

/// A run's id and its state, shared by its payments.
type RunState = (Arc<str>, Arc<str>);

/// SQLite: the state of each run payments belong to, read once per run. The run row is
/// the one a per-payment join would read, in the same transaction.
struct RunStates<'c> {
    select: Prepared<'c>,
    /// Run id → (the run id, its state), or `None` for a run that does not exist
    /// (a join would drop its payments).
    known: HashMap<Arc<str>, Option<RunState>>,
    /// The run found last (a batch's payments share one).
    last: Option<RunState>,
    shared: Shared,
}

impl<'c> RunStates<'c> {
    fn new(connection: &'c rusqlite::Connection) -> StoreResult<RunStates<'c>> {
        Ok(RunStates {
            select: Prepared::new(connection, "SELECT state FROM run WHERE run_id = $1")?,
            known: HashMap::new(),
            last: None,
            shared: Shared::default(),
        })
    }

    fn get(&mut self, run_id: &str) -> StoreResult<Option<RunState>> {
        if let Some(last) = self.last.as_ref().filter(|(id, _)| **id == *run_id) {
            return Ok(Some(last.clone()));
        }
        if let Some(known) = self.known.get(run_id) {
            self.last.clone_from(known);
            return Ok(known.clone());
        }
        let mut state = None;
        self.select.for_each_row(&[&run_id as &dyn ToSql], |row| {
            state = Some(text_ref(row, 0)?.to_string());
            Ok(())
        })?;
        let id = self.shared.get(run_id);
        let known = state.map(|state| (id.clone(), self.shared.get(&state)));
        self.known.insert(id, known.clone());
        self.last.clone_from(&known);
        Ok(known)
    }
}

/// SQLite: one row of `SQLITE_PAYMENT_SELECT`, or `None` when its run does not exist.
fn instructed_from_sqlite(
    row: &rusqlite::Row<'_>,
    runs: &mut RunStates<'_>,
    batches: &mut Shared,
) -> StoreResult<Option<InstructedPayment>> {
    let Some((run_id, run_state)) = runs.get(text_ref(row, 1)?)? else {
        return Ok(None);
    };
    Ok(Some(InstructedPayment {
        end_to_end_id: text_ref(row, 0)?.to_string(),
        run_id,
        batch_id: batches.get(text_ref(row, 2)?),
        amount: Fen::new(row.get(3)?),
        results_seen: row.get(4)?,
        run_state,
        payment_key: row.get(5)?,
    }))
}

/// PostgreSQL: one row of `PG_PAYMENT_SELECT`.
fn instructed_from_row(
    row: &(impl PlainRow + ?Sized),
    shared: &mut Shared,
) -> StoreResult<InstructedPayment> {
    Ok(InstructedPayment {
        end_to_end_id: row.text("end_to_end_id")?,
        run_id: shared.get(&row.text("run_id")?),
        batch_id: shared.get(&row.text("batch_id")?),
        amount: Fen::new(row.int("amount_fen")?),
        results_seen: row.int("results_seen")?,
        run_state: shared.get(&row.text("run_state")?),
        payment_key: row.int("payment_key")?,
    })
}

impl StoreTx {
    /// Households held after a failed payment.
    pub async fn household_holds(&mut self) -> StoreResult<Vec<HouseholdHold>> {
        let found = with_tx!(self, conn, Db => {
            sqlx::query("SELECT * FROM household_hold ORDER BY household_id").fetch_all(&mut *conn).await?
                .iter().map(|row| Ok(HouseholdHold {
                    household_id: row.text("household_id")?,
                    end_to_end_id: row.text("end_to_end_id")?,
                    reason_code: row.text("reason_code")?,
                    account_number: row.text("account_number")?,
                })).collect::<StoreResult<Vec<_>>>()?
        });
        Ok(found)
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn insert_result_file(
        &mut self,
        sha256: &str,
        format: &str,
        bank_file_id: Option<&str>,
        original_batch_id: Option<&str>,
        file_name: &str,
        result_count: i64,
        ingested_by: &str,
        ingested_at: &str,
    ) -> StoreResult<i64> {
        let sql = "INSERT INTO result_file (sha256, format, bank_file_id, original_batch_id, file_name, result_count, ingested_by, ingested_at) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING result_file_id";
        let id: i64 = with_tx!(self, conn, Db => {
            sqlx::query_scalar(sql).bind(sha256).bind(format).bind(bank_file_id).bind(original_batch_id)
                .bind(file_name).bind(result_count).bind(ingested_by).bind(ingested_at).fetch_one(&mut *conn).await?
        });
        Ok(id)
    }

    /// The payments the ids of a result file name (see `FoundPayments`). `batch_id` is
    /// the batch the file says it answers: its payments are read in one pass over the
    /// batch (in key order, which is line order, the order export inserted them and
    /// the bank answers in), and only ids
    /// not among them (another batch's, or no payment's) are looked up by id.
    pub async fn payments_for_results(
        &mut self,
        batch_id: Option<&str>,
        ids: &[&str],
    ) -> StoreResult<FoundPayments> {
        let mut payments = match batch_id {
            Some(batch_id) => self.payments_of_batch(batch_id).await?,
            None => Vec::new(),
        };
        let mut of_id = vec![None; ids.len()];
        let mut missing: Vec<&str> = Vec::new();
        {
            // A bank answers in the order it was sent, which is the batch's order: the
            // payment after the last one matched is tried first, and the ids are
            // hashed only when that fails.
            let mut by_id: Option<HashMap<&str, usize>> = None;
            let mut next = 0;
            let mut asked: HashSet<&str> = HashSet::new();
            for (slot, id) in of_id.iter_mut().zip(ids) {
                if payments
                    .get(next)
                    .is_some_and(|payment| payment.end_to_end_id == *id)
                {
                    *slot = Some(next);
                    next += 1;
                    continue;
                }
                let by_id = by_id.get_or_insert_with(|| {
                    payments
                        .iter()
                        .enumerate()
                        .map(|(index, payment)| (payment.end_to_end_id.as_str(), index))
                        .collect()
                });
                match by_id.get(id) {
                    Some(&index) => {
                        *slot = Some(index);
                        next = index + 1;
                    }
                    None if asked.insert(id) => missing.push(id),
                    None => {}
                }
            }
        }
        if missing.is_empty() {
            return Ok(FoundPayments { payments, of_id });
        }
        let first_other = payments.len();
        payments.extend(self.payments_by_id(&missing).await?);
        let by_id: HashMap<&str, usize> = payments[first_other..]
            .iter()
            .enumerate()
            .map(|(index, payment)| (payment.end_to_end_id.as_str(), first_other + index))
            .collect();
        for (slot, id) in of_id.iter_mut().zip(ids) {
            if slot.is_none() {
                *slot = by_id.get(id).copied();
            }
        }
        Ok(FoundPayments { payments, of_id })
    }

    /// Every payment of a batch.
    async fn payments_of_batch(&mut self, batch_id: &str) -> StoreResult<Vec<InstructedPayment>> {
        match self {
            StoreTx::Sqlite(transaction) => {
                let sql = format!("{SQLITE_PAYMENT_SELECT} WHERE p.batch_id = $1");
                with_raw(transaction, |connection| {
                    sqlite_payments(connection, &sql, [&[&batch_id as &dyn ToSql][..]])
                })
                .await
            }
            StoreTx::Postgres(transaction) => {
                let sql = format!("{PG_PAYMENT_SELECT} WHERE p.batch_id = $1");
                let rows = sqlx::query(&sql)
                    .bind(batch_id)
                    .fetch_all(&mut **transaction)
                    .await?;
                payments_from_pg_rows(&rows)
            }
        }
    }

    /// The payments with these (distinct) ids; an id no payment has is left out. Each
    /// is found by the key its digits name (`run::payment_key_of`) and must carry the
    /// very id asked about: an id of another shape, or another prefix, names none.
    async fn payments_by_id(&mut self, ids: &[&str]) -> StoreResult<Vec<InstructedPayment>> {
        let keyed = keyed_ids(ids);
        match self {
            StoreTx::Sqlite(transaction) => {
                let sql = format!(
                    "{SQLITE_PAYMENT_SELECT} WHERE p.payment_key = $1 AND p.end_to_end_id = $2"
                );
                with_raw(transaction, |connection| {
                    let lookups: Vec<[&dyn ToSql; 2]> = keyed
                        .iter()
                        .map(|(key, id)| [key as &dyn ToSql, id as &dyn ToSql])
                        .collect();
                    sqlite_payments(connection, &sql, lookups.iter().map(|values| &values[..]))
                })
                .await
            }
            // PostgreSQL: one statement with the keys as an array (an IN list per 1000
            // ids cost a round trip and a plan each).
            StoreTx::Postgres(transaction) => {
                let sql = format!("{PG_PAYMENT_SELECT} WHERE p.payment_key = ANY($1)");
                let keys: Vec<i64> = keyed.iter().map(|(key, _)| *key).collect();
                let rows = sqlx::query(&sql)
                    .bind(keys)
                    .fetch_all(&mut **transaction)
                    .await?;
                let asked: HashSet<&str> = keyed.iter().map(|(_, id)| *id).collect();
                let mut found = payments_from_pg_rows(&rows)?;
                found.retain(|payment| asked.contains(payment.end_to_end_id.as_str()));
                Ok(found)
            }
        }
    }

    /// The household and account of each of these payments (by id) that has its line:
    /// what a hold records, read for the few payments that end in one.
    pub async fn payment_accounts(
        &mut self,
        ids: &[&str],
    ) -> StoreResult<HashMap<String, PaymentAccount>> {
        const SELECT: &str = "SELECT p.end_to_end_id, p.household_id, l.account_number \
            FROM payment p JOIN run_line l ON l.run_id = p.run_id AND l.line_no = p.line_no";
        let keyed = keyed_ids(ids);
        let account = |row: &dyn PlainRow| -> StoreResult<(String, PaymentAccount)> {
            Ok((
                row.text("end_to_end_id")?,
                PaymentAccount {
                    household_id: row.text("household_id")?,
                    account_number: row.text("account_number")?,
                },
            ))
        };
        if let StoreTx::Postgres(transaction) = self {
            let sql = format!("{SELECT} WHERE p.payment_key = ANY($1)");
            let keys: Vec<i64> = keyed.iter().map(|(key, _)| *key).collect();
            let rows = sqlx::query(&sql)
                .bind(keys)
                .fetch_all(&mut **transaction)
                .await?;
            let asked: HashSet<&str> = keyed.iter().map(|(_, id)| *id).collect();
            let mut found = HashMap::new();
            for row in &rows {
                let (id, payment_account) = account(row)?;
                if asked.contains(id.as_str()) {
                    found.insert(id, payment_account);
                }
            }
            return Ok(found);
        }
        let sql = format!("{SELECT} WHERE p.payment_key = $1 AND p.end_to_end_id = $2");
        let mut found = HashMap::new();
        for (key, id) in keyed {
            let values = [SqlValue::Int(key), SqlValue::Text(id.into())];
            found.extend(self.fetch_mapped(&sql, &values, account).await?);
        }
        Ok(found)
    }

    /// Stores payments' new states and last reasons, and the result file that set
    /// them (its SHA-256 and time are the file's: `result_file`).
    pub async fn update_payments(
        &mut self,
        updates: &[PaymentUpdate<'_>],
        result_file_id: i64,
    ) -> StoreResult<()> {
        if let StoreTx::Sqlite(transaction) = self {
            // By the key read with the payment, which is the rowid; the id is compared
            // too, on the row already found.
            const UPDATE: &str = "UPDATE payment SET status = $1, results_seen = $2, \
                reason_code = COALESCE($3, reason_code), reason_text = COALESCE($4, reason_text), \
                bank_serial = COALESCE($5, bank_serial), result_file_id = $6 \
                WHERE payment_key = $7 AND end_to_end_id = $8";
            return with_raw(transaction, |connection| {
                let mut update = Prepared::new(connection, UPDATE)?;
                for u in updates {
                    let changed = update.execute(&[
                        &u.status,
                        &u.results_seen,
                        &u.reason_code,
                        &u.reason_text,
                        &u.bank_serial,
                        &result_file_id,
                        &u.payment_key,
                        &u.end_to_end_id,
                    ])?;
                    assert_eq!(changed, 1, "an update names one instructed payment");
                }
                Ok(())
            })
            .await;
        }
        // PostgreSQL: the updates go through COPY into a temporary table and one
        // UPDATE joins it (a VALUES list per 1000 rows was planned as a scan of every
        // payment per statement: 10 s per 100k).
        let text = |value: &str| SqlValue::Text(value.into());
        let opt_text = |value: Option<&str>| value.map_or(SqlValue::NullText, text);
        let rows: Vec<Vec<SqlValue>> = updates
            .iter()
            .map(|u| {
                vec![
                    SqlValue::Int(u.payment_key),
                    text(u.end_to_end_id),
                    text(u.status),
                    SqlValue::Int(u.results_seen),
                    opt_text(u.reason_code),
                    opt_text(u.reason_text.as_deref()),
                    opt_text(u.bank_serial),
                ]
            })
            .collect();
        with_tx!(self, conn, Db => {
            sqlx::query("DROP TABLE IF EXISTS payment_update").execute(&mut *conn).await?;
            sqlx::query("CREATE TEMPORARY TABLE payment_update (key BIGINT PRIMARY KEY, e2e TEXT NOT NULL, \
                         status TEXT NOT NULL, seen BIGINT NOT NULL, code TEXT, reason TEXT, serial TEXT) ON COMMIT DROP")
                .execute(&mut *conn).await?;
        });
        self.insert_values(
            "payment_update",
            &["key", "e2e", "status", "seen", "code", "reason", "serial"],
            &rows,
        )
        .await?;
        // The payments are found by their keys, named as one array: an index probe
        // each, whatever the planner thinks of the temporary table. Joined on the key
        // alone, it merged the table with the whole payment index in key order, and a
        // file's keys span the run (a bank's payments are spread over every line): at
        // 2M payments one file of 50k updates read 999,218 payments, 1.67 s against
        // 0.53 s by key (issue #7). The table needs no statistics for this plan, so it
        // is not analyzed (0.3 s a 300k month); without the array it did need them, or
        // the planner scanned every payment per file (a 2M month spent 201 s ingesting).
        let sql = "UPDATE payment SET status = v.status, results_seen = v.seen, \
                   reason_code = COALESCE(v.code, payment.reason_code), \
                   reason_text = COALESCE(v.reason, payment.reason_text), \
                   bank_serial = COALESCE(v.serial, payment.bank_serial), result_file_id = $1 \
                   FROM payment_update v WHERE payment.payment_key = v.key AND payment.end_to_end_id = v.e2e \
                   AND payment.payment_key = ANY((SELECT array_agg(key) FROM payment_update)::BIGINT[])";
        let changed = with_tx!(self, conn, Db => {
            sqlx::query(sql).bind(result_file_id).execute(&mut *conn).await?.rows_affected()
        });
        assert_eq!(
            changed,
            updates.len() as u64,
            "every update names one instructed payment"
        );
        Ok(())
    }

    pub async fn insert_result_lines(
        &mut self,
        result_file_id: i64,
        lines: &[ResultLine<'_>],
    ) -> StoreResult<()> {
        const COLUMNS: &[&str] = &[
            "result_file_id",
            "line",
            "end_to_end_id",
            "status",
            "amount_fen",
            "reason_code",
            "reason_text",
            "bank_serial",
            "outcome",
        ];
        if let StoreTx::Sqlite(transaction) = self {
            // Bound straight from the lines (no row of owned values in between), many
            // rows per statement: each statement's own cost (a cursor opened on the
            // table, clustered by its key since migration 0006; halt, reset) is paid
            // once per chunk.
            let statement = |rows: usize| {
                let values = (0..rows)
                    .map(|row| {
                        let first = row * COLUMNS.len();
                        let row: Vec<String> = (1..=COLUMNS.len())
                            .map(|column| format!("${}", first + column))
                            .collect();
                        format!("({})", row.join(", "))
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                format!(
                    "INSERT INTO payment_result ({}) VALUES {values}",
                    COLUMNS.join(", ")
                )
            };
            let amounts: Vec<Option<i64>> = lines
                .iter()
                .map(|line| line.amount.map(Fen::as_i64))
                .collect();
            return with_raw(transaction, |connection| {
                let mut full = None;
                for (chunk, amounts) in lines
                    .chunks(RESULT_LINES_PER_INSERT)
                    .zip(amounts.chunks(RESULT_LINES_PER_INSERT))
                {
                    let mut values: Vec<&dyn ToSql> =
                        Vec::with_capacity(chunk.len() * COLUMNS.len());
                    for (line, amount) in chunk.iter().zip(amounts) {
                        values.extend_from_slice(&[
                            &result_file_id,
                            &line.line,
                            &line.end_to_end_id,
                            &line.status,
                            amount,
                            &line.reason_code,
                            &line.reason_text,
                            &line.bank_serial,
                            &line.outcome,
                        ]);
                    }
                    if chunk.len() == RESULT_LINES_PER_INSERT {
                        let insert = match &mut full {
                            Some(insert) => insert,
                            None => {
                                full.insert(Prepared::new(connection, &statement(chunk.len()))?)
                            }
                        };
                        insert.execute(&values)?;
                    } else {
                        Prepared::new(connection, &statement(chunk.len()))?.execute(&values)?;
                    }
                }
                Ok(())
            })
            .await;
        }
        let text = |value: &str| SqlValue::Text(value.into());
        let opt_text = |value: Option<&str>| value.map_or(SqlValue::NullText, text);
        let rows: Vec<Vec<SqlValue>> = lines
            .iter()
            .map(|line| {
                vec![
                    SqlValue::Int(result_file_id),
                    SqlValue::Int(line.line),
                    text(line.end_to_end_id),
                    text(line.status),
                    line.amount
                        .map_or(SqlValue::NullInt, |amount| SqlValue::Int(amount.as_i64())),
                    opt_text(line.reason_code),
                    opt_text(line.reason_text.as_deref()),
                    opt_text(line.bank_serial),
                    text(line.outcome),
                ]
            })
            .collect();
        self.insert_values("payment_result", COLUMNS, &rows).await?;
        Ok(())
    }

    pub async fn insert_exceptions(
        &mut self,
        exceptions: &[StoredException],
        at: &str,
    ) -> StoreResult<()> {
        for chunk in exceptions.chunks(INSERT_BATCH_ROWS) {
            with_tx!(self, conn, Db => {
                let mut query = QueryBuilder::<Db>::new(
                    "INSERT INTO exception (run_id, kind, batch_id, end_to_end_id, voucher_no, amount_fen, detail, source, created_at) ",
                );
                query.push_values(chunk, |mut values, e| {
                    values.push_bind(e.run_id.clone()).push_bind(e.kind.clone()).push_bind(e.batch_id.clone())
                        .push_bind(e.end_to_end_id.clone()).push_bind(e.voucher_no.clone()).push_bind(e.amount.map(Fen::as_i64))
                        .push_bind(e.detail.clone()).push_bind(e.source.clone()).push_bind(at.to_string());
                });
                query.build().execute(&mut *conn).await?;
            });
        }
        Ok(())
    }

    pub async fn insert_household_holds(
        &mut self,
        holds: &[HouseholdHold],
        at: &str,
    ) -> StoreResult<()> {
        for chunk in holds.chunks(INSERT_BATCH_ROWS) {
            with_tx!(self, conn, Db => {
                let mut query = QueryBuilder::<Db>::new(
                    "INSERT INTO household_hold (household_id, end_to_end_id, reason_code, account_number, created_at) ",
                );
                query.push_values(chunk, |mut values, hold| {
                    values.push_bind(hold.household_id.clone()).push_bind(hold.end_to_end_id.clone())
                        .push_bind(hold.reason_code.clone()).push_bind(hold.account_number.clone()).push_bind(at.to_string());
                });
                query.push(" ON CONFLICT DO NOTHING");
                query.build().execute(&mut *conn).await?;
            });
        }
        Ok(())
    }
}

impl Store {
    /// Every batch id ever exported (a voucher naming none of them is unmatched).
    pub async fn all_batch_ids(&self) -> StoreResult<std::collections::HashSet<String>> {
        let ids: Vec<String> = with_pool!(self, pool, Db => sqlx::query_scalar("SELECT batch_id FROM batch").fetch_all(pool).await?);
        Ok(ids.into_iter().collect())
    }
}

impl Store {
    /// The lines a batch pays, in line order (for the demo's bank simulator).
    pub async fn batch_lines(&self, batch_id: &str) -> StoreResult<Vec<crate::run::RunLine>> {
        let sql = "SELECT l.* FROM run_line l JOIN payment p ON p.run_id = l.run_id AND p.line_no = l.line_no \
                   WHERE p.batch_id = $1 ORDER BY l.line_no";
        self.fetch_mapped(sql, &[SqlValue::Text(batch_id.into())], |row| {
            crate::store::runs::line_from_row(row)
        })
        .await
    }
}

/// Each id that names a payment key (`run::payment_key_of`), with its key: an id of
/// another shape names no payment, so it is not looked up.
fn keyed_ids<'i>(ids: &[&'i str]) -> Vec<(i64, &'i str)> {
    ids.iter()
        .filter_map(|id| Some((payment_key_of(id)?, *id)))
        .collect()
}

/// SQLite: the payments `sql` finds for each list of values in turn (`$1`, `$2`…
/// bound to them), with run states and batch ids read once and shared.
fn sqlite_payments<'v>(
    connection: &rusqlite::Connection,
    sql: &str,
    lookups: impl IntoIterator<Item = &'v [&'v dyn ToSql]>,
) -> StoreResult<Vec<InstructedPayment>> {
    let mut runs = RunStates::new(connection)?;
    let mut batches = Shared::default();
    let mut select = Prepared::new(connection, sql)?;
    let mut found = Vec::new();
    for values in lookups {
        select.for_each_row(values, |row| {
            found.extend(instructed_from_sqlite(row, &mut runs, &mut batches)?);
            Ok(())
        })?;
    }
    Ok(found)
}

/// PostgreSQL: the payments of fetched rows, with run and batch ids shared.
fn payments_from_pg_rows(rows: &[sqlx::postgres::PgRow]) -> StoreResult<Vec<InstructedPayment>> {
    let mut shared = Shared::default();
    rows.iter()
        .map(|row| instructed_from_row(row, &mut shared))
        .collect()
}
