//! The command-line edge: parses arguments, opens the store and configuration, runs
//! one verb, prints human output on stdout (or JSON with `--json`), logs on stderr, and
//! maps the outcome to exit codes 0 (done), 1 (input or business rule refused), 2
//! (anything else, including verbs whose capability has not arrived yet).

pub mod args;
pub mod import;
pub mod key_repeats;
pub mod results;
pub mod run;
pub mod work;

use crate::cli::args::{Cli, Command, ImportCommand};
use crate::store::Store;
use clap::Parser;
use std::process::ExitCode;
use tokio::sync::OnceCell;

/// A refusal of the input or of a business rule: exit status 1, with every reason.
#[derive(Debug)]
pub struct Refusal {
    pub summary: String,
    pub details: Vec<String>,
}

impl Refusal {
    pub fn message(summary: impl Into<String>) -> Refusal {
        Refusal {
            summary: summary.into(),
            details: Vec::new(),
        }
    }

    pub fn rows(summary: impl Into<String>, details: Vec<String>) -> Refusal {
        Refusal {
            summary: summary.into(),
            details,
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for detail in &self.details {
            writeln!(formatter, "{detail}")?;
        }
        write!(formatter, "{}", self.summary)
    }
}

impl std::error::Error for Refusal {}

/// A capability that arrives with a later issue: said plainly, exit status 2.
#[derive(Debug)]
pub struct NotYetAvailable(pub &'static str);

impl std::fmt::Display for NotYetAvailable {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            formatter,
            "not available yet: {} (nothing was done)",
            self.0
        )
    }
}

impl std::error::Error for NotYetAvailable {}

/// What every verb gets: who acts, how to answer, and the store (opened on first use).
pub struct Context {
    pub db_url: String,
    pub user: String,
    pub json: bool,
    pub config_path: Option<std::path::PathBuf>,
    store: OnceCell<Store>,
}

impl Context {
    pub fn new(cli: &Cli) -> Context {
        let user = cli.user.clone().unwrap_or_else(login_name);
        Context {
            db_url: cli.db.clone(),
            user,
            json: cli.json,
            config_path: cli.config.clone(),
            store: OnceCell::new(),
        }
    }

    /// A context like `parent` on another database (the demo's fresh one).
    pub fn for_database(db_url: &str, parent: &Context) -> Context {
        Context {
            db_url: db_url.to_string(),
            user: parent.user.clone(),
            json: parent.json,
            config_path: parent.config_path.clone(),
            store: OnceCell::new(),
        }
    }

    pub async fn store(&self) -> anyhow::Result<&Store> {
        self.store
            .get_or_try_init(|| async {
                Store::connect(&self.db_url)
                    .await
                    .map_err(|error| anyhow::anyhow!("{}: {error}", redact_db_url(&self.db_url)))
            })
            .await
    }

    /// The configuration: `--config FILE`, else `disburse.toml` if present, else the
    /// built-in defaults. A bad file is refused with the key and the reason.
    pub fn config(&self) -> anyhow::Result<crate::config::Config> {
        let path = match &self.config_path {
            Some(path) => Some(path.clone()),
            None => Some(std::path::PathBuf::from("disburse.toml")).filter(|p| p.exists()),
        };
        let Some(path) = path else {
            return Ok(crate::config::Config::builtin());
        };
        let text = std::fs::read_to_string(&path)
            .map_err(|error| anyhow::anyhow!("cannot read {}: {error}", path.display()))?;
        crate::config::Config::from_toml_str(&text)
            .map_err(|error| Refusal::message(format!("{}: {error}", path.display())).into())
    }

    pub fn now_text(&self) -> anyhow::Result<String> {
        Ok(crate::clock::format_utc(crate::clock::now_utc()?))
    }

    /// Prints a JSON value with `--json`, else the human text.
    pub fn answer(&self, human: &str, json: serde_json::Value) {
        if self.json {
            println!("{json}");
        } else {
            println!("{human}");
        }
    }
}

pub fn login_name() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".to_string())
}

/// A database URL without its password, for messages.
pub fn redact_db_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// The binary's entry point.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    crate::telemetry::init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(2);
        }
    };
    let context = Context::new(&cli);
    let outcome = runtime.block_on(async {
        let outcome = dispatch(&context, cli.command).await;
        if let Some(store) = context.store.get() {
            store.close().await;
        }
        outcome
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => report_error(&context, &error),
    }
}

fn report_error(context: &Context, error: &anyhow::Error) -> ExitCode {
    if let Some(refusal) = error.downcast_ref::<Refusal>() {
        if context.json {
            let json = serde_json::json!({"error": "refused", "summary": refusal.summary, "details": refusal.details});
            println!("{json}");
        }
        eprintln!("{refusal}");
        return ExitCode::from(1);
    }
    eprintln!("error: {error:#}");
    if context.json {
        println!(
            "{}",
            serde_json::json!({"error": "failed", "summary": format!("{error:#}")})
        );
    }
    ExitCode::from(2)
}

