//! Reading tabular files (delimited or fixed) back: our own payment files, to re-check
//! them before signing, and the banks' result files (R1, R1B).
//!
//! The whole file is checked before anything is returned: strict decoding, every
//! record's width or field count, every literal, and the header/trailer control
//! figures against the details. A file cut at any byte is refused (every line must end
//! with the line ending, and the trailer and end records must be where the layout puts
//! them), so a half-received file can never be half-applied. No input panics.
//!
//! Why fields borrow: export reads every file it renders back before signing it, a
//! million records a run. A field's text is a slice of the file's bytes wherever they are
//! ASCII (or UTF-8), so only names and memos in GBK are decoded into strings of their own.
//! Details are read in one pass into the caller's values; a value error is held until
//! every record's shape has been checked, so the error reported is the one a two-pass
//! reader (every record's shape first, then the values) would report.

use crate::domain::bank_result::{normalise_reason, PaymentResult, ResultFile, ResultStatus};
use crate::domain::money::Fen;
use crate::formats::spec::{
    AmountUnit, DateFormat, FieldContent, FieldSpec, FieldType, Layout, LayoutKind, Purpose,
    RecordRole, RecordSpec, Source, SourceClass,
};
use chrono::NaiveDate;
use std::borrow::Cow;

/// Most lines a file may have; a larger file is refused before it is split.
pub const LINES_PER_FILE_MAX: usize = 20_000_000;

/// Why a file was refused, and where: 1-based line, and the column (fixed layouts: the
/// field's first byte; delimited layouts: the field's 1-based number; 0: whole line).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column} ({field}): {reason}")]
pub struct FormatParseError {
    pub line: u64,
    pub column: u64,
    pub field: String,
    pub reason: ParseReason,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseReason {
    #[error("layout {0} is not a tabular layout of the expected purpose")]
    WrongLayout(String),
    #[error("the file is empty")]
    Empty,
    #[error("more than {LINES_PER_FILE_MAX} lines")]
    TooManyLines,
    #[error("not valid {encoding} at byte offset {offset} of the file")]
    Malformed { encoding: &'static str, offset: u64 },
    #[error("the last line has no line ending: the file is truncated")]
    MissingLineEnding,
    #[error("a line ends with LF alone; this layout uses CRLF")]
    BareLineFeed,
    #[error("the file ends before its {0} record")]
    MissingRecord(&'static str),
    #[error("record is {found} bytes; the layout says {expected}")]
    WrongWidth { found: usize, expected: usize },
    #[error("the record does not end with the delimiter")]
    MissingTrailingDelimiter,
    #[error("{found} fields; the layout has {expected}")]
    FieldCount { found: usize, expected: usize },
    #[error("expected {expected:?}, found {found:?}")]
    Literal { expected: String, found: String },
    #[error("{0:?} is not a number")]
    NotDigits(String),
    #[error("{0:?} is not an amount")]
    BadAmount(String),
    #[error("{0:?} is not a date")]
    BadDate(String),
    #[error("{0:?} is not a status (S or F)")]
    BadStatus(String),
    #[error("{0} must not be empty")]
    EmptyValue(&'static str),
    #[error("end_to_end_id {0} appears twice")]
    DuplicateEndToEndId(String),
    #[error("the file says {stated}, its details give {computed}")]
    ControlMismatch { stated: String, computed: String },
}

/// A payment file read back, with its control figures already checked. Texts borrow
/// from the file's bytes where they can (`Cow::into_owned` for a `String`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedPaymentFile<'b> {
    pub layout: String,
    pub batch_id: Option<String>,
    pub pay_date: Option<NaiveDate>,
    pub record_count: u64,
    pub total: Fen,
    pub payments: Vec<ParsedPayment<'b>>,
}

/// One detail record of a payment file. Fields the layout does not carry are `None`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedPayment<'b> {
    pub line: u64,
    pub seq: Option<u64>,
    pub end_to_end_id: Cow<'b, str>,
    pub account_number: Option<Cow<'b, str>>,
    pub account_name: Option<Cow<'b, str>>,
    pub id_number: Option<Cow<'b, str>>,
    pub amount: Fen,
    pub bank_code: Option<Cow<'b, str>>,
    pub memo: Option<Cow<'b, str>>,
}

/// One field's decoded text, padding removed.
struct ParsedField<'l, 'b> {
    spec: &'l FieldSpec,
    source: Source,
    text: Cow<'b, str>,
    column: u64,
}

/// One record's source fields (literals are checked and dropped).
struct ParsedRecord<'l, 'b> {
    line: u64,
    fields: Vec<ParsedField<'l, 'b>>,
}

/// A line of the file: 1-based number, byte offset of its start, its bytes without
/// the line ending.
struct Line<'b> {
    number: u64,
    offset: usize,
    bytes: &'b [u8],
}

fn error(line: u64, column: u64, field: &str, reason: ParseReason) -> FormatParseError {
    FormatParseError {
        line,
        column,
        field: field.to_string(),
        reason,
    }
}

/// Reads a payment file (ours) and checks it whole.
pub fn parse_payment_file<'b>(
    layout: &Layout,
    bytes: &'b [u8],
) -> Result<ParsedPaymentFile<'b>, FormatParseError> {
    let file = parse_tabular(layout, bytes, Purpose::Payment, |record| {
        Ok(ParsedPayment {
            line: record.line,
            seq: record.number(Source::Seq)?,
            end_to_end_id: record.take_required_text(Source::EndToEndId)?,
            account_number: record.take_text(Source::AccountNumber),
            account_name: record.take_text(Source::AccountName),
            id_number: record.take_text(Source::IdNumber),
            amount: record.money(Source::Amount)?.unwrap_or(Fen::ZERO),
            bank_code: record.take_text(Source::BankCode),
            memo: record.take_text(Source::Memo),
        })
    })?;
    let payments = file.details;
    check_sequence_and_identity(&payments)?;
    let total = sum(
        payments.iter().map(|payment| payment.amount),
        file.last_line,
    )?;
    let controls = Controls {
        count: payments.len() as u64,
        total,
        ok: None,
    };
    let batch = file.batch;
    batch.check_controls(&controls)?;
    Ok(ParsedPaymentFile {
        layout: layout.name().to_string(),
        batch_id: batch.batch_text(Source::BatchId),
        pay_date: batch.batch_date(Source::PayDate)?,
        record_count: controls.count,
        total,
        payments,
    })
}

