//! A public key read from SPKI PEM, used to check detached signatures and approvals.

use std::fmt;

use ring::signature::{
    UnparsedPublicKey, VerificationAlgorithm, ECDSA_P256_SHA256_ASN1, ED25519,
    RSA_PKCS1_2048_8192_SHA256,
};

use super::spki::parse_spki_der;
use super::{decode_pem, encode_pem, key_id_of_spki, SignError, SignatureAlgorithm};

/// A public key: its algorithm, the raw key bytes ring verifies with, and its SPKI DER.
#[derive(Clone)]
pub struct VerifyingKey {
    algorithm: SignatureAlgorithm,
    public_key: Vec<u8>,
    spki_der: Vec<u8>,
    key_id: String,
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("algorithm", &self.algorithm.as_str())
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl VerifyingKey {
    /// Reads a `-----BEGIN PUBLIC KEY-----` (SPKI) PEM holding an RSA, EC P-256 or Ed25519 key.
    pub fn from_spki_pem(pem_text: &str) -> Result<VerifyingKey, SignError> {
        let spki_der = decode_pem(pem_text, "PUBLIC KEY")?;
        VerifyingKey::from_spki_der(&spki_der)
    }

    /// Reads SPKI DER.
    pub fn from_spki_der(spki_der: &[u8]) -> Result<VerifyingKey, SignError> {
        let (algorithm, public_key) = parse_spki_der(spki_der)?;
        Ok(VerifyingKey {
            algorithm,
            public_key,
            spki_der: spki_der.to_vec(),
            key_id: key_id_of_spki(spki_der),
        })
    }

    pub fn algorithm(&self) -> SignatureAlgorithm {
        self.algorithm
    }

    /// First 16 hex characters of SHA-256 over the SPKI DER; equal to the signing key's.
    pub fn key_id(&self) -> String {
        self.key_id.clone()
    }

    /// The key as `-----BEGIN PUBLIC KEY-----` PEM.
    pub fn spki_pem(&self) -> String {
        encode_pem("PUBLIC KEY", &self.spki_der)
    }

    /// Checks `signature` over the exact bytes of `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), SignError> {
        let verification: &'static dyn VerificationAlgorithm = match self.algorithm {
            SignatureAlgorithm::RsaPkcs1Sha256 => &RSA_PKCS1_2048_8192_SHA256,
            SignatureAlgorithm::EcdsaP256Sha256 => &ECDSA_P256_SHA256_ASN1,
            SignatureAlgorithm::Ed25519 => &ED25519,
        };
        UnparsedPublicKey::new(verification, &self.public_key)
            .verify(message, signature)
            .map_err(|_| SignError::BadSignature {
                algorithm: self.algorithm,
                key_id: self.key_id(),
            })
    }
}
