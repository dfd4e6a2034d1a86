//! The SQLite bulk path: rusqlite statements stepped on the very connection sqlx holds,
//! inside sqlx's open transaction, for the loops that touch every row (imports, run
//! lines, payments, results).
//!
//! Why: sqlx's SQLite driver sends every row across a channel from its worker thread
//! and copies every column into its own allocation; measured here, that overhead was
//! most of the time of a million-row run. A prepared rusqlite statement binds and steps
//! in place. The SQL text is the same as on PostgreSQL: `$N` placeholders are bound by
//! name, so `$2` may appear before `$1`.
//!
//! **Invariants:** the raw connection never outlives the lock on sqlx's handle (it is
//! created and dropped inside `with_raw`), never closes the handle, and never begins
//! or ends a transaction: the caller's sqlx transaction owns that.

use crate::store::runs::PlainRow;
use crate::store::values::SqlValue;
use crate::store::{StoreError, StoreResult};
use rusqlite::types::{ToSql, ToSqlOutput, ValueRef};
use sqlx::SqliteConnection;

/// Runs `work` with a rusqlite view of `connection`, which must be inside the caller's
/// transaction when `work` writes.
pub(crate) async fn with_raw<T>(
    connection: &mut SqliteConnection,
    work: impl FnOnce(&rusqlite::Connection) -> StoreResult<T>,
) -> StoreResult<T> {
    let mut locked = connection.lock_handle().await?;
    let handle = locked.as_raw_handle();
    // SAFETY: `handle` is a live sqlite3 connection, held exclusively by `locked` (sqlx's
    // worker cannot touch it until `locked` drops, after `raw`). A connection made by
    // `from_handle` does not own the handle and never closes it.
    #[allow(unsafe_code)]
    let raw = unsafe { rusqlite::Connection::from_handle(handle.as_ptr().cast()) }?;
    let outcome = work(&raw);
    drop(raw);
    drop(locked);
    outcome
}

/// A prepared statement with the positions of its `$1..$n` placeholders looked up once.
pub(crate) struct Prepared<'c> {
    statement: rusqlite::Statement<'c>,
    /// `indexes[k]` is the SQLite parameter index of `$k+1`, if the text uses it.
    indexes: Vec<Option<usize>>,
    /// Result column names, looked up once (rusqlite's by-name lookup asks SQLite for
    /// every name on every call).
    column_names: Vec<String>,
}

/// A result row whose columns are found by name through the statement's cached names.
pub(crate) struct NamedRow<'r, 's> {
    row: &'r rusqlite::Row<'s>,
    column_names: &'r [String],
    /// Where the next lookup looks first: readers mostly ask for columns in the
    /// statement's order, so a lookup is one comparison instead of a scan.
    next_column: std::cell::Cell<usize>,
}

impl NamedRow<'_, '_> {
    fn get<T: rusqlite::types::FromSql>(&self, column: &str) -> Result<T, sqlx::Error> {
        let index = self.column_index(column)?;
        self.next_column.set(index + 1);
        self.row
            .get(index)
            .map_err(|error| decode_error(column, error))
    }

    fn column_index(&self, column: &str) -> Result<usize, sqlx::Error> {
        let hint = self.next_column.get();
        if self
            .column_names
            .get(hint)
            .is_some_and(|name| name == column)
        {
            return Ok(hint);
        }
        self.column_names
            .iter()
            .position(|name| name == column)
            .ok_or_else(|| sqlx::Error::ColumnNotFound(column.to_string()))
    }
}

impl PlainRow for NamedRow<'_, '_> {
    fn text(&self, column: &str) -> Result<String, sqlx::Error> {
        self.get(column)
    }
    fn with_text(&self, column: &str, read: &mut dyn FnMut(&str)) -> Result<(), sqlx::Error> {
        let index = self.column_index(column)?;
        self.next_column.set(index + 1);
        let text = self
            .row
            .get_ref(index)
            .and_then(|value| value.as_str().map_err(rusqlite::Error::from))
            .map_err(|error| decode_error(column, error))?;
        read(text);
        Ok(())
    }
    fn int(&self, column: &str) -> Result<i64, sqlx::Error> {
        self.get(column)
    }
    fn opt_text(&self, column: &str) -> Result<Option<String>, sqlx::Error> {
        self.get(column)
    }
    fn opt_int(&self, column: &str) -> Result<Option<i64>, sqlx::Error> {
        self.get(column)
    }
}

