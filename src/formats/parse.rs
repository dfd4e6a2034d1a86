//! Reading tabular files (delimited or fixed) back: our own payment files, to re-check
//! them before signing, and the banks' result files (R1, R1B).
//!
//! The whole file is checked before anything is returned: strict decoding, every
//! record's width or field count, every literal, and the header/trailer control
//! figures against the details. A file cut at any byte is refused (every line must end
//! with the line ending, and the trailer and end records must be where the layout puts
//! them), so a half-received file can never be half-applied. No input panics.

use crate::domain::bank_result::{normalise_reason, PaymentResult, ResultFile, ResultStatus};
use crate::domain::money::Fen;
use crate::formats::spec::{
    AmountUnit, DateFormat, FieldContent, FieldSpec, FieldType, Layout, LayoutKind, Purpose,
    RecordRole, RecordSpec, Source, SourceClass,
};
use chrono::NaiveDate;

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

/// A payment file read back, with its control figures already checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedPaymentFile {
    pub layout: String,
    pub batch_id: Option<String>,
    pub pay_date: Option<NaiveDate>,
    pub record_count: u64,
    pub total: Fen,
    pub payments: Vec<ParsedPayment>,
}

/// One detail record of a payment file. Fields the layout does not carry are `None`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedPayment {
    pub line: u64,
    pub seq: Option<u64>,
    pub end_to_end_id: String,
    pub account_number: Option<String>,
    pub account_name: Option<String>,
    pub id_number: Option<String>,
    pub amount: Fen,
    pub bank_code: Option<String>,
    pub memo: Option<String>,
}

/// One field's decoded text, padding removed.
struct ParsedField<'l> {
    spec: &'l FieldSpec,
    source: Source,
    text: String,
    column: u64,
}

/// One record's source fields (literals are checked and dropped).
struct ParsedRecord<'l> {
    line: u64,
    fields: Vec<ParsedField<'l>>,
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
pub fn parse_payment_file(
    layout: &Layout,
    bytes: &[u8],
) -> Result<ParsedPaymentFile, FormatParseError> {
    let file = parse_tabular(layout, bytes, Purpose::Payment)?;
    let mut payments = Vec::with_capacity(file.details.len());
    for record in &file.details {
        payments.push(ParsedPayment {
            line: record.line,
            seq: record.number(Source::Seq)?,
            end_to_end_id: record.required_text(Source::EndToEndId)?,
            account_number: record.text(Source::AccountNumber),
            account_name: record.text(Source::AccountName),
            id_number: record.text(Source::IdNumber),
            amount: record.money(Source::Amount)?.unwrap_or(Fen::ZERO),
            bank_code: record.text(Source::BankCode),
            memo: record.text(Source::Memo),
        });
    }
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
    file.check_controls(&controls)?;
    Ok(ParsedPaymentFile {
        layout: layout.name().to_string(),
        batch_id: file.batch_text(Source::BatchId),
        pay_date: file.batch_date(Source::PayDate)?,
        record_count: controls.count,
        total,
        payments,
    })
}

