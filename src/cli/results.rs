//! `disburse returns ingest FILE…` and `disburse reconcile RUN --out DIR`.

use crate::cli::args::{ReconcileArgs, ReturnsIngestArgs};
use crate::cli::Context;
use crate::engine::approve::Actor;
use crate::engine::ingest::ingest_files;
use crate::engine::reconcile::reconcile_run;

pub async fn returns_ingest(context: &Context, args: ReturnsIngestArgs) -> anyhow::Result<()> {
    let now = context.now_text()?;
    let actor = Actor {
        user: &context.user,
        now_text: &now,
    };
    let store = context.store().await?;
    let mut summaries = Vec::new();
    let format = args.format.as_deref();
    ingest_files(store, &actor, &args.files, format, |summary| {
        let human = match &summary.duplicate_of {
            Some(earlier) => format!(
                "{}: already ingested as {earlier}; nothing changed",
                summary.file
            ),
            None => format!(
                "{} ({}): {} results, {} applied, {} unchanged, {} exceptions, {} households held",
                summary.file,
                summary.format,
                summary.results,
                summary.applied,
                summary.unchanged,
                summary.exceptions,
                summary.holds
            ),
        };
        if !context.json {
            println!("{human}");
        }
        summaries.push(summary);
    })
    .await?;
    if context.json {
        println!("{}", serde_json::json!({ "files": summaries }));
    }
    Ok(())
}

pub async fn reconcile(context: &Context, args: ReconcileArgs) -> anyhow::Result<()> {
    let now = context.now_text()?;
    let actor = Actor {
        user: &context.user,
        now_text: &now,
    };
    let outcome = reconcile_run(context.store().await?, &actor, &args.run, &args.out).await?;
    let human = format!(
        "run {} reconciled ({}): instructed {} = paid {} + failed {} + returned {} + pending {}; difference {}; {} exceptions\n  {}",
        outcome.run_id,
        outcome.state,
        outcome.instructed,
        outcome.paid,
        outcome.failed,
        outcome.returned,
        outcome.pending,
        outcome.difference,
        outcome.exceptions,
        outcome.files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join("\n  ")
    );
    context.answer(&human, serde_json::to_value(&outcome)?);
    Ok(())
}
