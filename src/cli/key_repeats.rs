//! Import pass 1's check that no key appears twice in one file, in memory that does
//! not grow with the file: up to `KEYS_IN_MEMORY_MAX` keys in a hash table, beyond
//! that spilled by hash into anonymous temporary files and checked one part at a time.
//!
//! Edge code: it writes temporary files (deleted by the system when closed).

use std::collections::hash_map::{Entry, RandomState};
use std::collections::HashMap;
use std::hash::BuildHasher as _;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};

/// Why the check could not go on.
#[derive(Debug, thiserror::Error)]
pub enum RepeatCheckError {
    #[error("the file has more than {IMPORT_ROWS_MAX} rows, the most one import takes")]
    TooManyRows,
    #[error("the repeat check's temporary file failed: {0}")]
    TemporaryFile(#[from] io::Error),
}

/// Keys held in the hash table before the check spills to disk. About 52 MiB of table
/// at this size (24 bytes an entry, with the table's spare room); a city's roster stays
/// below it and never touches the disk.
pub const KEYS_IN_MEMORY_MAX: usize = 1_000_000;

/// Parts a spilled check is split into, by the key's hash. Each part is checked with
/// its own table, so a 20M-row file needs about 20M / 128 = 160k entries at a time.
const SPILL_PARTS: usize = 128;

/// The most rows one import file may have: beyond it even one part's table would
/// outgrow the memory budget (issue #7: ≤ 256 MiB at any size). Four national months.
pub const IMPORT_ROWS_MAX: u64 = 100_000_000;

/// Write buffer per part: 128 parts × 16 KiB = 2 MiB.
const SPILL_BUFFER_BYTES: usize = 16 * 1024;

/// A key repeated in the file: the line it is repeated on, the line it was first on,
/// and the key as it may be shown (masked).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Repeat {
    pub line: u64,
    pub first_line: u64,
    pub key_shown: String,
}

/// A key's 128-bit keyed hash. The two SipHash keys are random per process, so no
/// file can be crafted to collide; by chance two of n keys collide with probability
/// about n²/2¹²⁹, and a collision could only refuse a good file, never let a repeat by.
#[derive(Clone, Copy, PartialEq, Eq)]
struct KeyDigest([u64; 2]);

impl std::hash::Hash for KeyDigest {
    /// The digest is already a keyed hash: the table takes one of its words as is.
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.0[0]);
    }
}

/// Passes a `KeyDigest`'s word through (hashing it again would only cost time).
#[derive(Default)]
struct DigestWordHasher(u64);

