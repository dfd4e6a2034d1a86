//! Approval signatures as they arrive over HTTP: base64 text, from `run approve
//! --offline` (ECDSA as DER) or from the browser's WebCrypto (ECDSA as raw `r || s`).
//! Pure.
//!
//! **Invariants:** what is stored is the form `VerifyingKey::verify` and export's
//! re-verification accept (ECDSA P-256 as ASN.1 DER, Ed25519 as 64 raw bytes); a raw
//! ECDSA signature is converted, never trusted as is: it is verified after conversion.

use base64::Engine as _;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("signature_base64 is not base64")]
    NotBase64,
    #[error("signature_base64 is empty or longer than 1024 bytes")]
    BadLength,
}

/// The signature bytes to verify and store for an approver whose key algorithm is
/// `algorithm` (`ApproverRecord::algorithm`).
pub fn decode_signature(text: &str, algorithm: &str) -> Result<Vec<u8>, SignatureError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|_| SignatureError::NotBase64)?;
    if bytes.is_empty() || bytes.len() > 1024 {
        return Err(SignatureError::BadLength);
    }
    if algorithm == "ecdsa-p256-sha256" && bytes.len() == 64 {
        return Ok(ecdsa_raw_to_der(&bytes[..32], &bytes[32..]));
    }
    Ok(bytes)
}

/// `SEQUENCE { INTEGER r, INTEGER s }` for 32-byte big-endian `r` and `s`.
pub fn ecdsa_raw_to_der(r: &[u8], s: &[u8]) -> Vec<u8> {
    let r = der_integer(r);
    let s = der_integer(s);
    let mut out = vec![
        0x30,
        u8::try_from(r.len() + s.len()).expect("two P-256 integers fit"),
    ];
    out.extend(r);
    out.extend(s);
    out
}

fn der_integer(bytes: &[u8]) -> Vec<u8> {
    let start = bytes
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(bytes.len() - 1);
    let trimmed = &bytes[start..];
    let pad = trimmed[0] & 0x80 != 0;
    let mut out = vec![
        0x02,
        u8::try_from(trimmed.len() + usize::from(pad)).expect("short"),
    ];
    if pad {
        out.push(0);
    }
    out.extend_from_slice(trimmed);
    out
}

pub fn encode(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};

    #[test]
    fn raw_webcrypto_ecdsa_verifies_after_conversion() {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let public = ring::signature::UnparsedPublicKey::new(
            &ring::signature::ECDSA_P256_SHA256_ASN1,
            pair.public_key().as_ref().to_vec(),
        );
        for round in 0..20 {
            let message = format!("message {round}");
            let raw = pair.sign(&rng, message.as_bytes()).unwrap();
            let der = decode_signature(&encode(raw.as_ref()), "ecdsa-p256-sha256").unwrap();
            public.verify(message.as_bytes(), &der).unwrap();
        }
    }

    #[test]
    fn leading_zeros_and_high_bits() {
        assert_eq!(der_integer(&[0, 0, 1]), [2, 1, 1]);
        assert_eq!(der_integer(&[0x80, 1]), [2, 3, 0, 0x80, 1]);
        assert_eq!(der_integer(&[0, 0]), [2, 1, 0]);
        assert_eq!(
            decode_signature("!!", "ed25519"),
            Err(SignatureError::NotBase64)
        );
        assert_eq!(
            decode_signature("", "ed25519"),
            Err(SignatureError::BadLength)
        );
        assert_eq!(
            decode_signature(&encode(&[7; 64]), "ed25519").unwrap(),
            [7; 64]
        );
    }
}
