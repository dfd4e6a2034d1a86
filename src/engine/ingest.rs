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
use std::path::{Path, PathBuf};

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

/// A result file read, hashed and parsed, before the store is asked anything. A file
/// that does not parse keeps its reason: it is refused only if it was not ingested
/// before (a file seen before is a no-op, whatever it holds).
struct PreparedResultFile {
    path: PathBuf,
    sha256: String,
    parsed: Result<ResultFile, String>,
}

/// Reads, hashes and parses one result file (no store: it can run on a thread of its
/// own while an earlier file is applied).
fn prepare_result_file(path: &Path, format: Option<&str>) -> anyhow::Result<PreparedResultFile> {
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
    Ok(PreparedResultFile {
        path: path.to_path_buf(),
        sha256: crate::sign::sha256_hex(&bytes),
        parsed: parse_any(&bytes, format),
    })
}

/// Reads, parses and applies one result file.
pub async fn ingest_file(
    store: &Store,
    actor: &Actor<'_>,
    path: &Path,
    format: Option<&str>,
) -> anyhow::Result<IngestSummary> {
    ingest_prepared(store, actor, prepare_result_file(path, format)?).await
}

/// Ingests files in order, each as `ingest_file` does, reading and parsing the next
/// file on a blocking thread while one is applied (issue #7: parsing was a sixth of a
/// 1M month's ingest). Stops at the first error, as one call per file would: the files
/// after it are not applied (the one parsed ahead is dropped). `each` sees every
/// summary as its file is done.
pub async fn ingest_files(
    store: &Store,
    actor: &Actor<'_>,
    paths: &[PathBuf],
    format: Option<&str>,
    mut each: impl FnMut(IngestSummary),
) -> anyhow::Result<()> {
    let prepare = |path: &PathBuf| {
        let (path, format) = (path.clone(), format.map(str::to_string));
        tokio::task::spawn_blocking(move || prepare_result_file(&path, format.as_deref()))
    };
    let mut ahead = paths.first().map(prepare);
    for index in 0..paths.len() {
        let prepared = ahead
            .take()
            .expect("a file is prepared ahead of each one applied")
            .await??;
        ahead = paths.get(index + 1).map(prepare);
        each(ingest_prepared(store, actor, prepared).await?);
    }
    Ok(())
}

