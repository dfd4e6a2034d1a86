//! Backend-neutral bulk reads and writes for the paths that touch every row: one SQL
//! text with `$N` placeholders and plain values, stepped through rusqlite on SQLite
//! (see `raw_sqlite`) and through sqlx on PostgreSQL.
//!
//! **Invariants:** a write runs inside the caller's transaction; values bind by
//! placeholder number; PostgreSQL inserts go through `COPY … FROM STDIN` and bulk reads
//! outside a transaction through `COPY … TO STDOUT` (`copy_out`), whose text format
//! escapes every separator.

use crate::store::copy_out::{copy_out_mapped, copy_statement};
use crate::store::raw_sqlite::{with_raw, Prepared};
use crate::store::runs::PlainRow;
use crate::store::values::SqlValue;
use crate::store::{Store, StoreResult, StoreTx, SQLITE_FREE_PAGE_CACHE};
use rusqlite::ToSql;
use sqlx::Database;

fn bind_value<'q, Db: Database>(
    query: sqlx::query::Query<'q, Db, <Db as Database>::Arguments<'q>>,
    value: &SqlValue,
) -> sqlx::query::Query<'q, Db, <Db as Database>::Arguments<'q>>
where
    i64: sqlx::Encode<'q, Db> + sqlx::Type<Db>,
    String: sqlx::Encode<'q, Db> + sqlx::Type<Db>,
    Option<i64>: sqlx::Encode<'q, Db> + sqlx::Type<Db>,
    Option<String>: sqlx::Encode<'q, Db> + sqlx::Type<Db>,
{
    match value {
        SqlValue::Int(number) => query.bind(*number),
        SqlValue::Text(text) => query.bind(text.to_string()),
        SqlValue::NullInt => query.bind(None::<i64>),
        SqlValue::NullText => query.bind(None::<String>),
    }
}

fn as_params(values: &[SqlValue]) -> Vec<&dyn ToSql> {
    values.iter().map(|value| value as &dyn ToSql).collect()
}

impl StoreTx {
    /// Rows of `sql` with `values` bound to `$1..$n`, each mapped by `map`.
    pub(crate) async fn fetch_mapped<T>(
        &mut self,
        sql: &str,
        values: &[SqlValue],
        mut map: impl FnMut(&dyn PlainRow) -> StoreResult<T>,
    ) -> StoreResult<Vec<T>> {
        match self {
            StoreTx::Sqlite(transaction) => {
                with_raw(transaction, |connection| {
                    Prepared::new(connection, sql)?.query_map(&as_params(values), |row| map(row))
                })
                .await
            }
            // Not by COPY inside a transaction: should the COPY fail before its first
            // row, sqlx 0.8 leaves the connection a reply behind, and a transaction's
            // connection cannot be thrown away from here (see `copy_out`).
            StoreTx::Postgres(transaction) => {
                let query = values.iter().fold(sqlx::query(sql), bind_value);
                let rows = query.fetch_all(&mut **transaction).await?;
                rows.iter().map(|row| map(row)).collect()
            }
        }
    }

    /// After a bulk write of `rows_written` rows into `table`, inside the writing
    /// transaction: PostgreSQL's planner statistics of the table are refreshed
    /// (`ANALYZE`) once the write reaches `ANALYZE_AFTER_ROWS`. Autovacuum analyzes a
    /// table only some time after a bulk load; until then the planner costs a
    /// 2M-row table as a few hundred rows. Measured on PostgreSQL 15 (`EXPLAIN
    /// ANALYZE`): export's page of pay lines sorted every remaining line of the run on
    /// disk per page (290 ms a page at 1.5M of 2M; export took 198 s of a 2M month),
    /// and the run's chunk query sorted the whole roster per chunk (124 ms instead of
    /// 4). SQLite's planner keeps no such statistics unless asked: nothing to do there.
    pub async fn refresh_statistics(
        &mut self,
        table: &'static str,
        rows_written: u64,
    ) -> StoreResult<()> {
        if rows_written < ANALYZE_AFTER_ROWS {
            return Ok(());
        }
        if let StoreTx::Postgres(transaction) = self {
            sqlx::query(&format!("ANALYZE {table}"))
                .execute(&mut **transaction)
                .await?;
        }
        Ok(())
    }

