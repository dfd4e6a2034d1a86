//! Export of signed bank files (CONTRACTS §3): `plan` (PURE: routes and batches),
//! `manifest` (PURE: the manifest's shape), `files` (the one IO part: atomic writes).
//! The engine (`engine::export`) strings them together with the store and the signer.

pub mod files;
pub mod manifest;
pub mod plan;
