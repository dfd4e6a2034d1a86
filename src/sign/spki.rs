//! SubjectPublicKeyInfo (RFC 5280) and AlgorithmIdentifier: building the public key DER that
//! OpenSSL reads, parsing it back, and naming the algorithm a PKCS#8 or SPKI header declares.

use super::der::{self, DerReader};
use super::{SignError, SignatureAlgorithm};

/// RSA moduli ring verifies with `RSA_PKCS1_2048_8192_SHA256`; checked at parse time so a
/// weak key is refused when it is registered, not when the first signature arrives.
const RSA_MODULUS_BITS_MIN: usize = 2048;
const RSA_MODULUS_BITS_MAX: usize = 8192;
const ED25519_PUBLIC_KEY_BYTES: usize = 32;
const P256_PUBLIC_KEY_BYTES: usize = 65;

/// The DER content of the AlgorithmIdentifier SEQUENCE for each algorithm, as OpenSSL writes it.
fn algorithm_identifier_content(algorithm: SignatureAlgorithm) -> Vec<u8> {
    match algorithm {
        SignatureAlgorithm::RsaPkcs1Sha256 => {
            let mut content = der::write(der::TAG_OID, der::OID_RSA_ENCRYPTION);
            content.extend(der::write(der::TAG_NULL, &[]));
            content
        }
        SignatureAlgorithm::EcdsaP256Sha256 => {
            let mut content = der::write(der::TAG_OID, der::OID_EC_PUBLIC_KEY);
            content.extend(der::write(der::TAG_OID, der::OID_PRIME256V1));
            content
        }
        SignatureAlgorithm::Ed25519 => der::write(der::TAG_OID, der::OID_ED25519),
    }
}

/// Builds SPKI DER from ring's public key bytes: the 32-byte Ed25519 key, the 65-byte
/// uncompressed P-256 point, or the PKCS#1 RSAPublicKey DER.
pub(crate) fn build_spki_der(algorithm: SignatureAlgorithm, public_key: &[u8]) -> Vec<u8> {
    let algorithm_identifier =
        der::write(der::TAG_SEQUENCE, &algorithm_identifier_content(algorithm));
    // A BIT STRING's first content byte counts unused bits in the last byte: none here.
    let mut bits = Vec::with_capacity(public_key.len() + 1);
    bits.push(0);
    bits.extend_from_slice(public_key);
    let mut content = algorithm_identifier;
    content.extend(der::write(der::TAG_BIT_STRING, &bits));
    der::write(der::TAG_SEQUENCE, &content)
}

/// Parses SPKI DER into the algorithm and the key bytes ring's verifiers take.
pub(crate) fn parse_spki_der(spki_der: &[u8]) -> Result<(SignatureAlgorithm, Vec<u8>), SignError> {
    let malformed = |what| SignError::MalformedDer { what };
    let mut outer = DerReader::new(spki_der);
    let spki = outer
        .read(der::TAG_SEQUENCE)
        .ok_or(malformed("SubjectPublicKeyInfo SEQUENCE"))?;
    if !outer.is_empty() {
        return Err(malformed("bytes after SubjectPublicKeyInfo"));
    }
    let mut fields = DerReader::new(spki);
    let algorithm_identifier = fields
        .read(der::TAG_SEQUENCE)
        .ok_or(malformed("AlgorithmIdentifier"))?;
    let algorithm = parse_algorithm_identifier(algorithm_identifier)?;
    let bits = fields
        .read(der::TAG_BIT_STRING)
        .ok_or(malformed("subjectPublicKey BIT STRING"))?;
    if !fields.is_empty() {
        return Err(malformed("bytes after subjectPublicKey"));
    }
    let public_key = match bits.split_first() {
        Some((0, key)) => key,
        _ => return Err(malformed("subjectPublicKey BIT STRING with unused bits")),
    };
    check_public_key(algorithm, public_key)?;
    Ok((algorithm, public_key.to_vec()))
}

