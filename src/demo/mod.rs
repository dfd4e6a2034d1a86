//! `disburse demo`: the month on generated data in a fresh embedded database, and the
//! generator it shares with the tests and the benchmark. Each stage that exists runs;
//! the summary says what was done and where the files are.

pub mod generate;

use crate::cli::{import, Context};
use crate::demo::generate::{GeneratedHousehold, RosterGenerator};
use anyhow::Context as _;
use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};

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
    context.store().await?.close().await;
    Ok(DemoOutcome { summary })
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
