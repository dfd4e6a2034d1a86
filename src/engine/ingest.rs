//! `returns ingest`: bank result files applied exactly once (CONTRACTS §3.4, FAILURES
//! #6–#11). A file seen before (same SHA-256, or same bank file id) changes nothing; a
//! result for an unknown payment, a duplicate or a conflict becomes an exception; a
//! payment's state follows the set of results received, so order does not matter and
//! nothing goes backwards; a failure holds the household or stops it for the next
//! run. One transaction per file.

use crate::domain::bank_result::{PaymentResult, ResultFile, ResultStatus};
use crate::domain::mask::mask_digits_in_text;
use crate::engine::approve::Actor;
use crate::engine::Refusal;
use crate::formats::xml_results::{detect_xml_result_format, parse_xml_result};
use crate::formats::{load_builtin, parse_result_file, spec::find};
use crate::reconcile::exception::ExceptionKind;
use crate::reconcile::next_step::{follow_up, NextStep};
use crate::reconcile::state::{apply_result, ResultsSeen, Transition};
use crate::store::{
    HouseholdHold, InstructedPayment, PaymentUpdate, ResultLine, Store, StoreTx, StoredException,
    TxLock,
};
use std::collections::HashMap;
use std::path::Path;

/// The largest result file read (the XML reader's own limit is the same).
pub const RESULT_FILE_BYTES_MAX: u64 = 64 * 1024 * 1024;

/// What one file did.
#[derive(Debug, Default, serde::Serialize)]
pub struct IngestSummary {
    pub file: String,
    pub sha256: String,
    pub format: String,
    /// Set when the file was ingested before: nothing changed.
    pub duplicate_of: Option<String>,
    pub results: u64,
    pub applied: u64,
    pub unchanged: u64,
    pub exceptions: u64,
    pub holds: u64,
}

/// Reads, parses and applies one result file.
pub async fn ingest_file(
    store: &Store,
    actor: &Actor<'_>,
    path: &Path,
    format: Option<&str>,
) -> anyhow::Result<IngestSummary> {
    let size = std::fs::metadata(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?
        .len();
    if size > RESULT_FILE_BYTES_MAX {
        return Err(Refusal::message(format!(
            "{}: {size} bytes, above the {RESULT_FILE_BYTES_MAX}-byte limit",
            path.display()
        ))
        .into());
    }
    let bytes = std::fs::read(path)?;
    let sha256 = crate::sign::sha256_hex(&bytes);
    let mut summary = IngestSummary {
        file: path.display().to_string(),
        sha256: sha256.clone(),
        ..IngestSummary::default()
    };
    if let Some((name, at)) = store.result_file_by_sha(&sha256).await? {
        summary.duplicate_of = Some(format!("{name} (ingested {at}, same SHA-256)"));
        return Ok(summary);
    }
    let parsed = parse_any(&bytes, format).map_err(|reason| {
        Refusal::message(format!("{}: {reason}; nothing was applied", path.display()))
    })?;
    summary.format = parsed.format.clone();
    if let Some(bank_file_id) = &parsed.bank_file_id {
        if let Some((name, at)) = store
            .result_file_by_bank_id(&parsed.format, bank_file_id)
            .await?
        {
            summary.duplicate_of = Some(format!(
                "{name} (ingested {at}, same bank file id {bank_file_id})"
            ));
            return Ok(summary);
        }
    }
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let mut transaction = store.begin().await?;
    // PostgreSQL: serialise ingests, so two files answering one payment fold their
    // results in turn (SQLite's BEGIN IMMEDIATE already does).
    transaction.lock(TxLock::Ingest).await?;
    let mut applier = ResultApplier::new(&sha256, &mut summary);
    applier.file_level_checks(store, &parsed).await?;
    applier.apply(&mut transaction, &parsed).await?;
    let file_id = transaction
        .insert_result_file(
            &sha256,
            &parsed.format,
            parsed.bank_file_id.as_deref(),
            parsed.original_batch_id.as_deref(),
            &file_name,
            parsed.results.len() as i64,
            actor.user,
            actor.now_text,
        )
        .await?;
    applier
        .write(&mut transaction, file_id, actor.now_text)
        .await?;
    let detail = format!(
        "file={file_name} format={} results={} applied={} exceptions={} holds={}",
        parsed.format, summary.results, summary.applied, summary.exceptions, summary.holds
    );
    transaction
        .append_audit(
            actor.now_text,
            actor.user,
            "returns.ingest",
            &sha256,
            &detail,
        )
        .await?;
    crate::failpoint::hit("ingest.before_commit");
    transaction.commit().await?;
    Ok(summary)
}

/// Parses by the named format, or detects it: XML (pain.002, camt.054), else the
/// tabular result layouts of `bank-formats/`.
fn parse_any(bytes: &[u8], format: Option<&str>) -> Result<ResultFile, String> {
    let layouts = load_builtin();
    let tabular = |name: &str| -> Result<ResultFile, String> {
        let layout =
            find(&layouts, name).ok_or_else(|| format!("no layout {name:?} in bank-formats"))?;
        parse_result_file(layout, bytes).map_err(|error| error.to_string())
    };
    match format {
        Some(name) if name.starts_with("pain.002") || name.starts_with("camt.054") => {
            parse_xml_result(bytes).map_err(|e| e.to_string())
        }
        Some(name) => tabular(name),
        None if detect_xml_result_format(bytes).is_some()
            || bytes.trim_ascii_start().starts_with(b"<") =>
        {
            parse_xml_result(bytes).map_err(|e| e.to_string())
        }
        None if bytes.starts_with(b"H|") => tabular("bank-result-pipe-gbk"),
        None if bytes.starts_with(b"1") => tabular("rcc-result-fixed-gbk"),
        None => Err("cannot tell the format: name it with --format".into()),
    }
}

/// A payment a result moved, with the reason and serial to store beside its state.
struct ChangedPayment {
    end_to_end_id: String,
    reason_code: Option<String>,
    reason_text: Option<String>,
    bank_serial: Option<String>,
}

/// Applies a file's results to the payments it names.
struct ResultApplier<'a> {
    sha256: &'a str,
    summary: &'a mut IngestSummary,
    payments: HashMap<String, InstructedPayment>,
    changed: Vec<ChangedPayment>,
    lines: Vec<ResultLine>,
    exceptions: Vec<StoredException>,
    holds: Vec<HouseholdHold>,
}

