//! The one integration-test binary: drives the real `disburse` binary, and the store on
//! SQLite and on the real PostgreSQL server, each test on fresh databases.

mod bench;
mod cli;
mod crash_matrix;
mod export;
mod hostile;
mod imports;
mod replay;
mod results;
mod runs;
mod service;
mod support;
mod tamper;
mod work;
