//! Imports (CONTRACTS §2.1–2.4) through the real binary, on SQLite and PostgreSQL:
//! every validation rule refused with file:line: column: value: reason; a refused file
//! changes nothing; re-import is a no-op; versions; GBK input.

use crate::support::*;
use disburse::domain::ids::{luhn_check_digit, resident_id_check_char};

pub const ROSTER_HEADER: &str = disburse::demo::generate::ROSTER_HEADER;

pub fn id_number(first_seventeen: &str) -> String {
    format!(
        "{first_seventeen}{}",
        char::from(resident_id_check_char(first_seventeen.as_bytes()))
    )
}

pub fn card(without_check: &str) -> String {
    format!("{without_check}{}", luhn_check_digit(without_check))
}

/// A valid roster row as (column, value) pairs, in header order.
pub fn roster_row(household_id: &str) -> Vec<(&'static str, String)> {
    let names: Vec<&'static str> = ROSTER_HEADER.split(',').collect();
    let values = [
        household_id.to_string(),
        "210102".into(),
        "urban".into(),
        "张三".into(),
        id_number("21010219600101001"),
        "3".into(),
        "1".into(),
        "1".into(),
        "0".into(),
        "0".into(),
        "stable".into(),
        "2026-09-01".into(),
        "1200.00".into(),
        "".into(),
        "2026-01".into(),
        "沈民〔2026〕1号".into(),
        "民政局".into(),
        "102221000018".into(),
        card("622202123456789012"),
        "张三".into(),
    ];
    names.into_iter().zip(values).collect()
}

