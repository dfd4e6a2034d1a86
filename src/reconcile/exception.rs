//! Exceptions: one row per thing an auditor must look at (CONTRACTS §6,
//! FAILURES #6–#10, #26). Nothing that does not reconcile is dropped; it becomes a row.
//!
//! **Invariant:** an exception never changes money by itself; a person resolves it.

use crate::domain::money::Fen;

/// Why a row is on `exceptions.csv`. `as_str` is the `kind` column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ExceptionKind {
    /// A result names an end_to_end_id we never instructed (FAILURES #9).
    UnknownPayment,
    /// The same terminal result arrived again (FAILURES #7); nothing changed.
    DuplicateResult,
    /// A terminal result contradicts an earlier one (paid vs failed); held for a person.
    ConflictingResult,
    /// The bank reports an amount other than the one instructed.
    AmountMismatch,
    /// A result file already ingested arrived again (FAILURES #6).
    DuplicateFile,
    /// A return too late to apply automatically (FAILURES #10): a second person decides.
    LateReturn,
    /// A failure whose reason (AM05, NARR, unknown) needs a person (CONTRACTS §3.4).
    FailureNeedsReview,
    /// A treasury voucher that names no batch of the run.
    UnmatchedVoucher,
    /// Σ 5201 for a batch differs from what the batch instructed.
    FundingMismatch,
    /// Σ 2203/2302 for a batch differs from its failed + returned.
    RefundMismatch,
    /// Σ 2301 for a batch differs from what the bank says it paid.
    ClearingMismatch,
    /// funded − refunded − paid ≠ 0: treasury money no household received (FAILURES #26).
    TreasuryDifference,
    /// A result names a payment of another batch than the file answers.
    WrongBatch,
    /// A result file's count or total differs from the batch it answers.
    ResultFileMismatch,
}

impl ExceptionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ExceptionKind::UnknownPayment => "unknown_payment",
            ExceptionKind::DuplicateResult => "duplicate_result",
            ExceptionKind::ConflictingResult => "conflicting_result",
            ExceptionKind::AmountMismatch => "amount_mismatch",
            ExceptionKind::DuplicateFile => "duplicate_file",
            ExceptionKind::LateReturn => "late_return",
            ExceptionKind::FailureNeedsReview => "failure_needs_review",
            ExceptionKind::UnmatchedVoucher => "unmatched_voucher",
            ExceptionKind::FundingMismatch => "funding_mismatch",
            ExceptionKind::RefundMismatch => "refund_mismatch",
            ExceptionKind::ClearingMismatch => "clearing_mismatch",
            ExceptionKind::TreasuryDifference => "treasury_difference",
            ExceptionKind::WrongBatch => "wrong_batch",
            ExceptionKind::ResultFileMismatch => "result_file_mismatch",
        }
    }

    pub const ALL: [ExceptionKind; 14] = [
        ExceptionKind::UnknownPayment,
        ExceptionKind::DuplicateResult,
        ExceptionKind::ConflictingResult,
        ExceptionKind::AmountMismatch,
        ExceptionKind::DuplicateFile,
        ExceptionKind::LateReturn,
        ExceptionKind::FailureNeedsReview,
        ExceptionKind::UnmatchedVoucher,
        ExceptionKind::FundingMismatch,
        ExceptionKind::RefundMismatch,
        ExceptionKind::ClearingMismatch,
        ExceptionKind::TreasuryDifference,
        ExceptionKind::WrongBatch,
        ExceptionKind::ResultFileMismatch,
    ];

    pub fn parse(text: &str) -> Option<ExceptionKind> {
        ExceptionKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == text)
    }
}

/// One row of `exceptions.csv`. Empty strings stand for "not applicable".
/// `detail` is free text and is masked when written; the identifiers are not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExceptionRow {
    pub kind: ExceptionKind,
    pub batch_id: String,
    pub end_to_end_id: String,
    pub voucher_no: String,
    /// The money in question (a difference may be negative); `None` when none is.
    pub amount: Option<Fen>,
    pub detail: String,
}

impl ExceptionRow {
    /// A row with only a kind and a batch; fill the rest with struct update syntax.
    pub fn new(kind: ExceptionKind, batch_id: &str, detail: String) -> ExceptionRow {
        ExceptionRow {
            kind,
            batch_id: batch_id.to_string(),
            end_to_end_id: String::new(),
            voucher_no: String::new(),
            amount: None,
            detail,
        }
    }
}

/// Whether the amount a bank reports disagrees with the amount instructed. A message
/// without an amount (many pain.002s) agrees by silence.
pub fn amount_differs(instructed: Fen, reported: Option<Fen>) -> bool {
    reported.is_some_and(|reported| reported != instructed)
}
