//! Tampering (FAILURES #22, the audit-log control): one flipped byte in an exported
//! payment file, in its `.sig`, in `manifest.json` or in `manifest.json.sig` is caught
//! by `disburse::export::verify_directory`, which names the file (the export engine
//! runs the same check on its own output before recording it); a wrong key is refused;
//! an audit row edited behind the application's back is caught by `audit verify`
//! (exit 1, naming the entry) on both databases; a stored household edited into a value
//! no import would take stops `run create` in its second chunk, and nothing is kept.

use crate::crash_matrix::{files_in, Scenario, STEPS};
use crate::imports::{roster_csv, roster_row};
use crate::support::*;
use disburse::export::verify_directory;
use disburse::sign::VerifyingKey;
use std::path::Path;

fn key(path: &Path) -> VerifyingKey {
    VerifyingKey::from_spki_pem(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A copy of `from` in a fresh directory, with one bit of `name` flipped at `offset`.
fn tampered_copy(from: &Path, name: &str, offset: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (file, mut bytes) in files_in(from) {
        if file == name {
            bytes[offset] ^= 0x01;
        }
        std::fs::write(dir.path().join(&file), bytes).unwrap();
    }
    dir
}

#[test]
fn a_flipped_byte_in_a_file_its_signature_or_the_manifest_is_caught_and_named() {
    let scenario = Scenario::new(TestDb::sqlite());
    for step in STEPS {
        assert_exit(&scenario.step(step, None), 0);
    }
    let out = scenario.out();
    let bank = key(&scenario.db.path("bank.pem.pub.pem"));
    let verified = verify_directory(&out, &bank).expect("the clean export verifies");
    assert!(verified.file_count >= 4 && verified.record_count > 0);
    let files = files_in(&out);
    let mut targets: Vec<String> = verified.files.clone();
    targets.extend(verified.files.iter().map(|f| format!("{f}.sig")));
    targets.push("manifest.json".into());
    targets.push("manifest.json.sig".into());
    for name in &targets {
        let length = files[name].len();
        for offset in [0, length / 2, length - 1] {
            let copy = tampered_copy(&out, name, offset);
            let error = verify_directory(copy.path(), &bank)
                .expect_err(&format!("{name} flipped at {offset} must be caught"));
            let blamed = if name == "manifest.json.sig" {
                "manifest.json".to_string()
            } else {
                name.clone()
            };
            assert_eq!(error.file, blamed, "{name} at {offset}: {error}");
        }
    }
    let missing = tempfile::tempdir().unwrap();
    for (file, bytes) in &files {
        if file != &verified.files[0] {
            std::fs::write(missing.path().join(file), bytes).unwrap();
        }
    }
    let error = verify_directory(missing.path(), &bank).unwrap_err();
    assert_eq!(error.file, verified.files[0], "a missing file is named");
    // Files are checked two at a time; with several bad files the one named is still
    // the first bad one in manifest order, every time (a later, smaller file may fail
    // first on the other thread).
    for first_bad in 0..verified.files.len() {
        let dir = tempfile::tempdir().unwrap();
        for (file, mut bytes) in files.clone() {
            let bad = verified.files[first_bad..].contains(&file);
            if bad {
                let middle = bytes.len() / 2;
                bytes[middle] ^= 0x01;
            }
            std::fs::write(dir.path().join(&file), bytes).unwrap();
        }
        for _ in 0..3 {
            let error = verify_directory(dir.path(), &bank).unwrap_err();
            assert_eq!(error.file, verified.files[first_bad], "{error}");
        }
    }
    let approver = key(&scenario.db.path("li.pem.pub.pem"));
    let error = verify_directory(&out, &approver).unwrap_err();
    assert_eq!(error.file, "manifest.json", "another key: {error}");
}

#[test]
fn an_edited_audit_row_is_caught_by_audit_verify_on_both_databases() {
    for db in TestDb::both() {
        let scenario = Scenario::new(db);
        for step in STEPS {
            assert_exit(&scenario.step(step, None), 0);
        }
        assert_exit(&scenario.db.run(&["audit", "verify"]), 0);
        let entries = scenario.db.count("audit_log");
        assert!(entries >= 5, "{entries}");
        execute(
            &scenario.db.url,
            "UPDATE audit_log SET actor = 'mallory' WHERE seq = 3",
        );
        let verify = scenario.db.run(&["audit", "verify"]);
        assert_exit(&verify, 1);
        assert!(
            stderr(&verify).contains("audit entry 3") && stderr(&verify).contains("edited"),
            "{}: {}",
            scenario.db.backend,
            stderr(&verify)
        );
    }
}

/// Run creation computes on a thread of its own beside the one that writes: an error
/// found there after a first chunk of lines was written (chunks are 5,000 households)
/// still stops the run, names the column and the household without echoing the value
/// (P13), and leaves no run and no line behind.
#[test]
fn a_household_edited_behind_the_application_stops_run_create_and_keeps_nothing() {
    for db in TestDb::both() {
        let rows: Vec<_> = (1..=6_000)
            .map(|n| roster_row(&format!("H{n:06}")))
            .collect();
        let roster = db.write("roster.csv", roster_csv(&rows));
        assert_exit(&db.run(&["import", "roster", roster.to_str().unwrap()]), 0);
        execute(
            &db.url,
            "UPDATE household_version SET head_id_number = '2101021960X' WHERE household_id = 'H005999'",
        );
        let create = db.run(&["run", "create", "--month", "2026-11"]);
        assert!(
            !create.status.success(),
            "{}: {}",
            db.backend,
            stderr(&create)
        );
        let error = stderr(&create);
        assert!(
            error.contains("head_id_number of household \"H005999\""),
            "{}: {error}",
            db.backend
        );
        assert!(!error.contains("2101021960X"), "{}: {error}", db.backend);
        assert_eq!(db.count("run"), 0, "{}", db.backend);
        assert_eq!(db.count("run_line"), 0, "{}", db.backend);
    }
}

/// Runs one statement on the test database, as an intruder with database access would.
fn execute(url: &str, sql: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        use sqlx::Connection;
        if url.starts_with("sqlite:") {
            let mut connection = sqlx::SqliteConnection::connect(url).await.unwrap();
            sqlx::query(sql).execute(&mut connection).await.unwrap();
        } else {
            let mut connection = sqlx::PgConnection::connect(url).await.unwrap();
            sqlx::query(sql).execute(&mut connection).await.unwrap();
        }
    });
}
