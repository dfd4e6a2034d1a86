//! `manifest.json`, PURE: what sits beside the bank files (CONTRACTS §3.3). No wall-clock
//! time goes in, so exporting the same run twice gives the same manifest.

use crate::domain::money::Fen;
use crate::sign::SignatureAlgorithm;
use serde::Serialize;

/// One file's entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ManifestFile {
    pub file: String,
    pub signature_file: String,
    pub batch_id: String,
    pub layout: String,
    pub bank_prefix: String,
    pub payer_account: String,
    pub pay_date: String,
    pub sha256: String,
    pub record_count: u64,
    /// Yuan with two decimals, e.g. `"123.45"`.
    pub total: String,
    pub total_fen: i64,
    pub signature_algorithm: String,
    pub key_id: String,
}

/// The manifest: the run it came from, every file sorted by name, and the sums.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Manifest {
    pub format: &'static str,
    pub run_id: String,
    pub run_digest: String,
    pub month: String,
    pub file_count: usize,
    pub record_count: u64,
    pub total: String,
    pub total_fen: i64,
    pub files: Vec<ManifestFile>,
}

impl Manifest {
    /// Sorts the files and sums them.
    pub fn new(
        run_id: &str,
        run_digest: &str,
        month: &str,
        mut files: Vec<ManifestFile>,
    ) -> Manifest {
        files.sort_by(|a, b| a.file.cmp(&b.file));
        let total: Fen = files.iter().map(|f| Fen::new(f.total_fen)).sum();
        Manifest {
            format: "disburse-manifest-v1",
            run_id: run_id.to_string(),
            run_digest: run_digest.to_string(),
            month: month.to_string(),
            file_count: files.len(),
            record_count: files.iter().map(|f| f.record_count).sum(),
            total: total.to_yuan_string(),
            total_fen: total.as_i64(),
            files,
        }
    }

    /// Pretty JSON with a final newline.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).expect("a manifest always serialises");
        bytes.push(b'\n');
        bytes
    }
}

/// The OpenSSL command a bank runs to check `file` against its `.sig` (CONTRACTS §3.3).
pub fn openssl_verify_command(
    algorithm: SignatureAlgorithm,
    public_key: &str,
    file: &str,
) -> String {
    match algorithm {
        SignatureAlgorithm::Ed25519 => {
            format!("openssl pkeyutl -verify -pubin -inkey {public_key} -rawin -in {file} -sigfile {file}.sig")
        }
        SignatureAlgorithm::RsaPkcs1Sha256 | SignatureAlgorithm::EcdsaP256Sha256 => {
            format!("openssl dgst -sha256 -verify {public_key} -signature {file}.sig {file}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openssl_commands_are_the_contract_ones() {
        assert_eq!(
            openssl_verify_command(SignatureAlgorithm::Ed25519, "pub.pem", "F"),
            "openssl pkeyutl -verify -pubin -inkey pub.pem -rawin -in F -sigfile F.sig"
        );
        assert_eq!(
            openssl_verify_command(SignatureAlgorithm::RsaPkcs1Sha256, "pub.pem", "F"),
            "openssl dgst -sha256 -verify pub.pem -signature F.sig F"
        );
    }

    fn file(name: &str, fen: i64) -> ManifestFile {
        ManifestFile {
            file: name.into(),
            signature_file: format!("{name}.sig"),
            batch_id: name[..12].into(),
            layout: "bank-pipe-gbk".into(),
            bank_prefix: "".into(),
            payer_account: "1".into(),
            pay_date: "2026-11-20".into(),
            sha256: "00".into(),
            record_count: 2,
            total: Fen::new(fen).to_yuan_string(),
            total_fen: fen,
            signature_algorithm: "ed25519".into(),
            key_id: "k".into(),
        }
    }

    #[test]
    fn files_sorted_and_summed() {
        let manifest = Manifest::new(
            "R1",
            "d",
            "2026-11",
            vec![
                file("B000001-0002.txt", 5),
                file("B000001-0001.xml", 12_345),
            ],
        );
        assert_eq!(manifest.files[0].file, "B000001-0001.xml");
        assert_eq!(
            (
                manifest.record_count,
                manifest.total.as_str(),
                manifest.total_fen
            ),
            (4, "123.50", 12_350)
        );
        let text = String::from_utf8(manifest.to_bytes()).unwrap();
        assert!(
            text.contains("\"total\": \"123.50\"") && text.ends_with("}\n"),
            "{text}"
        );
    }
}