impl std::hash::Hasher for DigestWordHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used; any other input is still folded in, never dropped.
        for byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*byte);
        }
    }

    fn write_u64(&mut self, word: u64) {
        self.0 = word;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type FirstLines = HashMap<KeyDigest, u64, std::hash::BuildHasherDefault<DigestWordHasher>>;

/// The keys seen so far, and the repeats found among them.
pub struct KeyRepeats {
    high: RandomState,
    low: RandomState,
    keys_in_memory_max: usize,
    first_lines: FirstLines,
    /// Set once the table outgrew `keys_in_memory_max`; from then on every key goes to
    /// its part on disk and repeats are found by `finish`.
    spill: Option<Spill>,
    rows: u64,
}

/// The parts on disk. Each record: digest (2 × u64), line (u64), shown key's length
/// (u32) and bytes, little-endian. A part holds its keys in file order, except that
/// the table's keys (all first sightings, all on earlier lines) come first.
struct Spill {
    parts: Vec<BufWriter<std::fs::File>>,
}

impl Default for KeyRepeats {
    fn default() -> Self {
        KeyRepeats::with_memory_max(KEYS_IN_MEMORY_MAX)
    }
}

impl KeyRepeats {
    /// A check that spills after `keys_in_memory_max` keys (tests use small values).
    pub fn with_memory_max(keys_in_memory_max: usize) -> KeyRepeats {
        // Two `RandomState`s of one thread differ in one key half: enough, since a
        // collision could only refuse a good file.
        KeyRepeats {
            high: RandomState::new(),
            low: RandomState::new(),
            keys_in_memory_max,
            first_lines: FirstLines::default(),
            spill: None,
            rows: 0,
        }
    }

    /// Records `key` seen on `line` (lines come in increasing order). While the table
    /// holds every key, a repeat is returned at once; after a spill, `finish` finds it.
    /// `key_shown` is called only when the key must be kept or shown.
    pub fn see(
        &mut self,
        key: &str,
        line: u64,
        key_shown: impl FnOnce() -> String,
    ) -> Result<Option<Repeat>, RepeatCheckError> {
        self.rows += 1;
        if self.rows > IMPORT_ROWS_MAX {
            return Err(RepeatCheckError::TooManyRows);
        }
        let digest = KeyDigest([self.high.hash_one(key), self.low.hash_one(key)]);
        if let Some(spill) = &mut self.spill {
            spill.write(digest, line, &key_shown())?;
            return Ok(None);
        }
        match self.first_lines.entry(digest) {
            Entry::Occupied(first) => Ok(Some(Repeat {
                line,
                first_line: *first.get(),
                key_shown: key_shown(),
            })),
            Entry::Vacant(slot) => {
                slot.insert(line);
                if self.first_lines.len() > self.keys_in_memory_max {
                    self.spill_table()?;
                }
                Ok(None)
            }
        }
    }

    /// Moves the table's keys to disk and frees the table.
    fn spill_table(&mut self) -> io::Result<()> {
        let mut spill = Spill::create()?;
        for (digest, line) in std::mem::take(&mut self.first_lines) {
            // A first sighting is never shown, so it keeps no text.
            spill.write(digest, line, "")?;
        }
        self.spill = Some(spill);
        Ok(())
    }

    /// The repeats not yet returned by `see`, in line order: none unless the check
    /// spilled. `keep_max` bounds how many are kept; the count of the rest comes second.
    pub fn finish(self, keep_max: usize) -> io::Result<(Vec<Repeat>, u64)> {
        let Some(spill) = self.spill else {
            return Ok((Vec::new(), 0));
        };
        let mut kept = KeptRepeats::new(keep_max);
        for part in spill.parts {
            check_part(part, &mut kept)?;
        }
        Ok(kept.into_sorted())
    }
}

impl Spill {
    fn create() -> io::Result<Spill> {
        let parts = (0..SPILL_PARTS)
            .map(|_| {
                Ok(BufWriter::with_capacity(
                    SPILL_BUFFER_BYTES,
                    tempfile::tempfile()?,
                ))
            })
            .collect::<io::Result<Vec<_>>>()?;
        Ok(Spill { parts })
    }

    fn write(&mut self, digest: KeyDigest, line: u64, key_shown: &str) -> io::Result<()> {
        // The high word picks the part; the table inside a part uses the other word.
        let part = (digest.0[1] % SPILL_PARTS as u64) as usize;
        let shown_len = u32::try_from(key_shown.len()).map_err(io::Error::other)?;
        let writer = &mut self.parts[part];
        writer.write_all(&digest.0[0].to_le_bytes())?;
        writer.write_all(&digest.0[1].to_le_bytes())?;
        writer.write_all(&line.to_le_bytes())?;
        writer.write_all(&shown_len.to_le_bytes())?;
        writer.write_all(key_shown.as_bytes())
    }
}

/// Reads one part back and reports each key it holds a second time.
fn check_part(part: BufWriter<std::fs::File>, kept: &mut KeptRepeats) -> io::Result<()> {
    let mut file = part.into_inner().map_err(|error| error.into_error())?;
    file.seek(SeekFrom::Start(0))?;
    let mut reader = BufReader::with_capacity(SPILL_BUFFER_BYTES * 4, file);
    let mut first_lines = FirstLines::default();
    while let Some((digest, line, key_shown)) = read_record(&mut reader)? {
        match first_lines.entry(digest) {
            Entry::Occupied(first) => kept.push(Repeat {
                line,
                first_line: *first.get(),
                key_shown,
            }),
            Entry::Vacant(slot) => {
                slot.insert(line);
            }
        }
    }
    Ok(())
}

fn read_record(reader: &mut impl Read) -> io::Result<Option<(KeyDigest, u64, String)>> {
    let mut fixed = [0u8; 28];
    match reader.read_exact(&mut fixed[..1]) {
        Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        other => other?,
    }
    reader.read_exact(&mut fixed[1..])?;
    let word = |at: usize| u64::from_le_bytes(fixed[at..at + 8].try_into().expect("8 bytes"));
    let digest = KeyDigest([word(0), word(8)]);
    let line = word(16);
    let shown_len = u32::from_le_bytes(fixed[24..28].try_into().expect("4 bytes"));
    let mut shown = vec![0u8; shown_len as usize];
    reader.read_exact(&mut shown)?;
    let key_shown = String::from_utf8(shown).map_err(io::Error::other)?;
    Ok(Some((digest, line, key_shown)))
}

/// The first `keep_max` repeats by line, and a count of the others: a file of one key
/// repeated a million times must not fill memory with its errors.
struct KeptRepeats {
    keep_max: usize,
    repeats: std::collections::BinaryHeap<ByLine>,
    not_kept: u64,
}

/// Orders repeats by line, for the heap that keeps the earliest.
struct ByLine(Repeat);

impl PartialEq for ByLine {
    fn eq(&self, other: &Self) -> bool {
        self.0.line == other.0.line
    }
}
impl Eq for ByLine {}
impl PartialOrd for ByLine {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for ByLine {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.line.cmp(&other.0.line)
    }
}

impl KeptRepeats {
    fn new(keep_max: usize) -> KeptRepeats {
        KeptRepeats {
            keep_max,
            repeats: std::collections::BinaryHeap::new(),
            not_kept: 0,
        }
    }

    fn push(&mut self, repeat: Repeat) {
        self.repeats.push(ByLine(repeat));
        if self.repeats.len() > self.keep_max {
            self.repeats.pop();
            self.not_kept += 1;
        }
    }

    fn into_sorted(self) -> (Vec<Repeat>, u64) {
        let repeats = self
            .repeats
            .into_sorted_vec()
            .into_iter()
            .map(|by_line| by_line.0)
            .collect();
        (repeats, self.not_kept)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Every repeat, by the plainest means: the reference the spilling check must match.
    fn repeats_by_hand(keys: &[&str]) -> Vec<Repeat> {
        let mut first: HashMap<&str, u64> = HashMap::new();
        let mut repeats = Vec::new();
        for (index, key) in keys.iter().enumerate() {
            let line = index as u64 + 2;
            match first.get(key) {
                Some(&first_line) => repeats.push(Repeat {
                    line,
                    first_line,
                    key_shown: format!("shown:{key}"),
                }),
                None => {
                    first.insert(key, line);
                }
            }
        }
        repeats
    }

    fn repeats_found(
        keys: &[&str],
        keys_in_memory_max: usize,
        keep_max: usize,
    ) -> (Vec<Repeat>, u64) {
        let mut check = KeyRepeats::with_memory_max(keys_in_memory_max);
        let mut found = Vec::new();
        for (index, key) in keys.iter().enumerate() {
            let line = index as u64 + 2;
            if let Some(repeat) = check
                .see(key, line, || format!("shown:{key}"))
                .expect("temporary files work")
            {
                found.push(repeat);
            }
        }
        let (later, not_kept) = check.finish(keep_max).expect("temporary files work");
        found.extend(later);
        found.sort_by_key(|repeat| repeat.line);
        (found, not_kept)
    }

    #[test]
    fn a_spilled_check_finds_what_the_table_finds() {
        let keys = ["H1", "H2", "H3", "H1", "H4", "H2", "H5", "H1", "H6"];
        for keys_in_memory_max in [0, 1, 2, 3, 100] {
            assert_eq!(
                repeats_found(&keys, keys_in_memory_max, 100),
                (repeats_by_hand(&keys), 0),
                "spilling after {keys_in_memory_max} keys"
            );
        }
    }

    #[test]
    fn a_key_repeated_without_end_keeps_only_the_earliest_repeats() {
        let keys = vec!["H1"; 1_000];
        let (kept, not_kept) = repeats_found(&keys, 0, 5);
        let lines: Vec<u64> = kept.iter().map(|repeat| repeat.line).collect();
        assert_eq!(lines, [3, 4, 5, 6, 7]);
        assert!(kept.iter().all(|repeat| repeat.first_line == 2));
        assert_eq!(not_kept, 999 - 5);
    }

    #[test]
    fn a_table_that_never_spills_writes_nothing_and_finds_nothing_late() {
        let mut check = KeyRepeats::with_memory_max(10);
        assert_eq!(check.see("H1", 2, String::new).unwrap(), None);
        let repeat = check.see("H1", 3, || "H1".into()).unwrap();
        assert_eq!(
            repeat,
            Some(Repeat {
                line: 3,
                first_line: 2,
                key_shown: "H1".into()
            })
        );
        assert!(check.spill.is_none());
        assert_eq!(check.finish(10).unwrap(), (Vec::new(), 0));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn spilling_never_changes_the_repeats_found(
            indexes in proptest::collection::vec(0usize..40, 0..300),
            keys_in_memory_max in 0usize..50,
        ) {
            let names: Vec<String> = (0..40).map(|n| format!("H{n:03}")).collect();
            let keys: Vec<&str> = indexes.iter().map(|&n| names[n].as_str()).collect();
            let expected = repeats_by_hand(&keys);
            prop_assert_eq!(repeats_found(&keys, keys_in_memory_max, 1_000), (expected, 0));
        }
    }
}
