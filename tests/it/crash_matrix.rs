//! The crash matrix (FAILURES #2, #24): the month (import, compute, approve, export)
//! through the real binary, with the process aborted (`DISBURSE_FAILPOINT`, like
//! kill -9) at each fail point of `src/failpoint.rs`, then resumed by running the same
//! step again without it. The end state must equal a clean run's: the same `run lines`,
//! the same export directory byte for byte (same inputs, keys and pinned clock), each
//! paid end_to_end_id in exactly one file, the same totals, an intact audit log, and
//! no `.tmp` file left. Every point on SQLite; representative ones on PostgreSQL too,
//! compared with the same SQLite clean run (the bytes do not depend on the backend).

use crate::support::*;
use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt as _;
use std::path::Path;
use std::process::Output;
use std::sync::OnceLock;

/// Households in the generated roster (every bank route appears).
const HOUSEHOLDS: u64 = 40;
const MONTH: &str = "2026-11";

/// The roster and the key files every scenario shares, so clean and crashed runs start
/// from identical bytes.
struct Inputs {
    roster: Vec<u8>,
    keys: Vec<(&'static str, Vec<u8>)>,
}

fn inputs() -> &'static Inputs {
    static INPUTS: OnceLock<Inputs> = OnceLock::new();
    INPUTS.get_or_init(|| {
        let mut roster = Vec::new();
        disburse::demo::generate::RosterGenerator::new(20_261_120)
            .write_roster(&mut roster, HOUSEHOLDS, "2026-01")
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        for name in ["li.pem", "bank.pem"] {
            let out = disburse_command(dir.path())
                .args(["keys", "generate", "--alg", "ed25519", "--out", name])
                .output()
                .unwrap();
            assert_exit(&out, 0);
        }
        let keys = ["li.pem", "li.pem.pub.pem", "bank.pem", "bank.pem.pub.pem"]
            .into_iter()
            .map(|name| (name, std::fs::read(dir.path().join(name)).unwrap()))
            .collect();
        Inputs { roster, keys }
    })
}

/// One database going through the month, step by step.
pub struct Scenario {
    pub db: TestDb,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    Import,
    Create,
    Approve,
    Export,
}

pub const STEPS: [Step; 4] = [Step::Import, Step::Create, Step::Approve, Step::Export];
pub const RUN_ID: &str = "R202611-000001";

impl Scenario {
    pub fn new(db: TestDb) -> Scenario {
        let inputs = inputs();
        db.write("roster.csv", &inputs.roster);
        for (name, bytes) in &inputs.keys {
            write_private(&db, name, bytes);
        }
        assert_exit(
            &db.run(&["approver", "add", "li", "--public-key", "li.pem.pub.pem"]),
            0,
        );
        Scenario { db }
    }

    pub fn out(&self) -> std::path::PathBuf {
        self.db.path("bank-files")
    }

    /// Runs one step, with `failpoint` armed if given.
    pub fn step(&self, step: Step, failpoint: Option<&str>) -> Output {
        let (user, args): (&str, Vec<&str>) = match step {
            Step::Import => ("tester", vec!["import", "roster", "roster.csv"]),
            Step::Create => ("operator", vec!["run", "create", "--month", MONTH]),
            Step::Approve => ("li", vec!["run", "approve", RUN_ID, "--key", "li.pem"]),
            Step::Export => (
                "operator",
                vec![
                    "run",
                    "export",
                    RUN_ID,
                    "--out",
                    "bank-files",
                    "--key",
                    "bank.pem",
                ],
            ),
        };
        let mut command = disburse_command(self.db.dir.path());
        command
            .args(["--db", &self.db.url, "--user", user])
            .args(&args);
        if let Some(point) = failpoint {
            command.env("DISBURSE_FAILPOINT", point);
        }
        command.output().expect("run disburse")
    }

