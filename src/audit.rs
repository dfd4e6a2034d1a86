//! The audit log's hash chain (P14, P16): each entry's hash covers its fields and the
//! previous entry's hash, so an edited, removed or reordered row breaks the chain.
//! Pure: the store appends and reads rows; this module computes and verifies.

use ring::digest::{digest, SHA256};

/// The hash the first entry chains to.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One audit entry as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    pub seq: i64,
    /// RFC 3339 UTC.
    pub at: String,
    pub actor: String,
    /// e.g. `import.roster`, `run.create`, `run.approve`, `run.export`.
    pub action: String,
    /// What the action was about: a file hash, a run id.
    pub object: String,
    /// Masked detail (no personal data, P13).
    pub detail: String,
    pub prev_hash: String,
    pub hash: String,
}

/// The hash of an entry's content chained to `prev_hash`. Fields are length-prefixed so
/// that moving text between fields changes the hash.
pub fn entry_hash(
    seq: i64,
    at: &str,
    actor: &str,
    action: &str,
    object: &str,
    detail: &str,
    prev_hash: &str,
) -> String {
    let mut material = Vec::new();
    for field in [
        seq.to_string().as_str(),
        at,
        actor,
        action,
        object,
        detail,
        prev_hash,
    ] {
        material.extend_from_slice(&(field.len() as u64).to_be_bytes());
        material.extend_from_slice(field.as_bytes());
    }
    hex::encode(digest(&SHA256, &material))
}

/// Where the chain first breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    #[error("audit entry {seq}: sequence gap (expected {expected})")]
    SequenceGap { seq: i64, expected: i64 },
    #[error("audit entry {seq}: prev_hash does not match the entry before it")]
    BrokenLink { seq: i64 },
    #[error("audit entry {seq}: content does not match its hash (edited?)")]
    ContentChanged { seq: i64 },
}

/// Checks entries in `seq` order, carrying the last hash. Feed every entry, in order.
#[derive(Debug)]
pub struct ChainVerifier {
    expected_seq: i64,
    last_hash: String,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        ChainVerifier {
            expected_seq: 1,
            last_hash: GENESIS_HASH.to_string(),
        }
    }
}

impl ChainVerifier {
    pub fn check(&mut self, entry: &AuditEntry) -> Result<(), ChainError> {
        if entry.seq != self.expected_seq {
            return Err(ChainError::SequenceGap {
                seq: entry.seq,
                expected: self.expected_seq,
            });
        }
        if entry.prev_hash != self.last_hash {
            return Err(ChainError::BrokenLink { seq: entry.seq });
        }
        let recomputed = entry_hash(
            entry.seq,
            &entry.at,
            &entry.actor,
            &entry.action,
            &entry.object,
            &entry.detail,
            &entry.prev_hash,
        );
        if recomputed != entry.hash {
            return Err(ChainError::ContentChanged { seq: entry.seq });
        }
        self.expected_seq += 1;
        self.last_hash = entry.hash.clone();
        Ok(())
    }

    pub fn entries_checked(&self) -> i64 {
        self.expected_seq - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(count: i64) -> Vec<AuditEntry> {
        let mut prev = GENESIS_HASH.to_string();
        (1..=count)
            .map(|seq| {
                let hash = entry_hash(seq, "t", "alice", "run.create", "R1", "d", &prev);
                let entry = AuditEntry {
                    seq,
                    at: "t".into(),
                    actor: "alice".into(),
                    action: "run.create".into(),
                    object: "R1".into(),
                    detail: "d".into(),
                    prev_hash: prev.clone(),
                    hash: hash.clone(),
                };
                prev = hash;
                entry
            })
            .collect()
    }

    fn verify(entries: &[AuditEntry]) -> Result<(), ChainError> {
        let mut verifier = ChainVerifier::default();
        entries.iter().try_for_each(|entry| verifier.check(entry))
    }

    #[test]
    fn detects_edits_gaps_and_relinks() {
        let good = chain(4);
        assert_eq!(verify(&good), Ok(()));
        let mut edited = good.clone();
        edited[2].actor = "mallory".into();
        assert_eq!(verify(&edited), Err(ChainError::ContentChanged { seq: 3 }));
        let mut removed = good.clone();
        removed.remove(1);
        assert_eq!(
            verify(&removed),
            Err(ChainError::SequenceGap {
                seq: 3,
                expected: 2
            })
        );
        let mut relinked = good;
        relinked[1].prev_hash = GENESIS_HASH.into();
        assert_eq!(verify(&relinked), Err(ChainError::BrokenLink { seq: 2 }));
    }
}
