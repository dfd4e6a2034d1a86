//! Key files on disk: generating key pairs, writing them new at mode 0600, and loading a
//! private key only from a file no one but its owner (this process's user) can read.

use std::ffi::OsString;
use std::fmt;
use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};

use super::{encode_pem, KeyAlgorithm, SignError, SigningKey};

/// An RSA-8192 PKCS#8 PEM is under 7 KiB; anything far larger is not a key file.
const KEY_FILE_BYTES_MAX: u64 = 64 * 1024;
const PRIVATE_KEY_FILE_MODE: u32 = 0o600;
const PUBLIC_KEY_FILE_MODE: u32 = 0o644;
/// Permission bits for group and others: any of them set makes a private key file unsafe.
const GROUP_OTHER_MODE_BITS: u32 = 0o077;

/// A freshly generated key pair, as PEM text ready to write.
pub struct GeneratedKeyPair {
    pub private_pkcs8_pem: String,
    pub public_spki_pem: String,
    pub key_id: String,
}

/// Omits the private key so a generated pair can be logged by accident without harm.
impl fmt::Debug for GeneratedKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeneratedKeyPair")
            .field("private_pkcs8_pem", &"<redacted>")
            .field("public_spki_pem", &self.public_spki_pem)
            .field("key_id", &self.key_id)
            .finish()
    }
}

/// Generates a key pair with ring's system random source.
pub fn generate_key_pair(algorithm: KeyAlgorithm) -> Result<GeneratedKeyPair, SignError> {
    let rng = SystemRandom::new();
    let failed = |_| SignError::KeyGenerationFailed { algorithm };
    let pkcs8_der = match algorithm {
        KeyAlgorithm::Ed25519 => ed25519_pkcs8_v1(&rng).map_err(failed)?,
        KeyAlgorithm::EcdsaP256 => {
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
                .map_err(failed)?
                .as_ref()
                .to_vec()
        }
    };
    // Derive the public half through the same path a key file takes, so both always agree.
    let signing_key = SigningKey::from_pkcs8_der(&pkcs8_der)?;
    Ok(GeneratedKeyPair {
        private_pkcs8_pem: encode_pem("PRIVATE KEY", &pkcs8_der),
        public_spki_pem: signing_key.public_key_spki_pem(),
        key_id: signing_key.key_id(),
    })
}

/// PKCS#8 v1 (RFC 8410) prefix for an Ed25519 key: SEQUENCE { INTEGER 0, AlgorithmIdentifier
/// { 1.3.101.112 }, OCTET STRING { OCTET STRING (32 bytes) } }, followed by the seed.
const ED25519_PKCS8_V1_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];
const ED25519_SEED_BYTES: usize = 32;

/// A new Ed25519 key as PKCS#8 v1, the form `openssl genpkey` writes. ring's own
/// `generate_pkcs8` writes v2 with the public key in a form OpenSSL 3.0 cannot read, and
/// the bank and our operators must be able to inspect our keys with OpenSSL.
fn ed25519_pkcs8_v1(rng: &SystemRandom) -> Result<Vec<u8>, ring::error::Unspecified> {
    let mut seed = [0u8; ED25519_SEED_BYTES];
    rng.fill(&mut seed)?;
    let mut pkcs8_der = Vec::with_capacity(ED25519_PKCS8_V1_PREFIX.len() + ED25519_SEED_BYTES);
    pkcs8_der.extend_from_slice(&ED25519_PKCS8_V1_PREFIX);
    pkcs8_der.extend_from_slice(&seed);
    Ok(pkcs8_der)
}

/// Where the public half of the key at `private_key_path` goes: the full name + ".pub.pem".
pub fn public_key_path(private_key_path: &Path) -> PathBuf {
    let mut name = OsString::from(private_key_path.as_os_str());
    name.push(".pub.pem");
    PathBuf::from(name)
}

/// Generates a key pair and writes it: the private key to `path` (new, mode 0600) and the
/// public key to `<path>.pub.pem`. Never overwrites either file.
pub fn write_new_key_pair(
    path: &Path,
    algorithm: KeyAlgorithm,
) -> Result<GeneratedKeyPair, SignError> {
    let public_path = public_key_path(path);
    // Checked first so the usual clash leaves no half-written pair; create_new still guards
    // against a file appearing in between.
    if fs::symlink_metadata(&public_path).is_ok() {
        return Err(SignError::KeyFileExists { path: public_path });
    }
    let key_pair = generate_key_pair(algorithm)?;
    write_new_file(
        path,
        key_pair.private_pkcs8_pem.as_bytes(),
        PRIVATE_KEY_FILE_MODE,
    )?;
    let public_written = write_new_file(
        &public_path,
        key_pair.public_spki_pem.as_bytes(),
        PUBLIC_KEY_FILE_MODE,
    );
    if let Err(error) = public_written {
        // A private key without its public half is useless and confusing; we created it a
        // moment ago, so remove it. If removal fails too, the write error is the one to report.
        let _removal = fs::remove_file(path);
        return Err(error);
    }
    sync_parent_directory(path)?;
    Ok(key_pair)
}

