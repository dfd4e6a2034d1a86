//! Strict text decoding of input files: UTF-8, GBK or GB18030 in, UTF-8 out, and a
//! malformed byte is an error with its offset (FAILURES #18), never a U+FFFD.
//!
//! Streaming: the reader decodes as it goes, so a large roster is never held whole.

use encoding_rs::{DecoderResult, Encoding, GB18030, GBK, UTF_8};
use std::io::{self, Read};

/// The encodings an input file may be in (CONTRACTS §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputEncoding {
    Utf8,
    Gbk,
    Gb18030,
}

impl InputEncoding {
    pub fn parse(text: &str) -> Option<InputEncoding> {
        match text.to_ascii_lowercase().as_str() {
            "utf-8" | "utf8" => Some(InputEncoding::Utf8),
            "gbk" => Some(InputEncoding::Gbk),
            "gb18030" => Some(InputEncoding::Gb18030),
            _ => None,
        }
    }

    fn encoding(self) -> &'static Encoding {
        match self {
            InputEncoding::Utf8 => UTF_8,
            InputEncoding::Gbk => GBK,
            InputEncoding::Gb18030 => GB18030,
        }
    }
}

/// How many input bytes are decoded at a time.
const DECODE_CHUNK_BYTES: usize = 64 * 1024;

/// Wraps a byte reader and yields its text as UTF-8, failing on the first malformed
/// sequence with an `io::ErrorKind::InvalidData` error naming the byte offset.
pub struct StrictDecodingReader<R: Read> {
    inner: R,
    decoder: encoding_rs::Decoder,
    encoding_name: &'static str,
    input: Vec<u8>,
    input_start: usize,
    input_end: usize,
    input_offset: u64,
    output: Vec<u8>,
    output_start: usize,
    output_end: usize,
    finished: bool,
    /// The last byte of text handed out (a file cut short ends without a line break).
    last_byte: Option<u8>,
}

impl<R: Read> StrictDecodingReader<R> {
    pub fn new(inner: R, encoding: InputEncoding) -> StrictDecodingReader<R> {
        let encoding = encoding.encoding();
        StrictDecodingReader {
            inner,
            // A UTF-8 BOM is removed; other BOMs are not expected in these files.
            decoder: encoding.new_decoder_with_bom_removal(),
            encoding_name: encoding.name(),
            input: vec![0; DECODE_CHUNK_BYTES],
            input_start: 0,
            input_end: 0,
            input_offset: 0,
            output: vec![0; DECODE_CHUNK_BYTES * 3 + 16],
            output_start: 0,
            output_end: 0,
            finished: false,
            last_byte: None,
        }
    }

    /// The last byte of decoded text read so far; `None` before any.
    pub fn last_byte(&self) -> Option<u8> {
        self.last_byte
    }

    fn refill(&mut self) -> io::Result<()> {
        if self.input_start == self.input_end {
            self.input_start = 0;
            self.input_end = self.inner.read(&mut self.input)?;
        }
        let last = self.input_end == 0;
        let (result, read, written) = self.decoder.decode_to_utf8_without_replacement(
            &self.input[self.input_start..self.input_end],
            &mut self.output,
            last,
        );
        self.output_start = 0;
        self.output_end = written;
        self.input_start += read;
        self.input_offset += read as u64;
        match result {
            DecoderResult::Malformed(bad_length, after) => {
                let offset = self.input_offset - u64::from(after) - u64::from(bad_length);
                Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "byte offset {offset}: malformed {} sequence (wrong --encoding?)",
                        self.encoding_name
                    ),
                ))
            }
            DecoderResult::InputEmpty if last => {
                self.finished = true;
                Ok(())
            }
            DecoderResult::InputEmpty | DecoderResult::OutputFull => Ok(()),
        }
    }
}

impl<R: Read> Read for StrictDecodingReader<R> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        while self.output_start == self.output_end {
            if self.finished {
                return Ok(0);
            }
            self.refill()?;
        }
        let count = buffer.len().min(self.output_end - self.output_start);
        buffer[..count].copy_from_slice(&self.output[self.output_start..self.output_start + count]);
        self.output_start += count;
        if count > 0 {
            self.last_byte = Some(buffer[count - 1]);
        }
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(bytes: &[u8], encoding: InputEncoding) -> io::Result<String> {
        let mut text = String::new();
        StrictDecodingReader::new(bytes, encoding).read_to_string(&mut text)?;
        Ok(text)
    }

    #[test]
    fn decodes_strictly_with_offsets() {
        let (gbk, _, _) = GBK.encode("张三,523.40");
        assert_eq!(decode(&gbk, InputEncoding::Gbk).unwrap(), "张三,523.40");
        assert_eq!(
            decode("\u{feff}abc".as_bytes(), InputEncoding::Utf8).unwrap(),
            "abc"
        );
        let error = decode(&gbk, InputEncoding::Utf8).unwrap_err();
        assert!(error.to_string().contains("byte offset 0"), "{error}");
        let error = decode(b"ab\xffcd", InputEncoding::Utf8).unwrap_err();
        assert!(error.to_string().contains("byte offset 2"), "{error}");
        let error = decode(b"ab\x81", InputEncoding::Gbk).unwrap_err();
        assert!(error.to_string().contains("byte offset 2"), "{error}");
    }

    #[test]
    fn decodes_across_chunk_boundaries() {
        let text = "张三丰,".repeat(DECODE_CHUNK_BYTES / 3);
        let (gbk, _, _) = GBK.encode(&text);
        assert_eq!(decode(&gbk, InputEncoding::Gbk).unwrap(), text);
        assert_eq!(decode(text.as_bytes(), InputEncoding::Utf8).unwrap(), text);
    }
}
