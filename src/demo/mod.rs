//! `disburse demo`: the month on generated data in a fresh embedded database, and the
//! generator it shares with the tests and the benchmark. Each stage that exists runs
//! (import; create as `operator`; two approvers sign; export signed bank files); the
//! summary says what was done, where the files are, and how a bank checks them.

pub mod bank;
pub mod generate;

use crate::cli::{import, Context};
use crate::config::Config;
use crate::demo::generate::{GeneratedHousehold, RosterGenerator};
use crate::domain::money::Fen;
use crate::domain::month::Month;
use crate::engine::approve::{add_approver, approve_run, Actor};
use crate::engine::create_run::{create_run, CreateRunRequest};
use crate::engine::export::{export_run, ExportOutcome, ExportRequest};
use crate::export::manifest::openssl_verify_command;
use crate::sign::{KeyAlgorithm, SignatureAlgorithm};
use crate::store::{RunRecord, Store};
use anyhow::Context as _;
use chrono::Datelike;
use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Seed of the demo's generated data: the same households every time.
const DEMO_SEED: u64 = 20_261_127;

/// Where the demo put things and what it did.
pub struct DemoOutcome {
    pub summary: String,
}

/// Runs the demo into `out` (a fresh database each time).
pub async fn run_demo(
    parent: &Context,
    households: u32,
    out: &Path,
) -> anyhow::Result<DemoOutcome> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let db_path = out.join("disburse.db");
    for stale in ["disburse.db", "disburse.db-wal", "disburse.db-shm"] {
        let _ = std::fs::remove_file(out.join(stale));
    }
    let context = Context::for_database(&format!("sqlite://{}", db_path.display()), parent);
    let inputs = write_inputs(out, households)?;
    let mut summary = String::new();
    writeln!(
        summary,
        "disburse demo: {households} generated households in {}",
        db_path.display()
    )?;
    for (kind, path) in [
        ("roster", &inputs.roster),
        ("decisions", &inputs.decisions),
        ("staff-relatives", &inputs.staff_relatives),
    ] {
        let result = match kind {
            "roster" => import::import_file(&context, &import::ROSTER, path, "utf-8").await?,
            "decisions" => import::import_file(&context, &import::DECISIONS, path, "utf-8").await?,
            _ => import::import_file(&context, &import::STAFF_RELATIVES, path, "utf-8").await?,
        };
        writeln!(
            summary,
            "  imported {kind:<16} {:>6} rows from {}",
            result.rows,
            path.display()
        )?;
    }
    let store = context.store().await?;
    let config = context.config()?;
    let now = context.now_text()?;
    let run = create_demo_run(store, &config, &now).await?;
    writeln!(
        summary,
        "  run {} created by {OPERATOR}: {} payments, {} yuan",
        run.run_id,
        run.pay_count,
        Fen::new(run.payable_fen)
    )?;
    let keys = fresh_dir(&out.join("keys"))?;
    approve_demo_run(store, &run.run_id, &keys, &now, &mut summary).await?;
    let signing_key = keys.join("bank-signing.pem");
    crate::sign::write_new_key_pair(&signing_key, KeyAlgorithm::Ed25519)?;
    let bank_files = fresh_dir(&out.join("bank-files"))?;
    let request = ExportRequest {
        run_id: &run.run_id,
        out_dir: &bank_files,
        key_path: Some(&signing_key),
        user: OPERATOR,
        now_text: &now,
    };
    let exported = export_run(store, &config, &request).await?;
    describe_export(&exported, &bank_files, &signing_key, &mut summary)?;
    end_the_month(&context, store, &run.run_id, out, &mut summary).await?;
    store.close().await;
    Ok(DemoOutcome { summary })
}