/// Reads a bank result file (R1, R1B or any result layout) and checks it whole.
pub fn parse_result_file(layout: &Layout, bytes: &[u8]) -> Result<ResultFile, FormatParseError> {
    let file = parse_tabular(layout, bytes, Purpose::Result, ParsedRecord::payment_result)?;
    let results = file.details;
    let amounts = |wanted: Option<ResultStatus>| {
        results
            .iter()
            .filter(move |result| wanted.is_none_or(|status| result.status == status))
            .map(|result| result.amount.unwrap_or(Fen::ZERO))
    };
    let ok_count = amounts(Some(ResultStatus::Paid)).count() as u64;
    let controls = Controls {
        count: results.len() as u64,
        total: sum(amounts(None), file.last_line)?,
        ok: Some((
            ok_count,
            sum(amounts(Some(ResultStatus::Paid)), file.last_line)?,
            results.len() as u64 - ok_count,
            sum(amounts(Some(ResultStatus::Failed)), file.last_line)?,
        )),
    };
    file.batch.check_controls(&controls)?;
    let batch_id = file.batch.batch_text(Source::BatchId);
    Ok(ResultFile {
        format: layout.name().to_string(),
        // The tabular result layouts carry our batch id but no id of the bank's own
        // for the file: a second file answering the same batch is a different file
        // (identified by its SHA-256), whose answers are checked one by one.
        bank_file_id: None,
        original_batch_id: batch_id,
        results,
    })
}

