//! Reading a CSV input table: header checks (names as the contract says, order free,
//! unknown columns refused), records with their line numbers, and row errors in the
//! `line: column: value: reason` shape, with personal data masked (P13).

use crate::domain::mask::{mask_account, mask_id_number, mask_name};
use crate::imports::decode::{InputEncoding, StrictDecodingReader};
use std::fmt;
use std::io::Read;

/// How a column's value may be shown in an error (P13).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sensitivity {
    Plain,
    IdNumber,
    Account,
    Name,
}

/// One column of an input table.
#[derive(Clone, Copy, Debug)]
pub struct ColumnSpec {
    pub name: &'static str,
    pub sensitivity: Sensitivity,
}

/// A value longer than this is cut in error messages (the error shows where, not all).
const ERROR_VALUE_CHARS_MAX: usize = 40;

/// One reason a row (or the file, at line 0 or with column `(file)`) was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowError {
    pub line: u64,
    pub column: String,
    /// The offending value, already masked for display.
    pub value: String,
    pub reason: String,
}

impl fmt::Display for RowError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "{}: {}: {}: {}",
            self.line, self.column, self.value, self.reason
        )
    }
}

impl RowError {
    pub fn file_level(line: u64, reason: impl Into<String>) -> RowError {
        RowError {
            line,
            column: "(file)".into(),
            value: String::new(),
            reason: reason.into(),
        }
    }
}

/// Masks a value for display according to its column.
pub fn display_value(value: &str, sensitivity: Sensitivity) -> String {
    let shown = match sensitivity {
        Sensitivity::Plain => value.to_string(),
        Sensitivity::IdNumber => mask_id_number(value),
        Sensitivity::Account => mask_account(value),
        Sensitivity::Name => mask_name(value),
    };
    let mut cut: String = shown.chars().take(ERROR_VALUE_CHARS_MAX).collect();
    if cut.len() < shown.len() {
        cut.push('…');
    }
    format!("{cut:?}")
}

/// Reads a table whose columns are exactly `columns` (any order).
pub struct TableReader<R: Read> {
    csv: csv::Reader<StrictDecodingReader<R>>,
    columns: &'static [ColumnSpec],
    /// For each spec column, its position in the file.
    positions: Vec<usize>,
    record: csv::StringRecord,
    /// The end of the file was reached (and checked).
    ended: bool,
}

/// A record and where its columns are.
pub struct Row<'table> {
    pub line: u64,
    record: &'table csv::StringRecord,
    columns: &'static [ColumnSpec],
    positions: &'table [usize],
    /// Where the next `get` looks first: row parsers ask for the columns in spec
    /// order, so this makes a lookup one comparison instead of a scan.
    next_column: std::cell::Cell<usize>,
}

impl<R: Read> TableReader<R> {
    /// Opens the table and checks its header; every header problem is reported.
    pub fn open(
        input: R,
        encoding: InputEncoding,
        columns: &'static [ColumnSpec],
    ) -> Result<TableReader<R>, Vec<RowError>> {
        let mut csv = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(false)
            .from_reader(StrictDecodingReader::new(input, encoding));
        let header = csv
            .headers()
            .map_err(|error| vec![RowError::file_level(1, csv_error_reason(&error))])?
            .clone();
        let positions = check_header(&header, columns)?;
        Ok(TableReader {
            csv,
            columns,
            positions,
            record: csv::StringRecord::new(),
            ended: false,
        })
    }

    /// The next record, or a file-level error that ends reading (bad bytes, wrong
    /// field count). `None` at the end.
    pub fn next_row(&mut self) -> Option<Result<Row<'_>, RowError>> {
        if self.ended {
            return None;
        }
        match self.csv.read_record(&mut self.record) {
            Ok(false) => {
                // FAILURES #5: a file whose last record has no line break may have been
                // cut inside that record (a shortened last value still parses), so it
                // is refused whole.
                self.ended = true;
                let cut_short = self.csv.get_ref().last_byte().is_some_and(|b| b != b'\n');
                cut_short.then(|| {
                    let line = self.csv.position().line();
                    Err(RowError::file_level(
                        line,
                        "the file does not end with a line break: cut short?",
                    ))
                })
            }
            Ok(true) => {
                let line = self.record.position().map(csv::Position::line).unwrap_or(0);
                Some(Ok(Row {
                    line,
                    record: &self.record,
                    columns: self.columns,
                    positions: &self.positions,
                    next_column: std::cell::Cell::new(0),
                }))
            }
            Err(error) => {
                let line = error.position().map(csv::Position::line).unwrap_or(0);
                Some(Err(RowError::file_level(line, csv_error_reason(&error))))
            }
        }
    }
}

fn csv_error_reason(error: &csv::Error) -> String {
    match error.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => {
            format!("{len} fields where the header has {expected_len}")
        }
        csv::ErrorKind::Io(io_error) => io_error.to_string(),
        _ => error.to_string(),
    }
}