impl<'a> ResultApplier<'a> {
    fn new(sha256: &'a str, summary: &'a mut IngestSummary) -> ResultApplier<'a> {
        ResultApplier {
            sha256,
            summary,
            payments: HashMap::new(),
            changed: Vec::new(),
            lines: Vec::new(),
            exceptions: Vec::new(),
            holds: Vec::new(),
        }
    }

    fn exception(
        &mut self,
        run_id: Option<&str>,
        kind: ExceptionKind,
        batch_id: &str,
        result: &PaymentResult,
        detail: String,
    ) {
        self.exceptions.push(StoredException {
            run_id: run_id.map(str::to_string),
            kind: kind.as_str().to_string(),
            batch_id: batch_id.to_string(),
            end_to_end_id: result.end_to_end_id.clone(),
            voucher_no: String::new(),
            amount: result.amount,
            detail: mask_digits_in_text(&detail),
            source: self.sha256.to_string(),
        });
        self.summary.exceptions += 1;
    }

    /// The file against the batch it answers: count and total (FAILURES #5, §3.4).
    async fn file_level_checks(
        &mut self,
        store: &Store,
        parsed: &ResultFile,
    ) -> anyhow::Result<()> {
        let Some(batch_id) = &parsed.original_batch_id else {
            return Ok(());
        };
        let Some(batch) = store.batch_record(batch_id).await? else {
            return Ok(());
        };
        let count = parsed.results.len() as i64;
        let total: i64 = parsed
            .results
            .iter()
            .filter_map(|r| r.amount)
            .map(|a| a.as_i64())
            .sum();
        let has_amounts = parsed.results.iter().all(|r| r.amount.is_some());
        if count != batch.record_count || (has_amounts && total != batch.total_fen) {
            self.exceptions.push(StoredException {
                run_id: Some(batch.run_id.clone()),
                kind: ExceptionKind::ResultFileMismatch.as_str().into(),
                batch_id: batch_id.clone(),
                end_to_end_id: String::new(),
                voucher_no: String::new(),
                amount: None,
                detail: format!("file answers {count} payments (total fen {total}); batch has {} (total fen {})", batch.record_count, batch.total_fen),
                source: self.sha256.to_string(),
            });
            self.summary.exceptions += 1;
        }
        Ok(())
    }

    async fn apply(
        &mut self,
        transaction: &mut StoreTx,
        parsed: &ResultFile,
    ) -> anyhow::Result<()> {
        let ids: Vec<String> = parsed
            .results
            .iter()
            .map(|r| r.end_to_end_id.clone())
            .collect();
        self.payments = transaction.payments_by_id(&ids).await?;
        for result in &parsed.results {
            self.summary.results += 1;
            let outcome = self.apply_one(parsed, result);
            self.lines.push(ResultLine {
                line: result.line as i64,
                end_to_end_id: result.end_to_end_id.clone(),
                status: result.status.as_str().to_string(),
                amount: result.amount,
                reason_code: result.reason_code.clone(),
                reason_text: result.reason_text.as_deref().map(mask_digits_in_text),
                bank_serial: result.bank_serial.clone(),
                outcome,
            });
        }
        Ok(())
    }

    fn apply_one(&mut self, parsed: &ResultFile, result: &PaymentResult) -> &'static str {
        let batch_hint = parsed.original_batch_id.clone().unwrap_or_default();
        let Some(payment) = self.payments.get(&result.end_to_end_id).cloned() else {
            self.exception(
                None,
                ExceptionKind::UnknownPayment,
                &batch_hint,
                result,
                format!(
                    "{} result for a payment never instructed",
                    result.status.as_str()
                ),
            );
            return "exception";
        };
        if parsed
            .original_batch_id
            .as_ref()
            .is_some_and(|batch| *batch != payment.batch_id)
        {
            self.exception(
                Some(&payment.run_id),
                ExceptionKind::WrongBatch,
                &payment.batch_id,
                result,
                format!("file answers batch {batch_hint}"),
            );
            return "exception";
        }
        if result.amount.is_some_and(|amount| amount != payment.amount) {
            self.exception(
                Some(&payment.run_id),
                ExceptionKind::AmountMismatch,
                &payment.batch_id,
                result,
                format!("instructed {}", payment.amount),
            );
            return "exception";
        }
        // FAILURES #10: a return after the month was reconciled is not applied by
        // itself: the books are closed, so a second person decides.
        if result.status == ResultStatus::Returned && payment.run_state == "reconciled" {
            let detail = format!(
                "return after run {} was reconciled: a second person decides",
                payment.run_id
            );
            self.exception(
                Some(&payment.run_id),
                ExceptionKind::LateReturn,
                &payment.batch_id,
                result,
                detail,
            );
            return "exception";
        }
        let step = apply_result(ResultsSeen::from_bits(payment.results_seen), result.status);
        let updated = InstructedPayment {
            status: step.state.as_str().to_string(),
            results_seen: step.seen.bits(),
            ..payment.clone()
        };
        self.payments.insert(payment.end_to_end_id.clone(), updated);
        self.changed.push(ChangedPayment {
            end_to_end_id: payment.end_to_end_id.clone(),
            reason_code: result.reason_code.clone(),
            reason_text: result.reason_text.clone(),
            bank_serial: result.bank_serial.clone(),
        });
        match step.transition {
            Transition::Applied(_) => {
                self.summary.applied += 1;
                self.follow(&payment, result);
                "applied"
            }
            Transition::Unchanged => {
                self.summary.unchanged += 1;
                "unchanged"
            }
            Transition::Exception(kind) => {
                self.exception(
                    Some(&payment.run_id),
                    kind,
                    &payment.batch_id,
                    result,
                    format!("now {}", step.state.as_str()),
                );
                "exception"
            }
        }
    }

    /// What a failure leads to (§3.4): an account problem holds the household until
    /// civil affairs sends a corrected account; a death stops it; anything else is a
    /// person's to decide.
    fn follow(&mut self, payment: &InstructedPayment, result: &PaymentResult) {
        let Some(follow) = follow_up(result) else {
            return;
        };
        match follow.step {
            NextStep::HoldUntilCorrectedAccount | NextStep::StopHouseholdAndFlag => {
                self.holds.push(HouseholdHold {
                    household_id: payment.household_id.clone(),
                    end_to_end_id: payment.end_to_end_id.clone(),
                    reason_code: follow.reason_code,
                    account_number: payment.account_number.clone(),
                });
                self.summary.holds += 1;
            }
            NextStep::Exception => {
                let detail = format!(
                    "{} {}",
                    follow.reason_code,
                    follow.reason_text.unwrap_or_default()
                );
                self.exception(
                    Some(&payment.run_id),
                    ExceptionKind::FailureNeedsReview,
                    &payment.batch_id,
                    result,
                    detail,
                );
            }
        }
    }

    async fn write(
        &mut self,
        transaction: &mut StoreTx,
        file_id: i64,
        at: &str,
    ) -> anyhow::Result<()> {
        // One update per payment, with the last result's reason: the state already
        // folds every result of the file.
        let mut updates: Vec<PaymentUpdate> = Vec::new();
        let mut position: HashMap<String, usize> = HashMap::new();
        for change in std::mem::take(&mut self.changed) {
            let payment = &self.payments[&change.end_to_end_id];
            let update = PaymentUpdate {
                end_to_end_id: change.end_to_end_id.clone(),
                status: payment.status.clone(),
                results_seen: payment.results_seen,
                reason_code: change.reason_code,
                reason_text: change.reason_text.as_deref().map(mask_digits_in_text),
                bank_serial: change.bank_serial,
            };
            match position.get(&change.end_to_end_id) {
                Some(&index) => updates[index] = update,
                None => {
                    position.insert(change.end_to_end_id, updates.len());
                    updates.push(update);
                }
            }
        }
        transaction
            .update_payments(&updates, self.sha256, at)
            .await?;
        transaction
            .insert_result_lines(file_id, &self.lines)
            .await?;
        transaction.insert_exceptions(&self.exceptions, at).await?;
        transaction.insert_household_holds(&self.holds, at).await?;
        Ok(())
    }
}
