//! Checking an export directory as a bank would (FAILURES #22): `manifest.json` must
//! carry a valid signature (`manifest.json.sig`), be in its canonical form and add up;
//! every file it lists must match its SHA-256, parse back to its record count and total,
//! and carry a valid detached signature (`F.sig`) by the same key. The export engine
//! runs this on its own output before it records the export (fail closed); a bank or an
//! auditor can run it on a copy.
//!
//! Any one flipped byte in a file, a signature or the manifest is caught, and the error
//! names the file.

use crate::domain::money::Fen;
use crate::export::manifest::{Manifest, ManifestFile};
use crate::formats::spec::LayoutKind;
use crate::formats::{load_builtin, parse_payment_file};
use crate::sign::{sha256_hex, VerifyingKey};
use serde::Deserialize;
use std::path::Path;

/// The manifest's file name, and its detached signature's.
pub const MANIFEST: &str = "manifest.json";
pub const MANIFEST_SIGNATURE: &str = "manifest.json.sig";

/// What a verified export holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedExport {
    pub run_id: String,
    pub file_count: usize,
    pub record_count: u64,
    pub total: Fen,
    /// The payment files, in manifest order.
    pub files: Vec<String>,
}

/// Why an export directory is not to be trusted; `file` names the file at fault.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{file}: {reason}")]
pub struct TamperError {
    pub file: String,
    pub reason: String,
}

fn tamper(file: &str, reason: impl Into<String>) -> TamperError {
    TamperError {
        file: file.to_string(),
        reason: reason.into(),
    }
}

/// The manifest as read back (the written `Manifest` has `&'static` parts).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestIn {
    format: String,
    run_id: String,
    run_digest: String,
    month: String,
    file_count: usize,
    record_count: u64,
    total: String,
    total_fen: i64,
    files: Vec<ManifestFileIn>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestFileIn {
    file: String,
    signature_file: String,
    batch_id: String,
    layout: String,
    bank_prefix: String,
    payer_account: String,
    pay_date: String,
    sha256: String,
    record_count: u64,
    total: String,
    total_fen: i64,
    signature_algorithm: String,
    key_id: String,
}

fn read(dir: &Path, name: &str) -> Result<Vec<u8>, TamperError> {
    std::fs::read(dir.join(name)).map_err(|error| tamper(name, format!("cannot read: {error}")))
}

/// A plain file name inside the directory (no path, no hidden or temporary file).
fn plain(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && !name.contains(['/', '\\'])
        && !name.ends_with(".tmp")
}

/// Verifies every file of the export in `dir` against its manifest and `key`.
pub fn verify_directory(dir: &Path, key: &VerifyingKey) -> Result<VerifiedExport, TamperError> {
    let manifest_bytes = read(dir, MANIFEST)?;
    let manifest_signature = read(dir, MANIFEST_SIGNATURE)?;
    key.verify(&manifest_bytes, &manifest_signature)
        .map_err(|_| {
            tamper(
                MANIFEST,
                "its signature (manifest.json.sig) does not verify",
            )
        })?;
    let manifest: ManifestIn = serde_json::from_slice(&manifest_bytes)
        .map_err(|error| tamper(MANIFEST, format!("not a manifest: {error}")))?;
    let manifest = canonical(manifest, &manifest_bytes)?;
    let layouts = load_builtin();
    let mut files = Vec::with_capacity(manifest.files.len());
    for entry in &manifest.files {
        verify_file(dir, key, entry, &layouts)?;
        files.push(entry.file.clone());
    }
    Ok(VerifiedExport {
        run_id: manifest.run_id,
        file_count: manifest.file_count,
        record_count: manifest.record_count,
        total: Fen::new(manifest.total_fen),
        files,
    })
}

