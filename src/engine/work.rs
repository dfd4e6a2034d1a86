//! The national month (issue #7): `work plan` splits a month into scopes (region
//! prefixes) and reserves a run number for each; `work run` is one worker, and any
//! number of them on any number of machines share one PostgreSQL: each claims an item
//! under a lease (renewed while it works), computes its run, and once the approvers
//! have approved it, exports it.
//!
//! **Invariants:** the planned scopes of a month never overlap each other, a standing
//! run, or another open plan, so no household is in two of them. A scope's run number
//! is fixed when it is planned, so a worker that takes over an item whose worker died
//! computes the same run (same id, same lines, same digest) or finds it committed and
//! leaves it as it is; an export that is repeated writes the same bytes. A worker only
//! moves an item it holds, and only forward: compute → approve → done, or failed with
//! the reason, or cancelled with its run.

use crate::config::Config;
use crate::domain::month::Month;
use crate::engine::create_run::{create_run, find_shared_values, scope_label, CreateRunRequest};
use crate::engine::export::{export_run, ExportRequest};
use crate::engine::{AbortOnDrop, Refusal};
use crate::run::RunState;
use crate::store::{
    is_region_scope, scopes_overlap, CancelWork, Store, TxLock, WorkItem, WorkStep,
    SCOPE_DIGITS_MAX,
};
use chrono::{DateTime, NaiveDate, Utc};
use std::path::PathBuf;

/// Scopes one plan may hold: a country's counties number about 2,900.
pub const PLAN_SCOPES_MAX: usize = 5_000;

/// Claims of one item's step before the item is marked failed: an error that is not a
/// refusal (the database went away, the disk filled) is retried by the next claim, but
/// not forever.
pub const WORK_ATTEMPTS_MAX: i64 = 3;

/// A month to plan.
pub struct PlanRequest {
    pub programme: String,
    pub month: Month,
    pub scopes: Vec<String>,
    pub pay_date: NaiveDate,
    pub user: String,
    pub now_text: String,
}

/// Plans the month: one work item per scope, each with its reserved run number, in one
/// transaction with its audit entry. Refuses scopes that overlap one another, a run
/// that stands for the month, or an open plan.
pub async fn plan_month(store: &Store, request: &PlanRequest) -> anyhow::Result<Vec<WorkItem>> {
    check_scopes(&request.scopes)?;
    let mut transaction = store.begin().await?;
    transaction.lock(TxLock::RunNumber).await?;
    let month_text = request.month.to_string();
    for run in transaction.standing_runs(&request.programme).await? {
        if let Some(scope) = overlapping(&request.scopes, &run.scope) {
            if run.month >= request.month {
                return Err(Refusal::message(format!(
                    "scope {} overlaps run {} ({} scope {}): cancel it first, or plan other scopes",
                    scope_label(scope),
                    run.run_id,
                    run.month,
                    scope_label(&run.scope)
                ))
                .into());
            }
        }
    }
    for item in transaction.open_work_items(&request.programme).await? {
        // An earlier month's item already computed stands as its run does; one not yet
        // computed would be computed after this month's (months go in order).
        let blocks = item.month >= month_text || item.step == WorkStep::Compute;
        if let Some(scope) = overlapping(&request.scopes, &item.scope).filter(|_| blocks) {
            return Err(Refusal::message(format!(
                "scope {} overlaps work item {} ({} scope {}, {}): finish or cancel it first",
                scope_label(scope),
                item.work_id,
                item.month,
                scope_label(&item.scope),
                item.step
            ))
            .into());
        }
    }
    let first_run_no = transaction.next_run_no().await?;
    let pay_date = request.pay_date.to_string();
    for (offset, scope) in request.scopes.iter().enumerate() {
        let run_no = first_run_no + i64::try_from(offset).expect("scopes are few");
        anyhow::ensure!(
            run_no <= crate::run::RUN_NO_MAX,
            "run numbers exhausted ({})",
            crate::run::RUN_NO_MAX
        );
        transaction
            .insert_work_item(
                &request.programme,
                request.month,
                scope,
                &pay_date,
                run_no,
                &request.user,
                &request.now_text,
            )
            .await?;
    }
    let detail = format!(
        "month={month_text} pay_date={pay_date} scopes={} run_no={first_run_no}..",
        request.scopes.join(",")
    );
    transaction
        .append_audit(
            &request.now_text,
            &request.user,
            "work.plan",
            &request.programme,
            &detail,
        )
        .await?;
    transaction.commit().await?;
    // The plan stands once committed: the shared values are a cache run creation fills
    // itself when it is missing, so failing to fill it now is no reason to report the
    // plan as failed (a second `work plan` would be refused as overlapping it).
    if let Err(error) = keep_shared_values(store, request.month).await {
        tracing::warn!(%error, "the month's shared values were not kept at plan time; the first run will find them");
    }
    Ok(store.work_items(&request.programme, request.month).await?)
}

