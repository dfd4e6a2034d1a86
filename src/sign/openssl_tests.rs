//! Interoperability with the `openssl` CLI, which is all a bank has (CONTRACTS §3.3): our
//! signatures verify with the exact commands given to banks, OpenSSL-made keys load here,
//! and our SPKI PEM and key id match what OpenSSL derives for the same key.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use super::*;

/// The payment-file stand-in: GBK bytes, `|` separators and CRLF, as format A writes them.
const PAYMENT_FILE: &[u8] =
    b"H|01|B202501|6222000011112222|\xc3\xf1\xd5\xfe\xbe\xd6|20250115|1|850.00|CNY|dibao|\r\n\
D|000001|6222000011113333|\xd5\xc5\xc8\xfd|01|110101199001011234|850.00||dibao|E2E0000000001|\r\n\
T|1|850.00|\r\n";

pub(super) fn openssl(directory: &Path, args: &[&str]) -> Output {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(directory)
        .output();
    match output {
        Ok(output) => output,
        Err(error) => panic!("cannot run openssl {args:?}: {error}"),
    }
}

/// Runs openssl and insists it succeeds, showing its stderr if not.
pub(super) fn openssl_ok(directory: &Path, args: &[&str]) -> Output {
    let output = openssl(directory, args);
    assert!(
        output.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// `openssl genpkey` with the given options, into `directory/key.pem`; returns the PEM text.
pub(super) fn openssl_genpkey(directory: &Path, options: &[&str]) -> String {
    let mut args = vec!["genpkey"];
    args.extend_from_slice(options);
    args.extend_from_slice(&["-out", "key.pem"]);
    openssl_ok(directory, &args);
    read_text(&directory.join("key.pem"))
}

const RSA_2048: &[&str] = &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"];
const ED25519: &[&str] = &["-algorithm", "ed25519"];
const EC_P256: &[&str] = &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"];

fn read_text(path: &Path) -> String {
    match fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) => panic!("cannot read {}: {error}", path.display()),
    }
}

fn write(path: &Path, bytes: &[u8]) {
    if let Err(error) = fs::write(path, bytes) {
        panic!("cannot write {}: {error}", path.display());
    }
}

fn temp_dir() -> tempfile::TempDir {
    match tempfile::tempdir() {
        Ok(directory) => directory,
        Err(error) => panic!("cannot make a temp dir: {error}"),
    }
}

fn without_whitespace(text: &str) -> String {
    text.chars().filter(|c| !c.is_whitespace()).collect()
}

/// The bank's verification, with exactly the commands CONTRACTS §3.3 gives.
fn bank_verifies(directory: &Path, algorithm: SignatureAlgorithm) -> bool {
    let args: &[&str] = match algorithm {
        SignatureAlgorithm::Ed25519 => &[
            "pkeyutl", "-verify", "-pubin", "-inkey", "pub.pem", "-rawin", "-in", "F", "-sigfile",
            "F.sig",
        ],
        _ => &[
            "dgst",
            "-sha256",
            "-verify",
            "pub.pem",
            "-signature",
            "F.sig",
            "F",
        ],
    };
    openssl(directory, args).status.success()
}

/// Signs F with `signing_key`, expects the bank to accept it, then to refuse F with one
/// byte flipped.
fn assert_bank_accepts_then_rejects_tampering(directory: &Path, signing_key: &SigningKey) {
    let signature = signing_key.sign(PAYMENT_FILE).expect("sign");
    write(&directory.join("F"), PAYMENT_FILE);
    write(&directory.join("F.sig"), &signature);
    assert!(
        bank_verifies(directory, signing_key.algorithm()),
        "{signing_key:?}"
    );

    let mut tampered = PAYMENT_FILE.to_vec();
    tampered[40] ^= 0x01;
    write(&directory.join("F"), &tampered);
    assert!(
        !bank_verifies(directory, signing_key.algorithm()),
        "{signing_key:?}"
    );
}

#[test]
fn openssl_verifies_signatures_from_generated_keys() {
    for key_algorithm in [KeyAlgorithm::Ed25519, KeyAlgorithm::EcdsaP256] {
        let directory = temp_dir();
        let key_pair = generate_key_pair(key_algorithm).expect("generate");
        let signing_key = SigningKey::from_pkcs8_pem(&key_pair.private_pkcs8_pem).expect("load");
        write(
            &directory.path().join("pub.pem"),
            key_pair.public_spki_pem.as_bytes(),
        );
        assert_bank_accepts_then_rejects_tampering(directory.path(), &signing_key);

        // OpenSSL can also read the private key we wrote, and derives the same public key.
        write(
            &directory.path().join("key.pem"),
            key_pair.private_pkcs8_pem.as_bytes(),
        );
        let derived = openssl_ok(directory.path(), &["pkey", "-in", "key.pem", "-pubout"]);
        assert_eq!(
            String::from_utf8_lossy(&derived.stdout),
            key_pair.public_spki_pem
        );
    }
}

