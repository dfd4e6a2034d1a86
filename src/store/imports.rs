//! Writing imported files: the file record (its SHA-256 makes a re-import a no-op) and
//! its rows in batches (SQLite: a prepared insert per row; PostgreSQL: `COPY` into a
//! staging table, then one insert), where an identical existing row is left alone and
//! a different row under the same key is a conflict the caller reports.

use crate::store::raw_sqlite::{with_raw, Prepared};
use crate::store::runs::PlainRow;
use crate::store::values::{content_sha256, SqlValue, TableDef};
use crate::store::{
    with_pool, with_tx, Store, StoreResult, StoreTx, IMPORT_BATCH_ROWS, INSERT_BATCH_ROWS,
};
use rusqlite::ToSql;
use sqlx::{QueryBuilder, Row};

/// A file already imported.
#[derive(Clone, Debug)]
pub struct ImportRecord {
    pub import_id: i64,
    pub file_name: String,
    pub row_count: i64,
    pub imported_by: String,
    pub imported_at: String,
}

/// A row to import: its values in `TableDef::columns` order and their
/// `content_sha256`, which the caller computes (import hashes on its parsing thread).
#[derive(Clone, Debug)]
pub struct ImportRow {
    pub values: Vec<SqlValue>,
    pub content_sha256: String,
}

impl ImportRow {
    pub fn new(values: Vec<SqlValue>) -> ImportRow {
        let content_sha256 = content_sha256(&values);
        ImportRow {
            values,
            content_sha256,
        }
    }
}

/// What a batch of rows did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UpsertOutcome {
    pub inserted: u64,
    pub unchanged: u64,
    /// Keys (joined with `/`) whose stored row differs from the new one.
    pub conflicts: Vec<String>,
}

impl Store {
    /// The earlier import of a file with this kind and SHA-256, if any.
    pub async fn find_import(&self, kind: &str, sha256: &str) -> StoreResult<Option<ImportRecord>> {
        let sql = "SELECT import_id, file_name, row_count, imported_by, imported_at \
                   FROM import_file WHERE kind = $1 AND sha256 = $2";
        let row = with_pool!(self, pool, Db => {
            sqlx::query(sql).bind(kind).bind(sha256).fetch_optional(pool).await?.map(|row| {
                Ok::<_, sqlx::Error>(ImportRecord {
                    import_id: row.try_get("import_id")?,
                    file_name: row.try_get("file_name")?,
                    row_count: row.try_get("row_count")?,
                    imported_by: row.try_get("imported_by")?,
                    imported_at: row.try_get("imported_at")?,
                })
            })
        });
        Ok(row.transpose()?)
    }
}

impl StoreTx {
    pub async fn insert_import_file(
        &mut self,
        kind: &str,
        sha256: &str,
        file_name: &str,
        row_count: u64,
        imported_by: &str,
        imported_at: &str,
    ) -> StoreResult<i64> {
        let sql = "INSERT INTO import_file (kind, sha256, file_name, row_count, imported_by, imported_at) \
                   VALUES ($1, $2, $3, $4, $5, $6) RETURNING import_id";
        let import_id: i64 = with_tx!(self, conn, Db => {
            sqlx::query_scalar(sql)
                .bind(kind)
                .bind(sha256)
                .bind(file_name)
                .bind(i64::try_from(row_count).unwrap_or(i64::MAX))
                .bind(imported_by)
                .bind(imported_at)
                .fetch_one(&mut *conn)
                .await?
        });
        Ok(import_id)
    }

    /// Sets an import's row count (known once validation has read the whole file).
    pub async fn set_import_row_count(
        &mut self,
        import_id: i64,
        row_count: u64,
    ) -> StoreResult<()> {
        let row_count = i64::try_from(row_count).unwrap_or(i64::MAX);
        with_tx!(self, conn, Db => {
            sqlx::query("UPDATE import_file SET row_count = $1 WHERE import_id = $2")
                .bind(row_count)
                .bind(import_id)
                .execute(&mut *conn)
                .await?;
        });
        Ok(())
    }

    /// Inserts rows that are new, skips rows stored identically, and reports rows whose
    /// key exists with other content. At most `IMPORT_BATCH_ROWS` per call.
    pub async fn upsert_rows(
        &mut self,
        table: &TableDef,
        import_id: i64,
        rows: &[ImportRow],
    ) -> StoreResult<UpsertOutcome> {
        assert!(
            rows.len() <= IMPORT_BATCH_ROWS,
            "upsert_rows takes one batch at a time"
        );
        if let StoreTx::Sqlite(transaction) = self {
            return with_raw(transaction, |connection| {
                upsert_rows_raw(connection, table, import_id, rows)
            })
            .await;
        }
        self.upsert_rows_staged(table, import_id, rows).await
    }

