//! Runs through the real binary on both databases: a four-month scenario whose amounts
//! were worked out by hand, one run per month and scope, cancellation, four-eyes
//! approvals, and the same digest from the same inputs on SQLite and PostgreSQL.

use crate::imports::{roster_csv, roster_row, with, DECISION_HEADER};
use crate::support::*;
use std::collections::BTreeMap;

/// One approver is enough at these amounts.
const ONE_APPROVER: &str = "[approval]\napprovers_required = 1\napprovers_required_above = 1\n";

fn import(db: &TestDb, kind: &str, name: &str, contents: &str) {
    let file = db.write(name, contents);
    assert_exit(&db.run(&["import", kind, file.to_str().unwrap()]), 0);
}

fn create(db: &TestDb, month: &str) -> String {
    let config = db.write("disburse.toml", ONE_APPROVER);
    let output = db.run_as(
        "operator",
        &[
            "--config",
            config.to_str().unwrap(),
            "--json",
            "run",
            "create",
            "--month",
            month,
        ],
    );
    assert_exit(&output, 0);
    let json: serde_json::Value =
        serde_json::from_str(stdout(&output).trim()).expect("json answer");
    json["run_id"].as_str().expect("run_id").to_string()
}

/// household_id → (status, arrears, recovery, payable, flags)
fn lines(db: &TestDb, run_id: &str) -> BTreeMap<String, (String, String, String, String, String)> {
    let output = db.run(&["run", "lines", run_id]);
    assert_exit(&output, 0);
    let text = stdout(&output);
    let mut rows = text.lines();
    assert_eq!(rows.next(), Some(disburse::run::LINES_CSV_HEADER));
    rows.map(|row| {
        let cells: Vec<&str> = row.split(',').collect();
        assert_eq!(cells.len(), 13, "{row}");
        (
            cells[0].to_string(),
            (
                cells[3].into(),
                cells[6].into(),
                cells[8].into(),
                cells[9].into(),
                cells[12].into(),
            ),
        )
    })
    .collect()
}

fn scenario_roster() -> String {
    let h1 = with(
        with(roster_row("H1"), "approved_from", "2026-09"),
        "base_amount",
        "1000.00",
    );
    let h1 = with(
        with(with(h1, "members", "2"), "elderly", "1"),
        "minors",
        "0",
    );
    let h1 = with(
        with(h1, "review_class", "three_no"),
        "last_review",
        "2026-08-01",
    );
    let h2 = with(
        with(roster_row("H2"), "approved_from", "2026-09"),
        "region_code",
        "210123",
    );
    let h2 = with(
        with(with(h2, "area", "rural"), "elderly", "0"),
        "minors",
        "0",
    );
    let h2 = with(
        with(h2, "base_amount", "1200.00"),
        "last_review",
        "2026-08-15",
    );
    let h2 = with(
        h2,
        "head_id_number",
        &crate::imports::id_number("21012319600101001"),
    );
    let h2 = with(
        h2,
        "account_number",
        &crate::imports::card("622315123456789012"),
    );
    let h4 = with(
        with(roster_row("H4"), "approved_from", "2026-09"),
        "base_amount",
        "800.00",
    );
    let h4 = with(
        with(with(h4, "members", "2"), "elderly", "0"),
        "minors",
        "0",
    );
    let h4 = with(
        h4,
        "head_id_number",
        &crate::imports::id_number("21010219700101001"),
    );
    let h4 = with(
        h4,
        "account_number",
        &crate::imports::card("622202999456789012"),
    );
    roster_csv(&[h1, h2, h4])
}

fn late_roster() -> String {
    let h3 = with(
        with(roster_row("H3"), "approved_from", "2026-10"),
        "base_amount",
        "500.00",
    );
    let h3 = with(
        with(with(h3, "members", "1"), "elderly", "0"),
        "minors",
        "0",
    );
    let h3 = with(
        h3,
        "head_id_number",
        &crate::imports::id_number("21010319800101001"),
    );
    let h3 = with(
        h3,
        "account_number",
        &crate::imports::card("622202888456789012"),
    );
    roster_csv(&[h3])
}

