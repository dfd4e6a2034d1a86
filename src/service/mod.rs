//! `disburse serve`: the same engine as the CLI, run by the clock. Three parts share one
//! store: the scheduler (`scheduler::tick`, when cron fires and every `poll_seconds`),
//! the inbox poller (`inbox::poll`), and the HTTP API with the web page (`api`, `page`).
//! Also `disburse token create` and `run approve --offline`, the CLI ends of the API.
//!
//! **Invariants:** every change goes through the engine functions the CLI uses, with
//! the acting person (token user, `scheduler` or `inbox`) in the audit log; work that
//! must happen once (a month's run, an inbox file) is guarded by a database lease and
//! by the engine's own once-only checks; a failed tick or poll is logged and retried
//! on the next one, never fatal to the service.

pub mod api;
pub mod auth;
pub mod diff;
pub mod error;
pub mod inbox;
pub mod page;
pub mod scheduler;
pub mod settings;
pub mod signature;

use crate::cli::args::{RunApproveArgs, ServeArgs, TokenCreateArgs};
use crate::cli::{Context, Refusal};
use crate::config::Config;
use crate::engine::approve::{sign_approval, Actor};
use crate::store::Store;
use anyhow::Context as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What every request handler and loop shares.
pub struct Shared {
    pub store: Store,
    pub config: Config,
    /// Exports land in `export_dir/RUN/` (`[schedule] export_dir`, else `exports`).
    pub export_dir: PathBuf,
    pub export_key: Option<PathBuf>,
    /// Reports land in `report_dir/RUN/` (`[inbox] report_dir`, else `reports`).
    pub report_dir: PathBuf,
    /// Where uploaded result files are kept while they are ingested.
    pub spool_dir: PathBuf,
    /// Unix time of the last successful schedule tick (0: none yet).
    pub last_tick: AtomicI64,
}

/// `disburse serve --listen ADDR`: runs until interrupted.
pub async fn serve(context: &Context, args: &ServeArgs) -> anyhow::Result<()> {
    let config = context.config()?;
    let schedule = settings::schedule(&config.raw).map_err(|e| Refusal::message(e.to_string()))?;
    let inbox = settings::inbox(&config.raw).map_err(|e| Refusal::message(e.to_string()))?;
    let store = context.store().await?.clone();
    let shared = Arc::new(Shared {
        store,
        export_dir: schedule
            .as_ref()
            .map_or_else(|| PathBuf::from("exports"), |s| s.export_dir.clone()),
        export_key: schedule.as_ref().and_then(|s| s.export_key.clone()),
        report_dir: inbox
            .as_ref()
            .map_or_else(|| PathBuf::from("reports"), |i| i.report_dir.clone()),
        spool_dir: std::env::temp_dir(),
        config,
        last_tick: AtomicI64::new(0),
    });
    let holder = format!("{}-{}", std::process::id(), &auth::new_token()?[4..16]);
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let address = listener.local_addr()?;
    println!("disburse serve: listening on http://{address}");
    tracing::info!(%address, holder = %holder, "service started");
    if let Some(schedule) = schedule {
        tokio::spawn(schedule_loop(shared.clone(), schedule, holder.clone()));
    }
    if let Some(inbox) = inbox {
        let mut inbox_context = Context::for_database(&context.db_url, context);
        inbox_context.user = inbox::INBOX_USER.to_string();
        tokio::spawn(inbox_loop(inbox_context, inbox, holder));
    }
    axum::serve(listener, api::router(shared))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

async fn schedule_loop(shared: Arc<Shared>, schedule: settings::Schedule, holder: String) {
    loop {
        match crate::clock::now_utc() {
            Ok(now) => {
                match scheduler::tick(now, &shared.store, &shared.config, &schedule, &holder).await
                {
                    Ok(outcome) => {
                        shared.last_tick.store(now.timestamp(), Ordering::Relaxed);
                        tracing::debug!(?outcome, "schedule tick");
                    }
                    Err(error) => {
                        tracing::error!("schedule tick failed; retrying at the next: {error:#}")
                    }
                }
            }
            Err(error) => tracing::error!("clock: {error:#}"),
        }
        tokio::time::sleep(until_next(&schedule)).await;
    }
}

/// Until cron next fires in the schedule's zone, or `poll_seconds`, whichever is first.
fn until_next(schedule: &settings::Schedule) -> Duration {
    let poll = Duration::from_secs(schedule.poll_seconds);
    let next = schedule.cron.upcoming(schedule.timezone).next();
    let until = next
        .and_then(|fire| {
            (fire.with_timezone(&chrono::Utc) - chrono::Utc::now())
                .to_std()
                .ok()
        })
        .unwrap_or(poll);
    until.min(poll).max(Duration::from_millis(100))
}

async fn inbox_loop(context: Context, settings: settings::Inbox, holder: String) {
    loop {
        let polled = match crate::clock::now_utc() {
            Ok(now) => inbox::poll(&context, &settings, now, &holder).await,
            Err(error) => Err(error),
        };
        if let Err(error) = polled {
            tracing::error!("inbox poll failed; retrying at the next: {error:#}");
        }
        tokio::time::sleep(Duration::from_secs(settings.poll_seconds)).await;
    }
}

/// `disburse --user NAME token create --role ROLE`: prints the token once.
pub async fn token_create(context: &Context, args: &TokenCreateArgs) -> anyhow::Result<()> {
    let role =
        auth::Role::parse(&args.role).map_err(|e| Refusal::message(format!("--role: {e}")))?;
    let user = context.user.trim();
    if user.is_empty() || user.len() > 64 {
        return Err(Refusal::message("--user: a name of 1 to 64 characters").into());
    }
    let token = auth::new_token()?;
    let now = context.now_text()?;
    let created_by = crate::cli::login_name();
    let store = context.store().await?;
    let mut transaction = store.begin().await?;
    transaction
        .insert_api_token(
            &auth::token_sha256(&token),
            user,
            role.as_str(),
            &created_by,
            &now,
        )
        .await?;
    let detail = format!("role={} created_by={created_by}", role.as_str());
    transaction
        .append_audit(&now, &created_by, "token.create", user, &detail)
        .await?;
    transaction.commit().await?;
    let human = format!(
        "token for {user} ({}), shown once; keep it secret:\n{token}",
        role.as_str()
    );
    context.answer(
        &human,
        serde_json::json!({"user": user, "role": role.as_str(), "token": token}),
    );
    Ok(())
}

/// `run approve RUN --key FILE --offline`: the base64 signature, recorded nowhere.
pub async fn approve_offline(context: &Context, args: &RunApproveArgs) -> anyhow::Result<()> {
    let now = context.now_text()?;
    let actor = Actor {
        user: &context.user,
        now_text: &now,
    };
    let (run, approver, signature) =
        sign_approval(context.store().await?, &actor, &args.run, &args.key).await?;
    let encoded = signature::encode(&signature);
    let human = format!(
        "signature by {} over run {} (digest {}, {} payments, {} yuan); paste it on the page or POST it to /api/v1/runs/{}/approvals:\n{encoded}",
        approver.name, run.run_id, run.digest, run.pay_count, crate::domain::money::Fen::new(run.payable_fen), run.run_id
    );
    context.answer(&human, serde_json::json!({"run_id": run.run_id, "approver": approver.name, "signature_base64": encoded}));
    Ok(())
}
