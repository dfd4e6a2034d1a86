//! Export in the store: the batches (one per bank file) and the instructed payments,
//! written in multi-row statements inside the export's transaction, and read back to
//! check a re-export against what was recorded.

use crate::run::RunLine;
use crate::store::runs::PlainRow;
use crate::store::values::SqlValue;
use crate::store::{with_pool, with_tx, Store, StoreResult, StoreTx};

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

/// One instructed payment: the line it pays and the batch that carries it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaymentRecord {
    pub end_to_end_id: String,
    pub line_no: i64,
    pub household_id: String,
    pub bank_code: String,
    pub amount_fen: i64,
}

impl PaymentRecord {
    pub fn of_line(line: &RunLine) -> PaymentRecord {
        PaymentRecord {
            end_to_end_id: line.end_to_end_id.clone(),
            line_no: line.line_no,
            household_id: line.household_id.clone(),
            bank_code: line.bank_code.clone(),
            amount_fen: line.payable.as_i64(),
        }
    }
}

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

    /// (count, total fen) of a run's instructed payments.
    pub async fn payment_totals(&self, run_id: &str) -> StoreResult<(i64, i64)> {
        let sql = "SELECT COUNT(*) AS n, CAST(COALESCE(SUM(amount_fen), 0) AS BIGINT) AS total \
                   FROM payment WHERE run_id = $1";
        let totals = with_pool!(self, pool, Db => {
            let row = sqlx::query(sql).bind(run_id).fetch_one(pool).await?;
            (row.int("n")?, row.int("total")?)
        });
        Ok(totals)
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

    /// Inserts a batch's payments in multi-row statements.
    pub async fn insert_payments(
        &mut self,
        run_id: &str,
        batch_id: &str,
        payments: &[PaymentRecord],
    ) -> StoreResult<()> {
        const COLUMNS: &[&str] = &[
            "end_to_end_id",
            "run_id",
            "batch_id",
            "line_no",
            "household_id",
            "bank_code",
            "amount_fen",
        ];
        let rows: Vec<Vec<SqlValue>> = payments
            .iter()
            .map(|payment| {
                vec![
                    SqlValue::Text(payment.end_to_end_id.clone()),
                    SqlValue::Text(run_id.to_string()),
                    SqlValue::Text(batch_id.to_string()),
                    SqlValue::Int(payment.line_no),
                    SqlValue::Text(payment.household_id.clone()),
                    SqlValue::Text(payment.bank_code.clone()),
                    SqlValue::Int(payment.amount_fen),
                ]
            })
            .collect();
        self.insert_values("payment", COLUMNS, &rows).await?;
        Ok(())
    }
}
