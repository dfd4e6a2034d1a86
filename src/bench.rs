//! `disburse bench --households N [--db URL] [--out DIR]`: the whole month on N
//! generated households, stage by stage, with rows per second, the total, the peak
//! memory of the process, and a CSV of the figures. A benchmark, not a test: nothing
//! here asserts a time. `--formats-only` runs `bench_formats` instead: the bank files
//! alone, without a database.

// Seconds and rates are measurements, not money: the one place floats are allowed.
#![allow(clippy::float_arithmetic)]

use crate::cli::{import, Context};
use crate::demo::generate::RosterGenerator;
use crate::demo::{approve_demo_run, bank, create_demo_run, fresh_dir, OPERATOR};
use crate::engine::approve::Actor;
use crate::engine::export::{export_run, ExportRequest};
use crate::sign::KeyAlgorithm;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::time::Instant;

/// One measured stage.
pub struct StageFigure {
    pub stage: &'static str,
    pub rows: u64,
    pub seconds: f64,
    /// CPU time of every thread during the stage (may exceed `seconds` on two cores).
    pub cpu_seconds: f64,
    /// Peak resident memory during the stage, where the kernel lets the peak be reset
    /// (`/proc/self/clear_refs`); otherwise the peak so far.
    pub peak_mib: u64,
}

/// Resets the kernel's record of this process's peak resident memory, so the next
/// reading is the peak of one stage. Silently does nothing where unsupported.
fn reset_peak_memory() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Peak resident memory of this process (VmHWM), in KiB; 0 where /proc is absent.
pub fn peak_memory_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmHWM:"))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kib| kib.parse().ok())
        })
        .unwrap_or(0)
}

/// CPU seconds (user + system, all threads) this process has used so far; 0 where
/// /proc is absent. Beside wall time it shows the work a stage did even when another
/// process shares the cores.
pub fn cpu_seconds() -> f64 {
    let ticks_per_second = 100.0; // USER_HZ on Linux
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| {
            // Fields after the command name (which may hold spaces) start at ')'.
            let after_name = stat.rsplit_once(')')?.1;
            let fields: Vec<&str> = after_name.split_whitespace().collect();
            let user: f64 = fields.get(11)?.parse().ok()?;
            let system: f64 = fields.get(12)?.parse().ok()?;
            Some((user + system) / ticks_per_second)
        })
        .unwrap_or(0.0)
}

/// Times one stage.
async fn timed<T>(
    figures: &mut Vec<StageFigure>,
    stage: &'static str,
    rows: impl Fn(&T) -> u64,
    work: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    reset_peak_memory();
    let started = Instant::now();
    let cpu_before = cpu_seconds();
    let value = work.await?;
    let seconds = started.elapsed().as_secs_f64();
    let cpu_seconds = cpu_seconds() - cpu_before;
    let rows = rows(&value);
    tracing::info!(stage, rows, seconds, "bench stage");
    figures.push(StageFigure {
        stage,
        rows,
        seconds,
        cpu_seconds,
        peak_mib: peak_memory_kib() / 1024,
    });
    Ok(value)
}

/// Runs every stage on `context`'s database (which should be fresh) into `out`.
pub async fn run_bench(
    context: &Context,
    households: u64,
    out: &Path,
    signing_key: Option<&Path>,
) -> anyhow::Result<String> {
    let mut figures = Vec::new();
    fresh_dir(out)?;
    let roster = timed(&mut figures, "generate roster", |_| households, async {
        write_roster(households, out)
    })
    .await?;
    let imported = timed(
        &mut figures,
        "import roster",
        |s: &import::ImportSummary| s.rows,
        import::import_file(context, &import::ROSTER, &roster, "utf-8"),
    )
    .await?;
    anyhow::ensure!(
        imported.rows == households,
        "imported {} of {households}",
        imported.rows
    );
    let store = context.store().await?;
    let config = context.config()?;
    let now = context.now_text()?;
    let run = timed(
        &mut figures,
        "compute run",
        |r: &crate::store::RunRecord| r.line_count as u64,
        create_demo_run(store, &config, &now),
    )
    .await?;
    let keys = fresh_dir(&out.join("keys"))?;
    let mut ignored = String::new();
    timed(
        &mut figures,
        "approve",
        |_| 2,
        approve_demo_run(store, &run.run_id, &keys, &now, &mut ignored),
    )
    .await?;
    let signing_key = bench_signing_key(signing_key, &keys)?;
    let signed_with = crate::sign::SigningKey::load(&signing_key)?.algorithm();
    let files = fresh_dir(&out.join("bank-files"))?;
    let request = ExportRequest {
        run_id: &run.run_id,
        out_dir: &files,
        key_path: Some(&signing_key),
        user: OPERATOR,
        now_text: &now,
    };
    timed(
        &mut figures,
        "export A+B+C signed",
        |_| run.pay_count as u64,
        export_run(store, &config, &request),
    )
    .await?;
    let results = fresh_dir(&out.join("bank-results"))?;
    let answers = timed(
        &mut figures,
        "simulate banks",
        |_| run.pay_count as u64,
        bank::answer_batches(store, &run.run_id, &results, "2026-11-20"),
    )
    .await?;
    let actor = Actor {
        user: OPERATOR,
        now_text: &now,
    };
    timed(
        &mut figures,
        "ingest results",
        |_| run.pay_count as u64,
        crate::engine::ingest::ingest_files(store, &actor, &answers.files, None, |_| {}),
    )
    .await?;
    let treasury = out.join("treasury.csv");
    std::fs::write(&treasury, &answers.treasury_csv)?;
    timed(
        &mut figures,
        "import treasury",
        |s: &import::ImportSummary| s.rows,
        import::import_file(context, &import::TREASURY, &treasury, "utf-8"),
    )
    .await?;
    let report = out.join("reconciliation");
    let outcome = timed(
        &mut figures,
        "reconcile",
        |_| run.pay_count as u64,
        crate::engine::reconcile::reconcile_run(store, &actor, &run.run_id, &report),
    )
    .await?;
    // The pages the stages wrote and the log still holds, copied into the database
    // file as `close` would: the stages' own work, so it counts in the total.
    timed(&mut figures, "fold log into file", |_| 0, async {
        Ok(store.fold_log_back().await?)
    })
    .await?;
    anyhow::ensure!(
        outcome.difference == "0.00",
        "the benchmark's month did not reconcile: {}",
        outcome.difference
    );
    let header = format!(
        "{households} households on {}, files signed with {}",
        store.backend_name(),
        signed_with.as_str()
    );
    write_figures(&figures, households, &header, store.backend_name(), out)
}

