//! The pure domain: money, months, identifiers, households, decisions, payments and
//! bank results. No IO here.

pub mod bank_result;
pub mod money;
pub mod payment;
