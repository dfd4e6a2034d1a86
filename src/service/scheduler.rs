//! The scheduler: each month, on the configured day, computes the month's run for each
//! configured scope (as user `scheduler`), reminds while approvals are missing, and
//! exports once approved. `tick` is a plain async fn of the time it is handed, so tests
//! drive it with any clock; the service loop calls it when cron fires and every
//! `poll_seconds` (which also catches up after the service was down on the day).
//!
//! **Invariants:** the month of a tick is the month on the wall in the schedule's named
//! zone (FAILURES #15: 2024-02-29 16:30 UTC is 2024-03 in Asia/Shanghai); the
//! scheduler computes at most one run per programme, month and scope, ever: it creates
//! only where no run (not even a cancelled one) exists for that key, under a database
//! lease that one instance holds at a time (FAILURES #1), and `create_run` refuses a
//! second standing run anyway. A run a person cancelled is left for a person to redo.

use crate::config::Config;
use crate::domain::month::Month;
use crate::engine::approve::approvals_complete;
use crate::engine::create_run::{create_run, scope_label, CreateRunRequest};
use crate::engine::export::{export_run, ExportRequest};
use crate::engine::Refusal;
use crate::run::RunState;
use crate::service::settings::Schedule;
use crate::store::{RunRecord, Store};
use chrono::{DateTime, Datelike, Duration, TimeZone, Utc};
use chrono_tz::Tz;

/// Who the scheduler acts as in the audit log.
pub const SCHEDULER_USER: &str = "scheduler";

/// What one tick did.
#[derive(Debug, Default, serde::Serialize)]
pub struct TickOutcome {
    pub month: String,
    /// False when another instance held the lease: this tick did nothing.
    pub lease_taken: bool,
    pub creation_due: bool,
    pub created: Vec<String>,
    pub awaiting_approval: Vec<String>,
    pub exported: Vec<String>,
}

/// The month on the wall in `zone` at `now`.
pub fn local_month(now: DateTime<Utc>, zone: Tz) -> Month {
    let local = now.with_timezone(&zone);
    Month::new(local.year(), local.month()).expect("a calendar month")
}

/// Whether the schedule has fired in `now`'s local month by `now`: its first firing
/// from the start of that month is at or before `now`.
pub fn creation_due(schedule: &cron::Schedule, zone: Tz, now: DateTime<Utc>) -> bool {
    let month = local_month(now, zone);
    let Some(start) = zone
        .from_local_datetime(&month.first_day().and_hms_opt(0, 0, 0).expect("midnight"))
        .earliest()
    else {
        return false;
    };
    let just_before = start - Duration::seconds(1);
    schedule
        .after(&just_before)
        .next()
        .is_some_and(|fire| local_month(fire.with_timezone(&Utc), zone) == month && fire <= now)
}

/// The scheduler's lease name for a programme.
fn lease_name(programme: &str) -> String {
    format!("schedule:{programme}")
}

/// One tick at `now` by instance `holder`.
pub async fn tick(
    now: DateTime<Utc>,
    store: &Store,
    config: &Config,
    schedule: &Schedule,
    holder: &str,
) -> anyhow::Result<TickOutcome> {
    let mut outcome = TickOutcome {
        month: local_month(now, schedule.timezone).to_string(),
        creation_due: creation_due(&schedule.cron, schedule.timezone, now),
        ..TickOutcome::default()
    };
    let lease = Lease::new(
        store,
        lease_name(&schedule.programme),
        holder,
        now,
        schedule.lease_seconds,
    );
    if !lease.take().await? {
        tracing::info!(month = %outcome.month, "schedule tick: another instance holds the lease");
        return Ok(outcome);
    }
    outcome.lease_taken = true;
    let worked = work(now, store, config, schedule, &lease, &mut outcome).await;
    lease.release().await?;
    worked.map(|()| outcome)
}

async fn work(
    now: DateTime<Utc>,
    store: &Store,
    config: &Config,
    schedule: &Schedule,
    lease: &Lease<'_>,
    outcome: &mut TickOutcome,
) -> anyhow::Result<()> {
    let month = local_month(now, schedule.timezone);
    let now_text = crate::clock::format_utc(now);
    if outcome.creation_due {
        for scope in &schedule.scopes {
            if let Some(run_id) =
                create_if_absent(store, config, schedule, month, scope, &now_text).await?
            {
                outcome.created.push(run_id);
            }
            lease.renew().await?;
        }
    }
    for run in store
        .runs_of_month(&schedule.programme, &month.to_string())
        .await?
    {
        if !schedule.scopes.contains(&run.scope) {
            continue;
        }
        follow_up(store, config, schedule, &run, &now_text, outcome).await?;
        lease.renew().await?;
    }
    Ok(())
}

