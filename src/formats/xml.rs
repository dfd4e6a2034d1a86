//! The ISO 20022 `pain.001.001.09` writer (customer credit transfer initiation).
//!
//! Why string fragments and not an XML event writer: the shape is fixed by the schema
//! and a million transactions must render in well under a second. Safety comes from
//! two rules instead: every text goes through `escape`, and every value is checked
//! against its schema facet (length, characters, digits) before it is written, so the
//! writer cannot produce a file the official XSD would refuse.

use crate::domain::money::Fen;
use crate::domain::payment::{PaymentBatch, PaymentInstruction};
use crate::formats::render::{household, write_money, FormatError};
use crate::formats::spec::AmountUnit;

const NAMESPACE: &str = "urn:iso:std:iso:20022:tech:xsd:pain.001.001.09";

/// The clearing system our agents are identified in (`ClrSysId/Prtry`).
const CLEARING_SYSTEM: &str = "CNAPS";

/// Schema text types by their maximum length in characters (minimum is always 1).
#[derive(Clone, Copy)]
enum TextType {
    Max34,
    Max35,
    Max140,
}

impl TextType {
    fn max_chars(self) -> usize {
        match self {
            TextType::Max34 => 34,
            TextType::Max35 => 35,
            TextType::Max140 => 140,
        }
    }
}

/// Largest `CtrlSum`/`InstdAmt` the schema allows (18 total digits, 2 of them
/// decimals here): 9_999_999_999_999_999.99 yuan.
const AMOUNT_FEN_SCHEMA_MAX: i64 = 999_999_999_999_999_999;

struct XmlWriter<'b> {
    out: String,
    owner: &'b dyn Fn() -> String,
}

/// A transaction's markup without its values (`credit_transfer`), and `RmtInf`'s.
const TRANSACTION_MARKUP_BYTES: usize = 428;
const REMITTANCE_MARKUP_BYTES: usize = 35;
/// The group header and payment information around the transactions, values aside.
const DOCUMENT_MARKUP_BYTES: usize = 1024;
/// The longest amount: 18 digits and a point.
const AMOUNT_BYTES_MAX: usize = 19;

/// The file's size, close above (escapes aside): a buffer that large is reserved once,
/// not doubled, and not much larger than needed, so fewer fresh pages are touched.
pub(crate) fn capacity_estimate(batch: &PaymentBatch) -> usize {
    let header = DOCUMENT_MARKUP_BYTES
        + 2 * (batch.batch_id.len() + batch.payer_name.len() + AMOUNT_BYTES_MAX)
        + batch.payer_account.len()
        + batch.payer_bank_code.len();
    let transactions: usize = batch
        .payments
        .iter()
        .map(|payment| {
            let memo = match payment.memo.len() {
                0 => 0,
                length => REMITTANCE_MARKUP_BYTES + length,
            };
            TRANSACTION_MARKUP_BYTES
                + AMOUNT_BYTES_MAX
                + payment.end_to_end_id.len()
                + payment.bank_code.len()
                + payment.account_name.len()
                + payment.id_number.len()
                + payment.account_number.len()
                + memo
        })
        .sum();
    header + transactions
}

/// Renders `batch` as pain.001.001.09 bytes (UTF-8). `total` is the details' sum.
pub(crate) fn render_pain001(batch: &PaymentBatch, total: Fen) -> Result<Vec<u8>, FormatError> {
    let batch_owner = || format!("batch {}", batch.batch_id);
    let mut xml = XmlWriter {
        out: String::with_capacity(capacity_estimate(batch)),
        owner: &batch_owner,
    };
    xml.raw("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    xml.raw("<Document xmlns=\"");
    xml.raw(NAMESPACE);
    xml.raw("\">\n<CstmrCdtTrfInitn>\n");
    xml.group_header(batch, total)?;
    xml.payment_information_open(batch, total)?;
    for payment in &batch.payments {
        let owner = || household(payment);
        let mut transaction = XmlWriter {
            out: std::mem::take(&mut xml.out),
            owner: &owner,
        };
        let written = transaction.credit_transfer(payment);
        xml.out = transaction.out;
        written?;
    }
    xml.raw("</PmtInf>\n</CstmrCdtTrfInitn>\n</Document>\n");
    Ok(xml.out.into_bytes())
}

