//! Strict text encoding and decoding for bank files: GBK, GB18030 and UTF-8.
//!
//! Why not `encoding_rs::Encoder` directly: for a character GBK lacks it writes an HTML
//! numeric reference (`&#…;`) and only raises a flag, and a bank would then pay a
//! household named `王&#19886;`. Here an unmappable character is an error, always.
//! Why a table: encoding a million names goes through one array lookup per character
//! instead of an encoder call per field. The table is built once, lazily, by decoding
//! every GBK byte pair with `encoding_rs`, so it cannot disagree with the decoder.

use encoding_rs::{DecoderResult, Encoding, GB18030, GBK};
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