impl<'c> Prepared<'c> {
    /// Prepares `sql`, which names its parameters `$1..$n`.
    pub(crate) fn new(
        connection: &'c rusqlite::Connection,
        sql: &str,
    ) -> StoreResult<Prepared<'c>> {
        let statement = connection.prepare(sql)?;
        // SQLite numbers distinct named parameters 1, 2, … in order of appearance, so
        // `$k` is found by name: a text using `$1`, `$2` and `$9` has three parameters.
        let mut indexes: Vec<Option<usize>> = Vec::new();
        for index in 1..=statement.parameter_count() {
            let number = statement
                .parameter_name(index)
                .and_then(|name| name.strip_prefix('$'))
                .and_then(|number| number.parse::<usize>().ok())
                .filter(|&number| number >= 1)
                .ok_or_else(|| {
                    StoreError::Refused(format!("parameter {index} of {sql:?} is not $N"))
                })?;
            if indexes.len() < number {
                indexes.resize(number, None);
            }
            indexes[number - 1] = Some(index);
        }
        let column_names = statement
            .column_names()
            .into_iter()
            .map(str::to_string)
            .collect();
        Ok(Prepared {
            statement,
            indexes,
            column_names,
        })
    }

    fn bind(&mut self, values: &[&dyn ToSql]) -> StoreResult<()> {
        assert!(
            values.len() >= self.indexes.len(),
            "every placeholder has a value"
        );
        self.statement.clear_bindings();
        for (value, index) in values.iter().zip(&self.indexes) {
            if let Some(index) = index {
                self.statement.raw_bind_parameter(*index, value)?;
            }
        }
        Ok(())
    }

    /// Runs the query with `values` bound and maps each row.
    pub(crate) fn query_map<T>(
        &mut self,
        values: &[&dyn ToSql],
        mut map: impl FnMut(&NamedRow<'_, '_>) -> StoreResult<T>,
    ) -> StoreResult<Vec<T>> {
        self.bind(values)?;
        let column_names = &self.column_names;
        let mut rows = self.statement.raw_query();
        let mut mapped = Vec::new();
        while let Some(row) = rows.next()? {
            mapped.push(map(&NamedRow {
                row,
                column_names,
                next_column: std::cell::Cell::new(0),
            })?);
        }
        Ok(mapped)
    }

    /// Runs the query with `values` bound and hands each row to `each` as rusqlite
    /// gives it, for callers that read columns by position.
    pub(crate) fn for_each_row(
        &mut self,
        values: &[&dyn ToSql],
        mut each: impl FnMut(&rusqlite::Row<'_>) -> StoreResult<()>,
    ) -> StoreResult<()> {
        self.bind(values)?;
        let mut rows = self.statement.raw_query();
        while let Some(row) = rows.next()? {
            each(row)?;
        }
        Ok(())
    }

    /// Runs the statement with `values` bound; the number of rows it changed.
    pub(crate) fn execute(&mut self, values: &[&dyn ToSql]) -> StoreResult<usize> {
        self.bind(values)?;
        Ok(self.statement.raw_execute()?)
    }
}

/// A text column of a row read by position, in place (no copy).
pub(crate) fn text_ref<'r>(row: &'r rusqlite::Row<'_>, index: usize) -> StoreResult<&'r str> {
    row.get_ref(index)?
        .as_str()
        .map_err(|error| StoreError::Corrupt(format!("column {index} is not text: {error}")))
}

impl ToSql for SqlValue {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            SqlValue::Int(number) => ToSqlOutput::Borrowed(ValueRef::Integer(*number)),
            SqlValue::Text(text) => ToSqlOutput::Borrowed(ValueRef::Text(text.as_bytes())),
            SqlValue::NullInt | SqlValue::NullText => ToSqlOutput::Borrowed(ValueRef::Null),
        })
    }
}

fn decode_error(column: &str, error: rusqlite::Error) -> sqlx::Error {
    sqlx::Error::ColumnDecode {
        index: column.to_string(),
        source: Box::new(error),
    }
}
