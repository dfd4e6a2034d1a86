//! The command surface (CONTRACTS §1): every verb exists; exit codes 0/1/2; the demo.

use crate::support::*;

#[test]
fn every_verb_of_the_contract_exists() {
    let dir = tempfile::tempdir().unwrap();
    let verbs: &[&[&str]] = &[
        &["demo"],
        &["import", "roster"],
        &["import", "decisions"],
        &["import", "staff-relatives"],
        &["import", "treasury"],
        &["run", "create"],
        &["run", "show"],
        &["run", "lines"],
        &["run", "approve"],
        &["run", "export"],
        &["approver", "add"],
        &["returns", "ingest"],
        &["reconcile"],
        &["audit", "verify"],
        &["keys", "generate"],
        &["serve"],
    ];
    for verb in verbs {
        let output = disburse_command(dir.path())
            .args(*verb)
            .arg("--help")
            .output()
            .unwrap();
        assert_exit(&output, 0);
    }
}

#[test]
fn demo_runs_on_a_fresh_embedded_database() {
    let dir = tempfile::tempdir().unwrap();
    let output = disburse_command(dir.path())
        .args(["demo", "--households", "300", "--out"])
        .arg(dir.path().join("demo"))
        .output()
        .unwrap();
    assert_exit(&output, 0);
    let text = stdout(&output);
    assert!(text.contains("imported roster"), "{text}");
    assert!(dir.path().join("demo/disburse.db").exists());
    assert!(
        text.contains("created by operator") && text.contains("approved by approver-wang"),
        "{text}"
    );
    assert!(dir.path().join("demo/bank-files/manifest.json").exists());
    let command = text
        .lines()
        .map(str::trim)
        .find(|line| line.starts_with("openssl pkeyutl -verify"))
        .expect("the demo prints the OpenSSL check");
    let arguments: Vec<&str> = command.split_whitespace().skip(1).collect();
    let verified = std::process::Command::new("openssl")
        .args(&arguments)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        verified.status.success(),
        "{command}: {}",
        String::from_utf8_lossy(&verified.stderr)
    );
}

#[test]
fn missing_file_is_exit_2_and_unknown_database_url_is_refused() {
    let db = TestDb::sqlite();
    let output = db.run(&["import", "roster", "/nonexistent/roster.csv"]);
    assert_exit(&output, 2);
    assert!(stderr(&output).contains("cannot open /nonexistent/roster.csv"));
    let dir = tempfile::tempdir().unwrap();
    let output = disburse_command(dir.path())
        .args(["--db", "mysql://x", "audit", "verify"])
        .output()
        .unwrap();
    assert_exit(&output, 2);
    assert!(stderr(&output).contains("unsupported database URL"));
}

/// FAILURES #23: a database that would not keep what it acknowledged is refused.
#[test]
fn non_durable_databases_are_refused_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let output = disburse_command(dir.path())
        .args(["--db", "sqlite::memory:", "audit", "verify"])
        .output()
        .unwrap();
    assert_exit(&output, 2);
    assert!(
        stderr(&output).contains("not durable")
            && stderr(&output).contains("journal_mode is memory"),
        "{}",
        stderr(&output)
    );

    let db = TestDb::postgres();
    let name = db.url.rsplit('/').next().unwrap().to_string();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        use sqlx::Connection;
        let mut admin = sqlx::PgConnection::connect(&postgres_admin_url())
            .await
            .unwrap();
        sqlx::query(&format!(
            "ALTER DATABASE {name} SET synchronous_commit = off"
        ))
        .execute(&mut admin)
        .await
        .unwrap();
    });
    let output = db.run(&["audit", "verify"]);
    assert_exit(&output, 2);
    assert!(
        stderr(&output).contains("synchronous_commit is off"),
        "{}",
        stderr(&output)
    );
}
