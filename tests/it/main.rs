//! The one integration-test binary: drives the real `disburse` binary, and the store on
//! SQLite and on the real PostgreSQL server, each test on fresh databases.

mod cli;
mod export;
mod imports;
mod results;
mod runs;
mod service;
mod support;
