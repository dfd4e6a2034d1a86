//! Rendering a `PaymentBatch` into the bytes of a payment file, following a `Layout`.
//!
//! The control records (header and trailer count and total) are filled from the
//! details here, never taken from the caller, so a file cannot disagree with itself.
//! Nothing is ever cut, replaced or escaped to make it fit: a value that does not fit
//! its encoding or its width stops the render with an error naming whose value it is.

use crate::domain::money::Fen;
use crate::domain::payment::{PaymentBatch, PaymentInstruction};
use crate::formats::spec::{
    AmountUnit, DateFormat, FieldContent, FieldSpec, FieldType, Layout, LayoutKind, Purpose,
    RecordRole, RecordSpec, Source,
};
use chrono::NaiveDate;
use std::fmt::Write as _;

/// Most payments one file may carry; far above a county's monthly roll, low enough that
/// every total stays inside the 18 digits of an N15 field and a pain.001 `CtrlSum`.
pub const PAYMENTS_PER_FILE_MAX: usize = 10_000_000;

/// A rendered payment file with the control figures it was built from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenderedFile {
    pub bytes: Vec<u8>,
    /// Number of detail records (payments).
    pub record_count: u64,
    pub total: Fen,
}

/// Why a batch could not be rendered. `owner` is `household <id>` or `batch <id>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("{owner}: {field} contains {character} (U+{code:04X}), which {encoding} cannot encode", code = u32::from(*character))]
    Unencodable {
        owner: String,
        field: String,
        character: char,
        encoding: &'static str,
    },
    #[error("{owner}: {field} is {length} bytes, longer than its {width}-byte field")]
    TooLong {
        owner: String,
        field: String,
        length: usize,
        width: usize,
    },
    #[error(
        "{owner}: {field} contains the character {character:?}, which this format cannot carry"
    )]
    ForbiddenCharacter {
        owner: String,
        field: String,
        character: char,
    },
    #[error("{owner}: {field} must be digits only for an N field")]
    NotDigits { owner: String, field: String },
    #[error("{owner}: {field} {value:?} breaks the ISO 20022 schema: {reason}")]
    SchemaFacet {
        owner: String,
        field: String,
        value: String,
        reason: &'static str,
    },
    #[error("{owner}: amount {amount} is negative")]
    NegativeAmount { owner: String, amount: Fen },
    #[error("batch {batch_id}: {reason}")]
    Batch {
        batch_id: String,
        reason: &'static str,
    },
    #[error("layout {layout} is a result layout; payment files need a payment layout")]
    NotAPaymentLayout { layout: String },
    #[error("{owner}: {field} has no value in this context")]
    SourceUnavailable { owner: String, field: String },
}

/// A value a field can take before formatting.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Value<'a> {
    Text(&'a str),
    Number(u64),
    Money(Fen),
    Date(NaiveDate),
    /// The source has no meaning for this record (the layout validation prevents it).
    Missing,
}

/// Renders one batch as a payment file in `layout`.
pub fn render_payment_file(
    layout: &Layout,
    batch: &PaymentBatch,
) -> Result<RenderedFile, FormatError> {
    if layout.purpose() != Purpose::Payment {
        return Err(FormatError::NotAPaymentLayout {
            layout: layout.name().to_string(),
        });
    }
    let total = batch_total(batch)?;
    let bytes = match layout.kind() {
        LayoutKind::Iso20022Pain001 => crate::formats::xml::render_pain001(batch, total)?,
        LayoutKind::Delimited | LayoutKind::Fixed => render_tabular(layout, batch, total)?,
    };
    Ok(RenderedFile {
        bytes,
        record_count: batch.payments.len() as u64,
        total,
    })
}

/// The batch's control total from its details; refuses empty, oversized or negative.
fn batch_total(batch: &PaymentBatch) -> Result<Fen, FormatError> {
    let refuse = |reason| FormatError::Batch {
        batch_id: batch.batch_id.clone(),
        reason,
    };
    if batch.payments.is_empty() {
        return Err(refuse("has no payments; an empty file is never sent"));
    }
    if batch.payments.len() > PAYMENTS_PER_FILE_MAX {
        return Err(refuse("has more payments than one file may carry"));
    }
    let mut total = Fen::ZERO;
    for payment in &batch.payments {
        if payment.amount < Fen::ZERO {
            return Err(FormatError::NegativeAmount {
                owner: household(payment),
                amount: payment.amount,
            });
        }
        total = total
            .checked_add(payment.amount)
            .ok_or_else(|| refuse("total overflows"))?;
    }
    Ok(total)
}

pub(crate) fn household(payment: &PaymentInstruction) -> String {
    format!("household {}", payment.household_id)
}

