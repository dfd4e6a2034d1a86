//! `run export`: signed payment files for every bank route (CONTRACTS §3). Refuses a
//! run whose approvals do not cover its digest and a key readable by others; plans the
//! batches from the run's `pay` lines; renders, re-reads and checks each file against
//! its plan before signing (fail closed); stages every file and signature, publishes
//! them together, writes the manifest, and only then records batches and payments and
//! moves the run to Exported, in one transaction with the audit entry.
//!
//! **Invariants:** nothing is visible in `--out` and nothing is recorded unless every
//! file rendered and checked; a re-export gives the same bytes (timestamps come from
//! the run, never the clock) and must match what was recorded; memory holds a few
//! batches, never the run: `SEALS_IN_FLIGHT` being sealed and, per route, the one
//! being filled. The pay lines are read once for planning and once for the files,
//! whatever the number of routes.
//!
//! Why batches are sealed on other threads: rendering, reading back, hashing and
//! signing a file is CPU work (signing hashes every byte with SHA-512 three times, with
//! the check), and a machine's second core does the next batch's while the first
//! reads lines and records payments. Files are staged and recorded in plan order, so
//! the result is byte for byte what one thread gives.

use crate::config::{Config, Route};
use crate::domain::money::Fen;
use crate::domain::month::parse_date;
use crate::domain::payment::{PaymentBatch, PaymentInstruction};
use crate::engine::approve::{approvals_complete, load_run};
use crate::engine::{AbortOnDrop, Refusal};
use crate::export::files::StagedFiles;
use crate::export::manifest::{Manifest, ManifestFile};
use crate::export::plan::{file_name, route_index, BatchPlanner, PlannedBatch};
use crate::export::seal::{seal_batch, sign_verified, SealError, SealedFile, SEALS_IN_FLIGHT};
use crate::export::verify::{MANIFEST, MANIFEST_SIGNATURE};
use crate::formats::{load_builtin, Layout};
use crate::run::{next_state, RunEvent, RunState};
use crate::sign::{sha256_hex, SigningKey, VerifyingKey};
use crate::store::{BatchRecord, PaymentRecord, RunRecord, Store, StoreTx};
use anyhow::Context as _;
use compact_str::CompactString;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::task::JoinHandle;

/// Lines read per page while planning and building batches.
const LINES_PAGE: i64 = 10_000;

/// What to export, by whom.
pub struct ExportRequest<'a> {
    pub run_id: &'a str,
    pub out_dir: &'a Path,
    /// `--key`; else the configured `[keys] signing_key`.
    pub key_path: Option<&'a Path>,
    pub user: &'a str,
    pub now_text: &'a str,
}

/// What an export did.
pub struct ExportOutcome {
    pub run: RunRecord,
    pub manifest: Manifest,
    /// The run had been exported before; the files were written again, identical.
    pub reexport: bool,
    pub manifest_path: PathBuf,
}

/// A route with its layout resolved.
struct ResolvedRoute<'a> {
    route: &'a Route,
    layout: &'a Layout,
}

