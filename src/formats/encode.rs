//! Strict text encoding and decoding for bank files: GBK, GB18030 and UTF-8.
//!
//! Why not `encoding_rs::Encoder` directly: for a character GBK lacks it writes an HTML
//! numeric reference (`&#…;`) and only raises a flag, and a bank would then pay a
//! household named `王&#19886;`. Here an unmappable character is an error, always.
//! Why a table: encoding a million names goes through one array lookup per character
//! instead of an encoder call per field. The table is built once, lazily, by decoding
//! every GBK byte pair with `encoding_rs`, so it cannot disagree with the decoder.
//! Decoding has the mirror table (byte pair → character, from the same decoder): text
//! made of ASCII and two-byte pairs, which is every name we write, is decoded by lookup
//! and borrowed where it is ASCII; anything else goes to `encoding_rs`, so errors and
//! their offsets are the decoder's own.

use encoding_rs::{DecoderResult, Encoding, GB18030, GBK};
use std::borrow::Cow;
use std::sync::OnceLock;

/// A text encoding a bank file may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TargetEncoding {
    Gbk,
    Gb18030,
    Utf8,
}

/// A character the target encoding cannot represent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{character} (U+{code:04X}) cannot be encoded in {encoding}", code = u32::from(*character))]
pub struct Unencodable {
    pub character: char,
    pub encoding: &'static str,
}

/// Bytes that are not valid text in the expected encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("bytes at offset {offset} are not valid {encoding}")]
pub struct Malformed {
    /// 0-based byte offset of the first bad byte within the decoded slice.
    pub offset: usize,
    pub encoding: &'static str,
}

/// Table entry meaning "GBK has no byte sequence for this character".
const UNMAPPED: u16 = 0;

/// The character → GBK bytes table for the Basic Multilingual Plane. An entry is the
/// two GBK bytes big-endian, or `0x0080` for the one single-byte non-ASCII mapping
/// (U+20AC € ↔ 0x80), or `UNMAPPED`.
fn gbk_table() -> &'static [u16] {
    static TABLE: OnceLock<Box<[u16]>> = OnceLock::new();
    TABLE.get_or_init(build_gbk_table)
}

fn build_gbk_table() -> Box<[u16]> {
    let mut table = vec![UNMAPPED; 0x1_0000].into_boxed_slice();
    if let Some(euro) = decode_single_char(&[0x80]) {
        table[euro as usize] = 0x0080;
    }
    for lead in 0x81u8..=0xFE {
        for trail in (0x40u8..=0xFE).filter(|trail| *trail != 0x7F) {
            let Some(character) = decode_single_char(&[lead, trail]) else {
                continue;
            };
            // Several byte pairs may decode to one character; the encoder's choice is
            // the first pair in byte order, which is the one we keep.
            let slot = &mut table[character as usize];
            if *slot == UNMAPPED {
                *slot = u16::from_be_bytes([lead, trail]);
            }
        }
    }
    add_encode_only_private_use(&mut table);
    table
}

/// GB18030-2022 moved 18 byte pairs (e.g. 0xA6D9) from Private Use code points to real
/// characters; `encoding_rs` decodes them to the new characters but still encodes the
/// old Private Use code points to them. Decoding alone cannot find those, so the
/// Private Use Area is asked of the encoder once, keeping the table equal to it.
fn add_encode_only_private_use(table: &mut [u16]) {
    for code in 0xE000u32..=0xF8FF {
        let Some(character) = char::from_u32(code) else {
            continue;
        };
        if table[code as usize] != UNMAPPED {
            continue;
        }
        let mut buffer = [0u8; 4];
        let (bytes, _, had_unmappables) = GBK.encode(character.encode_utf8(&mut buffer));
        if let (false, [lead, trail]) = (had_unmappables, bytes.as_ref()) {
            table[code as usize] = u16::from_be_bytes([*lead, *trail]);
        }
    }
}

