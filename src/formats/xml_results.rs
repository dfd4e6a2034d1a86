//! ISO 20022 result messages (CONTRACTS §3.4 R2 pain.002, R3 camt.054) read into a
//! [`ResultFile`].
//!
//! One streaming pass with quick-xml's pull [`Reader`] over the input bytes, matching
//! local names (any namespace prefix is accepted) against a stack of element tags.
//!
//! # Safety rules (FAILURES 18, 20, 21)
//! - The whole input must be UTF-8 (checked up front; the error names the first bad
//!   byte). An XML declaration naming another encoding is refused.
//! - Any `<!DOCTYPE …>` (and so any DTD or entity declaration) is refused outright;
//!   an entity reference other than the five predefined ones and character
//!   references is a syntax error. Nothing is ever expanded or fetched.
//! - [`XmlLimits`] bounds the input size, the element nesting depth and the number of
//!   transactions.
//! - A document cut short (open elements at end of input), a second root or text after
//!   the root are refused. No input panics (proptest below).
//! - Every error carries the byte offset, line and column, and the element path.
//!
//! # Decisions
//! - **pain.002** `TxSts`: `ACSC`/`ACCC` → Paid, `RJCT` → Failed, `CANC` (cancelled,
//!   final, not paid) → Failed, anything else → Pending. A transaction without `TxSts`
//!   takes its payment-information status, else the group status (ISO inheritance),
//!   with a note in `reason_text`.
//! - **Group / payment-information status** with no `TxInfAndSts` beneath it speaks for
//!   transactions the file does not name. [`parse_xml_result_report`] returns those
//!   statuses in [`XmlResultReport`]; [`parse_xml_result`] (which has only a
//!   [`ResultFile`] to return) refuses such a file with
//!   [`XmlErrorKind::StatusWithoutTransactions`] when the status is final (`RJCT`,
//!   `ACSC`, `ACCC`, `CANC`), so a rejected or settled batch is never read as "nothing
//!   happened". A non-final status (`ACTC`, `ACCP`, `PDNG`, …) with no transactions
//!   gives zero results (the batch stays pending), and is visible in the report.
//! - **camt.054**: per `TxDtls` (an entry without `TxDtls` yields one record):
//!   `CRDT` + `RvslInd` true → Returned (reason from `RtrInf/Rsn`; without `RtrInf` the
//!   reason is `NARR` and a note says so; a non-`BOOK` entry status is noted);
//!   `DBIT` not reversed with status `BOOK` → Paid when the `TxDtls` has an
//!   `EndToEndId` and does not carry a contradicting `CdtDbtInd`, else Pending with a
//!   note; every other entry (incoming credits, pending or info entries, reversed
//!   debits) → Pending with a note naming the entry kind. Nothing is dropped: unknown
//!   or missing ids become exceptions upstream (FAILURES 9).
//! - A missing `EndToEndId` / `OrgnlEndToEndId` becomes `NOTPROVIDED` (the ISO
//!   convention) with a note.
//! - **Amounts**: `Ccy="CNY"` amounts go through [`Fen::parse_yuan`] (more than 2
//!   decimals, a sign or junk is an error with the amount's position). Other
//!   currencies are not converted: `amount` is `None` and `reason_text` notes
//!   e.g. `amount 3.1 CHF is not CNY`.
//! - Notes we add are appended to the bank's text as `[disburse: …]`, so the bank's
//!   own text stays first and intact.
//! - `bank_serial` = `AcctSvcrRef` (transaction, else entry) or pain.002 `StsId`.
//! - `line` = 1-based position of the record among the file's results.

use std::fmt;

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

use crate::domain::bank_result::{normalise_reason, PaymentResult, ResultFile, ResultStatus};
use crate::domain::money::{AmountError, Fen};

/// The ISO 20022 result messages we read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum XmlResultFormat {
    Pain002V03,
    Pain002V10,
    Camt054V02,
    Camt054V08,
}

impl XmlResultFormat {
    pub const ALL: [XmlResultFormat; 4] = [
        XmlResultFormat::Pain002V03,
        XmlResultFormat::Pain002V10,
        XmlResultFormat::Camt054V02,
        XmlResultFormat::Camt054V08,
    ];

    /// Message name, used as [`ResultFile::format`].
    pub fn name(self) -> &'static str {
        match self {
            XmlResultFormat::Pain002V03 => "pain.002.001.03",
            XmlResultFormat::Pain002V10 => "pain.002.001.10",
            XmlResultFormat::Camt054V02 => "camt.054.001.02",
            XmlResultFormat::Camt054V08 => "camt.054.001.08",
        }
    }

    /// The root element's namespace.
    pub fn namespace(self) -> &'static str {
        match self {
            XmlResultFormat::Pain002V03 => "urn:iso:std:iso:20022:tech:xsd:pain.002.001.03",
            XmlResultFormat::Pain002V10 => "urn:iso:std:iso:20022:tech:xsd:pain.002.001.10",
            XmlResultFormat::Camt054V02 => "urn:iso:std:iso:20022:tech:xsd:camt.054.001.02",
            XmlResultFormat::Camt054V08 => "urn:iso:std:iso:20022:tech:xsd:camt.054.001.08",
        }
    }

    fn from_namespace(ns: &str) -> Option<XmlResultFormat> {
        let ns = ns.trim();
        Self::ALL.into_iter().find(|f| f.namespace() == ns)
    }

    fn is_pain(self) -> bool {
        matches!(
            self,
            XmlResultFormat::Pain002V03 | XmlResultFormat::Pain002V10
        )
    }

    fn message_tag(self) -> Tag {
        if self.is_pain() {
            Tag::CstmrPmtStsRpt
        } else {
            Tag::BkToCstmrDbtCdtNtfctn
        }
    }
}

/// Bounds on what one result file may make us do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XmlLimits {
    pub max_bytes: usize,
    pub max_depth: usize,
    pub max_transactions: usize,
}

impl Default for XmlLimits {
    fn default() -> Self {
        XmlLimits {
            max_bytes: 64 * 1024 * 1024,
            max_depth: 64,
            max_transactions: 2_000_000,
        }
    }
}

/// What went wrong; [`XmlResultError`] adds where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum XmlErrorKind {
    TooLarge {
        size: usize,
        max: usize,
    },
    InvalidUtf8,
    NotUtf8 {
        declared: String,
    },
    Doctype,
    NotAResultMessage {
        root: Option<String>,
        namespace: Option<String>,
    },
    UnexpectedElement {
        expected: &'static str,
        found: String,
    },
    TooDeep {
        max: usize,
    },
    TooManyTransactions {
        max: usize,
    },
    Syntax(String),
    Truncated,
    ContentAfterRoot,
    Amount {
        text: String,
        error: AmountError,
    },
    StatusWithoutTransactions {
        level: StatusLevel,
        status: String,
        id: Option<String>,
    },
}

impl fmt::Display for XmlErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            XmlErrorKind::TooLarge { size, max } => {
                write!(f, "file of {size} bytes is over the limit of {max} bytes")
            }
            XmlErrorKind::InvalidUtf8 => f.write_str("malformed UTF-8"),
            XmlErrorKind::NotUtf8 { declared } => {
                write!(f, "declared encoding {declared:?} refused: ISO 20022 messages are UTF-8")
            }
            XmlErrorKind::Doctype => f.write_str(
                "DOCTYPE/DTD refused: entity and DTD declarations are not allowed (XML bomb / XXE guard)",
            ),
            XmlErrorKind::NotAResultMessage { root, namespace } => {
                f.write_str("not a pain.002 or camt.054 message")?;
                match (root, namespace) {
                    (None, _) => f.write_str(" (no XML root element)"),
                    (Some(root), None) => write!(f, " (root <{root}> without namespace)"),
                    (Some(root), Some(ns)) => write!(f, " (root <{root}> in namespace {ns})"),
                }
            }
            XmlErrorKind::UnexpectedElement { expected, found } => {
                write!(f, "expected <{expected}>, found <{found}>")
            }
            XmlErrorKind::TooDeep { max } => write!(f, "elements nested deeper than {max}"),
            XmlErrorKind::TooManyTransactions { max } => {
                write!(f, "more than {max} transactions")
            }
            XmlErrorKind::Syntax(msg) => write!(f, "malformed XML: {msg}"),
            XmlErrorKind::Truncated => {
                f.write_str("end of input inside the document (file truncated?)")
            }
            XmlErrorKind::ContentAfterRoot => f.write_str("content after the root element"),
            XmlErrorKind::Amount { text, error } => write!(f, "amount {text:?}: {error}"),
            XmlErrorKind::StatusWithoutTransactions { level, status, id } => write!(
                f,
                "{} status {status} (id {}) applies to transactions the file does not list; \
                 use parse_xml_result_report",
                level.as_str(),
                id.as_deref().unwrap_or("none"),
            ),
        }
    }
}

