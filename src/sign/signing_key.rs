//! A private signing key read from PKCS#8; the signature algorithm follows the key.

use std::fmt;
use std::path::Path;

use ring::error::KeyRejected;
use ring::rand::SystemRandom;
use ring::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair, ECDSA_P256_SHA256_ASN1_SIGNING,
    RSA_PKCS1_SHA256,
};

use super::der::{self, DerReader};
use super::spki::{build_spki_der, parse_algorithm_identifier};
use super::{decode_pem, encode_pem, key_file, key_id_of_spki, SignError, SignatureAlgorithm};

enum KeyPairByAlgorithm {
    Rsa(RsaKeyPair),
    EcdsaP256(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

/// A loaded private key with its public half precomputed as SPKI DER and key id.
pub struct SigningKey {
    key_pair: KeyPairByAlgorithm,
    spki_der: Vec<u8>,
    key_id: String,
}

/// Shows the algorithm and key id only: a key must never reach a log through `{:?}`.
impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("algorithm", &self.algorithm().as_str())
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Reads a `-----BEGIN PRIVATE KEY-----` (PKCS#8) PEM holding an RSA, EC P-256 or
    /// Ed25519 key.
    pub fn from_pkcs8_pem(pem_text: &str) -> Result<SigningKey, SignError> {
        let pkcs8_der = decode_pem(pem_text, "PRIVATE KEY")?;
        SigningKey::from_pkcs8_der(&pkcs8_der)
    }

    /// Reads PKCS#8 DER; the AlgorithmIdentifier decides which ring parser gets the bytes,
    /// so an unsupported key gets a message naming its type rather than ring's generic one.
    pub fn from_pkcs8_der(pkcs8_der: &[u8]) -> Result<SigningKey, SignError> {
        let algorithm = pkcs8_algorithm(pkcs8_der)?;
        let rejected = |error: KeyRejected| SignError::KeyRejected {
            algorithm,
            reason: error.to_string(),
        };
        let (key_pair, public_key) = match algorithm {
            SignatureAlgorithm::RsaPkcs1Sha256 => {
                let key_pair = RsaKeyPair::from_pkcs8(pkcs8_der).map_err(rejected)?;
                let public_key = key_pair.public().as_ref().to_vec();
                (KeyPairByAlgorithm::Rsa(key_pair), public_key)
            }
            SignatureAlgorithm::EcdsaP256Sha256 => {
                let key_pair = EcdsaKeyPair::from_pkcs8(
                    &ECDSA_P256_SHA256_ASN1_SIGNING,
                    pkcs8_der,
                    &SystemRandom::new(),
                )
                .map_err(rejected)?;
                let public_key = key_pair.public_key().as_ref().to_vec();
                (KeyPairByAlgorithm::EcdsaP256(key_pair), public_key)
            }
            SignatureAlgorithm::Ed25519 => {
                // "maybe_unchecked" accepts OpenSSL's v1 PKCS#8, which carries no public key;
                // when a v2 file does carry one, ring still checks it matches the seed.
                let key_pair =
                    Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8_der).map_err(rejected)?;
                let public_key = key_pair.public_key().as_ref().to_vec();
                (KeyPairByAlgorithm::Ed25519(key_pair), public_key)
            }
        };
        let spki_der = build_spki_der(algorithm, &public_key);
        let key_id = key_id_of_spki(&spki_der);
        Ok(SigningKey {
            key_pair,
            spki_der,
            key_id,
        })
    }

    /// Reads a key file after checking it is private to this user (mode 0600 or stricter).
    pub fn load(path: &Path) -> Result<SigningKey, SignError> {
        key_file::load_signing_key(path)
    }

    pub fn algorithm(&self) -> SignatureAlgorithm {
        match self.key_pair {
            KeyPairByAlgorithm::Rsa(_) => SignatureAlgorithm::RsaPkcs1Sha256,
            KeyPairByAlgorithm::EcdsaP256(_) => SignatureAlgorithm::EcdsaP256Sha256,
            KeyPairByAlgorithm::Ed25519(_) => SignatureAlgorithm::Ed25519,
        }
    }

    /// First 16 hex characters of SHA-256 over the public key's SPKI DER.
    pub fn key_id(&self) -> String {
        self.key_id.clone()
    }

    /// The public key as SPKI DER.
    pub fn public_key_spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// The public key as `-----BEGIN PUBLIC KEY-----` PEM, byte for byte what
    /// `openssl pkey -pubout` prints.
    pub fn public_key_spki_pem(&self) -> String {
        encode_pem("PUBLIC KEY", &self.spki_der)
    }

    /// Signs `message`: RSA PKCS#1 v1.5 SHA-256, ECDSA P-256 SHA-256 as ASN.1 DER, or the
    /// raw 64-byte Ed25519 signature.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        let failed = |_| SignError::SigningFailed {
            algorithm: self.algorithm(),
            key_id: self.key_id(),
        };
        match &self.key_pair {
            KeyPairByAlgorithm::Rsa(key_pair) => {
                let mut signature = vec![0; key_pair.public().modulus_len()];
                key_pair
                    .sign(
                        &RSA_PKCS1_SHA256,
                        &SystemRandom::new(),
                        message,
                        &mut signature,
                    )
                    .map_err(failed)?;
                Ok(signature)
            }
            KeyPairByAlgorithm::EcdsaP256(key_pair) => key_pair
                .sign(&SystemRandom::new(), message)
                .map(|signature| signature.as_ref().to_vec())
                .map_err(failed),
            KeyPairByAlgorithm::Ed25519(key_pair) => Ok(key_pair.sign(message).as_ref().to_vec()),
        }
    }
}

/// Reads the algorithm from PrivateKeyInfo ::= SEQUENCE { version, AlgorithmIdentifier, .. }.
fn pkcs8_algorithm(pkcs8_der: &[u8]) -> Result<SignatureAlgorithm, SignError> {
    let malformed = |what| SignError::MalformedDer { what };
    let mut outer = DerReader::new(pkcs8_der);
    let private_key_info = outer
        .read(der::TAG_SEQUENCE)
        .ok_or(malformed("PKCS#8 PrivateKeyInfo SEQUENCE"))?;
    let mut fields = DerReader::new(private_key_info);
    fields
        .read(der::TAG_INTEGER)
        .ok_or(malformed("PKCS#8 version"))?;
    let algorithm_identifier = fields
        .read(der::TAG_SEQUENCE)
        .ok_or(malformed("PKCS#8 AlgorithmIdentifier"))?;
    parse_algorithm_identifier(algorithm_identifier)
}