/// Creates `path` (failing if it exists) with `mode`, writes `bytes`, and fsyncs it.
fn write_new_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), SignError> {
    let write_error = |source: io::Error| match source.kind() {
        io::ErrorKind::AlreadyExists => SignError::KeyFileExists {
            path: path.to_path_buf(),
        },
        _ => SignError::KeyFileWrite {
            path: path.to_path_buf(),
            source,
        },
    };
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(write_error)?;
    file.write_all(bytes).map_err(write_error)?;
    file.sync_all().map_err(write_error)
}

/// Fsyncs the directory so the new names survive a crash, not only the file contents.
fn sync_parent_directory(path: &Path) -> Result<(), SignError> {
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    File::open(directory)
        .and_then(|handle| handle.sync_all())
        .map_err(|source| SignError::KeyFileWrite {
            path: directory.to_path_buf(),
            source,
        })
}

/// Opens the file once and checks the opened file's metadata, so the file checked is the
/// file read even if the path is swapped in between.
pub(crate) fn load_signing_key(path: &Path) -> Result<SigningKey, SignError> {
    let read_error = |source| SignError::KeyFileRead {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(read_error)?;
    let metadata = file.metadata().map_err(read_error)?;
    check_key_file(path, &metadata)?;
    let mut pem_text = String::new();
    file.take(KEY_FILE_BYTES_MAX + 1)
        .read_to_string(&mut pem_text)
        .map_err(read_error)?;
    if pem_text.len() as u64 > KEY_FILE_BYTES_MAX {
        return Err(too_large(path, pem_text.len() as u64));
    }
    SigningKey::from_pkcs8_pem(&pem_text)
}

/// Refuses what OpenSSH refuses: a key file others may read or write, or one owned by
/// someone else. Also refuses non-files and oversized files.
fn check_key_file(path: &Path, metadata: &Metadata) -> Result<(), SignError> {
    if !metadata.is_file() {
        return Err(SignError::KeyFileNotRegular {
            path: path.to_path_buf(),
        });
    }
    if metadata.len() > KEY_FILE_BYTES_MAX {
        return Err(too_large(path, metadata.len()));
    }
    let mode = metadata.mode() & 0o7777;
    if mode & GROUP_OTHER_MODE_BITS != 0 {
        return Err(SignError::KeyFilePermissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    let process_uid = effective_uid().ok_or_else(|| SignError::EffectiveUidUnknown {
        path: path.to_path_buf(),
    })?;
    if metadata.uid() != process_uid {
        return Err(SignError::KeyFileOwner {
            path: path.to_path_buf(),
            file_uid: metadata.uid(),
            process_uid,
        });
    }
    Ok(())
}

fn too_large(path: &Path, size_bytes: u64) -> SignError {
    SignError::KeyFileTooLarge {
        path: path.to_path_buf(),
        size_bytes,
        size_bytes_max: KEY_FILE_BYTES_MAX,
    }
}

/// The effective uid from /proc/self/status ("Uid: real effective saved fs"); the crate
/// forbids unsafe code, so `libc::geteuid` is out. `None` if it cannot be read, and the
/// caller then refuses the key (fail closed).
fn effective_uid() -> Option<u32> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    parse_effective_uid(&status)
}

fn parse_effective_uid(proc_status: &str) -> Option<u32> {
    let uid_line = proc_status.lines().find(|line| line.starts_with("Uid:"))?;
    uid_line.split_whitespace().nth(2)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_effective_uid_takes_the_second_number() {
        let status = "Name:\tdisburse\nUid:\t1000\t1001\t1002\t1003\nGid:\t5\t5\t5\t5\n";
        assert_eq!(parse_effective_uid(status), Some(1001));
        assert_eq!(parse_effective_uid("Uid:\t1000\n"), None);
        assert_eq!(parse_effective_uid("Name:\tx\n"), None);
    }

    #[test]
    fn public_key_path_appends_to_the_full_name() {
        assert_eq!(
            public_key_path(Path::new("/k/sign.pem")),
            PathBuf::from("/k/sign.pem.pub.pem")
        );
    }
}
