//! Layouts as data: the typed form of a `bank-formats/*.toml` file, and its validation.
//!
//! A `Layout` can only be built by `Layout::from_toml_str`, which checks everything a
//! renderer or parser relies on (positions, widths, known source fields, a detail
//! record), so the render and parse code never re-validates the layout itself.

use crate::formats::encode::TargetEncoding;
use serde::Deserialize;

/// The layouts that ship with the project, as TOML text (`bank-formats/`).
pub const BUILTIN_LAYOUT_TEXTS: &[(&str, &str)] = &[
    (
        "bank-pipe-gbk.toml",
        include_str!("../../bank-formats/bank-pipe-gbk.toml"),
    ),
    (
        "rcc-fixed-gbk.toml",
        include_str!("../../bank-formats/rcc-fixed-gbk.toml"),
    ),
    (
        "iso20022-pain001.toml",
        include_str!("../../bank-formats/iso20022-pain001.toml"),
    ),
    (
        "bank-result-pipe-gbk.toml",
        include_str!("../../bank-formats/bank-result-pipe-gbk.toml"),
    ),
    (
        "rcc-result-fixed-gbk.toml",
        include_str!("../../bank-formats/rcc-result-fixed-gbk.toml"),
    ),
];

/// The widest record any fixed layout may declare; keeps a hostile layout from asking
/// the parser for absurd line buffers.
pub const RECORD_WIDTH_BYTES_MAX: usize = 4096;

/// How records are laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayoutKind {
    Delimited,
    Fixed,
    Iso20022Pain001,
}

/// Whether the layout describes a payment file we send or a result file we receive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    Payment,
    Result,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineEnding {
    Crlf,
    Lf,
}

impl LineEnding {
    pub fn bytes(self) -> &'static [u8] {
        match self {
            LineEnding::Crlf => b"\r\n",
            LineEnding::Lf => b"\n",
        }
    }
}

/// Money as yuan with exactly two decimals (`523.40`) or as integer fen (`52340`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AmountUnit {
    Yuan,
    Fen,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DateFormat {
    /// `yyyyMMdd`, e.g. `20261125`.
    Compact,
    /// `yyyy-MM-dd`, e.g. `2026-11-25`.
    Iso,
}

/// C: text, left-aligned, space-padded. N: digits, right-aligned, zero-padded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldType {
    C,
    N,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordRole {
    Header,
    Detail,
    Trailer,
    /// A literal-only line after the trailer, e.g. an `END` marker.
    End,
}

/// Where a field's value comes from. Header/trailer sources describe the batch;
/// detail sources describe one payment (or one payment's result).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    BatchId,
    PayerAccount,
    PayerName,
    PayerBankCode,
    PayDate,
    ProcessedDate,
    Memo,
    Count,
    Total,
    OkCount,
    OkTotal,
    FailedCount,
    FailedTotal,
    Seq,
    EndToEndId,
    HouseholdId,
    AccountNumber,
    AccountName,
    IdNumber,
    Amount,
    BankCode,
    Status,
    ReasonCode,
    ReasonText,
    BankSerial,
}

/// What kind of value a source yields, which decides how it is formatted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceClass {
    Text,
    Number,
    Money,
    Date,
}

const SOURCE_NAMES: &[(&str, Source)] = &[
    ("batch_id", Source::BatchId),
    ("payer_account", Source::PayerAccount),
    ("payer_name", Source::PayerName),
    ("payer_bank_code", Source::PayerBankCode),
    ("pay_date", Source::PayDate),
    ("processed_date", Source::ProcessedDate),
    ("memo", Source::Memo),
    ("count", Source::Count),
    ("total", Source::Total),
    ("ok_count", Source::OkCount),
    ("ok_total", Source::OkTotal),
    ("failed_count", Source::FailedCount),
    ("failed_total", Source::FailedTotal),
    ("seq", Source::Seq),
    ("end_to_end_id", Source::EndToEndId),
    ("household_id", Source::HouseholdId),
    ("account_number", Source::AccountNumber),
    ("account_name", Source::AccountName),
    ("id_number", Source::IdNumber),
    ("amount", Source::Amount),
    ("bank_code", Source::BankCode),
    ("status", Source::Status),
    ("reason_code", Source::ReasonCode),
    ("reason_text", Source::ReasonText),
    ("bank_serial", Source::BankSerial),
];

