//! `disburse bench --formats-only --households N [--out DIR]`: the bank-file work of an
//! export, without a database. N generated payees are planned into batches as export
//! plans them (`export::plan`), and each batch is rendered, parsed back and checked
//! against its plan (export's own check), hashed (SHA-256) and signed (Ed25519, the
//! signature verified as export does). Two passes: every payment in its route's layout
//! (what `run export` does with the default routes), and every payment in each of the
//! layouts A, B and C (so a layout's rate is measured on the same N payments, e.g.
//! beside `scripts/sepaxml_bench.py`). `DIR/payments.csv` holds the payments for that
//! script. A benchmark, not a test: nothing here asserts a time.

// Seconds and rates are measurements, not money: floats are allowed here as in bench.rs.
#![allow(clippy::float_arithmetic)]

use crate::bench::peak_memory_kib;
use crate::config::{Config, Route, ROUTE_MAX_RECORDS_DEFAULT};
use crate::demo::generate::{GeneratedPayee, RosterGenerator};
use crate::domain::payment::{PaymentBatch, PaymentInstruction};
use crate::engine::export::check_rendered;
use crate::export::plan::{route_index, BatchPlanner, PlannedBatch};
use crate::formats::spec::find;
use crate::formats::{load_builtin, render_payment_file, Layout};
use crate::sign::{generate_key_pair, sha256_hex, KeyAlgorithm, SigningKey, VerifyingKey};
use anyhow::Context as _;
use chrono::NaiveDate;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
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

/// What one layout's files cost, stage by stage.
#[derive(Default)]
struct LayoutFigures {
    files: u64,
    rows: u64,
    bytes: u64,
    /// Building the `PaymentBatch` (export reads it from the database instead).
    assemble: Duration,
    render: Duration,
    /// Parse back and check against the plan (`engine::export::check_rendered`).
    parse_back: Duration,
    sha256: Duration,
    /// Sign, and verify the fresh signature, as export does.
    sign: Duration,
}

impl LayoutFigures {
    /// The format work export does per file: render, check, hash, sign.
    fn format_seconds(&self) -> f64 {
        (self.render + self.parse_back + self.sha256 + self.sign).as_secs_f64()
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
    }
}

/// Runs the formats benchmark on `households` generated payees; writes
/// `out/payments.csv` and `out/formats-bench.csv`; returns the table to print.
pub fn run_formats_bench(households: u64, out: &Path) -> anyhow::Result<String> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let started = Instant::now();
    let lines = generate_lines(households);
    let generate_seconds = started.elapsed().as_secs_f64();
    let payments_csv = out.join("payments.csv");
    write_payments_csv(&lines, &payments_csv)?;
    let pair = generate_key_pair(KeyAlgorithm::Ed25519)?;
    let key = SigningKey::from_pkcs8_pem(&pair.private_pkcs8_pem)?;
    let verifier = VerifyingKey::from_spki_der(key.public_key_spki_der())?;
    let layouts = load_builtin();
    let signer = Signer {
        key: &key,
        verifier: &verifier,
    };
    let routes = Config::builtin().routes;
    let mut digests = String::new();
    let mix = bench_routes(&lines, &routes, &layouts, &signer, &mut digests)?;
    let mut each = Vec::new();
    for (letter, name) in LAYOUTS {
        let route = single_route(&routes, name);
        let figures = bench_routes(
            &lines,
            std::slice::from_ref(&route),
            &layouts,
            &signer,
            &mut digests,
        )?;
        each.push((
            *letter,
            *name,
            figures.into_iter().next().unwrap_or_default(),
        ));
    }
    let mut report = Report::new(households, generate_seconds);
    report.section("every payment in each layout (same N payments per layout)");
    for (letter, name, figures) in &each {
        report.row(&format!("{letter} {name}"), figures);
    }
    report.section("every payment in its route's layout (run export, default routes)");
    let mut mix_total = LayoutFigures::default();
    for (index, figures) in mix.iter().enumerate() {
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

struct Signer<'k> {
    key: &'k SigningKey,
    verifier: &'k VerifyingKey,
}

