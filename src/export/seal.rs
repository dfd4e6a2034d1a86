//! One batch's bank file made ready to leave, without IO: rendered, read back and
//! checked against its plan, hashed (SHA-256) and signed, the signature verified before
//! it is used. `run export` runs this for two batches at a time on blocking threads;
//! `bench --formats-only` runs the very same function, so its figures are export's.
//!
//! **Invariant:** a `SealedFile` exists only if its bytes were read back (every layout)
//! to the plan's count, total, batch id and end_to_end_ids, with its own control figures
//! equal to the sums of its records, and its signature verified over its bytes with the
//! key's public half.

use crate::domain::payment::PaymentBatch;
use crate::export::plan::{check_against_plan, FileFigures, PlannedBatch};
use crate::formats::spec::LayoutKind;
use crate::formats::xml_read::read_pain001;
use crate::formats::{parse_payment_file, render_payment_file, FormatError, Layout, RenderedFile};
use crate::sign::{sha256_hex, SigningKey, VerifyingKey};
use anyhow::Context as _;
use std::borrow::Cow;

/// Batches sealed at once by `run export`: one per core of the two-core machines this
/// runs on. Each holds a batch's payments and its file in memory until it is staged.
pub const SEALS_IN_FLIGHT: usize = 2;

/// A batch's file, checked and signed.
pub struct SealedFile {
    pub rendered: RenderedFile,
    /// Lower-case hex SHA-256 of `rendered.bytes`.
    pub sha256: String,
    /// The detached signature over `rendered.bytes`.
    pub signature: Vec<u8>,
}

/// Why a batch could not be sealed: the batch's values (a refusal naming the household
/// or field), or anything else (a file that disagrees with its plan, a failed signature).
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error(transparent)]
    Render(#[from] FormatError),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// The stages of `seal_batch`, reported to its `lap` as each ends (the benchmark times
/// them; export ignores them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SealStage {
    Render,
    ParseBack,
    Sha256,
    Sign,
}

/// Renders `batch` in `layout`, checks the file against `planned`, hashes and signs it.
/// `existing_signature` (a re-export's `.sig`) is kept when it verifies over the bytes,
/// so a re-export with a randomized scheme (ECDSA) changes no byte.
pub fn seal_batch(
    layout: &Layout,
    planned: &PlannedBatch,
    batch: &PaymentBatch,
    key: &SigningKey,
    existing_signature: Option<&[u8]>,
    lap: &mut dyn FnMut(SealStage),
) -> Result<SealedFile, SealError> {
    let rendered = render_payment_file(layout, batch)?;
    lap(SealStage::Render);
    check_rendered(layout, planned, batch, &rendered)?;
    lap(SealStage::ParseBack);
    let sha256 = sha256_hex(&rendered.bytes);
    lap(SealStage::Sha256);
    let signature = sign_verified(key, &rendered.bytes, existing_signature)?;
    lap(SealStage::Sign);
    Ok(SealedFile {
        rendered,
        sha256,
        signature,
    })
}

/// Before signing, the file must say what the plan says (fail closed): it is read back
/// (tabular layouts by `parse_payment_file`, pain.001 by `read_pain001`), its count and
/// total recomputed from its records and checked against its own control figures, and
/// the count, total, batch id and end_to_end_ids compared with the plan's; the figures
/// the renderer reports are compared too.
pub fn check_rendered(
    layout: &Layout,
    planned: &PlannedBatch,
    batch: &PaymentBatch,
    rendered: &RenderedFile,
) -> anyhow::Result<()> {
    let planned_ids: Vec<&str> = batch
        .payments
        .iter()
        .map(|p| p.end_to_end_id.as_str())
        .collect();
    let rendered_figures = FileFigures {
        record_count: rendered.record_count,
        total: rendered.total,
        end_to_end_ids: None,
    };
    check_against_plan(planned, &planned_ids, &rendered_figures)?;
    let does_not_parse = || {
        format!(
            "batch {}: the rendered file does not parse back",
            planned.batch_id
        )
    };
    let (batch_id, record_count, total, ids) = match layout.kind() {
        LayoutKind::Iso20022Pain001 => {
            let parsed = read_pain001(&rendered.bytes).with_context(does_not_parse)?;
            (
                Some(parsed.batch_id),
                parsed.record_count,
                parsed.total,
                parsed.end_to_end_ids,
            )
        }
        LayoutKind::Delimited | LayoutKind::Fixed => {
            let parsed =
                parse_payment_file(layout, &rendered.bytes).with_context(does_not_parse)?;
            let ids = parsed
                .payments
                .into_iter()
                .map(|payment| payment.end_to_end_id)
                .collect();
            (
                parsed.batch_id.map(Cow::Owned),
                parsed.record_count,
                parsed.total,
                ids,
            )
        }
    };
    if let Some(batch_id) = batch_id.as_deref() {
        anyhow::ensure!(
            batch_id == planned.batch_id,
            "batch {}: the file names batch {batch_id}",
            planned.batch_id
        );
    }
    let parsed_figures = FileFigures {
        record_count,
        total,
        end_to_end_ids: Some(ids.iter().map(AsRef::as_ref).collect()),
    };
    check_against_plan(planned, &planned_ids, &parsed_figures)?;
    Ok(())
}

/// The detached signature over `bytes`: `existing` when it verifies with this key, else
/// a new one, verified before it is used.
///
/// Why verify here when `verify_directory` checks every signature again before export
/// records anything: export stages and publishes the files (renamed into `--out`)
/// before that final check, so this is the only check between signing and a bank being
/// able to read the file. It also keeps a faulty signature (a fault during signing, the
/// way deterministic Ed25519 and RSA-CRT keys are attacked) from leaving the process.
/// It costs one SHA-512 pass over the file for Ed25519 (signing makes two).
pub fn sign_verified(
    key: &SigningKey,
    bytes: &[u8],
    existing: Option<&[u8]>,
) -> anyhow::Result<Vec<u8>> {
    let verifier = VerifyingKey::from_spki_der(key.public_key_spki_der())?;
    if let Some(existing) = existing {
        if verifier.verify(bytes, existing).is_ok() {
            return Ok(existing.to_vec());
        }
    }
    let mut signature = key.sign(bytes)?;
    crate::failpoint::corrupt("seal.bad_signature", &mut signature);
    verifier
        .verify(bytes, &signature)
        .context("a fresh signature does not verify with its own key")?;
    Ok(signature)
}