impl Source {
    pub fn parse(name: &str) -> Option<Source> {
        SOURCE_NAMES
            .iter()
            .find(|(known, _)| *known == name)
            .map(|(_, source)| *source)
    }

    pub fn name(self) -> &'static str {
        SOURCE_NAMES
            .iter()
            .find(|(_, source)| *source == self)
            .map(|(name, _)| *name)
            .unwrap_or("?")
    }

    pub fn class(self) -> SourceClass {
        use Source::*;
        match self {
            Count | OkCount | FailedCount | Seq => SourceClass::Number,
            Total | OkTotal | FailedTotal | Amount => SourceClass::Money,
            PayDate | ProcessedDate => SourceClass::Date,
            _ => SourceClass::Text,
        }
    }

    /// Whether a layout of `purpose` may use this source in a record of `role`.
    fn allowed(self, purpose: Purpose, role: RecordRole) -> bool {
        use Source::*;
        let batch_payment = [
            BatchId,
            PayerAccount,
            PayerName,
            PayerBankCode,
            PayDate,
            Memo,
            Count,
            Total,
        ];
        let batch_result = [ProcessedDate, OkCount, OkTotal, FailedCount, FailedTotal];
        let detail_payment = [
            Seq,
            EndToEndId,
            HouseholdId,
            AccountNumber,
            AccountName,
            IdNumber,
            Amount,
            BankCode,
            Memo,
        ];
        let detail_result = [Status, ReasonCode, ReasonText, BankSerial];
        match role {
            RecordRole::End => false,
            RecordRole::Header | RecordRole::Trailer => {
                batch_payment.contains(&self)
                    || (purpose == Purpose::Result && batch_result.contains(&self))
            }
            RecordRole::Detail => {
                detail_payment.contains(&self)
                    || (purpose == Purpose::Result && detail_result.contains(&self))
            }
        }
    }
}

/// A field is either a fixed text or a value taken from the batch/payment/result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FieldContent {
    Literal(String),
    Source(Source),
}

/// One field of a record, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldSpec {
    /// Name used in errors: the source name, or `literal`/`filler`.
    pub label: String,
    pub content: FieldContent,
    pub field_type: FieldType,
    /// 0-based byte offset in the record (fixed layouts; 0 for delimited).
    pub start: usize,
    /// Fixed: exact width in bytes. Delimited: N zero-padded to exactly this many
    /// digits, C at most this many bytes. `None` (delimited only): unbounded.
    pub width: Option<usize>,
    pub amount_unit: AmountUnit,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordSpec {
    pub role: RecordRole,
    pub fields: Vec<FieldSpec>,
}

/// A validated layout. Only `from_toml_str` builds one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    name: String,
    kind: LayoutKind,
    purpose: Purpose,
    encoding: TargetEncoding,
    line_ending: LineEnding,
    delimiter: u8,
    trailing_delimiter: bool,
    record_width: usize,
    date_format: DateFormat,
    /// The unit of money fields that do not name their own.
    amount_unit: AmountUnit,
    records: Vec<RecordSpec>,
}

