//! `disburse work plan|run|list`: the national month's verbs (issue #7), argument
//! checks and answers around `engine::work`.

use crate::cli::args::{WorkCommand, WorkListArgs, WorkPlanArgs, WorkRunArgs};
use crate::cli::run::pay_date_of;
use crate::cli::{Context, Refusal};
use crate::domain::month::Month;
use crate::engine::create_run::scope_label;
use crate::engine::work::{plan_month, run_worker, PlanRequest, WorkerOptions};
use crate::store::WorkItem;
use std::fmt::Write as _;

pub async fn work_command(context: &Context, command: WorkCommand) -> anyhow::Result<()> {
    match command {
        WorkCommand::Plan(args) => plan(context, args).await,
        WorkCommand::Run(args) => run(context, args).await,
        WorkCommand::List(args) => list(context, args).await,
    }
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
    if args.lease_seconds < 1 {
        return Err(Refusal::message("--lease-seconds: at least 1").into());
    }
    let config = context.config()?;
    let options = WorkerOptions {
        holder: args.worker.unwrap_or_else(default_worker_name),
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
    let human = format!(
        "worker {}: computed {} [{}], exported {} [{}], failed {} [{}]",
        options.holder,
        report.computed.len(),
        report.computed.join(" "),
        report.exported.len(),
        report.exported.join(" "),
        report.failed.len(),
        report.failed.join(" ")
    );
    context.answer(
        &human,
        serde_json::json!({"worker": options.holder, "report": report}),
    );
    Ok(())
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