#[test]
fn four_months_match_amounts_worked_out_by_hand() {
    for db in TestDb::both() {
        import(&db, "roster", "roster.csv", &scenario_roster());
        let decisions = format!(
            "{DECISION_HEADER}\n\
             R1,H1,recover,2026-10,,500.00,,,false_report,r,d,2026-09-20\n\
             T2,H2,taper,2026-09,,,,3,income,r,d,2026-08-20\n\
             S4,H4,suspend,2026-10,,,,,review_failed,r,d,2026-09-20\n\
             R4,H4,resume,2026-12,,,,2,review passed,r,d,2026-11-20\n"
        );
        import(&db, "decisions", "decisions.csv", &decisions);
        let li = register_approver(&db, "li");
        let mut months = Vec::new();
        for month in ["2026-09", "2026-10", "2026-11", "2026-12"] {
            if month == "2026-11" {
                // H3 was approved from October but reached us only now (P9: arrears).
                import(&db, "roster", "late.csv", &late_roster());
            }
            let run_id = create(&db, month);
            assert_exit(
                &db.run_as(
                    "li",
                    &["run", "approve", &run_id, "--key", li.to_str().unwrap()],
                ),
                0,
            );
            months.push(lines(&db, &run_id));
        }
        let line = |m: usize, h: &str| {
            months[m]
                .get(h)
                .cloned()
                .map(|(s, a, r, p, _)| (s, a, r, p))
        };
        let expect = |s: &str, a: &str, r: &str, p: &str| {
            Some((s.to_string(), a.to_string(), r.to_string(), p.to_string()))
        };
        let backend = db.backend;
        // September: base + 10% of the 900.00 standard for H1's elderly member (P4, P5).
        assert_eq!(
            line(0, "H1"),
            expect("pay", "0.00", "0.00", "1090.00"),
            "{backend}"
        );
        assert_eq!(
            line(0, "H2"),
            expect("pay", "0.00", "0.00", "1200.00"),
            "{backend}"
        );
        assert_eq!(
            line(0, "H4"),
            expect("pay", "0.00", "0.00", "800.00"),
            "{backend}"
        );
        assert_eq!(line(0, "H3"), None, "{backend}: not yet imported");
        // October: recovery capped at 30% of 1090.00 = 327.00 (P10); H4 suspended.
        assert_eq!(
            line(1, "H1"),
            expect("pay", "0.00", "327.00", "763.00"),
            "{backend}"
        );
        assert_eq!(
            line(1, "H2"),
            expect("pay", "0.00", "0.00", "1200.00"),
            "{backend}"
        );
        assert_eq!(
            line(1, "H4"),
            expect("stopped", "0.00", "0.00", "0.00"),
            "{backend}"
        );
        // November: the rest of the debt, 173.00; H3 paid October as arrears (P9).
        assert_eq!(
            line(2, "H1"),
            expect("pay", "0.00", "173.00", "917.00"),
            "{backend}"
        );
        assert_eq!(
            line(2, "H2"),
            expect("pay", "0.00", "0.00", "1200.00"),
            "{backend}"
        );
        assert_eq!(
            line(2, "H3"),
            expect("pay", "500.00", "0.00", "1000.00"),
            "{backend}"
        );
        assert_eq!(
            line(2, "H4"),
            expect("stopped", "0.00", "0.00", "0.00"),
            "{backend}"
        );
        // December: debt cleared, recovery stops (FAILURES #27); H2's gradual exit ended
        // after 3 months (P7); H4 resumed with 2 months' back pay (P9).
        assert_eq!(
            line(3, "H1"),
            expect("pay", "0.00", "0.00", "1090.00"),
            "{backend}"
        );
        assert_eq!(
            line(3, "H2"),
            expect("stopped", "0.00", "0.00", "0.00"),
            "{backend}"
        );
        assert_eq!(
            line(3, "H3"),
            expect("pay", "0.00", "0.00", "500.00"),
            "{backend}"
        );
        assert_eq!(
            line(3, "H4"),
            expect("pay", "1600.00", "0.00", "2400.00"),
            "{backend}"
        );
        assert!(months[3]["H2"].4.contains("taper_ended"), "{backend}");
        assert!(months[1]["H2"].4.contains("taper:2/3"), "{backend}");
        assert_exit(&db.run(&["audit", "verify"]), 0);
    }
}