    /// The state a clean run is compared on.
    fn end_state(&self) -> EndState {
        let lines = self.db.run(&["run", "lines", RUN_ID]);
        assert_exit(&lines, 0);
        let show = self.db.run(&["--json", "run", "show", RUN_ID]);
        assert_exit(&show, 0);
        let json: serde_json::Value = serde_json::from_str(stdout(&show).trim()).unwrap();
        let audit = self.db.run(&["audit", "verify"]);
        assert_exit(&audit, 0);
        EndState {
            lines: stdout(&lines),
            files: files_in(&self.out()),
            state: json["run"]["state"].as_str().unwrap().to_string(),
            pay_count: json["run"]["pay_count"].as_i64().unwrap(),
            payable_fen: json["run"]["payable_fen"].as_i64().unwrap(),
            payments: self.db.count("payment"),
            batches: self.db.count("batch"),
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
struct EndState {
    lines: String,
    files: BTreeMap<String, Vec<u8>>,
    state: String,
    pay_count: i64,
    payable_fen: i64,
    payments: i64,
    batches: i64,
}

pub fn files_in(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    match std::fs::read_dir(dir) {
        Err(_) => BTreeMap::new(),
        Ok(entries) => entries
            .map(|entry| entry.unwrap().path())
            .map(|path| {
                let name = path.file_name().unwrap().to_string_lossy().to_string();
                (name, std::fs::read(&path).unwrap())
            })
            .collect(),
    }
}

/// The clean run every crashed one must end equal to (computed once, on SQLite).
fn clean() -> &'static EndState {
    static CLEAN: OnceLock<EndState> = OnceLock::new();
    CLEAN.get_or_init(|| {
        let scenario = Scenario::new(TestDb::sqlite());
        for step in STEPS {
            assert_exit(&scenario.step(step, None), 0);
        }
        let state = scenario.end_state();
        check_invariants(&state);
        state
    })
}

/// What any good end state holds, independent of the reference: exported, every paid
/// end_to_end_id in exactly one payment file, totals in the manifest equal the run's.
fn check_invariants(state: &EndState) {
    assert_eq!(state.state, "exported");
    assert!(state.pay_count > 0 && state.files.len() >= 4, "{state:?}");
    assert_eq!(state.payments, state.pay_count);
    let leftovers: Vec<&String> = state
        .files
        .keys()
        .filter(|name| name.ends_with(".tmp") || name.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "left over: {leftovers:?}");
    let manifest: serde_json::Value =
        serde_json::from_slice(&state.files["manifest.json"]).unwrap();
    assert_eq!(manifest["record_count"].as_i64(), Some(state.pay_count));
    assert_eq!(manifest["total_fen"].as_i64(), Some(state.payable_fen));
    let payment_files: Vec<&Vec<u8>> = manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| &state.files[f["file"].as_str().unwrap()])
        .collect();
    assert_eq!(payment_files.len() as i64, state.batches);
    let paid: Vec<&str> = state
        .lines
        .lines()
        .skip(1)
        .filter(|line| line.split(',').nth(3) == Some("pay"))
        .map(|line| line.split(',').nth(11).unwrap())
        .collect();
    assert_eq!(paid.len() as i64, state.pay_count);
    for id in paid {
        let holders = payment_files
            .iter()
            .filter(|bytes| bytes.windows(id.len()).any(|w| w == id.as_bytes()))
            .count();
        assert_eq!(holders, 1, "{id} must be in exactly one file");
    }
}

/// The step a fail point belongs to.
fn step_of(point: &str) -> Step {
    match point.split('.').next().unwrap() {
        "import" => Step::Import,
        "compute" => Step::Create,
        "approve" => Step::Approve,
        "export" => Step::Export,
        other => panic!("no step for {other}"),
    }
}

/// Runs the month on `db`, crashing at `point` once, resuming, and checks the end.
fn crash_and_resume(db: TestDb, point: &str) {
    let backend = db.backend;
    let scenario = Scenario::new(db);
    let failing = step_of(point);
    for step in STEPS {
        if step == failing {
            let crashed = scenario.step(step, Some(point));
            assert_eq!(
                crashed.status.signal(),
                Some(6),
                "{backend} {point}: the process must die by SIGABRT\nstdout:\n{}\nstderr:\n{}",
                stdout(&crashed),
                stderr(&crashed)
            );
            assert!(stderr(&crashed).contains(&format!("fail point {}", bare(point))));
            assert_committed_nothing_visible(&scenario, point);
        }
        let resumed = scenario.step(step, None);
        assert_exit(&resumed, 0);
    }
    let state = scenario.end_state();
    check_invariants(&state);
    let clean = clean();
    assert_eq!(state.lines, clean.lines, "{backend} {point}: run lines");
    assert_eq!(
        state.files.keys().collect::<Vec<_>>(),
        clean.files.keys().collect::<Vec<_>>(),
        "{backend} {point}: file names"
    );
    for (name, bytes) in &clean.files {
        assert!(
            state.files[name] == *bytes,
            "{backend} {point}: {name} differs from the clean run's"
        );
    }
    assert_eq!(state, *clean, "{backend} {point}");
}

fn bare(point: &str) -> &str {
    point.split('@').next().unwrap()
}

/// What a crash may leave: never a half-done step in the database. Before commit the
/// step's rows are absent; a crashed export has recorded no payment.
fn assert_committed_nothing_visible(scenario: &Scenario, point: &str) {
    match bare(point) {
        "import.after_validation" | "import.after_batch" => {
            assert_eq!(scenario.db.count("household_version"), 0, "{point}");
        }
        "compute.before_commit" => {
            assert_eq!(scenario.db.count("run"), 0, "{point}");
            assert_eq!(scenario.db.count("run_line"), 0, "{point}");
        }
        "approve.before_commit" => assert_eq!(scenario.db.count("approval"), 0, "{point}"),
        "approve.after_commit" => assert_eq!(scenario.db.count("approval"), 1, "{point}"),
        _ => {
            assert_eq!(scenario.db.count("payment"), 0, "{point}");
            assert_eq!(scenario.db.count("batch"), 0, "{point}");
        }
    }
}

/// Every abort point of the month, on SQLite. `export.after_stage@N` covers the first
/// payment file, its signature, a later file and the manifest's signature.
#[test]
fn every_fail_point_then_resume_equals_a_clean_run_on_sqlite() {
    let clean = clean();
    let staged = clean.files.len();
    let points = [
        "import.after_validation".to_string(),
        "import.after_batch".into(),
        "compute.before_commit".into(),
        "approve.before_commit".into(),
        "approve.after_commit".into(),
        "export.after_stage@1".into(),
        "export.after_stage@2".into(),
        "export.after_stage@5".into(),
        // The last two staged files are the manifest's signature and the manifest.
        format!("export.after_stage@{}", staged - 1),
        "export.after_rename".into(),
        "export.before_commit".into(),
    ];
    for point in &points {
        crash_and_resume(TestDb::sqlite(), point);
    }
    let exercised: std::collections::BTreeSet<&str> = points.iter().map(|p| bare(p)).collect();
    for point in disburse::failpoint::POINTS {
        let elsewhere = [
            "import.after_hash",
            "export.before_run_lock",
            "export.write_error",
            "ingest.before_commit",
            "seal.bad_signature",
        ];
        assert!(
            exercised.contains(point) || elsewhere.contains(point),
            "fail point {point} is in no crash test"
        );
    }
}

#[test]
fn representative_fail_points_then_resume_equal_a_clean_run_on_postgres() {
    for point in [
        "import.after_batch",
        "compute.before_commit",
        "approve.after_commit",
        "export.after_rename",
        "export.before_commit",
    ] {
        crash_and_resume(TestDb::postgres(), point);
    }
}

/// An export that fails at `point` (an injected error, not an abort) exits 2 with
/// `message` on stderr, leaves nothing in the directory (no file, no `.tmp`), records
/// no batch or payment and leaves the run Approved; exporting again gives the clean
/// run's bytes.
fn failed_export_leaves_nothing_then_resumes(db: TestDb, point: &str, message: &str) {
    let backend = db.backend;
    let scenario = Scenario::new(db);
    for step in [Step::Import, Step::Create, Step::Approve] {
        assert_exit(&scenario.step(step, None), 0);
    }
    let failed = scenario.step(Step::Export, Some(point));
    assert_exit(&failed, 2);
    assert!(stderr(&failed).contains(message), "{}", stderr(&failed));
    assert!(
        files_in(&scenario.out()).is_empty(),
        "{backend}: nothing shows, no .tmp stays: {:?}",
        files_in(&scenario.out()).keys()
    );
    assert_eq!(scenario.db.count("payment"), 0, "{backend}");
    assert_eq!(scenario.db.count("batch"), 0, "{backend}");
    let show = scenario.db.run(&["--json", "run", "show", RUN_ID]);
    assert!(stdout(&show).contains("\"approved\""), "{backend}");
    assert_exit(&scenario.step(Step::Export, None), 0);
    assert_eq!(scenario.end_state(), *clean(), "{backend}");
}

/// A signature that does not verify over its file (a signing fault, injected on the
/// second file's signature) stops the export before anything shows or is recorded. The
/// check in `seal::sign_verified` is what a bank would otherwise meet.
#[test]
fn a_bad_fresh_signature_stops_the_export_and_a_resume_gives_identical_bytes() {
    failed_export_leaves_nothing_then_resumes(
        TestDb::sqlite(),
        "seal.bad_signature@2",
        "does not verify",
    );
}

/// FAILURES #24: a full disk while staging a file (not an abort: an IO error) stops the
/// export, leaves nothing in the directory and records nothing; the resume gives the
/// clean run's bytes.
#[test]
fn a_write_error_while_staging_records_nothing_and_a_resume_gives_identical_bytes() {
    for (db, on_hit) in [(TestDb::sqlite(), 1), (TestDb::postgres(), 4)] {
        let point = format!("export.write_error@{on_hit}");
        failed_export_leaves_nothing_then_resumes(db, &point, "no space left on device");
    }
}
