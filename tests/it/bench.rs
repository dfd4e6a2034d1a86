//! `disburse bench` (issue #7): the month it measures reconciles on both backends, and
//! `--signing-key` signs the bank files with the key given, RSA included (the algorithm
//! banks expect, CONTRACTS §3.3), so the figures can be taken with it.

use crate::support::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

#[test]
fn bench_signs_with_the_rsa_key_given_and_its_month_reconciles_on_both_backends() {
    for db in TestDb::both() {
        let key = openssl_rsa_key(&db);
        let out = db.path("bench-out");
        let output = db.run(&[
            "bench",
            "--households",
            "400",
            "--out",
            out.to_str().unwrap(),
            "--signing-key",
            key.to_str().unwrap(),
        ]);
        assert_exit(&output, 0);
        let text = stdout(&output);
        assert!(
            text.contains(&format!(
                "400 households on {}, files signed with rsa-pkcs1-sha256",
                db.backend
            )),
            "{text}"
        );
        assert!(text.contains("reconcile"), "{text}");
        let signed = verify_every_file(&out.join("run/bank-files"), &public_key(&db, &key));
        assert!(signed >= 2, "{}: {signed} files signed", db.backend);
        assert!(out.join("run/bench.csv").exists());
    }
}

#[test]
fn formats_bench_signs_with_the_key_given() {
    let db = TestDb::sqlite();
    let key = openssl_rsa_key(&db);
    let out = db.path("formats-out");
    let output = formats_bench(&db, "300", &out, &key);
    assert_exit(&output, 0);
    let text = stdout(&output);
    assert!(
        text.contains("300 generated payments") && text.contains("signed with rsa-pkcs1-sha256"),
        "{text}"
    );
    assert!(out.join("formats-bench.csv").exists());
}

#[test]
fn bench_refuses_a_signing_key_others_can_read() {
    let db = TestDb::sqlite();
    let key = openssl_rsa_key(&db);
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let output = formats_bench(&db, "10", &db.path("formats-out"), &key);
    assert_exit(&output, 1);
    let error = stderr(&output);
    assert!(
        error.contains("--signing-key") && error.contains("rsa.pem has mode 0644"),
        "{error}"
    );
    assert!(!db.path("formats-out").exists(), "nothing generated");
}

fn formats_bench(db: &TestDb, households: &str, out: &Path, key: &Path) -> Output {
    disburse_command(db.dir.path())
        .args([
            "bench",
            "--formats-only",
            "--households",
            households,
            "--out",
        ])
        .arg(out)
        .arg("--signing-key")
        .arg(key)
        .output()
        .unwrap()
}

/// A 2048-bit RSA key made as CONTRACTS §3.3 says banks' keys are made, private (0600).
fn openssl_rsa_key(db: &TestDb) -> PathBuf {
    let key = db.path("rsa.pem");
    let mut command = Command::new("openssl");
    command.args([
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
    ]);
    assert!(succeeds(command.arg(&key)), "openssl genpkey");
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    key
}

fn public_key(db: &TestDb, key: &Path) -> PathBuf {
    let public = db.path("rsa.pub.pem");
    let mut command = Command::new("openssl");
    command
        .args(["pkey", "-pubout", "-in"])
        .arg(key)
        .arg("-out")
        .arg(&public);
    assert!(succeeds(&mut command), "openssl pkey -pubout");
    public
}

/// Checks every `F.sig` in `dir` as a bank does (`openssl dgst -sha256 -verify`);
/// returns how many there were.
fn verify_every_file(dir: &Path, public_key: &Path) -> usize {
    let mut signed = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let Some(file) = path.to_str().and_then(|p| p.strip_suffix(".sig")) else {
            continue;
        };
        let mut command = Command::new("openssl");
        command.args(["dgst", "-sha256", "-verify"]).arg(public_key);
        command.arg("-signature").arg(&path).arg(file);
        assert!(succeeds(&mut command), "{file} does not verify");
        signed += 1;
    }
    signed
}

fn succeeds(command: &mut Command) -> bool {
    let output = command.output().expect("openssl is installed (README)");
    if !output.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    }
    output.status.success()
}