impl XmlWriter<'_> {
    fn raw(&mut self, fragment: &str) {
        self.out.push_str(fragment);
    }

    /// `<tag>text</tag>` after checking `text` against the schema type.
    fn text(&mut self, tag: &str, text_type: TextType, value: &str) -> Result<(), FormatError> {
        self.out.push('<');
        self.out.push_str(tag);
        self.out.push('>');
        self.value(tag, text_type, value)?;
        self.out.push_str("</");
        self.out.push_str(tag);
        self.out.push_str(">\n");
        Ok(())
    }

    /// The element's content alone (the caller writes the tags around it), checked
    /// against the schema type and escaped.
    fn value(&mut self, tag: &str, text_type: TextType, value: &str) -> Result<(), FormatError> {
        // Printable ASCII without a special character, within the length: nothing to
        // check further and nothing to escape. Ids, codes and accounts are all this.
        let plain = !value.is_empty()
            && value.len() <= text_type.max_chars()
            && value.bytes().all(|byte| {
                (0x20..0x7F).contains(&byte) && !matches!(byte, b'&' | b'<' | b'>' | b'"' | b'\'')
            });
        if plain {
            self.out.push_str(value);
            return Ok(());
        }
        self.check_text(tag, text_type, value)?;
        escape_into(&mut self.out, value);
        Ok(())
    }

    fn check_text(&self, tag: &str, text_type: TextType, value: &str) -> Result<(), FormatError> {
        let facet = |reason| FormatError::SchemaFacet {
            owner: (self.owner)(),
            field: tag.to_string(),
            value: shown_value(tag, value),
            reason,
        };
        if value.is_empty() {
            return Err(facet("must not be empty"));
        }
        // Schema lengths count characters; an ASCII text's length is its byte count.
        let (length, has_control) = match value.is_ascii() {
            true => (
                value.len(),
                value.bytes().any(|byte| byte < 0x20 || byte == 0x7F),
            ),
            false => (value.chars().count(), value.chars().any(char::is_control)),
        };
        if length > text_type.max_chars() {
            return Err(facet("longer than the schema allows"));
        }
        // XML 1.0 forbids most control characters outright; tab/CR/LF would be
        // normalised by readers, changing the value, so none is allowed.
        if has_control {
            return Err(facet("contains a control character"));
        }
        Ok(())
    }

    fn amount(&mut self, tag: &str, attributes: &str, amount: Fen) -> Result<(), FormatError> {
        self.out.push('<');
        self.out.push_str(tag);
        self.out.push_str(attributes);
        self.out.push('>');
        self.amount_value(tag, amount)?;
        self.out.push_str("</");
        self.out.push_str(tag);
        self.out.push_str(">\n");
        Ok(())
    }

    /// The amount in yuan with two decimals, within the schema's 18 digits.
    fn amount_value(&mut self, tag: &str, amount: Fen) -> Result<(), FormatError> {
        if amount < Fen::ZERO || amount.as_i64() > AMOUNT_FEN_SCHEMA_MAX {
            return Err(FormatError::SchemaFacet {
                owner: (self.owner)(),
                field: tag.to_string(),
                value: amount.to_string(),
                reason: "outside 0 to 18 digits",
            });
        }
        write_money(&mut self.out, amount, AmountUnit::Yuan);
        Ok(())
    }

    fn group_header(&mut self, batch: &PaymentBatch, total: Fen) -> Result<(), FormatError> {
        self.raw("<GrpHdr>\n");
        self.text("MsgId", TextType::Max35, &batch.batch_id)?;
        let created = batch.created_at.format("%Y-%m-%dT%H:%M:%S").to_string();
        self.text("CreDtTm", TextType::Max35, &created)?;
        self.text(
            "NbOfTxs",
            TextType::Max35,
            &batch.payments.len().to_string(),
        )?;
        self.amount("CtrlSum", "", total)?;
        self.raw("<InitgPty>\n");
        self.text("Nm", TextType::Max140, &batch.payer_name)?;
        self.raw("</InitgPty>\n</GrpHdr>\n");
        Ok(())
    }

    fn payment_information_open(
        &mut self,
        batch: &PaymentBatch,
        total: Fen,
    ) -> Result<(), FormatError> {
        self.raw("<PmtInf>\n");
        self.text("PmtInfId", TextType::Max35, &batch.batch_id)?;
        self.raw("<PmtMtd>TRF</PmtMtd>\n");
        self.text(
            "NbOfTxs",
            TextType::Max35,
            &batch.payments.len().to_string(),
        )?;
        self.amount("CtrlSum", "", total)?;
        self.raw("<ReqdExctnDt>\n");
        self.text(
            "Dt",
            TextType::Max35,
            &batch.pay_date.format("%Y-%m-%d").to_string(),
        )?;
        self.raw("</ReqdExctnDt>\n<Dbtr>\n");
        self.text("Nm", TextType::Max140, &batch.payer_name)?;
        self.raw("</Dbtr>\n<DbtrAcct>\n<Id>\n<Othr>\n");
        self.text("Id", TextType::Max34, &batch.payer_account)?;
        self.raw("</Othr>\n</Id>\n</DbtrAcct>\n<DbtrAgt>\n");
        self.agent(&batch.payer_bank_code)?;
        self.raw("</DbtrAgt>\n");
        Ok(())
    }

    /// `FinInstnId/ClrSysMmbId` with the CNAPS code; the caller writes the wrapper.
    fn agent(&mut self, bank_code: &str) -> Result<(), FormatError> {
        self.raw("<FinInstnId>\n<ClrSysMmbId>\n<ClrSysId>\n<Prtry>");
        self.raw(CLEARING_SYSTEM);
        self.raw("</Prtry>\n</ClrSysId>\n");
        self.text("MmbId", TextType::Max35, bank_code)?;
        self.raw("</ClrSysMmbId>\n</FinInstnId>\n");
        Ok(())
    }

    /// One transaction: the fixed markup between the values is written a run at a time
    /// (the element tags of a value are in the runs around it), the values checked and
    /// escaped by `value` in schema order.
    fn credit_transfer(&mut self, payment: &PaymentInstruction) -> Result<(), FormatError> {
        self.raw("<CdtTrfTxInf>\n<PmtId>\n<EndToEndId>");
        self.value("EndToEndId", TextType::Max35, &payment.end_to_end_id)?;
        self.raw("</EndToEndId>\n</PmtId>\n<Amt>\n<InstdAmt Ccy=\"CNY\">");
        self.amount_value("InstdAmt", payment.amount)?;
        self.raw("</InstdAmt>\n</Amt>\n<CdtrAgt>\n");
        self.raw("<FinInstnId>\n<ClrSysMmbId>\n<ClrSysId>\n<Prtry>");
        self.raw(CLEARING_SYSTEM);
        self.raw("</Prtry>\n</ClrSysId>\n<MmbId>");
        self.value("MmbId", TextType::Max35, &payment.bank_code)?;
        self.raw("</MmbId>\n</ClrSysMmbId>\n</FinInstnId>\n");
        self.raw("</CdtrAgt>\n<Cdtr>\n<Nm>");
        self.value("Nm", TextType::Max140, &payment.account_name)?;
        self.raw("</Nm>\n<Id>\n<PrvtId>\n<Othr>\n<Id>");
        self.value("Id", TextType::Max35, &payment.id_number)?;
        self.raw(
            "</Id>\n<SchmeNm>\n<Cd>NIDN</Cd>\n</SchmeNm>\n</Othr>\n</PrvtId>\n</Id>\n</Cdtr>\n",
        );
        self.raw("<CdtrAcct>\n<Id>\n<Othr>\n<Id>");
        self.value("Id", TextType::Max34, &payment.account_number)?;
        self.raw("</Id>\n</Othr>\n</Id>\n</CdtrAcct>\n");
        // Ustrd is optional; an empty memo would break its minimum length of 1.
        if !payment.memo.is_empty() {
            self.raw("<RmtInf>\n<Ustrd>");
            self.value("Ustrd", TextType::Max140, &payment.memo)?;
            self.raw("</Ustrd>\n</RmtInf>\n");
        }
        self.raw("</CdtTrfTxInf>\n");
        Ok(())
    }
}

/// Escapes the five XML special characters. The fast path copies whole runs.
fn escape_into(out: &mut String, text: &str) {
    let mut start = 0;
    for (index, byte) in text.bytes().enumerate() {
        let replacement = match byte {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' => "&quot;",
            b'\'' => "&apos;",
            _ => continue,
        };
        out.push_str(&text[start..index]);
        out.push_str(replacement);
        start = index + 1;
    }
    out.push_str(&text[start..]);
}

/// A value as an error may show it (P13): a name (`Nm`) and an ID or account number
/// (`Id`) masked, anything else as it is.
fn shown_value(tag: &str, value: &str) -> String {
    match tag {
        "Nm" => crate::domain::mask::mask_name(value),
        "Id" => crate::domain::mask::mask_digits_in_text(value),
        _ => value.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::escape_into;

    #[test]
    fn escapes_specials_only() {
        let mut out = String::new();
        escape_into(&mut out, "张<三>&'\"x");
        assert_eq!(out, "张&lt;三&gt;&amp;&apos;&quot;x");
    }
}