/// Our own files number details 1, 2, 3… and never repeat an `end_to_end_id`; a file
/// that does either was not rendered from one batch and must not be signed.
fn check_sequence_and_identity(payments: &[ParsedPayment<'_>]) -> Result<(), FormatParseError> {
    // Ours come in line order and of one width, so strictly increasing, and then no id
    // can repeat; only any other order needs the set.
    let increasing = payments
        .windows(2)
        .all(|pair| pair[0].end_to_end_id < pair[1].end_to_end_id);
    let mut seen = std::collections::HashSet::with_capacity(match increasing {
        true => 0,
        false => payments.len(),
    });
    for (index, payment) in payments.iter().enumerate() {
        let expected = index as u64 + 1;
        if payment.seq.is_some_and(|seq| seq != expected) {
            let reason = ParseReason::ControlMismatch {
                stated: payment.seq.unwrap_or(0).to_string(),
                computed: expected.to_string(),
            };
            return Err(error(payment.line, 0, "seq", reason));
        }
        if !increasing && !seen.insert(payment.end_to_end_id.as_ref()) {
            let reason = ParseReason::DuplicateEndToEndId(payment.end_to_end_id.to_string());
            return Err(error(payment.line, 0, "end_to_end_id", reason));
        }
    }
    Ok(())
}

fn sum(amounts: impl Iterator<Item = Fen>, line: u64) -> Result<Fen, FormatParseError> {
    let mut total = Fen::ZERO;
    for amount in amounts {
        total = total.checked_add(amount).ok_or_else(|| {
            error(
                line,
                0,
                "total",
                ParseReason::BadAmount("sum overflows".into()),
            )
        })?;
    }
    Ok(total)
}

/// The figures the details give, to compare with the header's and trailer's.
struct Controls {
    count: u64,
    total: Fen,
    /// (ok count, ok total, failed count, failed total) for result files.
    ok: Option<(u64, Fen, u64, Fen)>,
}

/// A tabular file read: its header/trailer/end records, and the caller's value for
/// each detail record, in order.
struct TabularFile<'l, 'b, T> {
    batch: BatchRecords<'l, 'b>,
    details: Vec<T>,
    last_line: u64,
}

/// The header, trailer and end records, each parsed and its literals checked.
struct BatchRecords<'l, 'b> {
    records: Vec<ParsedRecord<'l, 'b>>,
    date_format: DateFormat,
}

/// Splits the file into lines, checks every record's shape in order, and turns each
/// detail record into a `T` with `detail` (which may take its texts). The first error of
/// `detail` is reported only after every record's shape passed, so a shape error on a
/// later line still wins, as it would if the values were read in a second pass.
fn parse_tabular<'l, 'b, T>(
    layout: &'l Layout,
    bytes: &'b [u8],
    purpose: Purpose,
    mut detail: impl FnMut(&mut ParsedRecord<'l, 'b>) -> Result<T, FormatParseError>,
) -> Result<TabularFile<'l, 'b, T>, FormatParseError> {
    if layout.kind() == LayoutKind::Iso20022Pain001 || layout.purpose() != purpose {
        return Err(error(
            0,
            0,
            "layout",
            ParseReason::WrongLayout(layout.name().into()),
        ));
    }
    let lines = split_lines(layout, bytes)?;
    let last_line = lines.len() as u64;
    let plan = RecordPlan::new(layout, lines.len(), last_line)?;
    let mut file = TabularFile {
        batch: BatchRecords {
            records: Vec::new(),
            date_format: layout.date_format(),
        },
        details: Vec::with_capacity(plan.detail_count),
        last_line,
    };
    let mut first_value_error = None;
    let mut splits = Vec::new();
    let mut record = ParsedRecord {
        line: 0,
        fields: Vec::new(),
    };
    for (index, line) in lines.iter().enumerate() {
        let spec = plan.spec(index);
        record.line = line.number;
        record.fields.clear();
        parse_record(layout, spec, line, &mut splits, &mut record.fields)?;
        match spec.role {
            RecordRole::Detail if first_value_error.is_none() => match detail(&mut record) {
                Ok(value) => file.details.push(value),
                Err(value_error) => first_value_error = Some(value_error),
            },
            RecordRole::Detail => {}
            _ => file.batch.records.push(ParsedRecord {
                line: record.line,
                fields: std::mem::take(&mut record.fields),
            }),
        }
    }
    match first_value_error {
        Some(value_error) => Err(value_error),
        None => Ok(file),
    }
}

/// Splits on the line ending; the final line must be terminated too.
fn split_lines<'b>(layout: &Layout, bytes: &'b [u8]) -> Result<Vec<Line<'b>>, FormatParseError> {
    if bytes.is_empty() {
        return Err(error(1, 0, "file", ParseReason::Empty));
    }
    let crlf = layout.line_ending().bytes().len() == 2;
    let mut lines = Vec::with_capacity(bytes.len() / 64 + 1);
    let mut start = 0usize;
    let mut line_feeds = memchr::memchr_iter(b'\n', bytes);
    while start < bytes.len() {
        let number = lines.len() as u64 + 1;
        if lines.len() >= LINES_PER_FILE_MAX {
            return Err(error(number, 0, "file", ParseReason::TooManyLines));
        }
        let Some(line_feed) = line_feeds.next() else {
            return Err(error(
                number,
                0,
                "line ending",
                ParseReason::MissingLineEnding,
            ));
        };
        let mut end = line_feed;
        if crlf {
            if end == start || bytes[end - 1] != b'\r' {
                return Err(error(number, 0, "line ending", ParseReason::BareLineFeed));
            }
            end -= 1;
        }
        lines.push(Line {
            number,
            offset: start,
            bytes: &bytes[start..end],
        });
        start = line_feed + 1;
    }
    Ok(lines)
}