/// Decodes `bytes` as GBK when they form exactly one BMP, non-ASCII character.
fn decode_single_char(bytes: &[u8]) -> Option<u32> {
    let text = GBK.decode_without_bom_handling_and_without_replacement(bytes)?;
    let mut chars = text.chars();
    match (chars.next(), chars.next()) {
        (Some(character), None) if !character.is_ascii() && u32::from(character) <= 0xFFFF => {
            Some(u32::from(character))
        }
        _ => None,
    }
}

/// Lead bytes 0x81..=0xFE times trail bytes 0x40..=0xFE (0x7F included, never set).
const PAIR_TABLE_LEN: usize = 126 * 191;

/// The byte pair → character table: the BMP character `encoding_rs` decodes the pair to
/// (GBK and GB18030 decode alike), or 0 where it decodes to anything else or fails. Only
/// characters GBK can encode are kept, so a pair found here passes `check_gbk_only`.
fn gb_pair_table() -> &'static [u16] {
    static TABLE: OnceLock<Box<[u16]>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut table = vec![0u16; PAIR_TABLE_LEN].into_boxed_slice();
        for lead in 0x81u8..=0xFE {
            for trail in (0x40u8..=0xFE).filter(|trail| *trail != 0x7F) {
                let decoded = decode_single_char(&[lead, trail])
                    .and_then(char::from_u32)
                    .filter(|character| gbk_bytes(*character).is_some());
                if let Some(character) = decoded {
                    table[pair_index(lead, trail)] =
                        u16::try_from(u32::from(character)).unwrap_or(0);
                }
            }
        }
        table
    })
}

fn pair_index(lead: u8, trail: u8) -> usize {
    usize::from(lead - 0x81) * 191 + usize::from(trail - 0x40)
}

/// The character a two-byte GBK/GB18030 sequence starting at `bytes[0]` decodes to, when
/// it is one the pair table holds.
fn decode_pair(table: &[u16], bytes: &[u8]) -> Option<char> {
    match bytes {
        [lead @ 0x81..=0xFE, trail @ 0x40..=0xFE, ..] => {
            match table.get(pair_index(*lead, *trail)).copied() {
                Some(0) | None => None,
                Some(code) => char::from_u32(u32::from(code)),
            }
        }
        _ => None,
    }
}

/// Decodes text made only of ASCII and pairs of the pair table; `None` for anything else
/// (the euro byte 0x80, four-byte sequences, malformed bytes), which `encoding_rs` decides.
fn decode_plain_gb(bytes: &[u8]) -> Option<String> {
    let table = gb_pair_table();
    // Two bytes of GBK become at most three of UTF-8.
    let mut text = String::with_capacity(bytes.len() + bytes.len() / 2);
    let mut rest = bytes;
    while !rest.is_empty() {
        // A run of ASCII is copied whole; it is valid UTF-8 as it stands.
        let ascii = rest
            .iter()
            .position(|byte| !byte.is_ascii())
            .unwrap_or(rest.len());
        let (run, after) = rest.split_at(ascii);
        text.push_str(std::str::from_utf8(run).ok()?);
        if after.is_empty() {
            break;
        }
        text.push(decode_pair(table, after)?);
        rest = after.get(2..)?;
    }
    Some(text)
}

/// GBK bytes for one non-ASCII character, if GBK has it.
fn gbk_bytes(character: char) -> Option<([u8; 2], usize)> {
    let code = u32::from(character);
    let entry = *gbk_table().get(usize::try_from(code).ok()?)?;
    match entry {
        UNMAPPED => None,
        0x0080 => Some(([0x80, 0], 1)),
        pair => Some((pair.to_be_bytes(), 2)),
    }
}

