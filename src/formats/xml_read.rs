//! Reading our own pain.001.001.09 back before it is signed, as the tabular files are:
//! every transaction's amount summed and counted, and both control figures (the group
//! header's and the payment information's) held against the sums.
//!
//! Why not an XML parser: this reads only what `xml::render_pain001` writes, in the
//! writer's exact shape and order (the same literal markup, one element per line, the
//! five escapes and nothing else), and refuses any other document, so it needs no DTD,
//! namespace or whitespace handling and reads a million transactions in a few hundred
//! milliseconds. It is a check of our writer, not a reader of banks' files
//! (`xml_results` reads those). No input panics.

use crate::domain::money::Fen;
use std::borrow::Cow;

/// Why a file is not one our writer wrote: the byte offset where it departs, and what
/// was expected there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("byte {offset}: expected {expected}")]
pub struct Pain001ReadError {
    pub offset: usize,
    pub expected: &'static str,
}

/// A pain.001 file read back. The control figures are already checked against the
/// transactions: `record_count` and `total` are the group header's, equal to both the
/// payment information's and the transactions' own count and sum.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedPain001<'b> {
    /// `GrpHdr/MsgId`, which our writer sets to the batch id, as is `PmtInfId`.
    pub batch_id: Cow<'b, str>,
    pub record_count: u64,
    pub total: Fen,
    /// Every transaction's `EndToEndId`, in file order.
    pub end_to_end_ids: Vec<Cow<'b, str>>,
}

/// Largest amount our writer writes: 18 digits, two of them decimals.
const AMOUNT_FEN_MAX: u64 = 999_999_999_999_999_999;

/// Reads a pain.001 file our writer wrote and checks its control figures.
pub fn read_pain001(bytes: &[u8]) -> Result<ParsedPain001<'_>, Pain001ReadError> {
    let text = std::str::from_utf8(bytes).map_err(|error| Pain001ReadError {
        offset: error.valid_up_to(),
        expected: "UTF-8",
    })?;
    let mut reader = Reader { text, offset: 0 };
    reader.literal(concat!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n",
        "<Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:pain.001.001.09\">\n",
        "<CstmrCdtTrfInitn>\n<GrpHdr>\n"
    ))?;
    let message_id = reader.element("MsgId")?;
    reader.element("CreDtTm")?;
    let header_count = reader.count()?;
    let header_total = reader.element_amount("<CtrlSum>", "</CtrlSum>\n")?;
    reader.literal("<InitgPty>\n")?;
    reader.element("Nm")?;
    reader.literal("</InitgPty>\n</GrpHdr>\n<PmtInf>\n")?;
    let payment_information_id = reader.element("PmtInfId")?;
    if payment_information_id != message_id {
        return Err(reader.fail("PmtInfId equal to MsgId"));
    }
    reader.literal("<PmtMtd>TRF</PmtMtd>\n")?;
    let payment_count = reader.count()?;
    let payment_total = reader.element_amount("<CtrlSum>", "</CtrlSum>\n")?;
    reader.literal("<ReqdExctnDt>\n")?;
    reader.element("Dt")?;
    reader.literal("</ReqdExctnDt>\n<Dbtr>\n")?;
    reader.element("Nm")?;
    reader.literal("</Dbtr>\n<DbtrAcct>\n<Id>\n<Othr>\n")?;
    reader.element("Id")?;
    reader.literal("</Othr>\n</Id>\n</DbtrAcct>\n<DbtrAgt>\n")?;
    reader.agent()?;
    reader.literal("</DbtrAgt>\n")?;
    let mut end_to_end_ids = Vec::new();
    let mut total: u64 = 0;
    while reader.rest().starts_with("<CdtTrfTxInf>") {
        let (end_to_end_id, amount) = reader.transaction()?;
        end_to_end_ids.push(end_to_end_id);
        total = total
            .checked_add(amount)
            .filter(|total| *total <= AMOUNT_FEN_MAX)
            .ok_or_else(|| reader.fail("transactions whose sum fits 18 digits"))?;
    }
    reader.literal("</PmtInf>\n</CstmrCdtTrfInitn>\n</Document>\n")?;
    if !reader.rest().is_empty() {
        return Err(reader.fail("the end of the file"));
    }
    let count = end_to_end_ids.len() as u64;
    if header_count != count || payment_count != count {
        return Err(reader.fail("NbOfTxs equal to the transactions' count"));
    }
    if header_total != total || payment_total != total {
        return Err(reader.fail("CtrlSum equal to the transactions' sum"));
    }
    let total = i64::try_from(total).map_err(|_| reader.fail("an amount that fits"))?;
    Ok(ParsedPain001 {
        batch_id: message_id,
        record_count: count,
        total: Fen::new(total),
        end_to_end_ids,
    })
}

/// A cursor over the file's text.
struct Reader<'b> {
    text: &'b str,
    offset: usize,
}