/// Which record spec each line must match: header first, then details, then the
/// trailer and end records last.
struct RecordPlan<'l> {
    before: Vec<&'l RecordSpec>,
    detail: &'l RecordSpec,
    after: Vec<&'l RecordSpec>,
    detail_count: usize,
}

impl<'l> RecordPlan<'l> {
    /// Too few lines means the file was cut.
    fn new(
        layout: &'l Layout,
        line_count: usize,
        last_line: u64,
    ) -> Result<RecordPlan<'l>, FormatParseError> {
        let records = layout.records();
        let before: Vec<&RecordSpec> = records
            .iter()
            .take_while(|r| r.role == RecordRole::Header)
            .collect();
        let after: Vec<&RecordSpec> = records
            .iter()
            .filter(|record| matches!(record.role, RecordRole::Trailer | RecordRole::End))
            .collect();
        let detail = layout
            .record(RecordRole::Detail)
            .expect("a validated layout has a detail record");
        if line_count < before.len() + after.len() + 1 {
            let missing = match after.first() {
                Some(record) if record.role == RecordRole::Trailer => "trailer",
                Some(_) => "end",
                None => "detail",
            };
            return Err(error(
                last_line,
                0,
                "file",
                ParseReason::MissingRecord(missing),
            ));
        }
        let detail_count = line_count - before.len() - after.len();
        Ok(RecordPlan {
            before,
            detail,
            after,
            detail_count,
        })
    }

    /// The spec of the 0-based line `index` (< the line count `new` was given).
    fn spec(&self, index: usize) -> &'l RecordSpec {
        if let Some(spec) = self.before.get(index) {
            return spec;
        }
        let after_index = index - self.before.len();
        match after_index.checked_sub(self.detail_count) {
            None => self.detail,
            Some(trailing) => self.after.get(trailing).copied().unwrap_or(self.detail),
        }
    }
}

fn parse_record<'l, 'b>(
    layout: &Layout,
    record: &'l RecordSpec,
    line: &Line<'b>,
    splits: &mut Vec<usize>,
    fields: &mut Vec<ParsedField<'l, 'b>>,
) -> Result<(), FormatParseError> {
    match layout.kind() {
        LayoutKind::Fixed => parse_fixed(layout, record, line, fields),
        _ => parse_delimited(layout, record, line, splits, fields),
    }
}

fn parse_fixed<'l, 'b>(
    layout: &Layout,
    record: &'l RecordSpec,
    line: &Line<'b>,
    fields: &mut Vec<ParsedField<'l, 'b>>,
) -> Result<(), FormatParseError> {
    if line.bytes.len() != layout.record_width() {
        let reason = ParseReason::WrongWidth {
            found: line.bytes.len(),
            expected: layout.record_width(),
        };
        return Err(error(line.number, 0, "record", reason));
    }
    for spec in &record.fields {
        let width = spec.width.unwrap_or(0);
        let slice = &line.bytes[spec.start..spec.start + width];
        let column = spec.start as u64 + 1;
        // C fields are left-aligned and space-padded; N fields keep their zeros.
        let text = match spec.field_type {
            FieldType::C => {
                decode_padded(layout, slice, line, line.offset + spec.start, column, spec)?
            }
            FieldType::N => decode(layout, slice, line, line.offset + spec.start, column, spec)?,
        };
        accept_field(spec, text, line.number, column, fields)?;
    }
    Ok(())
}