pub async fn export_run(
    store: &Store,
    config: &Config,
    request: &ExportRequest<'_>,
) -> anyhow::Result<ExportOutcome> {
    let run = load_run(store, request.run_id).await?;
    let (state, next) = check_exportable(store, &run).await?;
    let key = Arc::new(load_key(config, request.key_path)?);
    let layouts = load_builtin();
    let routes = resolve_routes(&config.routes, &layouts)?;
    let plan = plan_run(store, &run, &config.routes).await?;
    let recorded = store.batches_of_run(&run.run_id).await?;
    let reexport = state == RunState::Exported;
    if reexport {
        check_plan_matches_record(&run, &plan, &recorded, &routes)?;
    } else {
        anyhow::ensure!(
            recorded.is_empty(),
            "run {} is not exported yet has recorded batches",
            run.run_id
        );
    }
    crate::failpoint::pause("export.before_run_lock").await;
    let mut transaction = store.begin().await?;
    transaction.lock_run(run.run_no).await?;
    // A cancellation that committed since the run was read above must stop the export
    // before any file is staged: a cancelled run's files must never appear.
    let state_now = transaction.run_state(&run.run_id).await?;
    if state_now.as_deref() != Some(state.as_str()) {
        return Err(Refusal::message(format!(
            "run {} changed to {} while its export was starting; nothing was written",
            run.run_id,
            state_now.as_deref().unwrap_or("missing")
        ))
        .into());
    }
    let mut kept = KeptBatches {
        run_no: run.run_no,
        staged: StagedFiles::new(request.out_dir)?,
        manifest_files: vec![None; plan.len()],
        recorded: if reexport { Some(&recorded) } else { None },
    };
    // Pass 2 reads the lines once; each batch is sealed on a blocking thread as soon as
    // its last line is read, at most `SEALS_IN_FLIGHT` at a time.
    let mut sealing: VecDeque<(usize, PendingBatch)> = VecDeque::with_capacity(SEALS_IN_FLIGHT);
    let mut batches = BatchAssembler::new(run.clone(), &config.routes, &plan)?;
    let (mut pages, _stop_reading) = read_pay_line_pages(store, &run.run_id);
    while let Some(page) = pages.recv().await {
        let page = page?;
        for line in &page {
            let Some((index, batch, line_nos)) = batches.push(line)? else {
                continue;
            };
            let planned = &plan[index];
            let resolved = &routes[planned.route_index];
            let pending = start_batch(
                &run,
                resolved,
                planned,
                batch,
                line_nos,
                &key,
                request.out_dir,
            );
            sealing.push_back((index, pending));
            if sealing.len() == SEALS_IN_FLIGHT {
                if let Some((index, pending)) = sealing.pop_front() {
                    let exported = pending.finish(&run.run_id).await?;
                    kept.keep(&mut transaction, index, exported, request)
                        .await?;
                }
            }
        }
    }
    batches.finish()?;
    while let Some((index, pending)) = sealing.pop_front() {
        let exported = pending.finish(&run.run_id).await?;
        kept.keep(&mut transaction, index, exported, request)
            .await?;
    }
    if !reexport {
        let payments = u64::try_from(run.pay_count).expect("a count is not negative");
        transaction.refresh_statistics("payment", payments).await?;
    }
    let KeptBatches {
        staged,
        manifest_files,
        ..
    } = kept;
    let manifest_files: Vec<ManifestFile> = manifest_files
        .into_iter()
        .collect::<Option<_>>()
        .context("a planned batch was never filled; nothing was recorded")?;
    staged.publish()?;
    crate::failpoint::hit("export.after_rename");
    let manifest = Manifest::new(&run.run_id, &run.digest, &run.month, manifest_files);
    let manifest_bytes = manifest.to_bytes();
    write_manifest(request.out_dir, &key, &manifest_bytes)?;
    let verifier = VerifyingKey::from_spki_der(key.public_key_spki_der())?;
    crate::export::verify::verify_directory(request.out_dir, &verifier)
        .context("the export does not verify; nothing was recorded")?;
    record_export(
        &mut transaction,
        &run,
        state,
        next,
        &manifest,
        &sha256_hex(&manifest_bytes),
        &key,
        request,
    )
    .await?;
    crate::failpoint::hit("export.before_commit");
    transaction.commit().await?;
    tracing::info!(run_id = %run.run_id, files = manifest.file_count, total = %manifest.total, "run exported");
    Ok(ExportOutcome {
        run: load_run(store, request.run_id).await?,
        manifest,
        reexport,
        manifest_path: request.out_dir.join("manifest.json"),
    })
}