/// Finds and keeps the month's shared values (P15) once, before any worker starts:
/// otherwise every worker's first run misses the cache at the same moment and each
/// scans the whole roster twice (47 s of a 2M month's 100 s compute with two workers).
async fn keep_shared_values(store: &Store, month: Month) -> anyhow::Result<()> {
    let mut transaction = store.begin().await?;
    transaction.lock_shared(TxLock::Inputs).await?;
    let generation = transaction.roster_generation().await?;
    if transaction
        .cached_shared_values(month, generation)
        .await?
        .is_none()
    {
        let (accounts, id_numbers) = find_shared_values(store, &mut transaction, month).await?;
        transaction
            .keep_shared_values(month, generation, &accounts, &id_numbers)
            .await?;
    }
    transaction.commit().await?;
    Ok(())
}

/// Cancels a planned scope before it is computed (a wrong plan, a scope to be done
/// otherwise), with the reason, audited. Waits for a compute of that scope in flight
/// (the scope's lock) and refuses if the run was computed: that is `run cancel`'s.
pub async fn cancel_planned(
    store: &Store,
    actor: &crate::engine::approve::Actor<'_>,
    work_id: i64,
    reason: &str,
) -> anyhow::Result<WorkItem> {
    if reason.trim().is_empty() {
        return Err(Refusal::message("--reason: a cancellation needs a reason").into());
    }
    let mut transaction = store.begin().await?;
    transaction.lock_shared(TxLock::Inputs).await?;
    let no_item = || Refusal::message(format!("no work item {work_id}"));
    let scope = transaction
        .work_item(work_id)
        .await?
        .ok_or_else(no_item)?
        .scope;
    transaction.lock_scope(&scope).await?;
    // Read again under the scope's lock: a compute in flight may have moved it on.
    let item = transaction.work_item(work_id).await?.ok_or_else(no_item)?;
    let run_id = crate::run::run_id(item_month(&item)?, item.run_no);
    let run_standing = transaction
        .run_state(&run_id)
        .await?
        .is_some_and(|state| state != RunState::Cancelled.as_str());
    if run_standing {
        return Err(Refusal::message(format!(
            "work item {work_id}: run {run_id} was computed; cancel it with `run cancel {run_id}`"
        ))
        .into());
    }
    let cancelled = item.step == WorkStep::Compute
        && transaction
            .cancel_work(CancelWork::Waiting { work_id }, reason, actor.now_text)
            .await?;
    if !cancelled {
        return Err(Refusal::message(format!(
            "work item {work_id} is {}, not waiting to be computed",
            item.step
        ))
        .into());
    }
    let detail = format!(
        "scope={} run_no={} reason={reason}",
        scope_label(&item.scope),
        item.run_no
    );
    transaction
        .append_audit(actor.now_text, actor.user, "work.cancel", &run_id, &detail)
        .await?;
    let cancelled = transaction.work_item(work_id).await?;
    transaction.commit().await?;
    Ok(cancelled.expect("the item just cancelled exists"))
}

/// Scopes are region prefixes, at least one, none a prefix of another (the whole
/// country is the one scope "", alone).
fn check_scopes(scopes: &[String]) -> Result<(), Refusal> {
    if scopes.is_empty() || scopes.len() > PLAN_SCOPES_MAX {
        return Err(Refusal::message(format!(
            "--regions: 1 to {PLAN_SCOPES_MAX} region prefixes, comma-separated"
        )));
    }
    for scope in scopes {
        if !is_region_scope(scope) {
            return Err(Refusal::message(format!(
                "--regions: {scope:?} is not a region prefix of up to {SCOPE_DIGITS_MAX} digits"
            )));
        }
    }
    let mut sorted: Vec<&String> = scopes.iter().collect();
    sorted.sort();
    // Sorted, a prefix comes right before the scopes it covers.
    for pair in sorted.windows(2) {
        if pair[1].starts_with(pair[0].as_str()) {
            return Err(Refusal::message(format!(
                "--regions: {} and {} overlap (one is a prefix of the other)",
                scope_label(pair[0]),
                scope_label(pair[1])
            )));
        }
    }
    Ok(())
}

fn overlapping<'a>(scopes: &'a [String], other: &str) -> Option<&'a String> {
    scopes.iter().find(|scope| scopes_overlap(scope, other))
}

/// One worker's settings.
pub struct WorkerOptions {
    /// Names the worker in leases (host and process by default).
    pub holder: String,
    pub lease_seconds: i64,
    /// Each exported run's files go to `<out_dir>/<run_id>/`.
    pub out_dir: PathBuf,
    pub key_path: Option<PathBuf>,
    pub user: String,
}

