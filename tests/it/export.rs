//! `run export` (CONTRACTS §3) through the real binary, on SQLite and PostgreSQL: one
//! signed file per route, verified with the OpenSSL command line as a bank would; the
//! manifest adds up to the run; re-export is byte-identical; refusals write nothing.

use crate::imports::{card, id_number, roster_csv, roster_row, with};
use crate::support::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// (household, bank code): two A banks, two B routes (402, 314), one C.
const HOUSEHOLDS: &[(&str, &str)] = &[
    ("H1", "102221000018"),
    ("H2", "402221000054"),
    ("H3", "314221000063"),
    ("H4", "313221000045"),
    ("H5", "105221000017"),
    ("H6", "402221000054"),
];

fn household_row(index: usize, household_id: &str, bank_code: &str) -> Vec<(&'static str, String)> {
    let row = with(roster_row(household_id), "bank_code", bank_code);
    let row = with(
        row,
        "head_id_number",
        &id_number(&format!("21010219600101{index:03}")),
    );
    with(
        row,
        "account_number",
        &card(&format!("622202123456789{index:03}")),
    )
}

/// A run created by `operator`, approved by `li`, ready to export.
struct ApprovedRun {
    db: TestDb,
    run_id: String,
    pay_count: i64,
    payable_fen: i64,
}