    /// PostgreSQL: the batch is COPYed into a temporary table shaped like the target;
    /// rows whose key is stored with another hash are the conflicts, and the rest go in
    /// with `ON CONFLICT DO NOTHING` (the stored identical rows are the unchanged ones).
    async fn upsert_rows_staged(
        &mut self,
        table: &TableDef,
        import_id: i64,
        rows: &[ImportRow],
    ) -> StoreResult<UpsertOutcome> {
        if rows.is_empty() {
            return Ok(UpsertOutcome::default());
        }
        let stage = format!("import_stage_{}", table.table);
        let mut columns: Vec<&str> = table.columns.to_vec();
        columns.extend(["content_sha256", "import_id"]);
        let staged: Vec<Vec<SqlValue>> = rows
            .iter()
            .map(|row| {
                let mut staged = row.values.clone();
                staged.push(SqlValue::Text(row.content_sha256.as_str().into()));
                staged.push(SqlValue::Int(import_id));
                staged
            })
            .collect();
        self.execute_plain(&format!(
            "CREATE TEMPORARY TABLE IF NOT EXISTS {stage} (LIKE {}) ON COMMIT DROP",
            table.table
        ))
        .await?;
        self.execute_plain(&format!("TRUNCATE {stage}")).await?;
        self.insert_values(&stage, &columns, &staged).await?;
        let column_list = columns.join(", ");
        let inserted = self
            .execute_plain(&format!(
                "INSERT INTO {} ({column_list}) SELECT {column_list} FROM {stage} ON CONFLICT DO NOTHING",
                table.table
            ))
            .await?;
        // Every row new (a first import): nothing to compare. Otherwise the rows whose
        // stored hash differs are the conflicts (a row just inserted matches itself).
        let conflicts = if inserted == rows.len() as u64 {
            Vec::new()
        } else {
            self.staged_conflicts(table, &stage).await?
        };
        let unchanged = rows.len() as u64 - inserted - conflicts.len() as u64;
        Ok(UpsertOutcome {
            inserted,
            unchanged,
            conflicts,
        })
    }

    /// Keys of staged rows stored under the same key with another content hash.
    async fn staged_conflicts(
        &mut self,
        table: &TableDef,
        stage: &str,
    ) -> StoreResult<Vec<String>> {
        // Statistics, or the planner takes the stage for tiny and the join for a scan
        // of the whole target per batch.
        self.execute_plain(&format!("ANALYZE {stage}")).await?;
        let key_match = table
            .key_columns
            .iter()
            .map(|column| format!("t.{column} = s.{column}"))
            .collect::<Vec<_>>()
            .join(" AND ");
        let key_text = table
            .key_columns
            .iter()
            .map(|column| format!("s.{column}::text"))
            .collect::<Vec<_>>()
            .join(" || '/' || ");
        self.fetch_mapped(
            &format!(
                "SELECT {key_text} AS row_key FROM {stage} s JOIN {} t ON {key_match} \
                 WHERE t.content_sha256 <> s.content_sha256",
                table.table
            ),
            &[],
            |row| Ok(row.text("row_key")?),
        )
        .await
    }

    /// Runs one statement without parameters; the rows it changed.
    async fn execute_plain(&mut self, sql: &str) -> StoreResult<u64> {
        let changed = with_tx!(self, conn, Db => {
            sqlx::query(sql).execute(&mut *conn).await?.rows_affected()
        });
        Ok(changed)
    }
}

