//! Export in the store: the batches (one per bank file) and the instructed payments,
//! written in multi-row statements inside the export's transaction, and read back to
//! check a re-export against what was recorded.

use crate::domain::money::Fen;
use crate::run::{payment_key, payment_key_of, RunLine};
use crate::store::runs::PlainRow;
use crate::store::values::SqlValue;
use crate::store::{with_pool, with_tx, Store, StoreResult, StoreTx};

/// A `pay` line as export's planning pass sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PayLineAmount {
    pub line_no: i64,
    pub bank_code: String,
    pub payable: Fen,
}

/// One bank file as recorded.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct BatchRecord {
    pub batch_id: String,
    pub run_id: String,
    pub batch_seq: i64,
    pub layout: String,
    pub bank_prefix: String,
    pub payer_account: String,
    pub pay_date: String,
    pub file_name: String,
    pub record_count: i64,
    pub total_fen: i64,
    pub sha256: String,
    pub signature_algorithm: String,
    pub key_id: String,
}

/// One instructed payment: the line it pays and the batch that carries it. Borrowed
/// from the batch's instructions, so export holds each payment's text once (issue #7:
/// memory holds a few batches, and each payment's strings only once).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PaymentRecord<'a> {
    pub end_to_end_id: &'a str,
    pub line_no: i64,
    pub household_id: &'a str,
    pub bank_code: &'a str,
    pub amount_fen: i64,
}

/// Payments written per `insert_values` call: the rows of one call are built in memory,
/// so a 50,000-payment batch is written a slice at a time.
const PAYMENT_INSERT_ROWS: usize = 2_000;

pub(crate) fn batch_from_row(row: &(impl PlainRow + ?Sized)) -> StoreResult<BatchRecord> {
    Ok(BatchRecord {
        batch_id: row.text("batch_id")?,
        run_id: row.text("run_id")?,
        batch_seq: row.int("batch_seq")?,
        layout: row.text("layout")?,
        bank_prefix: row.text("bank_prefix")?,
        payer_account: row.text("payer_account")?,
        pay_date: row.text("pay_date")?,
        file_name: row.text("file_name")?,
        record_count: row.int("record_count")?,
        total_fen: row.int("total_fen")?,
        sha256: row.text("sha256")?,
        signature_algorithm: row.text("signature_algorithm")?,
        key_id: row.text("key_id")?,
    })
}

impl Store {
    /// A run's recorded batches, in batch order.
    pub async fn batches_of_run(&self, run_id: &str) -> StoreResult<Vec<BatchRecord>> {
        let sql = "SELECT * FROM batch WHERE run_id = $1 ORDER BY batch_seq";
        let batches = with_pool!(self, pool, Db => {
            sqlx::query(sql).bind(run_id).fetch_all(pool).await?
                .iter().map(batch_from_row).collect::<StoreResult<Vec<_>>>()?
        });
        Ok(batches)
    }

    /// `pay` lines after `after_line_no`, at most `limit`, in line order.
    pub async fn run_pay_lines_page(
        &self,
        run_id: &str,
        after_line_no: i64,
        limit: i64,
    ) -> StoreResult<Vec<RunLine>> {
        self.run_lines_page_where(run_id, "status = 'pay'", after_line_no, limit)
            .await
    }

    /// What export's planning pass needs of `pay` lines after `after_line_no` (at most
    /// `limit`, in line order): line number, bank code and payable fen. Three columns
    /// instead of the whole line (pass 1 read 20 columns a line to use three).
    pub async fn run_pay_line_amounts_page(
        &self,
        run_id: &str,
        after_line_no: i64,
        limit: i64,
    ) -> StoreResult<Vec<PayLineAmount>> {
        let sql = "SELECT line_no, bank_code, payable_fen FROM run_line \
                   WHERE run_id = $1 AND line_no > $2 AND status = 'pay' ORDER BY line_no LIMIT $3";
        let values = [
            SqlValue::Text(run_id.into()),
            SqlValue::Int(after_line_no),
            SqlValue::Int(limit),
        ];
        self.fetch_mapped(sql, &values, |row| {
            Ok(PayLineAmount {
                line_no: row.int("line_no")?,
                bank_code: row.text("bank_code")?,
                payable: Fen::new(row.int("payable_fen")?),
            })
        })
        .await
    }
}

impl StoreTx {
    pub async fn insert_batch(
        &mut self,
        batch: &BatchRecord,
        exported_by: &str,
        exported_at: &str,
    ) -> StoreResult<()> {
        let sql = "INSERT INTO batch (batch_id, run_id, batch_seq, layout, bank_prefix, payer_account, pay_date, \
                   file_name, record_count, total_fen, sha256, signature_algorithm, key_id, exported_by, exported_at) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)";
        with_tx!(self, conn, Db => {
            sqlx::query(sql).bind(&batch.batch_id).bind(&batch.run_id).bind(batch.batch_seq)
                .bind(&batch.layout).bind(&batch.bank_prefix).bind(&batch.payer_account)
                .bind(&batch.pay_date).bind(&batch.file_name).bind(batch.record_count)
                .bind(batch.total_fen).bind(&batch.sha256).bind(&batch.signature_algorithm)
                .bind(&batch.key_id).bind(exported_by).bind(exported_at)
                .execute(&mut *conn).await?;
        });
        Ok(())
    }

    /// Inserts a batch's payments of run `run_id` (number `run_no`),
    /// `PAYMENT_INSERT_ROWS` at a time, each under its key (`run::payment_key`).
    ///
    /// The one way payments are written, so the one place that keeps an id from being
    /// issued twice now that no index covers `end_to_end_id` (migration 0011): each
    /// id's digits must name its row's key, whose primary key refuses a second row.
    pub async fn insert_payments<'a>(
        &mut self,
        run_id: &str,
        run_no: i64,
        batch_id: &str,
        payments: impl Iterator<Item = PaymentRecord<'a>>,
    ) -> StoreResult<()> {
        const COLUMNS: &[&str] = &[
            "payment_key",
            "end_to_end_id",
            "run_id",
            "batch_id",
            "line_no",
            "household_id",
            "bank_code",
            "amount_fen",
        ];
        assert!(
            run_id.ends_with(&format!("-{run_no:06}")),
            "run {run_id} is not run number {run_no}"
        );
        let mut rows: Vec<Vec<SqlValue>> = Vec::with_capacity(PAYMENT_INSERT_ROWS);
        let mut payments = payments.peekable();
        while payments.peek().is_some() {
            rows.clear();
            rows.extend(payments.by_ref().take(PAYMENT_INSERT_ROWS).map(|payment| {
                let key = payment_key(run_no, payment.line_no);
                assert_eq!(
                    payment_key_of(payment.end_to_end_id),
                    Some(key),
                    "payment {} is not line {} of run {run_id}",
                    payment.end_to_end_id,
                    payment.line_no
                );
                vec![
                    SqlValue::Int(key),
                    SqlValue::Text(payment.end_to_end_id.into()),
                    SqlValue::Text(run_id.into()),
                    SqlValue::Text(batch_id.into()),
                    SqlValue::Int(payment.line_no),
                    SqlValue::Text(payment.household_id.into()),
                    SqlValue::Text(payment.bank_code.into()),
                    SqlValue::Int(payment.amount_fen),
                ]
            }));
            self.insert_values("payment", COLUMNS, &rows).await?;
        }
        Ok(())
    }
}
