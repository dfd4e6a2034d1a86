//! A tiny DER reader and writer: just enough of ASN.1 to read PKCS#8 and SPKI headers and
//! to write SPKI. Every read is length-checked and returns `None` on bad input, never panics.

/// DER tags this module reads or writes.
pub(crate) const TAG_INTEGER: u8 = 0x02;
pub(crate) const TAG_BIT_STRING: u8 = 0x03;
pub(crate) const TAG_NULL: u8 = 0x05;
pub(crate) const TAG_OID: u8 = 0x06;
pub(crate) const TAG_SEQUENCE: u8 = 0x30;

/// Object identifiers (DER content bytes) the signing module recognises.
pub(crate) const OID_RSA_ENCRYPTION: &[u8] =
    &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
pub(crate) const OID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
pub(crate) const OID_PRIME256V1: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
pub(crate) const OID_ED25519: &[u8] = &[0x2b, 0x65, 0x70];

/// Key files are small; a length field claiming more than this is malformed, which also
/// keeps the long-form length arithmetic far from overflow.
const CONTENT_BYTES_MAX: usize = 1 << 20;

/// A cursor over DER bytes. Reading splits off one tag-length-value at a time.
#[derive(Clone, Copy)]
pub(crate) struct DerReader<'a> {
    rest: &'a [u8],
}

impl<'a> DerReader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        DerReader { rest: bytes }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// The tag of the next element, without consuming it.
    pub(crate) fn peek_tag(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    /// Reads the next element, which must carry `tag`, and returns its content bytes.
    pub(crate) fn read(&mut self, tag: u8) -> Option<&'a [u8]> {
        let (&found_tag, after_tag) = self.rest.split_first()?;
        if found_tag != tag {
            return None;
        }
        let (length, after_length) = read_length(after_tag)?;
        if length > after_length.len() {
            return None;
        }
        let (content, rest) = after_length.split_at(length);
        self.rest = rest;
        Some(content)
    }
}

/// Reads a definite DER length (short form, or long form of at most 3 length bytes).
fn read_length(bytes: &[u8]) -> Option<(usize, &[u8])> {
    let (&first, rest) = bytes.split_first()?;
    if first < 0x80 {
        return Some((usize::from(first), rest));
    }
    let count = usize::from(first & 0x7f);
    // 0x80 is BER's indefinite length, which DER forbids; more than 3 bytes exceeds our cap.
    if count == 0 || count > 3 || count > rest.len() {
        return None;
    }
    let (length_bytes, rest) = rest.split_at(count);
    let length = length_bytes
        .iter()
        .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
    // DER requires the shortest form; a long form under 0x80 or with a leading zero is not DER.
    if length < 0x80 || length_bytes.first() == Some(&0) || length > CONTENT_BYTES_MAX {
        return None;
    }
    Some((length, rest))
}

/// Encodes one element: tag, minimal DER length, content.
pub(crate) fn write(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    let length = content.len();
    if length < 0x80 {
        out.push(length as u8);
    } else {
        let length_bytes = length.to_be_bytes();
        let skip = length_bytes.iter().take_while(|&&b| b == 0).count();
        let significant = &length_bytes[skip..];
        out.push(0x80 | significant.len() as u8);
        out.extend_from_slice(significant);
    }
    out.extend_from_slice(content);
    out
}

/// Renders an OID's content bytes as dotted decimal for error messages; `None` if malformed.
pub(crate) fn oid_to_dotted(content: &[u8]) -> Option<String> {
    let mut arcs: Vec<u64> = Vec::new();
    let mut value: u64 = 0;
    for &byte in content {
        value = value
            .checked_mul(128)?
            .checked_add(u64::from(byte & 0x7f))?;
        if byte & 0x80 == 0 {
            arcs.push(value);
            value = 0;
        }
    }
    // A trailing byte with the continuation bit set leaves an unfinished arc.
    if !matches!(content.last(), Some(&b) if b & 0x80 == 0) {
        return None;
    }
    let first = arcs.first().copied()?;
    let (arc0, arc1) = if first < 80 {
        (first / 40, first % 40)
    } else {
        (2, first - 80)
    };
    let mut dotted = format!("{arc0}.{arc1}");
    for arc in arcs.iter().skip(1) {
        dotted.push_str(&format!(".{arc}"));
    }
    Some(dotted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_then_read_round_trips_short_and_long_lengths() {
        for length in [0usize, 1, 127, 128, 255, 256, 300, 65_536] {
            let content = vec![0xab; length];
            let encoded = write(TAG_BIT_STRING, &content);
            let mut reader = DerReader::new(&encoded);
            assert_eq!(reader.read(TAG_BIT_STRING), Some(content.as_slice()));
            assert!(reader.is_empty());
        }
    }

    #[test]
    fn read_rejects_truncated_indefinite_and_non_minimal_lengths() {
        for bad in [
            &[0x30u8, 0x05, 0x00][..],
            &[0x30, 0x80, 0x00, 0x00],
            &[0x30, 0x81, 0x05, 0, 0, 0, 0, 0],
            &[0x30, 0x82, 0x00, 0x80],
            &[0x30, 0x84, 0x7f, 0xff, 0xff, 0xff],
            &[0x30],
            &[],
        ] {
            assert_eq!(DerReader::new(bad).read(TAG_SEQUENCE), None, "{bad:02x?}");
        }
    }

    #[test]
    fn oid_to_dotted_names_known_oids() {
        assert_eq!(
            oid_to_dotted(OID_RSA_ENCRYPTION).as_deref(),
            Some("1.2.840.113549.1.1.1")
        );
        assert_eq!(oid_to_dotted(OID_ED25519).as_deref(), Some("1.3.101.112"));
        assert_eq!(oid_to_dotted(&[0x2b, 0x81]), None);
        assert_eq!(oid_to_dotted(&[]), None);
    }
}
