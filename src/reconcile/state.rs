//! A payment's state as bank results arrive (FAILURES #7, #8; CONTRACTS §3.4).
//!
//! **The rule.** A payment's state is a function of the *set* of distinct statuses
//! received for it so far ([`ResultsSeen`]), never of their order:
//!
//! | statuses seen (besides `pending`)          | state        |
//! |---------------------------------------------|--------------|
//! | none, and no `pending`                      | `Instructed` |
//! | none, `pending` seen                        | `Pending`    |
//! | `paid`                                      | `Paid`       |
//! | `returned` (with or without `paid`)         | `Returned`   |
//! | `failed`                                    | `Failed`     |
//! | `failed` and (`paid` or `returned`)         | `Disputed`   |
//!
//! `Disputed` is a hold: two bank messages contradict each other (credited vs not), so
//! neither is applied and a person decides. A set only grows, and the table is monotone
//! in it, so any order of the same messages ends in the same state.
//!
//! Each message yields at most one exception, also order-free:
//! - a terminal status (`paid`, `failed`, `returned`) already in the set is a
//!   `duplicate_result` and changes nothing (a return is never applied twice);
//! - the message that first makes the set contradictory is the one `conflicting_result`
//!   (whichever arrives second, the pair is the same pair); later messages to a
//!   disputed payment add nothing new and are `Unchanged` unless they are duplicates.
//!
//! So the exceptions for one payment are exactly: one `duplicate_result` per repeat of
//! each terminal status, plus one `conflicting_result` if the set is contradictory.
//!
//! **Invariants (tested):** a state never goes backwards ([`PaymentState::rank`]
//! strictly rises on every change; `Paid` and `Failed` never turn into each other); a
//! second, conflicting result is an exception, not an overwrite; a camt.054 return after
//! payment makes the payment `Returned`; a stale `pending` never moves a terminal state.

use super::exception::ExceptionKind;
use crate::domain::bank_result::ResultStatus;

/// Where one payment stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PaymentState {
    /// In a file sent to the bank; no answer yet.
    Instructed,
    /// The bank acknowledged it without a final answer.
    Pending,
    Paid,
    Failed,
    /// Paid, then came back (camt.054 return).
    Returned,
    /// Contradictory terminal results: held for a person, counted as pending.
    Disputed,
}

impl PaymentState {
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentState::Instructed => "instructed",
            PaymentState::Pending => "pending",
            PaymentState::Paid => "paid",
            PaymentState::Failed => "failed",
            PaymentState::Returned => "returned",
            PaymentState::Disputed => "disputed",
        }
    }

    pub fn parse(text: &str) -> Option<PaymentState> {
        [
            PaymentState::Instructed,
            PaymentState::Pending,
            PaymentState::Paid,
            PaymentState::Failed,
            PaymentState::Returned,
            PaymentState::Disputed,
        ]
        .into_iter()
        .find(|state| state.as_str() == text)
    }

    /// Progress, for "never goes backwards": a change always raises it. `Paid` and
    /// `Failed` share a rank because neither may follow the other.
    pub fn rank(self) -> u8 {
        match self {
            PaymentState::Instructed => 0,
            PaymentState::Pending => 1,
            PaymentState::Paid | PaymentState::Failed => 2,
            PaymentState::Returned => 3,
            PaymentState::Disputed => 4,
        }
    }

    /// The column of `summary.csv` the payment's money is counted in. Anything without
    /// a settled answer (no result yet, pending, disputed) is still pending.
    pub fn summary_bucket(self) -> ResultStatus {
        match self {
            PaymentState::Paid => ResultStatus::Paid,
            PaymentState::Failed => ResultStatus::Failed,
            PaymentState::Returned => ResultStatus::Returned,
            PaymentState::Instructed | PaymentState::Pending | PaymentState::Disputed => {
                ResultStatus::Pending
            }
        }
    }
}

/// The distinct statuses received for one payment: a fold over its stored results, so
/// it can be kept as a column or recomputed from the results table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ResultsSeen(u8);

impl ResultsSeen {
    pub const NONE: ResultsSeen = ResultsSeen(0);

    fn bit(status: ResultStatus) -> u8 {
        match status {
            ResultStatus::Pending => 1,
            ResultStatus::Paid => 2,
            ResultStatus::Failed => 4,
            ResultStatus::Returned => 8,
        }
    }

    /// The set as stored in `payment.results_seen`.
    pub fn bits(self) -> i64 {
        i64::from(self.0)
    }

    /// A stored set; bits beyond the four statuses are ignored.
    pub fn from_bits(bits: i64) -> ResultsSeen {
        ResultsSeen((bits & 0x0f) as u8)
    }

    pub fn contains(self, status: ResultStatus) -> bool {
        self.0 & Self::bit(status) != 0
    }

    pub fn with(self, status: ResultStatus) -> ResultsSeen {
        ResultsSeen(self.0 | Self::bit(status))
    }

    /// The set of the given statuses.
    pub fn of(statuses: impl IntoIterator<Item = ResultStatus>) -> ResultsSeen {
        statuses
            .into_iter()
            .fold(ResultsSeen::NONE, ResultsSeen::with)
    }

    /// The state this set means (the table in the module doc).
    pub fn state(self) -> PaymentState {
        use ResultStatus::{Failed, Paid, Pending, Returned};
        let credited = self.contains(Paid) || self.contains(Returned);
        match (self.contains(Failed), credited) {
            (true, true) => PaymentState::Disputed,
            (true, false) => PaymentState::Failed,
            (false, true) if self.contains(Returned) => PaymentState::Returned,
            (false, true) => PaymentState::Paid,
            (false, false) if self.contains(Pending) => PaymentState::Pending,
            (false, false) => PaymentState::Instructed,
        }
    }
}

/// What one incoming result did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    /// The state moved forward to this.
    Applied(PaymentState),
    /// Stale or redundant (an old `pending`, a `paid` after its return): no change.
    Unchanged,
    /// Not applied; a row for the auditor. A conflict also puts the payment on hold
    /// (`Disputed`), a duplicate changes nothing.
    Exception(ExceptionKind),
}

/// The result of applying one bank result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    pub seen: ResultsSeen,
    pub state: PaymentState,
    pub transition: Transition,
}

fn is_terminal(status: ResultStatus) -> bool {
    status != ResultStatus::Pending
}

/// Applies one bank result to a payment whose results so far are `seen`.
pub fn apply_result(seen: ResultsSeen, incoming: ResultStatus) -> Step {
    let before = seen.state();
    let next = seen.with(incoming);
    let after = next.state();
    let transition = if is_terminal(incoming) && seen.contains(incoming) {
        Transition::Exception(ExceptionKind::DuplicateResult)
    } else if after == PaymentState::Disputed && before != PaymentState::Disputed {
        Transition::Exception(ExceptionKind::ConflictingResult)
    } else if after != before {
        Transition::Applied(after)
    } else {
        Transition::Unchanged
    };
    Step {
        seen: next,
        state: after,
        transition,
    }
}

/// Applies results in order from nothing: the final state and every exception raised.
pub fn apply_all(
    statuses: impl IntoIterator<Item = ResultStatus>,
) -> (PaymentState, Vec<ExceptionKind>) {
    let mut seen = ResultsSeen::NONE;
    let mut exceptions = Vec::new();
    for status in statuses {
        let step = apply_result(seen, status);
        if let Transition::Exception(kind) = step.transition {
            exceptions.push(kind);
        }
        seen = step.seen;
    }
    (seen.state(), exceptions)
}