/// The run must be Approved (or Exported, for a re-export) and its approvals must cover
/// its current digest. Returns the state now and after export.
async fn check_exportable(store: &Store, run: &RunRecord) -> anyhow::Result<(RunState, RunState)> {
    let state = run.state()?;
    let next = next_state(state, RunEvent::Export).map_err(|_| {
        Refusal::message(format!(
            "run {} is {}: only an approved run can be exported; nothing was written",
            run.run_id,
            state.as_str()
        ))
    })?;
    if !approvals_complete(store, run).await? {
        return Err(Refusal::message(format!(
            "run {}: its approvals do not cover its current digest {}; nothing was written",
            run.run_id, run.digest
        ))
        .into());
    }
    Ok((state, next))
}

fn load_key(config: &Config, key_path: Option<&Path>) -> anyhow::Result<SigningKey> {
    let path = key_path
        .map(Path::to_path_buf)
        .or_else(|| config.keys.signing_key.clone())
        .ok_or_else(|| {
            Refusal::message(
                "no signing key: pass --key FILE or set [keys] signing_key in the configuration",
            )
        })?;
    Ok(SigningKey::load(&path).map_err(|error| {
        Refusal::message(format!("signing key refused: {error}; nothing was written"))
    })?)
}

fn resolve_routes<'a>(
    routes: &'a [Route],
    layouts: &'a [Layout],
) -> anyhow::Result<Vec<ResolvedRoute<'a>>> {
    routes
        .iter()
        .map(|route| {
            let layout = crate::formats::spec::find(layouts, &route.layout).with_context(|| {
                format!("route {:?}: no layout {}", route.bank_prefix, route.layout)
            })?;
            Ok(ResolvedRoute { route, layout })
        })
        .collect()
}

/// Pages of pay lines read ahead of the one being assembled: one, so two pages at most
/// wait in memory.
const PAGES_READ_AHEAD: usize = 1;

/// A run's `pay` lines in line order, a page at a time, read by a task of its own (on a
/// pool connection, as before) so that reading the next page overlaps assembling and
/// recording the last. Ends at the last page or the first error, or when no one listens.
fn read_pay_line_pages(
    store: &Store,
    run_id: &str,
) -> (
    tokio::sync::mpsc::Receiver<anyhow::Result<Vec<crate::run::RunLine>>>,
    AbortOnDrop,
) {
    let (sender, pages) = tokio::sync::mpsc::channel(PAGES_READ_AHEAD);
    let (store, run_id) = (store.clone(), run_id.to_string());
    let reader = tokio::spawn(async move {
        let mut after_line_no = 0;
        loop {
            let page = match store
                .run_pay_lines_page(&run_id, after_line_no, LINES_PAGE)
                .await
            {
                Ok(page) => page,
                Err(error) => {
                    let _ = sender.send(Err(error.into())).await;
                    return;
                }
            };
            let Some(last) = page.last() else {
                return;
            };
            after_line_no = last.line_no;
            if sender.send(Ok(page)).await.is_err() {
                return;
            }
        }
    });
    (pages, AbortOnDrop(reader.abort_handle()))
}

/// Pass 1: the batches, from counts and totals only; refuses before anything is written
/// if they do not add up to the run's payable count and total.
async fn plan_run(
    store: &Store,
    run: &RunRecord,
    routes: &[Route],
) -> anyhow::Result<Vec<PlannedBatch>> {
    let mut planner = BatchPlanner::new(routes, run.run_no);
    let mut after_line_no = 0;
    loop {
        let page = store
            .run_pay_line_amounts_page(&run.run_id, after_line_no, LINES_PAGE)
            .await?;
        let Some(last) = page.last() else {
            break;
        };
        after_line_no = last.line_no;
        for line in &page {
            planner
                .push(line.line_no, &line.bank_code, line.payable)
                .map_err(|error| {
                    Refusal::message(format!("run {}: {error}; nothing was written", run.run_id))
                })?;
        }
    }
    let plan = planner.finish();
    let planned_count: i64 = plan.iter().map(|b| i64::from(b.record_count)).sum();
    let planned_total: Fen = plan.iter().map(|b| b.total).sum();
    anyhow::ensure!(
        planned_count == run.pay_count && planned_total == Fen::new(run.payable_fen),
        "run {}: its pay lines ({planned_count}, {planned_total}) differ from its totals ({}, {}); nothing was written",
        run.run_id,
        run.pay_count,
        Fen::new(run.payable_fen)
    );
    Ok(plan)
}