/// What one worker did, item by item.
#[derive(Debug, Default, serde::Serialize)]
pub struct WorkerReport {
    pub computed: Vec<String>,
    pub exported: Vec<String>,
    /// Runs exported before this worker came to them (by hand, by the service, or by a
    /// worker that died before marking its item done): their files are where that
    /// export wrote them and are not written a second time here.
    pub exported_before: Vec<String>,
    pub failed: Vec<String>,
    /// Items whose lease ran out while this worker was on them; their new holder
    /// decides what they became.
    pub lease_lost: Vec<String>,
}

/// What a step did.
#[derive(Clone, Copy, Debug)]
enum Done {
    Computed,
    Exported,
    ExportedBefore,
}

impl Done {
    fn next_step(self) -> WorkStep {
        match self {
            Done::Computed => WorkStep::Approve,
            Done::Exported | Done::ExportedBefore => WorkStep::Done,
        }
    }
}

/// Longest lease a worker may ask for (a day).
pub const LEASE_SECONDS_MAX: i64 = 86_400;

/// Characters of an error kept on a work item.
const LAST_ERROR_CHARS_MAX: usize = 1_000;

/// An error as `work list` shows it: digit runs masked (P13: no ID or account number
/// is kept in the work table) and cut to `LAST_ERROR_CHARS_MAX`.
fn error_for_operator(error: &anyhow::Error) -> String {
    crate::domain::mask::mask_digits_in_text(&format!("{error:#}"))
        .chars()
        .take(LAST_ERROR_CHARS_MAX)
        .collect()
}

/// Claims and works items until none is left that a worker can take (the rest wait
/// for approvers or other workers). An item it gives up on (`gives_up`) fails with the
/// reason and the worker goes on; any other error releases the item for a later claim
/// and stops the worker with that error, since it is likely to stop the next item too.
pub async fn run_worker(
    store: &Store,
    config: &Config,
    options: &WorkerOptions,
    clock: Clock,
) -> anyhow::Result<WorkerReport> {
    assert!(
        (1..=LEASE_SECONDS_MAX).contains(&options.lease_seconds),
        "a lease lasts 1 to {LEASE_SECONDS_MAX} seconds"
    );
    let mut report = WorkerReport::default();
    loop {
        let now = clock()?;
        let lease_until = now + chrono::Duration::seconds(options.lease_seconds);
        let now_text = crate::clock::format_utc(now);
        let claimed = store
            .claim_work(
                &options.holder,
                &now_text,
                &crate::clock::format_utc(lease_until),
                WORK_ATTEMPTS_MAX,
            )
            .await?;
        let Some(item) = claimed else {
            return Ok(report);
        };
        tracing::info!(work_id = item.work_id, scope = %scope_label(&item.scope), step = %item.step, attempt = item.attempts, "claimed");
        // Not on SQLite: the step's own write transaction would hold each renewal for
        // the busy timeout, and one worker serves an SQLite file (README), so nobody
        // is there to take the item over.
        let renewal = (store.backend_name() == "postgres").then(|| {
            tokio::spawn(renew_lease(
                store.clone(),
                item.work_id,
                options.holder.clone(),
                options.lease_seconds,
                clock,
            ))
        });
        let _stop_renewing = renewal.map(|task| AbortOnDrop(task.abort_handle()));
        let outcome = work_item(store, config, options, &item, &now_text).await;
        let finished_at = crate::clock::format_utc(clock()?);
        let step = item.step;
        let (step, error) = match &outcome {
            Ok(done) => (done.next_step(), None),
            Err(error) if gives_up(error, step, item.attempts) => {
                (WorkStep::Failed, Some(error_for_operator(error)))
            }
            Err(error) => (step, Some(error_for_operator(error))),
        };
        let held = store
            .finish_work(
                item.work_id,
                &options.holder,
                step,
                error.as_deref(),
                &finished_at,
            )
            .await?;
        let run_id = crate::run::run_id(item_month(&item)?, item.run_no);
        if !held {
            tracing::warn!(
                work_id = item.work_id,
                "lease lost while working: the item's new holder decides"
            );
            report.lease_lost.push(run_id);
            continue;
        }
        match (outcome, step) {
            (Ok(Done::Computed), _) => report.computed.push(run_id),
            (Ok(Done::Exported), _) => report.exported.push(run_id),
            (Ok(Done::ExportedBefore), _) => report.exported_before.push(run_id),
            (Err(_), WorkStep::Failed) => report.failed.push(run_id),
            (Err(error), _) => return Err(error.context(format!("work item {}", item.work_id))),
        }
    }
}