#[test]
fn openssl_made_keys_load_sign_and_match_openssl_public_key() {
    let cases = [
        (RSA_2048, SignatureAlgorithm::RsaPkcs1Sha256),
        (ED25519, SignatureAlgorithm::Ed25519),
        (EC_P256, SignatureAlgorithm::EcdsaP256Sha256),
    ];
    for (options, algorithm) in cases {
        let directory = temp_dir();
        let private_pem = openssl_genpkey(directory.path(), options);
        openssl_ok(
            directory.path(),
            &["pkey", "-in", "key.pem", "-pubout", "-out", "pub.pem"],
        );
        let openssl_public_pem = read_text(&directory.path().join("pub.pem"));

        let signing_key = SigningKey::from_pkcs8_pem(&private_pem).expect("load openssl key");
        assert_eq!(signing_key.algorithm(), algorithm);
        assert_eq!(
            without_whitespace(&signing_key.public_key_spki_pem()),
            without_whitespace(&openssl_public_pem)
        );
        assert_key_id_matches_openssl(directory.path(), &signing_key, &openssl_public_pem);
        assert_bank_accepts_then_rejects_tampering(directory.path(), &signing_key);
    }
}

/// The key id is SHA-256 over the DER OpenSSL writes for the public key, and is stable.
fn assert_key_id_matches_openssl(directory: &Path, signing_key: &SigningKey, public_pem: &str) {
    let der = openssl_ok(
        directory,
        &["pkey", "-pubin", "-in", "pub.pem", "-outform", "DER"],
    );
    let expected = sha256_hex(&der.stdout)[..16].to_string();
    assert_eq!(signing_key.key_id(), expected);
    let reloaded =
        SigningKey::from_pkcs8_pem(&read_text(&directory.join("key.pem"))).expect("reload");
    assert_eq!(reloaded.key_id(), expected);
    let verifying_key = VerifyingKey::from_spki_pem(public_pem).expect("openssl public key");
    assert_eq!(verifying_key.key_id(), expected);
}

#[test]
fn verifying_key_accepts_openssl_signatures() {
    let cases = [
        (RSA_2048, SignatureAlgorithm::RsaPkcs1Sha256),
        (ED25519, SignatureAlgorithm::Ed25519),
        (EC_P256, SignatureAlgorithm::EcdsaP256Sha256),
    ];
    for (options, algorithm) in cases {
        let directory = temp_dir();
        openssl_genpkey(directory.path(), options);
        let public = openssl_ok(directory.path(), &["pkey", "-in", "key.pem", "-pubout"]);
        write(&directory.path().join("F"), PAYMENT_FILE);
        let sign_args: &[&str] = match algorithm {
            SignatureAlgorithm::Ed25519 => &[
                "pkeyutl", "-sign", "-inkey", "key.pem", "-rawin", "-in", "F", "-out", "F.sig",
            ],
            _ => &["dgst", "-sha256", "-sign", "key.pem", "-out", "F.sig", "F"],
        };
        openssl_ok(directory.path(), sign_args);
        let signature = fs::read(directory.path().join("F.sig")).expect("read F.sig");

        let verifying_key =
            VerifyingKey::from_spki_pem(&String::from_utf8_lossy(&public.stdout)).expect("load");
        assert_eq!(verifying_key.algorithm(), algorithm);
        assert!(
            verifying_key.verify(PAYMENT_FILE, &signature).is_ok(),
            "{algorithm}"
        );
        assert!(
            verifying_key
                .verify(&PAYMENT_FILE[1..], &signature)
                .is_err(),
            "{algorithm}"
        );
    }
}

#[test]
fn openssl_keys_we_do_not_take_get_a_clear_error() {
    let directory = temp_dir();
    openssl_genpkey(directory.path(), RSA_2048);
    openssl_ok(
        directory.path(),
        &["rsa", "-in", "key.pem", "-traditional", "-out", "pkcs1.pem"],
    );
    let error = SigningKey::from_pkcs8_pem(&read_text(&directory.path().join("pkcs1.pem")))
        .expect_err("PKCS#1 refused");
    assert!(
        matches!(error, SignError::WrongPemLabel { .. }),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("openssl pkcs8 -topk8 -nocrypt"),
        "{error}"
    );

    openssl_ok(
        directory.path(),
        &[
            "pkcs8",
            "-topk8",
            "-in",
            "key.pem",
            "-passout",
            "pass:secret",
            "-out",
            "enc.pem",
        ],
    );
    let error = SigningKey::from_pkcs8_pem(&read_text(&directory.path().join("enc.pem")))
        .expect_err("encrypted refused");
    assert!(matches!(error, SignError::EncryptedPkcs8), "{error:?}");

    let p384 = openssl_genpkey(
        directory.path(),
        &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"],
    );
    let error = SigningKey::from_pkcs8_pem(&p384).expect_err("P-384 refused");
    assert!(
        matches!(error, SignError::UnsupportedCurve { ref oid } if oid == "1.3.132.0.34"),
        "{error:?}"
    );

    let ed448 = openssl_genpkey(directory.path(), &["-algorithm", "ed448"]);
    let error = SigningKey::from_pkcs8_pem(&ed448).expect_err("Ed448 refused");
    assert!(
        matches!(error, SignError::UnsupportedKeyType { ref oid } if oid == "1.3.101.113"),
        "{error:?}"
    );
}