/// Reads a bank result file (R1, R1B or any result layout) and checks it whole.
pub fn parse_result_file(layout: &Layout, bytes: &[u8]) -> Result<ResultFile, FormatParseError> {
    let file = parse_tabular(layout, bytes, Purpose::Result)?;
    let mut results = Vec::with_capacity(file.details.len());
    for record in &file.details {
        results.push(record.payment_result()?);
    }
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
    file.check_controls(&controls)?;
    let batch_id = file.batch_text(Source::BatchId);
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
fn check_sequence_and_identity(payments: &[ParsedPayment]) -> Result<(), FormatParseError> {
    let mut seen = std::collections::HashSet::with_capacity(payments.len());
    for (index, payment) in payments.iter().enumerate() {
        let expected = index as u64 + 1;
        if payment.seq.is_some_and(|seq| seq != expected) {
            let reason = ParseReason::ControlMismatch {
                stated: payment.seq.unwrap_or(0).to_string(),
                computed: expected.to_string(),
            };
            return Err(error(payment.line, 0, "seq", reason));
        }
        if !seen.insert(payment.end_to_end_id.as_str()) {
            let reason = ParseReason::DuplicateEndToEndId(payment.end_to_end_id.clone());
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

/// A tabular file split into its records, each parsed and its literals checked.
struct TabularFile<'l> {
    batch_records: Vec<ParsedRecord<'l>>,
    details: Vec<ParsedRecord<'l>>,
    last_line: u64,
    date_format: DateFormat,
}

fn parse_tabular<'l>(
    layout: &'l Layout,
    bytes: &[u8],
    purpose: Purpose,
) -> Result<TabularFile<'l>, FormatParseError> {
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
    let plan = plan_records(layout, lines.len(), last_line)?;
    let mut file = TabularFile {
        batch_records: Vec::new(),
        details: Vec::with_capacity(lines.len()),
        last_line,
        date_format: layout.date_format(),
    };
    for (line, record) in lines.iter().zip(plan) {
        let parsed = parse_record(layout, record, line)?;
        match record.role {
            RecordRole::Detail => file.details.push(parsed),
            _ => file.batch_records.push(parsed),
        }
    }
    Ok(file)
}

/// Splits on the line ending; the final line must be terminated too.
fn split_lines<'b>(layout: &Layout, bytes: &'b [u8]) -> Result<Vec<Line<'b>>, FormatParseError> {
    if bytes.is_empty() {
        return Err(error(1, 0, "file", ParseReason::Empty));
    }
    let crlf = layout.line_ending().bytes().len() == 2;
    let mut lines = Vec::with_capacity(bytes.len() / 64 + 1);
    let mut start = 0usize;
    while start < bytes.len() {
        let number = lines.len() as u64 + 1;
        if lines.len() >= LINES_PER_FILE_MAX {
            return Err(error(number, 0, "file", ParseReason::TooManyLines));
        }
        let Some(length) = bytes[start..].iter().position(|byte| *byte == b'\n') else {
            return Err(error(
                number,
                0,
                "line ending",
                ParseReason::MissingLineEnding,
            ));
        };
        let mut end = start + length;
        if crlf {
            if length == 0 || bytes[end - 1] != b'\r' {
                return Err(error(number, 0, "line ending", ParseReason::BareLineFeed));
            }
            end -= 1;
        }
        lines.push(Line {
            number,
            offset: start,
            bytes: &bytes[start..end],
        });
        start += length + 1;
    }
    Ok(lines)
}

/// Which record spec each line must match: header first, then details, then the
/// trailer and end records last. Too few lines means the file was cut.
fn plan_records(
    layout: &Layout,
    line_count: usize,
    last_line: u64,
) -> Result<Vec<&RecordSpec>, FormatParseError> {
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
    let mut plan = before;
    plan.extend(std::iter::repeat_n(detail, detail_count));
    plan.extend(after);
    Ok(plan)
}

fn parse_record<'l>(
    layout: &'l Layout,
    record: &'l RecordSpec,
    line: &Line<'_>,
) -> Result<ParsedRecord<'l>, FormatParseError> {
    let mut fields = Vec::with_capacity(record.fields.len());
    match layout.kind() {
        LayoutKind::Fixed => parse_fixed(layout, record, line, &mut fields)?,
        _ => parse_delimited(layout, record, line, &mut fields)?,
    }
    Ok(ParsedRecord {
        line: line.number,
        fields,
    })
}

fn parse_fixed<'l>(
    layout: &Layout,
    record: &'l RecordSpec,
    line: &Line<'_>,
    fields: &mut Vec<ParsedField<'l>>,
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
        let decoded = decode(layout, slice, line, line.offset + spec.start, column, spec)?;
        // C fields are left-aligned and space-padded; N fields keep their zeros.
        let text = match spec.field_type {
            FieldType::C => decoded.trim_end_matches(' ').to_string(),
            FieldType::N => decoded,
        };
        accept_field(spec, text, line.number, column, fields)?;
    }
    Ok(())
}

fn parse_delimited<'l>(
    layout: &Layout,
    record: &'l RecordSpec,
    line: &Line<'_>,
    fields: &mut Vec<ParsedField<'l>>,
) -> Result<(), FormatParseError> {
    // Decode before splitting: a GBK trail byte may equal the delimiter byte (0x7C).
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
        false => decoded.as_str(),
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
        let column = index as u64 + 1;
        let wrong_width = spec.width.filter(|width| text.len() != *width);
        if let (FieldType::N, Some(expected)) = (spec.field_type, wrong_width) {
            let reason = ParseReason::WrongWidth {
                found: text.len(),
                expected,
            };
            return Err(error(line.number, column, &spec.label, reason));
        }
        accept_field(spec, text.to_string(), line.number, column, fields)?;
    }
    Ok(())
}

