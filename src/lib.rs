//! disburse: the monthly dibao payment processor. See ARCHITECTURE.md for the codemap.

pub mod audit;
pub mod bench;
pub mod bench_formats;
pub mod cli;
pub mod clock;
pub mod config;
pub mod demo;
pub mod domain;
pub mod engine;
pub mod export;
pub mod failpoint;
pub mod formats;
pub mod imports;
pub mod policy;
pub mod reconcile;
pub mod run;
pub mod service;
pub mod sign;
pub mod store;
pub mod telemetry;
