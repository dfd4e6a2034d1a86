//! `disburse bench --formats-only --households N [--out DIR]`: the bank-file work of an
//! export, without a database. N generated payees are planned into batches as export
//! plans them (`export::plan`), and each batch is sealed by export's own function
//! (`export::seal`: rendered, parsed back and checked against its plan, hashed with
//! SHA-256, signed (a fresh Ed25519 key, or the key `--signing-key` loaded) and the
//! signature verified), `SEALS_IN_FLIGHT` batches at a time as export seals them, then checked once more by export's final check
//! (`export::verify::verify_file_bytes`, what `verify_directory` does for each file:
//! SHA-256, signature, figures), so the figures are all the CPU work export spends on a
//! file. Two passes: every payment in its route's layout
//! (what `run export` does with the default routes), and every payment in each of the
//! layouts A, B and C (so a layout's rate is measured on the same N payments, e.g.
//! beside `scripts/sepaxml_bench.py`). `DIR/payments.csv` holds the payments for that
//! script. A benchmark, not a test: nothing here asserts a time.

// Seconds and rates are measurements, not money: floats are allowed here as in bench.rs.
#![allow(clippy::float_arithmetic)]

use crate::bench::peak_memory_kib;
use crate::config::{Config, Route, ROUTE_MAX_RECORDS_DEFAULT};
use crate::demo::generate::{GeneratedPayee, RosterGenerator};
use crate::domain::money::Fen;
use crate::domain::payment::{PaymentBatch, PaymentInstruction};
use crate::export::manifest::ManifestFile;
use crate::export::plan::{file_name, route_index, BatchPlanner, PlannedBatch};
use crate::export::seal::{seal_batch, SealStage, SEALS_IN_FLIGHT};
use crate::export::verify::verify_file_bytes;
use crate::formats::spec::find;
use crate::formats::{load_builtin, Layout};
use crate::sign::{generate_key_pair, KeyAlgorithm, SigningKey, VerifyingKey};
use anyhow::Context as _;
use chrono::NaiveDate;
use compact_str::CompactString;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Seed of the generated payees: the same payments every time, so runs compare.
const PAYEE_SEED: u64 = 7;
/// The run number the batch ids and end_to_end_ids are made from.
const BENCH_RUN_NO: i64 = 1;
/// The memo export writes for a dibao month (`batch_memo`).
const BENCH_MEMO: &str = "2026-11低保金";

/// The payment layouts, as A, B and C.
const LAYOUTS: &[(&str, &str)] = &[
    ("A", "bank-pipe-gbk"),
    ("B", "rcc-fixed-gbk"),
    ("C", "iso20022-pain001"),
];

/// One generated pay line.
struct BenchLine {
    line_no: i64,
    end_to_end_id: String,
    payee: GeneratedPayee,
}

/// What one layout's files cost, stage by stage. Stage times are summed over the
/// threads (CPU seconds); `wall` is the elapsed time of a whole pass, where known.
#[derive(Default)]
struct LayoutFigures {
    files: u64,
    rows: u64,
    bytes: u64,
    /// Building the `PaymentBatch` (export reads it from the database instead).
    assemble: Duration,
    render: Duration,
    /// Parse back and check against the plan (`export::seal::check_rendered`).
    parse_back: Duration,
    sha256: Duration,
    /// Sign, and verify the fresh signature, as export does.
    sign: Duration,
    /// Export's final check of the file (`verify_directory`'s per-file work, from memory:
    /// SHA-256 against the manifest, the signature, the file's own figures).
    verify: Duration,
    wall: Option<Duration>,
}

impl LayoutFigures {
    /// The format work export does per file, in CPU seconds: render, check, hash, sign,
    /// and the final check.
    fn format_seconds(&self) -> f64 {
        (self.render + self.parse_back + self.sha256 + self.sign + self.verify).as_secs_f64()
    }