/// An error with its position: byte offset, 1-based line and byte column, element path.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct XmlResultError {
    pub kind: XmlErrorKind,
    pub offset: u64,
    pub line: u64,
    pub column: u64,
    /// e.g. `/Document/CstmrPmtStsRpt/OrgnlPmtInfAndSts/TxInfAndSts`; empty when outside.
    pub path: String,
}

impl fmt::Display for XmlResultError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at byte {} (line {}, column {})",
            self.kind, self.offset, self.line, self.column
        )?;
        if !self.path.is_empty() {
            write!(f, " in {}", self.path)?;
        }
        Ok(())
    }
}

/// Where a status above the transactions sits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusLevel {
    /// `OrgnlGrpInfAndSts/GrpSts`.
    Group,
    /// `OrgnlPmtInfAndSts/PmtInfSts`.
    PaymentInformation,
}

impl StatusLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            StatusLevel::Group => "group",
            StatusLevel::PaymentInformation => "payment-information",
        }
    }
}

/// A pain.002 group or payment-information status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LevelStatus {
    pub level: StatusLevel,
    /// `OrgnlMsgId` (group) or `OrgnlPmtInfId`.
    pub id: Option<String>,
    /// As sent (`RJCT`, `ACCP`, `PART`, …); `None` when the element is absent.
    pub status: Option<String>,
    pub reason_code: Option<String>,
    pub reason_text: Option<String>,
    /// `TxInfAndSts` elements beneath (for the group: in the whole file).
    pub transactions: u64,
    /// Byte offset of the element.
    pub offset: u64,
}

/// Everything read from a result message, including what [`ResultFile`] cannot hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XmlResultReport {
    pub format: XmlResultFormat,
    pub file: ResultFile,
    /// pain.002 only.
    pub group: Option<LevelStatus>,
    /// pain.002 only, in file order.
    pub payment_information: Vec<LevelStatus>,
}

/// The format named by the root element's namespace, or `None` (not XML, another
/// message, a DOCTYPE, …). Reads only up to the root start tag.
pub fn detect_xml_result_format(bytes: &[u8]) -> Option<XmlResultFormat> {
    let limits = XmlLimits::default();
    let mut parser = Parser::new(bytes, &limits);
    parser.read_root().ok()
}

/// Reads a pain.002 or camt.054 result with the default [`XmlLimits`].
pub fn parse_xml_result(bytes: &[u8]) -> Result<ResultFile, XmlResultError> {
    parse_xml_result_with_limits(bytes, &XmlLimits::default())
}

/// Reads a pain.002 or camt.054 result. Refuses a pain.002 whose final group or
/// payment-information status covers transactions it does not list (see module docs).
pub fn parse_xml_result_with_limits(
    bytes: &[u8],
    limits: &XmlLimits,
) -> Result<ResultFile, XmlResultError> {
    let report = parse_xml_result_report(bytes, limits)?;
    let is_final = |s: &Option<String>| {
        matches!(
            s.as_deref().map(str::trim),
            Some("RJCT" | "ACSC" | "ACCC" | "CANC")
        )
    };
    if let Some(group) = &report.group {
        let blocks = &report.payment_information;
        let mut unlisted: Option<&LevelStatus> = None;
        if blocks.is_empty() && is_final(&group.status) {
            unlisted = Some(group);
        }
        for block in blocks {
            if block.transactions > 0 {
                continue;
            }
            if is_final(&block.status) {
                unlisted = Some(block);
            } else if block.status.is_none() && is_final(&group.status) {
                unlisted = Some(group);
            }
            if unlisted.is_some() {
                break;
            }
        }
        if let Some(level) = unlisted {
            return Err(error_at(
                bytes,
                XmlErrorKind::StatusWithoutTransactions {
                    level: level.level,
                    status: level.status.clone().unwrap_or_default(),
                    id: level.id.clone(),
                },
                level.offset,
                String::new(),
            ));
        }
    }
    Ok(report.file)
}

/// Reads a result message with everything it says, including pain.002 group and
/// payment-information statuses.
pub fn parse_xml_result_report(
    bytes: &[u8],
    limits: &XmlLimits,
) -> Result<XmlResultReport, XmlResultError> {
    if bytes.len() > limits.max_bytes {
        return Err(error_at(
            bytes,
            XmlErrorKind::TooLarge {
                size: bytes.len(),
                max: limits.max_bytes,
            },
            limits.max_bytes as u64,
            String::new(),
        ));
    }
    if let Err(e) = std::str::from_utf8(bytes) {
        return Err(error_at(
            bytes,
            XmlErrorKind::InvalidUtf8,
            e.valid_up_to() as u64,
            String::new(),
        ));
    }
    let mut parser = Parser::new(bytes, limits);
    let format = parser.read_root()?;
    parser.run(format)?;
    let pain = format.is_pain();
    Ok(XmlResultReport {
        format,
        file: ResultFile {
            format: format.name().to_string(),
            bank_file_id: parser.msg_id.take(),
            original_batch_id: parser.group.status.id.clone(),
            results: std::mem::take(&mut parser.results),
        },
        group: pain.then(|| parser.group.finish()),
        payment_information: std::mem::take(&mut parser.blocks),
    })
}

fn error_at(bytes: &[u8], kind: XmlErrorKind, offset: u64, path: String) -> XmlResultError {
    let end = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(bytes.len());
    let before = &bytes[..end];
    let line = 1 + before.iter().filter(|&&b| b == b'\n').count() as u64;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    XmlResultError {
        kind,
        offset,
        line,
        column: (end - line_start) as u64 + 1,
        path,
    }
}

/// Element local names we act on; everything else is `Other`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tag {
    Document,
    CstmrPmtStsRpt,
    BkToCstmrDbtCdtNtfctn,
    GrpHdr,
    MsgId,
    OrgnlGrpInfAndSts,
    OrgnlMsgId,
    GrpSts,
    StsRsnInf,
    Rsn,
    Cd,
    Prtry,
    AddtlInf,
    OrgnlPmtInfAndSts,
    OrgnlPmtInfId,
    PmtInfSts,
    TxInfAndSts,
    OrgnlEndToEndId,
    TxSts,
    AcctSvcrRef,
    StsId,
    OrgnlTxRef,
    Amt,
    InstdAmt,
    Ntfctn,
    Ntry,
    CdtDbtInd,
    RvslInd,
    Sts,
    NtryDtls,
    TxDtls,
    Refs,
    EndToEndId,
    AmtDtls,
    TxAmt,
    RtrInf,
    Other,
}

impl Tag {
    fn of(local: &[u8]) -> Tag {
        match local {
            b"Document" => Tag::Document,
            b"CstmrPmtStsRpt" => Tag::CstmrPmtStsRpt,
            b"BkToCstmrDbtCdtNtfctn" => Tag::BkToCstmrDbtCdtNtfctn,
            b"GrpHdr" => Tag::GrpHdr,
            b"MsgId" => Tag::MsgId,
            b"OrgnlGrpInfAndSts" => Tag::OrgnlGrpInfAndSts,
            b"OrgnlMsgId" => Tag::OrgnlMsgId,
            b"GrpSts" => Tag::GrpSts,
            b"StsRsnInf" => Tag::StsRsnInf,
            b"Rsn" => Tag::Rsn,
            b"Cd" => Tag::Cd,
            b"Prtry" => Tag::Prtry,
            b"AddtlInf" => Tag::AddtlInf,
            b"OrgnlPmtInfAndSts" => Tag::OrgnlPmtInfAndSts,
            b"OrgnlPmtInfId" => Tag::OrgnlPmtInfId,
            b"PmtInfSts" => Tag::PmtInfSts,
            b"TxInfAndSts" => Tag::TxInfAndSts,
            b"OrgnlEndToEndId" => Tag::OrgnlEndToEndId,
            b"TxSts" => Tag::TxSts,
            b"AcctSvcrRef" => Tag::AcctSvcrRef,
            b"StsId" => Tag::StsId,
            b"OrgnlTxRef" => Tag::OrgnlTxRef,
            b"Amt" => Tag::Amt,
            b"InstdAmt" => Tag::InstdAmt,
            b"Ntfctn" => Tag::Ntfctn,
            b"Ntry" => Tag::Ntry,
            b"CdtDbtInd" => Tag::CdtDbtInd,
            b"RvslInd" => Tag::RvslInd,
            b"Sts" => Tag::Sts,
            b"NtryDtls" => Tag::NtryDtls,
            b"TxDtls" => Tag::TxDtls,
            b"Refs" => Tag::Refs,
            b"EndToEndId" => Tag::EndToEndId,
            b"AmtDtls" => Tag::AmtDtls,
            b"TxAmt" => Tag::TxAmt,
            b"RtrInf" => Tag::RtrInf,
            _ => Tag::Other,
        }
    }
}