fn render_tabular(
    layout: &Layout,
    batch: &PaymentBatch,
    total: Fen,
) -> Result<Vec<u8>, FormatError> {
    let count = batch.payments.len() as u64;
    let line_bytes = layout.record_width().max(160) + 2;
    let mut writer = RecordWriter::new(layout, line_bytes * (batch.payments.len() + 3));
    let batch_owner = || format!("batch {}", batch.batch_id);
    let batch_value = |source| batch_value(batch, count, total, source);
    for record in layout.records() {
        match record.role {
            RecordRole::Detail => {
                for payment in &batch.payments {
                    let owner = || household(payment);
                    writer.write_record(record, &owner, |source| payment_value(payment, source))?;
                }
            }
            _ => writer.write_record(record, &batch_owner, batch_value)?,
        }
    }
    Ok(writer.finish())
}

fn batch_value(batch: &PaymentBatch, count: u64, total: Fen, source: Source) -> Value<'_> {
    match source {
        Source::BatchId => Value::Text(&batch.batch_id),
        Source::PayerAccount => Value::Text(&batch.payer_account),
        Source::PayerName => Value::Text(&batch.payer_name),
        Source::PayerBankCode => Value::Text(&batch.payer_bank_code),
        Source::PayDate => Value::Date(batch.pay_date),
        Source::Memo => Value::Text(&batch.memo),
        Source::Count => Value::Number(count),
        Source::Total => Value::Money(total),
        _ => Value::Missing,
    }
}

fn payment_value(payment: &PaymentInstruction, source: Source) -> Value<'_> {
    match source {
        Source::Seq => Value::Number(u64::from(payment.seq)),
        Source::EndToEndId => Value::Text(&payment.end_to_end_id),
        Source::HouseholdId => Value::Text(&payment.household_id),
        Source::AccountNumber => Value::Text(&payment.account_number),
        Source::AccountName => Value::Text(&payment.account_name),
        Source::IdNumber => Value::Text(&payment.id_number),
        Source::Amount => Value::Money(payment.amount),
        Source::BankCode => Value::Text(&payment.bank_code),
        Source::Memo => Value::Text(&payment.memo),
        _ => Value::Missing,
    }
}

/// Writes records into one growing buffer. Each field is encoded straight into it and
/// padded in place; the scratch string holds numbers, money and dates before encoding.
pub(crate) struct RecordWriter<'l> {
    layout: &'l Layout,
    out: Vec<u8>,
    /// The field's text before encoding (numbers, dates, money).
    text: String,
}

impl<'l> RecordWriter<'l> {
    pub(crate) fn new(layout: &'l Layout, capacity: usize) -> RecordWriter<'l> {
        RecordWriter {
            layout,
            out: Vec::with_capacity(capacity),
            text: String::with_capacity(64),
        }
    }

    pub(crate) fn finish(self) -> Vec<u8> {
        self.out
    }

    /// Appends one record and its line ending.
    pub(crate) fn write_record<'v>(
        &mut self,
        record: &RecordSpec,
        owner: &dyn Fn() -> String,
        value: impl Fn(Source) -> Value<'v>,
    ) -> Result<(), FormatError> {
        let delimited = self.layout.kind() == LayoutKind::Delimited;
        for (index, field) in record.fields.iter().enumerate() {
            if delimited && index > 0 {
                self.out.push(self.layout.delimiter());
            }
            let field_value = match &field.content {
                FieldContent::Literal(text) => Value::Text(text),
                FieldContent::Source(source) => value(*source),
            };
            self.write_field(field, field_value, owner)?;
        }
        if delimited && self.layout.trailing_delimiter() {
            self.out.push(self.layout.delimiter());
        }
        self.out
            .extend_from_slice(self.layout.line_ending().bytes());
        Ok(())
    }

    /// Formats, checks, encodes and places one field. The checks run in this order,
    /// each a refusal: a forbidden character, a character the encoding lacks, a non-digit
    /// in an N field, a value wider than its field.
    fn write_field(
        &mut self,
        field: &FieldSpec,
        value: Value<'_>,
        owner: &dyn Fn() -> String,
    ) -> Result<(), FormatError> {
        let RecordWriter { layout, out, text } = self;
        text.clear();
        let text: &str = match value {
            Value::Text(value) => value,
            Value::Number(number) => {
                push_u64(text, number);
                text
            }
            Value::Money(amount) => {
                write_money(text, amount, field.amount_unit);
                text
            }
            Value::Date(date) => {
                write_date(text, date, layout.date_format());
                text
            }
            Value::Missing => {
                return Err(FormatError::SourceUnavailable {
                    owner: owner(),
                    field: field.label.clone(),
                })
            }
        };
        let start = out.len();
        if is_plain_ascii(layout, text) {
            // Printable ASCII without the delimiter: nothing to refuse, and every
            // encoding writes it as it is.
            out.extend_from_slice(text.as_bytes());
        } else {
            check_characters(layout, field, text, owner)?;
            layout
                .encoding()
                .encode_into(text, out)
                .map_err(|error| FormatError::Unencodable {
                    owner: owner(),
                    field: field.label.clone(),
                    character: error.character,
                    encoding: error.encoding,
                })?;
        }
        place_field(layout, field, out, start, owner)
    }
}