/// Applies one prepared file in one transaction.
async fn ingest_prepared(
    store: &Store,
    actor: &Actor<'_>,
    prepared: PreparedResultFile,
) -> anyhow::Result<IngestSummary> {
    let PreparedResultFile {
        path,
        sha256,
        parsed,
    } = prepared;
    let path = path.as_path();
    let mut summary = IngestSummary {
        file: path.display().to_string(),
        sha256: sha256.clone(),
        ..IngestSummary::default()
    };
    if let Some((name, at)) = store.result_file_by_sha(&sha256).await? {
        summary.duplicate_of = Some(format!("{name} (ingested {at}, same SHA-256)"));
        return Ok(summary);
    }
    let parsed = parsed.map_err(|reason| {
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
        .write(&mut transaction, &parsed, file_id, actor.now_text)
        .await?;
    // No `refresh_statistics` here: export analyzed `payment` already, and analyzing
    // `payment` and `payment_result` after each file cost a 500k month's ingest 2.5 s
    // on PostgreSQL for 0.05 s gained in reconcile (`bench`, twice each way).
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

/// The last result that moved a payment, and the state it left the payment in.
#[derive(Clone, Copy)]
struct Moved {
    /// Index of the result in the file: its reason and serial are stored beside the state.
    result: usize,
    status: &'static str,
}

/// Applies a file's results to the payments it names.
struct ResultApplier<'a> {
    sha256: &'a str,
    summary: &'a mut IngestSummary,
    /// The payments the file names, with `results_seen` folded as results apply.
    payments: Vec<InstructedPayment>,
    /// Per payment: the last result that moved it, if any did.
    moved: Vec<Option<Moved>>,
    /// Per result in the file: what it did.
    outcomes: Vec<&'static str>,
    exceptions: Vec<StoredException>,
    holds: Vec<HouseholdHold>,
    /// Per hold: the payment it follows (its household and account are read once the
    /// file is applied, for these payments only).
    held: Vec<usize>,
}

impl<'a> ResultApplier<'a> {
    fn new(sha256: &'a str, summary: &'a mut IngestSummary) -> ResultApplier<'a> {
        ResultApplier {
            sha256,
            summary,
            payments: Vec::new(),
            moved: Vec::new(),
            outcomes: Vec::new(),
            exceptions: Vec::new(),
            holds: Vec::new(),
            held: Vec::new(),
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
        let ids: Vec<&str> = parsed
            .results
            .iter()
            .map(|r| r.end_to_end_id.as_str())
            .collect();
        // Most files name the batch they answer: its payments are read in one pass, and
        // only ids outside it are looked up one by one.
        let found = transaction
            .payments_for_results(parsed.original_batch_id.as_deref(), &ids)
            .await?;
        self.payments = found.payments;
        self.moved = vec![None; self.payments.len()];
        self.outcomes.reserve(parsed.results.len());
        for (index, (result, payment)) in parsed.results.iter().zip(found.of_id).enumerate() {
            self.summary.results += 1;
            let outcome = self.apply_one(parsed, index, result, payment);
            self.outcomes.push(outcome);
        }
        self.fill_held_accounts(transaction).await
    }

    /// The household and account of each hold, from the payment it follows.
    async fn fill_held_accounts(&mut self, transaction: &mut StoreTx) -> anyhow::Result<()> {
        if self.held.is_empty() {
            return Ok(());
        }
        let ids: Vec<&str> = self
            .held
            .iter()
            .map(|&at| self.payments[at].end_to_end_id.as_str())
            .collect();
        let accounts = transaction.payment_accounts(&ids).await?;
        for (hold, id) in self.holds.iter_mut().zip(&ids) {
            let account = accounts.get(*id).ok_or_else(|| {
                anyhow::anyhow!("payment {id} was found but its household and account were not")
            })?;
            hold.household_id.clone_from(&account.household_id);
            hold.account_number.clone_from(&account.account_number);
        }
        Ok(())
    }

    /// Applies the `index`-th result of the file to the payment it names (`payment`, an
    /// index into `self.payments`, or `None` when no payment has its id).
    fn apply_one(
        &mut self,
        parsed: &ResultFile,
        index: usize,
        result: &PaymentResult,
        payment: Option<usize>,
    ) -> &'static str {
        let batch_hint = parsed.original_batch_id.as_deref().unwrap_or_default();
        let Some(at) = payment else {
            self.exception(
                None,
                ExceptionKind::UnknownPayment,
                batch_hint,
                result,
                format!(
                    "{} result for a payment never instructed",
                    result.status.as_str()
                ),
            );
            return "exception";
        };
        let payment = &self.payments[at];
        let check = if parsed
            .original_batch_id
            .as_ref()
            .is_some_and(|batch| **batch != *payment.batch_id)
        {
            Some((
                ExceptionKind::WrongBatch,
                format!("file answers batch {batch_hint}"),
            ))
        } else if result.amount.is_some_and(|amount| amount != payment.amount) {
            Some((
                ExceptionKind::AmountMismatch,
                format!("instructed {}", payment.amount),
            ))
        } else if result.status == ResultStatus::Returned && &*payment.run_state == "reconciled" {
            // FAILURES #10: a return after the month was reconciled is not applied by
            // itself: the books are closed, so a second person decides.
            Some((
                ExceptionKind::LateReturn,
                format!(
                    "return after run {} was reconciled: a second person decides",
                    payment.run_id
                ),
            ))
        } else {
            None
        };
        if let Some((kind, detail)) = check {
            let (run_id, batch_id) = (payment.run_id.clone(), payment.batch_id.clone());
            self.exception(Some(&*run_id), kind, &batch_id, result, detail);
            return "exception";
        }
        let step = apply_result(ResultsSeen::from_bits(payment.results_seen), result.status);
        self.payments[at].results_seen = step.seen.bits();
        self.moved[at] = Some(Moved {
            result: index,
            status: step.state.as_str(),
        });
        match step.transition {
            Transition::Applied(_) => {
                self.summary.applied += 1;
                self.follow(at, result);
                "applied"
            }
            Transition::Unchanged => {
                self.summary.unchanged += 1;
                "unchanged"
            }
            Transition::Exception(kind) => {
                let payment = &self.payments[at];
                let (run_id, batch_id) = (payment.run_id.clone(), payment.batch_id.clone());
                self.exception(
                    Some(&*run_id),
                    kind,
                    &batch_id,
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
    fn follow(&mut self, at: usize, result: &PaymentResult) {
        let Some(follow) = follow_up(result) else {
            return;
        };
        let payment = &self.payments[at];
        match follow.step {
            NextStep::HoldUntilCorrectedAccount | NextStep::StopHouseholdAndFlag => {
                self.holds.push(HouseholdHold {
                    household_id: String::new(),
                    end_to_end_id: payment.end_to_end_id.clone(),
                    reason_code: follow.reason_code,
                    account_number: String::new(),
                });
                self.held.push(at);
                self.summary.holds += 1;
            }
            NextStep::Exception => {
                let detail = format!(
                    "{} {}",
                    follow.reason_code,
                    follow.reason_text.unwrap_or_default()
                );
                let (run_id, batch_id) = (payment.run_id.clone(), payment.batch_id.clone());
                self.exception(
                    Some(&*run_id),
                    ExceptionKind::FailureNeedsReview,
                    &batch_id,
                    result,
                    detail,
                );
            }
        }
    }

    async fn write(
        &mut self,
        transaction: &mut StoreTx,
        parsed: &ResultFile,
        file_id: i64,
        at: &str,
    ) -> anyhow::Result<()> {
        // One update per payment, with the last result's reason: the state already
        // folds every result of the file.
        let updates: Vec<PaymentUpdate<'_>> = self
            .payments
            .iter()
            .zip(&self.moved)
            .filter_map(|(payment, moved)| {
                let moved = (*moved)?;
                let result = &parsed.results[moved.result];
                Some(PaymentUpdate {
                    payment_key: payment.payment_key,
                    end_to_end_id: &payment.end_to_end_id,
                    status: moved.status,
                    results_seen: payment.results_seen,
                    reason_code: result.reason_code.as_deref(),
                    reason_text: result.reason_text.as_deref().map(mask_digits_in_text),
                    bank_serial: result.bank_serial.as_deref(),
                })
            })
            .collect();
        transaction.update_payments(&updates, file_id).await?;
        drop(updates);
        let lines: Vec<ResultLine<'_>> = parsed
            .results
            .iter()
            .zip(&self.outcomes)
            .map(|(result, &outcome)| ResultLine {
                line: result.line as i64,
                end_to_end_id: &result.end_to_end_id,
                status: result.status.as_str(),
                amount: result.amount,
                reason_code: result.reason_code.as_deref(),
                reason_text: result.reason_text.as_deref().map(mask_digits_in_text),
                bank_serial: result.bank_serial.as_deref(),
                outcome,
            })
            .collect();
        transaction.insert_result_lines(file_id, &lines).await?;
        transaction.insert_exceptions(&self.exceptions, at).await?;
        transaction.insert_household_holds(&self.holds, at).await?;
        Ok(())
    }
}