/// A space-padded field's text without its padding. The padding is cut from the bytes
/// before decoding (a 0x20 byte is a space of its own in every encoding here, never part
/// of a character), which gives the text `decode` then `trim_end_spaces` gives; should
/// the rest not decode, the whole field is decoded so the error is the same too.
fn decode_padded<'b>(
    layout: &Layout,
    slice: &'b [u8],
    line: &Line<'_>,
    offset: usize,
    column: u64,
    spec: &FieldSpec,
) -> Result<Cow<'b, str>, FormatParseError> {
    let padding = slice.iter().rev().take_while(|byte| **byte == b' ').count();
    let unpadded = slice.get(..slice.len() - padding).unwrap_or(slice);
    match layout.encoding().decode_cow(unpadded) {
        Ok(text) => Ok(text),
        Err(_) => decode(layout, slice, line, offset, column, spec).map(trim_end_spaces),
    }
}

/// `trim_end_matches(' ')` by bytes: a padded field is mostly spaces, and a space is
/// one byte that never ends a multi-byte character, so the cut is a character boundary.
fn trim_end_spaces(text: Cow<'_, str>) -> Cow<'_, str> {
    let kept = text.len() - text.bytes().rev().take_while(|byte| *byte == b' ').count();
    match text {
        Cow::Borrowed(text) => Cow::Borrowed(text.get(..kept).unwrap_or(text)),
        Cow::Owned(mut text) if text.is_char_boundary(kept) => {
            text.truncate(kept);
            Cow::Owned(text)
        }
        owned => owned,
    }
}

fn parse_delimited<'l, 'b>(
    layout: &Layout,
    record: &'l RecordSpec,
    line: &Line<'b>,
    splits: &mut Vec<usize>,
    fields: &mut Vec<ParsedField<'l, 'b>>,
) -> Result<(), FormatParseError> {
    // Split where the decoded line would split: a GBK trail byte may equal the delimiter
    // byte (0x7C). Lines the byte split cannot speak for are decoded whole first.
    let delimiter = layout.delimiter();
    let Some(ends_with_delimiter) = layout.encoding().split_plain(line.bytes, delimiter, splits)
    else {
        return parse_delimited_decoded(layout, record, line, fields);
    };
    let body_end = match layout.trailing_delimiter() {
        true if ends_with_delimiter => {
            splits.pop();
            line.bytes.len() - 1
        }
        true => {
            return Err(error(
                line.number,
                0,
                "record",
                ParseReason::MissingTrailingDelimiter,
            ))
        }
        false => line.bytes.len(),
    };
    let found = splits.len() + 1;
    if found != record.fields.len() {
        let reason = ParseReason::FieldCount {
            found,
            expected: record.fields.len(),
        };
        return Err(error(line.number, 0, "record", reason));
    }
    let mut start = 0;
    for (index, spec) in record.fields.iter().enumerate() {
        let end = splits.get(index).copied().unwrap_or(body_end);
        let slice = &line.bytes[start..end];
        // The split checked every character, so this cannot fail; if it did, the error
        // is the whole-line decoder's, as below.
        let text = match layout.encoding().decode_cow(slice) {
            Ok(text) => text,
            Err(_) => return parse_delimited_decoded(layout, record, line, fields),
        };
        accept_delimited_field(spec, text, line.number, index, fields)?;
        start = end + 1;
    }
    Ok(())
}

/// The delimited record read by decoding the whole line first, then splitting the text.
fn parse_delimited_decoded<'l, 'b>(
    layout: &Layout,
    record: &'l RecordSpec,
    line: &Line<'b>,
    fields: &mut Vec<ParsedField<'l, 'b>>,
) -> Result<(), FormatParseError> {
    fields.clear();
    let decoded = decode(layout, line.bytes, line, line.offset, 0, &record.fields[0])?;
    let delimiter = char::from(layout.delimiter());
    let body = match layout.trailing_delimiter() {
        true => decoded.strip_suffix(delimiter).ok_or_else(|| {
            error(
                line.number,
                0,
                "record",
                ParseReason::MissingTrailingDelimiter,
            )
        })?,
        false => decoded.as_ref(),
    };
    let found = body.split(delimiter).count();
    if found != record.fields.len() {
        let reason = ParseReason::FieldCount {
            found,
            expected: record.fields.len(),
        };
        return Err(error(line.number, 0, "record", reason));
    }
    for (index, (spec, text)) in record.fields.iter().zip(body.split(delimiter)).enumerate() {
        let text = Cow::Owned(text.to_string());
        accept_delimited_field(spec, text, line.number, index, fields)?;
    }
    Ok(())
}

/// A delimited N field with a width must have exactly that many characters' bytes.
fn accept_delimited_field<'l, 'b>(
    spec: &'l FieldSpec,
    text: Cow<'b, str>,
    line: u64,
    index: usize,
    fields: &mut Vec<ParsedField<'l, 'b>>,
) -> Result<(), FormatParseError> {
    let column = index as u64 + 1;
    let wrong_width = spec.width.filter(|width| text.len() != *width);
    if let (FieldType::N, Some(expected)) = (spec.field_type, wrong_width) {
        let reason = ParseReason::WrongWidth {
            found: text.len(),
            expected,
        };
        return Err(error(line, column, &spec.label, reason));
    }
    accept_field(spec, text, line, column, fields)
}

fn decode<'b>(
    layout: &Layout,
    slice: &'b [u8],
    line: &Line<'_>,
    offset: usize,
    column: u64,
    spec: &FieldSpec,
) -> Result<Cow<'b, str>, FormatParseError> {
    layout.encoding().decode_cow(slice).map_err(|malformed| {
        let reason = ParseReason::Malformed {
            encoding: malformed.encoding,
            offset: (offset + malformed.offset) as u64,
        };
        error(line.number, column, &spec.label, reason)
    })
}

