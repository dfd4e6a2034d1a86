//! Three-way reconciliation (CONTRACTS §6, FAILURES #26): what we instructed, what the
//! banks say happened, and what the treasury funded, refunded and cleared, per batch
//! and for the run; and the two CSVs an auditor receives.
//!
//! **Invariants:** for every row, instructed = paid + failed + returned + pending, in
//! count and in money, or no report is produced; the run row is the sum of the batch
//! rows; `difference` = funded − refunded − paid (treasury money no household
//! received), 0.00 when all is well, and every way it can be off is itemised as an
//! exception. CSV text cells are guarded against formula injection (FAILURES #19) and
//! free text is masked (P13); amounts are written as plain numbers (`-12.00`).

use super::exception::{ExceptionKind, ExceptionRow};
use super::state::PaymentState;
use crate::domain::bank_result::ResultStatus;
use crate::domain::household::{TreasuryVoucher, VoucherType};
use crate::domain::mask::mask_digits_in_text;
use crate::domain::money::Fen;

/// One batch's figures, as the store tallies them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BatchFacts {
    pub batch_id: String,
    pub bank_code: String,
    pub instructed_count: i64,
    pub instructed: Fen,
    pub paid_count: i64,
    pub paid: Fen,
    pub failed_count: i64,
    pub failed: Fen,
    pub returned_count: i64,
    pub returned: Fen,
    /// No final answer yet: no result, pending, or disputed.
    pub pending_count: i64,
    pub pending: Fen,
    /// Σ 5201 vouchers for the batch.
    pub funded: Fen,
    /// Σ 2203 and 2302 vouchers for the batch.
    pub refunded: Fen,
    /// Σ 2301 vouchers for the batch; `None` when the bank sent no clearing request.
    pub clearing: Option<Fen>,
}

/// Payments of one state in a batch: how many and their sum, as the store groups them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StateTotal {
    pub state: PaymentState,
    pub count: i64,
    pub amount: Fen,
}

impl BatchFacts {
    /// Tallies a batch from each payment's state and amount and the treasury's
    /// vouchers (only those naming this batch and bank count).
    pub fn tally(
        batch_id: &str,
        bank_code: &str,
        payments: &[(PaymentState, Fen)],
        vouchers: &[TreasuryVoucher],
    ) -> BatchFacts {
        let each: Vec<StateTotal> = payments
            .iter()
            .map(|&(state, amount)| StateTotal {
                state,
                count: 1,
                amount,
            })
            .collect();
        BatchFacts::tally_totals(batch_id, bank_code, &each, vouchers)
    }

    /// Tallies a batch from its payments' totals by state (any grouping: one entry per
    /// payment gives the same figures as one per state) and the treasury's vouchers.
    pub fn tally_totals(
        batch_id: &str,
        bank_code: &str,
        state_totals: &[StateTotal],
        vouchers: &[TreasuryVoucher],
    ) -> BatchFacts {
        let mut facts = BatchFacts {
            batch_id: batch_id.to_string(),
            bank_code: bank_code.to_string(),
            ..BatchFacts::default()
        };
        for total in state_totals {
            assert!(
                total.count >= 0,
                "a state's payment count is never negative"
            );
            facts.count_payments(total.state.summary_bucket(), total.count, total.amount);
        }
        // A batch id is unique forever, so it alone matches a voucher to its batch.
        let ours = vouchers.iter().filter(|v| v.batch_id == batch_id);
        for voucher in ours {
            facts.count_voucher(voucher.voucher_type, voucher.amount);
        }
        facts
    }

    fn count_payments(&mut self, bucket: ResultStatus, count: i64, amount: Fen) {
        self.instructed_count += count;
        self.instructed = self.instructed.plus(amount);
        let (bucket_count, money) = match bucket {
            ResultStatus::Paid => (&mut self.paid_count, &mut self.paid),
            ResultStatus::Failed => (&mut self.failed_count, &mut self.failed),
            ResultStatus::Returned => (&mut self.returned_count, &mut self.returned),
            ResultStatus::Pending => (&mut self.pending_count, &mut self.pending),
        };
        *bucket_count += count;
        *money = money.plus(amount);
    }

    fn count_voucher(&mut self, voucher_type: VoucherType, amount: Fen) {
        match voucher_type {
            VoucherType::DirectPayment => self.funded = self.funded.plus(amount),
            VoucherType::Refund2203 | VoucherType::Refund2302 => {
                self.refunded = self.refunded.plus(amount)
            }
            VoucherType::ClearingRequest => {
                self.clearing = Some(self.clearing.unwrap_or(Fen::ZERO).plus(amount))
            }
        }
    }

    /// Treasury money no household received: funded − refunded − paid.
    pub fn difference(&self) -> Fen {
        self.funded.minus(self.refunded).minus(self.paid)
    }

