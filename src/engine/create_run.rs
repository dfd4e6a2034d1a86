//! `run create`: computes every line of a month for a programme and scope, in chunks of
//! households inside one transaction, and stores the lines, totals and digest. One run
//! per programme + month + overlapping scope stands at a time.

use crate::config::Config;
use crate::domain::household::{Decision, Household};
use crate::domain::month::Month;
use crate::engine::{AbortOnDrop, Refusal};
use crate::policy::calc::{apply_holds, compute, HouseholdMonth, PriorLine};
use crate::policy::flag;
use crate::run::{end_to_end_id, run_id, RunDigest, RunHeader, RunLine, RUN_LINES_MAX, RUN_NO_MAX};
use crate::store::values::{content_sha256, decision_values, household_sha256};
use crate::store::{
    is_region_scope, scopes_overlap, HouseholdHold, RunRecord, StandingRun, Store, StoreTx, TxLock,
    WorkItem, WorkStep, SCOPE_DIGITS_MAX,
};
use chrono::NaiveDate;
use ring::digest::{Context, SHA256};
use std::collections::{HashMap, HashSet};

/// Households computed per chunk: bounds memory whatever the roster's size.
const CHUNK_HOUSEHOLDS: i64 = 5_000;

/// What to compute.
#[derive(Clone)]
pub struct CreateRunRequest {
    pub programme: String,
    pub month: Month,
    /// Region code prefix; empty for every region.
    pub scope: String,
    pub pay_date: NaiveDate,
    pub user: String,
    pub now_text: String,
    /// The run number a planned month reserved for this scope (`work plan`); `None`
    /// takes the next one.
    pub reserved_run_no: Option<i64>,
}

/// Cross-household facts for flags (P15 and shared accounts or ID numbers).
struct SharedFacts {
    accounts: HashSet<String>,
    id_numbers: HashSet<String>,
    staff_relatives: HashSet<String>,
    /// Households held after a failed payment, with the account that failed.
    holds: HashMap<String, Vec<HouseholdHold>>,
}

