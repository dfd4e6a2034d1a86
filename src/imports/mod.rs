//! Input files from civil affairs and the treasury (CONTRACTS §2): CSV tables parsed
//! and validated into domain records. Pure over any `Read`; the CLI opens the files and
//! the store writes the records.
//!
//! **Invariant:** a row either becomes a fully valid record or yields every error it
//! has (`line: column: value: reason`, values masked); nothing half-parsed escapes.

pub mod decode;
pub mod records;
pub mod table;

use crate::imports::decode::InputEncoding;
use crate::imports::table::{ColumnSpec, Row, RowError, TableReader};
use std::io::Read;

/// A refused file reports at most this many row errors in full; the rest are counted.
/// Every bad row is still found: the count says how many there were.
pub const ROW_ERRORS_REPORTED_MAX: usize = 10_000;

/// What one pass over a file found.
#[derive(Debug, Default)]
pub struct ScanReport {
    pub rows: u64,
    pub errors: Vec<RowError>,
    pub errors_not_shown: u64,
    pub warnings: Vec<RowError>,
}

impl ScanReport {
    pub fn is_clean(&self) -> bool {
        self.errors.is_empty() && self.errors_not_shown == 0
    }

    pub fn push_error(&mut self, error: RowError) {
        if self.errors.len() < ROW_ERRORS_REPORTED_MAX {
            self.errors.push(error);
        } else {
            self.errors_not_shown += 1;
        }
    }

    fn push_warning(&mut self, warning: RowError) {
        if self.warnings.len() < ROW_ERRORS_REPORTED_MAX {
            self.warnings.push(warning);
        }
    }
}

/// The outcome of parsing one row: a record and its warnings, or every error.
pub type RowOutcome<T> = Result<(T, Vec<RowError>), Vec<RowError>>;

/// One item of a parsed table.
pub enum ParsedRow<T> {
    Record {
        line: u64,
        record: T,
        warnings: Vec<RowError>,
    },
    Invalid(Vec<RowError>),
    /// Bad bytes or a row with the wrong field count: reading stops here.
    FileError(RowError),
}

/// The rows of a table, parsed one at a time: memory stays flat however long the file.
pub struct ParsedRows<R: Read, T> {
    table: TableReader<R>,
    parse_row: fn(&Row<'_>) -> RowOutcome<T>,
    finished: bool,
}

impl<R: Read, T> ParsedRows<R, T> {
    /// Opens a table; header problems are returned, all of them.
    pub fn open(
        input: R,
        encoding: InputEncoding,
        columns: &'static [ColumnSpec],
        parse_row: fn(&Row<'_>) -> RowOutcome<T>,
    ) -> Result<ParsedRows<R, T>, Vec<RowError>> {
        let table = TableReader::open(input, encoding, columns)?;
        Ok(ParsedRows {
            table,
            parse_row,
            finished: false,
        })
    }
}

impl<R: Read, T> Iterator for ParsedRows<R, T> {
    type Item = ParsedRow<T>;

    fn next(&mut self) -> Option<ParsedRow<T>> {
        if self.finished {
            return None;
        }
        let parse_row = self.parse_row;
        match self.table.next_row()? {
            Ok(row) => Some(match parse_row(&row) {
                Ok((record, warnings)) => ParsedRow::Record {
                    line: row.line,
                    record,
                    warnings,
                },
                Err(errors) => ParsedRow::Invalid(errors),
            }),
            Err(error) => {
                self.finished = true;
                Some(ParsedRow::FileError(error))
            }
        }
    }
}

/// Reads every row, hands each good record (with its line) to `on_record`, which may
/// refuse it (e.g. a duplicate id), and reports every error found.
pub fn scan<R: Read, T>(
    input: R,
    encoding: InputEncoding,
    columns: &'static [ColumnSpec],
    parse_row: fn(&Row<'_>) -> RowOutcome<T>,
    mut on_record: impl FnMut(u64, T) -> Result<(), RowError>,
) -> ScanReport {
    let mut report = ScanReport::default();
    let rows = match ParsedRows::open(input, encoding, columns, parse_row) {
        Ok(rows) => rows,
        Err(errors) => {
            errors
                .into_iter()
                .for_each(|error| report.push_error(error));
            return report;
        }
    };
    for parsed in rows {
        match parsed {
            ParsedRow::Record {
                line,
                record,
                warnings,
            } => {
                report.rows += 1;
                warnings
                    .into_iter()
                    .for_each(|warning| report.push_warning(warning));
                if let Err(error) = on_record(line, record) {
                    report.push_error(error);
                }
            }
            ParsedRow::Invalid(errors) => {
                report.rows += 1;
                errors
                    .into_iter()
                    .for_each(|error| report.push_error(error));
            }
            ParsedRow::FileError(error) => report.push_error(error),
        }
    }
    if report.rows == 0 && report.is_clean() {
        report.push_error(RowError::file_level(1, "the file has a header but no rows"));
    }
    report
}