fn check_header(
    header: &csv::StringRecord,
    columns: &'static [ColumnSpec],
) -> Result<Vec<usize>, Vec<RowError>> {
    let mut errors = Vec::new();
    for (position, name) in header.iter().enumerate() {
        let name = name.trim();
        if !columns.iter().any(|column| column.name == name) {
            errors.push(header_error(name, "unknown column"));
        } else if header
            .iter()
            .take(position)
            .any(|earlier| earlier.trim() == name)
        {
            errors.push(header_error(name, "column appears twice"));
        }
    }
    let mut positions = Vec::with_capacity(columns.len());
    for column in columns {
        match header.iter().position(|name| name.trim() == column.name) {
            Some(position) => positions.push(position),
            None => errors.push(header_error(column.name, "missing column")),
        }
    }
    if errors.is_empty() {
        Ok(positions)
    } else {
        Err(errors)
    }
}

fn header_error(name: &str, reason: &str) -> RowError {
    RowError {
        line: 1,
        column: "(header)".to_string(),
        value: format!("{name:?}"),
        reason: reason.into(),
    }
}

impl<'table> Row<'table> {
    /// The raw value of a column of the spec (trimmed of surrounding spaces).
    pub fn get(&self, name: &str) -> &'table str {
        let index = self.column_index(name);
        self.next_column.set(index + 1);
        self.record.get(self.positions[index]).unwrap_or("").trim()
    }

    fn column_index(&self, name: &str) -> usize {
        let hint = self.next_column.get();
        if self
            .columns
            .get(hint)
            .is_some_and(|column| column.name == name)
        {
            return hint;
        }
        self.columns
            .iter()
            .position(|column| column.name == name)
            .unwrap_or_else(|| panic!("column {name} is not in this table's spec"))
    }

    /// An error about a column's value, masked as the column requires.
    pub fn error(&self, name: &str, reason: impl fmt::Display) -> RowError {
        let sensitivity = self
            .columns
            .iter()
            .find(|column| column.name == name)
            .map(|column| column.sensitivity)
            .unwrap_or(Sensitivity::Plain);
        RowError {
            line: self.line,
            column: name.to_string(),
            value: display_value(self.get(name), sensitivity),
            reason: reason.to_string(),
        }
    }

    /// CONTRACTS §2.1: no `|`, CR or LF inside any value: they would break the bank
    /// files' record structure downstream.
    pub fn forbidden_character_errors(&self) -> Vec<RowError> {
        // The record's fields lie end to end in one buffer: one pass over its bytes
        // clears almost every row (the three bytes never occur inside a UTF-8
        // sequence).
        let any_forbidden = self
            .record
            .as_slice()
            .bytes()
            .any(|byte| matches!(byte, b'|' | b'\r' | b'\n'));
        if !any_forbidden {
            return Vec::new();
        }
        self.columns
            .iter()
            .filter(|column| self.get(column.name).contains(['|', '\r', '\n']))
            .map(|column| self.error(column.name, "contains '|', CR or LF"))
            .collect()
    }
}

/// Collects the errors of one row while its fields are parsed one by one, so a row
/// reports every bad field, not just the first.
pub struct FieldParser<'row, 'table> {
    row: &'row Row<'table>,
    errors: Vec<RowError>,
}

impl<'row, 'table> FieldParser<'row, 'table> {
    pub fn new(row: &'row Row<'table>) -> FieldParser<'row, 'table> {
        FieldParser {
            row,
            errors: row.forbidden_character_errors(),
        }
    }

    /// Parses a required column; on failure records the error and returns `None`.
    pub fn required<T, E: fmt::Display>(
        &mut self,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Option<T> {
        let value = self.row.get(name);
        if value.is_empty() {
            self.errors.push(self.row.error(name, "required"));
            return None;
        }
        match parse(value) {
            Ok(parsed) => Some(parsed),
            Err(reason) => {
                self.errors.push(self.row.error(name, reason));
                None
            }
        }
    }

    /// Parses an optional column: empty is `Some(None)`; a bad value is `None`.
    pub fn optional<T, E: fmt::Display>(
        &mut self,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Option<Option<T>> {
        if self.row.get(name).is_empty() {
            return Some(None);
        }
        self.required(name, parse).map(Some)
    }

    /// Free text: required, at most `chars_max` characters.
    pub fn text(&mut self, name: &str, chars_max: usize) -> Option<String> {
        self.required(name, |value| {
            if value.chars().count() > chars_max {
                Err(format!("longer than {chars_max} characters"))
            } else {
                Ok(value.to_string())
            }
        })
    }

    pub fn push(&mut self, name: &str, reason: impl fmt::Display) {
        self.errors.push(self.row.error(name, reason));
    }

    pub fn row(&self) -> &'row Row<'table> {
        self.row
    }

    /// The row's errors, if any; call after every field was tried.
    pub fn finish(self) -> Result<(), Vec<RowError>> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(self.errors)
        }
    }
}