/// A re-export must plan the very batches that were recorded (same routes, same lines).
fn check_plan_matches_record(
    run: &RunRecord,
    plan: &[PlannedBatch],
    recorded: &[BatchRecord],
    routes: &[ResolvedRoute<'_>],
) -> anyhow::Result<()> {
    let planned: Vec<_> = plan
        .iter()
        .map(|b| {
            (
                b.batch_id.as_str(),
                routes[b.route_index].route.layout.as_str(),
                i64::from(b.record_count),
                b.total.as_i64(),
            )
        })
        .collect();
    let stored: Vec<_> = recorded
        .iter()
        .map(|b| {
            (
                b.batch_id.as_str(),
                b.layout.as_str(),
                b.record_count,
                b.total_fen,
            )
        })
        .collect();
    anyhow::ensure!(
        planned == stored,
        "run {} was exported as {stored:?} but now plans {planned:?} (were the routes changed?); nothing was written",
        run.run_id
    );
    Ok(())
}

/// One batch rendered, checked and signed.
struct ExportedBatch {
    record: BatchRecord,
    bytes: Vec<u8>,
    signature: Vec<u8>,
    /// The batch's instructions, handed back by the sealing thread: the payments are
    /// recorded from them (with `line_nos`), so each payment's text is held once.
    batch: PaymentBatch,
    /// Each instruction's run line, in batch order.
    line_nos: Vec<i64>,
}

impl ExportedBatch {
    /// The payments to record, in batch order.
    fn payment_records(&self) -> impl Iterator<Item = PaymentRecord<'_>> {
        assert_eq!(
            self.batch.payments.len(),
            self.line_nos.len(),
            "a line number per instruction"
        );
        self.batch
            .payments
            .iter()
            .zip(&self.line_nos)
            .map(|(payment, line_no)| PaymentRecord {
                end_to_end_id: &payment.end_to_end_id,
                line_no: *line_no,
                household_id: &payment.household_id,
                bank_code: &payment.bank_code,
                amount_fen: payment.amount.as_i64(),
            })
    }
}

/// A batch read from the store whose file is being sealed on a blocking thread.
struct PendingBatch {
    /// The batch's record, but for the SHA-256 of its file.
    record: BatchRecord,
    line_nos: Vec<i64>,
    sealing: JoinHandle<Result<(SealedFile, PaymentBatch), SealError>>,
}

/// Reads one batch's lines and starts sealing its file (render, read back and check,
/// hash, sign) on a blocking thread.
fn start_batch(
    run: &RunRecord,
    resolved: &ResolvedRoute<'_>,
    planned: &PlannedBatch,
    batch: PaymentBatch,
    line_nos: Vec<i64>,
    key: &Arc<SigningKey>,
    out_dir: &Path,
) -> PendingBatch {
    let name = file_name(&planned.batch_id, resolved.layout.kind());
    // A re-export keeps the signature it made before when it still verifies.
    let existing_signature = std::fs::read(out_dir.join(format!("{name}.sig"))).ok();
    let record = BatchRecord {
        batch_id: planned.batch_id.clone(),
        run_id: run.run_id.clone(),
        batch_seq: i64::from(planned.batch_seq),
        layout: resolved.layout.name().to_string(),
        bank_prefix: resolved.route.bank_prefix.clone(),
        payer_account: resolved.route.payer_account.clone(),
        pay_date: run.pay_date.clone(),
        file_name: name,
        record_count: i64::from(planned.record_count),
        total_fen: planned.total.as_i64(),
        sha256: String::new(),
        signature_algorithm: key.algorithm().as_str().to_string(),
        key_id: key.key_id(),
    };
    let layout = resolved.layout.clone();
    let planned = planned.clone();
    let key = Arc::clone(key);
    let sealing = tokio::task::spawn_blocking(move || {
        seal_batch(
            &layout,
            &planned,
            &batch,
            &key,
            existing_signature.as_deref(),
            &mut |_| {},
        )
        .map(|sealed| (sealed, batch))
    });
    PendingBatch {
        record,
        line_nos,
        sealing,
    }
}

