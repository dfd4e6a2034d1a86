//! `disburse import …`: reads a file twice (its SHA-256; then once more to validate
//! every row, handing each good row to a writer that stores it in batches inside one
//! transaction, committed only if validation passes and the bytes read hash the same),
//! so a refused or changed file changes nothing and a good one lands whole, without
//! holding the file in memory.

use crate::cli::key_repeats::{KeyRepeats, Repeat, RepeatCheckError};
use crate::cli::{Context, Refusal};
use crate::domain::household::{Decision, DecisionKind};
use crate::domain::month::Month;
use crate::imports::decode::InputEncoding;
use crate::imports::records::*;
use crate::imports::table::{ColumnSpec, Row, RowError};
use crate::imports::{scan, RowOutcome, ScanReport, ROW_ERRORS_REPORTED_MAX};
use crate::store::values::*;
use crate::store::{row_key, ImportRow, StoreTx, TxLock, IMPORT_BATCH_ROWS};
use anyhow::Context as _;
use std::cell::RefCell;
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;
use std::rc::Rc;

/// One importable table: its columns, row parser and storage mapping.
pub struct ImportKind<T> {
    pub name: &'static str,
    pub columns: &'static [ColumnSpec],
    pub parse_row: fn(&Row<'_>) -> RowOutcome<T>,
    pub table: &'static TableDef,
    pub values: fn(&T) -> Vec<SqlValue>,
    /// The row's key as `row_key` spells it, without building every value (pass 1
    /// needs only the key).
    pub key: fn(&T) -> String,
    /// The key as an error may show it: personal numbers in it masked (P13).
    pub key_shown: fn(&T) -> String,
    /// Decisions need checks against the store (household exists, P11).
    pub as_decision: fn(&T) -> Option<&Decision>,
}

fn decision_itself(decision: &Decision) -> Option<&Decision> {
    Some(decision)
}

fn not_a_decision<T>(_: &T) -> Option<&Decision> {
    None
}

pub const ROSTER: ImportKind<crate::domain::household::Household> = ImportKind {
    name: "roster",
    columns: ROSTER_COLUMNS,
    parse_row: parse_roster_row,
    table: &HOUSEHOLD_TABLE,
    values: household_values,
    key: household_key,
    key_shown: household_key,
    as_decision: not_a_decision,
};
pub const DECISIONS: ImportKind<Decision> = ImportKind {
    name: "decisions",
    columns: DECISION_COLUMNS,
    parse_row: parse_decision_row,
    table: &DECISION_TABLE,
    values: decision_values,
    key: decision_key,
    key_shown: decision_key,
    as_decision: decision_itself,
};
pub const STAFF_RELATIVES: ImportKind<crate::domain::household::StaffRelative> = ImportKind {
    name: "staff-relatives",
    columns: STAFF_RELATIVE_COLUMNS,
    parse_row: parse_staff_relative_row,
    table: &STAFF_RELATIVE_TABLE,
    values: staff_relative_values,
    key: staff_relative_key,
    key_shown: staff_relative_key_shown,
    as_decision: not_a_decision,
};
pub const TREASURY: ImportKind<crate::domain::household::TreasuryVoucher> = ImportKind {
    name: "treasury",
    columns: TREASURY_COLUMNS,
    parse_row: parse_treasury_row,
    table: &TREASURY_TABLE,
    values: treasury_values,
    key: treasury_key,
    key_shown: treasury_key,
    as_decision: not_a_decision,
};

/// What an import did, for the summary line and `--json`.
#[derive(Debug, serde::Serialize)]
pub struct ImportSummary {
    pub kind: &'static str,
    pub file: String,
    pub sha256: String,
    pub rows: u64,
    pub inserted: u64,
    pub unchanged: u64,
    pub already_imported: bool,
    pub warnings: Vec<String>,
}

fn open(path: &Path) -> anyhow::Result<BufReader<File>> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    Ok(BufReader::with_capacity(256 * 1024, file))
}

fn file_sha256(path: &Path) -> anyhow::Result<String> {
    let mut reader = open(path)?;
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buffer = vec![0; 256 * 1024];
    loop {
        let read = reader.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        context.update(&buffer[..read]);
    }
    Ok(hex::encode(context.finish()))
}