/// Checks the key's size up front so a bad key is named when loaded, not at first verify.
fn check_public_key(algorithm: SignatureAlgorithm, public_key: &[u8]) -> Result<(), SignError> {
    match algorithm {
        SignatureAlgorithm::Ed25519 if public_key.len() != ED25519_PUBLIC_KEY_BYTES => {
            Err(SignError::MalformedDer {
                what: "Ed25519 public key (must be 32 bytes)",
            })
        }
        // ring reads only uncompressed points (0x04 || X || Y).
        SignatureAlgorithm::EcdsaP256Sha256
            if public_key.len() != P256_PUBLIC_KEY_BYTES || public_key.first() != Some(&0x04) =>
        {
            Err(SignError::MalformedDer {
                what: "P-256 public key (must be an uncompressed point)",
            })
        }
        SignatureAlgorithm::RsaPkcs1Sha256 => {
            let modulus_bits = rsa_modulus_bits(public_key).ok_or(SignError::MalformedDer {
                what: "RSAPublicKey",
            })?;
            if (RSA_MODULUS_BITS_MIN..=RSA_MODULUS_BITS_MAX).contains(&modulus_bits) {
                Ok(())
            } else {
                Err(SignError::RsaKeySize { modulus_bits })
            }
        }
        _ => Ok(()),
    }
}

/// The bit length of the modulus in a PKCS#1 RSAPublicKey SEQUENCE { n INTEGER, e INTEGER }.
fn rsa_modulus_bits(rsa_public_key_der: &[u8]) -> Option<usize> {
    let mut outer = DerReader::new(rsa_public_key_der);
    let mut fields = DerReader::new(outer.read(der::TAG_SEQUENCE)?);
    let modulus = fields.read(der::TAG_INTEGER)?;
    fields.read(der::TAG_INTEGER)?;
    if !outer.is_empty() || !fields.is_empty() {
        return None;
    }
    let significant = &modulus[modulus.iter().take_while(|&&b| b == 0).count()..];
    let (&top, _) = significant.split_first()?;
    let top_bits = 8 - top.leading_zeros() as usize;
    Some((significant.len() - 1) * 8 + top_bits)
}

/// Names the algorithm in an AlgorithmIdentifier's content (shared by PKCS#8 and SPKI).
pub(crate) fn parse_algorithm_identifier(content: &[u8]) -> Result<SignatureAlgorithm, SignError> {
    let mut fields = DerReader::new(content);
    let oid = fields.read(der::TAG_OID).ok_or(SignError::MalformedDer {
        what: "AlgorithmIdentifier OID",
    })?;
    let algorithm = match oid {
        der::OID_RSA_ENCRYPTION => {
            // RFC 3279 requires NULL parameters; some writers omit them, which is harmless.
            if fields.peek_tag() == Some(der::TAG_NULL) {
                fields.read(der::TAG_NULL);
            }
            SignatureAlgorithm::RsaPkcs1Sha256
        }
        der::OID_EC_PUBLIC_KEY => {
            let curve = fields.read(der::TAG_OID).ok_or(SignError::MalformedDer {
                what: "EC named curve OID",
            })?;
            if curve != der::OID_PRIME256V1 {
                return Err(SignError::UnsupportedCurve {
                    oid: dotted_or_hex(curve),
                });
            }
            SignatureAlgorithm::EcdsaP256Sha256
        }
        der::OID_ED25519 => SignatureAlgorithm::Ed25519,
        other => {
            return Err(SignError::UnsupportedKeyType {
                oid: dotted_or_hex(other),
            })
        }
    };
    if !fields.is_empty() {
        return Err(SignError::MalformedDer {
            what: "AlgorithmIdentifier parameters",
        });
    }
    Ok(algorithm)
}

fn dotted_or_hex(oid: &[u8]) -> String {
    der::oid_to_dotted(oid).unwrap_or_else(|| format!("malformed OID {}", hex::encode(oid)))
}