/// Computes and stores a run; refuses a second standing run for an overlapping scope.
pub async fn create_run(
    store: &Store,
    config: &Config,
    request: &CreateRunRequest,
) -> anyhow::Result<RunRecord> {
    check_request(request)?;
    let mut transaction = store.begin().await?;
    // Lock order, the same in every writer: inputs, run number, scope, audit.
    transaction.lock_shared(TxLock::Inputs).await?;
    if request.reserved_run_no.is_none() {
        transaction.lock(TxLock::RunNumber).await?;
    }
    transaction.lock_scope(&request.scope).await?;
    let run_no = match request.reserved_run_no {
        Some(reserved) => {
            let item = reservation(&mut transaction, request, reserved).await?;
            // A worker that took over an expired lease finds the run its predecessor
            // committed, and leaves it as it is.
            if let Some(run) = store.run(&run_id(request.month, reserved)).await? {
                transaction.rollback().await?;
                return Ok(run);
            }
            // A reservation is used once, by the item still waiting to be computed (not
            // by one that failed or was cancelled).
            if item.step != WorkStep::Compute {
                return Err(Refusal::message(format!(
                    "run number {reserved}: its work item is {}, not waiting to be computed",
                    item.step
                ))
                .into());
            }
            reserved
        }
        None => {
            let planned = transaction.open_work_items(&request.programme).await?;
            refuse_planned(&planned, request)?;
            transaction.next_run_no().await?
        }
    };
    let standing = transaction.standing_runs(&request.programme).await?;
    refuse_overlap(&standing, request)?;
    anyhow::ensure!(run_no <= RUN_NO_MAX, "run numbers exhausted ({RUN_NO_MAX})");
    let run_id = run_id(request.month, run_no);
    let pay_date = request.pay_date.to_string();
    transaction
        .insert_run(
            &run_id,
            run_no,
            &request.programme,
            request.month,
            &request.scope,
            &pay_date,
            &request.user,
            &request.now_text,
        )
        .await?;
    // The shared values are the whole roster's, found once per month and import
    // (issue #7: a national month's scopes would otherwise each scan every household).
    let generation = transaction.roster_generation().await?;
    let cached = transaction
        .cached_shared_values(request.month, generation)
        .await?;
    let (accounts, id_numbers) = match cached {
        Some(values) => values,
        None => {
            tracing::debug!(month = %request.month, "finding the month's shared values");
            let values = find_shared_values(store, &mut transaction, request.month).await?;
            tracing::debug!(
                shared_accounts = values.0.len(),
                shared_id_numbers = values.1.len(),
                "shared values found"
            );
            store
                .keep_shared_values_beside(
                    &mut transaction,
                    request.month,
                    generation,
                    &values.0,
                    &values.1,
                )
                .await?;
            values
        }
    };
    let (chunk_sender, chunk_receiver) = tokio::sync::mpsc::channel(CHUNKS_READ_AHEAD);
    let reader = tokio::spawn(read_ahead(
        store.clone(),
        ChunkQuery {
            programme: request.programme.clone(),
            month: request.month,
            scope: request.scope.clone(),
        },
        chunk_sender,
    ));
    // Stops the reader if this fails early (it would otherwise read on unheard).
    let _abort_reader = AbortOnDrop(reader.abort_handle());
    let facts = SharedFacts {
        accounts,
        id_numbers,
        staff_relatives: transaction.staff_relative_id_numbers().await?,
        holds: group_by_household(transaction.household_holds().await?, |hold| {
            hold.household_id.clone()
        }),
    };
    let header = RunHeader {
        run_id: &run_id,
        programme: &request.programme,
        month: request.month,
        scope: &request.scope,
        pay_date: &pay_date,
    };
    let mut computer = RunComputer {
        config: config.clone(),
        request: request.clone(),
        run_no,
        digest: RunDigest::new(&header),
        inputs: Context::new(&SHA256),
        earlier_runs: standing
            .into_iter()
            .filter(|run| run.month < request.month)
            .collect(),
        facts,
        line_no: 0,
    };
    computer
        .inputs
        .update(format!("{:?}", config.policy).as_bytes());
    let computer = compute_and_write(computer, &mut transaction, &run_id, chunk_receiver).await?;
    reader.await??;
    let line_count = u64::try_from(computer.line_no).expect("line numbers are positive");
    transaction
        .refresh_statistics("run_line", line_count)
        .await?;
    let input_sha256 = hex::encode(computer.inputs.finish());
    let (digest, totals) = computer.digest.finish(&input_sha256);
    let (stored_count, stored_total) = transaction.stored_pay_totals(&run_id).await?;
    assert_eq!(
        (stored_count, stored_total),
        (totals.pay_count, totals.payable),
        "the stored lines sum to the run's totals"
    );
    let previous_total = transaction
        .previous_payable(&request.programme, &request.scope, request.month)
        .await?;
    let approvals_required = config.approval.required_for(totals.payable, previous_total);
    if previous_total
        .is_some_and(|previous| config.approval.moved_too_much(previous, totals.payable))
    {
        tracing::warn!(run_id = %run_id, "total moved more than approval.change_share from last month: one more approver");
    }
    transaction
        .finish_run(&run_id, &input_sha256, &digest, &totals, approvals_required)
        .await?;
    let detail = format!(
        "month={} scope={} lines={} pay={} payable={} hold={} digest={digest}",
        request.month,
        scope_label(&request.scope),
        totals.line_count,
        totals.pay_count,
        totals.payable,
        totals.hold_count
    );
    transaction
        .append_audit(
            &request.now_text,
            &request.user,
            "run.create",
            &run_id,
            &detail,
        )
        .await?;
    crate::failpoint::hit("compute.before_commit");
    transaction.commit().await?;
    tracing::info!(run_id = %run_id, lines = totals.line_count, payable = %totals.payable, "run computed");
    Ok(store
        .run(&run_id)
        .await?
        .expect("the run just committed exists"))
}

pub fn scope_label(scope: &str) -> &str {
    if scope.is_empty() {
        "all"
    } else {
        scope
    }
}

fn check_request(request: &CreateRunRequest) -> Result<(), Refusal> {
    if !is_region_scope(&request.scope) {
        return Err(Refusal::message(format!(
            "--region {:?}: a region code prefix of up to {SCOPE_DIGITS_MAX} digits",
            request.scope
        )));
    }
    // P12: other programmes (heating, medical, ...) need their own calculation and
    // their own arrears and recoveries; computing them with dibao's would pay dibao's
    // money twice, so they are refused until they exist.
    if request.programme != "dibao" {
        return Err(Refusal::message(format!(
            "--programme {:?}: only dibao has a calculation yet (P12)",
            request.programme
        )));
    }
    Ok(())
}

