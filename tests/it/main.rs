//! The one integration-test binary: drives the real `disburse` binary and the store on SQLite and PostgreSQL.
