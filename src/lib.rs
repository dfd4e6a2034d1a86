//! disburse: the monthly dibao payment processor. See ARCHITECTURE.md for the codemap.

pub mod domain;
pub mod formats;