/// Why a layout file was refused. Every variant names the TOML key at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    #[error("layout TOML does not parse: {0}")]
    Toml(String),
    #[error("{key}: missing")]
    Missing { key: String },
    #[error("{key}: {value:?} is not one of {expected}")]
    UnknownValue {
        key: String,
        value: String,
        expected: &'static str,
    },
    #[error("{key}: unknown source field {value:?}")]
    UnknownSource { key: String, value: String },
    #[error("{key}: source {source_name} cannot appear in a {role} record of a {purpose} layout")]
    SourceNotAllowed {
        key: String,
        source_name: &'static str,
        role: &'static str,
        purpose: &'static str,
    },
    #[error("{key}: a field has either `literal` or `source`, exactly one")]
    LiteralOrSource { key: String },
    #[error("{key}: starts at byte {start}, overlapping the previous field which ends at {previous_end}")]
    Overlap {
        key: String,
        start: usize,
        previous_end: usize,
    },
    #[error("{key}: starts at byte {start}, leaving a gap after the previous field which ends at {previous_end}")]
    Gap {
        key: String,
        start: usize,
        previous_end: usize,
    },
    #[error("{key}: bytes {start}-{end} fall outside the record width {record_width}")]
    OutOfRange {
        key: String,
        start: usize,
        end: usize,
        record_width: usize,
    },
    #[error("{key}: field widths sum to {sum}, but record_width is {record_width}")]
    WidthSum {
        key: String,
        sum: usize,
        record_width: usize,
    },
    #[error("{key}: {reason}")]
    Invalid { key: String, reason: &'static str },
    #[error("records: a layout needs exactly one detail record")]
    MissingDetail,
    #[error("{key}: more than one {role} record")]
    DuplicateRole { key: String, role: &'static str },
    #[error("{key}: record order must be header, detail, trailer, end")]
    RecordOrder { key: String },
    #[error("{key}: the detail record of a {purpose} layout must carry {source_name}")]
    MissingRequiredSource {
        key: String,
        purpose: &'static str,
        source_name: &'static str,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLayout {
    name: String,
    kind: String,
    /// Free text for people; not used by the code.
    #[serde(default)]
    #[allow(dead_code)]
    description: Option<String>,
    purpose: Option<String>,
    encoding: String,
    line_ending: Option<String>,
    delimiter: Option<String>,
    trailing_delimiter: Option<bool>,
    record_width: Option<usize>,
    amount_unit: Option<String>,
    date_format: Option<String>,
    #[serde(default)]
    records: Vec<RawRecord>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRecord {
    role: String,
    #[serde(default)]
    fields: Vec<RawField>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawField {
    literal: Option<String>,
    source: Option<String>,
    start: Option<usize>,
    width: Option<usize>,
    #[serde(rename = "type")]
    field_type: Option<String>,
    unit: Option<String>,
}

fn pick<T: Copy>(
    key: &str,
    value: Option<&str>,
    default: Option<T>,
    table: &[(&str, T)],
    expected: &'static str,
) -> Result<T, LayoutError> {
    let Some(value) = value else {
        return default.ok_or(LayoutError::Missing {
            key: key.to_string(),
        });
    };
    table
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(value))
        .map(|(_, item)| *item)
        .ok_or_else(|| LayoutError::UnknownValue {
            key: key.to_string(),
            value: value.to_string(),
            expected,
        })
}

fn role_name(role: RecordRole) -> &'static str {
    match role {
        RecordRole::Header => "header",
        RecordRole::Detail => "detail",
        RecordRole::Trailer => "trailer",
        RecordRole::End => "end",
    }
}

fn purpose_name(purpose: Purpose) -> &'static str {
    match purpose {
        Purpose::Payment => "payment",
        Purpose::Result => "result",
    }
}

impl Layout {
    /// Parses and validates one layout file's text.
    pub fn from_toml_str(text: &str) -> Result<Layout, LayoutError> {
        let raw: RawLayout =
            toml::from_str(text).map_err(|error| LayoutError::Toml(error.to_string()))?;
        let kind = pick(
            "kind",
            Some(&raw.kind),
            None,
            &[
                ("delimited", LayoutKind::Delimited),
                ("fixed", LayoutKind::Fixed),
                ("iso20022-pain001", LayoutKind::Iso20022Pain001),
            ],
            "delimited, fixed, iso20022-pain001",
        )?;
        let header = Self::header_from_raw(&raw, kind)?;
        if kind == LayoutKind::Iso20022Pain001 {
            return Self::finish_xml(header, &raw);
        }
        let records = raw
            .records
            .iter()
            .enumerate()
            .map(|(index, record)| header.record_from_raw(index, record))
            .collect::<Result<Vec<_>, _>>()?;
        header.check_records(&records)?;
        Ok(Layout { records, ..header })
    }

    /// Reads the layout-level keys; records are filled in afterwards.
    fn header_from_raw(raw: &RawLayout, kind: LayoutKind) -> Result<Layout, LayoutError> {
        if raw.name.is_empty() {
            return Err(LayoutError::Missing { key: "name".into() });
        }
        let purpose = pick(
            "purpose",
            raw.purpose.as_deref(),
            Some(Purpose::Payment),
            &[("payment", Purpose::Payment), ("result", Purpose::Result)],
            "payment, result",
        )?;
        let encoding = pick(
            "encoding",
            Some(&raw.encoding),
            None,
            &[
                ("gbk", TargetEncoding::Gbk),
                ("gb18030", TargetEncoding::Gb18030),
                ("utf-8", TargetEncoding::Utf8),
            ],
            "gbk, gb18030, utf-8",
        )?;
        let line_ending = pick(
            "line_ending",
            raw.line_ending.as_deref(),
            Some(LineEnding::Crlf),
            &[("crlf", LineEnding::Crlf), ("lf", LineEnding::Lf)],
            "CRLF, LF",
        )?;
        let date_format = pick(
            "date_format",
            raw.date_format.as_deref(),
            Some(DateFormat::Compact),
            &[
                ("yyyyMMdd", DateFormat::Compact),
                ("yyyy-MM-dd", DateFormat::Iso),
            ],
            "yyyyMMdd, yyyy-MM-dd",
        )?;
        let amount_unit = pick(
            "amount_unit",
            raw.amount_unit.as_deref(),
            Some(AmountUnit::Yuan),
            &[("yuan", AmountUnit::Yuan), ("fen", AmountUnit::Fen)],
            "yuan, fen",
        )?;
        let delimiter = Self::delimiter_from_raw(raw, kind)?;
        let record_width = Self::record_width_from_raw(raw, kind)?;
        Ok(Layout {
            name: raw.name.clone(),
            kind,
            purpose,
            encoding,
            line_ending,
            delimiter,
            trailing_delimiter: raw.trailing_delimiter.unwrap_or(false),
            record_width,
            date_format,
            amount_unit,
            records: Vec::new(),
        })
    }

    fn delimiter_from_raw(raw: &RawLayout, kind: LayoutKind) -> Result<u8, LayoutError> {
        let key = || "delimiter".to_string();
        match (kind, raw.delimiter.as_deref()) {
            (LayoutKind::Delimited, None) => Err(LayoutError::Missing { key: key() }),
            (LayoutKind::Delimited, Some(text)) => match text.as_bytes() {
                [byte] if byte.is_ascii_punctuation() || *byte == b'\t' => Ok(*byte),
                _ => Err(LayoutError::Invalid {
                    key: key(),
                    reason: "must be one ASCII punctuation character or a tab",
                }),
            },
            (_, Some(_)) => Err(LayoutError::Invalid {
                key: key(),
                reason: "only delimited layouts have a delimiter",
            }),
            (_, None) => Ok(0),
        }
    }

    fn record_width_from_raw(raw: &RawLayout, kind: LayoutKind) -> Result<usize, LayoutError> {
        let key = || "record_width".to_string();
        match (kind, raw.record_width) {
            (LayoutKind::Fixed, None) => Err(LayoutError::Missing { key: key() }),
            (LayoutKind::Fixed, Some(width)) if width == 0 || width > RECORD_WIDTH_BYTES_MAX => {
                Err(LayoutError::Invalid {
                    key: key(),
                    reason: "must be between 1 and 4096 bytes",
                })
            }
            (LayoutKind::Fixed, Some(width)) => Ok(width),
            (_, Some(_)) => Err(LayoutError::Invalid {
                key: key(),
                reason: "only fixed layouts have a record width",
            }),
            (_, None) => Ok(0),
        }
    }

    fn finish_xml(header: Layout, raw: &RawLayout) -> Result<Layout, LayoutError> {
        if header.encoding != TargetEncoding::Utf8 {
            return Err(LayoutError::Invalid {
                key: "encoding".into(),
                reason: "ISO 20022 files are UTF-8",
            });
        }
        if !raw.records.is_empty() {
            return Err(LayoutError::Invalid {
                key: "records".into(),
                reason: "an ISO 20022 layout has no records; the schema fixes its shape",
            });
        }
        if header.purpose != Purpose::Payment {
            return Err(LayoutError::Invalid {
                key: "purpose".into(),
                reason: "pain.001 is a payment layout",
            });
        }
        Ok(header)
    }

    fn record_from_raw(&self, index: usize, raw: &RawRecord) -> Result<RecordSpec, LayoutError> {
        let key = format!("records[{index}]");
        let role = pick(
            &format!("{key}.role"),
            Some(&raw.role),
            None,
            &[
                ("header", RecordRole::Header),
                ("detail", RecordRole::Detail),
                ("trailer", RecordRole::Trailer),
                ("end", RecordRole::End),
            ],
            "header, detail, trailer, end",
        )?;
        if raw.fields.is_empty() {
            return Err(LayoutError::Missing {
                key: format!("{key}.fields"),
            });
        }
        let fields = raw
            .fields
            .iter()
            .enumerate()
            .map(|(field_index, field)| {
                self.field_from_raw(&format!("{key}.fields[{field_index}]"), role, field)
            })
            .collect::<Result<Vec<_>, _>>()?;
        if self.kind == LayoutKind::Fixed {
            self.check_fixed_positions(&key, &fields)?;
        }
        Ok(RecordSpec { role, fields })
    }

    fn field_from_raw(
        &self,
        key: &str,
        role: RecordRole,
        raw: &RawField,
    ) -> Result<FieldSpec, LayoutError> {
        let content = match (&raw.literal, &raw.source) {
            (Some(literal), None) => FieldContent::Literal(literal.clone()),
            (None, Some(name)) => FieldContent::Source(self.source_from_raw(key, role, name)?),
            _ => {
                return Err(LayoutError::LiteralOrSource {
                    key: key.to_string(),
                })
            }
        };
        let field_type = pick(
            &format!("{key}.type"),
            raw.field_type.as_deref(),
            Some(FieldType::C),
            &[("C", FieldType::C), ("N", FieldType::N)],
            "C, N",
        )?;
        let amount_unit = pick(
            &format!("{key}.unit"),
            raw.unit.as_deref(),
            Some(self.amount_unit),
            &[("yuan", AmountUnit::Yuan), ("fen", AmountUnit::Fen)],
            "yuan, fen",
        )?;
        let label = match &content {
            FieldContent::Source(source) => source.name().to_string(),
            FieldContent::Literal(text) if text.trim().is_empty() => "filler".to_string(),
            FieldContent::Literal(_) => "literal".to_string(),
        };
        let field = FieldSpec {
            label,
            content,
            field_type,
            start: raw.start.unwrap_or(0).saturating_sub(1),
            width: raw.width,
            amount_unit,
        };
        self.check_field(key, raw, &field)?;
        Ok(field)
    }

    fn source_from_raw(
        &self,
        key: &str,
        role: RecordRole,
        name: &str,
    ) -> Result<Source, LayoutError> {
        let source = Source::parse(name).ok_or_else(|| LayoutError::UnknownSource {
            key: format!("{key}.source"),
            value: name.to_string(),
        })?;
        if !source.allowed(self.purpose, role) {
            return Err(LayoutError::SourceNotAllowed {
                key: format!("{key}.source"),
                source_name: source.name(),
                role: role_name(role),
                purpose: purpose_name(self.purpose),
            });
        }
        Ok(source)
    }

    /// Per-field rules that do not depend on the neighbouring fields.
    fn check_field(&self, key: &str, raw: &RawField, field: &FieldSpec) -> Result<(), LayoutError> {
        let invalid = |suffix: &str, reason: &'static str| LayoutError::Invalid {
            key: format!("{key}{suffix}"),
            reason,
        };
        if raw.unit.is_some() && !field.is_money() {
            return Err(invalid(".unit", "only money sources have a unit"));
        }
        if self.kind == LayoutKind::Fixed {
            match (raw.start, raw.width) {
                (None, _) => {
                    return Err(LayoutError::Missing {
                        key: format!("{key}.start"),
                    })
                }
                (_, None) => {
                    return Err(LayoutError::Missing {
                        key: format!("{key}.width"),
                    })
                }
                (Some(0), _) => return Err(invalid(".start", "positions are 1-based")),
                (_, Some(0)) => return Err(invalid(".width", "must be at least 1 byte")),
                _ => {}
            }
        } else if raw.start.is_some() {
            return Err(invalid(".start", "only fixed layouts have positions"));
        }
        if field.field_type == FieldType::N
            && field.is_money()
            && field.amount_unit == AmountUnit::Yuan
        {
            return Err(invalid(
                ".unit",
                "an N field holds digits only: money in it must be in fen",
            ));
        }
        if let (FieldType::N, FieldContent::Literal(text)) = (field.field_type, &field.content) {
            if !text.bytes().all(|byte| byte.is_ascii_digit()) {
                return Err(invalid(".literal", "an N literal must be digits"));
            }
        }
        self.check_literal(key, field)
    }

    fn check_literal(&self, key: &str, field: &FieldSpec) -> Result<(), LayoutError> {
        let FieldContent::Literal(text) = &field.content else {
            return Ok(());
        };
        let invalid = |reason| LayoutError::Invalid {
            key: format!("{key}.literal"),
            reason,
        };
        if text.chars().any(char::is_control) {
            return Err(invalid("control characters are not allowed"));
        }
        if self.kind == LayoutKind::Delimited && text.as_bytes().contains(&self.delimiter) {
            return Err(invalid("contains the delimiter"));
        }
        let encoded = self
            .encoding
            .encode_to_vec(text)
            .map_err(|_| invalid("not representable in the layout's encoding"))?;
        if field.width.is_some_and(|width| encoded.len() > width) {
            return Err(invalid("longer than the field width"));
        }
        Ok(())
    }

    /// Fixed fields must tile the record exactly: in order, no overlap, no gap.
    fn check_fixed_positions(&self, key: &str, fields: &[FieldSpec]) -> Result<(), LayoutError> {
        let mut next_start = 0usize;
        for (index, field) in fields.iter().enumerate() {
            let field_key = format!("{key}.fields[{index}].start");
            let width = field.width.unwrap_or(0);
            let end = field.start + width;
            if end > self.record_width {
                return Err(LayoutError::OutOfRange {
                    key: field_key,
                    start: field.start + 1,
                    end,
                    record_width: self.record_width,
                });
            }
            if field.start < next_start {
                return Err(LayoutError::Overlap {
                    key: field_key,
                    start: field.start + 1,
                    previous_end: next_start,
                });
            }
            if field.start > next_start {
                return Err(LayoutError::Gap {
                    key: field_key,
                    start: field.start + 1,
                    previous_end: next_start,
                });
            }
            next_start = end;
        }
        let sum: usize = fields.iter().filter_map(|field| field.width).sum();
        if sum != self.record_width {
            return Err(LayoutError::WidthSum {
                key: format!("{key}.fields"),
                sum,
                record_width: self.record_width,
            });
        }
        Ok(())
    }

    /// Record-level rules: one detail, at most one header/trailer, in order.
    fn check_records(&self, records: &[RecordSpec]) -> Result<(), LayoutError> {
        let rank = |role| match role {
            RecordRole::Header => 0,
            RecordRole::Detail => 1,
            RecordRole::Trailer => 2,
            RecordRole::End => 3,
        };
        for (index, pair) in records.windows(2).enumerate() {
            let key = format!("records[{}]", index + 1);
            if rank(pair[1].role) < rank(pair[0].role) {
                return Err(LayoutError::RecordOrder { key });
            }
            if pair[1].role == pair[0].role && pair[1].role != RecordRole::End {
                return Err(LayoutError::DuplicateRole {
                    key,
                    role: role_name(pair[1].role),
                });
            }
        }
        let detail_index = records
            .iter()
            .position(|record| record.role == RecordRole::Detail)
            .ok_or(LayoutError::MissingDetail)?;
        let required: &[Source] = match self.purpose {
            Purpose::Payment => &[Source::EndToEndId, Source::Amount],
            Purpose::Result => &[Source::EndToEndId, Source::Amount, Source::Status],
        };
        for source in required {
            if !records[detail_index].has_source(*source) {
                return Err(LayoutError::MissingRequiredSource {
                    key: format!("records[{detail_index}].fields"),
                    purpose: purpose_name(self.purpose),
                    source_name: source.name(),
                });
            }
        }
        Ok(())
    }

    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn kind(&self) -> LayoutKind {
        self.kind
    }
    pub fn purpose(&self) -> Purpose {
        self.purpose
    }
    pub fn encoding(&self) -> TargetEncoding {
        self.encoding
    }
    pub fn line_ending(&self) -> LineEnding {
        self.line_ending
    }
    /// The delimiter byte (delimited layouts only).
    pub fn delimiter(&self) -> u8 {
        self.delimiter
    }
    pub fn trailing_delimiter(&self) -> bool {
        self.trailing_delimiter
    }
    /// Record width in bytes, excluding the line ending (fixed layouts only).
    pub fn record_width(&self) -> usize {
        self.record_width
    }
    pub fn date_format(&self) -> DateFormat {
        self.date_format
    }
    pub fn records(&self) -> &[RecordSpec] {
        &self.records
    }
    pub fn record(&self, role: RecordRole) -> Option<&RecordSpec> {
        self.records.iter().find(|record| record.role == role)
    }
}

