//! Fail points for the crash matrix (FAILURES #2, `tests/it/crash_matrix.rs`): when the
//! environment variable `DISBURSE_FAILPOINT` names a point, the process aborts there
//! (`std::process::abort()`: like kill -9, no destructors run, no buffer is flushed, no
//! transaction is rolled back by us; the database must recover on its own).
//!
//! `DISBURSE_FAILPOINT=NAME` aborts at the first time `NAME` is reached;
//! `DISBURSE_FAILPOINT=NAME@N` at the N-th time (N ≥ 1), e.g. `export.after_stage@3`.
//! The variable is read once per process (a `OnceLock`).
//!
//! Compiled in always, not behind a cargo feature: an unset variable costs one
//! `Option` check per point, the binary the tests crash is the binary that ships, and
//! `cargo test` needs no extra flag. Setting it in production can only do what a power
//! cut does, which the system must survive anyway.
//!
//! The points, in the order a month passes them:
//!
//! | name | where |
//! |---|---|
//! | `import.after_hash` | not an abort: `import` pauses here until a line on stdin (`pause`), the file hashed and not yet imported, before it is read again (the file can be replaced; `it/imports.rs`) |
//! | `import.after_validation` | `import`: pass 1 done (every row valid), nothing committed |
//! | `import.after_batch` | `import`: a batch of rows written inside the transaction, before commit (`@N`: the N-th batch) |
//! | `compute.before_commit` | `run create`: every line, the totals and the audit entry written, before commit |
//! | `approve.before_commit` | `run approve`: the approval and its audit entry written, before commit |
//! | `approve.after_commit` | `run approve`: the approval committed, before the run moves to Approved (a second transaction) |
//! | `export.before_run_lock` | not an abort: `run export` pauses here until a line on stdin (`pause`), its run read and checked, before it takes the run's lock (a cancellation can slip in; `it/work.rs`) |
//! | `export.after_stage` | `run export`: a file or signature written to its temporary name (`.NAME.PID-SET.tmp`) and fsynced, on the thread that writes it while the batch's payments are recorded (`@N`: the N-th staged file) |
//! | `export.after_rename` | `run export`: every file and signature renamed into place, before the manifest |
//! | `export.before_commit` | `run export`: manifest written and verified, batches and payments recorded, before commit |
//! | `export.write_error` | not an abort: the staged write of a file fails with ENOSPC ("no space left on device") after half its bytes (`@N`: the N-th staged file; FAILURES #24) |
//! | `ingest.before_commit` | `returns ingest`: results, exceptions, holds and audit written, before commit |
//! | `seal.bad_signature` | not an abort: one byte of a fresh file signature is flipped before it is checked, as a signing fault would (`@N`: the N-th signature) |

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// The environment variable naming the point to abort at.
pub const ENV: &str = "DISBURSE_FAILPOINT";

/// Every point, for the tests and the docs.
pub const POINTS: &[&str] = &[
    "import.after_hash",
    "import.after_validation",
    "import.after_batch",
    "compute.before_commit",
    "approve.before_commit",
    "approve.after_commit",
    "export.before_run_lock",
    "export.after_stage",
    "export.after_rename",
    "export.before_commit",
    "export.write_error",
    "ingest.before_commit",
    "seal.bad_signature",
];

/// The armed point and the hit on which it fires.
struct Armed {
    name: String,
    on_hit: u64,
    hits: AtomicU64,
}

fn armed() -> Option<&'static Armed> {
    static ARMED: OnceLock<Option<Armed>> = OnceLock::new();
    ARMED
        .get_or_init(|| std::env::var(ENV).ok().and_then(|value| parse(&value)))
        .as_ref()
}

fn parse(value: &str) -> Option<Armed> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    let (name, on_hit) = match value.split_once('@') {
        Some((name, n)) => (name, n.parse::<u64>().ok().filter(|n| *n >= 1)?),
        None => (value, 1),
    };
    Some(Armed {
        name: name.to_string(),
        on_hit,
        hits: AtomicU64::new(0),
    })
}

/// Whether `name` is the armed point and this is the armed hit (counts the hit).
fn fires(name: &str) -> bool {
    debug_assert!(POINTS.contains(&name), "undocumented fail point {name}");
    let Some(armed) = armed() else { return false };
    armed.name == name && armed.hits.fetch_add(1, Ordering::SeqCst) + 1 == armed.on_hit
}

/// Aborts the process if `name` is the armed point and this is the armed hit.
pub fn hit(name: &str) {
    if fires(name) {
        eprintln!("fail point {name} reached: aborting");
        std::process::abort();
    }
}

/// The longest `pause` waits for its go-ahead (a test that never gives one).
pub const PAUSE_MAX: std::time::Duration = std::time::Duration::from_secs(60);

/// If `name` is the armed point and this is the armed hit: says so on stderr, then
/// waits until a line arrives on stdin, stdin closes, or `PAUSE_MAX` passes. A test
/// waits for that stderr line, acts while this process waits, then lets it go on: a
/// handshake, not a race against a fixed sleep.
pub async fn pause(name: &str) {
    if fires(name) {
        eprintln!("fail point {name} reached: pausing until a line on stdin");
        let (go_ahead, went_ahead) = tokio::sync::oneshot::channel();
        // A thread of its own, not the runtime's blocking pool: if no line ever comes,
        // the process still ends without waiting for it.
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = std::io::stdin().read_line(&mut line);
            let _ = go_ahead.send(());
        });
        let _ = tokio::time::timeout(PAUSE_MAX, went_ahead).await;
    }
}

/// An injected IO error (a full disk) if `name` is the armed point and this is the
/// armed hit; the caller handles it like any other write error.
pub fn io_error(name: &str) -> std::io::Result<()> {
    if fires(name) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::StorageFull,
            format!("no space left on device (injected at fail point {name})"),
        ));
    }
    Ok(())
}

/// Flips the last byte of `bytes` if `name` is armed for this hit (the armed hit of
/// `seal.bad_signature`: what a faulty signer would hand back).
pub fn corrupt(name: &str, bytes: &mut [u8]) {
    if fires(name) {
        if let Some(last) = bytes.last_mut() {
            *last ^= 0x01;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_hit_counts_parse() {
        let armed = parse("export.after_stage@3").unwrap();
        assert_eq!(
            (armed.name.as_str(), armed.on_hit),
            ("export.after_stage", 3)
        );
        let armed = parse("compute.before_commit").unwrap();
        assert_eq!(armed.on_hit, 1);
        assert!(parse("").is_none());
        assert!(parse("x@0").is_none());
        assert!(parse("x@y").is_none());
    }

    #[test]
    fn an_unarmed_point_passes() {
        // The test process has no DISBURSE_FAILPOINT naming this point.
        hit("import.after_validation");
    }
}
