//! Test support: fresh databases on both backends (SQLite in a temp dir, and a new
//! database on the real PostgreSQL server at 127.0.0.1:5432, dropped afterwards), and
//! a runner for the real `disburse` binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

/// PostgreSQL server for tests; `DISBURSE_TEST_PG` overrides.
pub fn postgres_admin_url() -> String {
    std::env::var("DISBURSE_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

static DATABASE_COUNTER: AtomicU32 = AtomicU32::new(0);

/// A fresh, empty database; dropped with the value.
pub struct TestDb {
    pub url: String,
    pub backend: &'static str,
    pub dir: tempfile::TempDir,
    postgres_name: Option<String>,
}

impl TestDb {
    pub fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("test.db").display());
        TestDb {
            url,
            backend: "sqlite",
            dir,
            postgres_name: None,
        }
    }

    pub fn postgres() -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let name = format!(
            "disburse_it_{}_{}_{}",
            std::process::id(),
            DATABASE_COUNTER.fetch_add(1, Ordering::SeqCst),
            rand_suffix()
        );
        admin_sql(&format!("CREATE DATABASE {name}"));
        let admin = postgres_admin_url();
        let base = admin
            .rsplit_once('/')
            .map(|(base, _)| base)
            .unwrap_or(&admin)
            .to_string();
        TestDb {
            url: format!("{base}/{name}"),
            backend: "postgres",
            dir,
            postgres_name: Some(name),
        }
    }

    /// One fresh database on each backend: every storage test runs on both.
    pub fn both() -> Vec<TestDb> {
        vec![TestDb::sqlite(), TestDb::postgres()]
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, contents).expect("write test file");
        path
    }

    /// Runs `disburse --db URL ARGS…` as user `tester`.
    pub fn run(&self, args: &[&str]) -> Output {
        self.run_as("tester", args)
    }

    pub fn run_as(&self, user: &str, args: &[&str]) -> Output {
        disburse_command(self.dir.path())
            .arg("--db")
            .arg(&self.url)
            .arg("--user")
            .arg(user)
            .args(args)
            .output()
            .expect("run disburse")
    }

    /// Opens the store from the test (for counting rows).
    pub fn count(&self, table: &str) -> i64 {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let store = disburse::store::Store::connect(&self.url)
                .await
                .expect("connect");
            let count = store.table_row_count(table).await.expect("count");
            store.close().await;
            count
        })
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(name) = &self.postgres_name {
            admin_sql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
    }
}

fn rand_suffix() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    nanos % 1_000_000
}

fn admin_sql(sql: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        use sqlx::Connection;
        let mut connection = sqlx::PgConnection::connect(&postgres_admin_url())
            .await
            .expect("PostgreSQL at 127.0.0.1:5432 must be up for the storage tests (see README)");
        sqlx::query(sql).execute(&mut connection).await.expect(sql);
    });
}

/// The real binary, with a pinned clock and quiet logs, run in `dir`.
pub fn disburse_command(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_disburse"));
    command
        .current_dir(dir)
        .env("DISBURSE_NOW", "2026-11-20T02:00:00Z")
        .env("DISBURSE_LOG", "warn")
        .env_remove("DISBURSE_DB")
        .env_remove("DISBURSE_CONFIG")
        .env_remove("DISBURSE_USER");
    command
}

/// The binary run with `args` on `db` and fail point `point` armed: a `pause` point,
/// so it has stopped there once this returns. Its stdin lets it go on
/// (`PausedRun::go_on`).
pub struct PausedRun {
    child: std::process::Child,
    stderr_lines: std::io::Lines<std::io::BufReader<std::process::ChildStderr>>,
}

impl PausedRun {
    pub fn start(db: &TestDb, point: &str, args: &[&str]) -> PausedRun {
        use std::io::BufRead as _;
        let mut child = disburse_command(db.dir.path())
            .env("DISBURSE_FAILPOINT", point)
            .args(["--db", &db.url])
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run disburse");
        let stderr = child.stderr.take().expect("stderr piped");
        let mut stderr_lines = std::io::BufReader::new(stderr).lines();
        let paused = stderr_lines.next().expect("a first line").expect("stderr");
        assert!(paused.contains("pausing"), "{paused}");
        PausedRun {
            child,
            stderr_lines,
        }
    }

    /// Lets the run go on; its exit status and the rest of its stderr.
    pub fn go_on(mut self) -> (std::process::ExitStatus, String) {
        use std::io::Write as _;
        writeln!(self.child.stdin.take().expect("stdin piped")).expect("the run reads stdin");
        let status = self.child.wait().expect("the run ends");
        let rest: Vec<String> = self
            .stderr_lines
            .map(|line| line.expect("stderr"))
            .collect();
        (status, rest.join("\n"))
    }
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).to_string()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).to_string()
}

/// Asserts the exit code, showing both streams when it differs.
#[track_caller]
pub fn assert_exit(output: &Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        stdout(output),
        stderr(output)
    );
}

/// Writes a new file readable by its owner only (mode 0600), as key files must be.
pub fn write_private(db: &TestDb, name: &str, bytes: &[u8]) {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(db.path(name))
        .expect("a new private file");
    file.write_all(bytes).expect("write a private file");
}

/// Generates an Ed25519 key pair `NAME.pem` (0600) and `NAME.pem.pub.pem` in the test's
/// directory, through the binary.
pub fn generate_key(db: &TestDb, name: &str) -> PathBuf {
    let key = db.path(&format!("{name}.pem"));
    let output = db.run(&[
        "keys",
        "generate",
        "--alg",
        "ed25519",
        "--out",
        key.to_str().unwrap(),
    ]);
    assert_exit(&output, 0);
    key
}

/// Generates a key for `name` and registers `name` as an approver with it.
pub fn register_approver(db: &TestDb, name: &str) -> PathBuf {
    let key = generate_key(db, name);
    let public = format!("{}.pub.pem", key.display());
    assert_exit(
        &db.run(&["approver", "add", name, "--public-key", &public]),
        0,
    );
    key
}