impl TargetEncoding {
    pub fn name(self) -> &'static str {
        match self {
            TargetEncoding::Gbk => "GBK",
            TargetEncoding::Gb18030 => "GB18030",
            TargetEncoding::Utf8 => "UTF-8",
        }
    }

    fn encoding_rs(self) -> &'static Encoding {
        match self {
            TargetEncoding::Gbk => GBK,
            TargetEncoding::Gb18030 => GB18030,
            TargetEncoding::Utf8 => encoding_rs::UTF_8,
        }
    }

    /// Appends `text` encoded to `out`. On error `out` is left as it was.
    pub fn encode_into(self, text: &str, out: &mut Vec<u8>) -> Result<(), Unencodable> {
        if self == TargetEncoding::Utf8 || text.is_ascii() {
            out.extend_from_slice(text.as_bytes());
            return Ok(());
        }
        let length_before = out.len();
        for character in text.chars() {
            if let Err(error) = self.encode_char(character, out) {
                out.truncate(length_before);
                return Err(error);
            }
        }
        Ok(())
    }

    fn encode_char(self, character: char, out: &mut Vec<u8>) -> Result<(), Unencodable> {
        if character.is_ascii() {
            out.push(character as u8);
            return Ok(());
        }
        // GB18030 differs from GBK only for the euro sign (0xA2E3, not 0x80) and for
        // characters outside GBK (four-byte sequences); those take the slow path.
        let table_hit =
            gbk_bytes(character).filter(|(_, length)| self == TargetEncoding::Gbk || *length == 2);
        if let Some((bytes, length)) = table_hit {
            out.extend_from_slice(&bytes[..length]);
            return Ok(());
        }
        if self == TargetEncoding::Gb18030 {
            return self.encode_char_slow(character, out);
        }
        Err(Unencodable {
            character,
            encoding: self.name(),
        })
    }

    /// Encodes one character with `encoding_rs`, refusing its `&#…;` fallback.
    fn encode_char_slow(self, character: char, out: &mut Vec<u8>) -> Result<(), Unencodable> {
        let mut buffer = [0u8; 4];
        let text = character.encode_utf8(&mut buffer);
        let (bytes, _, had_unmappables) = self.encoding_rs().encode(text);
        if had_unmappables {
            return Err(Unencodable {
                character,
                encoding: self.name(),
            });
        }
        out.extend_from_slice(&bytes);
        Ok(())
    }

    pub fn encode_to_vec(self, text: &str) -> Result<Vec<u8>, Unencodable> {
        let mut out = Vec::with_capacity(text.len() * 2);
        self.encode_into(text, &mut out)?;
        Ok(out)
    }

    /// `decode_strict`, borrowing `bytes` when they are ASCII (or valid UTF-8 for UTF-8):
    /// the same text and the same errors, without an allocation for most fields.
    pub fn decode_cow(self, bytes: &[u8]) -> Result<Cow<'_, str>, Malformed> {
        if self == TargetEncoding::Utf8 || bytes.is_ascii() {
            return std::str::from_utf8(bytes)
                .map(Cow::Borrowed)
                .map_err(|error| Malformed {
                    offset: error.valid_up_to(),
                    encoding: self.name(),
                });
        }
        match decode_plain_gb(bytes) {
            Some(text) => Ok(Cow::Owned(text)),
            None => self.decode_strict(bytes).map(Cow::Owned),
        }
    }

    /// Where `delimiter` splits a line, in bytes, as it would split the decoded line;
    /// `None` when that needs the full decoder (a malformed byte, a four-byte sequence,
    /// 0x80). A GBK trail byte may equal the delimiter byte; a pair is skipped whole, so
    /// only a delimiter that is a character of its own splits. Returns whether the line
    /// ends with the delimiter as a character.
    pub fn split_plain(self, line: &[u8], delimiter: u8, splits: &mut Vec<usize>) -> Option<bool> {
        splits.clear();
        if self == TargetEncoding::Utf8 {
            // UTF-8 never uses an ASCII byte inside a multi-byte character.
            std::str::from_utf8(line).ok()?;
            splits.extend(
                line.iter()
                    .enumerate()
                    .filter(|(_, byte)| **byte == delimiter)
                    .map(|(index, _)| index),
            );
            return Some(line.last() == Some(&delimiter));
        }
        let table = gb_pair_table();
        let mut index = 0;
        let mut ends_with_delimiter = false;
        while let Some(byte) = line.get(index) {
            if byte.is_ascii() {
                if *byte == delimiter {
                    splits.push(index);
                }
                ends_with_delimiter = *byte == delimiter;
                index += 1;
            } else {
                decode_pair(table, &line[index..])?;
                ends_with_delimiter = false;
                index += 2;
            }
        }
        Some(ends_with_delimiter)
    }

    /// Decodes `bytes` strictly: malformed input is an error with its byte offset, never
    /// U+FFFD. For GBK, a GB18030 four-byte sequence is malformed too (the `encoding_rs`
    /// GBK decoder accepts them because WHATWG decodes GBK as GB18030).
    pub fn decode_strict(self, bytes: &[u8]) -> Result<String, Malformed> {
        let malformed = |offset| Malformed {
            offset,
            encoding: self.name(),
        };
        if self == TargetEncoding::Utf8 || bytes.is_ascii() {
            return std::str::from_utf8(bytes)
                .map(str::to_string)
                .map_err(|error| malformed(error.valid_up_to()));
        }
        let mut decoder = self.encoding_rs().new_decoder_without_bom_handling();
        let capacity = decoder
            .max_utf8_buffer_length_without_replacement(bytes.len())
            .unwrap_or(bytes.len().saturating_mul(3));
        let mut text = String::with_capacity(capacity);
        let (result, read) = decoder.decode_to_string_without_replacement(bytes, &mut text, true);
        match result {
            DecoderResult::InputEmpty => {}
            DecoderResult::Malformed(bad, after) => {
                let offset = read.saturating_sub(usize::from(bad) + usize::from(after));
                return Err(malformed(offset));
            }
            DecoderResult::OutputFull => return Err(malformed(read)),
        }
        if self == TargetEncoding::Gbk {
            check_gbk_only(&text).map_err(malformed)?;
        }
        Ok(text)
    }
}