#[test]
fn one_run_per_month_and_scope_until_cancelled() {
    for db in TestDb::both() {
        import(&db, "roster", "roster.csv", &scenario_roster());
        let first = create(&db, "2026-11");
        let again = db.run_as("operator", &["run", "create", "--month", "2026-11"]);
        assert_exit(&again, 1);
        assert!(
            stderr(&again).contains(&format!("run {first} already stands")),
            "{}",
            stderr(&again)
        );
        let overlapping = db.run_as(
            "operator",
            &["run", "create", "--month", "2026-11", "--region", "210102"],
        );
        assert_exit(&overlapping, 1);
        let no_reason = db.run(&["run", "cancel", &first, "--reason", " "]);
        assert_exit(&no_reason, 1);
        assert_exit(
            &db.run(&["run", "cancel", &first, "--reason", "wrong standard"]),
            0,
        );
        let second = create(&db, "2026-11");
        assert_ne!(first, second, "{}", db.backend);
        let first_ids: Vec<String> = lines(&db, &first).values().map(|l| l.0.clone()).collect();
        assert!(!first_ids.is_empty());
        let e2e = |run: &str| -> Vec<String> {
            stdout(&db.run(&["run", "lines", run]))
                .lines()
                .skip(1)
                .map(|l| l.split(',').nth(11).unwrap().to_string())
                .collect()
        };
        let (old, new) = (e2e(&first), e2e(&second));
        assert!(
            old.iter().all(|id| !new.contains(id)),
            "{}: end_to_end_ids are never reissued",
            db.backend
        );
    }
}

#[test]
fn four_eyes_approval() {
    for db in TestDb::both() {
        import(&db, "roster", "roster.csv", &scenario_roster());
        let operator_key = register_approver(&db, "operator");
        let li = register_approver(&db, "li");
        let run_id = create(&db, "2026-11");
        let own = db.run_as(
            "operator",
            &[
                "run",
                "approve",
                &run_id,
                "--key",
                operator_key.to_str().unwrap(),
            ],
        );
        assert_exit(&own, 1);
        assert!(
            stderr(&own).contains("cannot approve it (four eyes)"),
            "{}",
            stderr(&own)
        );
        let borrowed = db.run_as(
            "wang",
            &["run", "approve", &run_id, "--key", li.to_str().unwrap()],
        );
        assert_exit(&borrowed, 1);
        let stranger = db.path("stranger.pem");
        assert_exit(
            &db.run(&[
                "keys",
                "generate",
                "--alg",
                "ecdsa-p256",
                "--out",
                stranger.to_str().unwrap(),
            ]),
            0,
        );
        let unregistered = db.run_as(
            "li",
            &[
                "run",
                "approve",
                &run_id,
                "--key",
                stranger.to_str().unwrap(),
            ],
        );
        assert_exit(&unregistered, 1);
        assert!(stderr(&unregistered).contains("no registered approver"));
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&li, std::fs::Permissions::from_mode(0o644)).unwrap();
        let readable = db.run_as(
            "li",
            &["run", "approve", &run_id, "--key", li.to_str().unwrap()],
        );
        assert_exit(&readable, 1);
        std::fs::set_permissions(&li, std::fs::Permissions::from_mode(0o600)).unwrap();
        let approved = db.run_as(
            "li",
            &["run", "approve", &run_id, "--key", li.to_str().unwrap()],
        );
        assert_exit(&approved, 0);
        assert!(
            stdout(&approved).contains("state approved"),
            "{}",
            stdout(&approved)
        );
        let twice = db.run_as(
            "li",
            &["run", "approve", &run_id, "--key", li.to_str().unwrap()],
        );
        assert_exit(&twice, 1);
        let show = stdout(&db.run(&["run", "show", &run_id]));
        assert!(
            show.contains("approvals (complete)") && show.contains("li at"),
            "{show}"
        );
    }
}

