//! `disburse work plan|run|list`: the national month's verbs (issue #7), argument
//! checks and answers around `engine::work`.

use crate::cli::args::{WorkCancelArgs, WorkCommand, WorkListArgs, WorkPlanArgs, WorkRunArgs};
use crate::cli::run::pay_date_of;
use crate::cli::{Context, Refusal};
use crate::domain::month::Month;
use crate::engine::approve::Actor;
use crate::engine::create_run::scope_label;
use crate::engine::work::{
    cancel_planned, plan_month, run_worker, PlanRequest, WorkerOptions, LEASE_SECONDS_MAX,
};
use crate::store::WorkItem;
use std::fmt::Write as _;

pub async fn work_command(context: &Context, command: WorkCommand) -> anyhow::Result<()> {
    match command {
        WorkCommand::Plan(args) => plan(context, args).await,
        WorkCommand::Run(args) => run(context, args).await,
        WorkCommand::List(args) => list(context, args).await,
        WorkCommand::Cancel(args) => cancel(context, args).await,
    }
}

async fn cancel(context: &Context, args: WorkCancelArgs) -> anyhow::Result<()> {
    let now = context.now_text()?;
    let actor = Actor {
        user: &context.user,
        now_text: &now,
    };
    let item = cancel_planned(context.store().await?, &actor, args.work_id, &args.reason).await?;
    let human = format!(
        "work item {} ({} {} scope {}) cancelled; run number {} stays unused",
        item.work_id,
        item.programme,
        item.month,
        scope_label(&item.scope),
        item.run_no
    );
    context.answer(&human, serde_json::json!({"item": item}));
    Ok(())
}

fn month_arg(text: &str) -> Result<Month, Refusal> {
    Month::parse(text).map_err(|e| Refusal::message(format!("--month {text:?}: {e}")))
}

async fn plan(context: &Context, args: WorkPlanArgs) -> anyhow::Result<()> {
    let config = context.config()?;
    let month = month_arg(&args.month)?;
    let request = PlanRequest {
        programme: args.programme,
        month,
        scopes: args
            .regions
            .split(',')
            .map(|scope| scope.trim().to_string())
            .collect(),
        pay_date: pay_date_of(args.pay_date.as_deref(), month, &config)?,
        user: context.user.clone(),
        now_text: context.now_text()?,
    };
    let items = plan_month(context.store().await?, &request).await?;
    let human = format!(
        "{} {} planned: {} scopes\n{}",
        request.programme,
        month,
        request.scopes.len(),
        table(&items)
    );
    context.answer(&human, serde_json::json!({"items": items}));
    Ok(())
}

async fn run(context: &Context, args: WorkRunArgs) -> anyhow::Result<()> {
    if !(1..=LEASE_SECONDS_MAX).contains(&args.lease_seconds) {
        return Err(Refusal::message(format!(
            "--lease-seconds {}: 1 to {LEASE_SECONDS_MAX}",
            args.lease_seconds
        ))
        .into());
    }
    let config = context.config()?;
    // The name the operator reads, and a token of this process's own: two workers
    // given one name (or two containers that are both process 1 on one host name)
    // never pass for each other when a lease is checked.
    let name = args.worker.unwrap_or_else(default_worker_name);
    let options = WorkerOptions {
        holder: format!("{name}#{}", process_token()?),
        lease_seconds: args.lease_seconds,
        out_dir: args.out,
        key_path: args.key,
        user: context.user.clone(),
    };
    let report = run_worker(
        context.store().await?,
        &config,
        &options,
        crate::clock::now_utc,
    )
    .await?;
    let mut human = format!("worker {}:", options.holder);
    let lists = [
        ("computed", &report.computed),
        ("exported", &report.exported),
        (
            "exported before (files not written again)",
            &report.exported_before,
        ),
        ("failed (see work list)", &report.failed),
        ("lease lost", &report.lease_lost),
    ];
    for (label, runs) in lists {
        let _ = write!(human, "\n  {label}: {} [{}]", runs.len(), runs.join(" "));
    }
    context.answer(
        &human,
        serde_json::json!({"worker": options.holder, "report": report}),
    );
    Ok(())
}

fn process_token() -> anyhow::Result<String> {
    let mut bytes = [0u8; 6];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| anyhow::anyhow!("no randomness for the worker's token"))?;
    Ok(hex::encode(bytes))
}

fn default_worker_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|name| name.trim().to_string())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "host".to_string());
    format!("{host}:{}", std::process::id())
}

async fn list(context: &Context, args: WorkListArgs) -> anyhow::Result<()> {
    let month = month_arg(&args.month)?;
    let items = context
        .store()
        .await?
        .work_items(&args.programme, month)
        .await?;
    let human = format!(
        "{} {}: {} work items\n{}",
        args.programme,
        month,
        items.len(),
        table(&items)
    );
    context.answer(&human, serde_json::json!({"items": items}));
    Ok(())
}

fn table(items: &[WorkItem]) -> String {
    let mut text = String::from(
        "  work  scope   run_no  step       attempts  holder (lease until)  last error",
    );
    for item in items {
        let holder = match (&item.holder, &item.lease_until) {
            (Some(holder), Some(until)) => format!("{holder} ({until})"),
            _ => "-".to_string(),
        };
        let _ = write!(
            text,
            "\n  {:>4}  {:<6} {:>7}  {:<9} {:>9}  {}  {}",
            item.work_id,
            scope_label(&item.scope),
            item.run_no,
            item.step,
            item.attempts,
            holder,
            item.last_error.as_deref().unwrap_or("")
        );
    }
    text
}