/// The key export signs with: the one given, or a fresh Ed25519 key in `keys`.
fn bench_signing_key(given: Option<&Path>, keys: &Path) -> anyhow::Result<std::path::PathBuf> {
    if let Some(path) = given {
        return Ok(path.to_path_buf());
    }
    let fresh = keys.join("bank-signing.pem");
    crate::sign::write_new_key_pair(&fresh, KeyAlgorithm::Ed25519)?;
    Ok(fresh)
}

/// `OUT/roster.csv`: `households` generated households, the benchmark's (seed 7).
pub fn write_roster(households: u64, out: &Path) -> anyhow::Result<std::path::PathBuf> {
    std::fs::create_dir_all(out)?;
    let roster = out.join("roster.csv");
    let mut file = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&roster)?);
    RosterGenerator::new(7).stream_roster(&mut file, households, "2026-01")?;
    file.flush()?;
    Ok(roster)
}

/// `--formats-only`: the bank-file work of an export alone, on generated payments and
/// without a database (`bench_formats`).
pub fn run_formats_only(
    households: u64,
    out: &Path,
    signing_key: Option<crate::sign::SigningKey>,
) -> anyhow::Result<String> {
    crate::bench_formats::run_formats_bench(households, out, signing_key)
}

fn write_figures(
    figures: &[StageFigure],
    households: u64,
    header: &str,
    backend: &str,
    out: &Path,
) -> anyhow::Result<String> {
    let total: f64 = figures
        .iter()
        .filter(|f| f.stage != "generate roster" && f.stage != "simulate banks")
        .map(|f| f.seconds)
        .sum();
    let peak_mib = figures.iter().map(|f| f.peak_mib).max().unwrap_or(0);
    let mut table = format!(
        "disburse bench: {header}\n  {:<22} {:>10} {:>9} {:>12} {:>9} {:>9}\n",
        "stage", "rows", "seconds", "rows/s", "cpu s", "peak MiB"
    );
    let mut csv = String::from(
        "backend,households,stage,rows,seconds,rows_per_second,cpu_seconds,peak_mib\n",
    );
    for figure in figures {
        let rate = if figure.seconds > 0.0 {
            figure.rows as f64 / figure.seconds
        } else {
            0.0
        };
        let _ = writeln!(
            table,
            "  {:<22} {:>10} {:>9.3} {:>12.0} {:>9.2} {:>9}",
            figure.stage, figure.rows, figure.seconds, rate, figure.cpu_seconds, figure.peak_mib
        );
        let _ = writeln!(
            csv,
            "{backend},{households},{},{},{:.3},{:.0},{:.2},{}",
            figure.stage, figure.rows, figure.seconds, rate, figure.cpu_seconds, figure.peak_mib
        );
    }
    let _ = writeln!(
        table,
        "  total (our stages)     {:>10} {total:>9.3}\n  peak memory            {peak_mib} MiB",
        households
    );
    let _ = writeln!(csv, "{backend},{households},total,{households},{total:.3},,,\n{backend},{households},peak_memory_mib,{peak_mib},,,,");
    std::fs::write(out.join("bench.csv"), csv)?;
    let _ = writeln!(table, "  figures in {}", out.join("bench.csv").display());
    Ok(table)
}
