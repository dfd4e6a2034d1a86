//! The national month through the real binary (issue #7): a month planned as scopes,
//! worked by several `work run` processes at once on one database, gives the runs and
//! the bank files that runs created and exported by hand give, each scope computed
//! once; a worker killed mid-compute is taken over after its lease and the result is
//! the same; plans never overlap each other, a standing run, or a run made by hand.

use crate::imports::{roster_csv, roster_row, with};
use crate::support::*;
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt as _;
use std::process::{Child, Output};
use std::sync::OnceLock;

const MONTH: &str = "2026-11";
/// Every region of the generated roster, in four scopes: a district prefix and three
/// counties.
const SCOPES: [&str; 4] = ["21010", "210123", "210124", "210181"];
/// One approver at any amount, so each run needs exactly `li`.
const CONFIG: &str = "[approval]\napprovers_required = 1\napprovers_required_above = 1\n";

/// A database with the generated roster, the config, `li` as an approver and the bank
/// key every database of these tests shares (Ed25519 signatures are deterministic, so
/// the same files get the same signatures).
fn prepared(db: &TestDb) {
    let mut roster = Vec::new();
    disburse::demo::generate::RosterGenerator::new(20_261_129)
        .write_roster(&mut roster, 120, "2026-01")
        .unwrap();
    db.write("roster.csv", roster);
    db.write("disburse.toml", CONFIG);
    assert_exit(&db.run(&["import", "roster", "roster.csv"]), 0);
    register_approver(db, "li");
    for (name, bytes) in bank_key() {
        write_private(db, name, bytes);
    }
}

fn bank_key() -> &'static [(&'static str, Vec<u8>)] {
    static KEY: OnceLock<Vec<(&'static str, Vec<u8>)>> = OnceLock::new();
    KEY.get_or_init(|| {
        let db = TestDb::sqlite();
        generate_key(&db, "bank");
        ["bank.pem", "bank.pem.pub.pem"]
            .into_iter()
            .map(|name| (name, std::fs::read(db.path(name)).unwrap()))
            .collect()
    })
}

/// File name → SHA-256 of every file an export wrote.
fn export_digests(dir: &std::path::Path) -> BTreeMap<String, String> {
    crate::crash_matrix::files_in(dir)
        .into_iter()
        .map(|(name, bytes)| (name, disburse::sign::sha256_hex(&bytes)))
        .collect()
}

fn plan(db: &TestDb, regions: &str) -> Output {
    db.run(&["work", "plan", "--month", MONTH, "--regions", regions])
}

fn json_of(output: &Output) -> serde_json::Value {
    assert_exit(output, 0);
    serde_json::from_str(stdout(output).trim()).expect("json answer")
}

fn spawn_worker(db: &TestDb, name: &str, now: &str) -> Child {
    disburse_command(db.dir.path())
        .env("DISBURSE_NOW", now)
        .args([
            "--db", &db.url, "--user", "operator", "--json", "work", "run",
        ])
        .args(["--out", "work-files", "--key", "bank.pem", "--worker", name])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start a worker")
}

fn worker(db: &TestDb, name: &str) -> serde_json::Value {
    json_of(
        &spawn_worker(db, name, "2026-11-20T02:00:00Z")
            .wait_with_output()
            .unwrap(),
    )
}

fn listed(values: &serde_json::Value) -> Vec<String> {
    values
        .as_array()
        .expect("a list")
        .iter()
        .map(|value| value.as_str().unwrap().to_string())
        .collect()
}

/// (scope, run_no, step, attempts) of the month's items.
fn items(db: &TestDb) -> Vec<(String, i64, String, i64)> {
    let json = json_of(&db.run(&["--json", "work", "list", "--month", MONTH]));
    json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| {
            (
                item["scope"].as_str().unwrap().to_string(),
                item["run_no"].as_i64().unwrap(),
                item["step"].as_str().unwrap().to_string(),
                item["attempts"].as_i64().unwrap(),
            )
        })
        .collect()
}

