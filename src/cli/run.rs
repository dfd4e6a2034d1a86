//! `disburse run …`, `approver add` and `keys generate`: argument checks, the engine
//! call, and the human or JSON answer. Amounts shown in yuan; personal data never shown.

use crate::cli::args::{
    ApproverAddArgs, KeysGenerateArgs, RunCommand, RunCreateArgs, RunExportArgs,
};
use crate::cli::{Context, Refusal};
use crate::domain::money::Fen;
use crate::domain::month::{parse_date, Month};
use crate::engine::approve::{self, Actor};
use crate::engine::create_run::{create_run, scope_label, CreateRunRequest};
use crate::engine::export::{export_run, ExportRequest};
use crate::run::LINES_CSV_HEADER;
use crate::store::RunRecord;
use anyhow::Context as _;
use rust_decimal::Decimal;
use std::fmt::Write as _;
use std::io::Write as _;
use std::str::FromStr;

/// Lines read per page when streaming a run's lines.
const LINES_PAGE: i64 = 10_000;

pub async fn run_command(context: &Context, command: RunCommand) -> anyhow::Result<()> {
    match command {
        RunCommand::Create(args) => create(context, args).await,
        RunCommand::Show(args) => show(context, &args.run).await,
        RunCommand::Lines(args) => lines(context, &args.run, &args.format).await,
        RunCommand::Diff(args) => diff(context, &args.run, &args.threshold).await,
        RunCommand::Approve(args) => {
            let now = context.now_text()?;
            let actor = Actor {
                user: &context.user,
                now_text: &now,
            };
            let run =
                approve::approve_run(context.store().await?, &actor, &args.run, &args.key).await?;
            let approvals = context.store().await?.approvals(&run.run_id).await?;
            let human = format!(
                "run {} approved by {} ({} of {} approvals); state {}",
                run.run_id,
                context.user,
                approvals.iter().filter(|a| a.digest == run.digest).count(),
                run.approvals_required,
                run.state
            );
            context.answer(
                &human,
                serde_json::json!({"run_id": run.run_id, "state": run.state}),
            );
            Ok(())
        }
        RunCommand::Cancel(args) => {
            let now = context.now_text()?;
            let actor = Actor {
                user: &context.user,
                now_text: &now,
            };
            let run = approve::cancel_run(context.store().await?, &actor, &args.run, &args.reason)
                .await?;
            context.answer(
                &format!("run {} cancelled", run.run_id),
                serde_json::json!({"run_id": run.run_id, "state": run.state}),
            );
            Ok(())
        }
        RunCommand::Export(args) => export(context, args).await,
    }
}

async fn export(context: &Context, args: RunExportArgs) -> anyhow::Result<()> {
    let config = context.config()?;
    let now = context.now_text()?;
    let request = ExportRequest {
        run_id: &args.run,
        out_dir: &args.out,
        key_path: args.key.as_deref(),
        user: &context.user,
        now_text: &now,
    };
    let outcome = export_run(context.store().await?, &config, &request).await?;
    let manifest = &outcome.manifest;
    let mut human = format!(
        "run {} {}: {} files, {} payments, {} yuan, in {}",
        outcome.run.run_id,
        if outcome.reexport {
            "re-exported (identical files)"
        } else {
            "exported"
        },
        manifest.file_count,
        manifest.record_count,
        manifest.total,
        args.out.display()
    );
    for file in &manifest.files {
        let _ = write!(
            human,
            "\n  {:<20} {:<17} {:>7} payments {:>14} yuan  {} key {}",
            file.file,
            file.layout,
            file.record_count,
            file.total,
            file.signature_algorithm,
            file.key_id
        );
    }
    let _ = write!(human, "\nmanifest {}", outcome.manifest_path.display());
    context.answer(
        &human,
        serde_json::json!({"run_id": outcome.run.run_id, "state": outcome.run.state, "out": args.out, "reexport": outcome.reexport, "manifest": manifest}),
    );
    Ok(())
}

