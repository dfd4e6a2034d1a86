//! Unit tests for signing: round trips, tampering, key files and their modes, hostile input,
//! and that no key material leaks through `Debug` or errors.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use proptest::prelude::*;

use super::der;
use super::openssl_tests::openssl_genpkey;
use super::*;

const MESSAGE: &[u8] = b"H|01|B202501|...|T|1|850.00|\r\n";

/// One signing key per algorithm; RSA comes from OpenSSL because ring cannot generate it.
fn signing_keys_of_every_algorithm() -> Vec<SigningKey> {
    let directory = tempfile::tempdir().expect("temp dir");
    let rsa_pem = openssl_genpkey(
        directory.path(),
        &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
    );
    let mut keys = vec![SigningKey::from_pkcs8_pem(&rsa_pem).expect("rsa")];
    for algorithm in [KeyAlgorithm::EcdsaP256, KeyAlgorithm::Ed25519] {
        let key_pair = generate_key_pair(algorithm).expect("generate");
        keys.push(SigningKey::from_pkcs8_pem(&key_pair.private_pkcs8_pem).expect("load"));
    }
    keys
}

#[test]
fn sign_verify_round_trips_and_flipped_bytes_fail() {
    for signing_key in signing_keys_of_every_algorithm() {
        let verifying_key =
            VerifyingKey::from_spki_pem(&signing_key.public_key_spki_pem()).expect("public key");
        assert_eq!(verifying_key.algorithm(), signing_key.algorithm());
        assert_eq!(verifying_key.key_id(), signing_key.key_id());
        assert_eq!(verifying_key.spki_pem(), signing_key.public_key_spki_pem());

        let signature = signing_key.sign(MESSAGE).expect("sign");
        assert_signature_shape(signing_key.algorithm(), &signature);
        assert!(
            verifying_key.verify(MESSAGE, &signature).is_ok(),
            "{signing_key:?}"
        );

        for index in [0, MESSAGE.len() / 2, MESSAGE.len() - 1] {
            let mut message = MESSAGE.to_vec();
            message[index] ^= 0x01;
            let error = verifying_key
                .verify(&message, &signature)
                .expect_err("tampered message");
            assert!(matches!(error, SignError::BadSignature { .. }), "{error:?}");
        }
        for index in [0, signature.len() / 2, signature.len() - 1] {
            let mut tampered = signature.clone();
            tampered[index] ^= 0x01;
            assert!(
                verifying_key.verify(MESSAGE, &tampered).is_err(),
                "{signing_key:?} @ {index}"
            );
        }
    }
}

fn assert_signature_shape(algorithm: SignatureAlgorithm, signature: &[u8]) {
    match algorithm {
        SignatureAlgorithm::RsaPkcs1Sha256 => assert_eq!(signature.len(), 256),
        // ASN.1 DER: SEQUENCE { r INTEGER, s INTEGER }, at most 72 bytes for P-256.
        SignatureAlgorithm::EcdsaP256Sha256 => {
            assert_eq!(signature.first(), Some(&0x30));
            assert!(signature.len() <= 72);
        }
        SignatureAlgorithm::Ed25519 => assert_eq!(signature.len(), 64),
    }
}

#[test]
fn a_signature_does_not_verify_under_another_key() {
    let first = SigningKey::from_pkcs8_pem(
        &generate_key_pair(KeyAlgorithm::Ed25519)
            .expect("gen")
            .private_pkcs8_pem,
    )
    .expect("load");
    let second = generate_key_pair(KeyAlgorithm::Ed25519).expect("gen");
    let other = VerifyingKey::from_spki_pem(&second.public_spki_pem).expect("public");
    assert_ne!(first.key_id(), other.key_id());
    assert!(other
        .verify(MESSAGE, &first.sign(MESSAGE).expect("sign"))
        .is_err());
}

#[test]
fn algorithm_names_round_trip() {
    let signature_algorithms = [
        (SignatureAlgorithm::RsaPkcs1Sha256, "rsa-pkcs1-sha256"),
        (SignatureAlgorithm::EcdsaP256Sha256, "ecdsa-p256-sha256"),
        (SignatureAlgorithm::Ed25519, "ed25519"),
    ];
    for (algorithm, name) in signature_algorithms {
        assert_eq!(algorithm.as_str(), name);
        assert_eq!(
            name.parse::<SignatureAlgorithm>().expect("parse"),
            algorithm
        );
    }
    for (algorithm, name) in [
        (KeyAlgorithm::Ed25519, "ed25519"),
        (KeyAlgorithm::EcdsaP256, "ecdsa-p256"),
    ] {
        assert_eq!(algorithm.as_str(), name);
        assert_eq!(name.parse::<KeyAlgorithm>().expect("parse"), algorithm);
    }
    for bad in ["rsa", "ECDSA-P256", "ed448", ""] {
        assert!(matches!(
            bad.parse::<KeyAlgorithm>(),
            Err(SignError::UnknownKeyAlgorithm { .. })
        ));
    }
}