/// Checks a literal, or keeps a source field's text; N fields must be digits.
fn accept_field<'l, 'b>(
    spec: &'l FieldSpec,
    text: Cow<'b, str>,
    line: u64,
    column: u64,
    fields: &mut Vec<ParsedField<'l, 'b>>,
) -> Result<(), FormatParseError> {
    if spec.field_type == FieldType::N && !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(error(
            line,
            column,
            &spec.label,
            ParseReason::NotDigits(text.into_owned()),
        ));
    }
    match &spec.content {
        FieldContent::Literal(expected) if literal_matches(spec, expected, &text) => Ok(()),
        FieldContent::Literal(expected) => {
            let reason = ParseReason::Literal {
                expected: expected.clone(),
                found: text.into_owned(),
            };
            Err(error(line, column, &spec.label, reason))
        }
        FieldContent::Source(source) => {
            fields.push(ParsedField {
                spec,
                source: *source,
                text,
                column,
            });
            Ok(())
        }
    }
}

/// A fixed N literal is zero-padded to its width; compare it the way it was written.
fn literal_matches(spec: &FieldSpec, expected: &str, found: &str) -> bool {
    match (spec.field_type, spec.width) {
        (FieldType::N, Some(width)) if found.len() == width => {
            found.trim_start_matches('0') == expected.trim_start_matches('0')
        }
        (FieldType::C, _) => found == expected.trim_end_matches(' '),
        _ => found == expected,
    }
}