/// A pass's reader that feeds every byte it reads to a SHA-256 the pass keeps a handle
/// on. The file is read twice (its SHA-256, then validation, which hands the rows to
/// the writer) and may change in between
/// (an upload still being written, a file its sender replaced): a pass that read the
/// bytes pass 0 hashed read the file the import records.
struct HashingReader<R> {
    inner: R,
    sha256: SharedSha256,
}

/// The SHA-256 a `HashingReader` feeds, shared with the pass that reads through it.
type SharedSha256 = Rc<RefCell<ring::digest::Context>>;

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let read = self.inner.read(buffer)?;
        self.sha256.borrow_mut().update(&buffer[..read]);
        Ok(read)
    }
}

/// The file opened for a pass, and the handle on the SHA-256 of what the pass reads.
fn open_hashing(path: &Path) -> anyhow::Result<(HashingReader<BufReader<File>>, SharedSha256)> {
    let sha256 = Rc::new(RefCell::new(ring::digest::Context::new(
        &ring::digest::SHA256,
    )));
    let reader = HashingReader {
        inner: open(path)?,
        sha256: Rc::clone(&sha256),
    };
    Ok((reader, sha256))
}

/// Refuses when a pass read other bytes than pass 0 hashed (`expected_sha256`).
fn check_same_bytes(
    path: &Path,
    pass: &str,
    sha256: &RefCell<ring::digest::Context>,
    expected_sha256: &str,
) -> Result<(), Refusal> {
    let read_sha256 = hex::encode(sha256.borrow().clone().finish());
    if read_sha256 == expected_sha256 {
        return Ok(());
    }
    Err(Refusal::message(format!(
        "{} changed while it was being imported: {pass} read bytes with SHA-256 {read_sha256}, \
         not the {expected_sha256} the import began with; nothing was imported (import it \
         again once the file is complete)",
        path.display()
    )))
}

fn refusal(path: &Path, report: &ScanReport) -> Refusal {
    let mut lines: Vec<String> = report
        .errors
        .iter()
        .map(|error| format!("{}:{error}", path.display()))
        .collect();
    if report.errors_not_shown > 0 {
        lines.push(format!(
            "{}: … and {} more errors",
            path.display(),
            report.errors_not_shown
        ));
    }
    Refusal::rows(
        format!("{} refused: nothing was imported", path.display()),
        lines,
    )
}