    /// Inserts `rows` (each in `columns` order) into `table`.
    pub(crate) async fn insert_values(
        &mut self,
        table: &str,
        columns: &[&str],
        rows: &[Vec<SqlValue>],
    ) -> StoreResult<()> {
        match self {
            StoreTx::Sqlite(transaction) => {
                let placeholders = (1..=columns.len())
                    .map(|n| format!("${n}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                let sql = format!(
                    "INSERT INTO {table} ({}) VALUES ({placeholders})",
                    columns.join(", ")
                );
                with_raw(transaction, |connection| {
                    let mut insert = Prepared::new(connection, &sql)?;
                    for row in rows {
                        assert_eq!(row.len(), columns.len(), "a value per column");
                        insert.execute(&as_params(row))?;
                    }
                    Ok(())
                })
                .await
            }
            StoreTx::Postgres(transaction) => copy_in(transaction, table, columns, rows).await,
        }
    }
}

/// Rows a bulk write must reach before the table's statistics are refreshed
/// (`StoreTx::refresh_statistics`): a smaller write cannot mislead the planner much,
/// and `ANALYZE` samples up to 30,000 rows whatever the write.
pub const ANALYZE_AFTER_ROWS: u64 = 10_000;

/// Bytes sent to PostgreSQL per `COPY` message.
const COPY_CHUNK_BYTES: usize = 1 << 20;

/// PostgreSQL: `COPY … FROM STDIN` in text format, streamed in 1 MiB messages.
async fn copy_in(
    connection: &mut sqlx::PgConnection,
    table: &str,
    columns: &[&str],
    rows: &[Vec<SqlValue>],
) -> StoreResult<()> {
    let statement = format!("COPY {table} ({}) FROM STDIN", columns.join(", "));
    let mut copy = connection.copy_in_raw(&statement).await?;
    let mut buffer = Vec::with_capacity(COPY_CHUNK_BYTES + 4096);
    for row in rows {
        assert_eq!(row.len(), columns.len(), "a value per column");
        copy_text_row(&mut buffer, row);
        if buffer.len() >= COPY_CHUNK_BYTES {
            copy.send(buffer.as_slice()).await?;
            buffer.clear();
        }
    }
    if !buffer.is_empty() {
        copy.send(buffer.as_slice()).await?;
    }
    copy.finish().await?;
    Ok(())
}

/// One row in COPY's text format: tab-separated, `\N` for NULL, and backslash,
/// tab, line feed and carriage return escaped.
pub(crate) fn copy_text_row(buffer: &mut Vec<u8>, row: &[SqlValue]) {
    for (position, value) in row.iter().enumerate() {
        if position > 0 {
            buffer.push(b'\t');
        }
        match value {
            SqlValue::Int(number) => buffer.extend_from_slice(number.to_string().as_bytes()),
            SqlValue::Text(text) => {
                for &byte in text.as_bytes() {
                    match byte {
                        b'\\' => buffer.extend_from_slice(b"\\\\"),
                        b'\t' => buffer.extend_from_slice(b"\\t"),
                        b'\n' => buffer.extend_from_slice(b"\\n"),
                        b'\r' => buffer.extend_from_slice(b"\\r"),
                        _ => buffer.push(byte),
                    }
                }
            }
            SqlValue::NullInt | SqlValue::NullText => buffer.extend_from_slice(b"\\N"),
        }
    }
    buffer.push(b'\n');
}

impl Store {
    /// Rows of `sql` (a read) with `values` bound to `$1..$n`, each mapped by `map`.
    pub(crate) async fn fetch_mapped<T>(
        &self,
        sql: &str,
        values: &[SqlValue],
        mut map: impl FnMut(&dyn PlainRow) -> StoreResult<T>,
    ) -> StoreResult<Vec<T>> {
        match self {
            Store::Sqlite(pool) => {
                let mut connection = pool.acquire().await?;
                with_raw(&mut connection, |connection| {
                    let rows = Prepared::new(connection, sql)
                        .and_then(|mut read| read.query_map(&as_params(values), |row| map(row)));
                    // Freeing the cache only saves memory: its failure never costs the read.
                    if let Err(error) = connection.execute_batch(SQLITE_FREE_PAGE_CACHE) {
                        tracing::debug!(%error, "could not free a connection's page cache");
                    }
                    rows
                })
                .await
            }
            Store::Postgres(pool) => {
                let mut connection = pool.acquire().await?;
                let statement = copy_statement(sql, values);
                let mapped = copy_out_mapped(&mut connection, &statement, map).await;
                if mapped.is_err() {
                    // The connection may be out of step with the server (see
                    // `copy_out`): it is closed, never handed back to the pool.
                    connection.close_on_drop();
                }
                mapped
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_text_escapes_what_would_split_a_row_or_a_column() {
        let mut buffer = Vec::new();
        copy_text_row(
            &mut buffer,
            &[
                SqlValue::Int(-42),
                SqlValue::Text("a\tb\nc\rd\\e 张三".into()),
                SqlValue::NullText,
                SqlValue::NullInt,
                SqlValue::Text("".into()),
            ],
        );
        assert_eq!(
            String::from_utf8(buffer).unwrap(),
            "-42\ta\\tb\\nc\\rd\\\\e 张三\t\\N\t\\N\t\n"
        );
    }
}