impl RecordSpec {
    pub fn has_source(&self, source: Source) -> bool {
        self.fields
            .iter()
            .any(|field| field.content == FieldContent::Source(source))
    }
}

impl FieldSpec {
    pub fn class(&self) -> Option<SourceClass> {
        match self.content {
            FieldContent::Source(source) => Some(source.class()),
            FieldContent::Literal(_) => None,
        }
    }
    fn is_money(&self) -> bool {
        self.class() == Some(SourceClass::Money)
    }
}

/// Every layout shipped in `bank-formats/`. They are validated by the tests, so a
/// failure here is a build defect, hence the panic.
pub fn load_builtin() -> Vec<Layout> {
    BUILTIN_LAYOUT_TEXTS
        .iter()
        .map(|(file, text)| {
            Layout::from_toml_str(text)
                .unwrap_or_else(|error| panic!("built-in layout {file} is invalid: {error}"))
        })
        .collect()
}

/// A layout file refused while loading a directory, with the file it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {error}")]
pub struct LayoutFileError {
    pub file: String,
    pub error: LayoutError,
}

/// Loads the layouts of a directory, given as (file name, text) pairs the caller read.
/// Later files replace earlier ones of the same name, so a bank's override of a
/// built-in layout wins when the caller lists the built-ins first. All or nothing.
pub fn load_texts<'a>(
    files: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<Vec<Layout>, LayoutFileError> {
    let mut layouts: Vec<Layout> = Vec::new();
    for (file, text) in files {
        let layout = Layout::from_toml_str(text).map_err(|error| LayoutFileError {
            file: file.to_string(),
            error,
        })?;
        layouts.retain(|known| known.name != layout.name);
        layouts.push(layout);
    }
    Ok(layouts)
}

/// Finds a layout by name.
pub fn find<'a>(layouts: &'a [Layout], name: &str) -> Option<&'a Layout> {
    layouts.iter().find(|layout| layout.name == name)
}