/// The banks answer, the treasury books, and the month is reconciled.
async fn end_the_month(
    context: &Context,
    store: &Store,
    run_id: &str,
    out: &Path,
    summary: &mut String,
) -> anyhow::Result<()> {
    let now = context.now_text()?;
    let actor = crate::engine::approve::Actor {
        user: OPERATOR,
        now_text: &now,
    };
    let results_dir = fresh_dir(&out.join("bank-results"))?;
    let processed = now.get(..10).unwrap_or("2026-11-20");
    let answers = bank::answer_batches(store, run_id, &results_dir, processed).await?;
    for file in &answers.files {
        let ingested = crate::engine::ingest::ingest_file(store, &actor, file, None).await?;
        writeln!(
            summary,
            "  bank results {}: {} results, {} applied, {} households held, {} exceptions",
            file.display(),
            ingested.results,
            ingested.applied,
            ingested.holds,
            ingested.exceptions
        )?;
    }
    let treasury = out.join("inputs").join("treasury.csv");
    std::fs::write(&treasury, &answers.treasury_csv)?;
    let imported = import::import_file(context, &import::TREASURY, &treasury, "utf-8").await?;
    writeln!(
        summary,
        "  imported treasury vouchers {:>6} rows from {}",
        imported.rows,
        treasury.display()
    )?;
    let report_dir = out.join("reconciliation");
    let outcome =
        crate::engine::reconcile::reconcile_run(store, &actor, run_id, &report_dir).await?;
    writeln!(
        summary,
        "  reconciled: instructed {} = paid {} + failed {} + returned {} + pending {}; difference {}; {} exceptions; run {}",
        outcome.instructed, outcome.paid, outcome.failed, outcome.returned, outcome.pending, outcome.difference, outcome.exceptions, outcome.state
    )?;
    writeln!(
        summary,
        "  report {}",
        report_dir.join("report.html").display()
    )?;
    Ok(())
}

/// Who creates the demo's run; the approvers are other people (four eyes).
pub(crate) const OPERATOR: &str = "operator";
/// The demo's approvers and the kinds of key they sign with.
const APPROVERS: &[(&str, KeyAlgorithm)] = &[
    ("approver-li", KeyAlgorithm::Ed25519),
    ("approver-wang", KeyAlgorithm::EcdsaP256),
];

/// An empty directory (the demo's own output from an earlier demo is removed).
pub(crate) fn fresh_dir(dir: &Path) -> anyhow::Result<PathBuf> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("cannot clear {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir.to_path_buf())
}

pub(crate) async fn create_demo_run(
    store: &Store,
    config: &Config,
    now: &str,
) -> anyhow::Result<RunRecord> {
    let month = Month::parse("2026-11")?;
    let request = CreateRunRequest {
        programme: "dibao".to_string(),
        month,
        scope: String::new(),
        pay_date: month
            .first_day()
            .with_day(config.run.pay_day)
            .context("pay_day is 1..=28")?,
        user: OPERATOR.to_string(),
        now_text: now.to_string(),
        reserved_run_no: None,
    };
    create_run(store, config, &request).await
}

/// Generates each approver's key, registers them, and approves as each.
pub(crate) async fn approve_demo_run(
    store: &Store,
    run_id: &str,
    keys: &Path,
    now: &str,
    summary: &mut String,
) -> anyhow::Result<()> {
    for (name, algorithm) in APPROVERS {
        let key_path = keys.join(format!("{name}.pem"));
        let pair = crate::sign::write_new_key_pair(&key_path, *algorithm)?;
        let admin = Actor {
            user: "admin",
            now_text: now,
        };
        add_approver(store, &admin, name, &pair.public_spki_pem).await?;
        let approver = Actor {
            user: name,
            now_text: now,
        };
        let run = approve_run(store, &approver, run_id, &key_path).await?;
        writeln!(
            summary,
            "  approved by {name} ({algorithm} key {}, {}); run is {}",
            pair.key_id,
            key_path.display(),
            run.state
        )?;
    }
    Ok(())
}