async fn dispatch(context: &Context, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Import(import) => run_import(context, import).await,
        Command::Audit(_) => audit_verify(context).await,
        Command::Demo(args) => {
            let outcome = crate::demo::run_demo(context, args.households, &args.out).await?;
            context.answer(
                &outcome.summary,
                serde_json::json!({"summary": outcome.summary}),
            );
            Ok(())
        }
        Command::Run(args::RunCommand::Approve(args)) if args.offline => {
            crate::service::approve_offline(context, &args).await
        }
        Command::Run(command) => run::run_command(context, command).await,
        Command::Approver(args::ApproverCommand::Add(args)) => {
            run::approver_add(context, args).await
        }
        Command::Keys(args::KeysCommand::Generate(args)) => run::keys_generate(context, args),
        Command::Returns(args::ReturnsCommand::Ingest(args)) => {
            results::returns_ingest(context, args).await
        }
        Command::Reconcile(args) => results::reconcile(context, args).await,
        Command::Bench(args) if args.roster_only => {
            let roster = crate::bench::write_roster(args.households, &args.out)?;
            println!("{} households in {}", args.households, roster.display());
            Ok(())
        }
        Command::Bench(args) if args.formats_only => {
            let signing_key = load_bench_signing_key(args.signing_key.as_deref())?;
            println!(
                "{}",
                crate::bench::run_formats_only(args.households, &args.out, signing_key)?
            );
            Ok(())
        }
        Command::Bench(args) => {
            load_bench_signing_key(args.signing_key.as_deref())?;
            // `--db` left at its default means a fresh SQLite file in the output
            // directory; a PostgreSQL URL should name an empty database.
            let bench_context = if context.db_url == "sqlite://disburse.db" {
                std::fs::create_dir_all(&args.out)?;
                let db = args.out.join("bench.db");
                for stale in ["bench.db", "bench.db-wal", "bench.db-shm"] {
                    let _ = std::fs::remove_file(args.out.join(stale));
                }
                Context::for_database(&format!("sqlite://{}", db.display()), context)
            } else {
                Context::for_database(&context.db_url, context)
            };
            let outcome = crate::bench::run_bench(
                &bench_context,
                args.households,
                &args.out.join("run"),
                args.signing_key.as_deref(),
            )
            .await;
            // Its own store, closed as `run` closes the command's (the log folded back).
            if let Some(store) = bench_context.store.get() {
                store.close().await;
            }
            println!("{}", outcome?);
            Ok(())
        }
        Command::Work(command) => work::work_command(context, command).await,
        Command::Serve(args) => crate::service::serve(context, &args).await,
        Command::Token(args::TokenCommand::Create(args)) => {
            crate::service::token_create(context, &args).await
        }
    }
}

/// The `--signing-key` given, loaded; one that cannot sign is refused before the
/// benchmark generates anything.
fn load_bench_signing_key(
    path: Option<&std::path::Path>,
) -> anyhow::Result<Option<crate::sign::SigningKey>> {
    let Some(path) = path else {
        return Ok(None);
    };
    let key = crate::sign::SigningKey::load(path)
        .map_err(|error| Refusal::message(format!("--signing-key: {error}")))?;
    Ok(Some(key))
}

async fn run_import(context: &Context, command: ImportCommand) -> anyhow::Result<()> {
    let summary = match command {
        ImportCommand::Roster(a) => {
            import::import_file(context, &import::ROSTER, &a.file, &a.encoding).await?
        }
        ImportCommand::Decisions(a) => {
            import::import_file(context, &import::DECISIONS, &a.file, &a.encoding).await?
        }
        ImportCommand::StaffRelatives(a) => {
            import::import_file(context, &import::STAFF_RELATIVES, &a.file, &a.encoding).await?
        }
        ImportCommand::Treasury(a) => {
            import::import_file(context, &import::TREASURY, &a.file, &a.encoding).await?
        }
    };
    for warning in &summary.warnings {
        eprintln!("warning: {warning}");
    }
    let human = if summary.already_imported {
        format!(
            "{} {}: already imported (same SHA-256); nothing changed",
            summary.kind, summary.file
        )
    } else {
        format!(
            "{} {}: {} rows ({} new, {} unchanged), {} warnings",
            summary.kind,
            summary.file,
            summary.rows,
            summary.inserted,
            summary.unchanged,
            summary.warnings.len()
        )
    };
    context.answer(&human, serde_json::to_value(&summary)?);
    Ok(())
}

async fn audit_verify(context: &Context) -> anyhow::Result<()> {
    let verification = context.store().await?.verify_audit_chain().await?;
    match verification.first_break {
        None => {
            let human = format!(
                "audit log intact: {} entries verified",
                verification.entries_checked
            );
            context.answer(
                &human,
                serde_json::json!({"ok": true, "entries": verification.entries_checked}),
            );
            Ok(())
        }
        Some(error) => Err(Refusal::message(format!(
            "audit log broken after {} good entries: {error}",
            verification.entries_checked
        ))
        .into()),
    }
}