fn decode(
    layout: &Layout,
    slice: &[u8],
    line: &Line<'_>,
    offset: usize,
    column: u64,
    spec: &FieldSpec,
) -> Result<String, FormatParseError> {
    layout.encoding().decode_strict(slice).map_err(|malformed| {
        let reason = ParseReason::Malformed {
            encoding: malformed.encoding,
            offset: (offset + malformed.offset) as u64,
        };
        error(line.number, column, &spec.label, reason)
    })
}

/// Checks a literal, or keeps a source field's text; N fields must be digits.
fn accept_field<'l>(
    spec: &'l FieldSpec,
    text: String,
    line: u64,
    column: u64,
    fields: &mut Vec<ParsedField<'l>>,
) -> Result<(), FormatParseError> {
    if spec.field_type == FieldType::N && !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(error(
            line,
            column,
            &spec.label,
            ParseReason::NotDigits(text),
        ));
    }
    match &spec.content {
        FieldContent::Literal(expected) if literal_matches(spec, expected, &text) => Ok(()),
        FieldContent::Literal(expected) => {
            let reason = ParseReason::Literal {
                expected: expected.clone(),
                found: text,
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

impl ParsedRecord<'_> {
    fn field(&self, source: Source) -> Option<&ParsedField<'_>> {
        self.fields.iter().find(|field| field.source == source)
    }

    fn fail(&self, field: &ParsedField<'_>, reason: ParseReason) -> FormatParseError {
        error(self.line, field.column, &field.spec.label, reason)
    }

    /// Text, with empty meaning absent.
    fn text(&self, source: Source) -> Option<String> {
        self.field(source)
            .map(|field| field.text.clone())
            .filter(|text| !text.is_empty())
    }

    fn required_text(&self, source: Source) -> Result<String, FormatParseError> {
        self.text(source).ok_or_else(|| {
            error(
                self.line,
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
            .ok_or_else(|| self.fail(field, ParseReason::NotDigits(field.text.clone())))
    }

    fn money(&self, source: Source) -> Result<Option<Fen>, FormatParseError> {
        let Some(field) = self.field(source) else {
            return Ok(None);
        };
        parse_money(&field.text, field.spec.amount_unit)
            .map(Some)
            .ok_or_else(|| self.fail(field, ParseReason::BadAmount(field.text.clone())))
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
            .map_err(|_| self.fail(field, ParseReason::BadDate(field.text.clone())))
    }

    fn payment_result(&self) -> Result<PaymentResult, FormatParseError> {
        let status_field = self
            .field(Source::Status)
            .expect("result layouts carry status");
        let status = match status_field.text.as_str() {
            "S" => ResultStatus::Paid,
            "F" => ResultStatus::Failed,
            other => return Err(self.fail(status_field, ParseReason::BadStatus(other.into()))),
        };
        let reason_code = self.text(Source::ReasonCode);
        let reason_text = self.text(Source::ReasonText);
        Ok(PaymentResult {
            end_to_end_id: self.required_text(Source::EndToEndId)?,
            status,
            amount: self.money(Source::Amount)?,
            reason_code: normalise_reason(reason_code.as_deref(), reason_text.as_deref()),
            reason_text,
            bank_serial: self.text(Source::BankSerial),
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
                    stated: field.text.clone(),
                    computed,
                };
                return Err(self.fail(field, reason));
            }
        }
        Ok(())
    }
}

impl TabularFile<'_> {
    fn check_controls(&self, controls: &Controls) -> Result<(), FormatParseError> {
        self.batch_records
            .iter()
            .try_for_each(|record| record.check_controls(controls))
    }

    fn batch_text(&self, source: Source) -> Option<String> {
        self.batch_records
            .iter()
            .find_map(|record| record.text(source))
    }

    fn batch_date(&self, source: Source) -> Result<Option<NaiveDate>, FormatParseError> {
        match self
            .batch_records
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
