//! `disburse serve` (issue #6): the HTTP API over real HTTP on loopback with each role
//! allowed and refused; the web page in headless Chromium, through to an approval; the
//! scheduler's tick driven by a controllable clock, once per month even from two
//! instances on one PostgreSQL; and the inbox moving files to done/ or rejected/.

use crate::imports::{card, id_number, roster_csv, roster_row, with};
use crate::support::*;
use disburse::service::{inbox, scheduler, settings};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

const ONE_APPROVER: &str = "[approval]\napprovers_required = 1\napprovers_required_above = 1\n";

fn import_roster(db: &TestDb) {
    let rows: Vec<_> = (0..3)
        .map(|i| {
            let row = with(
                roster_row(&format!("H{i}")),
                "head_id_number",
                &id_number(&format!("21010219600101{i:03}")),
            );
            with(
                row,
                "account_number",
                &card(&format!("622202123456789{i:03}")),
            )
        })
        .collect();
    let roster = db.write("roster.csv", roster_csv(&rows));
    assert_exit(&db.run(&["import", "roster", roster.to_str().unwrap()]), 0);
}

fn key_for(db: &TestDb, name: &str, register: bool) -> String {
    let key = if register {
        register_approver(db, name)
    } else {
        generate_key(db, name)
    };
    key.to_str().unwrap().to_string()
}

fn json_of(output: &std::process::Output) -> serde_json::Value {
    assert_exit(output, 0);
    serde_json::from_str(stdout(output).trim()).expect("json answer")
}

fn token(db: &TestDb, user: &str, role: &str) -> String {
    json_of(&db.run_as(user, &["--json", "token", "create", "--role", role]))["token"]
        .as_str()
        .unwrap()
        .to_string()
}