/// Creates the month's run for `scope` unless any run exists for it.
async fn create_if_absent(
    store: &Store,
    config: &Config,
    schedule: &Schedule,
    month: Month,
    scope: &str,
    now_text: &str,
) -> anyhow::Result<Option<String>> {
    let existing = store
        .runs_of_month(&schedule.programme, &month.to_string())
        .await?;
    if existing.iter().any(|run| run.scope == scope) {
        return Ok(None);
    }
    let request = CreateRunRequest {
        programme: schedule.programme.clone(),
        month,
        scope: scope.to_string(),
        pay_date: month
            .first_day()
            .with_day(config.run.pay_day)
            .expect("pay_day is 1..=28"),
        user: SCHEDULER_USER.to_string(),
        now_text: now_text.to_string(),
        reserved_run_no: None,
    };
    match create_run(store, config, &request).await {
        Ok(run) => {
            tracing::info!(run_id = %run.run_id, scope = scope_label(scope), "schedule: run computed; approvals needed");
            Ok(Some(run.run_id))
        }
        Err(error) => match error.downcast_ref::<Refusal>() {
            Some(refusal) => {
                tracing::warn!(month = %month, scope = scope_label(scope), "schedule: run not created: {}", refusal.summary);
                Ok(None)
            }
            None => Err(error),
        },
    }
}

/// Reminds about missing approvals; exports an approved run.
async fn follow_up(
    store: &Store,
    config: &Config,
    schedule: &Schedule,
    run: &RunRecord,
    now_text: &str,
    outcome: &mut TickOutcome,
) -> anyhow::Result<()> {
    match run.state()? {
        RunState::Computed => {
            let complete = approvals_complete(store, run).await?;
            let have = store
                .approvals(&run.run_id)
                .await?
                .iter()
                .filter(|a| a.digest == run.digest)
                .count();
            tracing::warn!(run_id = %run.run_id, approvals = have, required = run.approvals_required, complete, "schedule: approvals outstanding");
            outcome.awaiting_approval.push(run.run_id.clone());
        }
        RunState::Approved => {
            let out_dir = schedule.export_dir.join(&run.run_id);
            let request = ExportRequest {
                run_id: &run.run_id,
                out_dir: &out_dir,
                key_path: schedule.export_key.as_deref(),
                user: SCHEDULER_USER,
                now_text,
            };
            let exported = export_run(store, config, &request).await?;
            tracing::info!(run_id = %run.run_id, files = exported.manifest.file_count, "schedule: run exported");
            outcome.exported.push(run.run_id.clone());
        }
        RunState::Exported | RunState::Reconciled | RunState::Cancelled => {}
    }
    Ok(())
}

/// A named database lease held by one instance while it works.
pub struct Lease<'a> {
    store: &'a Store,
    name: String,
    holder: &'a str,
    now: DateTime<Utc>,
    /// The real time the lease object was made (elapsed time is measured from it).
    started: std::time::Instant,
    seconds: i64,
}

impl<'a> Lease<'a> {
    pub fn new(
        store: &'a Store,
        name: String,
        holder: &'a str,
        now: DateTime<Utc>,
        seconds: i64,
    ) -> Lease<'a> {
        Lease {
            store,
            name,
            holder,
            now,
            started: std::time::Instant::now(),
            seconds,
        }
    }

    fn expiry(&self) -> String {
        // From the tick's time plus the time spent working since, so a long tick
        // renews into the future whatever clock the tick was handed.
        let elapsed = Duration::from_std(self.started.elapsed()).unwrap_or(Duration::zero());
        crate::clock::format_utc(self.now + elapsed + Duration::seconds(self.seconds))
    }

    pub async fn take(&self) -> anyhow::Result<bool> {
        let now = crate::clock::format_utc(self.now);
        Ok(self
            .store
            .take_lease(&self.name, self.holder, &now, &self.expiry())
            .await?)
    }

    pub async fn renew(&self) -> anyhow::Result<()> {
        let held = self
            .store
            .renew_lease(&self.name, self.holder, &self.expiry())
            .await?;
        anyhow::ensure!(
            held,
            "lease {} lost: another instance took it; stopping",
            self.name
        );
        Ok(())
    }

    pub async fn release(&self) -> anyhow::Result<()> {
        Ok(self.store.release_lease(&self.name, self.holder).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn month_follows_the_shanghai_wall_clock() {
        let zone = chrono_tz::Asia::Shanghai;
        assert_eq!(
            local_month(utc("2024-02-29T16:30:00Z"), zone).to_string(),
            "2024-03"
        );
        assert_eq!(
            local_month(utc("2024-02-29T15:59:59Z"), zone).to_string(),
            "2024-02"
        );
    }

    #[test]
    fn creation_is_due_from_the_configured_day_in_the_zone() {
        let zone = chrono_tz::Asia::Shanghai;
        let cron = cron::Schedule::from_str("0 0 9 20 * *").unwrap();
        // 09:00 on the 20th in Shanghai is 01:00 UTC.
        assert!(!creation_due(&cron, zone, utc("2026-11-20T00:59:59Z")));
        assert!(creation_due(&cron, zone, utc("2026-11-20T01:00:00Z")));
        assert!(creation_due(&cron, zone, utc("2026-11-30T15:59:00Z")));
        // Already December on the wall: not due until 20 December.
        assert!(!creation_due(&cron, zone, utc("2026-11-30T16:00:00Z")));
        // At 00:30 on the 1st in Shanghai, a "1st of the month" schedule is due for March.
        let first = cron::Schedule::from_str("0 0 0 1 * *").unwrap();
        assert!(creation_due(&first, zone, utc("2024-02-29T16:30:00Z")));
    }
}