    fn add(&mut self, other: &LayoutFigures) {
        self.files += other.files;
        self.rows += other.rows;
        self.bytes += other.bytes;
        self.assemble += other.assemble;
        self.render += other.render;
        self.parse_back += other.parse_back;
        self.sha256 += other.sha256;
        self.sign += other.sign;
        self.verify += other.verify;
    }
}

/// One pass: the figures per route and the pass's elapsed time.
struct Pass {
    per_route: Vec<LayoutFigures>,
    wall: Duration,
}

/// Runs the formats benchmark on `households` generated payees; writes
/// `out/payments.csv` and `out/formats-bench.csv`; returns the table to print.
pub fn run_formats_bench(
    households: u64,
    out: &Path,
    signing_key: Option<SigningKey>,
) -> anyhow::Result<String> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let started = Instant::now();
    let lines = generate_lines(households);
    let generate_seconds = started.elapsed().as_secs_f64();
    let payments_csv = out.join("payments.csv");
    write_payments_csv(&lines, &payments_csv)?;
    let key = match signing_key {
        Some(key) => key,
        None => SigningKey::from_pkcs8_pem(
            &generate_key_pair(KeyAlgorithm::Ed25519)?.private_pkcs8_pem,
        )?,
    };
    let layouts = load_builtin();
    let routes = Config::builtin().routes;
    let mut digests = String::new();
    let mix = bench_routes(&lines, &routes, &layouts, &key, &mut digests)?;
    let mut each = Vec::new();
    for (letter, name) in LAYOUTS {
        let route = single_route(&routes, name);
        let pass = bench_routes(
            &lines,
            std::slice::from_ref(&route),
            &layouts,
            &key,
            &mut digests,
        )?;
        let mut figures = pass.per_route.into_iter().next().unwrap_or_default();
        figures.wall = Some(pass.wall);
        each.push((*letter, *name, figures));
    }
    let mut report = Report::new(households, generate_seconds, key.algorithm().as_str());
    report.section("every payment in each layout (same N payments per layout)");
    for (letter, name, figures) in &each {
        report.row(&format!("{letter} {name}"), figures);
    }
    report.section("every payment in its route's layout (run export, default routes)");
    let mut mix_total = LayoutFigures {
        wall: Some(mix.wall),
        ..LayoutFigures::default()
    };
    for (index, figures) in mix.per_route.iter().enumerate() {
        if figures.files > 0 {
            let route = &routes[index];
            let prefix = match route.bank_prefix.as_str() {
                "" => "*",
                prefix => prefix,
            };
            report.row(&format!("  {prefix} {}", route.layout), figures);
            mix_total.add(figures);
        }
    }
    report.row("all files", &mix_total);
    // The files' digests, so two builds can be shown to render the same bytes.
    let digests_path = out.join("files.sha256");
    std::fs::write(&digests_path, digests)
        .with_context(|| format!("cannot write {}", digests_path.display()))?;
    report.finish(out, &payments_csv)
}

fn generate_lines(households: u64) -> Vec<BenchLine> {
    let mut generator = RosterGenerator::new(PAYEE_SEED);
    (1..=households)
        .map(|index| {
            let line_no = i64::try_from(index).unwrap_or(i64::MAX);
            BenchLine {
                line_no,
                end_to_end_id: crate::run::end_to_end_id("DB", BENCH_RUN_NO, line_no),
                payee: generator.payee(index),
            }
        })
        .collect()
}

/// The columns `scripts/sepaxml_bench.py` reads.
fn write_payments_csv(lines: &[BenchLine], path: &Path) -> anyhow::Result<()> {
    let file =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut csv = csv::Writer::from_writer(std::io::BufWriter::with_capacity(1 << 20, file));
    csv.write_record([
        "end_to_end_id",
        "account_name",
        "account_number",
        "bank_code",
        "amount_fen",
        "remittance",
    ])?;
    for line in lines {
        csv.write_record([
            line.end_to_end_id.as_str(),
            &line.payee.account_name,
            &line.payee.account_number,
            &line.payee.bank_code,
            &line.payee.amount.as_i64().to_string(),
            BENCH_MEMO,
        ])?;
    }
    csv.into_inner()
        .map_err(|error| anyhow::anyhow!("cannot write {}: {error}", path.display()))?
        .flush()?;
    Ok(())
}