/// A leaf whose text we keep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    MsgId,
    GrpId,
    GrpSts,
    GrpRsn,
    GrpText,
    PmtId,
    PmtSts,
    PmtRsn,
    PmtText,
    TxE2e,
    TxSts,
    TxRsn,
    TxText,
    TxSerial,
    TxStsId,
    TxAmt,
    TxAmtDtls,
    TxCdtDbt,
    NtryAmt,
    NtryCdtDbt,
    NtryRvsl,
    NtrySts,
    NtrySerial,
}

impl Field {
    fn is_amount(self) -> bool {
        matches!(self, Field::TxAmt | Field::TxAmtDtls | Field::NtryAmt)
    }
}

#[derive(Clone, Debug, Default)]
struct AmountText {
    value: String,
    /// Parsed when the currency is CNY (checked as soon as the element closes).
    fen: Option<Fen>,
    ccy: Option<String>,
}

/// One `TxInfAndSts` or `TxDtls` being read.
#[derive(Clone, Debug, Default)]
struct Tx {
    e2e: Option<String>,
    status: Option<String>,
    reason: Option<String>,
    texts: Vec<String>,
    serial: Option<String>,
    sts_id: Option<String>,
    amount: Option<AmountText>,
    amount_dtls: Option<AmountText>,
    cdt_dbt: Option<String>,
    has_rtr: bool,
}

#[derive(Clone, Debug, Default)]
struct Entry {
    amount: Option<AmountText>,
    cdt_dbt: Option<String>,
    reversal: Option<String>,
    status: Option<String>,
    serial: Option<String>,
    txs: Vec<Tx>,
}

#[derive(Clone, Debug)]
struct Level {
    status: LevelStatus,
    reason: Option<String>,
    texts: Vec<String>,
}

impl Level {
    fn new(level: StatusLevel, offset: u64) -> Level {
        Level {
            status: LevelStatus {
                level,
                id: None,
                status: None,
                reason_code: None,
                reason_text: None,
                transactions: 0,
                offset,
            },
            reason: None,
            texts: Vec::new(),
        }
    }

    fn finish(&self) -> LevelStatus {
        let mut out = self.status.clone();
        let text = join_texts(&self.texts);
        if self.reason.is_some() || text.is_some() {
            out.reason_code = normalise_reason(self.reason.as_deref(), text.as_deref());
        }
        out.reason_text = text;
        out
    }
}

/// Trims in place, keeping the allocation.
fn trim_owned(mut text: String) -> String {
    let end = text.trim_end().len();
    text.truncate(end);
    let start = text.len() - text.trim_start().len();
    if start > 0 {
        text.drain(..start);
    }
    text
}

fn join_texts(texts: &[String]) -> Option<String> {
    match texts {
        [] => return None,
        [one] => return (!one.is_empty()).then(|| one.clone()),
        _ => {}
    }
    let joined = texts
        .iter()
        .map(|t| t.trim())
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    (!joined.is_empty()).then_some(joined)
}

fn non_empty(text: &Option<String>) -> Option<&str> {
    text.as_deref().map(str::trim).filter(|t| !t.is_empty())
}

struct Parser<'a> {
    bytes: &'a [u8],
    limits: &'a XmlLimits,
    reader: Reader<&'a [u8]>,
    stack: Vec<Tag>,
    starts: Vec<u64>,
    capture: Option<(Field, usize)>,
    capture_ccy: Option<String>,
    capture_offset: u64,
    text: String,
    msg_id: Option<String>,
    group: Level,
    block: Option<Level>,
    blocks: Vec<LevelStatus>,
    tx: Option<Tx>,
    entry: Option<Entry>,
    results: Vec<PaymentResult>,
    transactions: usize,
}