#[test]
fn the_same_inputs_give_the_same_digest_on_both_databases() {
    let digests: Vec<String> = TestDb::both()
        .iter()
        .map(|db| {
            import(db, "roster", "roster.csv", &scenario_roster());
            let run_id = create(db, "2026-11");
            let output = db.run(&["--json", "run", "show", &run_id]);
            let json: serde_json::Value = serde_json::from_str(stdout(&output).trim()).unwrap();
            json["run"]["digest"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(digests[0], digests[1]);
}

#[test]
fn a_bad_configuration_is_refused_with_its_key() {
    let db = TestDb::sqlite();
    let config = db.write("bad.toml", "[policy]\nrecovery_cap_share = \"2\"\n");
    let output = db.run(&[
        "--config",
        config.to_str().unwrap(),
        "run",
        "create",
        "--month",
        "2026-11",
    ]);
    assert_exit(&output, 1);
    assert!(
        stderr(&output).contains("policy.recovery_cap_share"),
        "{}",
        stderr(&output)
    );
}

/// FAILURES #13: a total that moves more than `approval.change_share` (20%) from last
/// month's needs one more distinct approver before it can leave.
#[test]
fn a_total_that_jumps_needs_one_more_approver() {
    for db in TestDb::both() {
        import(&db, "roster", "roster.csv", &scenario_roster());
        let li = register_approver(&db, "li");
        let wang = register_approver(&db, "wang");
        let september = create(&db, "2026-09");
        let show = |run: &str| {
            let output = db.run(&["--json", "run", "show", run]);
            serde_json::from_str::<serde_json::Value>(stdout(&output).trim()).unwrap()
        };
        assert_eq!(
            show(&september)["run"]["approvals_required"],
            1,
            "{}",
            db.backend
        );
        // October adds a household worth far more than 20% of September's total.
        let big = with(
            with(roster_row("H9"), "approved_from", "2026-10"),
            "base_amount",
            "5000.00",
        );
        let big = with(
            big,
            "head_id_number",
            &crate::imports::id_number("21010219800101009"),
        );
        let big = with(
            big,
            "account_number",
            &crate::imports::card("622202555456789012"),
        );
        import(&db, "roster", "big.csv", &roster_csv(&[big]));
        let october = create(&db, "2026-10");
        assert_eq!(
            show(&october)["run"]["approvals_required"],
            2,
            "{}",
            db.backend
        );
        assert_exit(
            &db.run_as(
                "li",
                &["run", "approve", &october, "--key", li.to_str().unwrap()],
            ),
            0,
        );
        assert_eq!(
            show(&october)["run"]["state"],
            "computed",
            "{}: one approver is not enough",
            db.backend
        );
        assert_exit(
            &db.run_as(
                "wang",
                &["run", "approve", &october, "--key", wang.to_str().unwrap()],
            ),
            0,
        );
        assert_eq!(show(&october)["run"]["state"], "approved", "{}", db.backend);
    }
}

/// One account or one ID number in several households holds their lines until a
/// person looks; a registered staff relative is flagged for the auditors (P15).
#[test]
fn shared_accounts_and_staff_relatives_are_flagged() {
    for db in TestDb::both() {
        let shared = with(
            roster_row("H2"),
            "head_id_number",
            &crate::imports::id_number("21010219700101001"),
        );
        import(
            &db,
            "roster",
            "roster.csv",
            &roster_csv(&[roster_row("H1"), shared, scenario_roster_h3()]),
        );
        let relatives = format!(
            "staff_id,staff_name,relative_id_number,relation\nS1,李四,{},配偶\n",
            crate::imports::id_number("21010319800101001")
        );
        import(&db, "staff-relatives", "relatives.csv", &relatives);
        let run_id = create(&db, "2026-11");
        let rows = lines(&db, &run_id);
        for household in ["H1", "H2"] {
            let (status, _, _, _, flags) = &rows[household];
            assert_eq!(status, "hold", "{}: {household}", db.backend);
            assert!(flags.contains("shared_account"), "{}: {flags}", db.backend);
        }
        let (status, _, _, _, flags) = &rows["H3"];
        assert_eq!(
            status, "pay",
            "{}: a staff relative is shown, not held",
            db.backend
        );
        assert!(flags.contains("staff_relative"), "{}: {flags}", db.backend);
    }
}

fn scenario_roster_h3() -> Vec<(&'static str, String)> {
    let h3 = with(
        roster_row("H3"),
        "head_id_number",
        &crate::imports::id_number("21010319800101001"),
    );
    with(
        h3,
        "account_number",
        &crate::imports::card("622202888456789012"),
    )
}

/// Exactly once across scopes and months: a household that moves to another region
/// is not paid again for a month a run of its old region paid; and a month cannot be
/// computed after a later month's run of an overlapping scope.
#[test]
fn no_second_payment_across_scopes_or_out_of_order_months() {
    for db in TestDb::both() {
        import(
            &db,
            "roster",
            "roster.csv",
            &roster_csv(&[roster_row("H1")]),
        );
        let config = db.write("disburse.toml", ONE_APPROVER);
        let config = config.to_str().unwrap();
        let create_scope = |month: &str, region: &str| {
            db.run_as(
                "operator",
                &[
                    "--config", config, "run", "create", "--month", month, "--region", region,
                ],
            )
        };
        assert_exit(&create_scope("2026-11", "210102"), 0);
        let moved = with(
            with(roster_row("H1"), "approved_from", "2026-11"),
            "region_code",
            "210203",
        );
        import(&db, "roster", "moved.csv", &roster_csv(&[moved]));
        let output = db.run_as(
            "operator",
            &[
                "--json", "--config", config, "run", "create", "--month", "2026-11", "--region",
                "210203",
            ],
        );
        assert_exit(&output, 0);
        let json: serde_json::Value = serde_json::from_str(stdout(&output).trim()).unwrap();
        let rows = lines(&db, json["run_id"].as_str().unwrap());
        let (status, _, _, payable, flags) = &rows["H1"];
        assert_eq!(
            (status.as_str(), payable.as_str()),
            ("stopped", "0.00"),
            "{}: {flags}",
            db.backend
        );
        assert!(
            flags.contains("paid_in_other_run"),
            "{}: {flags}",
            db.backend
        );
        assert_exit(&create_scope("2026-12", "210203"), 0);
        let earlier = create_scope("2026-10", "2102");
        assert_exit(&earlier, 1);
        assert!(
            stderr(&earlier).contains("months are computed in order"),
            "{}",
            stderr(&earlier)
        );
    }
}

/// The tables PostgreSQL holds planner statistics for (`pg_stats` is written by
/// `ANALYZE` in its transaction: no waiting on the statistics collector).
fn analyzed_tables(db: &TestDb) -> Vec<String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        use sqlx::Connection as _;
        let mut connection = sqlx::PgConnection::connect(&db.url).await.expect("connect");
        sqlx::query_scalar(
            "SELECT DISTINCT tablename::text FROM pg_stats WHERE schemaname = 'public' \
             AND tablename IN ('household_version', 'run_line') ORDER BY 1",
        )
        .fetch_all(&mut connection)
        .await
        .expect("pg_stats")
    })
}