fn describe_export(
    exported: &ExportOutcome,
    bank_files: &Path,
    signing_key: &Path,
    summary: &mut String,
) -> anyhow::Result<()> {
    let manifest = &exported.manifest;
    writeln!(
        summary,
        "  exported {} signed files ({} payments, {} yuan) to {}",
        manifest.file_count,
        manifest.record_count,
        manifest.total,
        bank_files.display()
    )?;
    for file in &manifest.files {
        writeln!(
            summary,
            "    {:<18} {:<17} {:>6} payments {:>12} yuan",
            file.file, file.layout, file.record_count, file.total
        )?;
    }
    writeln!(summary, "  manifest {}", exported.manifest_path.display())?;
    writeln!(
        summary,
        "  a bank verifies its file with OpenSSL alone (CONTRACTS §3.3):"
    )?;
    let public_key = crate::sign::public_key_path(signing_key);
    let mut layouts_shown: Vec<&str> = Vec::new();
    for file in &manifest.files {
        if layouts_shown.contains(&file.layout.as_str()) {
            continue;
        }
        layouts_shown.push(&file.layout);
        let algorithm = SignatureAlgorithm::from_str(&file.signature_algorithm)?;
        let command = openssl_verify_command(
            algorithm,
            &public_key.display().to_string(),
            &bank_files.join(&file.file).display().to_string(),
        );
        writeln!(summary, "    # {}\n    {command}", file.layout)?;
    }
    Ok(())
}

/// The generated input files.
pub struct DemoInputs {
    pub roster: PathBuf,
    pub decisions: PathBuf,
    pub staff_relatives: PathBuf,
}

fn write_inputs(out: &Path, households: u32) -> anyhow::Result<DemoInputs> {
    let inputs = out.join("inputs");
    std::fs::create_dir_all(&inputs)?;
    let roster = inputs.join("roster.csv");
    let mut generator = RosterGenerator::new(DEMO_SEED);
    let mut file = std::io::BufWriter::new(std::fs::File::create(&roster)?);
    let generated = generator.write_roster(&mut file, u64::from(households.max(10)), "2026-01")?;
    file.flush()?;
    let decisions = inputs.join("decisions.csv");
    std::fs::write(&decisions, demo_decisions(&generated))?;
    let staff_relatives = inputs.join("staff-relatives.csv");
    let relative = &generated[3];
    std::fs::write(
        &staff_relatives,
        format!(
            "staff_id,staff_name,relative_id_number,relation\nS0001,李建华,{},配偶\n",
            relative.head_id_number
        ),
    )?;
    Ok(DemoInputs {
        roster,
        decisions,
        staff_relatives,
    })
}

/// A handful of decisions of every kind about the first generated households.
pub fn demo_decisions(households: &[GeneratedHousehold]) -> String {
    let id = |index: usize| households[index % households.len()].household_id.as_str();
    let mut text = String::from(
        "decision_id,household_id,kind,effective_month,end_month,amount,percent,months,reason,ref,decided_by,decided_on\n",
    );
    let rows = [
        ("D0001", id(0), "stop", "2026-10", "", "", "", "", "death"),
        (
            "D0002",
            id(1),
            "taper",
            "2026-09",
            "",
            "",
            "",
            "6",
            "income",
        ),
        (
            "D0003",
            id(2),
            "reduce",
            "2026-10",
            "2026-12",
            "",
            "20",
            "",
            "refused_work",
        ),
        (
            "D0004",
            id(4),
            "arrears",
            "2026-11",
            "",
            "300.00",
            "",
            "",
            "late approval",
        ),
        (
            "D0005",
            id(5),
            "recover",
            "2026-08",
            "",
            "1200.00",
            "",
            "",
            "false_report",
        ),
        (
            "D0006",
            id(6),
            "suspend",
            "2026-09",
            "",
            "",
            "",
            "",
            "review_failed",
        ),
        (
            "D0007",
            id(6),
            "resume",
            "2026-11",
            "",
            "",
            "",
            "2",
            "review passed",
        ),
        (
            "D0008",
            id(7),
            "blacklist",
            "2026-06",
            "",
            "",
            "",
            "",
            "false_report",
        ),
    ];
    for (decision_id, household_id, kind, effective, end, amount, percent, months, reason) in rows {
        let _ = writeln!(
            text,
            "{decision_id},{household_id},{kind},{effective},{end},{amount},{percent},{months},{reason},沈民决〔2026〕{decision_id},民政局,2026-08-20"
        );
    }
    text
}