impl<'a> Parser<'a> {
    fn new(bytes: &'a [u8], limits: &'a XmlLimits) -> Parser<'a> {
        let mut reader = Reader::from_reader(bytes);
        let config = reader.config_mut();
        config.expand_empty_elements = true;
        config.check_end_names = true;
        config.check_comments = true;
        Parser {
            bytes,
            limits,
            reader,
            stack: Vec::with_capacity(16),
            starts: Vec::with_capacity(16),
            capture: None,
            capture_ccy: None,
            capture_offset: 0,
            text: String::new(),
            msg_id: None,
            group: Level::new(StatusLevel::Group, 0),
            block: None,
            blocks: Vec::new(),
            tx: None,
            entry: None,
            results: Vec::new(),
            transactions: 0,
        }
    }

    fn path(&self) -> String {
        let mut path = String::new();
        for &start in &self.starts {
            let from = usize::try_from(start)
                .unwrap_or(usize::MAX)
                .saturating_add(1)
                .min(self.bytes.len());
            let rest = &self.bytes[from..];
            let len = rest
                .iter()
                .take(64)
                .position(|b| b.is_ascii_whitespace() || matches!(b, b'>' | b'/'))
                .unwrap_or(rest.len().min(64));
            path.push('/');
            path.push_str(&String::from_utf8_lossy(&rest[..len]));
        }
        path
    }

    fn err(&self, kind: XmlErrorKind, offset: u64) -> XmlResultError {
        error_at(self.bytes, kind, offset, self.path())
    }

    fn syntax(&self, e: impl fmt::Display) -> XmlResultError {
        let offset = self
            .reader
            .error_position()
            .max(self.reader.buffer_position());
        self.err(XmlErrorKind::Syntax(e.to_string()), offset)
    }

    fn next(&mut self) -> Result<(u64, Event<'a>), XmlResultError> {
        let pos = self.reader.buffer_position();
        match self.reader.read_event() {
            Ok(event) => Ok((pos, event)),
            Err(e) => {
                let offset = self.reader.error_position();
                Err(self.err(XmlErrorKind::Syntax(e.to_string()), offset))
            }
        }
    }

    fn push(&mut self, tag: Tag, offset: u64) -> Result<(), XmlResultError> {
        self.stack.push(tag);
        self.starts.push(offset);
        if self.stack.len() > self.limits.max_depth {
            return Err(self.err(
                XmlErrorKind::TooDeep {
                    max: self.limits.max_depth,
                },
                offset,
            ));
        }
        Ok(())
    }

    /// Reads up to and including the root start tag; returns its format.
    fn read_root(&mut self) -> Result<XmlResultFormat, XmlResultError> {
        loop {
            let (pos, event) = self.next()?;
            match event {
                Event::Decl(decl) => {
                    if let Some(enc) = decl.encoding() {
                        let enc = enc.map_err(|e| self.syntax(e))?;
                        let enc = String::from_utf8_lossy(&enc).into_owned();
                        let e = enc.trim();
                        if !e.eq_ignore_ascii_case("UTF-8") && !e.eq_ignore_ascii_case("UTF8") {
                            return Err(self.err(XmlErrorKind::NotUtf8 { declared: enc }, pos));
                        }
                    }
                }
                Event::DocType(_) => return Err(self.err(XmlErrorKind::Doctype, pos)),
                Event::Comment(_) | Event::PI(_) => {}
                Event::Text(t) => {
                    if !t.iter().all(u8::is_ascii_whitespace) {
                        return Err(self.err(
                            XmlErrorKind::NotAResultMessage {
                                root: None,
                                namespace: None,
                            },
                            pos,
                        ));
                    }
                }
                Event::CData(_) | Event::End(_) => {
                    return Err(self.err(
                        XmlErrorKind::NotAResultMessage {
                            root: None,
                            namespace: None,
                        },
                        pos,
                    ))
                }
                Event::Eof => {
                    return Err(self.err(
                        XmlErrorKind::NotAResultMessage {
                            root: None,
                            namespace: None,
                        },
                        pos,
                    ))
                }
                Event::Start(start) | Event::Empty(start) => {
                    let format = self.root_format(&start, pos)?;
                    self.push(Tag::Document, pos)?;
                    return Ok(format);
                }
            }
        }
    }

    fn root_format(
        &self,
        start: &BytesStart<'_>,
        pos: u64,
    ) -> Result<XmlResultFormat, XmlResultError> {
        let name = start.name();
        let local = name.local_name();
        let root = String::from_utf8_lossy(local.as_ref()).into_owned();
        let wanted: Vec<u8> = match name.prefix() {
            Some(prefix) => [b"xmlns:".as_slice(), prefix.as_ref()].concat(),
            None => b"xmlns".to_vec(),
        };
        let mut namespace = None;
        for attr in start.attributes() {
            let attr = attr.map_err(|e| self.syntax(e))?;
            if attr.key.as_ref() == wanted.as_slice() {
                let value = attr.unescape_value().map_err(|e| self.syntax(e))?;
                namespace = Some(value.into_owned());
            }
        }
        match namespace
            .as_deref()
            .and_then(XmlResultFormat::from_namespace)
        {
            Some(format) if local.as_ref() == b"Document" => Ok(format),
            _ => Err(self.err(
                XmlErrorKind::NotAResultMessage {
                    root: Some(root),
                    namespace,
                },
                pos,
            )),
        }
    }

    /// Streams the rest of the document after the root start tag.
    fn run(&mut self, format: XmlResultFormat) -> Result<(), XmlResultError> {
        let pain = format.is_pain();
        loop {
            let (pos, event) = self.next()?;
            match event {
                Event::Start(start) => {
                    if self.stack.is_empty() {
                        return Err(self.err(XmlErrorKind::ContentAfterRoot, pos));
                    }
                    // Attributes are rare in these messages; check their syntax anyway.
                    if start
                        .attributes_raw()
                        .iter()
                        .any(|b| !b.is_ascii_whitespace())
                    {
                        for attr in start.attributes() {
                            attr.map_err(|e| self.syntax(e))?;
                        }
                    }
                    let tag = Tag::of(start.local_name().as_ref());
                    self.push(tag, pos)?;
                    if self.stack.len() == 2 && tag != format.message_tag() {
                        let found =
                            String::from_utf8_lossy(start.local_name().as_ref()).into_owned();
                        let expected = if pain {
                            "CstmrPmtStsRpt"
                        } else {
                            "BkToCstmrDbtCdtNtfctn"
                        };
                        return Err(
                            self.err(XmlErrorKind::UnexpectedElement { expected, found }, pos)
                        );
                    }
                    if pain {
                        self.pain_start(pos)?;
                    } else {
                        self.camt_start(pos)?;
                    }
                    if let Some(field) = self.field(pain) {
                        self.capture = Some((field, self.stack.len()));
                        self.capture_offset = pos;
                        self.text.clear();
                        self.capture_ccy = None;
                        if field.is_amount() {
                            self.capture_ccy = self.ccy(&start)?;
                        }
                    }
                }
                Event::End(_) => {
                    if self.stack.is_empty() {
                        return Err(self.err(XmlErrorKind::ContentAfterRoot, pos));
                    }
                    if let Some((field, depth)) = self.capture {
                        if depth == self.stack.len() {
                            self.capture = None;
                            self.store(field)?;
                        }
                    }
                    if pain {
                        self.pain_end(pos)?;
                    } else {
                        self.camt_end(pos)?;
                    }
                    self.stack.pop();
                    self.starts.pop();
                }
                Event::Text(text) => {
                    if self.stack.is_empty() {
                        if !text.iter().all(u8::is_ascii_whitespace) {
                            return Err(self.err(XmlErrorKind::ContentAfterRoot, pos));
                        }
                    } else if matches!(self.capture, Some((_, d)) if d == self.stack.len()) {
                        let text = text
                            .unescape()
                            .map_err(|e| self.err(XmlErrorKind::Syntax(e.to_string()), pos))?;
                        self.text.push_str(&text);
                    } else if text.contains(&b'&') {
                        // Not kept, but an undefined entity is still an error.
                        text.unescape()
                            .map_err(|e| self.err(XmlErrorKind::Syntax(e.to_string()), pos))?;
                    }
                }
                Event::CData(cdata) => {
                    if self.stack.is_empty() {
                        return Err(self.err(XmlErrorKind::ContentAfterRoot, pos));
                    }
                    if matches!(self.capture, Some((_, d)) if d == self.stack.len()) {
                        let text = cdata
                            .decode()
                            .map_err(|e| self.err(XmlErrorKind::Syntax(e.to_string()), pos))?;
                        self.text.push_str(&text);
                    }
                }
                Event::DocType(_) => return Err(self.err(XmlErrorKind::Doctype, pos)),
                Event::Decl(_) => {
                    return Err(self.err(
                        XmlErrorKind::Syntax("XML declaration not at the start".into()),
                        pos,
                    ))
                }
                Event::Comment(_) | Event::PI(_) => {}
                Event::Empty(_) => {
                    // expand_empty_elements is on; never produced.
                    return Err(
                        self.err(XmlErrorKind::Syntax("unexpected empty element".into()), pos)
                    );
                }
                Event::Eof => {
                    if !self.stack.is_empty() {
                        return Err(self.err(XmlErrorKind::Truncated, self.bytes.len() as u64));
                    }
                    return Ok(());
                }
            }
        }
    }

    fn ccy(&self, start: &BytesStart<'_>) -> Result<Option<String>, XmlResultError> {
        for attr in start.attributes() {
            let attr = attr.map_err(|e| self.syntax(e))?;
            if attr.key.local_name().as_ref() == b"Ccy" {
                let value = attr.unescape_value().map_err(|e| self.syntax(e))?;
                return Ok(Some(value.trim().to_string()));
            }
        }
        Ok(None)
    }

    /// The field the element just opened holds, if any.
    fn field(&self, pain: bool) -> Option<Field> {
        use Tag as T;
        let rel = self.stack.get(2..)?;
        if pain {
            Some(match rel {
                [T::GrpHdr, T::MsgId] => Field::MsgId,
                [T::OrgnlGrpInfAndSts, T::OrgnlMsgId] => Field::GrpId,
                [T::OrgnlGrpInfAndSts, T::GrpSts] => Field::GrpSts,
                [T::OrgnlGrpInfAndSts, T::StsRsnInf, T::Rsn, T::Cd | T::Prtry] => Field::GrpRsn,
                [T::OrgnlGrpInfAndSts, T::StsRsnInf, T::AddtlInf] => Field::GrpText,
                [T::OrgnlPmtInfAndSts, T::OrgnlPmtInfId] => Field::PmtId,
                [T::OrgnlPmtInfAndSts, T::PmtInfSts] => Field::PmtSts,
                [T::OrgnlPmtInfAndSts, T::StsRsnInf, T::Rsn, T::Cd | T::Prtry] => Field::PmtRsn,
                [T::OrgnlPmtInfAndSts, T::StsRsnInf, T::AddtlInf] => Field::PmtText,
                [T::OrgnlPmtInfAndSts, T::TxInfAndSts, tx @ ..] => match tx {
                    [T::OrgnlEndToEndId] => Field::TxE2e,
                    [T::TxSts] => Field::TxSts,
                    [T::StsRsnInf, T::Rsn, T::Cd | T::Prtry] => Field::TxRsn,
                    [T::StsRsnInf, T::AddtlInf] => Field::TxText,
                    [T::AcctSvcrRef] => Field::TxSerial,
                    [T::StsId] => Field::TxStsId,
                    [T::OrgnlTxRef, T::Amt, T::InstdAmt] => Field::TxAmt,
                    _ => return None,
                },
                _ => return None,
            })
        } else {
            Some(match rel {
                [T::GrpHdr, T::MsgId] => Field::MsgId,
                [T::Ntfctn, T::Ntry, entry @ ..] => match entry {
                    [T::Amt] => Field::NtryAmt,
                    [T::CdtDbtInd] => Field::NtryCdtDbt,
                    [T::RvslInd] => Field::NtryRvsl,
                    [T::Sts] | [T::Sts, T::Cd | T::Prtry] => Field::NtrySts,
                    [T::AcctSvcrRef] => Field::NtrySerial,
                    [T::NtryDtls, T::TxDtls, tx @ ..] => match tx {
                        [T::Refs, T::EndToEndId] => Field::TxE2e,
                        [T::Refs, T::AcctSvcrRef] => Field::TxSerial,
                        [T::Amt] => Field::TxAmt,
                        [T::AmtDtls, T::TxAmt, T::Amt] => Field::TxAmtDtls,
                        [T::CdtDbtInd] => Field::TxCdtDbt,
                        [T::RtrInf, T::Rsn, T::Cd | T::Prtry] => Field::TxRsn,
                        [T::RtrInf, T::AddtlInf] => Field::TxText,
                        _ => return None,
                    },
                    _ => return None,
                },
                _ => return None,
            })
        }
    }

    fn store(&mut self, field: Field) -> Result<(), XmlResultError> {
        let value = trim_owned(std::mem::take(&mut self.text));
        let mut fen = None;
        if field.is_amount() && self.capture_ccy.as_deref() == Some("CNY") {
            fen = Some(Fen::parse_yuan(&value).map_err(|error| {
                self.err(
                    XmlErrorKind::Amount {
                        text: value.clone(),
                        error,
                    },
                    self.capture_offset,
                )
            })?);
        }
        let ccy = self.capture_ccy.take();
        let amount = |value| Some(AmountText { value, fen, ccy });
        match field {
            Field::MsgId => self.msg_id = Some(value),
            Field::GrpId => self.group.status.id = Some(value),
            Field::GrpSts => self.group.status.status = Some(value),
            Field::GrpRsn => {
                self.group.reason.get_or_insert(value);
            }
            Field::GrpText => self.group.texts.push(value),
            Field::PmtId | Field::PmtSts | Field::PmtRsn | Field::PmtText => {
                if let Some(block) = self.block.as_mut() {
                    match field {
                        Field::PmtId => block.status.id = Some(value),
                        Field::PmtSts => block.status.status = Some(value),
                        Field::PmtRsn => {
                            block.reason.get_or_insert(value);
                        }
                        _ => block.texts.push(value),
                    }
                }
            }
            Field::NtryAmt
            | Field::NtryCdtDbt
            | Field::NtryRvsl
            | Field::NtrySts
            | Field::NtrySerial => {
                if let Some(entry) = self.entry.as_mut() {
                    match field {
                        Field::NtryAmt => entry.amount = amount(value),
                        Field::NtryCdtDbt => entry.cdt_dbt = Some(value),
                        Field::NtryRvsl => entry.reversal = Some(value),
                        Field::NtrySts => entry.status = Some(value),
                        _ => entry.serial = Some(value),
                    }
                }
            }
            _ => {
                if let Some(tx) = self.tx.as_mut() {
                    match field {
                        Field::TxE2e => tx.e2e = Some(value),
                        Field::TxSts => tx.status = Some(value),
                        Field::TxRsn if tx.reason.is_none() => tx.reason = Some(value),
                        Field::TxText => tx.texts.push(value),
                        Field::TxSerial => tx.serial = Some(value),
                        Field::TxStsId => tx.sts_id = Some(value),
                        Field::TxAmt => tx.amount = amount(value),
                        Field::TxAmtDtls => tx.amount_dtls = amount(value),
                        Field::TxCdtDbt => tx.cdt_dbt = Some(value),
                        _ => {}
                    }
                }
            }
        }
        Ok(())
    }

    fn count_transaction(&mut self, pos: u64) -> Result<(), XmlResultError> {
        self.transactions += 1;
        if self.transactions > self.limits.max_transactions {
            return Err(self.err(
                XmlErrorKind::TooManyTransactions {
                    max: self.limits.max_transactions,
                },
                pos,
            ));
        }
        Ok(())
    }

    fn pain_start(&mut self, pos: u64) -> Result<(), XmlResultError> {
        use Tag as T;
        match self.stack.get(2..).unwrap_or(&[]) {
            [T::OrgnlGrpInfAndSts] => self.group.status.offset = pos,
            [T::OrgnlPmtInfAndSts] => {
                self.block = Some(Level::new(StatusLevel::PaymentInformation, pos));
            }
            [T::OrgnlPmtInfAndSts, T::TxInfAndSts] => {
                self.count_transaction(pos)?;
                self.tx = Some(Tx::default());
            }
            _ => {}
        }
        Ok(())
    }

    fn pain_end(&mut self, _pos: u64) -> Result<(), XmlResultError> {
        use Tag as T;
        match self.stack.get(2..).unwrap_or(&[]) {
            [T::OrgnlPmtInfAndSts] => {
                if let Some(block) = self.block.take() {
                    self.blocks.push(block.finish());
                }
            }
            [T::OrgnlPmtInfAndSts, T::TxInfAndSts] => {
                let tx = self.tx.take().unwrap_or_default();
                self.group.status.transactions += 1;
                if let Some(block) = self.block.as_mut() {
                    block.status.transactions += 1;
                }
                let result = self.pain_result(tx)?;
                self.results.push(result);
            }
            _ => {}
        }
        Ok(())
    }

    fn pain_result(&self, tx: Tx) -> Result<PaymentResult, XmlResultError> {
        let mut notes = Vec::new();
        let e2e = match tx.e2e.filter(|id| !id.is_empty()) {
            Some(id) => id,
            None => {
                notes.push("no OrgnlEndToEndId".to_string());
                "NOTPROVIDED".to_string()
            }
        };
        let block_status = self.block.as_ref().and_then(|b| b.status.status.clone());
        let code = match tx.status.filter(|code| !code.is_empty()) {
            Some(code) => Some(code),
            None => {
                let inherited = non_empty(&block_status)
                    .map(|s| (s, "payment-information"))
                    .or_else(|| non_empty(&self.group.status.status).map(|s| (s, "group")));
                match inherited {
                    Some((s, level)) => {
                        notes.push(format!("no TxSts; {level} status {s} applied"));
                        Some(s.to_string())
                    }
                    None => {
                        notes.push("no TxSts".to_string());
                        None
                    }
                }
            }
        };
        let status = match code.as_deref() {
            Some("ACSC" | "ACCC") => ResultStatus::Paid,
            Some("RJCT" | "CANC") => ResultStatus::Failed,
            _ => ResultStatus::Pending,
        };
        let amount = match &tx.amount {
            Some(a) => Parser::amount(a, &mut notes),
            None => None,
        };
        let bank_text = join_texts(&tx.texts);
        let reason_code = if tx.reason.is_some() || status == ResultStatus::Failed {
            normalise_reason(tx.reason.as_deref(), bank_text.as_deref())
        } else {
            None
        };
        Ok(PaymentResult {
            end_to_end_id: e2e,
            status,
            amount,
            reason_code,
            reason_text: with_notes(bank_text, &notes),
            bank_serial: non_empty(&tx.serial)
                .or(non_empty(&tx.sts_id))
                .map(str::to_string),
            line: self.results.len() as u64 + 1,
        })
    }

    fn amount(a: &AmountText, notes: &mut Vec<String>) -> Option<Fen> {
        match a.ccy.as_deref() {
            Some("CNY") => a.fen,
            Some(ccy) => {
                notes.push(format!("amount {} {ccy} is not CNY", a.value));
                None
            }
            None => {
                notes.push(format!("amount {} has no currency", a.value));
                None
            }
        }
    }

    fn camt_start(&mut self, pos: u64) -> Result<(), XmlResultError> {
        use Tag as T;
        match self.stack.get(2..).unwrap_or(&[]) {
            [T::Ntfctn, T::Ntry] => self.entry = Some(Entry::default()),
            [T::Ntfctn, T::Ntry, T::NtryDtls, T::TxDtls] => {
                self.count_transaction(pos)?;
                self.tx = Some(Tx::default());
            }
            [T::Ntfctn, T::Ntry, T::NtryDtls, T::TxDtls, T::RtrInf] => {
                if let Some(tx) = self.tx.as_mut() {
                    tx.has_rtr = true;
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn camt_end(&mut self, pos: u64) -> Result<(), XmlResultError> {
        use Tag as T;
        match self.stack.get(2..).unwrap_or(&[]) {
            [T::Ntfctn, T::Ntry, T::NtryDtls, T::TxDtls] => {
                let tx = self.tx.take().unwrap_or_default();
                if let Some(entry) = self.entry.as_mut() {
                    entry.txs.push(tx);
                }
            }
            [T::Ntfctn, T::Ntry] => {
                let mut entry = self.entry.take().unwrap_or_default();
                let mut txs = std::mem::take(&mut entry.txs);
                let whole_entry = txs.len() <= 1;
                if txs.is_empty() {
                    self.count_transaction(pos)?;
                    txs.push(Tx::default());
                }
                self.results.reserve(txs.len());
                for tx in txs {
                    let result = self.camt_result(&entry, tx, whole_entry)?;
                    self.results.push(result);
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn camt_result(
        &self,
        entry: &Entry,
        tx: Tx,
        whole_entry: bool,
    ) -> Result<PaymentResult, XmlResultError> {
        let mut notes = Vec::new();
        let cdt_dbt = non_empty(&entry.cdt_dbt).unwrap_or("");
        let reversal = matches!(non_empty(&entry.reversal), Some("true" | "1"));
        let booked_as = non_empty(&entry.status).unwrap_or("");
        let e2e = non_empty(&tx.e2e).map(str::to_string);
        if e2e.is_none() {
            notes.push("no EndToEndId".to_string());
        }
        let bank_text = join_texts(&tx.texts);
        let mut reason_code = if tx.has_rtr {
            normalise_reason(tx.reason.as_deref(), bank_text.as_deref())
        } else {
            None
        };
        let status = if cdt_dbt == "CRDT" && reversal {
            if !tx.has_rtr {
                notes.push("reversal without return information (RtrInf)".to_string());
            }
            if reason_code.is_none() {
                reason_code = Some("NARR".to_string());
            }
            if booked_as != "BOOK" {
                notes.push(format!("entry status {booked_as}"));
            }
            ResultStatus::Returned
        } else if cdt_dbt == "DBIT" && !reversal && booked_as == "BOOK" {
            match non_empty(&tx.cdt_dbt) {
                Some(tx_cd) if tx_cd != "DBIT" => {
                    notes.push(format!(
                        "transaction CdtDbtInd {tx_cd} contradicts booked DBIT entry"
                    ));
                    ResultStatus::Pending
                }
                _ if e2e.is_none() => {
                    notes.push("booked debit not matched to a payment".to_string());
                    ResultStatus::Pending
                }
                _ => ResultStatus::Paid,
            }
        } else {
            notes.push(format!(
                "entry {cdt_dbt}{} status {booked_as} is not a result of our payments",
                if reversal { " reversal" } else { "" }
            ));
            ResultStatus::Pending
        };
        let amount_text = tx
            .amount
            .as_ref()
            .or(tx.amount_dtls.as_ref())
            .or(if whole_entry {
                entry.amount.as_ref()
            } else {
                None
            });
        let amount = match amount_text {
            Some(a) => Parser::amount(a, &mut notes),
            None => None,
        };
        Ok(PaymentResult {
            end_to_end_id: e2e.unwrap_or_else(|| "NOTPROVIDED".to_string()),
            status,
            amount,
            reason_code,
            reason_text: with_notes(bank_text, &notes),
            bank_serial: non_empty(&tx.serial)
                .or(non_empty(&entry.serial))
                .map(str::to_string),
            line: self.results.len() as u64 + 1,
        })
    }
}

fn with_notes(bank_text: Option<String>, notes: &[String]) -> Option<String> {
    if notes.is_empty() {
        return bank_text;
    }
    let notes = format!("[disburse: {}]", notes.join("; "));
    Some(match bank_text {
        Some(text) => format!("{text} {notes}"),
        None => notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn crate_file(rel: &str) -> Vec<u8> {
        let path = format!("{}/{rel}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn sample(name: &str) -> Vec<u8> {
        crate_file(&format!("../shared/samples/real-world/{name}"))
    }

    fn fixture(name: &str) -> Vec<u8> {
        crate_file(&format!("tests/data/results/{name}"))
    }

    fn kind(bytes: &[u8]) -> XmlErrorKind {
        parse_xml_result(bytes).expect_err("must be refused").kind
    }

    fn fen(yuan: &str) -> Option<Fen> {
        Some(Fen::parse_yuan(yuan).unwrap())
    }

    #[test]
    fn real_world_pain002_v03() {
        let bytes = sample("nordea_pain.002.001.03_txn_reject.xml");
        assert_eq!(
            detect_xml_result_format(&bytes),
            Some(XmlResultFormat::Pain002V03)
        );
        let file = parse_xml_result(&bytes).unwrap();
        assert_eq!(file.format, "pain.002.001.03");
        assert_eq!(
            file.bank_file_id.as_deref(),
            Some("XML990920150728124014189")
        );
        assert_eq!(
            file.original_batch_id.as_deref(),
            Some("MSGID-950-TEST2-2807-01")
        );
        assert_eq!(file.results.len(), 2);
        let first = &file.results[0];
        assert_eq!(first.end_to_end_id, "ENDTOENDID-950-TEST2-2807-02");
        assert_eq!(first.status, ResultStatus::Failed);
        assert_eq!(first.reason_code.as_deref(), Some("NARR"));
        assert_eq!(
            first.reason_text.as_deref(),
            Some("CAP Invalid code or combinations in CategoryPurpose or ServiceLevel")
        );
        assert_eq!(first.amount, None);
        assert_eq!(first.line, 1);
        assert_eq!(
            file.results[1].end_to_end_id,
            "ENDTOENDID-950-TEST2-2807-01"
        );
        assert_eq!(file.results[1].line, 2);
        let report = parse_xml_result_report(&bytes, &XmlLimits::default()).unwrap();
        assert_eq!(report.payment_information.len(), 1);
        assert_eq!(
            report.payment_information[0].status.as_deref(),
            Some("RJCT")
        );
        assert_eq!(report.payment_information[0].transactions, 2);
    }

    #[test]
    fn real_world_camt054_v02() {
        let bytes = sample("fffs_camt.054.001.02_sample.xml");
        assert_eq!(
            detect_xml_result_format(&bytes),
            Some(XmlResultFormat::Camt054V02)
        );
        let file = parse_xml_result(&bytes).unwrap();
        assert_eq!(file.format, "camt.054.001.02");
        assert_eq!(file.bank_file_id.as_deref(), Some("BANKFILEID219073"));
        assert_eq!(file.original_batch_id, None);
        let count = |s: ResultStatus| file.results.iter().filter(|r| r.status == s).count();
        // 6 entries: 3 incoming credits (2+2+2 TxDtls), a booked debit without ids (3),
        // a booked debit with ids (2), a reversed credit with RtrInf (2).
        assert_eq!(file.results.len(), 13);
        assert_eq!(count(ResultStatus::Paid), 2);
        assert_eq!(count(ResultStatus::Returned), 2);
        assert_eq!(count(ResultStatus::Pending), 9);
        assert_eq!(
            file.results[6].reason_text.as_deref(),
            Some("[disburse: no EndToEndId; booked debit not matched to a payment; amount 2000.02 EUR is not CNY]")
        );
        assert_eq!(
            file.results[0].reason_text.as_deref(),
            Some("[disburse: no EndToEndId; entry CRDT status BOOK is not a result of our payments; amount 1900.00 EUR is not CNY]")
        );
        let paid: Vec<_> = file
            .results
            .iter()
            .filter(|r| r.status == ResultStatus::Paid)
            .collect();
        assert_eq!(paid[0].end_to_end_id, "ISSRBKREF12345678");
        assert_eq!(paid[0].amount, None, "EUR is not converted");
        assert!(paid[0]
            .reason_text
            .as_deref()
            .unwrap()
            .contains("500.00 EUR is not CNY"));
        let returned: Vec<_> = file
            .results
            .iter()
            .filter(|r| r.status == ResultStatus::Returned)
            .collect();
        assert_eq!(returned[0].end_to_end_id, "NOTPROVIDED");
        assert_eq!(returned[0].reason_code.as_deref(), Some("AC01"));
        assert!(returned[0]
            .reason_text
            .as_deref()
            .unwrap()
            .starts_with("1+TILIÄ EI LÖYDY [disburse:"));
        assert_eq!(returned[1].reason_code.as_deref(), Some("CUST"));
        for (i, r) in file.results.iter().enumerate() {
            assert_eq!(r.line, i as u64 + 1);
        }
    }

    #[test]
    fn real_world_camt054_v08() {
        let bytes = sample("genkgo_camt.054.001.08.xml");
        assert_eq!(
            detect_xml_result_format(&bytes),
            Some(XmlResultFormat::Camt054V08)
        );
        let file = parse_xml_result(&bytes).unwrap();
        assert_eq!(file.format, "camt.054.001.08");
        assert_eq!(file.bank_file_id.as_deref(), Some("AAAASESS-FP-ACCR001"));
        assert_eq!(file.results.len(), 3);
        // Booked DBIT entry whose TxDtls say CRDT: contradictory, so not Paid.
        for r in &file.results {
            assert_eq!(r.status, ResultStatus::Pending);
            assert_eq!(r.amount, None);
            assert!(r.reason_text.as_deref().unwrap().contains("contradicts"));
            assert_eq!(r.bank_serial.as_deref(), Some("ACSR160617103200001"));
        }
        assert_eq!(
            file.results[0].end_to_end_id,
            "UXC06170000006PI00001EE00001"
        );
    }

    #[test]
    fn other_messages_are_not_results() {
        for name in [
            "nordea_camt.053.001.02_example.xml",
            "abnamro_mt940.sta",
            "six_musterfile_pain.001.001.03.ch.02.xml",
        ] {
            let bytes = sample(name);
            assert_eq!(detect_xml_result_format(&bytes), None, "{name}");
            let err = parse_xml_result(&bytes).expect_err(name);
            assert!(
                matches!(err.kind, XmlErrorKind::NotAResultMessage { .. }),
                "{name}: {err}"
            );
            assert!(
                err.to_string()
                    .contains("not a pain.002 or camt.054 message"),
                "{err}"
            );
        }
        let err = parse_xml_result(&sample("nordea_camt.053.001.02_example.xml")).unwrap_err();
        assert!(err.to_string().contains("camt.053.001.02"), "{err}");
    }

    #[test]
    fn own_pain002_v10() {
        let file = parse_xml_result(&fixture("pain.002.001.10_ours.xml")).unwrap();
        assert_eq!(file.format, "pain.002.001.10");
        assert_eq!(file.bank_file_id.as_deref(), Some("ICBC-RPT-20240315-0001"));
        assert_eq!(file.original_batch_id.as_deref(), Some("B2024030001"));
        let r = &file.results;
        assert_eq!(r.len(), 4);
        assert_eq!(
            r[0],
            PaymentResult {
                end_to_end_id: "E2024030000001".into(),
                status: ResultStatus::Paid,
                amount: fen("523.40"),
                reason_code: None,
                reason_text: None,
                bank_serial: Some("ICBC0315000001".into()),
                line: 1,
            }
        );
        assert_eq!(r[1].status, ResultStatus::Failed);
        assert_eq!(r[1].reason_code.as_deref(), Some("AC04"));
        assert_eq!(r[1].reason_text.as_deref(), Some("该账户已销户"));
        assert_eq!(r[1].amount, fen("612"));
        assert_eq!(r[2].status, ResultStatus::Failed);
        assert_eq!(r[2].reason_code.as_deref(), Some("AC06"));
        assert_eq!(r[2].reason_text.as_deref(), Some("账户冻结，请联系开户行"));
        assert_eq!(r[2].amount, fen("480.50"));
        assert_eq!(r[3].status, ResultStatus::Pending);
        assert_eq!(r[3].reason_code, None);
        assert_eq!(r[3].line, 4);
    }

    #[test]
    fn own_camt054_v08() {
        let file = parse_xml_result(&fixture("camt.054.001.08_ours.xml")).unwrap();
        assert_eq!(file.format, "camt.054.001.08");
        assert_eq!(file.bank_file_id.as_deref(), Some("ICBC-NTF-20240320-0001"));
        let r = &file.results;
        assert_eq!(r.len(), 3);
        assert_eq!(
            (r[0].status, r[0].amount),
            (ResultStatus::Paid, fen("523.40"))
        );
        assert_eq!(r[0].bank_serial.as_deref(), Some("ICBC0315000001"));
        assert_eq!(
            (r[1].status, r[1].amount),
            (ResultStatus::Paid, fen("477.70"))
        );
        assert_eq!(r[1].bank_serial.as_deref(), Some("ICBC0315BATCH01"));
        assert_eq!(
            r[2],
            PaymentResult {
                end_to_end_id: "E2024030000001".into(),
                status: ResultStatus::Returned,
                amount: fen("523.40"),
                reason_code: Some("AC04".into()),
                reason_text: Some("收款人账户已销户，款项退回".into()),
                bank_serial: Some("ICBC0320RTN0001".into()),
                line: 3,
            }
        );
    }

    #[test]
    fn group_status_without_transactions() {
        let bytes = fixture("pain.002.001.10_group_rjct.xml");
        let err = parse_xml_result(&bytes).unwrap_err();
        assert!(
            matches!(&err.kind, XmlErrorKind::StatusWithoutTransactions { level: StatusLevel::Group, status, .. } if status == "RJCT"),
            "{err}"
        );
        let report = parse_xml_result_report(&bytes, &XmlLimits::default()).unwrap();
        assert!(report.file.results.is_empty());
        let group = report.group.unwrap();
        assert_eq!(group.status.as_deref(), Some("RJCT"));
        assert_eq!(group.id.as_deref(), Some("B2024030002"));
        assert_eq!(group.reason_code.as_deref(), Some("FF01"));
        assert_eq!(group.reason_text.as_deref(), Some("文件格式错误"));
        // A non-final group status with nothing listed: zero results, no error.
        let text = String::from_utf8(bytes)
            .unwrap()
            .replace(">RJCT<", ">ACTC<");
        assert!(parse_xml_result(text.as_bytes())
            .unwrap()
            .results
            .is_empty());
        // A settled payment-information block with no transactions is refused too.
        let block = text.replace(
            "</OrgnlGrpInfAndSts>",
            "</OrgnlGrpInfAndSts><OrgnlPmtInfAndSts><OrgnlPmtInfId>P1</OrgnlPmtInfId><PmtInfSts>ACSC</PmtInfSts></OrgnlPmtInfAndSts>",
        );
        assert!(matches!(
            kind(block.as_bytes()),
            XmlErrorKind::StatusWithoutTransactions {
                level: StatusLevel::PaymentInformation,
                ..
            }
        ));
    }

    #[test]
    fn fixtures_validate_against_official_schemas() {
        let cases = [
            ("pain.002.001.10_ours.xml", "pain.002.001.10.xsd"),
            ("pain.002.001.10_group_rjct.xml", "pain.002.001.10.xsd"),
            ("camt.054.001.08_ours.xml", "camt.054.001.08.xsd"),
        ];
        let root = env!("CARGO_MANIFEST_DIR");
        for (file, xsd) in cases {
            let out = std::process::Command::new("xmllint")
                .arg("--noout")
                .arg("--schema")
                .arg(format!("{root}/../shared/standards/iso20022/{xsd}"))
                .arg(format!("{root}/tests/data/results/{file}"))
                .output()
                .expect("xmllint must be installed (apt-get install -y libxml2-utils)");
            assert!(
                out.status.success(),
                "{file}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    const PAIN_HEAD: &str = r#"<?xml version="1.0" encoding="UTF-8"?>"#;

    fn pain_doc(tx: &str) -> String {
        format!(
            r#"{PAIN_HEAD}<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.002.001.10"><CstmrPmtStsRpt><GrpHdr><MsgId>M</MsgId></GrpHdr><OrgnlGrpInfAndSts><OrgnlMsgId>B1</OrgnlMsgId></OrgnlGrpInfAndSts><OrgnlPmtInfAndSts><OrgnlPmtInfId>P</OrgnlPmtInfId>{tx}</OrgnlPmtInfAndSts></CstmrPmtStsRpt></Document>"#
        )
    }

    #[test]
    fn billion_laughs_and_xxe_refused() {
        let laughs = r#"<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.002.001.10"><CstmrPmtStsRpt><GrpHdr><MsgId>&lol3;</MsgId></GrpHdr></CstmrPmtStsRpt></Document>"#;
        let err = parse_xml_result(laughs.as_bytes()).unwrap_err();
        assert_eq!(err.kind, XmlErrorKind::Doctype);
        assert_eq!((err.offset, err.line, err.column), (22, 2, 1));
        assert!(err.to_string().contains("DOCTYPE"), "{err}");
        let xxe = r#"<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]><Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.054.001.08"><BkToCstmrDbtCdtNtfctn><GrpHdr><MsgId>&x;</MsgId></GrpHdr></BkToCstmrDbtCdtNtfctn></Document>"#;
        assert_eq!(kind(xxe.as_bytes()), XmlErrorKind::Doctype);
        assert_eq!(detect_xml_result_format(xxe.as_bytes()), None);
        // Without a DOCTYPE an undeclared entity is an error, not an empty string.
        let bare = pain_doc("<TxInfAndSts><OrgnlEndToEndId>&x;</OrgnlEndToEndId></TxInfAndSts>");
        assert!(matches!(kind(bare.as_bytes()), XmlErrorKind::Syntax(_)));
        let elsewhere = pain_doc("<TxInfAndSts><Foo>&x;</Foo></TxInfAndSts>");
        assert!(matches!(
            kind(elsewhere.as_bytes()),
            XmlErrorKind::Syntax(_)
        ));
        let predefined =
            pain_doc("<TxInfAndSts><OrgnlEndToEndId>A&amp;B&#x41;</OrgnlEndToEndId></TxInfAndSts>");
        let file = parse_xml_result(predefined.as_bytes()).unwrap();
        assert_eq!(file.results[0].end_to_end_id, "A&BA");
    }

    #[test]
    fn depth_size_and_count_limits() {
        let deep = pain_doc(&format!("{}{}", "<X>".repeat(100), "</X>".repeat(100)));
        let err = parse_xml_result(deep.as_bytes()).unwrap_err();
        assert_eq!(err.kind, XmlErrorKind::TooDeep { max: 64 });
        assert!(
            err.path
                .starts_with("/Document/CstmrPmtStsRpt/OrgnlPmtInfAndSts/X/X"),
            "{}",
            err.path
        );
        // A million open tags: refused at depth 64, long before the end.
        let bomb = format!(
            "{}{}",
            pain_doc("").split("<OrgnlPmtInfAndSts>").next().unwrap(),
            "<a>".repeat(1_000_000)
        );
        assert!(matches!(
            kind(bomb.as_bytes()),
            XmlErrorKind::TooDeep { .. }
        ));

        let bytes = fixture("pain.002.001.10_ours.xml");
        let small = XmlLimits {
            max_bytes: 100,
            ..XmlLimits::default()
        };
        let err = parse_xml_result_with_limits(&bytes, &small).unwrap_err();
        assert_eq!(
            err.kind,
            XmlErrorKind::TooLarge {
                size: bytes.len(),
                max: 100
            }
        );
        let few = XmlLimits {
            max_transactions: 3,
            ..XmlLimits::default()
        };
        let err = parse_xml_result_with_limits(&bytes, &few).unwrap_err();
        assert_eq!(err.kind, XmlErrorKind::TooManyTransactions { max: 3 });
        assert!(parse_xml_result_with_limits(
            &bytes,
            &XmlLimits {
                max_transactions: 4,
                ..few
            }
        )
        .is_ok());
        let camt = fixture("camt.054.001.08_ours.xml");
        let two = XmlLimits {
            max_transactions: 2,
            ..XmlLimits::default()
        };
        assert!(matches!(
            parse_xml_result_with_limits(&camt, &two).unwrap_err().kind,
            XmlErrorKind::TooManyTransactions { max: 2 }
        ));
    }

    #[test]
    fn truncated_at_every_offset_is_refused() {
        for name in [
            "pain.002.001.10_ours.xml",
            "camt.054.001.08_ours.xml",
            "pain.002.001.10_group_rjct.xml",
        ] {
            let bytes = fixture(name);
            let root_end = bytes
                .windows(11)
                .rposition(|w| w == b"</Document>")
                .unwrap()
                + 11;
            for cut in 0..bytes.len() {
                let result = parse_xml_result_report(&bytes[..cut], &XmlLimits::default());
                if cut < root_end {
                    let err = result.expect_err(&format!("{name} cut at {cut}"));
                    assert!(err.offset <= cut as u64, "{name} cut at {cut}: {err}");
                } else {
                    assert!(result.is_ok(), "{name} cut at {cut}");
                }
            }
        }
        let bytes = fixture("camt.054.001.08_ours.xml");
        let err = parse_xml_result(&bytes[..bytes.len() / 2]).unwrap_err();
        assert!(
            matches!(
                err.kind,
                XmlErrorKind::Truncated | XmlErrorKind::InvalidUtf8
            ),
            "{err}"
        );
    }

    #[test]
    fn encoding_and_trailing_content() {
        let mut bytes = fixture("pain.002.001.10_ours.xml");
        let at = bytes
            .windows(6)
            .position(|w| w == "该账".as_bytes())
            .unwrap();
        bytes[at + 1] = 0xFF;
        let err = parse_xml_result(&bytes).unwrap_err();
        assert_eq!(
            (err.kind.clone(), err.offset),
            (XmlErrorKind::InvalidUtf8, at as u64)
        );
        assert!(err.line > 1 && err.column > 1, "{err}");

        let gbk = pain_doc("").replace("UTF-8", "GBK");
        assert_eq!(
            kind(gbk.as_bytes()),
            XmlErrorKind::NotUtf8 {
                declared: "GBK".into()
            }
        );
        let mut bom = b"\xEF\xBB\xBF".to_vec();
        bom.extend_from_slice(pain_doc("").as_bytes());
        assert!(parse_xml_result(&bom).is_ok());
        let utf16: Vec<u8> = [0xFF, 0xFE, b'<', 0].to_vec();
        assert_eq!(kind(&utf16), XmlErrorKind::InvalidUtf8);

        let ok = pain_doc("");
        assert!(parse_xml_result(format!("{ok}\n<!-- end -->\n").as_bytes()).is_ok());
        assert_eq!(
            kind(format!("{ok}<Document/>").as_bytes()),
            XmlErrorKind::ContentAfterRoot
        );
        assert_eq!(
            kind(format!("{ok}junk").as_bytes()),
            XmlErrorKind::ContentAfterRoot
        );
        assert_eq!(
            kind(b""),
            XmlErrorKind::NotAResultMessage {
                root: None,
                namespace: None
            }
        );
        let wrong = ok.replace("CstmrPmtStsRpt", "BkToCstmrDbtCdtNtfctn");
        assert!(matches!(
            kind(wrong.as_bytes()),
            XmlErrorKind::UnexpectedElement { .. }
        ));
        let dup = ok.replace("<GrpHdr>", r#"<GrpHdr a="1" a="2">"#);
        assert!(matches!(kind(dup.as_bytes()), XmlErrorKind::Syntax(_)));
        let unquoted = ok.replace("<GrpHdr>", "<GrpHdr a=1>");
        assert!(matches!(kind(unquoted.as_bytes()), XmlErrorKind::Syntax(_)));
        let mismatched = ok.replace("</GrpHdr>", "</GrpHdrX>");
        assert!(matches!(
            kind(mismatched.as_bytes()),
            XmlErrorKind::Syntax(_)
        ));
    }

    #[test]
    fn amounts_and_prefixes() {
        let three = pain_doc(
            r#"<TxInfAndSts><OrgnlEndToEndId>E1</OrgnlEndToEndId><TxSts>ACSC</TxSts><OrgnlTxRef><Amt><InstdAmt Ccy="CNY">1.005</InstdAmt></Amt></OrgnlTxRef></TxInfAndSts>"#,
        );
        let err = parse_xml_result(three.as_bytes()).unwrap_err();
        assert_eq!(
            err.kind,
            XmlErrorKind::Amount {
                text: "1.005".into(),
                error: AmountError::TooManyDecimals
            }
        );
        assert!(
            err.path.ends_with("/OrgnlTxRef/Amt/InstdAmt"),
            "{}",
            err.path
        );
        let usd = three.replace(r#"Ccy="CNY">1.005"#, r#"Ccy="USD">1.005"#);
        let r = &parse_xml_result(usd.as_bytes()).unwrap().results[0];
        assert_eq!((r.status, r.amount), (ResultStatus::Paid, None));
        assert_eq!(
            r.reason_text.as_deref(),
            Some("[disburse: amount 1.005 USD is not CNY]")
        );

        // Prefixed namespace, self-closing and missing ids.
        let prefixed = r#"<p:Document xmlns:p="urn:iso:std:iso:20022:tech:xsd:pain.002.001.03"><p:CstmrPmtStsRpt><p:GrpHdr><p:MsgId>M</p:MsgId></p:GrpHdr><p:OrgnlGrpInfAndSts><p:OrgnlMsgId>B</p:OrgnlMsgId></p:OrgnlGrpInfAndSts><p:OrgnlPmtInfAndSts><p:PmtInfSts>RJCT</p:PmtInfSts><p:TxInfAndSts><p:StsRsnInf><p:Rsn><p:Cd/></p:Rsn><p:AddtlInf>账号不存在</p:AddtlInf></p:StsRsnInf></p:TxInfAndSts></p:OrgnlPmtInfAndSts></p:CstmrPmtStsRpt></p:Document>"#;
        assert_eq!(
            detect_xml_result_format(prefixed.as_bytes()),
            Some(XmlResultFormat::Pain002V03)
        );
        let r = &parse_xml_result(prefixed.as_bytes()).unwrap().results[0];
        assert_eq!(r.end_to_end_id, "NOTPROVIDED");
        assert_eq!(r.status, ResultStatus::Failed);
        assert_eq!(r.reason_code.as_deref(), Some("AC01"));
        assert_eq!(
            r.reason_text.as_deref(),
            Some("账号不存在 [disburse: no OrgnlEndToEndId; no TxSts; payment-information status RJCT applied]")
        );
    }

    #[test]
    fn camt_entry_without_details_and_reversal_without_rtrinf() {
        let doc = |ntry: &str| {
            format!(
                r#"<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.054.001.08"><BkToCstmrDbtCdtNtfctn><GrpHdr><MsgId>M</MsgId></GrpHdr><Ntfctn>{ntry}</Ntfctn></BkToCstmrDbtCdtNtfctn></Document>"#
            )
        };
        let lump = doc(
            r#"<Ntry><Amt Ccy="CNY">10.00</Amt><CdtDbtInd>DBIT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts><AcctSvcrRef>R1</AcctSvcrRef></Ntry>"#,
        );
        let r = &parse_xml_result(lump.as_bytes()).unwrap().results;
        assert_eq!(r.len(), 1);
        assert_eq!(
            (r[0].status, r[0].amount),
            (ResultStatus::Pending, fen("10"))
        );
        assert_eq!(r[0].end_to_end_id, "NOTPROVIDED");
        let rev = doc(
            r#"<Ntry><Amt Ccy="CNY">10.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><RvslInd>true</RvslInd><Sts><Cd>PDNG</Cd></Sts><NtryDtls><TxDtls><Refs><EndToEndId>E9</EndToEndId></Refs></TxDtls></NtryDtls></Ntry>"#,
        );
        let r = &parse_xml_result(rev.as_bytes()).unwrap().results[0];
        assert_eq!((r.status, r.amount), (ResultStatus::Returned, fen("10")));
        assert_eq!(r.reason_code.as_deref(), Some("NARR"));
        assert_eq!(
            r.reason_text.as_deref(),
            Some("[disburse: reversal without return information (RtrInf); entry status PDNG]")
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = detect_xml_result_format(&bytes);
            let _ = parse_xml_result(&bytes);
        }

        #[test]
        fn mutated_fixtures_never_panic(
            which in 0usize..2,
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        ) {
            let mut bytes = fixture(["pain.002.001.10_ours.xml", "camt.054.001.08_ours.xml"][which]);
            for (at, byte) in edits {
                let i = at.index(bytes.len());
                bytes[i] = byte;
            }
            if let Err(err) = parse_xml_result(&bytes) {
                prop_assert!(err.offset <= bytes.len() as u64);
                let _ = err.to_string();
            }
        }
    }
}