/// Imports one file of one kind; returns the summary, or a refusal listing every error.
pub async fn import_file<T: 'static>(
    context: &Context,
    kind: &'static ImportKind<T>,
    path: &Path,
    encoding: &str,
) -> anyhow::Result<ImportSummary> {
    let encoding = InputEncoding::parse(encoding).ok_or_else(|| {
        Refusal::message(format!(
            "--encoding {encoding:?}: use utf-8, gbk or gb18030"
        ))
    })?;
    let store = context.store().await?;
    let sha256 = file_sha256(path)?;
    let mut summary = ImportSummary {
        kind: kind.name,
        file: path.display().to_string(),
        sha256: sha256.clone(),
        rows: 0,
        inserted: 0,
        unchanged: 0,
        already_imported: false,
        warnings: Vec::new(),
    };
    if let Some(earlier) = store.find_import(kind.name, &sha256).await? {
        tracing::info!(kind = kind.name, sha256 = %sha256, "file already imported: no-op");
        summary.already_imported = true;
        summary.rows = earlier.row_count as u64;
        summary.unchanged = summary.rows;
        return Ok(summary);
    }
    crate::failpoint::pause("import.after_hash").await;
    // Pass 1 runs on a thread of its own and hands every row it found good to pass 2,
    // which writes them into a transaction committed only once pass 1 has found the
    // whole file clean: a refused file is rolled back whole, so it still changes
    // nothing, and a good one is parsed once and written while it is validated (issue
    // #7: parsing it a second time for writing was a sixth of a 1M roster's import).
    // A bad file waits for the write lock like a good one, and its good rows are
    // written before it is rolled back. Should this function return early (or never
    // take the lock), the validation thread reads on to the end of the file, handing
    // nothing over, and its verdict is dropped.
    let (rows_sender, rows_receiver) = tokio::sync::mpsc::channel(IMPORT_BATCHES_AHEAD);
    let validation = {
        let (path, sha256) = (path.to_path_buf(), sha256.clone());
        tokio::task::spawn_blocking(move || {
            validate(
                kind,
                &path,
                encoding,
                &sha256,
                RowForwarder::new(kind, rows_sender),
            )
        })
    };
    // One time for the import's record and its audit entry.
    let now = context.now_text()?;
    let mut transaction = match begin_locked(store).await {
        Ok(transaction) => transaction,
        Err(lock_error) => {
            // No writer: validation goes on alone.
            drop(rows_receiver);
            // A bad file is refused in its own words even when the lock was not had.
            let (report, _) = validation
                .await
                .context("the import's validation stopped")??;
            if !report.is_clean() {
                return Err(refusal(path, &report).into());
            }
            return Err(lock_error.into());
        }
    };
    let written = write_rows(
        context,
        kind,
        path,
        &now,
        &mut transaction,
        &mut summary,
        rows_receiver,
    )
    .await;
    // Pass 1's verdict comes first: a bad row or a key repeated in the file is reported
    // as pass 1 words it, whatever pass 2 made of the rows it was handed.
    let (report, decisions) = validation
        .await
        .context("the import's validation stopped")??;
    if !report.is_clean() {
        roll_back_refused(transaction).await;
        return Err(refusal(path, &report).into());
    }
    crate::failpoint::hit("import.after_validation");
    let written = written?;
    let cross_errors =
        check_decisions_against_store(&mut transaction, &decisions, written.import_id).await?;
    for errors in [cross_errors, written.conflicts] {
        if !errors.is_empty() {
            roll_back_refused(transaction).await;
            let report = ScanReport {
                errors,
                ..ScanReport::default()
            };
            return Err(refusal(path, &report).into());
        }
    }
    // A clean file's every row was handed over, and pass 1 read the bytes pass 0 hashed.
    assert_eq!(
        written.rows, report.rows,
        "pass 2 wrote other rows than pass 1 read"
    );
    summary.rows = report.rows;
    summary.warnings = report
        .warnings
        .iter()
        .map(|w| format!("{}:{w}", path.display()))
        .collect();
    finish_import(
        context,
        kind,
        path,
        &now,
        &mut transaction,
        &summary,
        written.import_id,
    )
    .await?;
    transaction.commit().await?;
    tracing::info!(
        kind = kind.name,
        rows = summary.rows,
        inserted = summary.inserted,
        "imported"
    );
    Ok(summary)
}

/// The import's transaction, holding `Inputs` before anything else, so runs computing
/// now finish on the inputs they started with, and import ids are given in commit order
/// (a roster generation, the largest id, then names one set of inputs: the shared
/// values are kept by it).
async fn begin_locked(store: &crate::store::Store) -> crate::store::StoreResult<StoreTx> {
    let mut transaction = store.begin().await?;
    transaction.lock(TxLock::Inputs).await?;
    Ok(transaction)
}

/// Rolls back a refused file's writes. A failed rollback (the database already rolled
/// back after an I/O error, a lost connection) is logged, not shown instead of the
/// refusal: the transaction is never committed either way.
async fn roll_back_refused(transaction: StoreTx) {
    if let Err(error) = transaction.rollback().await {
        tracing::warn!(%error, "rolling back a refused import failed; nothing was committed");
    }
}

/// Pass 1: every row parsed and checked (each key once in the file), every good row
/// handed to `rows` (pass 2), the bytes read checked against pass 0's SHA-256.
/// Decisions are kept (they are few) for the checks that need the store.
fn validate<T>(
    kind: &ImportKind<T>,
    path: &Path,
    encoding: InputEncoding,
    expected_sha256: &str,
    rows: RowForwarder<T>,
) -> anyhow::Result<(ScanReport, Vec<(u64, Decision)>)> {
    validate_with(
        kind,
        path,
        encoding,
        KeyRepeats::default(),
        expected_sha256,
        rows,
    )
}

