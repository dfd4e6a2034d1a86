//! Checking an export directory as a bank would (FAILURES #22): `manifest.json` must
//! carry a valid signature (`manifest.json.sig`), be in its canonical form and add up;
//! every file it lists must match its SHA-256, parse back to its record count and total,
//! and carry a valid detached signature (`F.sig`) by the same key. The export engine
//! runs this on its own output before it records the export (fail closed); a bank or an
//! auditor can run it on a copy.
//!
//! Any one flipped byte in a file, a signature or the manifest is caught, and the error
//! names the file.
//!
//! Files are checked `VERIFY_THREADS` at a time (hashing, verifying and parsing are CPU
//! work, and export waits for this before it records anything); the error reported is
//! still the first failing file in manifest order, whichever thread finished first.

use crate::domain::money::Fen;
use crate::export::manifest::{Manifest, ManifestFile};
use crate::formats::spec::LayoutKind;
use crate::formats::{load_builtin, parse_payment_file};
use crate::sign::{sha256_hex, VerifyingKey};
use serde::Deserialize;
use std::borrow::Cow;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Files checked at once: one per core of the two-core machines export runs on, as
/// `export::seal::SEALS_IN_FLIGHT`. Each holds one file and its signature in memory.
pub const VERIFY_THREADS: usize = 2;

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

fn read(dir: &Path, name: &str) -> Result<Cow<'static, [u8]>, TamperError> {
    std::fs::read(dir.join(name))
        .map(Cow::Owned)
        .map_err(|error| tamper(name, format!("cannot read: {error}")))
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
    verify_files(dir, key, &manifest.files, &layouts)?;
    let files = manifest
        .files
        .iter()
        .map(|entry| entry.file.clone())
        .collect();
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

/// Checks every entry's file, `VERIFY_THREADS` at a time; the error is the first
/// failing entry's in manifest order.
///
/// Why that is deterministic: entries are handed out in manifest order by one counter,
/// and a thread stops taking entries only past the earliest failure seen, so every entry
/// before the earliest failure is checked to the end; the lowest failing index is the
/// one a single thread checking in order would have reported.
fn verify_files(
    dir: &Path,
    key: &VerifyingKey,
    entries: &[ManifestFile],
    layouts: &[crate::formats::Layout],
) -> Result<(), TamperError> {
    let next = AtomicUsize::new(0);
    let first_failure = AtomicUsize::new(usize::MAX);
    let check = || -> Vec<(usize, TamperError)> {
        let mut failures = Vec::new();
        loop {
            let index = next.fetch_add(1, Ordering::SeqCst);
            let Some(entry) = entries.get(index) else {
                break;
            };
            if index > first_failure.load(Ordering::SeqCst) {
                break;
            }
            if let Err(error) = verify_file(key, entry, layouts, |name| read(dir, name)) {
                first_failure.fetch_min(index, Ordering::SeqCst);
                failures.push((index, error));
            }
        }
        failures
    };
    let mut failures = std::thread::scope(|scope| {
        let helpers: Vec<_> = (1..VERIFY_THREADS.min(entries.len()))
            .map(|_| scope.spawn(check))
            .collect();
        let mut failures = check();
        for helper in helpers {
            match helper.join() {
                Ok(more) => failures.extend(more),
                // A panic is a bug, not a verdict on the files: carry it on.
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        failures
    });
    failures.sort_by_key(|(index, _)| *index);
    match failures.into_iter().next() {
        Some((_, error)) => Err(error),
        None => Ok(()),
    }
}

/// One payment file checked as `verify_directory` checks it, from bytes already in
/// memory (`bench --formats-only` times export's final check with this).
pub fn verify_file_bytes(
    key: &VerifyingKey,
    entry: &ManifestFile,
    layouts: &[crate::formats::Layout],
    bytes: &[u8],
    signature: &[u8],
) -> Result<(), TamperError> {
    verify_file(key, entry, layouts, |name| {
        if name == entry.file {
            Ok(Cow::Borrowed(bytes))
        } else {
            Ok(Cow::Borrowed(signature))
        }
    })
}

/// One entry's file and signature, each read by `read` when its check is reached (so a
/// missing signature is reported only for a file whose bytes match).
fn verify_file<'b>(
    key: &VerifyingKey,
    entry: &ManifestFile,
    layouts: &[crate::formats::Layout],
    read: impl Fn(&str) -> Result<Cow<'b, [u8]>, TamperError>,
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
    let bytes = read(name)?;
    if sha256_hex(&bytes) != entry.sha256 {
        return Err(tamper(name, "SHA-256 differs from the manifest"));
    }
    let signature = read(&entry.signature_file)?;
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

/// The group header's `NbOfTxs` and `CtrlSum` of a pain.001 file (the first of each), in
/// a file that is UTF-8 throughout. The UTF-8 check is `encoding_rs`'s SIMD validator
/// over the bytes, not `str::from_utf8`: validating was nearly all this function's time
/// (0.7 ms against 1.5 ms on a 26 MiB file), and it accepts and refuses the same bytes.
fn pain001_figures(bytes: &[u8]) -> Option<(u64, Fen)> {
    if encoding_rs::Encoding::utf8_valid_up_to(bytes) != bytes.len() {
        return None;
    }
    let element = |tag: &str| -> Option<&str> {
        let open = format!("<{tag}>");
        let start = memchr::memmem::find(bytes, open.as_bytes())? + open.len();
        let rest = bytes.get(start..)?;
        let end = memchr::memchr(b'<', rest)?;
        // Between an ASCII `>` and `<` of a UTF-8 file: always text.
        std::str::from_utf8(rest.get(..end)?).ok()
    };
    let count = element("NbOfTxs")?.parse().ok()?;
    let total = Fen::parse_yuan(element("CtrlSum")?).ok()?;
    Some((count, total))
}
