//! Export of signed bank files (CONTRACTS §3): `plan` (PURE: routes and batches),
//! `manifest` (PURE: the manifest's shape), `seal` (no IO: one batch's file rendered,
//! read back, checked, hashed and signed), `files` (atomic writes), `verify` (reads an
//! export directory back and checks every file, signature and the manifest).
//! The engine (`engine::export`) strings them together with the store and the signer.

pub mod files;
pub mod manifest;
pub mod plan;
pub mod seal;
pub mod verify;

pub use verify::{verify_directory, TamperError, VerifiedExport};