fn approved_run(db: TestDb, extra: &[Vec<(&'static str, String)>]) -> ApprovedRun {
    let mut rows: Vec<_> = HOUSEHOLDS
        .iter()
        .enumerate()
        .map(|(index, (id, bank))| household_row(index, id, bank))
        .collect();
    rows.extend(extra.iter().cloned());
    let roster = db.write("roster.csv", roster_csv(&rows));
    assert_exit(&db.run(&["import", "roster", roster.to_str().unwrap()]), 0);
    let created = db.run_as(
        "operator",
        &["--json", "run", "create", "--month", "2026-11"],
    );
    assert_exit(&created, 0);
    let json: serde_json::Value = serde_json::from_str(stdout(&created).trim()).unwrap();
    let run_id = json["run_id"].as_str().unwrap().to_string();
    let key = generate_key(&db, "li.pem", "ed25519");
    let public = format!("{}.pub.pem", key.display());
    assert_exit(
        &db.run(&["approver", "add", "li", "--public-key", &public]),
        0,
    );
    assert_exit(
        &db.run_as(
            "li",
            &["run", "approve", &run_id, "--key", key.to_str().unwrap()],
        ),
        0,
    );
    ApprovedRun {
        pay_count: json["run"]["pay_count"].as_i64().unwrap(),
        payable_fen: json["run"]["payable_fen"].as_i64().unwrap(),
        db,
        run_id,
    }
}

fn generate_key(db: &TestDb, name: &str, algorithm: &str) -> PathBuf {
    let path = db.path(name);
    let out = path.to_str().unwrap();
    assert_exit(
        &db.run(&["keys", "generate", "--alg", algorithm, "--out", out]),
        0,
    );
    path
}

fn export(run: &ApprovedRun, out: &Path, key: &Path) -> std::process::Output {
    run.db.run(&[
        "run",
        "export",
        &run.run_id,
        "--out",
        out.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ])
}

fn read_manifest(out: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap()
}

/// Every file in `dir` by name, with its bytes.
fn files_in(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    match std::fs::read_dir(dir) {
        Err(_) => BTreeMap::new(),
        Ok(entries) => entries
            .map(|entry| entry.unwrap().path())
            .map(|path| {
                (
                    path.file_name().unwrap().to_string_lossy().to_string(),
                    std::fs::read(&path).unwrap(),
                )
            })
            .collect(),
    }
}

/// The OpenSSL check of CONTRACTS §3.3, exactly as a bank runs it.
fn openssl_verifies(algorithm: &str, public_key: &Path, file: &Path) -> bool {
    let signature = format!("{}.sig", file.display());
    let mut command = Command::new("openssl");
    if algorithm == "ed25519" {
        command
            .args(["pkeyutl", "-verify", "-pubin", "-inkey"])
            .arg(public_key)
            .arg("-rawin")
            .arg("-in")
            .arg(file)
            .arg("-sigfile")
            .arg(&signature);
    } else {
        command
            .args(["dgst", "-sha256", "-verify"])
            .arg(public_key)
            .arg("-signature")
            .arg(&signature)
            .arg(file);
    }
    command.output().expect("openssl").status.success()
}

fn run_state(run: &ApprovedRun) -> String {
    let show = run.db.run(&["--json", "run", "show", &run.run_id]);
    assert_exit(&show, 0);
    let json: serde_json::Value = serde_json::from_str(stdout(&show).trim()).unwrap();
    json["run"]["state"].as_str().unwrap().to_string()
}

fn pay_end_to_end_ids(run: &ApprovedRun) -> Vec<String> {
    let lines = run.db.run(&["run", "lines", &run.run_id]);
    assert_exit(&lines, 0);
    stdout(&lines)
        .lines()
        .skip(1)
        .filter(|line| line.split(',').nth(3) == Some("pay"))
        .map(|line| line.split(',').nth(11).unwrap().to_string())
        .collect()
}

#[test]
fn export_writes_one_signed_file_per_route_and_reexport_is_identical() {
    for db in TestDb::both() {
        let run = approved_run(db, &[]);
        let key = generate_key(&run.db, "bank.pem", "ed25519");
        let public = run.db.path("bank.pem.pub.pem");
        let out = run.db.path("bank-files");
        assert_exit(&export(&run, &out, &key), 0);
        let manifest = read_manifest(&out);
        let files = manifest["files"].as_array().unwrap();
        let layouts: Vec<&str> = files
            .iter()
            .map(|f| f["layout"].as_str().unwrap())
            .collect();
        assert_eq!(
            layouts,
            [
                "bank-pipe-gbk",
                "rcc-fixed-gbk",
                "rcc-fixed-gbk",
                "iso20022-pain001"
            ],
            "{}",
            run.db.backend
        );
        assert_eq!(manifest["record_count"].as_i64(), Some(run.pay_count));
        assert_eq!(manifest["total_fen"].as_i64(), Some(run.payable_fen));
        let summed: i64 = files.iter().map(|f| f["total_fen"].as_i64().unwrap()).sum();
        assert_eq!(summed, run.payable_fen);
        let written = files_in(&out);
        for file in files {
            let name = file["file"].as_str().unwrap();
            let path = out.join(name);
            assert_eq!(file["signature_algorithm"], "ed25519");
            assert!(openssl_verifies("ed25519", &public, &path), "{name}");
            let bytes = &written[name];
            assert_eq!(
                file["sha256"].as_str().unwrap(),
                disburse::sign::sha256_hex(bytes)
            );
            check_layout(file["layout"].as_str().unwrap(), &path, bytes);
            let mut tampered = bytes.clone();
            tampered[bytes.len() / 2] ^= 0x01;
            let tampered_path = run.db.path(&format!("tampered-{name}"));
            std::fs::write(&tampered_path, &tampered).unwrap();
            std::fs::copy(
                out.join(format!("{name}.sig")),
                format!("{}.sig", tampered_path.display()),
            )
            .unwrap();
            assert!(
                !openssl_verifies("ed25519", &public, &tampered_path),
                "a flipped byte must fail: {name}"
            );
        }
        for id in pay_end_to_end_ids(&run) {
            let holders = files.iter().filter(|f| {
                let bytes = &written[f["file"].as_str().unwrap()];
                bytes
                    .windows(id.len())
                    .any(|window| window == id.as_bytes())
            });
            assert_eq!(holders.count(), 1, "{id}");
        }
        assert_eq!(run.db.count("payment"), run.pay_count);
        assert_eq!(run.db.count("batch"), 4);
        let again = export(&run, &out, &key);
        assert_exit(&again, 0);
        assert!(stdout(&again).contains("re-exported"), "{}", stdout(&again));
        assert_eq!(
            files_in(&out),
            written,
            "re-export in place changes no byte"
        );
        let elsewhere = run.db.path("again");
        assert_exit(&export(&run, &elsewhere, &key), 0);
        assert_eq!(
            files_in(&elsewhere),
            written,
            "re-export elsewhere gives the same bytes"
        );
        assert_eq!(run.db.count("payment"), run.pay_count);
        let show = run.db.run(&["--json", "run", "show", &run.run_id]);
        assert!(
            stdout(&show).contains("\"state\":\"exported\""),
            "{}",
            stdout(&show)
        );
        assert_exit(&run.db.run(&["audit", "verify"]), 0);
    }
}

/// B: every record 200 bytes + CRLF and it parses back; C: valid against the official schema.
fn check_layout(layout: &str, path: &Path, bytes: &[u8]) {
    let layouts = disburse::formats::load_builtin();
    let spec = disburse::formats::spec::find(&layouts, layout).unwrap();
    match layout {
        "rcc-fixed-gbk" => {
            assert!(bytes.ends_with(b"\r\n"));
            for record in bytes.split_inclusive(|b| *b == b'\n') {
                assert_eq!(record.len(), 202, "{}", path.display());
                assert!(record.ends_with(b"\r\n"));
            }
            disburse::formats::parse_payment_file(spec, bytes).unwrap();
        }
        "bank-pipe-gbk" => {
            disburse::formats::parse_payment_file(spec, bytes).unwrap();
        }
        _ => {
            let schema = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../shared/standards/iso20022/pain.001.001.09.xsd");
            let output = Command::new("xmllint")
                .arg("--noout")
                .arg("--schema")
                .arg(&schema)
                .arg(path)
                .output()
                .expect("xmllint");
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
}

#[test]
fn ecdsa_signatures_verify_with_openssl_and_survive_reexport() {
    for db in TestDb::both() {
        let run = approved_run(db, &[]);
        let key = generate_key(&run.db, "bank-ec.pem", "ecdsa-p256");
        let public = run.db.path("bank-ec.pem.pub.pem");
        let out = run.db.path("bank-files");
        assert_exit(&export(&run, &out, &key), 0);
        let written = files_in(&out);
        for file in read_manifest(&out)["files"].as_array().unwrap() {
            assert_eq!(file["signature_algorithm"], "ecdsa-p256-sha256");
            assert!(openssl_verifies(
                "ecdsa",
                &public,
                &out.join(file["file"].as_str().unwrap())
            ));
        }
        assert_exit(&export(&run, &out, &key), 0);
        assert_eq!(
            files_in(&out),
            written,
            "existing ECDSA signatures that verify are kept"
        );
    }
}

#[test]
fn export_before_approval_is_refused_and_writes_nothing() {
    for db in TestDb::both() {
        let rows: Vec<_> = HOUSEHOLDS
            .iter()
            .enumerate()
            .map(|(i, (id, bank))| household_row(i, id, bank))
            .collect();
        let roster = db.write("roster.csv", roster_csv(&rows));
        assert_exit(&db.run(&["import", "roster", roster.to_str().unwrap()]), 0);
        let created = db.run_as(
            "operator",
            &["--json", "run", "create", "--month", "2026-11"],
        );
        let json: serde_json::Value = serde_json::from_str(stdout(&created).trim()).unwrap();
        let run_id = json["run_id"].as_str().unwrap();
        let key = generate_key(&db, "bank.pem", "ed25519");
        let out = db.path("bank-files");
        let output = db.run(&[
            "run",
            "export",
            run_id,
            "--out",
            out.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
        ]);
        assert_exit(&output, 1);
        assert!(
            stderr(&output).contains("only an approved run"),
            "{}",
            stderr(&output)
        );
        assert!(files_in(&out).is_empty());
        assert_eq!(db.count("batch") + db.count("payment"), 0);
    }
}

#[test]
fn key_file_readable_by_others_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    for db in TestDb::both() {
        let run = approved_run(db, &[]);
        let key = generate_key(&run.db, "bank.pem", "ed25519");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let out = run.db.path("bank-files");
        let output = export(&run, &out, &key);
        assert_exit(&output, 1);
        assert!(stderr(&output).contains("chmod 600"), "{}", stderr(&output));
        assert!(files_in(&out).is_empty());
        assert_eq!(run.db.count("payment"), 0);
    }
}

#[test]
fn name_outside_gbk_on_a_b_route_stops_the_export() {
    for db in TestDb::both() {
        let rare = with(
            household_row(9, "H9-RARE", "402221000054"),
            "head_name",
            "王𬌗",
        );
        let rare = with(rare, "account_name", "王𬌗");
        let run = approved_run(db, &[rare]);
        let key = generate_key(&run.db, "bank.pem", "ed25519");
        let out = run.db.path("bank-files");
        let output = export(&run, &out, &key);
        assert_exit(&output, 1);
        let errors = stderr(&output);
        assert!(
            errors.contains("household H9-RARE") && errors.contains("U+2C317"),
            "{errors}"
        );
        assert!(files_in(&out).is_empty(), "{:?}", files_in(&out).keys());
        assert_eq!(run.db.count("batch") + run.db.count("payment"), 0);
        assert_eq!(run_state(&run), "approved");
    }
}

#[test]
fn configured_routes_split_files_by_max_records() {
    for db in TestDb::both() {
        let run = approved_run(db, &[]);
        let config = run.db.write(
            "disburse.toml",
            "[[routes]]\nbank_prefix = \"\"\nlayout = \"bank-pipe-gbk\"\nmax_records = 4\n\n[keys]\nsigning_key = \"bank.pem\"\n",
        );
        generate_key(&run.db, "bank.pem", "ed25519");
        let out = run.db.path("bank-files");
        let output = run.db.run(&[
            "--config",
            config.to_str().unwrap(),
            "run",
            "export",
            &run.run_id,
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_exit(&output, 0);
        let manifest = read_manifest(&out);
        let counts: Vec<i64> = manifest["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["record_count"].as_i64().unwrap())
            .collect();
        assert_eq!(counts, [4, 2], "{}", run.db.backend);
        assert_eq!(manifest["total_fen"].as_i64(), Some(run.payable_fen));
    }
}