/// SQLite: each row is inserted unless its key exists; an existing row is compared by
/// its stored content hash. One prepared statement per row, stepped in place.
fn upsert_rows_raw(
    connection: &rusqlite::Connection,
    table: &TableDef,
    import_id: i64,
    rows: &[ImportRow],
) -> StoreResult<UpsertOutcome> {
    let placeholders = (1..=table.columns.len() + 2)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut insert = Prepared::new(connection, &format!(
        "INSERT INTO {} ({}, content_sha256, import_id) VALUES ({placeholders}) ON CONFLICT DO NOTHING",
        table.table,
        table.columns.join(", ")
    ))?;
    let key_condition = table
        .key_columns
        .iter()
        .enumerate()
        .map(|(n, column)| format!("{column} = ${}", n + 1))
        .collect::<Vec<_>>()
        .join(" AND ");
    let mut stored_hash = Prepared::new(
        connection,
        &format!(
            "SELECT content_sha256 FROM {} WHERE {key_condition}",
            table.table
        ),
    )?;
    let key_indexes: Vec<usize> = table
        .key_columns
        .iter()
        .map(|column| column_index(table, column))
        .collect();
    let mut outcome = UpsertOutcome::default();
    for row in rows {
        let (values, hash) = (&row.values, &row.content_sha256);
        let mut bound: Vec<&dyn ToSql> = values.iter().map(|v| v as &dyn ToSql).collect();
        bound.push(hash);
        bound.push(&import_id);
        if insert.execute(&bound)? == 1 {
            outcome.inserted += 1;
            continue;
        }
        let key: Vec<&dyn ToSql> = key_indexes
            .iter()
            .map(|&i| &values[i] as &dyn ToSql)
            .collect();
        let stored = stored_hash.query_map(&key, |row| Ok(row.text("content_sha256")?))?;
        if stored.first() == Some(hash) {
            outcome.unchanged += 1;
        } else {
            outcome.conflicts.push(row_key(table, values));
        }
    }
    Ok(outcome)
}

fn column_index(table: &TableDef, column: &str) -> usize {
    table
        .columns
        .iter()
        .position(|name| *name == column)
        .unwrap_or_else(|| panic!("{column} is not a column of {}", table.table))
}

/// The key of a row as `a/b`, from its key columns.
pub fn row_key(table: &TableDef, values: &[SqlValue]) -> String {
    table
        .key_columns
        .iter()
        .map(|column| match &values[column_index(table, column)] {
            SqlValue::Text(text) => text.to_string(),
            SqlValue::Int(number) => number.to_string(),
            SqlValue::NullInt | SqlValue::NullText => String::new(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

impl StoreTx {
    /// Which of `household_ids` have at least one roster version.
    pub async fn existing_households(
        &mut self,
        household_ids: &[String],
    ) -> StoreResult<std::collections::HashSet<String>> {
        let mut found = std::collections::HashSet::new();
        for chunk in household_ids.chunks(INSERT_BATCH_ROWS) {
            with_tx!(self, conn, Db => {
                let mut query = QueryBuilder::<Db>::new(
                    "SELECT DISTINCT household_id FROM household_version WHERE household_id IN (",
                );
                let mut separated = query.separated(", ");
                chunk.iter().for_each(|id| {
                    separated.push_bind(id.clone());
                });
                query.push(")");
                for row in query.build().fetch_all(&mut *conn).await? {
                    found.insert(row.try_get::<String, _>("household_id")?);
                }
            });
        }
        Ok(found)
    }

    /// Blacklist decisions of these households stored by imports other than
    /// `except_import_id`: (household_id, effective_month).
    pub async fn blacklists_of(
        &mut self,
        household_ids: &[String],
        except_import_id: i64,
    ) -> StoreResult<Vec<(String, String)>> {
        let mut found = Vec::new();
        for chunk in household_ids.chunks(INSERT_BATCH_ROWS) {
            with_tx!(self, conn, Db => {
                let mut query = QueryBuilder::<Db>::new(
                    "SELECT household_id, effective_month FROM decision WHERE kind = 'blacklist' AND import_id <> ",
                );
                query.push_bind(except_import_id);
                query.push(" AND household_id IN (");
                let mut separated = query.separated(", ");
                chunk.iter().for_each(|id| {
                    separated.push_bind(id.clone());
                });
                query.push(")");
                for row in query.build().fetch_all(&mut *conn).await? {
                    found.push((row.try_get("household_id")?, row.try_get("effective_month")?));
                }
            });
        }
        Ok(found)
    }
}

impl Store {
    /// Rows in one of the store's tables; for tests, the demo and diagnostics.
    pub async fn table_row_count(&self, table: &str) -> StoreResult<i64> {
        const TABLES: &[&str] = &[
            "import_file",
            "household_version",
            "decision",
            "staff_relative",
            "treasury_voucher",
            "run",
            "run_line",
            "approver",
            "approval",
            "audit_log",
            "batch",
            "payment",
            "work_item",
            "shared_value_set",
            "result_file",
        ];
        assert!(TABLES.contains(&table), "unknown table {table}");
        let sql = format!("SELECT COUNT(*) FROM {table}");
        let count: i64 =
            with_pool!(self, pool, Db => sqlx::query_scalar(&sql).fetch_one(pool).await?);
        Ok(count)
    }
}