/// Rebuilds the manifest from its entries: the sums must agree and the bytes must be
/// exactly what the exporter writes.
fn canonical(read: ManifestIn, bytes: &[u8]) -> Result<Manifest, TamperError> {
    let entries: Vec<ManifestFile> = read
        .files
        .into_iter()
        .map(|f| ManifestFile {
            file: f.file,
            signature_file: f.signature_file,
            batch_id: f.batch_id,
            layout: f.layout,
            bank_prefix: f.bank_prefix,
            payer_account: f.payer_account,
            pay_date: f.pay_date,
            sha256: f.sha256,
            record_count: f.record_count,
            total: f.total,
            total_fen: f.total_fen,
            signature_algorithm: f.signature_algorithm,
            key_id: f.key_id,
        })
        .collect();
    let rebuilt = Manifest::new(&read.run_id, &read.run_digest, &read.month, entries);
    let figures_agree = rebuilt.format == read.format
        && rebuilt.file_count == read.file_count
        && rebuilt.record_count == read.record_count
        && rebuilt.total_fen == read.total_fen
        && rebuilt.total == read.total;
    if !figures_agree {
        return Err(tamper(
            MANIFEST,
            "its file count, record count or total differ from its files",
        ));
    }
    if rebuilt.to_bytes() != bytes {
        return Err(tamper(MANIFEST, "not in the form the exporter writes"));
    }
    Ok(rebuilt)
}

fn verify_file(
    dir: &Path,
    key: &VerifyingKey,
    entry: &ManifestFile,
    layouts: &[crate::formats::Layout],
) -> Result<(), TamperError> {
    let name = entry.file.as_str();
    if !plain(name) || entry.signature_file != format!("{name}.sig") {
        return Err(tamper(MANIFEST, format!("bad file name {name:?}")));
    }
    if entry.total != Fen::new(entry.total_fen).to_yuan_string()
        || !name.starts_with(&entry.batch_id)
    {
        return Err(tamper(MANIFEST, format!("entry {name} contradicts itself")));
    }
    if entry.key_id != key.key_id() || entry.signature_algorithm != key.algorithm().as_str() {
        return Err(tamper(
            MANIFEST,
            format!("entry {name} names another key or algorithm"),
        ));
    }
    let bytes = read(dir, name)?;
    if sha256_hex(&bytes) != entry.sha256 {
        return Err(tamper(name, "SHA-256 differs from the manifest"));
    }
    let signature = read(dir, &entry.signature_file)?;
    key.verify(&bytes, &signature).map_err(|_| {
        tamper(
            &entry.signature_file,
            format!("does not verify over {name}"),
        )
    })?;
    let (count, total) = figures(name, &bytes, &entry.layout, layouts)?;
    if count != entry.record_count || total.as_i64() != entry.total_fen {
        return Err(tamper(
            name,
            format!(
                "holds {count} records totalling {total}; the manifest says {} totalling {}",
                entry.record_count, entry.total
            ),
        ));
    }
    Ok(())
}

/// A file's own record count and total, read back by its layout.
fn figures(
    name: &str,
    bytes: &[u8],
    layout_name: &str,
    layouts: &[crate::formats::Layout],
) -> Result<(u64, Fen), TamperError> {
    let layout = crate::formats::spec::find(layouts, layout_name)
        .ok_or_else(|| tamper(MANIFEST, format!("entry {name}: no layout {layout_name}")))?;
    if layout.kind() == LayoutKind::Iso20022Pain001 {
        return pain001_figures(bytes).ok_or_else(|| tamper(name, "no NbOfTxs/CtrlSum"));
    }
    let parsed = parse_payment_file(layout, bytes)
        .map_err(|error| tamper(name, format!("does not parse: {error}")))?;
    Ok((parsed.record_count, parsed.total))
}

/// The group header's `NbOfTxs` and `CtrlSum` of a pain.001 file (the first of each).
fn pain001_figures(bytes: &[u8]) -> Option<(u64, Fen)> {
    let text = std::str::from_utf8(bytes).ok()?;
    let element = |tag: &str| -> Option<&str> {
        let open = format!("<{tag}>");
        let start = text.find(&open)? + open.len();
        let end = start + text[start..].find('<')?;
        Some(&text[start..end])
    };
    let count = element("NbOfTxs")?.parse().ok()?;
    let total = Fen::parse_yuan(element("CtrlSum")?).ok()?;
    Some((count, total))
}