/// The work item that reserved `reserved`: it must be of this programme, month and
/// scope.
async fn reservation(
    transaction: &mut StoreTx,
    request: &CreateRunRequest,
    reserved: i64,
) -> anyhow::Result<WorkItem> {
    let item = transaction.work_item_of_run_no(reserved).await?;
    match item {
        Some(item)
            if item.programme == request.programme
                && item.month == request.month.to_string()
                && item.scope == request.scope =>
        {
            Ok(item)
        }
        _ => Err(Refusal::message(format!(
            "run number {reserved} is not reserved for {} {} scope {}",
            request.programme,
            request.month,
            scope_label(&request.scope)
        ))
        .into()),
    }
}

/// A scope planned for workers (`work plan`) is theirs: a run created by hand for an
/// overlapping scope of the same month would pay its households twice.
fn refuse_planned(planned: &[WorkItem], request: &CreateRunRequest) -> Result<(), Refusal> {
    let month = request.month.to_string();
    // Of this month; or of an earlier month still to be computed, since months are
    // computed in order and this run would make that item fail.
    let overlapping = planned.iter().find(|item| {
        let blocks = item.month == month || (item.month < month && item.step == WorkStep::Compute);
        blocks && scopes_overlap(&item.scope, &request.scope)
    });
    if let Some(item) = overlapping {
        return Err(Refusal::message(format!(
            "{} {} scope {} is planned for workers (work item {}, run number {}): leave it to `disburse work run`",
            request.programme,
            item.month,
            scope_label(&item.scope),
            item.work_id,
            item.run_no
        )));
    }
    Ok(())
}

/// One run per programme + month + scope; overlapping scopes (one a prefix of the
/// other) would pay the same household twice, so they are refused too.
fn refuse_overlap(standing: &[StandingRun], request: &CreateRunRequest) -> Result<(), Refusal> {
    let overlapping = |run: &&StandingRun| scopes_overlap(&run.scope, &request.scope);
    if let Some(run) = standing
        .iter()
        .filter(overlapping)
        .find(|run| run.month == request.month)
    {
        return Err(Refusal::message(format!(
            "run {} already stands for {} {} scope {}: cancel it with a reason before computing another",
            run.run_id, request.programme, request.month, scope_label(&run.scope)
        )));
    }
    // Months are computed in order: a later month's run already took this month's
    // arrears and recoveries into account, so computing this month now would pay or
    // recover them twice.
    if let Some(run) = standing
        .iter()
        .filter(overlapping)
        .find(|run| run.month > request.month)
    {
        return Err(Refusal::message(format!(
            "run {} for the later month {} already stands for an overlapping scope: months are computed in order",
            run.run_id, run.month
        )));
    }
    Ok(())
}

/// Carries the state of one run's computation across chunks. It owns what it reads, so
/// it can compute on a thread of its own (`compute_and_write`).
struct RunComputer {
    config: Config,
    request: CreateRunRequest,
    run_no: i64,
    digest: RunDigest,
    inputs: Context,
    earlier_runs: Vec<StandingRun>,
    facts: SharedFacts,
    line_no: i64,
}

/// Lines computed ahead of the ones being written: one chunk's.
const LINE_CHUNKS_AHEAD: usize = 1;

/// Computes every chunk on a blocking thread and writes its lines on `transaction`, so
/// computing chunk k+1 overlaps writing chunk k, as reading chunk k+2 (`read_ahead`)
/// overlaps both. The computer alone numbers, hashes and digests the lines, in order.
/// Gives the computer back for the run's totals once every line is written.
async fn compute_and_write(
    mut computer: RunComputer,
    transaction: &mut StoreTx,
    run_id: &str,
    mut chunks: tokio::sync::mpsc::Receiver<anyhow::Result<ChunkInputs>>,
) -> anyhow::Result<RunComputer> {
    let (lines_sender, mut lines_receiver) = tokio::sync::mpsc::channel(LINE_CHUNKS_AHEAD);
    // Ends when the chunks end, at the first error, or when the writer stops listening
    // (it failed); dropping `chunks` then stops the reader too.
    let computing = tokio::task::spawn_blocking(move || {
        while let Some(chunk) = chunks.blocking_recv() {
            let lines = computer.compute_chunk(&chunk?);
            if lines_sender.blocking_send(lines).is_err() {
                break;
            }
        }
        anyhow::Ok(computer)
    });
    while let Some(lines) = lines_receiver.recv().await {
        transaction.insert_lines(run_id, lines).await?;
    }
    match computing.await {
        Ok(computed) => computed,
        // An invariant the computer asserts stays fatal, as it was on this thread.
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        Err(error) => Err(error.into()),
    }
}

