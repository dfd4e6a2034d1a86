//! What a failed or returned payment leads to, by ISO 20022 reason code (CONTRACTS
//! §3.4). The table is data: one line per code.
//!
//! **Invariants:** every code has a step; a code we do not know, and `NARR`, go to a
//! person with the bank's text kept (masked, P13), never to an automatic action.
//! A held payment is re-issued in a later run under a *new* end_to_end_id that links
//! back to the original (CONTRACTS §3.1: an id is never reissued).

use crate::domain::bank_result::{normalise_reason, PaymentResult, ResultStatus};
use crate::domain::mask::mask_digits_in_text;

/// The follow-up a failure needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NextStep {
    /// Wrong, closed, blocked account or name/ID mismatch: keep the money back until
    /// the household's account is corrected, then re-issue under a new id.
    HoldUntilCorrectedAccount,
    /// Deceased (MD07): stop the household, flag it, exclude it from the next run
    /// and notify staff (FAILURES #11).
    StopHouseholdAndFlag,
    /// A person looks at it (duplicate AM05, free text NARR, codes we do not know).
    Exception,
}

impl NextStep {
    pub fn as_str(self) -> &'static str {
        match self {
            NextStep::HoldUntilCorrectedAccount => "hold_until_corrected_account",
            NextStep::StopHouseholdAndFlag => "stop_household_and_flag",
            NextStep::Exception => "exception",
        }
    }
}

const TABLE: &[(&str, NextStep)] = &[
    ("AC01", NextStep::HoldUntilCorrectedAccount),
    ("AC04", NextStep::HoldUntilCorrectedAccount),
    ("AC06", NextStep::HoldUntilCorrectedAccount),
    ("BE01", NextStep::HoldUntilCorrectedAccount),
    ("MD07", NextStep::StopHouseholdAndFlag),
    ("AM05", NextStep::Exception),
    ("NARR", NextStep::Exception),
];

/// The step for a reason code; unknown codes go to a person.
pub fn next_step(reason_code: &str) -> NextStep {
    TABLE
        .iter()
        .find(|(code, _)| *code == reason_code.trim())
        .map(|(_, step)| *step)
        .unwrap_or(NextStep::Exception)
}

/// A failure's follow-up, with what a person needs to act on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FollowUp {
    pub end_to_end_id: String,
    pub step: NextStep,
    /// The normalised ISO code (`NARR` when the bank gave neither code nor text).
    pub reason_code: String,
    /// The bank's own text, masked; kept for every step because a person may read it.
    pub reason_text: Option<String>,
}

/// The follow-up for a failed or returned result; `None` for paid and pending.
pub fn follow_up(result: &PaymentResult) -> Option<FollowUp> {
    if !matches!(result.status, ResultStatus::Failed | ResultStatus::Returned) {
        return None;
    }
    let reason_code =
        normalise_reason(result.reason_code.as_deref(), result.reason_text.as_deref())
            .unwrap_or_else(|| "NARR".to_string());
    Some(FollowUp {
        end_to_end_id: result.end_to_end_id.clone(),
        step: next_step(&reason_code),
        reason_text: result.reason_text.as_deref().map(mask_digits_in_text),
        reason_code,
    })
}