impl PendingBatch {
    /// Waits for the file; a value the format refuses is the run's refusal.
    async fn finish(self, run_id: &str) -> anyhow::Result<ExportedBatch> {
        let (sealed, batch) = self
            .sealing
            .await
            .context("sealing a batch's file stopped")?
            .map_err(|error| match error {
                SealError::Render(error) => {
                    Refusal::message(format!("run {run_id}: {error}; nothing was exported")).into()
                }
                SealError::Other(error) => error,
            })?;
        Ok(ExportedBatch {
            record: BatchRecord {
                sha256: sealed.sha256,
                ..self.record
            },
            bytes: sealed.rendered.bytes,
            signature: sealed.signature,
            batch,
            line_nos: self.line_nos,
        })
    }
}

/// The batches sealed so far: staged, recorded (or, re-exporting, checked against the
/// record) and listed for the manifest, in plan order.
struct KeptBatches<'r> {
    /// The run's number: its payments' keys are made of it (`run::payment_key`).
    run_no: i64,
    staged: StagedFiles,
    /// Manifest entries by plan index (batches are sealed in the order they fill).
    manifest_files: Vec<Option<ManifestFile>>,
    /// The batches recorded by the first export, when this is a re-export.
    recorded: Option<&'r [BatchRecord]>,
}

impl KeptBatches<'_> {
    async fn keep(
        &mut self,
        transaction: &mut StoreTx,
        index: usize,
        mut exported: ExportedBatch,
        request: &ExportRequest<'_>,
    ) -> anyhow::Result<()> {
        let name = &exported.record.file_name;
        // The file and its signature are written and fsynced on a blocking thread while
        // the batch's payments are recorded here (issue #7: 0.5 s of a 1M export on
        // this thread); both finish before this returns, whatever either does, so no
        // write outlives the staged set. The writer owns the bytes (28 MB for a
        // pain.001 of 50,000) and frees them once they are on disk.
        let file = self.staged.reserve(name);
        let signature_file = self.staged.reserve(&format!("{name}.sig"));
        let (bytes, signature) = (
            std::mem::take(&mut exported.bytes),
            exported.signature.clone(),
        );
        let writing = tokio::task::spawn_blocking(move || {
            file.write(&bytes)?;
            signature_file.write(&signature)
        });
        let recorded = self.record(transaction, index, &exported, request).await;
        writing.await.context("staging a bank file stopped")??;
        recorded?;
        self.manifest_files[index] = Some(manifest_entry(&exported.record));
        Ok(())
    }

    /// Records the batch and its payments (or, re-exporting, checks it is the batch
    /// recorded before).
    async fn record(
        &self,
        transaction: &mut StoreTx,
        index: usize,
        exported: &ExportedBatch,
        request: &ExportRequest<'_>,
    ) -> anyhow::Result<()> {
        match self.recorded {
            Some(recorded) => {
                let first = recorded.get(index).with_context(|| {
                    format!("batch {} was not recorded", exported.record.batch_id)
                })?;
                check_same_file(first, &exported.record)?;
            }
            None => {
                transaction
                    .insert_batch(&exported.record, request.user, request.now_text)
                    .await?;
                transaction
                    .insert_payments(
                        &exported.record.run_id,
                        self.run_no,
                        &exported.record.batch_id,
                        exported.payment_records(),
                    )
                    .await?;
            }
        }
        Ok(())
    }
}

/// Pass 2: the run's pay lines, read once in line order, each added to the open batch
/// of its route; a batch is handed out whole when its planned last line arrives. Holds
/// at most one batch per route, never the run.
struct BatchAssembler<'p> {
    run: RunRecord,
    routes: &'p [Route],
    plan: &'p [PlannedBatch],
    /// Per route, the plan indexes of its batches still to fill, in line order.
    pending: Vec<std::collections::VecDeque<usize>>,
    /// Per route, the batch being filled.
    open: Vec<Option<(PaymentBatch, Vec<i64>)>>,
    memo: String,
    pay_date: chrono::NaiveDate,
    created_at: chrono::NaiveDateTime,
}