    fn accounted_count(&self) -> i64 {
        self.paid_count + self.failed_count + self.returned_count + self.pending_count
    }

    fn accounted(&self) -> Fen {
        self.paid
            .plus(self.failed)
            .plus(self.returned)
            .plus(self.pending)
    }

    /// Adds another batch's figures (for the run row).
    fn add(&mut self, other: &BatchFacts) {
        self.instructed_count += other.instructed_count;
        self.instructed = self.instructed.plus(other.instructed);
        self.paid_count += other.paid_count;
        self.paid = self.paid.plus(other.paid);
        self.failed_count += other.failed_count;
        self.failed = self.failed.plus(other.failed);
        self.returned_count += other.returned_count;
        self.returned = self.returned.plus(other.returned);
        self.pending_count += other.pending_count;
        self.pending = self.pending.plus(other.pending);
        self.funded = self.funded.plus(other.funded);
        self.refunded = self.refunded.plus(other.refunded);
        self.clearing = match (self.clearing, other.clearing) {
            (Some(a), Some(b)) => Some(a.plus(b)),
            (a, b) => a.or(b),
        };
    }
}

/// Why no summary could be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReconcileError {
    #[error(
        "batch {batch_id}: instructed {instructed_count} payments ({instructed}) but \
         paid + failed + returned + pending are {accounted_count} ({accounted})"
    )]
    Unbalanced {
        batch_id: String,
        instructed_count: i64,
        instructed: Fen,
        accounted_count: i64,
        accounted: Fen,
    },
    #[error("batch {batch_id} appears more than once")]
    DuplicateBatch { batch_id: String },
}

/// A row's scope: one batch, or the whole run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Batch,
    Run,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Batch => "batch",
            Scope::Run => "run",
        }
    }
}

/// One row of `summary.csv`. For the run row `figures.batch_id` and `bank_code` are
/// empty and the figures are the sums of the batch rows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SummaryRow {
    pub scope: Scope,
    pub figures: BatchFacts,
    pub difference: Fen,
}

fn balanced(facts: &BatchFacts) -> Result<(), ReconcileError> {
    if facts.accounted_count() == facts.instructed_count && facts.accounted() == facts.instructed {
        return Ok(());
    }
    Err(ReconcileError::Unbalanced {
        batch_id: facts.batch_id.clone(),
        instructed_count: facts.instructed_count,
        instructed: facts.instructed,
        accounted_count: facts.accounted_count(),
        accounted: facts.accounted(),
    })
}

fn row(scope: Scope, figures: BatchFacts) -> SummaryRow {
    SummaryRow {
        scope,
        difference: figures.difference(),
        figures,
    }
}

/// One `batch` row per batch, in the order given, then the `run` row.
pub fn summary_rows(batches: &[BatchFacts]) -> Result<Vec<SummaryRow>, ReconcileError> {
    let mut rows = Vec::with_capacity(batches.len() + 1);
    let mut total = BatchFacts::default();
    for (index, facts) in batches.iter().enumerate() {
        balanced(facts)?;
        if batches[..index]
            .iter()
            .any(|b| b.batch_id == facts.batch_id)
        {
            return Err(ReconcileError::DuplicateBatch {
                batch_id: facts.batch_id.clone(),
            });
        }
        total.add(facts);
        rows.push(row(Scope::Batch, facts.clone()));
    }
    // The sum of balanced rows is balanced; checked anyway so the rule has one place.
    balanced(&total)?;
    rows.push(row(Scope::Run, total));
    Ok(rows)
}

/// Every way a batch's treasury figures disagree with its bank figures, one row each.
pub fn treasury_exceptions(facts: &BatchFacts) -> Vec<ExceptionRow> {
    let unpaid = facts.failed.plus(facts.returned);
    let mut checks = vec![
        (
            ExceptionKind::FundingMismatch,
            facts.funded,
            facts.instructed,
            "funded (5201)",
            "instructed",
        ),
        (
            ExceptionKind::RefundMismatch,
            facts.refunded,
            unpaid,
            "refunded (2203/2302)",
            "failed + returned",
        ),
    ];
    if let Some(clearing) = facts.clearing {
        let kind = ExceptionKind::ClearingMismatch;
        checks.push((kind, clearing, facts.paid, "clearing (2301)", "paid"));
    }
    let difference = facts.difference();
    let zero = Fen::ZERO;
    let diff_label = "funded - refunded - paid";
    checks.push((
        ExceptionKind::TreasuryDifference,
        difference,
        zero,
        diff_label,
        "0.00",
    ));
    checks
        .into_iter()
        .filter(|(_, ours, theirs, _, _)| ours != theirs)
        .map(|(kind, ours, theirs, what, against)| ExceptionRow {
            amount: Some(ours.minus(theirs)),
            ..ExceptionRow::new(
                kind,
                &facts.batch_id,
                format!("{what} {ours} differs from {against} {theirs}"),
            )
        })
        .collect()
}