impl<'b> Reader<'b> {
    fn rest(&self) -> &'b str {
        self.text.get(self.offset..).unwrap_or_default()
    }

    fn fail(&self, expected: &'static str) -> Pain001ReadError {
        Pain001ReadError {
            offset: self.offset,
            expected,
        }
    }

    fn literal(&mut self, expected: &'static str) -> Result<(), Pain001ReadError> {
        if !self.rest().starts_with(expected) {
            return Err(self.fail(expected));
        }
        self.offset += expected.len();
        Ok(())
    }

    /// The text up to the next `<`, unescaped; never empty (the schema's minimum).
    fn value(&mut self) -> Result<Cow<'b, str>, Pain001ReadError> {
        let rest = self.rest();
        let length = rest
            .find('<')
            .ok_or_else(|| self.fail("a value and a tag"))?;
        let raw = rest.get(..length).unwrap_or_default();
        if raw.is_empty() {
            return Err(self.fail("a value"));
        }
        let value = unescape(raw).ok_or_else(|| self.fail("one of the five XML escapes"))?;
        self.offset += length;
        Ok(value)
    }

    /// `<tag>value</tag>` and its line break, as the writer's `text` writes it.
    fn element(&mut self, tag: &'static str) -> Result<Cow<'b, str>, Pain001ReadError> {
        self.tag("<", tag, ">", "an opening tag")?;
        let value = self.value()?;
        self.tag("</", tag, ">\n", "a closing tag")?;
        Ok(value)
    }

    fn tag(
        &mut self,
        open: &str,
        tag: &str,
        close: &str,
        expected: &'static str,
    ) -> Result<(), Pain001ReadError> {
        let rest = self.rest();
        let found = rest
            .strip_prefix(open)
            .and_then(|after| after.strip_prefix(tag))
            .is_some_and(|after| after.starts_with(close));
        if !found {
            return Err(self.fail(expected));
        }
        self.offset += open.len() + tag.len() + close.len();
        Ok(())
    }

    fn count(&mut self) -> Result<u64, Pain001ReadError> {
        let text = self.element("NbOfTxs")?;
        digits(&text).ok_or_else(|| self.fail("NbOfTxs as digits"))
    }

    /// An amount between `open` and `close`, in fen.
    fn element_amount(
        &mut self,
        open: &'static str,
        close: &'static str,
    ) -> Result<u64, Pain001ReadError> {
        self.literal(open)?;
        let text = self.value()?;
        let amount = yuan_to_fen(&text).ok_or_else(|| self.fail("yuan with two decimals"))?;
        self.literal(close)?;
        Ok(amount)
    }

    /// `FinInstnId/ClrSysMmbId` with a CNAPS member id, as the writer's `agent`.
    fn agent(&mut self) -> Result<(), Pain001ReadError> {
        self.literal(
            "<FinInstnId>\n<ClrSysMmbId>\n<ClrSysId>\n<Prtry>CNAPS</Prtry>\n</ClrSysId>\n",
        )?;
        self.element("MmbId")?;
        self.literal("</ClrSysMmbId>\n</FinInstnId>\n")
    }

    /// One `CdtTrfTxInf`, as the writer's `credit_transfer`: its id and amount.
    fn transaction(&mut self) -> Result<(Cow<'b, str>, u64), Pain001ReadError> {
        self.literal("<CdtTrfTxInf>\n<PmtId>\n")?;
        let end_to_end_id = self.element("EndToEndId")?;
        self.literal("</PmtId>\n<Amt>\n")?;
        let amount = self.element_amount("<InstdAmt Ccy=\"CNY\">", "</InstdAmt>\n")?;
        self.literal("</Amt>\n<CdtrAgt>\n")?;
        self.agent()?;
        self.literal("</CdtrAgt>\n<Cdtr>\n")?;
        self.element("Nm")?;
        self.literal("<Id>\n<PrvtId>\n<Othr>\n")?;
        self.element("Id")?;
        self.literal(concat!(
            "<SchmeNm>\n<Cd>NIDN</Cd>\n</SchmeNm>\n</Othr>\n</PrvtId>\n</Id>\n</Cdtr>\n",
            "<CdtrAcct>\n<Id>\n<Othr>\n"
        ))?;
        self.element("Id")?;
        self.literal("</Othr>\n</Id>\n</CdtrAcct>\n")?;
        if self.rest().starts_with("<RmtInf>") {
            self.literal("<RmtInf>\n")?;
            self.element("Ustrd")?;
            self.literal("</RmtInf>\n")?;
        }
        self.literal("</CdtTrfTxInf>\n")?;
        Ok((end_to_end_id, amount))
    }
}

/// The writer's five escapes undone; `None` for any other `&`.
fn unescape(raw: &str) -> Option<Cow<'_, str>> {
    if !raw.contains('&') {
        return Some(Cow::Borrowed(raw));
    }
    let mut text = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(index) = rest.find('&') {
        text.push_str(rest.get(..index)?);
        let entity = rest.get(index..)?;
        let (character, length) = [
            ('&', "&amp;"),
            ('<', "&lt;"),
            ('>', "&gt;"),
            ('"', "&quot;"),
            ('\'', "&apos;"),
        ]
        .into_iter()
        .find(|(_, escape)| entity.starts_with(escape))
        .map(|(character, escape)| (character, escape.len()))?;
        text.push(character);
        rest = entity.get(length..)?;
    }
    text.push_str(rest);
    Some(Cow::Owned(text))
}

fn digits(text: &str) -> Option<u64> {
    if text.is_empty() || text.len() > 18 || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// `523.40` → 52340: digits, a point and exactly two decimals, as the writer writes.
fn yuan_to_fen(text: &str) -> Option<u64> {
    let (whole, fraction) = text.split_once('.')?;
    if whole.len() > 16 || fraction.len() != 2 {
        return None;
    }
    digits(whole)?
        .checked_mul(100)?
        .checked_add(digits(fraction)?)
        .filter(|fen| *fen <= AMOUNT_FEN_MAX)
}