/// Finds the byte offset of the first character that GBK cannot encode.
fn check_gbk_only(text: &str) -> Result<(), usize> {
    let mut offset = 0usize;
    for character in text.chars() {
        offset += match character.is_ascii() {
            true => 1,
            false => gbk_bytes(character)
                .map(|(_, length)| length)
                .ok_or(offset)?,
        };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Every byte pair decodes by table exactly as `decode_strict` decodes it (same text,
    /// or the same error at the same offset), in both encodings.
    #[test]
    fn pair_table_decodes_every_pair_as_the_decoder_does() {
        for encoding in [TargetEncoding::Gbk, TargetEncoding::Gb18030] {
            for lead in 0x80u8..=0xFF {
                for trail in 0u8..=0xFF {
                    let bytes = [lead, trail];
                    let fast = encoding.decode_cow(&bytes).map(Cow::into_owned);
                    assert_eq!(
                        fast,
                        encoding.decode_strict(&bytes),
                        "{lead:02X}{trail:02X}"
                    );
                }
            }
        }
    }

    /// Bytes a GBK or GB18030 file may hold, weighted toward the awkward ones: the
    /// delimiter, the euro byte, lead bytes, four-byte digits and trail bytes.
    fn gb_bytes() -> impl Strategy<Value = Vec<u8>> {
        let byte = prop_oneof![
            4 => 0x20u8..0x7F,
            2 => Just(b'|'),
            1 => Just(0x80u8),
            4 => 0x81u8..=0xFE,
            1 => 0x30u8..=0x39,
            2 => 0x40u8..=0xFE,
            1 => any::<u8>(),
        ];
        prop::collection::vec(byte, 0..24)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        /// The borrowed/table decoder gives what the strict decoder gives, errors included.
        #[test]
        fn decode_cow_agrees_with_decode_strict(bytes in gb_bytes()) {
            for encoding in [TargetEncoding::Gbk, TargetEncoding::Gb18030, TargetEncoding::Utf8] {
                let fast = encoding.decode_cow(&bytes).map(Cow::into_owned);
                prop_assert_eq!(fast, encoding.decode_strict(&bytes));
            }
        }

        /// Where `split_plain` speaks, it splits as the decoded text splits, and the line
        /// decodes; where it cannot, the caller decodes the line whole.
        #[test]
        fn split_plain_splits_as_the_decoded_text_splits(bytes in gb_bytes()) {
            for encoding in [TargetEncoding::Gbk, TargetEncoding::Gb18030, TargetEncoding::Utf8] {
                let mut splits = Vec::new();
                let Some(ends_with_delimiter) = encoding.split_plain(&bytes, b'|', &mut splits) else {
                    continue;
                };
                let text = encoding.decode_strict(&bytes);
                prop_assert!(text.is_ok());
                let text = text.unwrap_or_default();
                prop_assert_eq!(ends_with_delimiter, text.ends_with('|'));
                let mut fields = Vec::new();
                let mut start = 0;
                for end in splits.iter().copied().chain([bytes.len()]) {
                    fields.push(encoding.decode_strict(&bytes[start..end]).unwrap_or_default());
                    start = end + 1;
                }
                let expected: Vec<&str> = text.split('|').collect();
                prop_assert_eq!(fields, expected);
            }
        }
    }

    /// The table must agree with `encoding_rs` for every BMP character it can encode,
    /// and must refuse every character `encoding_rs` can only write as `&#…;`.
    #[test]
    fn table_matches_encoding_rs_for_every_bmp_char() {
        for encoding in [TargetEncoding::Gbk, TargetEncoding::Gb18030] {
            let mut mismatches = Vec::new();
            for code in 0u32..=0xFFFF {
                let Some(character) = char::from_u32(code) else {
                    continue;
                };
                let mut buffer = [0u8; 4];
                let text = character.encode_utf8(&mut buffer);
                let (expected, _, had_unmappables) = encoding.encoding_rs().encode(text);
                let ours = encoding.encode_to_vec(text);
                let agrees = match (&ours, had_unmappables) {
                    (Ok(bytes), false) => bytes.as_slice() == expected.as_ref(),
                    (Err(_), true) => true,
                    _ => false,
                };
                if !agrees {
                    mismatches.push(format!(
                        "U+{code:04X}: ours {ours:02X?} theirs {expected:02X?}"
                    ));
                }
            }
            assert!(
                mismatches.is_empty(),
                "{}: {mismatches:#?}",
                encoding.name()
            );
        }
    }

    #[test]
    fn rare_names_are_refused_by_gbk_and_round_trip_in_gb18030() {
        for name in ["王𬌗", "王\u{20000}"] {
            let error = TargetEncoding::Gbk.encode_to_vec(name).unwrap_err();
            assert_eq!(error.encoding, "GBK");
            let bytes = TargetEncoding::Gb18030.encode_to_vec(name).unwrap();
            assert_eq!(TargetEncoding::Gb18030.decode_strict(&bytes).unwrap(), name);
            assert!(TargetEncoding::Gbk.decode_strict(&bytes).is_err(), "{name}");
        }
    }

    #[test]
    fn malformed_bytes_report_their_offset() {
        let mut bytes = TargetEncoding::Gbk.encode_to_vec("张三|").unwrap();
        bytes.push(0x81);
        assert_eq!(
            TargetEncoding::Gbk
                .decode_strict(&bytes)
                .unwrap_err()
                .offset,
            5
        );
        assert_eq!(
            TargetEncoding::Utf8
                .decode_strict(&bytes)
                .unwrap_err()
                .offset,
            0
        );
        let mut out = b"keep".to_vec();
        assert!(TargetEncoding::Gbk.encode_into("李𬌗", &mut out).is_err());
        assert_eq!(out, b"keep");
    }
}