impl RunComputer {
    fn compute_chunk(&mut self, chunk: &ChunkInputs) -> Vec<RunLine> {
        let mut lines = Vec::with_capacity(chunk.households.len());
        for versions in &chunk.households {
            let id = versions[0].household_id.as_str();
            let prior: Vec<PriorLine> = chunk
                .history
                .get(id)
                .map(|h| h.iter().map(|(_, line)| line.clone()).collect())
                .unwrap_or_default();
            let own_decisions = chunk.decisions.get(id).map(Vec::as_slice).unwrap_or(&[]);
            if let Some(line) = self.compute_household(versions, own_decisions, &prior) {
                lines.push(line);
            }
        }
        lines
    }

    fn compute_household(
        &mut self,
        versions: &[Household],
        decisions: &[Decision],
        history: &[PriorLine],
    ) -> Option<RunLine> {
        let current = versions.last().expect("a chunk entry has a version");
        if !current
            .region_code
            .as_str()
            .starts_with(&self.request.scope)
        {
            return None;
        }
        let run_months: Vec<Month> = self
            .earlier_runs
            .iter()
            .filter(|run| covered_then(versions, run))
            .map(|run| run.month)
            .collect();
        let input = HouseholdMonth {
            month: self.request.month,
            pay_date: self.request.pay_date,
            versions,
            decisions,
            history,
            run_months: &run_months,
        };
        let mut computed = compute(&self.config.policy, &input)?;
        let version = versions
            .iter()
            .rev()
            .find(|v| v.approved_from == computed.approved_from)
            .expect("the version used is among the versions");
        self.add_shared_flags(version, &mut computed.flags);
        apply_holds(&self.config.policy, &mut computed);
        for used in versions {
            self.inputs.update(household_sha256(used).as_bytes());
        }
        for decision in decisions {
            self.inputs
                .update(content_sha256(&decision_values(decision)).as_bytes());
        }
        self.line_no += 1;
        assert!(
            self.line_no <= RUN_LINES_MAX,
            "a run holds at most {RUN_LINES_MAX} lines"
        );
        let line = RunLine {
            line_no: self.line_no,
            household_id: version.household_id.as_str().to_string(),
            approved_from: computed.approved_from,
            region_code: version.region_code.as_str().to_string(),
            area: version.area.as_str().to_string(),
            status: computed.status,
            base: computed.base,
            supplements: computed.supplements,
            arrears: computed.arrears,
            reduction: computed.reduction,
            recovery: computed.recovery,
            payable: computed.payable,
            bank_code: version.bank_code.as_str().to_string(),
            account_number: version.account_number.as_str().to_string(),
            account_name: version.account_name.clone(),
            head_id_number: version.head_id_number.as_str().to_string(),
            end_to_end_id: end_to_end_id(&self.config.run.id_prefix, self.run_no, self.line_no),
            flags: computed.flags,
            arrears_sources: computed.arrears_sources,
        };
        self.digest.add_line(&line);
        Some(line)
    }

    fn add_shared_flags(&self, version: &Household, flags: &mut Vec<String>) {
        if self
            .facts
            .staff_relatives
            .contains(version.head_id_number.as_str())
        {
            flags.push(flag::STAFF_RELATIVE.into());
        }
        if self
            .facts
            .accounts
            .contains(version.account_number.as_str())
        {
            flags.push(flag::SHARED_ACCOUNT.into());
        }
        if self
            .facts
            .id_numbers
            .contains(version.head_id_number.as_str())
        {
            flags.push(flag::SHARED_ID_NUMBER.into());
        }
        // Issue #5: a death reported by the bank holds every later line; a refused
        // account holds the line only while the household still has that account.
        let holds = self.facts.holds.get(version.household_id.as_str());
        for hold in holds.into_iter().flatten() {
            let name = match hold.reason_code.as_str() {
                "MD07" => flag::BANK_REPORTED_DECEASED,
                _ if hold.account_number == version.account_number.as_str() => flag::ACCOUNT_FAILED,
                _ => continue,
            };
            if !flags.iter().any(|f| f == name) {
                flags.push(name.into());
            }
        }
    }
}

/// Chunks read ahead of the one being computed: one, so at most two chunks are in
/// memory at a time.
const CHUNKS_READ_AHEAD: usize = 1;

/// Which households a run reads.
struct ChunkQuery {
    programme: String,
    month: Month,
    scope: String,
}