/// (plan index, the batch, each instruction's run line).
type FilledBatch = (usize, PaymentBatch, Vec<i64>);

impl<'p> BatchAssembler<'p> {
    fn new(
        run: RunRecord,
        routes: &'p [Route],
        plan: &'p [PlannedBatch],
    ) -> anyhow::Result<BatchAssembler<'p>> {
        let mut pending = vec![std::collections::VecDeque::new(); routes.len()];
        for (plan_index, planned) in plan.iter().enumerate() {
            pending[planned.route_index].push_back(plan_index);
        }
        Ok(BatchAssembler {
            memo: batch_memo(&run),
            pay_date: parse_date(&run.pay_date)
                .with_context(|| format!("run {} pay date", run.run_id))?,
            created_at: created_at_local(&run.created_at)?,
            run,
            routes,
            plan,
            pending,
            open: (0..routes.len()).map(|_| None).collect(),
        })
    }

    /// Adds a pay line to its batch; the batch, whole, if this was its last line.
    fn push(&mut self, line: &crate::run::RunLine) -> anyhow::Result<Option<FilledBatch>> {
        let route_index = route_index(self.routes, &line.bank_code)
            .with_context(|| format!("line {} has no route (the plan had one)", line.line_no))?;
        let plan_index = *self.pending[route_index]
            .front()
            .with_context(|| format!("line {} is beyond the plan", line.line_no))?;
        let planned = &self.plan[plan_index];
        anyhow::ensure!(
            planned.holds(route_index, line.line_no),
            "line {} does not fall in planned batch {}",
            line.line_no,
            planned.batch_id
        );
        let route = &self.routes[route_index];
        let (batch, line_nos) = self.open[route_index].get_or_insert_with(|| {
            let capacity = planned.record_count as usize;
            let batch = PaymentBatch {
                batch_id: planned.batch_id.clone(),
                payer_account: route.payer_account.clone(),
                payer_name: route.payer_name.clone(),
                payer_bank_code: route.payer_bank_code.clone(),
                pay_date: self.pay_date,
                created_at: self.created_at,
                memo: self.memo.clone(),
                payments: Vec::with_capacity(capacity),
            };
            (batch, Vec::with_capacity(capacity))
        });
        let seq = u32::try_from(batch.payments.len() + 1).context("batch too large")?;
        batch.payments.push(PaymentInstruction {
            seq,
            end_to_end_id: CompactString::from(line.end_to_end_id.as_str()),
            household_id: CompactString::from(line.household_id.as_str()),
            account_number: CompactString::from(line.account_number.as_str()),
            account_name: CompactString::from(line.account_name.as_str()),
            id_number: CompactString::from(line.head_id_number.as_str()),
            amount: line.payable,
            bank_code: CompactString::from(line.bank_code.as_str()),
            memo: CompactString::from(self.memo.as_str()),
        });
        line_nos.push(line.line_no);
        if line.line_no != planned.last_line_no {
            return Ok(None);
        }
        self.pending[route_index].pop_front();
        let (batch, line_nos) = self.open[route_index]
            .take()
            .expect("the batch just filled is open");
        Ok(Some((plan_index, batch, line_nos)))
    }

    /// Every planned batch was filled and handed out.
    fn finish(self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.pending.iter().all(|queue| queue.is_empty())
                && self.open.iter().all(Option::is_none),
            "run {}: its pay lines ended before every planned batch was filled; nothing was recorded",
            self.run.run_id
        );
        Ok(())
    }
}

/// `2026-11低保金`: the month and what is paid.
fn batch_memo(run: &RunRecord) -> String {
    let what = if run.programme == "dibao" {
        "低保金"
    } else {
        run.programme.as_str()
    };
    format!("{}{what}", run.month)
}