impl<'b> ParsedRecord<'_, 'b> {
    fn field(&self, source: Source) -> Option<&ParsedField<'_, 'b>> {
        self.fields.iter().find(|field| field.source == source)
    }

    fn fail(&self, field: &ParsedField<'_, '_>, reason: ParseReason) -> FormatParseError {
        error(self.line, field.column, &field.spec.label, reason)
    }

    /// Text, with empty meaning absent.
    fn text(&self, source: Source) -> Option<String> {
        self.field(source)
            .map(|field| field.text.to_string())
            .filter(|text| !text.is_empty())
    }

    /// Text, with empty meaning absent, moved out of the record (which is then done
    /// with): a decoded text is not copied.
    fn take_text(&mut self, source: Source) -> Option<Cow<'b, str>> {
        self.fields
            .iter_mut()
            .find(|field| field.source == source)
            .map(|field| std::mem::take(&mut field.text))
            .filter(|text| !text.is_empty())
    }

    fn take_required_text(&mut self, source: Source) -> Result<Cow<'b, str>, FormatParseError> {
        let line = self.line;
        self.take_text(source).ok_or_else(|| {
            error(
                line,
                0,
                source.name(),
                ParseReason::EmptyValue(source.name()),
            )
        })
    }

    fn number(&self, source: Source) -> Result<Option<u64>, FormatParseError> {
        let Some(field) = self.field(source) else {
            return Ok(None);
        };
        parse_digits(&field.text)
            .map(Some)
            .ok_or_else(|| self.fail(field, ParseReason::NotDigits(field.text.to_string())))
    }

    fn money(&self, source: Source) -> Result<Option<Fen>, FormatParseError> {
        let Some(field) = self.field(source) else {
            return Ok(None);
        };
        parse_money(&field.text, field.spec.amount_unit)
            .map(Some)
            .ok_or_else(|| self.fail(field, ParseReason::BadAmount(field.text.to_string())))
    }

    fn date(
        &self,
        source: Source,
        format: DateFormat,
    ) -> Result<Option<NaiveDate>, FormatParseError> {
        let Some(field) = self.field(source) else {
            return Ok(None);
        };
        let pattern = match format {
            DateFormat::Compact => "%Y%m%d",
            DateFormat::Iso => "%Y-%m-%d",
        };
        NaiveDate::parse_from_str(&field.text, pattern)
            .map(Some)
            .map_err(|_| self.fail(field, ParseReason::BadDate(field.text.to_string())))
    }

    fn payment_result(&mut self) -> Result<PaymentResult, FormatParseError> {
        let status_field = self
            .field(Source::Status)
            .expect("result layouts carry status");
        let status = match status_field.text.as_ref() {
            "S" => ResultStatus::Paid,
            "F" => ResultStatus::Failed,
            other => return Err(self.fail(status_field, ParseReason::BadStatus(other.into()))),
        };
        let reason_code = self.take_text(Source::ReasonCode);
        let reason_text = self.take_text(Source::ReasonText);
        Ok(PaymentResult {
            end_to_end_id: self.take_required_text(Source::EndToEndId)?.into_owned(),
            status,
            amount: self.money(Source::Amount)?,
            reason_code: normalise_reason(reason_code.as_deref(), reason_text.as_deref()),
            reason_text: reason_text.map(Cow::into_owned),
            bank_serial: self.take_text(Source::BankSerial).map(Cow::into_owned),
            line: self.line,
        })
    }

    /// Compares each control field this record carries with the details' figures.
    fn check_controls(&self, controls: &Controls) -> Result<(), FormatParseError> {
        let mut expected: Vec<(Source, String)> = vec![
            (Source::Count, controls.count.to_string()),
            (Source::Total, controls.total.as_i64().to_string()),
        ];
        if let Some((ok_count, ok_total, failed_count, failed_total)) = controls.ok {
            expected.push((Source::OkCount, ok_count.to_string()));
            expected.push((Source::OkTotal, ok_total.as_i64().to_string()));
            expected.push((Source::FailedCount, failed_count.to_string()));
            expected.push((Source::FailedTotal, failed_total.as_i64().to_string()));
        }
        for (source, computed) in expected {
            let Some(field) = self.field(source) else {
                continue;
            };
            let stated = match source.class() {
                SourceClass::Money => self.money(source)?.map(|fen| fen.as_i64()),
                _ => self.number(source)?.and_then(|n| i64::try_from(n).ok()),
            };
            if stated.map(|value| value.to_string()) != Some(computed.clone()) {
                let reason = ParseReason::ControlMismatch {
                    stated: field.text.to_string(),
                    computed,
                };
                return Err(self.fail(field, reason));
            }
        }
        Ok(())
    }
}

impl BatchRecords<'_, '_> {
    fn check_controls(&self, controls: &Controls) -> Result<(), FormatParseError> {
        self.records
            .iter()
            .try_for_each(|record| record.check_controls(controls))
    }

    fn batch_text(&self, source: Source) -> Option<String> {
        self.records.iter().find_map(|record| record.text(source))
    }

    fn batch_date(&self, source: Source) -> Result<Option<NaiveDate>, FormatParseError> {
        match self
            .records
            .iter()
            .find(|record| record.field(source).is_some())
        {
            Some(record) => record.date(source, self.date_format),
            None => Ok(None),
        }
    }
}

fn parse_digits(text: &str) -> Option<u64> {
    if text.is_empty() || text.len() > 18 || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Fen as digits, or yuan as digits, a point and exactly two decimals (how we write it).
fn parse_money(text: &str, unit: AmountUnit) -> Option<Fen> {
    let fen = match unit {
        AmountUnit::Fen => parse_digits(text)?,
        AmountUnit::Yuan => {
            let (whole, fraction) = text.split_once('.')?;
            if fraction.len() != 2 || whole.len() > 16 {
                return None;
            }
            parse_digits(whole)?
                .checked_mul(100)?
                .checked_add(parse_digits(fraction)?)?
        }
    };
    i64::try_from(fen).ok().map(Fen::new)
}