/// Issue #7: on PostgreSQL a bulk import and a run refresh their tables' planner
/// statistics in their own transactions (a 2M month planned on a roster and run lines
/// the planner took for a few hundred rows sorted whole tables per page); a write below
/// `ANALYZE_AFTER_ROWS` leaves that to autovacuum.
#[test]
fn big_writes_refresh_postgres_statistics_and_small_ones_leave_them() {
    let db = TestDb::postgres();
    let mut small = Vec::new();
    disburse::demo::generate::RosterGenerator::new(11)
        .write_roster(&mut small, 20, "2026-01")
        .unwrap();
    import(
        &db,
        "roster",
        "small.csv",
        std::str::from_utf8(&small).unwrap(),
    );
    create(&db, "2026-10");
    assert!(
        analyzed_tables(&db).is_empty(),
        "{:?}",
        analyzed_tables(&db)
    );
    let households = disburse::store::ANALYZE_AFTER_ROWS + 5;
    let mut big = Vec::new();
    disburse::demo::generate::RosterGenerator::new(12)
        .stream_roster(&mut big, households, "2026-02")
        .unwrap();
    import(&db, "roster", "big.csv", std::str::from_utf8(&big).unwrap());
    assert_eq!(analyzed_tables(&db), ["household_version"]);
    create(&db, "2026-11");
    assert_eq!(analyzed_tables(&db), ["household_version", "run_line"]);
}

/// Issue #7: run creation reads each chunk of households ahead, on a read transaction
/// of its own, while it computes and writes the chunk before. Across several chunk
/// boundaries every household still gets exactly one line, in household order with
/// line numbers 1..n, and both databases give the same digest.
#[test]
fn a_run_read_ahead_in_chunks_has_every_household_once_and_in_order() {
    let households = 12_001; // three chunk boundaries at 5,000 households a chunk
    let mut roster = Vec::new();
    let generated = disburse::demo::generate::RosterGenerator::new(21)
        .write_roster(&mut roster, households, "2026-01")
        .unwrap();
    let mut expected_ids: Vec<String> = generated
        .iter()
        .map(|household| household.household_id.as_str().to_string())
        .collect();
    expected_ids.sort();
    let roster = String::from_utf8(roster).unwrap();
    let digests: Vec<String> = TestDb::both()
        .iter()
        .map(|db| {
            import(db, "roster", "roster.csv", &roster);
            let run_id = create(db, "2026-11");
            let output = db.run(&["run", "lines", &run_id]);
            assert_exit(&output, 0);
            let text = stdout(&output);
            let rows: Vec<Vec<&str>> = text
                .lines()
                .skip(1)
                .map(|row| row.split(',').collect())
                .collect();
            let ids: Vec<String> = rows.iter().map(|cells| cells[0].to_string()).collect();
            assert_eq!(
                ids, expected_ids,
                "one line per household, in household order"
            );
            for (index, cells) in rows.iter().enumerate() {
                let line_no: usize = cells[11].rsplit('-').next().unwrap().parse().unwrap();
                assert_eq!(line_no, index + 1, "{cells:?}");
            }
            let output = db.run(&["--json", "run", "show", &run_id]);
            let json: serde_json::Value = serde_json::from_str(stdout(&output).trim()).unwrap();
            json["run"]["digest"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(digests[0], digests[1]);
}