/// `validate` with a given repeat check (tests make one that spills early).
fn validate_with<T>(
    kind: &ImportKind<T>,
    path: &Path,
    encoding: InputEncoding,
    mut key_repeats: KeyRepeats,
    expected_sha256: &str,
    mut rows: RowForwarder<T>,
) -> anyhow::Result<(ScanReport, Vec<(u64, Decision)>)> {
    let mut decisions = Vec::new();
    let (reader, sha256) = open_hashing(path)?;
    // Once the check fails it stops; the failure is reported after the scan.
    let mut check_failure: Option<RepeatCheckError> = None;
    let mut report = scan(
        reader,
        encoding,
        kind.columns,
        kind.parse_row,
        |line, record| {
            if let Some(decision) = (kind.as_decision)(&record) {
                decisions.push((line, decision.clone()));
            }
            if check_failure.is_some() {
                return Ok(());
            }
            let key = (kind.key)(&record);
            match key_repeats.see(&key, line, || (kind.key_shown)(&record)) {
                Ok(None) => {
                    rows.hand_over(line, &record);
                    Ok(())
                }
                Ok(Some(repeat)) => Err(repeat_error(kind, &repeat)),
                Err(RepeatCheckError::TooManyRows) => {
                    check_failure = Some(RepeatCheckError::TooManyRows);
                    Err(RowError::file_level(
                        line,
                        RepeatCheckError::TooManyRows.to_string(),
                    ))
                }
                Err(failure) => {
                    check_failure = Some(failure);
                    Ok(())
                }
            }
        },
    );
    // The writer ends its batches before the late checks below.
    rows.finish();
    if let Some(RepeatCheckError::TemporaryFile(error)) = check_failure {
        return Err(anyhow::Error::new(error)
            .context(format!("cannot check {} for repeated keys", path.display())));
    }
    let (late_repeats, not_kept) = key_repeats
        .finish(ROW_ERRORS_REPORTED_MAX)
        .with_context(|| format!("cannot check {} for repeated keys", path.display()))?;
    merge_late_errors(
        &mut report,
        late_repeats.iter().map(|repeat| repeat_error(kind, repeat)),
        not_kept,
    );
    // A clean scan read to the end; a refused one may have stopped early (a bad
    // header) and writes nothing anyway.
    if report.is_clean() {
        check_same_bytes(path, "validation", &sha256, expected_sha256)?;
    }
    Ok((report, decisions))
}

fn repeat_error<T>(kind: &ImportKind<T>, repeat: &Repeat) -> RowError {
    RowError {
        line: repeat.line,
        column: kind.table.key_columns.join("+"),
        value: format!("{:?}", repeat.key_shown),
        reason: format!("appears again (first on line {})", repeat.first_line),
    }
}

/// Adds errors found after the scan (a spilled repeat check's) so that the report reads
/// as if they had been found in line order: the earliest shown, the rest counted.
fn merge_late_errors(
    report: &mut ScanReport,
    late: impl Iterator<Item = RowError>,
    late_not_kept: u64,
) {
    let mut errors = std::mem::take(&mut report.errors);
    errors.extend(late);
    if errors.is_empty() {
        return;
    }
    // Stable: errors of one line keep the order they were found in.
    errors.sort_by_key(|error| error.line);
    let not_shown = errors.len().saturating_sub(ROW_ERRORS_REPORTED_MAX);
    errors.truncate(ROW_ERRORS_REPORTED_MAX);
    report.errors = errors;
    report.errors_not_shown += not_shown as u64 + late_not_kept;
}

