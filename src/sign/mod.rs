//! Detached signatures over payment files and approvals (CONTRACTS §3.3, §5): PKCS#8 signing
//! keys (RSA, EC P-256, Ed25519), SPKI public keys, key files kept at mode 0600, and key ids.
//!
//! Everything here is built on `ring`. Key material never appears in `Debug` output or in
//! error messages: errors name paths, modes, algorithms and key ids only.

mod der;
mod key_file;
mod signing_key;
mod spki;
mod verifying_key;

#[cfg(test)]
mod openssl_tests;
#[cfg(test)]
mod tests;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

pub use key_file::{generate_key_pair, public_key_path, write_new_key_pair, GeneratedKeyPair};
pub use signing_key::SigningKey;
pub use verifying_key::VerifyingKey;

/// The signature scheme a key produces; it follows from the key, never from a flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SignatureAlgorithm {
    /// RSA PKCS#1 v1.5 with SHA-256: the default banks expect.
    RsaPkcs1Sha256,
    /// ECDSA on P-256 with SHA-256; signatures are ASN.1 DER, as `openssl dgst` wants.
    EcdsaP256Sha256,
    /// Ed25519; signatures are the raw 64 bytes, as `openssl pkeyutl -rawin` wants.
    Ed25519,
}

impl SignatureAlgorithm {
    /// The name written in `manifest.json`.
    pub fn as_str(self) -> &'static str {
        match self {
            SignatureAlgorithm::RsaPkcs1Sha256 => "rsa-pkcs1-sha256",
            SignatureAlgorithm::EcdsaP256Sha256 => "ecdsa-p256-sha256",
            SignatureAlgorithm::Ed25519 => "ed25519",
        }
    }
}

impl fmt::Display for SignatureAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SignatureAlgorithm {
    type Err = SignError;

    /// Reads the manifest name back, so a manifest's algorithm can be checked against a key.
    fn from_str(text: &str) -> Result<Self, SignError> {
        [
            SignatureAlgorithm::RsaPkcs1Sha256,
            SignatureAlgorithm::EcdsaP256Sha256,
            SignatureAlgorithm::Ed25519,
        ]
        .into_iter()
        .find(|algorithm| algorithm.as_str() == text)
        .ok_or_else(|| SignError::UnknownSignatureAlgorithm {
            given: text.to_string(),
        })
    }
}

/// What `disburse keys generate --alg` makes. RSA keys are made with OpenSSL (CONTRACTS §3.3),
/// because ring cannot generate them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyAlgorithm {
    Ed25519,
    EcdsaP256,
}

impl KeyAlgorithm {
    /// The `--alg` value.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyAlgorithm::Ed25519 => "ed25519",
            KeyAlgorithm::EcdsaP256 => "ecdsa-p256",
        }
    }
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeyAlgorithm {
    type Err = SignError;

    fn from_str(text: &str) -> Result<Self, SignError> {
        match text {
            "ed25519" => Ok(KeyAlgorithm::Ed25519),
            "ecdsa-p256" => Ok(KeyAlgorithm::EcdsaP256),
            _ => Err(SignError::UnknownKeyAlgorithm {
                given: text.to_string(),
            }),
        }
    }
}

/// Lower-case hex SHA-256 of `bytes`: the file digests in `manifest.json`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    digest_hex(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref())
}

/// Lower-case hex of a digest. `hex::encode` builds its string a `char` at a time;
/// with a digest per imported row and per household a run reads, that was 1-2% of
/// import and of run creation (issue #7). Same text, filled in one buffer.
pub fn digest_hex(digest: &[u8]) -> String {
    let mut text = vec![0u8; digest.len() * 2];
    hex::encode_to_slice(digest, &mut text).expect("the buffer holds two digits a byte");
    String::from_utf8(text).expect("hex digits are ASCII")
}

/// Key id: the first 16 hex characters of SHA-256 over the public key's SPKI DER, so the
/// bank, the manifest and `openssl pkey -pubout | openssl pkey -pubin -outform DER` agree.
fn key_id_of_spki(spki_der: &[u8]) -> String {
    let mut digest_hex = sha256_hex(spki_der);
    digest_hex.truncate(16);
    digest_hex
}

/// Wraps DER in PEM with LF line endings and 64-column lines, as OpenSSL writes it.
fn encode_pem(label: &str, der: &[u8]) -> String {
    let config = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    pem::encode_config(&pem::Pem::new(label, der), config)
}