/// Plans `lines` over `routes` and puts every batch through export's file work;
/// returns the figures per route and appends `sha256 layout/batch_id` to `digests`.
fn bench_routes(
    lines: &[BenchLine],
    routes: &[Route],
    layouts: &[Layout],
    signer: &Signer<'_>,
    digests: &mut String,
) -> anyhow::Result<Vec<LayoutFigures>> {
    let mut planner = BatchPlanner::new(routes, BENCH_RUN_NO);
    for line in lines {
        planner.push(line.line_no, &line.payee.bank_code, line.payee.amount)?;
    }
    let mut figures: Vec<LayoutFigures> = routes.iter().map(|_| LayoutFigures::default()).collect();
    for planned in planner.finish() {
        let route = &routes[planned.route_index];
        let layout =
            find(layouts, &route.layout).with_context(|| format!("no layout {}", route.layout))?;
        let started = Instant::now();
        let batch = assemble_batch(lines, routes, route, &planned);
        let assembled = Instant::now();
        let rendered = render_payment_file(layout, &batch)?;
        let rendered_at = Instant::now();
        check_rendered(layout, &planned, &batch, &rendered)?;
        let checked = Instant::now();
        let sha256 = sha256_hex(&rendered.bytes);
        let hashed = Instant::now();
        let signature = signer.key.sign(&rendered.bytes)?;
        signer.verifier.verify(&rendered.bytes, &signature)?;
        let signed = Instant::now();
        let _ = writeln!(digests, "{sha256}  {}/{}", layout.name(), planned.batch_id);
        let figure = &mut figures[planned.route_index];
        figure.files += 1;
        figure.rows += rendered.record_count;
        figure.bytes += rendered.bytes.len() as u64;
        figure.assemble += assembled - started;
        figure.render += rendered_at - assembled;
        figure.parse_back += checked - rendered_at;
        figure.sha256 += hashed - checked;
        figure.sign += signed - hashed;
    }
    Ok(figures)
}

/// The batch export's pass 2 would read: the route's lines in the planned range.
fn assemble_batch(
    lines: &[BenchLine],
    routes: &[Route],
    route: &Route,
    planned: &PlannedBatch,
) -> PaymentBatch {
    let first = usize::try_from(planned.first_line_no - 1).unwrap_or(0);
    let last = usize::try_from(planned.last_line_no).unwrap_or(0);
    let mut payments = Vec::with_capacity(planned.record_count as usize);
    for line in &lines[first..last] {
        let in_batch = route_index(routes, &line.payee.bank_code)
            .is_some_and(|index| planned.holds(index, line.line_no));
        if !in_batch {
            continue;
        }
        payments.push(PaymentInstruction {
            seq: u32::try_from(payments.len() + 1).unwrap_or(u32::MAX),
            end_to_end_id: line.end_to_end_id.clone(),
            household_id: line.payee.household_id.clone(),
            account_number: line.payee.account_number.clone(),
            account_name: line.payee.account_name.clone(),
            id_number: line.payee.id_number.clone(),
            amount: line.payee.amount,
            bank_code: line.payee.bank_code.clone(),
            memo: BENCH_MEMO.to_string(),
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
    fn new(households: u64, generate_seconds: f64) -> Report {
        let mut table = format!(
            "disburse bench --formats-only: {households} generated payments (generated in {generate_seconds:.3} s, not counted)\n"
        );
        let _ = writeln!(
            table,
            "  format s = render + parse-back + sha256 + sign; rows/s on format s; assemble (building the batch in memory) not counted"
        );
        Report {
            households,
            table,
            csv: String::from("households,section,layout,files,rows,mib,assemble_s,render_s,parse_back_s,sha256_s,sign_s,format_s,rows_per_second\n"),
            section: "",
        }
    }

    fn section(&mut self, title: &'static str) {
        self.section = title;
        let _ = writeln!(
            self.table,
            "\n  {title}\n  {:<24} {:>5} {:>9} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>11}",
            "layout",
            "files",
            "rows",
            "MiB",
            "assemble",
            "render",
            "parse",
            "sha256",
            "sign",
            "format s",
            "rows/s"
        );
    }

    fn row(&mut self, label: &str, figures: &LayoutFigures) {
        let seconds = figures.format_seconds();
        let rate = if seconds > 0.0 {
            figures.rows as f64 / seconds
        } else {
            0.0
        };
        let mib = figures.bytes as f64 / (1024.0 * 1024.0);
        let _ = writeln!(
            self.table,
            "  {label:<24} {:>5} {:>9} {mib:>7.1} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {seconds:>8.3} {rate:>11.0}",
            figures.files,
            figures.rows,
            figures.assemble.as_secs_f64(),
            figures.render.as_secs_f64(),
            figures.parse_back.as_secs_f64(),
            figures.sha256.as_secs_f64(),
            figures.sign.as_secs_f64(),
        );
        let _ = writeln!(
            self.csv,
            "{},\"{}\",{},{},{},{mib:.1},{:.3},{:.3},{:.3},{:.3},{:.3},{seconds:.3},{rate:.0}",
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
        );
    }

    fn finish(mut self, out: &Path, payments_csv: &Path) -> anyhow::Result<String> {
        let peak_mib = peak_memory_kib() / 1024;
        let figures_csv = out.join("formats-bench.csv");
        let _ = writeln!(
            self.csv,
            "{},peak_memory_mib,,,,{peak_mib},,,,,,,",
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