/// The run's creation time in China Standard Time (UTC+8, no daylight saving), which
/// is what a bank reads in a file's creation timestamp.
fn created_at_local(created_at: &str) -> anyhow::Result<chrono::NaiveDateTime> {
    let china = chrono::FixedOffset::east_opt(8 * 3600).context("UTC+8 is a valid offset")?;
    Ok(chrono::DateTime::parse_from_rfc3339(created_at)
        .with_context(|| format!("stored created_at {created_at:?} is not RFC 3339"))?
        .with_timezone(&china)
        .naive_local())
}

/// `manifest.json` and its detached signature `manifest.json.sig` (same key, kept when
/// it still verifies, like a file's), published together: the signature first.
fn write_manifest(out_dir: &Path, key: &SigningKey, manifest_bytes: &[u8]) -> anyhow::Result<()> {
    let existing = std::fs::read(out_dir.join(MANIFEST_SIGNATURE)).ok();
    let signature = sign_verified(key, manifest_bytes, existing.as_deref())?;
    let mut staged = StagedFiles::new(out_dir)?;
    staged.stage(MANIFEST_SIGNATURE, &signature)?;
    staged.stage(MANIFEST, manifest_bytes)?;
    staged.publish()
}

/// A re-exported file must be the one recorded.
fn check_same_file(recorded: &BatchRecord, now: &BatchRecord) -> anyhow::Result<()> {
    let same = recorded.batch_id == now.batch_id
        && recorded.file_name == now.file_name
        && recorded.sha256 == now.sha256
        && recorded.record_count == now.record_count
        && recorded.total_fen == now.total_fen;
    anyhow::ensure!(
        same,
        "batch {}: the re-exported file differs from the one recorded (sha256 {} now {}); nothing was written",
        recorded.batch_id,
        recorded.sha256,
        now.sha256
    );
    Ok(())
}

fn manifest_entry(record: &BatchRecord) -> ManifestFile {
    ManifestFile {
        file: record.file_name.clone(),
        signature_file: format!("{}.sig", record.file_name),
        batch_id: record.batch_id.clone(),
        layout: record.layout.clone(),
        bank_prefix: record.bank_prefix.clone(),
        payer_account: record.payer_account.clone(),
        pay_date: record.pay_date.clone(),
        sha256: record.sha256.clone(),
        record_count: u64::try_from(record.record_count).unwrap_or(0),
        total: Fen::new(record.total_fen).to_yuan_string(),
        total_fen: record.total_fen,
        signature_algorithm: record.signature_algorithm.clone(),
        key_id: record.key_id.clone(),
    }
}

/// Moves the run to Exported (a re-export leaves it) and appends the audit entry: file
/// count, payments, total, key and manifest hash; no personal data.
#[allow(clippy::too_many_arguments)]
async fn record_export(
    transaction: &mut StoreTx,
    run: &RunRecord,
    state: RunState,
    next: RunState,
    manifest: &Manifest,
    manifest_sha256: &str,
    key: &SigningKey,
    request: &ExportRequest<'_>,
) -> anyhow::Result<()> {
    assert_eq!(
        (manifest.record_count, manifest.total_fen),
        (u64::try_from(run.pay_count).unwrap_or(0), run.payable_fen),
        "the files carry exactly the run's payable lines"
    );
    if next != state {
        transaction.set_run_state(&run.run_id, state, next).await?;
    }
    let files: Vec<&str> = manifest.files.iter().map(|f| f.file.as_str()).collect();
    let detail = format!(
        "files={} [{}] payments={} total={} key_id={} manifest_sha256={manifest_sha256}{}",
        manifest.file_count,
        files.join(","),
        manifest.record_count,
        manifest.total,
        key.key_id(),
        if state == RunState::Exported {
            " re-export"
        } else {
            ""
        }
    );
    transaction
        .append_audit(
            request.now_text,
            request.user,
            "run.export",
            &run.run_id,
            &detail,
        )
        .await?;
    Ok(())
}
