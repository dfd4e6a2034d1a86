//! The pure domain: money, months, identifiers, masking, households, decisions,
//! payments and bank results. No IO here.

pub mod bank_result;
pub mod digits;
pub mod household;
pub mod ids;
pub mod mask;
pub mod money;
pub mod month;
pub mod payment;
pub mod repeated_values;
