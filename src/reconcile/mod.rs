//! Reconciliation, pure: what bank results do to a payment (`state`), what a failure
//! leads to (`next_step`), the three-way figures and CSVs of CONTRACTS §6 (`report`),
//! the exceptions an auditor must look at (`exception`) and the printable
//! `report.html` (`html`).
//!
//! **Invariants:** no IO, no database, no clock: callers hand in facts and get back
//! values and text, so the same inputs always give the same bytes. Money is `Fen`.
//! Free text leaving this module goes through `domain::mask` (P13); identifiers we
//! generate ourselves (batch ids, end_to_end_ids, voucher numbers, bank codes) carry
//! no personal data and are kept whole so an auditor can trace them.

pub mod exception;
pub mod html;
pub mod next_step;
pub mod report;
pub mod state;

#[cfg(test)]
mod tests;
