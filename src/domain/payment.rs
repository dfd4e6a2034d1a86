//! What a payment file carries: one batch for one bank route, payer account and pay date.
//!
//! These are plain data handed from the run (computed lines) to `formats` (rendering).
//! Every field is already validated; renderers only encode and lay out.

use crate::domain::money::Fen;
use chrono::{NaiveDate, NaiveDateTime};
use compact_str::CompactString;

/// One file's worth of payments. `payments` are in `seq` order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaymentBatch {
    /// At most 20 characters of `[A-Za-z0-9-]`, unique forever (CONTRACTS §3.1).
    pub batch_id: String,
    /// Payer (the finance bureau's) account number, digits.
    pub payer_account: String,
    /// Payer account name, e.g. `某市财政局`.
    pub payer_name: String,
    /// CNAPS code of the payer's bank branch (12 digits); used by ISO 20022 `DbtrAgt`.
    pub payer_bank_code: String,
    /// The day the bank should credit the households.
    pub pay_date: NaiveDate,
    /// When the run was computed. Files take their timestamps from here, never from the
    /// clock, so exporting the same run twice gives the same bytes.
    pub created_at: NaiveDateTime,
    /// Free text for the header memo, e.g. `2026-11低保金`.
    pub memo: String,
    pub payments: Vec<PaymentInstruction>,
}

/// One household's payment in a batch. Its text fields are `CompactString`s: each
/// value here is at most 24 bytes (ids, codes, an account, a name of a few characters,
/// the month's memo), so it is held inline, without an allocation of its own. An export
/// holds a few whole batches (every route's open one and those being sealed), and that
/// halves their memory (issue #7: peak memory ≤ 256 MiB at any size).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaymentInstruction {
    /// 1-based position in the batch.
    pub seq: u32,
    /// At most 20 characters of `[A-Za-z0-9-]`, fixed at compute time (CONTRACTS §3.1).
    pub end_to_end_id: CompactString,
    /// Civil affairs' household id; named in errors, not written unless a layout asks.
    pub household_id: CompactString,
    pub account_number: CompactString,
    pub account_name: CompactString,
    /// 18-character resident ID of the household head.
    pub id_number: CompactString,
    pub amount: Fen,
    /// 12-digit CNAPS code of the household's bank branch.
    pub bank_code: CompactString,
    pub memo: CompactString,
}

impl PaymentBatch {
    /// The control total recomputed from the details.
    pub fn total(&self) -> Fen {
        self.payments.iter().map(|payment| payment.amount).sum()
    }
}
