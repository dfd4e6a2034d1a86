//! Application services: each verb's work over the store and the pure core, with the
//! audit entry in the same transaction. Business refusals are `Refusal`s (exit 1).

pub mod approve;
pub mod create_run;
pub mod export;
pub mod ingest;
pub mod reconcile;
pub mod work;

pub use crate::cli::Refusal;

/// Aborts a spawned task when dropped: a read-ahead task stops when the side that
/// consumes its reads fails, instead of reading on unheard.
pub(crate) struct AbortOnDrop(pub(crate) tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