async fn create(context: &Context, args: RunCreateArgs) -> anyhow::Result<()> {
    let config = context.config()?;
    let month = Month::parse(&args.month)
        .map_err(|e| Refusal::message(format!("--month {:?}: {e}", args.month)))?;
    let pay_date = pay_date_of(args.pay_date.as_deref(), month, &config)?;
    let request = CreateRunRequest {
        programme: args.programme,
        month,
        scope: args.region.unwrap_or_default(),
        pay_date,
        user: context.user.clone(),
        now_text: context.now_text()?,
        reserved_run_no: None,
    };
    let run = create_run(context.store().await?, &config, &request).await?;
    let flags = context.store().await?.run_flag_counts(&run.run_id).await?;
    let mut human = summary(&run);
    if !flags.is_empty() {
        let listed: Vec<String> = flags
            .iter()
            .map(|(name, count)| format!("{name} {count}"))
            .collect();
        let _ = write!(human, "\nflags: {}", listed.join(", "));
    }
    context.answer(
        &human,
        serde_json::json!({"run_id": run.run_id, "run": run, "flags": flags}),
    );
    Ok(())
}

/// `--pay-date`, or the configured pay day of the month.
pub(crate) fn pay_date_of(
    text: Option<&str>,
    month: Month,
    config: &crate::config::Config,
) -> Result<chrono::NaiveDate, Refusal> {
    match text {
        Some(text) => {
            parse_date(text).map_err(|e| Refusal::message(format!("--pay-date {text:?}: {e}")))
        }
        None => Ok(month.first_day().with_day_of_month(config.run.pay_day)),
    }
}

trait WithDay {
    fn with_day_of_month(self, day: u32) -> chrono::NaiveDate;
}

impl WithDay for chrono::NaiveDate {
    fn with_day_of_month(self, day: u32) -> chrono::NaiveDate {
        use chrono::Datelike;
        self.with_day(day).expect("pay_day is 1..=28")
    }
}

fn summary(run: &RunRecord) -> String {
    format!(
        "run {} ({} {} scope {}, pay date {}): {}\n  lines {}  pay {} = {} yuan  hold {} = {} yuan\n  digest {}\n  approvals required {}",
        run.run_id,
        run.programme,
        run.month,
        scope_label(&run.scope),
        run.pay_date,
        run.state,
        run.line_count,
        run.pay_count,
        Fen::new(run.payable_fen),
        run.hold_count,
        Fen::new(run.hold_fen),
        run.digest,
        run.approvals_required
    )
}

async fn show(context: &Context, run_id: &str) -> anyhow::Result<()> {
    let store = context.store().await?;
    let run = approve::load_run(store, run_id).await?;
    let mut human = summary(&run);
    let mut json = serde_json::json!({"run": run});
    for grouping in ["region", "area", "bank", "all"] {
        let totals = store.run_group_totals(run_id, grouping).await?;
        let _ = write!(human, "\n\nby {grouping}:  status  count  base  supplements  arrears  reduction  recovery  payable");
        for total in &totals {
            let _ = write!(
                human,
                "\n  {:<8} {:<8} {:>6} {:>12} {:>12} {:>10} {:>10} {:>10} {:>12}",
                total.group,
                total.status,
                total.count,
                Fen::new(total.base_fen),
                Fen::new(total.supplements_fen),
                Fen::new(total.arrears_fen),
                Fen::new(total.reduction_fen),
                Fen::new(total.recovery_fen),
                Fen::new(total.payable_fen)
            );
        }
        json[format!("by_{grouping}")] = serde_json::to_value(&totals)?;
    }
    let flags = store.run_flag_counts(run_id).await?;
    let _ = write!(human, "\n\nflags:");
    for (name, count) in &flags {
        let _ = write!(human, "\n  {name}: {count}");
    }
    let approvals = store.approvals(run_id).await?;
    let complete = approve::approvals_complete(store, &run).await?;
    let _ = write!(
        human,
        "\n\napprovals ({}):",
        if complete { "complete" } else { "outstanding" }
    );
    for approval in &approvals {
        let current = if approval.digest == run.digest {
            "current"
        } else {
            "void: the run changed"
        };
        let _ = write!(
            human,
            "\n  {} at {} key {} ({current})",
            approval.approver, approval.approved_at, approval.key_id
        );
    }
    json["flags"] = serde_json::to_value(&flags)?;
    json["approvals"] = serde_json::to_value(&approvals)?;
    json["approvals_complete"] = serde_json::Value::Bool(complete);
    context.answer(&human, json);
    Ok(())
}

