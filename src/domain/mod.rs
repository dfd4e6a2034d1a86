//! The pure domain: money, months, identifiers, households and decisions. No IO here.

pub mod money;