/// One chunk of households with their decisions and earlier lines.
struct ChunkInputs {
    households: Vec<Vec<Household>>,
    decisions: HashMap<String, Vec<Decision>>,
    history: HashMap<String, Vec<(String, PriorLine)>>,
}

/// The reading side of run creation, on a read transaction of its own: every chunk in
/// household order (sent on `chunks`, so reading chunk k+1 overlaps computing and
/// writing chunk k; the reads were a third of compute's time at 1M households).
/// Ends with the roster, at the first error (sent on), or when no one listens.
/// The writer's own rows never matter here: a chunk's households come after every
/// household already written, and this month's lines are for those alone.
async fn read_ahead(
    store: Store,
    query: ChunkQuery,
    chunks: tokio::sync::mpsc::Sender<anyhow::Result<ChunkInputs>>,
) -> anyhow::Result<()> {
    let mut reader = store.begin_read().await?;
    let mut after = String::new();
    loop {
        let chunk = match read_chunk(&mut reader, &query, &after).await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(error) => {
                // The computing side reports it; this task only stops.
                let _ = chunks.send(Err(error)).await;
                return Ok(());
            }
        };
        after = chunk
            .households
            .last()
            .map(|versions| versions[0].household_id.as_str().to_string())
            .expect("a chunk read has households");
        // A chunk short of the limit is the last: its read already went through every
        // id after it. Asking again would scan from there to the roster's end for
        // nothing, which in a scoped run means past every later scope's households
        // (1.2-1.8 s a scope at 2M on PostgreSQL, issue #7).
        let last = chunk.households.len() < CHUNK_HOUSEHOLDS as usize;
        if chunks.send(Ok(chunk)).await.is_err() || last {
            break;
        }
    }
    reader.release_cache_memory().await?;
    reader.rollback().await?;
    Ok(())
}

async fn read_chunk(
    reader: &mut StoreTx,
    query: &ChunkQuery,
    after: &str,
) -> anyhow::Result<Option<ChunkInputs>> {
    let households = reader
        .household_chunk(query.month, &query.scope, after, CHUNK_HOUSEHOLDS)
        .await?;
    let (Some(first), Some(last)) = (households.first(), households.last()) else {
        return Ok(None);
    };
    let first_id = first[0].household_id.as_str().to_string();
    let last_id = last[0].household_id.as_str().to_string();
    let decisions = group_by_household(reader.decisions_between(&first_id, &last_id).await?, |d| {
        d.household_id.as_str().to_string()
    });
    let history = group_by_household(
        reader
            .prior_lines_between(&query.programme, query.month, &first_id, &last_id)
            .await?,
        |(id, _)| id.clone(),
    );
    Ok(Some(ChunkInputs {
        households,
        decisions,
        history,
    }))
}

/// The month's shared accounts and shared ID numbers (P15), for run creation and
/// `work plan` alike: one ordered pass counted in this process (SQLite inside the
/// transaction, PostgreSQL by a `COPY` stream on a connection of its own). Above
/// `SHARED_VALUES_IN_MEMORY_MAX` versions, two grouped scans side by side, a core each,
/// the second on a read transaction of its own. Another connection sees the same
/// roster: no import commits while the caller holds `Inputs`.
pub(crate) async fn find_shared_values(
    store: &Store,
    transaction: &mut StoreTx,
    month: Month,
) -> anyhow::Result<(HashSet<String>, HashSet<String>)> {
    if let Some(values) = transaction.shared_values_in_one_pass(store, month).await? {
        return Ok(values);
    }
    let mut reader = store.begin_read().await?;
    let values = tokio::try_join!(
        transaction.shared_values("account_number", month),
        reader.shared_values("head_id_number", month)
    )?;
    reader.rollback().await?;
    Ok(values)
}

/// Whether an earlier run covered the household: by the region it had in that run's
/// month, so a household that moved since is still owed a month its old region's
/// run failed to pay, and is not owed one its new region never ran.
fn covered_then(versions: &[Household], run: &StandingRun) -> bool {
    versions
        .iter()
        .filter(|version| version.approved_from <= run.month)
        .max_by_key(|version| version.approved_from)
        .is_some_and(|version| version.region_code.as_str().starts_with(&run.scope))
}

fn group_by_household<T>(items: Vec<T>, key: impl Fn(&T) -> String) -> HashMap<String, Vec<T>> {
    let mut grouped: HashMap<String, Vec<T>> = HashMap::new();
    for item in items {
        grouped.entry(key(&item)).or_default().push(item);
    }
    grouped
}