/// Returns the DER inside the first PEM block labelled `expected`. A block with another label
/// gets an error that says what the file is and how to convert it.
fn decode_pem(pem_text: &str, expected: &'static str) -> Result<Vec<u8>, SignError> {
    let blocks = pem::parse_many(pem_text).map_err(|error| SignError::NotPem {
        reason: error.to_string(),
    })?;
    if let Some(block) = blocks.iter().find(|block| block.tag() == expected) {
        return Ok(block.contents().to_vec());
    }
    let found = match blocks.first() {
        Some(block) => block.tag(),
        None => {
            return Err(SignError::NotPem {
                reason: "no PEM block found".to_string(),
            })
        }
    };
    if found == "ENCRYPTED PRIVATE KEY" {
        return Err(SignError::EncryptedPkcs8);
    }
    let hint = pem_label_hint(found);
    Err(SignError::WrongPemLabel {
        expected,
        found: found.to_string(),
        hint,
    })
}

/// Advice for the labels people most often hand over by mistake.
fn pem_label_hint(found: &str) -> &'static str {
    match found {
        "RSA PRIVATE KEY" | "EC PRIVATE KEY" => {
            " (not a PKCS#8 PRIVATE KEY PEM: convert it with \
             `openssl pkcs8 -topk8 -nocrypt -in OLD.pem -out NEW.pem`)"
        }
        "PRIVATE KEY" => {
            " (a private key: give its public half, from `openssl pkey -in KEY.pem -pubout`)"
        }
        "PUBLIC KEY" => " (a public key: signing needs the PKCS#8 private key)",
        "RSA PUBLIC KEY" => {
            " (a PKCS#1 public key: convert it with \
             `openssl rsa -RSAPublicKey_in -in OLD.pem -pubout`)"
        }
        _ => "",
    }
}

/// Why a key could not be read, written or used, or a signature not made or verified.
/// Ordered from the outside in: file, PEM, DER, key, operation.
#[derive(thiserror::Error, Debug)]
pub enum SignError {
    #[error("cannot read key file {path}: {source}")]
    KeyFileRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write key file {path}: {source}")]
    KeyFileWrite {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("key file {path} already exists; refusing to overwrite it")]
    KeyFileExists { path: PathBuf },
    #[error("key file {path} is not a regular file")]
    KeyFileNotRegular { path: PathBuf },
    #[error("key file {path} is {size_bytes} bytes; a key file is at most {size_bytes_max} bytes")]
    KeyFileTooLarge {
        path: PathBuf,
        size_bytes: u64,
        size_bytes_max: u64,
    },
    #[error(
        "key file {path} has mode {mode:04o}; it must not be readable or writable by group or \
         others (run `chmod 600` on it)"
    )]
    KeyFilePermissions { path: PathBuf, mode: u32 },
    #[error("key file {path} is owned by uid {file_uid}, not by this process's user (uid {process_uid})")]
    KeyFileOwner {
        path: PathBuf,
        file_uid: u32,
        process_uid: u32,
    },
    #[error("cannot tell this process's effective uid from /proc/self/status, so cannot check who owns key file {path}")]
    EffectiveUidUnknown { path: PathBuf },
    #[error("not a PEM file: {reason}")]
    NotPem { reason: String },
    #[error("expected a PEM block labelled {expected:?}, found {found:?}{hint}")]
    WrongPemLabel {
        expected: &'static str,
        found: String,
        hint: &'static str,
    },
    #[error(
        "encrypted PKCS#8 keys are not supported; store the key unencrypted \
         (`openssl pkcs8 -topk8 -nocrypt`) in a file of mode 0600"
    )]
    EncryptedPkcs8,
    #[error("unsupported key type (algorithm OID {oid}); use RSA, EC P-256 or Ed25519")]
    UnsupportedKeyType { oid: String },
    #[error("EC key on a curve other than P-256 (curve OID {oid}); only P-256 (prime256v1) is supported")]
    UnsupportedCurve { oid: String },
    #[error("malformed key: bad or missing {what}")]
    MalformedDer { what: &'static str },
    #[error("RSA key of {modulus_bits} bits; RSA keys must have 2048 to 8192 bits")]
    RsaKeySize { modulus_bits: usize },
    #[error("{algorithm} key rejected by ring: {reason}")]
    KeyRejected {
        algorithm: SignatureAlgorithm,
        reason: String,
    },
    #[error("unknown key algorithm {given:?}; expected \"ed25519\" or \"ecdsa-p256\"")]
    UnknownKeyAlgorithm { given: String },
    #[error(
        "unknown signature algorithm {given:?}; expected \"rsa-pkcs1-sha256\", \
         \"ecdsa-p256-sha256\" or \"ed25519\""
    )]
    UnknownSignatureAlgorithm { given: String },
    #[error("generating a {algorithm} key failed")]
    KeyGenerationFailed { algorithm: KeyAlgorithm },
    #[error("signing with {algorithm} key {key_id} failed")]
    SigningFailed {
        algorithm: SignatureAlgorithm,
        key_id: String,
    },
    #[error("signature does not verify with {algorithm} key {key_id}")]
    BadSignature {
        algorithm: SignatureAlgorithm,
        key_id: String,
    },
}