async fn lines(context: &Context, run_id: &str, format: &str) -> anyhow::Result<()> {
    if format != "csv" {
        return Err(Refusal::message(format!("--format {format:?}: only csv")).into());
    }
    let store = context.store().await?;
    approve::load_run(store, run_id).await?;
    match write_lines(store, run_id).await {
        // A reader that stops early (`| head`) is not an error of ours.
        Err(error) if is_broken_pipe(&error) => Ok(()),
        other => other,
    }
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error
        .downcast_ref::<std::io::Error>()
        .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
}

async fn write_lines(store: &crate::store::Store, run_id: &str) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    writeln!(out, "{LINES_CSV_HEADER}")?;
    let mut after = 0;
    loop {
        let page = store.run_lines_page(run_id, after, LINES_PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.line_no;
        for line in &page {
            writeln!(out, "{}", line.to_csv())?;
        }
    }
    out.flush()?;
    Ok(())
}

async fn diff(context: &Context, run_id: &str, threshold: &str) -> anyhow::Result<()> {
    let threshold = Decimal::from_str(threshold)
        .ok()
        .filter(|t| *t >= Decimal::ZERO)
        .ok_or_else(|| {
            Refusal::message(format!("--threshold {threshold:?}: a share such as 0.20"))
        })?;
    let store = context.store().await?;
    let run = approve::load_run(store, run_id).await?;
    let Some(previous) = store.previous_run(&run).await? else {
        context.answer(
            &format!("run {run_id}: no previous month's run of this scope to compare"),
            serde_json::json!({"previous": null}),
        );
        return Ok(());
    };
    let before = store.pay_amounts_by_household(&previous.run_id).await?;
    let after = store.pay_amounts_by_household(run_id).await?;
    let rows = crate::run::diff::diff_rows(&before, &after, threshold);
    let show = |fen: Option<Fen>| fen.map(|f| f.to_string()).unwrap_or_default();
    let mut human = format!(
        "run {run_id} against {}: change,household_id,before,after",
        previous.run_id
    );
    for row in &rows {
        let _ = write!(
            human,
            "\n{},{},{},{}",
            row.change,
            row.household_id,
            show(row.before),
            show(row.after)
        );
    }
    let json_rows: Vec<_> = rows
        .iter()
        .map(crate::run::diff::DiffRow::to_json)
        .collect();
    context.answer(
        &human,
        serde_json::json!({"previous": previous.run_id, "rows": json_rows}),
    );
    Ok(())
}

pub async fn approver_add(context: &Context, args: ApproverAddArgs) -> anyhow::Result<()> {
    let pem = std::fs::read_to_string(&args.public_key)
        .with_context(|| format!("cannot read {}", args.public_key.display()))?;
    let now = context.now_text()?;
    let actor = Actor {
        user: &context.user,
        now_text: &now,
    };
    let approver = approve::add_approver(context.store().await?, &actor, &args.name, &pem).await?;
    let human = format!(
        "approver {} registered ({} key {})",
        approver.name, approver.algorithm, approver.key_id
    );
    context.answer(&human, serde_json::json!({"name": approver.name, "algorithm": approver.algorithm, "key_id": approver.key_id}));
    Ok(())
}

pub fn keys_generate(context: &Context, args: KeysGenerateArgs) -> anyhow::Result<()> {
    let algorithm = crate::sign::KeyAlgorithm::from_str(&args.alg).map_err(|_| {
        Refusal::message(format!("--alg {:?}: use ed25519 or ecdsa-p256", args.alg))
    })?;
    let pair = crate::sign::write_new_key_pair(&args.out, algorithm)
        .map_err(|e| Refusal::message(e.to_string()))?;
    let public = crate::sign::public_key_path(&args.out);
    let human = format!(
        "private key {} (mode 0600), public key {}, key id {}",
        args.out.display(),
        public.display(),
        pair.key_id
    );
    context.answer(
        &human,
        serde_json::json!({"private_key": args.out, "public_key": public, "key_id": pair.key_id}),
    );
    Ok(())
}
