//! Logs: tracing to stderr, level from `DISBURSE_LOG` (or `RUST_LOG`), default `info`.
//! Personal data never reaches a log line: callers log ids, counts and hashes, and any
//! value that might carry an ID or account number is masked first (P13).

use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter = std::env::var("DISBURSE_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".to_string());
    let _ignored_if_already_set = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
