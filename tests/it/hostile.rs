//! Hostile input and personal data (FAILURES #5 for the roster, #19 CSV injection, the
//! masking control): a roster cut at any byte offset never panics and a cut inside a
//! record is refused; formula-like names import and run, and `run lines` carries no
//! cell a spreadsheet would execute; `disburse demo` at trace level logs no ID number,
//! account number or full name of its roster.

use crate::imports::{roster_csv, roster_row, with};
use crate::support::*;
use disburse::imports::decode::InputEncoding;
use disburse::imports::records::{parse_roster_row, ROSTER_COLUMNS};
use disburse::imports::scan;

/// Whether a cell would be read as a formula by a spreadsheet (OWASP CSV injection).
fn formula_like(cell: &str) -> bool {
    let numeric = cell.parse::<i64>().is_ok()
        || cell
            .strip_prefix('-')
            .is_some_and(|rest| rest.bytes().all(|b| b.is_ascii_digit() || b == b'.'));
    cell.starts_with(['=', '+', '@', '\t', '\r']) || (cell.starts_with('-') && !numeric)
}

#[test]
fn formula_names_import_and_run_lines_carry_no_formula_cell() {
    assert!(formula_like("=HYPERLINK(1)") && formula_like("-1+2") && !formula_like("-12.00"));
    for db in TestDb::both() {
        let hostile = with(
            with(roster_row("H1"), "account_name", "=HYPERLINK(1)"),
            "head_name",
            "@SUM(1)",
        );
        let plus = with(
            with(
                with(roster_row("H2"), "account_name", "+1"),
                "head_name",
                "-2+3",
            ),
            "head_id_number",
            &crate::imports::id_number("21010219600101002"),
        );
        let plus = with(
            plus,
            "account_number",
            &crate::imports::card("622202123456789013"),
        );
        let roster = db.write("roster.csv", roster_csv(&[hostile, plus]));
        assert_exit(&db.run(&["import", "roster", roster.to_str().unwrap()]), 0);
        let created = db.run_as(
            "operator",
            &["--json", "run", "create", "--month", "2026-11"],
        );
        assert_exit(&created, 0);
        let json: serde_json::Value = serde_json::from_str(stdout(&created).trim()).unwrap();
        let lines = db.run(&["run", "lines", json["run_id"].as_str().unwrap()]);
        assert_exit(&lines, 0);
        let text = stdout(&lines);
        assert_eq!(text.lines().count(), 3, "{text}");
        for cell in text.lines().flat_map(|line| line.split(',')) {
            assert!(!formula_like(cell), "{}: cell {cell:?}", db.backend);
        }
        // The closed alphabet that keeps `run lines` safe starts at import.
        let bad_id = with(roster_row("=1+1"), "head_name", "王五");
        let refused = db.write("bad.csv", roster_csv(&[bad_id]));
        let output = db.run(&["import", "roster", refused.to_str().unwrap()]);
        assert_exit(&output, 1);
        assert!(
            stderr(&output).contains("household_id"),
            "{}",
            stderr(&output)
        );
    }
}

/// FAILURES #5 for the roster: every prefix of a valid file either is refused, or is
/// exactly its complete lines (a cut at a line end is a valid shorter file); none
/// panics. Formats and XML: `src/formats/tests.rs` and `src/formats/xml_results.rs`.
#[test]
fn a_roster_cut_at_every_byte_offset_is_refused_or_is_its_complete_lines() {
    let mut roster = Vec::new();
    disburse::demo::generate::RosterGenerator::new(5)
        .write_roster(&mut roster, 4, "2026-01")
        .unwrap();
    let complete = |prefix: &[u8]| {
        let report = scan(
            prefix,
            InputEncoding::Utf8,
            ROSTER_COLUMNS,
            parse_roster_row,
            |_, _| Ok(()),
        );
        (report.is_clean(), report.rows)
    };
    assert_eq!(complete(&roster), (true, 4));
    let line_ends: Vec<usize> = roster
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .map(|(i, _)| i + 1)
        .collect();
    for cut in 0..roster.len() {
        let prefix = &roster[..cut];
        let (clean, rows) = complete(prefix);
        let whole_lines = line_ends.iter().filter(|end| **end <= cut).count() as u64;
        if line_ends.contains(&cut) && whole_lines > 1 {
            assert!(clean, "a cut at a line end is a valid file: {cut}");
            assert_eq!(rows, whole_lines.saturating_sub(1), "{cut}");
        } else if !line_ends.contains(&cut) {
            assert!(
                !clean,
                "a roster cut at byte {cut} (inside a record) must be refused"
            );
        }
    }
}

#[test]
fn demo_at_trace_level_logs_no_id_number_account_or_full_name() {
    let dir = tempfile::tempdir().unwrap();
    let output = disburse_command(dir.path())
        .env("DISBURSE_LOG", "trace")
        .args(["demo", "--households", "50", "--out", "out"])
        .output()
        .unwrap();
    assert_exit(&output, 0);
    let log = format!("{}{}", stdout(&output), stderr(&output));
    assert!(
        log.contains("TRACE") || log.contains("DEBUG"),
        "the log must be at trace level for this test to mean anything"
    );
    let roster = std::fs::read_to_string(dir.path().join("out/inputs/roster.csv")).unwrap();
    let header: Vec<&str> = roster.lines().next().unwrap().split(',').collect();
    let column = |name: &str| header.iter().position(|c| *c == name).unwrap();
    let secret_columns = [
        "head_id_number",
        "account_number",
        "head_name",
        "account_name",
    ];
    let mut checked = 0;
    for line in roster.lines().skip(1) {
        let values: Vec<&str> = line.split(',').collect();
        for name in secret_columns {
            let value = values[column(name)];
            assert!(value.chars().count() >= 2, "{name} {value:?}");
            assert!(
                !log.contains(value),
                "{name} of a household appears in the log"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 50 * secret_columns.len());
}