/// The clock a worker reads (`crate::clock::now_utc` outside tests).
pub type Clock = fn() -> anyhow::Result<DateTime<Utc>>;

/// Keeps a lease alive while its worker works: every third of the lease it is
/// extended to a whole lease from now, so a step longer than the lease (a big scope,
/// a wait behind an import) is not taken over while its worker is alive. Stops when
/// the lease was lost, or when aborted as the step ends. A renewal that fails (the
/// database busy) is tried again at the next tick.
async fn renew_lease(store: Store, work_id: i64, holder: String, lease_seconds: i64, clock: Clock) {
    // In milliseconds, so a short lease is still renewed well before it runs out.
    let period = std::time::Duration::from_millis(
        u64::try_from(lease_seconds.saturating_mul(1000) / 3)
            .unwrap_or(0)
            .max(1),
    );
    loop {
        tokio::time::sleep(period).await;
        let Ok(now) = clock() else { continue };
        let until = crate::clock::format_utc(now + chrono::Duration::seconds(lease_seconds));
        match store.renew_work(work_id, &holder, &until).await {
            Ok(true) => tracing::debug!(work_id, %until, "lease renewed"),
            Ok(false) => return,
            Err(error) => tracing::warn!(work_id, %error, "lease not renewed; trying again"),
        }
    }
}

/// A compute refused (an overlapping run stands, the reservation is not this scope's)
/// stays refused, so its item fails at once. An export refused is most likely the
/// worker's own setup (its key, its directory), so the item waits for another claim,
/// like any other error, until its attempts run out.
fn gives_up(error: &anyhow::Error, step: WorkStep, attempts: i64) -> bool {
    (error.is::<Refusal>() && step == WorkStep::Compute) || attempts >= WORK_ATTEMPTS_MAX
}

/// One step of one item; the step the item moves to.
async fn work_item(
    store: &Store,
    config: &Config,
    options: &WorkerOptions,
    item: &WorkItem,
    now_text: &str,
) -> anyhow::Result<Done> {
    match item.step {
        WorkStep::Compute => {
            let request = CreateRunRequest {
                programme: item.programme.clone(),
                month: item_month(item)?,
                scope: item.scope.clone(),
                pay_date: crate::domain::month::parse_date(&item.pay_date)
                    .map_err(|error| anyhow::anyhow!("work item pay date: {error}"))?,
                user: options.user.clone(),
                now_text: now_text.to_string(),
                reserved_run_no: Some(item.run_no),
            };
            create_run(store, config, &request).await?;
            Ok(Done::Computed)
        }
        WorkStep::Approve => {
            let run_id = crate::run::run_id(item_month(item)?, item.run_no);
            // A worker does not export again a run recorded as exported (two copies
            // could be sent twice).
            if run_is_exported(store, &run_id).await? {
                return Ok(Done::ExportedBefore);
            }
            let out_dir = options.out_dir.join(&run_id);
            let request = ExportRequest {
                run_id: &run_id,
                out_dir: &out_dir,
                key_path: options.key_path.as_deref(),
                user: &options.user,
                now_text,
            };
            match export_run(store, config, &request).await {
                Ok(_) => Ok(Done::Exported),
                // A worker whose lease ran out during a slow export, and the one that
                // took the item over, wait on the run's lock; the second is refused
                // once the first has committed. The run is exported: nothing failed.
                Err(_) if run_is_exported(store, &run_id).await? => Ok(Done::ExportedBefore),
                Err(error) => Err(error),
            }
        }
        other => anyhow::bail!("work item {} is {other}: not a worker's", item.work_id),
    }
}

async fn run_is_exported(store: &Store, run_id: &str) -> anyhow::Result<bool> {
    let run = store.run(run_id).await?;
    Ok(run.is_some_and(|run| run.state == RunState::Exported.as_str()))
}

fn item_month(item: &WorkItem) -> anyhow::Result<Month> {
    Month::parse(&item.month)
        .map_err(|error| anyhow::anyhow!("work item {} month: {error}", item.work_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scopes(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn plan_scopes_must_not_overlap() {
        assert!(check_scopes(&scopes(&["1101", "1102", "12"])).is_ok());
        for bad in [
            &["11", "1101"][..],
            &["1101", "110"],
            &["", "11"],
            &["11", "11"],
            &[],
            &["1a"],
            &["1234567"],
        ] {
            assert!(check_scopes(&scopes(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn overlap_is_a_shared_prefix_either_way() {
        let planned = scopes(&["1101", "12"]);
        assert_eq!(
            overlapping(&planned, "11").map(String::as_str),
            Some("1101")
        );
        assert_eq!(
            overlapping(&planned, "120101").map(String::as_str),
            Some("12")
        );
        assert_eq!(overlapping(&planned, "1102"), None);
    }
}