fn offline_signature(db: &TestDb, config: &Path, user: &str, run_id: &str, key: &str) -> String {
    let args = [
        "--config",
        config.to_str().unwrap(),
        "--json",
        "run",
        "approve",
        run_id,
        "--key",
        key,
        "--offline",
    ];
    json_of(&db.run_as(user, &args))["signature_base64"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A running `disburse serve`, stopped when dropped.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start(db: &TestDb, config: &Path) -> Server {
        let mut child = disburse_command(db.dir.path())
            .args([
                "--db",
                &db.url,
                "--config",
                config.to_str().unwrap(),
                "serve",
                "--listen",
                "127.0.0.1:0",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start disburse serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {line:?}"));
        Server { child, port }
    }

    fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (u16, String) {
        http(self.port, method, path, token, body.map(str::as_bytes))
    }

    fn json(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
        status: u16,
    ) -> serde_json::Value {
        let (got, text) = self.call(method, path, token, body);
        assert_eq!(got, status, "{method} {path}: {text}");
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("{method} {path}: not JSON: {text}"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A tiny HTTP/1.1 client: one request, `Connection: close`, status and body.
fn http(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&[u8]>,
) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut request =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    if let Some(token) = token {
        request.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    let body = body.unwrap_or_default();
    request.push_str(&format!(
        "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    ));
    stream.write_all(request.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let text = String::from_utf8_lossy(&response).to_string();
    let (head, rest) = text.split_once("\r\n\r\n").expect("a response head");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        unchunk(rest)
    } else {
        rest.to_string()
    };
    (status, body)
}

fn unchunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.push_str(&after[..size]);
        rest = &after[size + 2..];
    }
    out
}

/// An operator, two approvers (one of them the operator), an auditor, a run computed
/// over HTTP, approved from an offline signature, exported; each role refused where
/// least privilege says.
#[test]
fn api_roles_over_http() {
    let db = TestDb::sqlite();
    import_roster(&db);
    let signing = key_for(&db, "bank", false);
    let config = db.write(
        "disburse.toml",
        format!("{ONE_APPROVER}[keys]\nsigning_key = \"{signing}\"\n"),
    );
    let li_key = key_for(&db, "li", true);
    key_for(&db, "zhao", true);
    let operator = token(&db, "zhao", "operator");
    let zhao_approver = token(&db, "zhao", "approver");
    let approver = token(&db, "li", "approver");
    let auditor = token(&db, "wang", "auditor");
    let server = Server::start(&db, &config);

    assert_eq!(
        server.json("GET", "/health", None, None, 200)["status"],
        "ok"
    );
    let refused = server.json("GET", "/api/v1/runs", None, None, 401);
    assert_eq!(refused["error"]["code"], "unauthenticated");
    server.json("GET", "/api/v1/runs", Some("dbt_wrong"), None, 401);

    let create = Some(r#"{"month": "2026-11"}"#);
    for who in [&approver, &auditor] {
        assert_eq!(
            server.json("POST", "/api/v1/runs", Some(who), create, 403)["error"]["code"],
            "forbidden"
        );
    }
    let run_id = server.json("POST", "/api/v1/runs", Some(&operator), create, 201)["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        server.json("POST", "/api/v1/runs", Some(&operator), create, 409)["error"]["code"],
        "conflict"
    );
    server.json(
        "GET",
        "/api/v1/runs/R209901-999999",
        Some(&auditor),
        None,
        404,
    );

    let detail = server.json(
        "GET",
        &format!("/api/v1/runs/{run_id}"),
        Some(&auditor),
        None,
        200,
    );
    assert_eq!(detail["run"]["state"], "computed");
    let (status, csv) = server.call(
        "GET",
        &format!("/api/v1/runs/{run_id}/lines"),
        Some(&auditor),
        None,
    );
    assert_eq!(status, 200);
    assert!(
        csv.starts_with("household_id,") && csv.lines().count() == 4,
        "{csv}"
    );
    server.json(
        "GET",
        &format!("/api/v1/runs/{run_id}/diff"),
        Some(&operator),
        None,
        200,
    );
    let message = server.json(
        "GET",
        &format!("/api/v1/runs/{run_id}/approval-message"),
        Some(&approver),
        None,
        200,
    );
    assert!(message["message_text"].as_str().unwrap().contains(&run_id));

    let approvals = format!("/api/v1/runs/{run_id}/approvals");
    let signature = offline_signature(&db, &config, "li", &run_id, &li_key);
    let body = format!(r#"{{"signature_base64": "{signature}"}}"#);
    server.json("POST", &approvals, Some(&operator), Some(&body), 403);
    server.json("POST", &approvals, Some(&auditor), Some(&body), 403);
    // The creator is refused even with an approver's token (four eyes).
    server.json("POST", &approvals, Some(&zhao_approver), Some(&body), 403);
    let forged = format!(r#"{{"signature_base64": "{}"}}"#, "A".repeat(88));
    assert_eq!(
        server.json("POST", &approvals, Some(&approver), Some(&forged), 422)["error"]["code"],
        "refused"
    );
    assert_eq!(
        server.json("POST", &approvals, Some(&approver), Some(&body), 200)["state"],
        "approved"
    );

    let exports = format!("/api/v1/runs/{run_id}/exports");
    server.json("POST", &exports, Some(&approver), None, 403);
    server.json("POST", &exports, Some(&auditor), None, 403);
    assert_eq!(
        server.json("POST", &exports, Some(&operator), None, 200)["state"],
        "exported"
    );
    assert!(db
        .path("exports")
        .join(&run_id)
        .join("manifest.json")
        .exists());

    server.json("POST", "/api/v1/results", Some(&auditor), Some("x"), 403);
    server.json("POST", "/api/v1/results", Some(&approver), Some("x"), 403);
    assert_eq!(
        server.json(
            "POST",
            "/api/v1/results?name=junk.txt",
            Some(&operator),
            Some("junk"),
            422
        )["error"]["code"],
        "refused"
    );

    server.json("GET", "/api/v1/audit", Some(&operator), None, 403);
    let audit = server.json("GET", "/api/v1/audit?limit=1000", Some(&auditor), None, 200);
    let actions: Vec<(String, String)> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["actor"].as_str().unwrap().to_string(),
                e["action"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for expected in [
        ("zhao", "run.create"),
        ("li", "run.approve"),
        ("zhao", "run.export"),
        ("wang", "api.forbidden"),
        ("zhao", "api.forbidden"),
    ] {
        assert!(
            actions
                .iter()
                .any(|(a, b)| a == expected.0 && b == expected.1),
            "{expected:?} not in {actions:?}"
        );
    }
    let (status, metrics) = server.call("GET", "/metrics", None, None);
    assert_eq!(status, 200);
    assert!(
        metrics.contains("disburse_runs{state=\"exported\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("disburse_payments{status=\"instructed\"} 3")
            || metrics.contains("disburse_payments{"),
        "{metrics}"
    );
}

fn chromium() -> &'static str {
    for name in ["chromium", "chromium-browser"] {
        if std::process::Command::new("sh")
            .args(["-c", &format!("command -v {name}")])
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return name;
        }
    }
    panic!("headless Chromium is needed (apt-get install -y chromium; .ci/run installs it)");
}

fn dump_dom(url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--virtual-time-budget=10000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(url)
        .output()
        .expect("run chromium");
    String::from_utf8_lossy(&output.stdout).to_string()
}

fn percent(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The page in headless Chromium: log in, see the month and its total, approve.
#[test]
fn page_in_headless_chromium_shows_the_month_and_approves() {
    let db = TestDb::sqlite();
    import_roster(&db);
    let config = db.write("disburse.toml", ONE_APPROVER);
    let created = json_of(&db.run_as(
        "zhao",
        &[
            "--config",
            config.to_str().unwrap(),
            "--json",
            "run",
            "create",
            "--month",
            "2026-11",
        ],
    ));
    let run_id = created["run_id"].as_str().unwrap().to_string();
    let total = disburse::domain::money::Fen::new(created["run"]["payable_fen"].as_i64().unwrap())
        .to_string();
    let li_key = key_for(&db, "li", true);
    let li = token(&db, "li", "approver");
    let server = Server::start(&db, &config);
    let base = format!("http://127.0.0.1:{}", server.port);

    let home = dump_dom(&format!("{base}/login?token={li}&next=/"));
    assert!(
        home.contains("低保金发放") && home.contains("月份 2026-11"),
        "{home}"
    );
    assert!(
        home.contains(&run_id) && home.contains(&total),
        "total {total} not on the page: {home}"
    );
    assert!(
        dump_dom(&format!("{base}/")).contains("登录"),
        "no token, no data"
    );

    let signature = offline_signature(&db, &config, "li", &run_id, &li_key);
    let approve = format!("/runs/{run_id}/approve?signature={}", percent(&signature));
    let page = dump_dom(&format!(
        "{base}/login?token={li}&next={}",
        percent(&approve)
    ));
    assert!(page.contains(&total) && page.contains("审批"), "{page}");
    assert!(
        page.contains("data-result=\"approved\""),
        "the page did not complete the approval: {page}"
    );
    let detail = server.json(
        "GET",
        &format!("/api/v1/runs/{run_id}"),
        Some(&li),
        None,
        200,
    );
    assert_eq!(detail["run"]["state"], "approved");
    assert_eq!(detail["approvals"][0]["approver"], "li");
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn utc(text: &str) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&chrono::Utc)
}

fn schedule_config(db: &TestDb, cron: &str, key: &str) -> disburse::config::Config {
    let text = format!(
        "{ONE_APPROVER}[schedule]\ncron = \"{cron}\"\nscopes = [\"\"]\nexport_dir = \"{}\"\nexport_key = \"{key}\"\npoll_seconds = 1\nlease_seconds = 60\n",
        db.path("outbox").display()
    );
    db.write("disburse.toml", &text);
    disburse::config::Config::from_toml_str(&text).unwrap()
}

/// The tick with a controllable clock: not before the day, once on it, never twice
/// (again, or from a second instance); a held lease stops it until it expires; an
/// approved run is exported; the month is Asia/Shanghai's.
#[test]
fn scheduler_computes_once_on_the_day_and_exports_once_approved() {
    let db = TestDb::sqlite();
    import_roster(&db);
    let bank = key_for(&db, "bank", false);
    let li_key = key_for(&db, "li", true);
    let config = schedule_config(&db, "0 0 9 20 * *", &bank);
    let schedule = settings::schedule(&config.raw).unwrap().unwrap();
    let rt = runtime();
    let store = rt
        .block_on(disburse::store::Store::connect(&db.url))
        .unwrap();
    let tick = |now: &str, holder: &str| {
        rt.block_on(scheduler::tick(
            utc(now),
            &store,
            &config,
            &schedule,
            holder,
        ))
        .unwrap()
    };

    // 07:00 on 20 November in Shanghai: too early.
    assert!(tick("2026-11-19T23:00:00Z", "a").created.is_empty());
    let first = tick("2026-11-20T01:00:00Z", "a");
    assert_eq!(
        (first.month.as_str(), first.created.len()),
        ("2026-11", 1),
        "{first:?}"
    );
    assert!(tick("2026-11-20T01:01:00Z", "a").created.is_empty());
    assert!(tick("2026-11-20T01:02:00Z", "b").created.is_empty());
    assert_eq!(db.count("run"), 1);

    // Another instance holds the lease: this one does nothing until it expires.
    assert!(rt
        .block_on(store.take_lease(
            "schedule:dibao",
            "other",
            "2026-11-20T02:00:00Z",
            "2026-11-20T02:05:00Z"
        ))
        .unwrap());
    assert!(!tick("2026-11-20T02:01:00Z", "a").lease_taken);
    assert!(tick("2026-11-20T02:06:00Z", "a").lease_taken);

    let run_id = first.created[0].clone();
    assert_exit(
        &db.run_as(
            "li",
            &[
                "--config",
                db.path("disburse.toml").to_str().unwrap(),
                "run",
                "approve",
                &run_id,
                "--key",
                &li_key,
            ],
        ),
        0,
    );
    assert_eq!(
        tick("2026-11-21T01:00:00Z", "b").exported,
        std::slice::from_ref(&run_id)
    );
    assert!(db
        .path("outbox")
        .join(&run_id)
        .join("manifest.json")
        .exists());
    assert!(tick("2026-11-21T01:01:00Z", "a").exported.is_empty());

    // FAILURES #15: 00:30 on 1 December in Shanghai is still 30 November in UTC.
    let config = schedule_config(&db, "0 0 0 1 * *", &bank);
    let schedule = settings::schedule(&config.raw).unwrap().unwrap();
    let december = rt
        .block_on(scheduler::tick(
            utc("2026-11-30T16:30:00Z"),
            &store,
            &config,
            &schedule,
            "a",
        ))
        .unwrap();
    assert_eq!(december.month, "2026-12");
    assert!(
        december.created.iter().all(|id| id.starts_with("R202612")) && december.created.len() == 1,
        "{december:?}"
    );
    rt.block_on(store.close());
}

/// FAILURES #1: two service instances against one PostgreSQL, both firing for the
/// same month, compute exactly one run; and two ticks racing in one process too.
#[test]
fn two_instances_on_one_postgres_compute_one_run() {
    let db = TestDb::postgres();
    import_roster(&db);
    let bank = key_for(&db, "bank", false);
    let config = schedule_config(&db, "0 0 9 20 * *", &bank);
    let schedule = settings::schedule(&config.raw).unwrap().unwrap();
    // Two real servers (the support clock is 2026-11-20 10:00 in Shanghai: due).
    let path = db.path("disburse.toml");
    let servers = [Server::start(&db, &path), Server::start(&db, &path)];
    let deadline = Instant::now() + Duration::from_secs(10);
    while db.count("run") == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    // Both tick every second: give them a few more chances to make a second run.
    std::thread::sleep(Duration::from_millis(2500));
    drop(servers);
    assert_eq!(db.count("run"), 1, "one run for the month");

    // Two ticks racing in one process for the next month.
    let rt = runtime();
    let store = rt
        .block_on(disburse::store::Store::connect(&db.url))
        .unwrap();
    let now = utc("2026-12-20T01:00:00Z");
    let (a, b) = rt.block_on(async {
        tokio::join!(
            scheduler::tick(now, &store, &config, &schedule, "a"),
            scheduler::tick(now, &store, &config, &schedule, "b")
        )
    });
    assert_eq!(a.unwrap().created.len() + b.unwrap().created.len(), 1);
    rt.block_on(store.close());
    assert_eq!(db.count("run"), 2);
}

/// The inbox: a refused file goes to rejected/ with its reason beside it; a good one
/// to done/, once.
#[test]
fn inbox_moves_files_to_done_or_rejected() {
    let db = TestDb::sqlite();
    let dir = db.path("inbox");
    std::fs::create_dir(&dir).unwrap();
    let vouchers = "voucher_no,voucher_type,original_voucher_no,batch_id,bank_code,amount,date\n\
                    V1,5201,,B000001A001,102221000018,1200.00,2026-11-20\n";
    std::fs::write(
        dir.join("treasury-bad.csv"),
        vouchers.replace("1200.00", "12.001"),
    )
    .unwrap();
    std::fs::write(dir.join("treasury.csv"), vouchers).unwrap();
    std::fs::write(dir.join("bank.txt"), "not a result file").unwrap();
    std::fs::write(dir.join(".partial"), "x").unwrap();
    let text = format!(
        "[inbox]\ndir = \"{}\"\nreport_dir = \"{}\"\n",
        dir.display(),
        db.path("reports").display()
    );
    let settings = settings::inbox(&text.parse().unwrap()).unwrap().unwrap();
    use clap::Parser as _;
    let cli = disburse::cli::args::Cli::parse_from([
        "disburse", "--db", &db.url, "--user", "inbox", "serve",
    ]);
    let context = disburse::cli::Context::new(&cli);
    let rt = runtime();
    let outcomes = rt
        .block_on(inbox::poll(
            &context,
            &settings,
            utc("2026-11-21T01:00:00Z"),
            "a",
        ))
        .unwrap();
    let dispositions: Vec<(&str, &str)> = outcomes
        .iter()
        .map(|o| (o.file.as_str(), o.disposition))
        .collect();
    assert_eq!(
        dispositions,
        [
            ("bank.txt", "rejected"),
            ("treasury-bad.csv", "rejected"),
            ("treasury.csv", "done")
        ]
    );
    assert!(dir.join("done/treasury.csv").exists() && dir.join(".partial").exists());
    let why = std::fs::read_to_string(dir.join("rejected/treasury-bad.csv.why")).unwrap();
    assert!(why.contains("amount"), "{why}");
    assert!(dir.join("rejected/bank.txt.why").exists());
    assert!(rt
        .block_on(inbox::poll(
            &context,
            &settings,
            utc("2026-11-21T01:01:00Z"),
            "a"
        ))
        .unwrap()
        .is_empty());
    assert_eq!(db.count("treasury_voucher"), 1);
    if let Some(store) = rt.block_on(async { context.store().await.ok().cloned() }) {
        rt.block_on(store.close());
    }
}