/// Whether `text` is printable ASCII without the layout's delimiter.
fn is_plain_ascii(layout: &Layout, text: &str) -> bool {
    let delimiter = match layout.kind() {
        LayoutKind::Delimited => layout.delimiter(),
        _ => 0,
    };
    text.bytes()
        .all(|byte| (0x20..0x7F).contains(&byte) && byte != delimiter)
}

/// Pads (fixed) or bounds (delimited) the value encoded at `out[start..]`, in place.
/// On a refusal the value is taken out again.
fn place_field(
    layout: &Layout,
    field: &FieldSpec,
    out: &mut Vec<u8>,
    start: usize,
    owner: &dyn Fn() -> String,
) -> Result<(), FormatError> {
    let encoded = out.get(start..).unwrap_or_default();
    let length = encoded.len();
    if field.field_type == FieldType::N && !encoded.iter().all(u8::is_ascii_digit) {
        out.truncate(start);
        return Err(FormatError::NotDigits {
            owner: owner(),
            field: field.label.clone(),
        });
    }
    let width = match field.width {
        Some(width) if length > width => {
            out.truncate(start);
            return Err(FormatError::TooLong {
                owner: owner(),
                field: field.label.clone(),
                length,
                width,
            });
        }
        Some(width) => width,
        None => length,
    };
    let pad = width - length;
    match field.field_type {
        // Zeros go before the digits: append them, then turn them to the front.
        FieldType::N => {
            out.resize(out.len() + pad, b'0');
            if let Some(placed) = out.get_mut(start..) {
                placed.rotate_right(pad);
            }
        }
        // A delimited C field is bounded, never padded: the bank trims nothing.
        FieldType::C if layout.kind() == LayoutKind::Delimited => {}
        FieldType::C => out.resize(out.len() + pad, b' '),
    }
    Ok(())
}

/// Control characters would break any record; the delimiter would shift a delimited one.
fn check_characters(
    layout: &Layout,
    field: &FieldSpec,
    text: &str,
    owner: &dyn Fn() -> String,
) -> Result<(), FormatError> {
    let delimiter = layout.delimiter();
    let delimited = layout.kind() == LayoutKind::Delimited;
    // Fast path: no control byte, no delimiter byte, and no C1 control (which UTF-8
    // encodes as 0xC2 0x80..=0x9F, so a text without 0xC2 has none).
    let suspicious = |byte: &u8| {
        *byte < 0x20 || *byte == 0x7F || *byte == 0xC2 || (delimited && *byte == delimiter)
    };
    if !text.as_bytes().iter().any(suspicious) {
        return Ok(());
    }
    let delimiter = char::from(delimiter);
    let forbidden = text
        .chars()
        .find(|character| character.is_control() || (delimited && *character == delimiter));
    match forbidden {
        Some(character) => Err(FormatError::ForbiddenCharacter {
            owner: owner(),
            field: field.label.clone(),
            character,
        }),
        None => Ok(()),
    }
}

fn write_display(text: &mut String, value: impl std::fmt::Display) {
    // Writing into a String cannot fail.
    write!(text, "{value}").expect("write to String");
}

/// Decimal digits of `value`, without the formatting machinery: this runs several
/// times per payment, a million payments per file.
pub(crate) fn push_u64(text: &mut String, mut value: u64) {
    let mut digits = [0u8; 20];
    let mut position = digits.len();
    loop {
        position -= 1;
        digits[position] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    text.extend(digits[position..].iter().map(|digit| char::from(*digit)));
}

/// Money as `Fen`'s `Display` writes it (yuan, two decimals) or as integer fen.
pub(crate) fn write_money(text: &mut String, amount: Fen, unit: AmountUnit) {
    if amount < Fen::ZERO {
        text.push('-');
    }
    let magnitude = amount.as_i64().unsigned_abs();
    match unit {
        AmountUnit::Fen => push_u64(text, magnitude),
        AmountUnit::Yuan => {
            push_u64(text, magnitude / 100);
            text.push('.');
            text.push(char::from(b'0' + (magnitude % 100 / 10) as u8));
            text.push(char::from(b'0' + (magnitude % 10) as u8));
        }
    }
}

pub(crate) fn write_date(text: &mut String, date: NaiveDate, format: DateFormat) {
    let pattern = match format {
        DateFormat::Compact => "%Y%m%d",
        DateFormat::Iso => "%Y-%m-%d",
    };
    write_display(text, date.format(pattern));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_money_matches_display() {
        let amounts = (-1_005..=1_005).chain([i64::MAX, i64::MIN + 1, 10_000_000_000]);
        for fen in amounts {
            let mut yuan = String::new();
            write_money(&mut yuan, Fen::new(fen), AmountUnit::Yuan);
            assert_eq!(yuan, Fen::new(fen).to_string());
            let mut digits = String::new();
            write_money(&mut digits, Fen::new(fen), AmountUnit::Fen);
            assert_eq!(digits, fen.to_string());
        }
    }
}