#[test]
fn sha256_hex_matches_the_fips_180_vector() {
    assert_eq!(
        sha256_hex(b"abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

#[test]
fn write_new_key_pair_writes_0600_and_a_public_key_that_loads() {
    let directory = tempfile::tempdir().expect("temp dir");
    let path = directory.path().join("signing.pem");
    let key_pair = write_new_key_pair(&path, KeyAlgorithm::EcdsaP256).expect("write");

    assert_eq!(mode_of(&path), 0o600);
    let public_path = directory.path().join("signing.pem.pub.pem");
    assert_eq!(
        fs::read_to_string(&public_path).expect("pub"),
        key_pair.public_spki_pem
    );
    assert_eq!(
        fs::read_to_string(&path).expect("key"),
        key_pair.private_pkcs8_pem
    );

    let signing_key = SigningKey::load(&path).expect("load own key");
    assert_eq!(signing_key.key_id(), key_pair.key_id);
    let verifying_key = VerifyingKey::from_spki_pem(&key_pair.public_spki_pem).expect("public");
    assert_eq!(verifying_key.key_id(), key_pair.key_id);
}

#[test]
fn write_new_key_pair_refuses_to_overwrite() {
    let directory = tempfile::tempdir().expect("temp dir");
    let path = directory.path().join("signing.pem");
    let first = write_new_key_pair(&path, KeyAlgorithm::Ed25519).expect("write");
    let error = write_new_key_pair(&path, KeyAlgorithm::Ed25519).expect_err("second write");
    assert!(
        matches!(error, SignError::KeyFileExists { .. }),
        "{error:?}"
    );
    assert_eq!(
        fs::read_to_string(&path).expect("key"),
        first.private_pkcs8_pem
    );

    // A stray public key alone also blocks, and no private key is left behind.
    let lonely = directory.path().join("lonely.pem");
    fs::write(public_key_path(&lonely), "stray").expect("write stray");
    let error = write_new_key_pair(&lonely, KeyAlgorithm::Ed25519).expect_err("public exists");
    assert!(
        matches!(error, SignError::KeyFileExists { .. }),
        "{error:?}"
    );
    assert!(!lonely.exists());
}

#[test]
fn load_refuses_key_files_others_can_touch() {
    let directory = tempfile::tempdir().expect("temp dir");
    let path = directory.path().join("signing.pem");
    write_new_key_pair(&path, KeyAlgorithm::Ed25519).expect("write");
    for mode in [0o644, 0o640, 0o604, 0o660, 0o602, 0o610, 0o601] {
        set_mode(&path, mode);
        let error = SigningKey::load(&path).expect_err("lax mode refused");
        assert!(
            matches!(error, SignError::KeyFilePermissions { .. }),
            "{error:?}"
        );
        let message = error.to_string();
        assert!(message.contains(&format!("{mode:04o}")), "{message}");
        assert!(message.contains(&path.display().to_string()), "{message}");
    }
    for mode in [0o600, 0o400] {
        set_mode(&path, mode);
        assert!(SigningKey::load(&path).is_ok(), "mode {mode:04o}");
    }
}

#[test]
fn load_refuses_directories_and_missing_files() {
    let directory = tempfile::tempdir().expect("temp dir");
    set_mode(directory.path(), 0o700);
    let error = SigningKey::load(directory.path()).expect_err("directory");
    assert!(
        matches!(error, SignError::KeyFileNotRegular { .. }),
        "{error:?}"
    );
    let error = SigningKey::load(&directory.path().join("absent.pem")).expect_err("missing");
    assert!(matches!(error, SignError::KeyFileRead { .. }), "{error:?}");
}

fn mode_of(path: &Path) -> u32 {
    fs::metadata(path).expect("metadata").permissions().mode() & 0o7777
}

fn set_mode(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
}

#[test]
fn debug_output_carries_no_key_material() {
    let key_pair = generate_key_pair(KeyAlgorithm::Ed25519).expect("generate");
    let signing_key = SigningKey::from_pkcs8_pem(&key_pair.private_pkcs8_pem).expect("load");
    let debug = format!("{signing_key:?}");
    assert!(
        debug.contains(&signing_key.key_id()) && debug.contains("ed25519"),
        "{debug}"
    );

    let private_der = der_of(&key_pair.private_pkcs8_pem);
    let seed = &private_der[private_der.len().saturating_sub(32)..];
    let generated_debug = format!("{key_pair:?}");
    for rendering in [debug, generated_debug] {
        assert!(!rendering.contains(&hex::encode(seed)), "{rendering}");
        assert!(!rendering.contains(&format!("{seed:?}")), "{rendering}");
        for line in key_pair
            .private_pkcs8_pem
            .lines()
            .filter(|line| !line.starts_with("-----"))
        {
            assert!(!rendering.contains(line), "{rendering}");
        }
    }
}

fn der_of(pem_text: &str) -> Vec<u8> {
    pem::parse(pem_text).expect("pem").into_contents()
}

#[test]
fn pem_labels_we_do_not_take_name_the_fix() {
    let cases = [
        ("RSA PRIVATE KEY", "openssl pkcs8 -topk8 -nocrypt"),
        ("EC PRIVATE KEY", "openssl pkcs8 -topk8 -nocrypt"),
        ("PUBLIC KEY", "public key"),
    ];
    for (label, advice) in cases {
        let text = encode_pem(label, &[0x30, 0x00]);
        let error = SigningKey::from_pkcs8_pem(&text).expect_err("wrong label");
        assert!(
            matches!(error, SignError::WrongPemLabel { .. }),
            "{error:?}"
        );
        assert!(error.to_string().contains(advice), "{error}");
    }
    let error = SigningKey::from_pkcs8_pem(&encode_pem("ENCRYPTED PRIVATE KEY", &[0x30, 0x00]))
        .expect_err("encrypted");
    assert!(matches!(error, SignError::EncryptedPkcs8), "{error:?}");
    let error = VerifyingKey::from_spki_pem(&encode_pem("PRIVATE KEY", &[0x30, 0x00]))
        .expect_err("private");
    assert!(
        error
            .to_string()
            .contains("openssl pkey -in KEY.pem -pubout"),
        "{error}"
    );
}

#[test]
fn keys_on_other_curves_and_of_other_types_are_named() {
    let rng = ring::rand::SystemRandom::new();
    let p384 = ring::signature::EcdsaKeyPair::generate_pkcs8(
        &ring::signature::ECDSA_P384_SHA384_ASN1_SIGNING,
        &rng,
    )
    .expect("p384");
    let error = SigningKey::from_pkcs8_der(p384.as_ref()).expect_err("P-384");
    assert!(
        matches!(error, SignError::UnsupportedCurve { ref oid } if oid == "1.3.132.0.34"),
        "{error:?}"
    );
    assert!(error.to_string().contains("other than P-256"), "{error}");

    // An X25519 (1.3.101.110) PrivateKeyInfo: a key type we recognise as not ours.
    let algorithm = der::write(
        der::TAG_SEQUENCE,
        &der::write(der::TAG_OID, &[0x2b, 0x65, 0x6e]),
    );
    let mut content = der::write(der::TAG_INTEGER, &[0]);
    content.extend(algorithm);
    content.extend(der::write(0x04, &[0x04, 0x20]));
    let error =
        SigningKey::from_pkcs8_der(&der::write(der::TAG_SEQUENCE, &content)).expect_err("x25519");
    assert!(
        matches!(error, SignError::UnsupportedKeyType { ref oid } if oid == "1.3.101.110"),
        "{error:?}"
    );
}

#[test]
fn every_truncation_of_a_valid_key_is_a_typed_error() {
    for key_algorithm in [KeyAlgorithm::Ed25519, KeyAlgorithm::EcdsaP256] {
        let key_pair = generate_key_pair(key_algorithm).expect("generate");
        let private_der = der_of(&key_pair.private_pkcs8_pem);
        let public_der = der_of(&key_pair.public_spki_pem);
        for length in 0..private_der.len() {
            assert!(
                SigningKey::from_pkcs8_der(&private_der[..length]).is_err(),
                "{length}"
            );
        }
        for length in 0..public_der.len() {
            assert!(
                VerifyingKey::from_spki_der(&public_der[..length]).is_err(),
                "{length}"
            );
        }
    }
}

#[test]
fn garbage_is_a_typed_error() {
    let garbage = [
        "",
        "hello",
        "-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----\n",
        "-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----\n",
        "-----BEGIN PUBLIC KEY-----\nMAA=\n-----END PRIVATE KEY-----\n",
    ];
    for text in garbage {
        assert!(VerifyingKey::from_spki_pem(text).is_err(), "{text:?}");
        assert!(SigningKey::from_pkcs8_pem(text).is_err(), "{text:?}");
    }
}

proptest! {
    #[test]
    fn any_text_is_refused_without_panic(text in ".{0,300}") {
        prop_assert!(VerifyingKey::from_spki_pem(&text).is_err());
        prop_assert!(SigningKey::from_pkcs8_pem(&text).is_err());
    }

    #[test]
    fn any_bytes_in_pem_armour_are_refused_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        prop_assert!(VerifyingKey::from_spki_pem(&encode_pem("PUBLIC KEY", &bytes)).is_err());
        prop_assert!(SigningKey::from_pkcs8_pem(&encode_pem("PRIVATE KEY", &bytes)).is_err());
    }

    #[test]
    fn mutated_keys_never_panic(index in any::<prop::sample::Index>(), value in any::<u8>()) {
        let key_pair = generate_key_pair(KeyAlgorithm::EcdsaP256).expect("generate");
        for (label, der) in [("PUBLIC KEY", der_of(&key_pair.public_spki_pem)), ("PRIVATE KEY", der_of(&key_pair.private_pkcs8_pem))] {
            let mut mutated = der.clone();
            let at = index.index(mutated.len());
            mutated[at] = value;
            // Either outcome is fine (some bytes are key bits); panicking is not.
            let _public = VerifyingKey::from_spki_pem(&encode_pem(label, &mutated));
            let _private = SigningKey::from_pkcs8_pem(&encode_pem(label, &mutated));
        }
    }
}