pub fn with(
    mut row: Vec<(&'static str, String)>,
    column: &str,
    value: &str,
) -> Vec<(&'static str, String)> {
    let slot = row
        .iter_mut()
        .find(|(name, _)| *name == column)
        .expect("known column");
    slot.1 = value.to_string();
    row
}

pub fn roster_csv(rows: &[Vec<(&'static str, String)>]) -> String {
    let mut text = format!("{ROSTER_HEADER}\n");
    for row in rows {
        let values: Vec<&str> = row.iter().map(|(_, value)| value.as_str()).collect();
        text.push_str(&values.join(","));
        text.push('\n');
    }
    text
}

#[test]
fn each_roster_rule_refuses_its_bad_row() {
    let bad_check_digit = {
        let good = id_number("21010219600101001");
        let last = if good.ends_with('1') { "2" } else { "1" };
        format!("{}{last}", &good[..17])
    };
    let bad_luhn = {
        let good = card("622202123456789012");
        let last = if good.ends_with('1') { "2" } else { "1" };
        format!("{}{last}", &good[..good.len() - 1])
    };
    let cases: &[(&str, &str, &str)] = &[
        ("household_id", "H 1", "household id must be"),
        ("region_code", "21010", "6 digits"),
        ("area", "city", "urban or rural"),
        ("head_name", "", "required"),
        (
            "head_id_number",
            &bad_check_digit,
            "check digit is wrong (GB 11643)",
        ),
        ("members", "0", "at least 1"),
        ("elderly", "4", "more than the household's 3 members"),
        ("minors", "x", "whole number"),
        ("review_class", "often", "three_no, stable or unstable"),
        ("last_review", "2026-02-30", "no such day"),
        ("base_amount", "12.345", "more than 2 decimals"),
        ("base_amount", "-5.00", "negative"),
        ("employment_cost_deduction", "1.0.0", "not a yuan amount"),
        ("approved_from", "2026-13", "YYYY-MM"),
        ("bank_code", "10222100001", "12-digit CNAPS"),
        ("account_number", &bad_luhn, "Luhn"),
        ("account_number", "12AB5678", "8 to 32 digits"),
        ("account_name", "张|三", "contains '|', CR or LF"),
    ];
    let db = TestDb::sqlite();
    for (column, value, reason) in cases {
        let csv = roster_csv(&[roster_row("H1"), with(roster_row("H2"), column, value)]);
        let file = db.write("roster.csv", csv);
        let output = db.run(&["import", "roster", file.to_str().unwrap()]);
        assert_exit(&output, 1);
        let errors = stderr(&output);
        let expected_prefix = format!("{}:3: {column}: ", file.display());
        assert!(
            errors.contains(&expected_prefix),
            "{column}={value:?}: {errors}"
        );
        assert!(
            errors.contains(reason),
            "{column}={value:?} should say {reason:?}: {errors}"
        );
    }
    assert_eq!(db.count("household_version"), 0, "nothing imported");
}

#[test]
fn a_file_with_several_bad_rows_reports_all_and_changes_nothing() {
    for db in TestDb::both() {
        let csv = roster_csv(&[
            roster_row("H1"),
            with(roster_row("H2"), "area", "town"),
            roster_row("H3"),
            with(with(roster_row("H4"), "members", "0"), "bank_code", "1"),
            roster_row("H1"),
        ]);
        let file = db.write("roster.csv", csv);
        let output = db.run(&["import", "roster", file.to_str().unwrap()]);
        assert_exit(&output, 1);
        let errors = stderr(&output);
        for expected in [
            ":3: area:",
            ":5: members:",
            ":5: bank_code:",
            ":6: household_id+approved_from:",
        ] {
            assert!(
                errors.contains(expected),
                "{}: missing {expected} in {errors}",
                db.backend
            );
        }
        assert_eq!(db.count("household_version"), 0, "{}", db.backend);
        assert_eq!(db.count("import_file"), 0, "{}", db.backend);
        assert_eq!(db.count("audit_log"), 0, "{}", db.backend);
    }
}

/// Validation and writing run at once (issue #7): a file whose only fault comes after
/// several batches have been written is still refused as validation words it, with
/// nothing left behind; a key repeated far apart is a repeat, not a conflict.
#[test]
fn a_fault_after_several_written_batches_is_refused_as_validation_words_it() {
    const ROWS: usize = 25_000; // two and a half of import's 10,000-row batches
    let good: Vec<_> = (1..=ROWS).map(|n| roster_row(&format!("H{n}"))).collect();
    let cases = [
        (
            "bad-last-row",
            with(roster_row("HLAST"), "members", "0"),
            ":25002: members:",
        ),
        (
            "repeat-of-the-first",
            with(roster_row("H1"), "members", "4"),
            ":25002: household_id+approved_from: \"H1/2026-01\": appears again (first on line 2)",
        ),
    ];
    for db in TestDb::both() {
        for (name, last, expected) in &cases {
            let mut rows = good.clone();
            rows.push(last.clone());
            let file = db.write(&format!("{name}.csv"), roster_csv(&rows));
            let output = db.run(&["import", "roster", file.to_str().unwrap()]);
            assert_exit(&output, 1);
            let errors = stderr(&output);
            assert!(
                errors.contains(expected),
                "{}: {name}: {errors}",
                db.backend
            );
            assert!(
                !errors.contains("changed") && !errors.contains("different content"),
                "{}: {name}: pass 2's view shown: {errors}",
                db.backend
            );
            assert_eq!(db.count("household_version"), 0, "{}", db.backend);
            assert_eq!(db.count("import_file"), 0, "{}", db.backend);
            assert_eq!(db.count("audit_log"), 0, "{}", db.backend);
        }
        let file = db.write("good.csv", roster_csv(&good));
        assert_exit(&db.run(&["import", "roster", file.to_str().unwrap()]), 0);
        assert_eq!(db.count("household_version"), ROWS as i64, "{}", db.backend);
        // The stored row count (set once validation has counted) is what a re-import
        // reports.
        let again = db.run(&["--json", "import", "roster", file.to_str().unwrap()]);
        assert_exit(&again, 0);
        let summary: serde_json::Value = serde_json::from_str(&stdout(&again)).unwrap();
        assert_eq!(summary["already_imported"], true, "{}", db.backend);
        assert_eq!(summary["rows"], ROWS, "{}", db.backend);
    }
}

/// The file is replaced after import hashed it and before it is read again (an upload
/// still being written, a sender replacing it): the rows read are another file's,
/// already handed to the writer in batches, and the import is refused with nothing
/// kept, on both backends.
#[test]
fn a_file_replaced_after_it_was_hashed_is_refused_and_nothing_is_kept() {
    const ROWS: usize = 25_000; // past two of import's 10,000-row batches
    let roster = |prefix: &str| {
        let rows: Vec<_> = (1..=ROWS)
            .map(|n| roster_row(&format!("{prefix}{n}")))
            .collect();
        roster_csv(&rows)
    };
    for db in TestDb::both() {
        let file = db.write("roster.csv", roster("A"));
        let import = PausedRun::start(
            &db,
            "import.after_hash",
            &["import", "roster", file.to_str().unwrap()],
        );
        std::fs::write(&file, roster("B")).unwrap();
        let (status, rest) = import.go_on();
        assert!(!status.success(), "{}: {rest}", db.backend);
        assert!(
            rest.contains("changed while it was being imported"),
            "{}: {rest}",
            db.backend
        );
        assert_eq!(db.count("household_version"), 0, "{}", db.backend);
        assert_eq!(db.count("import_file"), 0, "{}", db.backend);
        assert_eq!(db.count("audit_log"), 0, "{}", db.backend);
    }
}

#[test]
fn errors_mask_personal_data() {
    let db = TestDb::sqlite();
    let good_id = id_number("21010219600101001");
    let bad_id = format!(
        "{}{}",
        &good_id[..17],
        if good_id.ends_with('1') { "2" } else { "1" }
    );
    let csv = roster_csv(&[with(roster_row("H1"), "head_id_number", &bad_id)]);
    let file = db.write("roster.csv", csv);
    let output = db.run(&["import", "roster", file.to_str().unwrap()]);
    assert_exit(&output, 1);
    let errors = stderr(&output);
    assert!(!errors.contains(&bad_id), "full ID leaked: {errors}");
    assert!(
        errors.contains(&format!("210102********{}", &bad_id[14..])),
        "{errors}"
    );
}

#[test]
fn reimport_is_a_no_op_and_versions_accumulate() {
    for db in TestDb::both() {
        let first = db.write(
            "roster.csv",
            roster_csv(&[roster_row("H1"), roster_row("H2")]),
        );
        assert_exit(&db.run(&["import", "roster", first.to_str().unwrap()]), 0);
        let again = db.run(&["import", "roster", first.to_str().unwrap()]);
        assert_exit(&again, 0);
        assert!(
            stdout(&again).contains("already imported"),
            "{}",
            stdout(&again)
        );
        // The same rows in another file (another order) change nothing either.
        let reordered = db.write(
            "roster2.csv",
            roster_csv(&[roster_row("H2"), roster_row("H1")]),
        );
        let output = db.run(&["import", "roster", reordered.to_str().unwrap()]);
        assert_exit(&output, 0);
        assert!(
            stdout(&output).contains("0 new, 2 unchanged"),
            "{}",
            stdout(&output)
        );
        // A later approved_from is a new version; the old one stays.
        let later = with(
            with(roster_row("H1"), "approved_from", "2026-06"),
            "base_amount",
            "1300.00",
        );
        let versioned = db.write("roster3.csv", roster_csv(&[later]));
        assert_exit(
            &db.run(&["import", "roster", versioned.to_str().unwrap()]),
            0,
        );
        assert_eq!(db.count("household_version"), 3, "{}", db.backend);
        // The same key with other content is refused, naming the line.
        let changed = with(roster_row("H2"), "base_amount", "999.00");
        let conflict = db.write("roster4.csv", roster_csv(&[roster_row("H9"), changed]));
        let output = db.run(&["import", "roster", conflict.to_str().unwrap()]);
        assert_exit(&output, 1);
        assert!(
            stderr(&output).contains(":3: household_id+approved_from:"),
            "{}",
            stderr(&output)
        );
        assert_eq!(
            db.count("household_version"),
            3,
            "{}: H9 must not land",
            db.backend
        );
        let verify = db.run(&["audit", "verify"]);
        assert_exit(&verify, 0);
        assert!(stdout(&verify).contains("3 entries"), "{}", stdout(&verify));
    }
}

#[test]
fn gbk_input_with_the_encoding_option() {
    let db = TestDb::sqlite();
    let csv = roster_csv(&[roster_row("H1")]);
    let (gbk, _, unmappable) = encoding_rs::GBK.encode(&csv);
    assert!(!unmappable);
    let file = db.write("roster-gbk.csv", &gbk[..]);
    let as_utf8 = db.run(&["import", "roster", file.to_str().unwrap()]);
    assert_exit(&as_utf8, 1);
    assert!(
        stderr(&as_utf8).contains("byte offset"),
        "{}",
        stderr(&as_utf8)
    );
    let output = db.run(&[
        "import",
        "roster",
        "--encoding",
        "gbk",
        file.to_str().unwrap(),
    ]);
    assert_exit(&output, 0);
    assert_eq!(db.count("household_version"), 1);
}

#[test]
fn header_problems_are_all_reported() {
    let db = TestDb::sqlite();
    let header = ROSTER_HEADER.replace("area,", "zone,");
    let file = db.write("roster.csv", format!("{header},extra\n"));
    let output = db.run(&["import", "roster", file.to_str().unwrap()]);
    assert_exit(&output, 1);
    let errors = stderr(&output);
    for expected in [
        "1: (header): \"zone\": unknown column",
        "1: (header): \"extra\": unknown column",
        "1: (header): \"area\": missing column",
    ] {
        assert!(errors.contains(expected), "missing {expected}: {errors}");
    }
}

pub const DECISION_HEADER: &str =
    "decision_id,household_id,kind,effective_month,end_month,amount,percent,months,reason,ref,decided_by,decided_on";

#[test]
fn decisions_are_checked_for_their_kind_the_household_and_p11() {
    for db in TestDb::both() {
        let roster = db.write(
            "roster.csv",
            roster_csv(&[roster_row("H1"), roster_row("H2")]),
        );
        assert_exit(&db.run(&["import", "roster", roster.to_str().unwrap()]), 0);
        let bad = format!(
            "{DECISION_HEADER}\n\
             D1,H1,reduce,2026-10,,,,,refused_work,r,d,2026-09-01\n\
             D2,H1,taper,2026-10,,,,13,income,r,d,2026-09-01\n\
             D3,H404,stop,2026-10,,,,,death,r,d,2026-09-01\n\
             D4,H1,recover,2026-10,,,,,false_report,r,d,2026-09-01\n\
             D5,H1,fly,2026-10,,,,,x,r,d,2026-09-01\n"
        );
        let file = db.write("decisions.csv", bad);
        let output = db.run(&["import", "decisions", file.to_str().unwrap()]);
        assert_exit(&output, 1);
        let errors = stderr(&output);
        for expected in [
            ":2: percent:",
            ":3: months:",
            "3 to 12 months (P7)",
            ":5: amount:",
            ":6: kind:",
        ] {
            assert!(
                errors.contains(expected),
                "{}: missing {expected}: {errors}",
                db.backend
            );
        }
        // Unknown households are found once the rows themselves are valid.
        let unknown = format!("{DECISION_HEADER}\nD3,H404,stop,2026-10,,,,,death,r,d,2026-09-01\n");
        let file = db.write("decisions2.csv", unknown);
        let output = db.run(&["import", "decisions", file.to_str().unwrap()]);
        assert_exit(&output, 1);
        assert!(stderr(&output).contains(":2: household_id: \"H404\": no such household"));
        // P11: no resume inside a blacklist year.
        let blacklist = format!(
            "{DECISION_HEADER}\nB1,H2,blacklist,2026-03,,,,,false_report,r,d,2026-02-20\n\
             R1,H2,resume,2026-09,,,,,appeal,r,d,2026-08-20\n"
        );
        let file = db.write("decisions3.csv", blacklist);
        let output = db.run(&["import", "decisions", file.to_str().unwrap()]);
        assert_exit(&output, 1);
        assert!(
            stderr(&output).contains("P11: blacklisted from 2026-03"),
            "{}",
            stderr(&output)
        );
        assert_eq!(db.count("decision"), 0, "{}", db.backend);
    }
}

#[test]
fn staff_relatives_and_treasury_vouchers_import() {
    for db in TestDb::both() {
        let relatives = format!(
            "staff_id,staff_name,relative_id_number,relation\nS1,李四,{},配偶\n",
            id_number("21010219600101001")
        );
        let file = db.write("relatives.csv", relatives);
        assert_exit(
            &db.run(&["import", "staff-relatives", file.to_str().unwrap()]),
            0,
        );
        let vouchers =
            "voucher_no,voucher_type,original_voucher_no,batch_id,bank_code,amount,date\n\
                        V1,5201,,B000001A001,102221000018,1200.00,2026-11-20\n\
                        V2,2302,,B000001A001,102221000018,100.00,2026-11-25\n";
        let file = db.write("treasury.csv", vouchers);
        let output = db.run(&["import", "treasury", file.to_str().unwrap()]);
        assert_exit(&output, 1);
        assert!(
            stderr(&output).contains(":3: original_voucher_no:"),
            "{}",
            stderr(&output)
        );
        let fixed = vouchers.replace("2302,,", "2302,V1,");
        let file = db.write("treasury2.csv", fixed);
        assert_exit(&db.run(&["import", "treasury", file.to_str().unwrap()]), 0);
        assert_eq!(db.count("treasury_voucher"), 2, "{}", db.backend);
        assert_eq!(db.count("staff_relative"), 1, "{}", db.backend);
    }
}