/// Decisions must name a known household; a resume inside a blacklist year is
/// refused (P11). Blacklists stored before this import count from the store, this
/// file's own from `decisions` (pass 2 has written them too, under `import_id`).
async fn check_decisions_against_store(
    transaction: &mut StoreTx,
    decisions: &[(u64, Decision)],
    import_id: i64,
) -> anyhow::Result<Vec<RowError>> {
    if decisions.is_empty() {
        return Ok(Vec::new());
    }
    let mut ids: Vec<String> = decisions
        .iter()
        .map(|(_, d)| d.household_id.as_str().to_string())
        .collect();
    ids.sort();
    ids.dedup();
    let known = transaction.existing_households(&ids).await?;
    let mut blacklists: Vec<(String, Month)> = transaction
        .blacklists_of(&ids, import_id)
        .await?
        .into_iter()
        .filter_map(|(id, month)| Month::parse(&month).ok().map(|month| (id, month)))
        .collect();
    blacklists.extend(
        decisions
            .iter()
            .filter(|(_, d)| d.kind == DecisionKind::Blacklist)
            .map(|(_, d)| (d.household_id.as_str().to_string(), d.effective_month)),
    );
    let mut errors = Vec::new();
    for (line, decision) in decisions {
        let household_id = decision.household_id.as_str();
        if !known.contains(household_id) {
            errors.push(RowError {
                line: *line,
                column: "household_id".into(),
                value: format!("{household_id:?}"),
                reason: "no such household in the roster".into(),
            });
        }
        if decision.kind == DecisionKind::Resume {
            let inside = blacklists.iter().find(|(id, start)| {
                id == household_id
                    && decision.effective_month >= *start
                    && decision.effective_month.months_since(*start) < 12
            });
            if let Some((_, start)) = inside {
                errors.push(RowError {
                    line: *line,
                    column: "effective_month".into(),
                    value: format!("{:?}", decision.effective_month.to_string()),
                    reason: format!(
                        "P11: blacklisted from {start} for 12 months; no resume before {}",
                        start.plus(12)
                    ),
                });
            }
        }
    }
    Ok(errors)
}

/// What pass 2 wrote: under which import, how many rows, and the rows stored earlier
/// with other content (conflicts: any refuses the whole file).
struct Written {
    import_id: i64,
    rows: u64,
    conflicts: Vec<RowError>,
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default()
}

/// Pass 2: rows written in batches under a new import (its row count set once pass 1
/// has counted the rows, by `finish_import`).
async fn write_rows<T: 'static>(
    context: &Context,
    kind: &'static ImportKind<T>,
    path: &Path,
    now: &str,
    transaction: &mut StoreTx,
    summary: &mut ImportSummary,
    mut batches: tokio::sync::mpsc::Receiver<LinedBatch>,
) -> anyhow::Result<Written> {
    let import_id = transaction
        .insert_import_file(
            kind.name,
            &summary.sha256,
            &file_name(path),
            0,
            &context.user,
            now,
        )
        .await?;
    let mut writer = BatchWriter {
        kind,
        import_id,
        rows: 0,
        conflicts: Vec::new(),
    };
    while let Some(batch) = batches.recv().await {
        writer.write(transaction, summary, batch).await?;
    }
    transaction
        .refresh_statistics(kind.table.table, summary.inserted)
        .await?;
    Ok(Written {
        import_id,
        rows: writer.rows,
        conflicts: writer.conflicts,
    })
}

/// The import's row count and its audit entry, once both passes agree.
async fn finish_import<T>(
    context: &Context,
    kind: &ImportKind<T>,
    path: &Path,
    now: &str,
    transaction: &mut StoreTx,
    summary: &ImportSummary,
    import_id: i64,
) -> anyhow::Result<()> {
    transaction
        .set_import_row_count(import_id, summary.rows)
        .await?;
    let detail = format!(
        "file={} rows={} inserted={} unchanged={}",
        file_name(path),
        summary.rows,
        summary.inserted,
        summary.unchanged
    );
    let action = format!("import.{}", kind.name);
    transaction
        .append_audit(now, &context.user, &action, &summary.sha256, &detail)
        .await?;
    Ok(())
}

/// Batches handed over ahead of the one being written: one, so three at most are in
/// memory (being filled, waiting, being written).
const IMPORT_BATCHES_AHEAD: usize = 1;

/// Rows of one batch, each with its line (to name a conflict).
type LinedBatch = Vec<(u64, ImportRow)>;

/// Pass 1's hand to pass 2: the good rows, with their values and content hashes, in
/// batches of `IMPORT_BATCH_ROWS`. Once the writer stops listening (it failed, or never
/// took the lock) it builds nothing more.
struct RowForwarder<T> {
    values: fn(&T) -> Vec<SqlValue>,
    sender: Option<tokio::sync::mpsc::Sender<LinedBatch>>,
    batch: LinedBatch,
}

impl<T> RowForwarder<T> {
    fn new(kind: &ImportKind<T>, sender: tokio::sync::mpsc::Sender<LinedBatch>) -> Self {
        RowForwarder {
            values: kind.values,
            sender: Some(sender),
            batch: Vec::with_capacity(IMPORT_BATCH_ROWS),
        }
    }