/// The last error `work list` shows for the month's item at `index`.
fn last_error(db: &TestDb, index: usize) -> String {
    let json = json_of(&db.run(&["--json", "work", "list", "--month", MONTH]));
    json["items"][index]["last_error"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn run_ids() -> Vec<String> {
    (1..=SCOPES.len())
        .map(|n| format!("R202611-{n:06}"))
        .collect()
}

/// `run lines` and the digest of a run.
fn run_content(db: &TestDb, run_id: &str) -> (String, String) {
    let lines = db.run(&["run", "lines", run_id]);
    assert_exit(&lines, 0);
    let show = json_of(&db.run(&["--json", "run", "show", run_id]));
    (
        stdout(&lines),
        show["run"]["digest"].as_str().unwrap().to_string(),
    )
}

/// The same month by hand, scope by scope, on a fresh SQLite database: the reference.
fn by_hand() -> (TestDb, Vec<(String, String)>) {
    let db = TestDb::sqlite();
    prepared(&db);
    for scope in SCOPES {
        let args = ["run", "create", "--month", MONTH, "--region", scope];
        assert_exit(&db.run_as("operator", &args), 0);
    }
    let contents = run_ids().iter().map(|id| run_content(&db, id)).collect();
    (db, contents)
}

/// Every run of the month has the lines and digest of its run made by hand.
fn assert_runs_match(db: &TestDb, expected: &[(String, String)]) {
    for (run_id, expected) in run_ids().iter().zip(expected) {
        assert_eq!(
            &run_content(db, run_id),
            expected,
            "{}: {run_id}",
            db.backend
        );
    }
}

fn approve_all(db: &TestDb) {
    approve_all_of(db, &run_ids());
}

fn approve_all_of(db: &TestDb, run_ids: &[String]) {
    for run_id in run_ids {
        let output = db.run_as("li", &["run", "approve", run_id, "--key", "li.pem"]);
        assert_exit(&output, 0);
    }
}

#[test]
fn two_workers_compute_each_planned_scope_once_and_export_what_hand_runs_export() {
    let (reference, expected) = by_hand();
    approve_all(&reference);
    for run_id in run_ids() {
        let out = format!("hand-files/{run_id}");
        let args = ["run", "export", &run_id, "--out", &out, "--key", "bank.pem"];
        assert_exit(&reference.run_as("operator", &args), 0);
    }
    for db in TestDb::both() {
        prepared(&db);
        assert_exit(&plan(&db, &SCOPES.join(",")), 0);
        let first = spawn_worker(&db, "w1", "2026-11-20T02:00:00Z");
        let second = spawn_worker(&db, "w2", "2026-11-20T02:00:00Z");
        let reports = [first, second].map(|child| json_of(&child.wait_with_output().unwrap()));
        let computed: Vec<String> = reports
            .iter()
            .flat_map(|report| listed(&report["report"]["computed"]))
            .collect();
        let distinct: BTreeSet<&String> = computed.iter().collect();
        assert_eq!(computed.len(), SCOPES.len(), "{}: {computed:?}", db.backend);
        assert_eq!(
            distinct.len(),
            SCOPES.len(),
            "{}: each scope once",
            db.backend
        );
        assert_runs_match(&db, &expected);
        assert!(items(&db)
            .iter()
            .all(|(_, _, step, attempts)| step == "approve" && *attempts == 0));
        let idle = worker(&db, "w3");
        assert_eq!(
            idle["report"]["computed"],
            serde_json::json!([]),
            "{}: waits for approvers",
            db.backend
        );
        approve_all(&db);
        let exporter = worker(&db, "w3");
        assert_eq!(
            listed(&exporter["report"]["exported"]),
            run_ids(),
            "{}",
            db.backend
        );
        assert!(items(&db).iter().all(|(_, _, step, _)| step == "done"));
        for run_id in run_ids() {
            let ours = export_digests(&db.path(&format!("work-files/{run_id}")));
            let theirs = export_digests(&reference.path(&format!("hand-files/{run_id}")));
            assert!(!ours.is_empty(), "{}: {run_id} has files", db.backend);
            assert_eq!(ours, theirs, "{}: {run_id} byte for byte", db.backend);
        }
        assert_exit(&db.run(&["audit", "verify"]), 0);
    }
}

#[test]
fn a_worker_killed_mid_compute_is_taken_over_after_its_lease_with_the_same_result() {
    let (_reference, expected) = by_hand();
    for db in TestDb::both() {
        prepared(&db);
        assert_exit(&plan(&db, &SCOPES.join(",")), 0);
        let mut command = disburse_command(db.dir.path());
        command
            .env("DISBURSE_FAILPOINT", "compute.before_commit")
            .args(["--db", &db.url, "--user", "operator", "work", "run"])
            .args(["--out", "work-files", "--worker", "w0"]);
        let crashed = command.output().unwrap();
        assert_eq!(
            crashed.status.code(),
            None,
            "{}: aborted: {}",
            db.backend,
            stderr(&crashed)
        );
        let leased = items(&db);
        assert_eq!(leased[0].2, "compute", "{}: {leased:?}", db.backend);
        // Within the lease, another worker leaves the dead worker's item alone.
        let within = worker(&db, "w2");
        let computed = listed(&within["report"]["computed"]);
        assert_eq!(computed, run_ids()[1..].to_vec(), "{}", db.backend);
        assert_eq!(items(&db)[0].2, "compute", "{}", db.backend);
        // An hour later the lease has run out: the item is taken over and computed.
        let later = json_of(
            &spawn_worker(&db, "w3", "2026-11-20T03:00:00Z")
                .wait_with_output()
                .unwrap(),
        );
        let taken_over = listed(&later["report"]["computed"]);
        assert_eq!(taken_over, run_ids()[..1].to_vec(), "{}", db.backend);
        let after = items(&db);
        assert!(
            after.iter().all(|(_, _, step, _)| step == "approve"),
            "{after:?}"
        );
        assert_runs_match(&db, &expected);
        assert_exit(&db.run(&["audit", "verify"]), 0);
    }
}

#[test]
fn plans_never_overlap_and_planned_scopes_are_left_to_workers() {
    for db in TestDb::both() {
        prepared(&db);
        let overlapping = plan(&db, "21,2101");
        assert_exit(&overlapping, 1);
        assert!(
            stderr(&overlapping).contains("overlap"),
            "{}",
            stderr(&overlapping)
        );
        assert_exit(&plan(&db, "21010"), 0);
        assert_eq!(
            db.count("shared_value_set"),
            1,
            "{}: found once, at plan",
            db.backend
        );
        let again = plan(&db, "2101");
        assert_exit(&again, 1);
        assert!(stderr(&again).contains("work item 1"), "{}", stderr(&again));
        let by_hand = db.run(&["run", "create", "--month", MONTH, "--region", "210102"]);
        assert_exit(&by_hand, 1);
        // Nor a later month of an overlapping scope while the planned one waits to be
        // computed (months are computed in order).
        let next_month = db.run(&["run", "create", "--month", "2026-12", "--region", "2101"]);
        assert_exit(&next_month, 1);
        assert!(
            stderr(&next_month).contains("planned for workers"),
            "{}",
            stderr(&next_month)
        );
        assert!(
            stderr(&by_hand).contains("planned for workers"),
            "{}",
            stderr(&by_hand)
        );
        // A scope a hand-made run stands for cannot be planned.
        assert_exit(
            &db.run(&["run", "create", "--month", MONTH, "--region", "210123"]),
            0,
        );
        let standing = plan(&db, "210123");
        assert_exit(&standing, 1);
        assert!(
            stderr(&standing).contains("R202611-000002"),
            "{}",
            stderr(&standing)
        );
        // The hand-made run took the number after the reservation.
        assert_eq!(
            worker(&db, "w1")["report"]["computed"],
            serde_json::json!(["R202611-000001"])
        );
        // Cancelling a planned scope's run closes its item; the scope can be planned again.
        let cancel = db.run(&[
            "run",
            "cancel",
            "R202611-000001",
            "--reason",
            "wrong pay date for 210102196001010011",
        ]);
        assert_exit(&cancel, 0);
        assert_eq!(items(&db)[0].2, "cancelled");
        assert_eq!(
            last_error(&db, 0),
            "run R202611-000001 cancelled: wrong pay date for ****0011",
            "work list says why the item closed, an ID number masked (P13)"
        );
        // Its item is closed: `work cancel` says so, not to cancel the (cancelled) run.
        let again = db.run(&["work", "cancel", "1", "--reason", "twice"]);
        assert_exit(&again, 1);
        assert!(
            stderr(&again).contains("work item 1 is cancelled, not waiting"),
            "{}",
            stderr(&again)
        );
        assert_planned_again(&db, 1);
    }
}

/// The month's shared values (P15) are kept per roster generation: an import after a
/// run was computed brings a household that shares an ID number with one already in
/// that run's scope, and the next run of the same month sees it.
#[test]
fn shared_values_kept_for_a_month_are_found_again_after_an_import() {
    for db in TestDb::both() {
        let first = db.write("first.csv", roster_csv(&[roster_row("H1")]));
        assert_exit(&db.run(&["import", "roster", first.to_str().unwrap()]), 0);
        let create = || {
            db.run(&[
                "--json", "run", "create", "--month", MONTH, "--region", "210102",
            ])
        };
        let run = json_of(&create());
        let run_id = run["run_id"].as_str().unwrap().to_string();
        assert_eq!(run["flags"], serde_json::json!([]), "{}", db.backend);
        assert_exit(
            &db.run(&["run", "cancel", &run_id, "--reason", "late roster"]),
            0,
        );
        let same_person = crate::imports::id_number("21010219700101001");
        let h2 = with(
            with(roster_row("H2"), "head_id_number", &same_person),
            "region_code",
            "210103",
        );
        let second = db.write("second.csv", roster_csv(&[h2]));
        assert_exit(&db.run(&["import", "roster", second.to_str().unwrap()]), 0);
        let again = json_of(&create());
        let lines = db.run(&["run", "lines", again["run_id"].as_str().unwrap()]);
        let text = stdout(&lines);
        let h1 = text.lines().find(|line| line.starts_with("H1,")).unwrap();
        assert!(
            h1.contains(",hold,") && h1.contains("shared"),
            "{}: {h1}",
            db.backend
        );
    }
}

/// An export refused for the worker's own setup (a signing key others can read) leaves
/// the item waiting with the reason and stops that worker; a run exported by hand in
/// the meantime is not exported a second time by the next worker, only marked done.
#[test]
fn a_refused_export_waits_and_a_run_exported_meanwhile_is_not_written_twice() {
    for db in TestDb::both() {
        prepared(&db);
        assert_exit(&plan(&db, "21010"), 0);
        let run_id = run_ids()[0].clone();
        assert_eq!(
            listed(&worker(&db, "w1")["report"]["computed"]),
            std::slice::from_ref(&run_id)
        );
        approve_all_of(&db, std::slice::from_ref(&run_id));
        let key = db.path("bank.pem");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let refused = spawn_worker(&db, "w2", "2026-11-20T02:00:00Z")
            .wait_with_output()
            .unwrap();
        assert_exit(&refused, 1);
        let json = json_of(&db.run(&["--json", "work", "list", "--month", MONTH]));
        let item = &json["items"][0];
        assert_eq!(
            (item["step"].as_str(), item["attempts"].as_i64()),
            (Some("approve"), Some(1)),
            "{}",
            db.backend
        );
        assert!(
            item["last_error"].as_str().unwrap().contains("bank.pem"),
            "{item}"
        );
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let args = [
            "run",
            "export",
            &run_id,
            "--out",
            "hand-files",
            "--key",
            "bank.pem",
        ];
        assert_exit(&db.run_as("operator", &args), 0);
        let after = worker(&db, "w3");
        assert_eq!(
            listed(&after["report"]["exported_before"]),
            std::slice::from_ref(&run_id)
        );
        assert_eq!(after["report"]["exported"], serde_json::json!([]));
        assert!(
            !db.path("work-files").exists(),
            "{}: one copy of the files",
            db.backend
        );
        assert_eq!(items(&db)[0].2, "done", "{}", db.backend);
    }
}

/// A planned scope not yet computed can be cancelled with a reason (audited) and
/// planned again; a computed one is `run cancel`'s.
#[test]
fn a_planned_scope_is_cancelled_before_it_is_computed() {
    for db in TestDb::both() {
        prepared(&db);
        assert_exit(&plan(&db, "21010,210123"), 0);
        let no_reason = db.run(&["work", "cancel", "1", "--reason", " "]);
        assert_exit(&no_reason, 1);
        assert_exit(
            &db.run(&[
                "work",
                "cancel",
                "1",
                "--reason",
                "wrong scope, see 6222020200112233445",
            ]),
            0,
        );
        assert_eq!(items(&db)[0].2, "cancelled", "{}", db.backend);
        assert_eq!(
            last_error(&db, 0),
            "wrong scope, see ****3445",
            "{}: the reason kept, an account number masked (P13)",
            db.backend
        );
        let report = worker(&db, "w1");
        assert_eq!(listed(&report["report"]["computed"]), ["R202611-000002"]);
        let computed = db.run(&["work", "cancel", "2", "--reason", "too late"]);
        assert_exit(&computed, 1);
        assert!(
            stderr(&computed).contains("run cancel R202611-000002"),
            "{}",
            stderr(&computed)
        );
        assert_planned_again(&db, 2);
    }
}

/// A cancellation that commits after an export has read and checked the run, but
/// before the export takes the run's lock, stops the export before any file is
/// written (regression: the files of a cancelled run were left in `--out`).
#[test]
fn a_cancel_that_slips_in_before_the_export_locks_the_run_leaves_no_file() {
    for db in TestDb::both() {
        prepared(&db);
        let create = db.run_as(
            "operator",
            &["run", "create", "--month", MONTH, "--region", "21010"],
        );
        assert_exit(&create, 0);
        let run_id = run_ids()[0].clone();
        approve_all_of(&db, std::slice::from_ref(&run_id));
        let export = PausedRun::start(
            &db,
            "export.before_run_lock",
            &[
                "--user",
                "operator",
                "run",
                "export",
                &run_id,
                "--out",
                "bank-files",
                "--key",
                "bank.pem",
            ],
        );
        let cancel = db.run(&["run", "cancel", &run_id, "--reason", "wrong month"]);
        assert_exit(&cancel, 0);
        // The export goes on only now, however long the cancel took.
        let (status, rest) = export.go_on();
        assert_eq!(status.code(), Some(1), "{}: {rest}", db.backend);
        assert!(rest.contains("changed to cancelled"), "{rest}");
        let written = std::fs::read_dir(db.path("bank-files")).map_or(0, |dir| dir.count());
        assert_eq!(written, 0, "{}: no file of a cancelled run", db.backend);
    }
}

/// Scope 21010 planned again after its item was closed: the item at `index` waits to
/// be computed under run number 3, and the audit chain holds.
fn assert_planned_again(db: &TestDb, index: usize) {
    assert_exit(&plan(db, "21010"), 0);
    assert_eq!(
        items(db)[index],
        ("21010".to_string(), 3, "compute".to_string(), 0)
    );
    assert_exit(&db.run(&["audit", "verify"]), 0);
}