/// One route to `layout` for every bank, with the default payer and file size.
fn single_route(routes: &[Route], layout: &str) -> Route {
    let payer = routes.last().cloned();
    Route {
        bank_prefix: String::new(),
        layout: layout.to_string(),
        payer_account: payer
            .as_ref()
            .map_or_else(String::new, |r| r.payer_account.clone()),
        payer_name: payer
            .as_ref()
            .map_or_else(String::new, |r| r.payer_name.clone()),
        payer_bank_code: payer.map_or_else(String::new, |r| r.payer_bank_code),
        max_records: ROUTE_MAX_RECORDS_DEFAULT,
        max_amount: None,
    }
}

/// Plans `lines` over `routes` and seals every batch as export does, on
/// `SEALS_IN_FLIGHT` threads that each take the next batch; returns the figures per
/// route and appends `sha256  layout/batch_id` to `digests`, in batch order.
fn bench_routes(
    lines: &[BenchLine],
    routes: &[Route],
    layouts: &[Layout],
    key: &SigningKey,
    digests: &mut String,
) -> anyhow::Result<Pass> {
    let mut planner = BatchPlanner::new(routes, BENCH_RUN_NO);
    for line in lines {
        planner.push(line.line_no, &line.payee.bank_code, line.payee.amount)?;
    }
    let plan = planner.finish();
    // Each line's route, found once (export reads each batch's lines by route instead).
    let line_routes: Vec<Option<usize>> = lines
        .iter()
        .map(|line| route_index(routes, &line.payee.bank_code))
        .collect();
    let next = AtomicUsize::new(0);
    let sealed: Mutex<Vec<(usize, String, LayoutFigures)>> = Mutex::new(Vec::new());
    let started = Instant::now();
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let workers: Vec<_> = (0..SEALS_IN_FLIGHT)
            .map(|_| {
                scope.spawn(|| -> anyhow::Result<()> {
                    while let Some(planned) = plan.get(next.fetch_add(1, Ordering::Relaxed)) {
                        let (digest, figures) =
                            bench_batch(lines, &line_routes, routes, layouts, key, planned)?;
                        let index = usize::try_from(planned.batch_seq).unwrap_or(usize::MAX);
                        if let Ok(mut sealed) = sealed.lock() {
                            sealed.push((index, digest, figures));
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        for worker in workers {
            worker
                .join()
                .map_err(|_| anyhow::anyhow!("a sealing thread panicked"))??;
        }
        Ok(())
    })?;
    let wall = started.elapsed();
    let mut sealed = sealed
        .into_inner()
        .map_err(|_| anyhow::anyhow!("a sealing thread panicked"))?;
    sealed.sort_by_key(|(index, _, _)| *index);
    let mut per_route: Vec<LayoutFigures> =
        routes.iter().map(|_| LayoutFigures::default()).collect();
    for ((_, digest, figures), planned) in sealed.iter().zip(&plan) {
        digests.push_str(digest);
        per_route[planned.route_index].add(figures);
    }
    Ok(Pass { per_route, wall })
}

/// One batch assembled and sealed, timed stage by stage.
fn bench_batch(
    lines: &[BenchLine],
    line_routes: &[Option<usize>],
    routes: &[Route],
    layouts: &[Layout],
    key: &SigningKey,
    planned: &PlannedBatch,
) -> anyhow::Result<(String, LayoutFigures)> {
    let route = &routes[planned.route_index];
    let layout =
        find(layouts, &route.layout).with_context(|| format!("no layout {}", route.layout))?;
    let started = Instant::now();
    let batch = assemble_batch(lines, line_routes, route, planned);
    let mut figures = LayoutFigures {
        assemble: started.elapsed(),
        ..LayoutFigures::default()
    };
    let mut lap_started = Instant::now();
    let mut lap = |stage: SealStage| {
        let now = Instant::now();
        let spent = now - lap_started;
        lap_started = now;
        match stage {
            SealStage::Render => figures.render += spent,
            SealStage::ParseBack => figures.parse_back += spent,
            SealStage::Sha256 => figures.sha256 += spent,
            SealStage::Sign => figures.sign += spent,
        }
    };
    let sealed = seal_batch(layout, planned, &batch, key, None, &mut lap)
        .map_err(|error| anyhow::anyhow!("batch {}: {error}", planned.batch_id))?;
    let entry = manifest_entry(layout, route, planned, key, &sealed.sha256);
    let started = Instant::now();
    let verifier = VerifyingKey::from_spki_der(key.public_key_spki_der())?;
    verify_file_bytes(
        &verifier,
        &entry,
        layouts,
        &sealed.rendered.bytes,
        &sealed.signature,
    )
    .map_err(|error| anyhow::anyhow!("batch {}: {error}", planned.batch_id))?;
    figures.verify = started.elapsed();
    figures.files = 1;
    figures.rows = sealed.rendered.record_count;
    figures.bytes = sealed.rendered.bytes.len() as u64;
    let digest = format!(
        "{}  {}/{}\n",
        sealed.sha256,
        layout.name(),
        planned.batch_id
    );
    Ok((digest, figures))
}

/// The manifest entry export writes for a sealed file (as `engine::export`'s
/// `manifest_entry`), for the final check.
fn manifest_entry(
    layout: &Layout,
    route: &Route,
    planned: &PlannedBatch,
    key: &SigningKey,
    sha256: &str,
) -> ManifestFile {
    let file = file_name(&planned.batch_id, layout.kind());
    ManifestFile {
        signature_file: format!("{file}.sig"),
        file,
        batch_id: planned.batch_id.clone(),
        layout: layout.name().to_string(),
        bank_prefix: route.bank_prefix.clone(),
        payer_account: route.payer_account.clone(),
        pay_date: "2026-11-25".to_string(),
        sha256: sha256.to_string(),
        record_count: u64::from(planned.record_count),
        total: planned.total.to_yuan_string(),
        total_fen: Fen::as_i64(planned.total),
        signature_algorithm: key.algorithm().as_str().to_string(),
        key_id: key.key_id(),
    }
}

/// The batch export's pass 2 would read: the route's lines in the planned range.
fn assemble_batch(
    lines: &[BenchLine],
    line_routes: &[Option<usize>],
    route: &Route,
    planned: &PlannedBatch,
) -> PaymentBatch {
    let first = usize::try_from(planned.first_line_no - 1).unwrap_or(0);
    let last = usize::try_from(planned.last_line_no).unwrap_or(0);
    let mut payments = Vec::with_capacity(planned.record_count as usize);
    for (line, line_route) in lines[first..last].iter().zip(&line_routes[first..last]) {
        let in_batch = line_route.is_some_and(|index| planned.holds(index, line.line_no));
        if !in_batch {
            continue;
        }
        payments.push(PaymentInstruction {
            seq: u32::try_from(payments.len() + 1).unwrap_or(u32::MAX),
            end_to_end_id: CompactString::from(line.end_to_end_id.as_str()),
            household_id: CompactString::from(line.payee.household_id.as_str()),
            account_number: CompactString::from(line.payee.account_number.as_str()),
            account_name: CompactString::from(line.payee.account_name.as_str()),
            id_number: CompactString::from(line.payee.id_number.as_str()),
            amount: line.payee.amount,
            bank_code: CompactString::from(line.payee.bank_code.as_str()),
            memo: CompactString::from(BENCH_MEMO),
        });
    }
    let date = NaiveDate::from_ymd_opt(2026, 11, 25).unwrap_or_default();
    PaymentBatch {
        batch_id: planned.batch_id.clone(),
        payer_account: route.payer_account.clone(),
        payer_name: route.payer_name.clone(),
        payer_bank_code: route.payer_bank_code.clone(),
        pay_date: date,
        created_at: date.and_hms_opt(9, 30, 0).unwrap_or_default(),
        memo: BENCH_MEMO.to_string(),
        payments,
    }
}

/// The printed table and the CSV of the same figures.
struct Report {
    households: u64,
    table: String,
    csv: String,
    section: &'static str,
}

impl Report {
    fn new(households: u64, generate_seconds: f64, signed_with: &str) -> Report {
        let mut table = format!(
            "disburse bench --formats-only: {households} generated payments (generated in {generate_seconds:.3} s, not counted), files signed with {signed_with}\n"
        );
        let _ = writeln!(
            table,
            "  stage columns: CPU seconds summed over {SEALS_IN_FLIGHT} sealing threads; verify = export's final check of each file\n  (verify_directory's SHA-256, signature and figures); cpu s = render + parse + sha256 + sign + verify;\n  wall s: elapsed time of the pass; rows/s = rows / wall s; assemble (building batches in memory) is not export's work"
        );
        Report {
            households,
            table,
            csv: String::from("households,section,layout,files,rows,mib,assemble_s,render_s,parse_back_s,sha256_s,sign_s,verify_s,cpu_s,wall_s,rows_per_second\n"),
            section: "",
        }
    }

    fn section(&mut self, title: &'static str) {
        self.section = title;
        let _ = writeln!(
            self.table,
            "\n  {title}\n  {:<24} {:>5} {:>9} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>11}",
            "layout",
            "files",
            "rows",
            "MiB",
            "assemble",
            "render",
            "parse",
            "sha256",
            "sign",
            "verify",
            "cpu s",
            "wall s",
            "rows/s"
        );
    }

    fn row(&mut self, label: &str, figures: &LayoutFigures) {
        let cpu_seconds = figures.format_seconds();
        let wall_seconds = figures.wall.map(|wall| wall.as_secs_f64());
        let rate = wall_seconds
            .filter(|seconds| *seconds > 0.0)
            .map(|seconds| figures.rows as f64 / seconds);
        let wall_text = wall_seconds.map_or_else(String::new, |seconds| format!("{seconds:.3}"));
        let rate_text = rate.map_or_else(String::new, |rate| format!("{rate:.0}"));
        let mib = figures.bytes as f64 / (1024.0 * 1024.0);
        let _ = writeln!(
            self.table,
            "  {label:<24} {:>5} {:>9} {mib:>7.1} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {cpu_seconds:>8.3} {wall_text:>8} {rate_text:>11}",
            figures.files,
            figures.rows,
            figures.assemble.as_secs_f64(),
            figures.render.as_secs_f64(),
            figures.parse_back.as_secs_f64(),
            figures.sha256.as_secs_f64(),
            figures.sign.as_secs_f64(),
            figures.verify.as_secs_f64(),
        );
        let _ = writeln!(
            self.csv,
            "{},\"{}\",{},{},{},{mib:.1},{:.3},{:.3},{:.3},{:.3},{:.3},{:.3},{cpu_seconds:.3},{wall_text},{rate_text}",
            self.households,
            self.section,
            label.trim(),
            figures.files,
            figures.rows,
            figures.assemble.as_secs_f64(),
            figures.render.as_secs_f64(),
            figures.parse_back.as_secs_f64(),
            figures.sha256.as_secs_f64(),
            figures.sign.as_secs_f64(),
            figures.verify.as_secs_f64(),
        );
    }

    fn finish(mut self, out: &Path, payments_csv: &Path) -> anyhow::Result<String> {
        let peak_mib = peak_memory_kib() / 1024;
        let figures_csv = out.join("formats-bench.csv");
        let _ = writeln!(
            self.csv,
            "{},peak_memory_mib,,,,{peak_mib},,,,,,,,,",
            self.households
        );
        std::fs::write(&figures_csv, &self.csv)
            .with_context(|| format!("cannot write {}", figures_csv.display()))?;
        let _ = writeln!(
            self.table,
            "\n  peak memory {peak_mib} MiB (includes the {} generated payments held in memory)\n  payments in {}\n  figures in {}",
            self.households,
            payments_csv.display(),
            figures_csv.display()
        );
        Ok(self.table)
    }
}