    fn hand_over(&mut self, line: u64, record: &T) {
        if self.sender.is_none() {
            return;
        }
        self.batch
            .push((line, ImportRow::new((self.values)(record))));
        if self.batch.len() == IMPORT_BATCH_ROWS {
            let full = std::mem::replace(&mut self.batch, Vec::with_capacity(IMPORT_BATCH_ROWS));
            self.send(full);
        }
    }

    /// Sends the last batch and closes the hand-over: the writer's loop ends.
    fn finish(&mut self) {
        let last = std::mem::take(&mut self.batch);
        if !last.is_empty() {
            self.send(last);
        }
        self.sender = None;
    }

    fn send(&mut self, batch: LinedBatch) {
        let listening = self
            .sender
            .as_ref()
            .is_some_and(|sender| sender.blocking_send(batch).is_ok());
        if !listening {
            self.sender = None;
        }
    }
}

/// The rows and conflicts so far, for the batches written so far.
struct BatchWriter<'a, T> {
    kind: &'a ImportKind<T>,
    import_id: i64,
    rows: u64,
    conflicts: Vec<RowError>,
}

impl<T> BatchWriter<'_, T> {
    /// Writes one batch in one statement; a stored row with other content under the
    /// same key becomes a conflict naming its line.
    async fn write(
        &mut self,
        transaction: &mut StoreTx,
        summary: &mut ImportSummary,
        batch: LinedBatch,
    ) -> anyhow::Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let table = self.kind.table;
        self.rows += batch.len() as u64;
        let (lines, rows): (Vec<u64>, Vec<ImportRow>) = batch.into_iter().unzip();
        let outcome = transaction
            .upsert_rows(table, self.import_id, &rows)
            .await?;
        crate::failpoint::hit("import.after_batch");
        summary.inserted += outcome.inserted;
        summary.unchanged += outcome.unchanged;
        // Only a conflict needs the lines by key: most batches never build the map.
        let line_of_key: HashMap<String, u64> = if outcome.conflicts.is_empty() {
            HashMap::new()
        } else {
            rows.iter()
                .zip(lines)
                .map(|(row, line)| (row_key(table, &row.values), line))
                .collect()
        };
        for key in outcome.conflicts {
            self.conflicts.push(RowError {
                line: line_of_key.get(&key).copied().unwrap_or(0),
                column: table.key_columns.join("+"),
                value: format!("{key:?}"),
                reason: "already imported with different content; send a correction as a new \
                         version (a later approved_from) or under a new id"
                    .into(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::generate::RosterGenerator;
    use crate::imports::{ParsedRow, ParsedRows};

    /// A hand-over with no writer: validation alone.
    fn no_writer<T>(kind: &ImportKind<T>) -> RowForwarder<T> {
        let (sender, _) = tokio::sync::mpsc::channel(1);
        RowForwarder::new(kind, sender)
    }

    /// Pass 1 finds duplicates by `kind.key`, pass 2 names conflicts by `row_key` over
    /// the values: the two must spell every key alike.
    fn assert_keys_agree<T>(kind: &ImportKind<T>, csv: &[u8]) -> usize {
        let rows = ParsedRows::open(csv, InputEncoding::Utf8, kind.columns, kind.parse_row)
            .unwrap_or_else(|errors| panic!("{} header: {errors:?}", kind.name));
        let mut checked = 0;
        for parsed in rows {
            let ParsedRow::Record { record, .. } = parsed else {
                panic!("{}: a test row did not parse", kind.name);
            };
            assert_eq!(
                (kind.key)(&record),
                row_key(kind.table, &(kind.values)(&record)),
                "{}",
                kind.name
            );
            checked += 1;
        }
        checked
    }

    #[test]
    fn a_key_repeated_in_the_file_is_refused_naming_both_lines() {
        let mut roster = Vec::new();
        RosterGenerator::new(7)
            .write_roster(&mut roster, 5, "2026-01")
            .expect("roster written to memory");
        let text = String::from_utf8(roster).expect("the generator writes UTF-8");
        let rows: Vec<&str> = text.lines().collect();
        // Header on line 1; the household of line 3 comes again on line 7, and line 8
        // repeats line 2 with another name: a key, not a whole row, is what repeats.
        let (before_name, _) = rows[1].rsplit_once(',').expect("a roster row has columns");
        let renamed = format!("{before_name},王五");
        let file = tempfile::NamedTempFile::new().expect("temporary file");
        std::fs::write(
            file.path(),
            format!("{}\n{}\n{}\n", text.trim_end(), rows[2], renamed),
        )
        .expect("file written");
        // The same repeats whether the check keeps every key in memory or spills them
        // to disk after the third key, or at once.
        for check in [
            KeyRepeats::default(),
            KeyRepeats::with_memory_max(3),
            KeyRepeats::with_memory_max(0),
        ] {
            let sha256 = file_sha256(file.path()).expect("the file is readable");
            let (report, _) = validate_with(
                &ROSTER,
                file.path(),
                InputEncoding::Utf8,
                check,
                &sha256,
                no_writer(&ROSTER),
            )
            .expect("the file is readable");
            let repeats: Vec<(u64, &str)> = report
                .errors
                .iter()
                .filter(|error| error.reason.starts_with("appears again"))
                .map(|error| (error.line, error.reason.as_str()))
                .collect();
            assert_eq!(
                repeats,
                [
                    (7, "appears again (first on line 3)"),
                    (8, "appears again (first on line 2)")
                ],
                "{:?}",
                report.errors
            );
        }
    }

    #[test]
    fn a_repeated_staff_relative_shows_the_id_number_masked() {
        let mut roster = Vec::new();
        let generated = RosterGenerator::new(7)
            .write_roster(&mut roster, 1, "2026-01")
            .expect("roster written to memory");
        let id_number = generated[0].head_id_number.as_str();
        let relatives = format!(
            "staff_id,staff_name,relative_id_number,relation\n\
             S0001,李建华,{id_number},配偶\nS0001,李建华,{id_number},配偶\n"
        );
        let file = tempfile::NamedTempFile::new().expect("temporary file");
        std::fs::write(file.path(), relatives).expect("file written");
        let sha256 = file_sha256(file.path()).expect("the file is readable");
        for check in [KeyRepeats::default(), KeyRepeats::with_memory_max(0)] {
            let (report, _) = validate_with(
                &STAFF_RELATIVES,
                file.path(),
                InputEncoding::Utf8,
                check,
                &sha256,
                no_writer(&STAFF_RELATIVES),
            )
            .expect("the file is readable");
            let shown: Vec<String> = report.errors.iter().map(ToString::to_string).collect();
            assert_eq!(shown.len(), 1, "{shown:?}");
            let masked = crate::domain::mask::mask_id_number(id_number);
            assert!(shown[0].contains(&format!("S0001/{masked}")), "{shown:?}");
            assert!(!shown[0].contains(id_number), "{shown:?}");
        }
    }

    /// Pass 0 hashed roster A; by the time pass 1 reads it, the file holds roster B, as
    /// valid as A. Pass 1 hands B's rows to the writer as it reads them, then refuses
    /// the file, so the writer's transaction is rolled back, never committed under A's
    /// SHA-256; the same bytes end clean.
    #[test]
    fn a_file_changed_after_it_was_hashed_is_refused() {
        let roster = |seed| {
            let mut bytes = Vec::new();
            RosterGenerator::new(seed)
                .write_roster(&mut bytes, 5, "2026-01")
                .expect("roster written to memory");
            bytes
        };
        let file = tempfile::NamedTempFile::new().expect("temporary file");
        std::fs::write(file.path(), roster(7)).expect("file written");
        let sha256_before = file_sha256(file.path()).expect("the file is readable");
        std::fs::write(file.path(), roster(8)).expect("file written");
        let sha256_now = file_sha256(file.path()).expect("the file is readable");
        assert_ne!(sha256_before, sha256_now);

        let validated = |sha256: &str| {
            let (sender, mut receiver) = tokio::sync::mpsc::channel(16);
            let verdict = validate_with(
                &ROSTER,
                file.path(),
                InputEncoding::Utf8,
                KeyRepeats::default(),
                sha256,
                RowForwarder::new(&ROSTER, sender),
            );
            let mut handed_over = 0;
            while let Some(batch) = receiver.blocking_recv() {
                handed_over += batch.len();
            }
            (verdict, handed_over)
        };
        let (verdict, handed_over) = validated(&sha256_before);
        let error = verdict.expect_err("pass 1 read other bytes");
        assert!(
            error
                .to_string()
                .contains("changed while it was being imported"),
            "{error}"
        );
        assert_eq!(handed_over, 5);
        let (verdict, handed_over) = validated(&sha256_now);
        let (report, _) = verdict.expect("the same bytes pass");
        assert!(report.is_clean(), "{:?}", report.errors);
        assert_eq!(handed_over, 5);
    }

    /// Rows whose key repeats are not handed over; once the writer stops listening (here
    /// at the first full batch), validation reads on to the end and reports every error.
    #[test]
    fn only_good_rows_are_handed_over_and_validation_outlives_its_writer() {
        let mut roster = Vec::new();
        RosterGenerator::new(7)
            .write_roster(&mut roster, IMPORT_BATCH_ROWS as u64 + 1, "2026-01")
            .expect("roster written to memory");
        let text = String::from_utf8(roster).expect("the generator writes UTF-8");
        let repeated = text.lines().nth(1).expect("a first row").to_string();
        let file = tempfile::NamedTempFile::new().expect("temporary file");
        std::fs::write(file.path(), format!("{text}{repeated}\n")).expect("file written");
        let sha256 = file_sha256(file.path()).expect("the file is readable");
        let validated = |rows| {
            let path = file.path();
            validate_with(
                &ROSTER,
                path,
                InputEncoding::Utf8,
                KeyRepeats::default(),
                &sha256,
                rows,
            )
            .expect("the file is readable")
            .0
        };
        let (sender, mut receiver) = tokio::sync::mpsc::channel(16);
        let report = validated(RowForwarder::new(&ROSTER, sender));
        let lines: Vec<u64> = std::iter::from_fn(|| receiver.blocking_recv())
            .flatten()
            .map(|(line, _)| line)
            .collect();
        let every_good_line: Vec<u64> = (2..=IMPORT_BATCH_ROWS as u64 + 2).collect();
        assert_eq!(
            lines, every_good_line,
            "the repeat on the last line is not handed over"
        );
        assert_eq!(report.errors.len(), 1, "{:?}", report.errors);
        let report = validated(no_writer(&ROSTER));
        assert_eq!(report.rows, IMPORT_BATCH_ROWS as u64 + 2);
        assert_eq!(report.errors.len(), 1, "{:?}", report.errors);
    }

    #[test]
    fn late_errors_are_merged_in_line_order_and_the_rest_counted() {
        let error = |line: u64| RowError::file_level(line, "x");
        let mut report = ScanReport {
            errors: vec![error(2), error(9)],
            ..ScanReport::default()
        };
        merge_late_errors(&mut report, [error(5), error(12)].into_iter(), 3);
        let lines: Vec<u64> = report.errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [2, 5, 9, 12]);
        assert_eq!(report.errors_not_shown, 3);
    }

    #[test]
    fn every_kind_spells_its_key_as_row_key_does() {
        let mut roster = Vec::new();
        let generated = RosterGenerator::new(7)
            .write_roster(&mut roster, 50, "2026-01")
            .expect("roster written to memory");
        assert_eq!(assert_keys_agree(&ROSTER, &roster), 50);
        let decisions = crate::demo::demo_decisions(&generated);
        assert!(assert_keys_agree(&DECISIONS, decisions.as_bytes()) > 5);
        let relatives = format!(
            "staff_id,staff_name,relative_id_number,relation\nS0001,李建华,{},配偶\n",
            generated[3].head_id_number
        );
        assert_eq!(assert_keys_agree(&STAFF_RELATIVES, relatives.as_bytes()), 1);
        let vouchers =
            "voucher_no,voucher_type,original_voucher_no,batch_id,bank_code,amount,date\n\
                        V1,5201,,B000001A001,102221000018,1200.00,2026-11-20\n";
        assert_eq!(assert_keys_agree(&TREASURY, vouchers.as_bytes()), 1);
    }
}