/// Vouchers naming no batch of the run (by batch id and bank), and refunds that do not
/// name a 5201 voucher of their batch.
pub fn unmatched_vouchers(
    vouchers: &[TreasuryVoucher],
    batches: &[BatchFacts],
) -> Vec<ExceptionRow> {
    let known = |v: &TreasuryVoucher| {
        batches
            .iter()
            .any(|b| b.batch_id == v.batch_id && b.bank_code == v.bank_code.as_str())
    };
    let funds = |v: &TreasuryVoucher, original: &str| {
        vouchers.iter().any(|f| {
            f.voucher_no == original
                && f.voucher_type == VoucherType::DirectPayment
                && f.batch_id == v.batch_id
        })
    };
    let mut rows = Vec::new();
    for voucher in vouchers {
        let detail = if !known(voucher) {
            format!(
                "{} voucher names no batch of this run",
                voucher.voucher_type.code()
            )
        } else if voucher.voucher_type.is_refund()
            && !voucher
                .original_voucher_no
                .as_deref()
                .is_some_and(|o| funds(voucher, o))
        {
            format!(
                "{} refund names no 5201 voucher of its batch",
                voucher.voucher_type.code()
            )
        } else {
            continue;
        };
        rows.push(ExceptionRow {
            voucher_no: voucher.voucher_no.clone(),
            amount: Some(voucher.amount),
            ..ExceptionRow::new(ExceptionKind::UnmatchedVoucher, &voucher.batch_id, detail)
        });
    }
    rows
}

/// The header of `summary.csv` (CONTRACTS §6).
pub const SUMMARY_CSV_HEADER: &str = "scope,batch_id,bank_code,instructed_count,instructed,paid_count,paid,failed_count,failed,returned_count,returned,pending_count,pending,funded,refunded,difference";
/// The header of `exceptions.csv` (CONTRACTS §6).
pub const EXCEPTIONS_CSV_HEADER: &str = "kind,batch_id,end_to_end_id,voucher_no,amount,detail";

/// Formula-injection guard (FAILURES #19, CWE-1236): a text cell a spreadsheet would
/// read as a formula gets a leading `'`. Only for text; amounts are written unguarded.
pub fn guard_cell(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_string()
    }
}

/// Free text for a report: masked first (so no ID or account survives), then guarded.
pub fn free_text_cell(text: &str) -> String {
    guard_cell(&mask_digits_in_text(text))
}

fn write_csv(header: &str, records: impl Iterator<Item = Vec<String>>) -> String {
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    // Writing to a Vec cannot fail; an error here is a bug, not an input problem.
    writer
        .write_record(header.split(','))
        .expect("csv to memory");
    for record in records {
        writer.write_record(&record).expect("csv to memory");
    }
    let bytes = writer.into_inner().expect("csv to memory");
    String::from_utf8(bytes).expect("csv of Rust strings is UTF-8")
}

fn summary_record(row: &SummaryRow) -> Vec<String> {
    let f = &row.figures;
    vec![
        row.scope.as_str().to_string(),
        guard_cell(&f.batch_id),
        guard_cell(&f.bank_code),
        f.instructed_count.to_string(),
        f.instructed.to_string(),
        f.paid_count.to_string(),
        f.paid.to_string(),
        f.failed_count.to_string(),
        f.failed.to_string(),
        f.returned_count.to_string(),
        f.returned.to_string(),
        f.pending_count.to_string(),
        f.pending.to_string(),
        f.funded.to_string(),
        f.refunded.to_string(),
        row.difference.to_string(),
    ]
}

fn exception_record(row: &ExceptionRow) -> Vec<String> {
    vec![
        row.kind.as_str().to_string(),
        guard_cell(&row.batch_id),
        guard_cell(&row.end_to_end_id),
        guard_cell(&row.voucher_no),
        row.amount
            .map(|amount| amount.to_string())
            .unwrap_or_default(),
        free_text_cell(&row.detail),
    ]
}

/// `summary.csv`, header first, `\n` line ends.
pub fn write_summary_csv(rows: &[SummaryRow]) -> String {
    write_csv(SUMMARY_CSV_HEADER, rows.iter().map(summary_record))
}

/// `exceptions.csv`, header first, `\n` line ends; `detail` masked.
pub fn write_exceptions_csv(rows: &[ExceptionRow]) -> String {
    write_csv(EXCEPTIONS_CSV_HEADER, rows.iter().map(exception_record))
}
