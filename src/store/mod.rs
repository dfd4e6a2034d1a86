//! Storage: the only module that uses sqlx. One `Store` over SQLite (the embedded
//! default) or PostgreSQL (the scale path), with the same SQL text on both (`$N`
//! placeholders work on both), dispatched by the `with_pool!`/`with_tx!` macros so each
//! query is compiled once per backend with its concrete types.
//!
//! **Invariants:** start-up refuses a database that is not durable (SQLite WAL +
//! `synchronous=FULL`; PostgreSQL `fsync=on`, `synchronous_commit` not `off`); bulk
//! paths write in multi-row statements, never one round trip per row; every state
//! change and its audit entry share one transaction.

mod audit_log;
mod bulk;
mod copy_out;
mod export;
mod imports;
mod raw_sqlite;
mod results;
mod runs;
mod service;
#[cfg(test)]
pub(crate) mod test_postgres;
pub mod values;
mod work;

pub use bulk::ANALYZE_AFTER_ROWS;
pub use export::{BatchRecord, PaymentRecord};
pub use imports::{row_key, ImportRecord, ImportRow, UpsertOutcome};
pub use results::{
    FoundPayments, HouseholdHold, InstructedPayment, PaymentAccount, PaymentStatusTotal,
    PaymentUpdate, ResultLine, StoredException,
};
pub use runs::{ApproverRecord, GroupTotal, PlaceTotal, RunRecord, StandingRun, StoredApproval};
pub use service::{ApiTokenRecord, CountOf, ResultFileRecord};
pub use work::{CancelWork, WorkItem, WorkStep};

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};
use std::str::FromStr;
use std::time::Duration;

/// Rows per multi-row INSERT. 1000 rows × ≤ 25 columns stays under SQLite's 32766 and
/// PostgreSQL's 65535 bind parameters; measured here at ~440k rows/s on SQLite.
pub const INSERT_BATCH_ROWS: usize = 1000;

/// Rows an import hands the store at once. Neither backend binds them as parameters
/// (SQLite steps one prepared statement per row; PostgreSQL COPYs them), so the batch
/// is sized for the per-batch work on PostgreSQL (a staging table, its statistics, two
/// statements): 10,000 rows of at most ~1 KiB each.
pub const IMPORT_BATCH_ROWS: usize = 10_000;

/// Page size of a new SQLite database; a file made before keeps the size it was made
/// with (changing it would need a `VACUUM` of the whole file). Each bulk stage writes a
/// million wide rows into several B-trees: on 16 KiB pages a page holds four times the
/// rows, so a row costs fewer page splits, cache lookups and log frame headers. Five
/// back-to-back pairs of 1M months were 0.2 to 3.0 s faster than on 4 KiB pages, none
/// slower (docs/scale.md). `cache_size` is set in KiB, so the cache's bytes are the same.
pub const SQLITE_PAGE_SIZE: u32 = 16_384;

/// How long a writer waits for SQLite's lock before giving up.
const SQLITE_BUSY_TIMEOUT_MS: u64 = 30_000;

/// Frees a SQLite connection's page cache before it goes back to the pool. An idle pool
/// connection keeps its cache (up to `cache_size`, 16 MiB) until used again, and a
/// read-ahead, a grouped scan or a bulk read fills it with pages the next read gains
/// little from (issue #7: peak memory).
const SQLITE_FREE_PAGE_CACHE: &str = "PRAGMA shrink_memory";

/// Why the store refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlx(#[from] sqlx::Error),
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("refusing to run on a database that is not durable: {0}")]
    NotDurable(String),
    #[error("unsupported database URL (expected sqlite://FILE or postgres://…)")]
    UnsupportedUrl,
    #[error("{0}")]
    Refused(String),
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A connection pool on one of the two backends.
#[derive(Clone, Debug)]
pub enum Store {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// An open transaction on one of the two backends.
pub enum StoreTx {
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

/// Runs `$body` with `$pool` bound to the concrete pool and `$db` to its sqlx backend.
macro_rules! with_pool {
    ($store:expr, $pool:ident, $db:ident => $body:expr) => {
        match $store {
            $crate::store::Store::Sqlite($pool) => {
                #[allow(dead_code)]
                type $db = sqlx::Sqlite;
                $body
            }
            $crate::store::Store::Postgres($pool) => {
                #[allow(dead_code)]
                type $db = sqlx::Postgres;
                $body
            }
        }
    };
}

/// Runs `$body` with `$conn` bound to the transaction's concrete connection.
macro_rules! with_tx {
    ($tx:expr, $conn:ident, $db:ident => $body:expr) => {
        match $tx {
            $crate::store::StoreTx::Sqlite(transaction) => {
                #[allow(dead_code)]
                type $db = sqlx::Sqlite;
                let $conn = &mut **transaction;
                $body
            }
            $crate::store::StoreTx::Postgres(transaction) => {
                #[allow(dead_code)]
                type $db = sqlx::Postgres;
                let $conn = &mut **transaction;
                $body
            }
        }
    };
}
pub(crate) use {with_pool, with_tx};

impl Store {
    /// Opens (creating an SQLite file on first use), migrates and checks durability.
    pub async fn connect(url: &str) -> StoreResult<Store> {
        let store = if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .page_size(SQLITE_PAGE_SIZE)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .foreign_keys(true)
                // 16 MiB page cache per connection (4 connections): bulk imports and run creation touch
                // far more than the 2 MiB default and would re-read pages from disk.
                .pragma("cache_size", "-16384")
                .busy_timeout(Duration::from_millis(SQLITE_BUSY_TIMEOUT_MS));
            let pool = SqlitePoolOptions::new()
                .max_connections(4)
                .connect_with(options)
                .await?;
            Store::Sqlite(pool)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let options = PgConnectOptions::from_str(url)?;
            let pool = PgPoolOptions::new()
                .max_connections(8)
                .connect_with(options)
                .await?;
            Store::Postgres(pool)
        } else {
            return Err(StoreError::UnsupportedUrl);
        };
        store.check_durability().await?;
        store.migrate().await?;
        Ok(store)
    }

    pub fn backend_name(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    async fn migrate(&self) -> StoreResult<()> {
        match self {
            Store::Sqlite(pool) => sqlx::migrate!("migrations/sqlite").run(pool).await?,
            Store::Postgres(pool) => sqlx::migrate!("migrations/postgres").run(pool).await?,
        }
        Ok(())
    }

    /// FAILURES #23: refuse to run unless the database will keep what it acknowledged.
    pub async fn check_durability(&self) -> StoreResult<()> {
        match self {
            Store::Sqlite(pool) => {
                let journal_mode: String = sqlx::query_scalar("PRAGMA journal_mode")
                    .fetch_one(pool)
                    .await?;
                let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous")
                    .fetch_one(pool)
                    .await?;
                check_sqlite_durability(&journal_mode, synchronous)
            }
            Store::Postgres(pool) => {
                let fsync: String = sqlx::query_scalar("SHOW fsync").fetch_one(pool).await?;
                let synchronous_commit: String = sqlx::query_scalar("SHOW synchronous_commit")
                    .fetch_one(pool)
                    .await?;
                check_postgres_durability(&fsync, &synchronous_commit)
            }
        }
    }

    /// Begins a transaction. On SQLite it takes the write lock at once (`BEGIN
    /// IMMEDIATE`) so a read-then-write transaction cannot fail half-way on upgrade.
    pub async fn begin(&self) -> StoreResult<StoreTx> {
        Ok(match self {
            Store::Sqlite(pool) => StoreTx::Sqlite(pool.begin_with("BEGIN IMMEDIATE").await?),
            Store::Postgres(pool) => StoreTx::Postgres(pool.begin().await?),
        })
    }

    /// Begins a read-only transaction on a connection of its own, for reads that run
    /// beside a writing transaction (compute reads its next chunk while it writes the
    /// last). On SQLite the writer's `BEGIN IMMEDIATE` keeps every other writer out, so
    /// this sees what the writer saw, without the writer's own uncommitted rows.
    pub async fn begin_read(&self) -> StoreResult<StoreTx> {
        Ok(match self {
            Store::Sqlite(pool) => StoreTx::Sqlite(pool.begin().await?),
            Store::Postgres(pool) => {
                StoreTx::Postgres(pool.begin_with("BEGIN TRANSACTION READ ONLY").await?)
            }
        })
    }

    /// Closes the pool. On SQLite the write-ahead log is first folded back into the
    /// database and truncated, so the database file alone holds every commit: an
    /// operator who copies `disburse.db` (a backup, a move) without its `-wal` file
    /// copies everything. (The last connection's close does not do it reliably: a
    /// 1M month's bench left a 290 MB log beside the file.) A checkpoint that cannot
    /// finish, because another process reads, leaves the log for the next one.
    pub async fn close(&self) {
        if let Err(error) = self.fold_log_back().await {
            tracing::warn!(%error, "the write-ahead log was not folded back at close");
        }
        with_pool!(self, pool, Db => pool.close().await)
    }

    /// SQLite: copies every committed page still in the write-ahead log into the
    /// database file and empties the log (what `close` does first; the bench times it
    /// as a stage of its own, so no stage's work is left uncounted). PostgreSQL: nothing.
    /// A reader in another connection or process can keep the checkpoint from
    /// finishing; SQLite then says so in the pragma's row (`busy`), not as an error, and
    /// this returns `StoreError::Refused` naming the pages left in the log.
    pub async fn fold_log_back(&self) -> StoreResult<()> {
        if let Store::Sqlite(pool) = self {
            // (busy, pages in the log, pages copied into the file)
            let (busy, logged, copied): (i64, i64, i64) =
                sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
                    .fetch_one(pool)
                    .await?;
            if busy != 0 {
                return Err(StoreError::Refused(format!(
                    "the write-ahead log could not be folded back while another connection reads: {} of {logged} pages left in it",
                    logged - copied
                )));
            }
        }
        Ok(())
    }
}

impl StoreTx {
    pub async fn commit(self) -> StoreResult<()> {
        match self {
            StoreTx::Sqlite(transaction) => transaction.commit().await?,
            StoreTx::Postgres(transaction) => transaction.commit().await?,
        }
        Ok(())
    }

    pub async fn rollback(self) -> StoreResult<()> {
        match self {
            StoreTx::Sqlite(transaction) => transaction.rollback().await?,
            StoreTx::Postgres(transaction) => transaction.rollback().await?,
        }
        Ok(())
    }

    /// On SQLite, frees this connection's page cache (`SQLITE_FREE_PAGE_CACHE`).
    /// Nothing to do on PostgreSQL.
    pub async fn release_cache_memory(&mut self) -> StoreResult<()> {
        if let StoreTx::Sqlite(transaction) = self {
            sqlx::query(SQLITE_FREE_PAGE_CACHE)
                .execute(&mut **transaction)
                .await?;
        }
        Ok(())
    }

    /// On PostgreSQL, serialises writers of one kind (run numbers, audit appends, result
    /// ingests, roster writes) for the rest of the transaction. SQLite's `BEGIN
    /// IMMEDIATE` already serialises every writer.
    pub async fn lock(&mut self, lock: TxLock) -> StoreResult<()> {
        self.advisory_lock("SELECT pg_advisory_xact_lock($1)", lock as i64)
            .await
    }

    /// On PostgreSQL, takes `lock` shared for the rest of the transaction: holders of the
    /// shared lock run side by side and keep out the one holding it exclusively.
    pub async fn lock_shared(&mut self, lock: TxLock) -> StoreResult<()> {
        self.advisory_lock("SELECT pg_advisory_xact_lock_shared($1)", lock as i64)
            .await
    }

    async fn advisory_lock(&mut self, sql: &str, key: i64) -> StoreResult<()> {
        if let StoreTx::Postgres(transaction) = self {
            sqlx::query(sql)
                .bind(key)
                .execute(&mut **transaction)
                .await?;
        }
        Ok(())
    }

    /// On PostgreSQL, locks a region scope against every overlapping scope for the rest
    /// of the transaction (issue #7: scopes computed side by side). Scopes overlap when
    /// one is a prefix of the other, so the scope itself is taken exclusively and each
    /// of its proper prefixes shared, shortest first: "1101" and "11" meet at "11"
    /// (shared against exclusive), "1101" and "1102" only share. Every holder takes its
    /// keys in the same order (by length along one chain of prefixes), so no two wait
    /// for each other in a cycle.
    pub async fn lock_scope(&mut self, scope: &str) -> StoreResult<()> {
        assert!(
            is_region_scope(scope),
            "a scope is a region prefix of up to {SCOPE_DIGITS_MAX} digits"
        );
        for length in 0..scope.len() {
            let key = scope_lock_key(&scope[..length]);
            self.two_key_lock("SELECT pg_advisory_xact_lock_shared($1, $2)", key)
                .await?;
        }
        self.two_key_lock(
            "SELECT pg_advisory_xact_lock($1, $2)",
            scope_lock_key(scope),
        )
        .await
    }

    /// On PostgreSQL, serialises the writers of one run (its export and its
    /// cancellation) for the rest of the transaction; other runs go on beside it.
    pub async fn lock_run(&mut self, run_no: i64) -> StoreResult<()> {
        let run_key = i32::try_from(run_no).expect("run numbers fit RUN_NO_MAX");
        self.two_key_lock(
            "SELECT pg_advisory_xact_lock($1, $2)",
            (RUN_LOCK_CLASS, run_key),
        )
        .await
    }

    async fn two_key_lock(&mut self, sql: &str, (class, key): (i32, i32)) -> StoreResult<()> {
        if let StoreTx::Postgres(transaction) = self {
            sqlx::query(sql)
                .bind(class)
                .bind(key)
                .execute(&mut **transaction)
                .await?;
        }
        Ok(())
    }
}

/// Digits of the longest region scope (a county's code).
pub const SCOPE_DIGITS_MAX: usize = 6;

/// A region scope: a prefix of region codes, up to `SCOPE_DIGITS_MAX` digits ("" is
/// every region).
pub fn is_region_scope(text: &str) -> bool {
    text.len() <= SCOPE_DIGITS_MAX && text.bytes().all(|b| b.is_ascii_digit())
}

/// Whether two scopes share a household: one is a prefix of the other.
pub fn scopes_overlap(one: &str, other: &str) -> bool {
    one.starts_with(other) || other.starts_with(one)
}

/// First key of the two-key advisory locks on one scope ("dsc") and on one run ("drn").
/// PostgreSQL keeps two-key locks apart from the one-key locks of `TxLock`.
const SCOPE_LOCK_CLASS: i32 = 0x0064_7363;
const RUN_LOCK_CLASS: i32 = 0x0064_726e;

/// The two keys of a scope's lock: the length and the digits, so "01" and "1" differ.
fn scope_lock_key(scope: &str) -> (i32, i32) {
    let digits: i32 = if scope.is_empty() {
        0
    } else {
        scope.parse().expect("a scope is digits")
    };
    let length = i32::try_from(scope.len()).expect("a scope is short");
    (SCOPE_LOCK_CLASS, length * 1_000_000 + digits)
}

/// Named advisory locks (PostgreSQL), one key each.
#[derive(Clone, Copy, Debug)]
#[repr(i64)]
pub enum TxLock {
    AuditAppend = 0x6469_7362_0001,
    /// Run numbers: a run created by hand takes the next number, and a month planned
    /// for workers reserves one per scope; both read the largest so far.
    RunNumber = 0x6469_7362_0002,
    /// Result files: two ingests answering one payment must not both read its old state.
    Ingest = 0x6469_7362_0004,
    /// The imported inputs: run creation holds it shared (runs of other scopes compute
    /// side by side, all on the same inputs), an import exclusively. So no household
    /// moves between scopes while runs are being computed, and a household is in at
    /// most one of the runs that compute at once (`paid_in_other_run` sees the rest).
    Inputs = 0x6469_7362_0005,
}

/// SQLite must report `wal` and `synchronous=2` (FULL).
pub fn check_sqlite_durability(journal_mode: &str, synchronous: i64) -> StoreResult<()> {
    if !journal_mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::NotDurable(format!(
            "SQLite journal_mode is {journal_mode}, expected wal"
        )));
    }
    if synchronous != 2 {
        return Err(StoreError::NotDurable(format!(
            "SQLite synchronous is {synchronous}, expected 2 (FULL)"
        )));
    }
    Ok(())
}

/// PostgreSQL must report `fsync=on` and `synchronous_commit` other than `off`
/// (`on`, or a stricter `remote_*`; `local` still flushes locally).
pub fn check_postgres_durability(fsync: &str, synchronous_commit: &str) -> StoreResult<()> {
    if fsync != "on" {
        return Err(StoreError::NotDurable(format!(
            "PostgreSQL fsync is {fsync}, expected on"
        )));
    }
    if !matches!(
        synchronous_commit,
        "on" | "remote_apply" | "remote_write" | "local"
    ) {
        return Err(StoreError::NotDurable(format!(
            "PostgreSQL synchronous_commit is {synchronous_commit}, expected on"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_postgres::block_on;
    use std::collections::HashSet;

    /// After `close`, the database file alone holds every commit: a copy of it made
    /// without its `-wal` file opens with the rows written before the close.
    #[test]
    fn after_close_the_database_file_alone_holds_every_commit() {
        block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("closed.db");
            let store = Store::connect(&format!("sqlite://{}", path.display()))
                .await
                .unwrap();
            let mut transaction = store.begin().await.unwrap();
            transaction
                .append_audit("2026-11-28T12:00:00Z", "tester", "test.close", "x", "y")
                .await
                .unwrap();
            transaction.commit().await.unwrap();
            store.close().await;
            let log = dir.path().join("closed.db-wal");
            let log_bytes = std::fs::metadata(&log).map_or(0, |m| m.len());
            assert_eq!(
                log_bytes, 0,
                "the write-ahead log was folded back and truncated"
            );
            let copy = dir.path().join("copy.db");
            std::fs::copy(&path, &copy).unwrap();
            let copied = Store::connect(&format!("sqlite://{}", copy.display()))
                .await
                .unwrap();
            let Store::Sqlite(pool) = &copied else {
                unreachable!()
            };
            let entries: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE action = 'test.close'")
                    .fetch_one(pool)
                    .await
                    .unwrap();
            assert_eq!(entries, 1);
            copied.close().await;
        });
    }

    /// Migration 0005 rebuilds the roster `WITHOUT ROWID`: a database that already
    /// holds households keeps every row, and the table is clustered afterwards.
    #[test]
    fn clustering_the_roster_keeps_its_rows() {
        block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}", dir.path().join("old.db").display());
            let old = migrated_before(&url, 5).await;
            let Store::Sqlite(pool) = &old else {
                unreachable!()
            };
            sqlx::query("INSERT INTO import_file (kind, sha256, file_name, row_count, imported_by, imported_at) VALUES ('roster', 'x', 'r.csv', 2, 'u', 't')")
                .execute(pool).await.unwrap();
            for (id, from) in [("H2", "2026-01"), ("H1", "2026-03")] {
                sqlx::query("INSERT INTO household_version VALUES ($1, $2, '210103', 'urban', '张三', '210103195607233027', 2, 0, 0, 0, 0, 'stable', '2026-01-01', 80000, NULL, 'ref', 'who', '102100099996', '6222020200112233445', 'debit', '张三', 'hash', 1)")
                    .bind(id).bind(from).execute(pool).await.unwrap();
            }
            old.close().await;
            let store = Store::connect(&url).await.unwrap();
            let Store::Sqlite(pool) = &store else {
                unreachable!()
            };
            let rows: Vec<(String, String, Option<i64>)> = sqlx::query_as(
                "SELECT household_id, approved_from, employment_cost_fen FROM household_version",
            )
            .fetch_all(pool)
            .await
            .unwrap();
            assert_eq!(
                rows,
                vec![
                    ("H1".to_string(), "2026-03".to_string(), None),
                    ("H2".to_string(), "2026-01".to_string(), None)
                ],
                "every row kept, read back in key order"
            );
            let rowid = sqlx::query("SELECT rowid FROM household_version")
                .fetch_all(pool)
                .await;
            assert!(rowid.is_err(), "a WITHOUT ROWID table has no rowid");
        });
    }

    /// A pool on `url` (SQLite created if missing) migrated only through migrations
    /// older than `version`, as a database made by an earlier build would be.
    async fn migrated_before(url: &str, version: i64) -> Store {
        let store = if url.starts_with("sqlite") {
            let options = SqliteConnectOptions::from_str(url)
                .unwrap()
                .create_if_missing(true);
            Store::Sqlite(
                SqlitePoolOptions::new()
                    .connect_with(options)
                    .await
                    .unwrap(),
            )
        } else {
            Store::Postgres(PgPoolOptions::new().connect(url).await.unwrap())
        };
        let mut migrator = match &store {
            Store::Sqlite(_) => sqlx::migrate!("migrations/sqlite"),
            Store::Postgres(_) => sqlx::migrate!("migrations/postgres"),
        };
        migrator.migrations = migrator
            .migrations
            .iter()
            .filter(|migration| migration.version < version)
            .cloned()
            .collect::<Vec<_>>()
            .into();
        match &store {
            Store::Sqlite(pool) => migrator.run(pool).await.unwrap(),
            Store::Postgres(pool) => migrator.run(pool).await.unwrap(),
        }
        store
    }

    async fn execute(store: &Store, sql: &str) -> Result<(), sqlx::Error> {
        match store {
            Store::Sqlite(pool) => sqlx::query(sql).execute(pool).await.map(drop),
            Store::Postgres(pool) => sqlx::query(sql).execute(pool).await.map(drop),
        }
    }

    /// Migration 0006 drops two indexes no query uses and (SQLite) clusters the result
    /// lines by their key; on both backends, a database that already holds results
    /// keeps every row, and the key still refuses a second line of the same number.
    #[test]
    fn dropping_the_unused_indexes_keeps_every_result() {
        block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let sqlite_url = format!("sqlite://{}", dir.path().join("old.db").display());
            let postgres = test_postgres::TestPostgres::create("migration_0006").await;
            for url in [sqlite_url, postgres.url.clone()] {
                let migrator = migrated_before(&url, 6).await;
                let index_sql = if url.starts_with("sqlite") {
                    "SELECT name FROM sqlite_master WHERE type = 'index' AND name IN ('payment_household', 'payment_result_e2e')"
                } else {
                    "SELECT indexname AS name FROM pg_indexes WHERE indexname IN ('payment_household', 'payment_result_e2e')"
                };
                for sql in [
                    "INSERT INTO result_file (sha256, format, file_name, result_count, ingested_by, ingested_at) VALUES ('s', 'csv', 'r.csv', 2, 'u', 't')",
                    "INSERT INTO payment_result VALUES (1, 2, 'E2', 'paid', 100, NULL, NULL, 'S2', 'applied')",
                    "INSERT INTO payment_result VALUES (1, 1, 'E1', 'failed', NULL, 'AC04', '账户已销户', NULL, 'applied')",
                ] {
                    execute(&migrator, sql).await.unwrap();
                }
                migrator.close().await;
                let store = Store::connect(&url).await.unwrap();
                let rows = store
                    .fetch_mapped(
                        "SELECT line, end_to_end_id, reason_text FROM payment_result ORDER BY line",
                        &[],
                        |row| {
                            Ok((
                                row.int("line")?,
                                row.text("end_to_end_id")?,
                                row.opt_text("reason_text")?,
                            ))
                        },
                    )
                    .await
                    .unwrap();
                assert_eq!(
                    rows,
                    vec![
                        (1, "E1".to_string(), Some("账户已销户".to_string())),
                        (2, "E2".to_string(), None)
                    ],
                    "{url}: every row kept"
                );
                let indexes = store
                    .fetch_mapped(index_sql, &[], |row| Ok(row.text("name")?))
                    .await
                    .unwrap();
                assert!(indexes.is_empty(), "{url}: {indexes:?} still there");
                let again = execute(
                    &store,
                    "INSERT INTO payment_result VALUES (1, 1, 'E3', 'paid', 1, NULL, NULL, NULL, 'applied')",
                )
                .await;
                assert!(again.is_err(), "{url}: the key still holds");
                let orphan = execute(
                    &store,
                    "INSERT INTO payment_result VALUES (9, 1, 'E4', 'paid', 1, NULL, NULL, NULL, 'applied')",
                )
                .await;
                assert!(orphan.is_err(), "{url}: the foreign key still holds");
                if url.starts_with("sqlite") {
                    let rowid = execute(&store, "SELECT rowid FROM payment_result").await;
                    assert!(rowid.is_err(), "a WITHOUT ROWID table has no rowid");
                }
                store.close().await;
            }
        });
    }

    /// Migration 0011 keys payments by `payment_key` and names the result file that
    /// last moved each one: on both backends a database that already holds payments,
    /// one answered by a file and one not, keeps every row with its key and file, and
    /// the key refuses a second payment of the same line, whatever its id.
    #[test]
    fn keying_payments_by_line_keeps_every_payment_and_its_file() {
        block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let sqlite_url = format!("sqlite://{}", dir.path().join("old.db").display());
            let postgres = test_postgres::TestPostgres::create("migration_0011").await;
            for url in [sqlite_url, postgres.url.clone()] {
                let migrator = migrated_before(&url, 11).await;
                for sql in [
                    &run_7_insert(),
                    &batch_7_insert(1),
                    "INSERT INTO result_file (sha256, format, file_name, result_count, ingested_by, ingested_at) VALUES ('older', 'pain.002', 'a.xml', 1, 'u', '2026-11-11T09:00:00+08:00')",
                    "INSERT INTO result_file (sha256, format, file_name, result_count, ingested_by, ingested_at) VALUES ('newer', 'pain.002', 'b.xml', 1, 'u', '2026-11-12T09:00:00+08:00')",
                    "INSERT INTO payment (end_to_end_id, run_id, batch_id, line_no, household_id, bank_code, amount_fen, status, status_updated_at, bank_serial, result_sha256, results_seen) \
                     VALUES ('DB000007-00000002', 'R202611-000007', 'B000007-0001', 2, 'H2', '102100099996', 80000, 'paid', '2026-11-12T09:00:00+08:00', 'S2', 'newer', 1)",
                    "INSERT INTO payment (end_to_end_id, run_id, batch_id, line_no, household_id, bank_code, amount_fen) \
                     VALUES ('DB000007-00000001', 'R202611-000007', 'B000007-0001', 1, 'H1', '102100099996', 80000)",
                ] {
                    execute(&migrator, sql).await.unwrap_or_else(|error| panic!("{url}: {sql}: {error}"));
                }
                migrator.close().await;
                let store = Store::connect(&url).await.unwrap();
                let rows = store
                    .fetch_mapped(
                        "SELECT p.payment_key, p.end_to_end_id, p.status, p.bank_serial, f.sha256, f.ingested_at \
                         FROM payment p LEFT JOIN result_file f ON f.result_file_id = p.result_file_id \
                         ORDER BY p.payment_key",
                        &[],
                        |row| {
                            Ok((
                                row.int("payment_key")?,
                                row.text("end_to_end_id")?,
                                row.text("status")?,
                                row.opt_text("bank_serial")?,
                                row.opt_text("sha256")?,
                                row.opt_text("ingested_at")?,
                            ))
                        },
                    )
                    .await
                    .unwrap();
                let text = |value: &str| Some(value.to_string());
                assert_eq!(
                    rows,
                    vec![
                        (
                            700_000_001,
                            "DB000007-00000001".to_string(),
                            "instructed".to_string(),
                            None,
                            None,
                            None
                        ),
                        (
                            700_000_002,
                            "DB000007-00000002".to_string(),
                            "paid".to_string(),
                            text("S2"),
                            text("newer"),
                            text("2026-11-12T09:00:00+08:00")
                        ),
                    ],
                    "{url}: every payment kept, with its key and the file that moved it"
                );
                let second = execute(
                    &store,
                    "INSERT INTO payment (payment_key, end_to_end_id, run_id, batch_id, line_no, household_id, bank_code, amount_fen) \
                     VALUES (700000001, 'XX000007-00000001', 'R202611-000007', 'B000007-0001', 1, 'H1', '102100099996', 80000)",
                )
                .await;
                assert!(
                    second.is_err(),
                    "{url}: a line is instructed once, under any id"
                );
                let misnumbered = execute(
                    &store,
                    "INSERT INTO payment (payment_key, end_to_end_id, run_id, batch_id, line_no, household_id, bank_code, amount_fen) \
                     VALUES (700000003, 'DB000007-00000003', 'R202611-000007', 'B000007-0001', 4, 'H3', '102100099996', 80000)",
                )
                .await;
                assert!(misnumbered.is_err(), "{url}: a key names its own line");
                for change in [
                    "end_to_end_id = 'DB000007-00000009'",
                    "payment_key = 700000009, line_no = 9",
                ] {
                    let moved = execute(
                        &store,
                        &format!("UPDATE payment SET {change} WHERE payment_key = 700000001"),
                    )
                    .await;
                    assert!(moved.is_err(), "{url}: {change} refused");
                }
                let index_sql = if url.starts_with("sqlite") {
                    "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'payment' ORDER BY name"
                } else {
                    "SELECT indexname AS name FROM pg_indexes WHERE tablename = 'payment' ORDER BY indexname"
                };
                let indexes = store
                    .fetch_mapped(index_sql, &[], |row| Ok(row.text("name")?))
                    .await
                    .unwrap();
                let expected: &[&str] = if url.starts_with("sqlite") {
                    &["payment_batch"]
                } else {
                    &["payment_batch", "payment_pkey"]
                };
                assert_eq!(indexes, expected, "{url}: payment's indexes");
                store.close().await;
            }
        });
    }

    /// Migration 0011 refuses, changing nothing, a database where a payment's id does
    /// not spell its run's number and its line (edited by hand): its key would name
    /// another id. Both backends.
    #[test]
    fn keying_payments_stops_at_an_id_that_is_not_its_run_and_line() {
        block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let sqlite_url = format!("sqlite://{}", dir.path().join("bad.db").display());
            let postgres = test_postgres::TestPostgres::create("migration_0011_bad").await;
            for url in [sqlite_url, postgres.url.clone()] {
                let migrator = migrated_before(&url, 11).await;
                for sql in [
                    run_7_insert(),
                    batch_7_insert(1),
                    "INSERT INTO payment (end_to_end_id, run_id, batch_id, line_no, household_id, bank_code, amount_fen) \
                     VALUES ('DB000007-00000005', 'R202611-000007', 'B000007-0001', 1, 'H1', '102100099996', 80000)"
                        .to_string(),
                ] {
                    execute(&migrator, &sql).await.unwrap();
                }
                migrator.close().await;
                let refused = match Store::connect(&url).await {
                    Ok(_) => panic!("{url}: migrated anyway"),
                    Err(error) => error.to_string(),
                };
                assert!(
                    refused.contains("bad = 0") || refused.contains("not migrated"),
                    "{url}: refused for another reason: {refused}"
                );
                let old = migrated_before(&url, 11).await;
                let kept = old
                    .fetch_mapped("SELECT end_to_end_id FROM payment", &[], |row| {
                        Ok(row.text("end_to_end_id")?)
                    })
                    .await
                    .unwrap();
                assert_eq!(kept, ["DB000007-00000005"], "{url}: nothing changed");
                old.close().await;
            }
        });
    }

    /// The one path that writes payments refuses, in release builds too, a payment
    /// whose id's digits name another line than the one it pays: with no index on
    /// the id, this is what keeps an id from being issued twice (migration 0011).
    #[test]
    #[should_panic(expected = "is not line 1 of run R202611-000007")]
    fn a_payment_whose_id_names_another_line_is_never_written() {
        block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}", dir.path().join("guard.db").display());
            let store = Store::connect(&url).await.unwrap();
            for sql in [run_7_insert(), batch_7_insert(1)] {
                execute(&store, &sql).await.unwrap();
            }
            let mut transaction = store.begin().await.unwrap();
            let payment = PaymentRecord {
                end_to_end_id: "DB000007-00000002",
                line_no: 1,
                household_id: "H1",
                bank_code: "102100099996",
                amount_fen: 80000,
            };
            let _ = transaction
                .insert_payments("R202611-000007", 7, "B000007-0001", [payment].into_iter())
                .await;
        });
    }

    /// A bank's id finds a payment by the key its digits name only when the payment
    /// carries that very id: another prefix with the same digits, an id of another
    /// shape, or a line never paid names no payment (it becomes an exception), with or
    /// without the batch the file answers. Both backends.
    #[test]
    fn an_id_finds_its_payment_only_when_it_is_that_payments_id() {
        block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let sqlite_url = format!("sqlite://{}", dir.path().join("ids.db").display());
            let postgres = test_postgres::TestPostgres::create("payment_by_id").await;
            for url in [sqlite_url, postgres.url.clone()] {
                let store = Store::connect(&url).await.unwrap();
                for sql in [
                    &run_7_insert(),
                    &batch_7_insert(1),
                    &batch_7_insert(2),
                    &payment_7_insert(1, 1),
                    &payment_7_insert(2, 2),
                    "INSERT INTO run_line VALUES ('R202611-000007', 1, 'H1', '2026-01', '210103', 'urban', 'pay', 80000, 0, 0, 0, 0, 80000, '102100099996', '6222020200112233445', '张三', '210103195607233027', 'DB000007-00000001', '', '')",
                ] {
                    execute(&store, sql).await.unwrap_or_else(|error| panic!("{url}: {sql}: {error}"));
                }
                let ids = [
                    "DB000007-00000002",
                    "XX000007-00000001",
                    "DB000007-00000001",
                    "DB000007-00000009",
                    "7-00000001",
                    "DB000007-00000002",
                ];
                for batch in [None, Some("B000007-0001")] {
                    let mut transaction = store.begin().await.unwrap();
                    let found = transaction.payments_for_results(batch, &ids).await.unwrap();
                    let named: Vec<Option<(&str, i64)>> = found
                        .of_id
                        .iter()
                        .map(|slot| {
                            slot.map(|index| {
                                let payment = &found.payments[index];
                                (payment.end_to_end_id.as_str(), payment.payment_key)
                            })
                        })
                        .collect();
                    assert_eq!(
                        named,
                        vec![
                            Some(("DB000007-00000002", 700_000_002)),
                            None,
                            Some(("DB000007-00000001", 700_000_001)),
                            None,
                            None,
                            Some(("DB000007-00000002", 700_000_002)),
                        ],
                        "{url}, batch {batch:?}"
                    );
                    let stranger = transaction
                        .payment_accounts(&["XX000007-00000001"])
                        .await
                        .unwrap();
                    assert!(
                        stranger.is_empty(),
                        "{url}: another prefix names no payment: {stranger:?}"
                    );
                    let accounts = transaction
                        .payment_accounts(&["XX000007-00000001", "DB000007-00000001"])
                        .await
                        .unwrap();
                    let accounts: Vec<(&str, &str, &str)> = accounts
                        .iter()
                        .map(|(id, account)| {
                            (
                                id.as_str(),
                                account.household_id.as_str(),
                                account.account_number.as_str(),
                            )
                        })
                        .collect();
                    assert_eq!(
                        accounts,
                        vec![("DB000007-00000001", "H1", "6222020200112233445")],
                        "{url}: only the payment's own id finds its account"
                    );
                    transaction.rollback().await.unwrap();
                }
                store.close().await;
            }
        });
    }

    /// Migration 0008 drops run_line's unique index on end_to_end_id and (SQLite)
    /// clusters the lines by their key; on both backends, a database that already holds
    /// lines keeps every row, and the key and the run's foreign key still hold.
    #[test]
    fn clustering_the_run_lines_keeps_every_line() {
        block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let sqlite_url = format!("sqlite://{}", dir.path().join("old.db").display());
            let postgres = test_postgres::TestPostgres::create("migration_0008").await;
            for url in [sqlite_url, postgres.url.clone()] {
                let older = migrated_before(&url, 8).await;
                for sql in [
                    "INSERT INTO run (run_id, run_no, programme, month, scope, pay_date, state, created_by, created_at, input_sha256, digest, line_count, pay_count, payable_fen, hold_count, hold_fen, approvals_required) VALUES ('R202611-000001', 1, 'dibao', '2026-11', '', '2026-11-10', 'computed', 'u', 't', 'i', 'd', 2, 1, 80000, 1, 0, 1)",
                    &run_line_insert(2, "H2", "DB000001-00000002"),
                    &run_line_insert(1, "H1", "DB000001-00000001"),
                ] {
                    execute(&older, sql).await.unwrap();
                }
                older.close().await;
                let store = Store::connect(&url).await.unwrap();
                let rows = store
                    .fetch_mapped(
                        "SELECT line_no, household_id, end_to_end_id, account_name FROM run_line WHERE run_id = 'R202611-000001' ORDER BY line_no",
                        &[],
                        |row| {
                            Ok((
                                row.int("line_no")?,
                                row.text("household_id")?,
                                row.text("end_to_end_id")?,
                                row.text("account_name")?,
                            ))
                        },
                    )
                    .await
                    .unwrap();
                let line = |no: i64, id: &str, e2e: &str| {
                    (no, id.to_string(), e2e.to_string(), "张三".to_string())
                };
                assert_eq!(
                    rows,
                    vec![
                        line(1, "H1", "DB000001-00000001"),
                        line(2, "H2", "DB000001-00000002")
                    ],
                    "{url}: every line kept"
                );
                let again = execute(&store, &run_line_insert(1, "H3", "DB000001-00000009")).await;
                assert!(again.is_err(), "{url}: the key still holds");
                let orphan = execute(
                    &store,
                    &run_line_insert(3, "H4", "DB000001-00000003")
                        .replace("R202611-000001", "R209901-000009"),
                )
                .await;
                assert!(orphan.is_err(), "{url}: the run's foreign key still holds");
                let index_sql = if url.starts_with("sqlite") {
                    "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'run_line' ORDER BY name"
                } else {
                    "SELECT indexname AS name FROM pg_indexes WHERE tablename = 'run_line' AND indexname <> 'run_line_pkey' ORDER BY indexname"
                };
                let indexes = store
                    .fetch_mapped(index_sql, &[], |row| Ok(row.text("name")?))
                    .await
                    .unwrap();
                assert_eq!(
                    indexes,
                    ["run_line_household"],
                    "{url}: the id is no longer indexed"
                );
                if url.starts_with("sqlite") {
                    let rowid = execute(&store, "SELECT rowid FROM run_line").await;
                    assert!(rowid.is_err(), "a WITHOUT ROWID table has no rowid");
                }
                store.close().await;
            }
        });
    }

    /// Migration 0009 (PostgreSQL): payment pages keep room for ingest's update, so a
    /// payment's new status is written heap-only, with no new entry in any of the
    /// table's indexes (issue #7). Counted by PostgreSQL itself inside the updating
    /// transaction. On SQLite the same updates are checked to land, row by row.
    #[test]
    fn ingest_updates_payments_without_touching_their_indexes() {
        const PAYMENTS: i64 = 300;
        block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let sqlite_url = format!("sqlite://{}", dir.path().join("hot.db").display());
            let postgres = test_postgres::TestPostgres::create("payment_hot").await;
            for url in [sqlite_url, postgres.url.clone()] {
                let store = Store::connect(&url).await.unwrap();
                execute(&store, "INSERT INTO run (run_id, run_no, programme, month, scope, pay_date, state, created_by, created_at, input_sha256, digest, line_count, pay_count, payable_fen, hold_count, hold_fen, approvals_required) VALUES ('R202611-000001', 1, 'dibao', '2026-11', '', '2026-11-10', 'exported', 'u', 't', 'i', 'd', 300, 300, 24000000, 0, 0, 1)").await.unwrap();
                execute(&store, "INSERT INTO batch VALUES ('R202611-000001-B0001', 'R202611-000001', 1, 'pain001', '102', '11001000000000000001', '2026-11-10', 'f.xml', 300, 24000000, 'sha', 'rsa', 'k', 'u', 't')").await.unwrap();
                let ids: Vec<String> = (1..=PAYMENTS)
                    .map(|line| format!("DB000001-{line:08}"))
                    .collect();
                execute(&store, "INSERT INTO result_file (sha256, format, file_name, result_count, ingested_by, ingested_at) \
                                 VALUES ('s', 'pain.002', 'r.xml', 300, 'u', '2026-11-12T09:30:00+08:00')").await.unwrap();
                for (line, id) in (1..).zip(&ids) {
                    let key = crate::run::payment_key(1, line);
                    execute(&store, &format!(
                        "INSERT INTO payment (payment_key, end_to_end_id, run_id, batch_id, line_no, household_id, bank_code, amount_fen) \
                         VALUES ({key}, '{id}', 'R202611-000001', 'R202611-000001-B0001', {line}, '21010300{line:04}', '102100099996', 80000)"
                    )).await.unwrap();
                }
                // As ingest writes them: every NULL export left is filled, and one
                // payment in ten fails with a reason in Chinese.
                let serials: Vec<String> = (1..=PAYMENTS)
                    .map(|line| format!("ICBC20261110{line:08}"))
                    .collect();
                let updates: Vec<PaymentUpdate> = ids
                    .iter()
                    .zip(&serials)
                    .enumerate()
                    .map(|(index, (id, serial))| {
                        let failed = index % 10 == 9;
                        PaymentUpdate {
                            payment_key: crate::run::payment_key(1, index as i64 + 1),
                            end_to_end_id: id,
                            status: if failed { "failed" } else { "paid" },
                            results_seen: 1,
                            reason_code: failed.then_some("AC04"),
                            reason_text: failed.then(|| "账户已销户".to_string()),
                            bank_serial: Some(serial),
                        }
                    })
                    .collect();
                let mut transaction = store.begin().await.unwrap();
                transaction.update_payments(&updates, 1).await.unwrap();
                if url.starts_with("postgres") {
                    let counts = transaction
                        .fetch_mapped(
                            "SELECT pg_stat_get_xact_tuples_updated('payment'::regclass) AS updated, \
                             pg_stat_get_xact_tuples_hot_updated('payment'::regclass) AS heap_only",
                            &[],
                            |row| Ok((row.int("updated")?, row.int("heap_only")?)),
                        )
                        .await
                        .unwrap();
                    assert_eq!(
                        counts,
                        vec![(PAYMENTS, PAYMENTS)],
                        "updated and heap-only updates"
                    );
                }
                transaction.commit().await.unwrap();
                let statuses = store
                    .fetch_mapped(
                        "SELECT status, COUNT(*) AS n FROM payment WHERE bank_serial LIKE 'ICBC%' AND result_file_id = 1 GROUP BY status ORDER BY status",
                        &[],
                        |row| Ok((row.text("status")?, row.int("n")?)),
                    )
                    .await
                    .unwrap();
                assert_eq!(
                    statuses,
                    vec![("failed".to_string(), 30), ("paid".to_string(), 270)],
                    "{url}: every update landed"
                );
                store.close().await;
            }
        });
    }

    /// The shared values are taken from each household's version current in the
    /// month: an account a household has left, or will only have later, is not
    /// shared by it, and one household's several versions never share with each
    /// other (P15 holds).
    #[test]
    fn shared_values_come_from_the_versions_current_in_the_month() {
        // Accounts that do not pack into numbers (`RepeatedValues` counts them by text),
        // ID numbers that do, told apart by their leading zeros alone.
        fn account_as_stored(letter: &str) -> String {
            format!("AC-{letter}")
        }
        fn id_number_as_stored(letter: &str) -> String {
            let zeros = match letter {
                "A" => 2,
                "B" => 1,
                _ => 0,
            };
            format!("{}1", "0".repeat(zeros))
        }
        fn sorted(values: HashSet<String>) -> Vec<String> {
            let mut values: Vec<String> = values.into_iter().collect();
            values.sort();
            values
        }
        block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let sqlite_url = format!("sqlite://{}", dir.path().join("shared.db").display());
            let postgres = test_postgres::TestPostgres::create("shared_values").await;
            for url in [sqlite_url, postgres.url.clone()] {
                let store = Store::connect(&url).await.unwrap();
                execute(&store, "INSERT INTO import_file (kind, sha256, file_name, row_count, imported_by, imported_at) VALUES ('roster', 'x', 'r.csv', 7, 'u', 't')").await.unwrap();
                for (household, from, account) in [
                    ("H1", "2026-01", "A"),
                    ("H1", "2026-06", "B"),
                    ("H2", "2026-01", "A"),
                    ("H3", "2026-01", "B"),
                    ("H4", "2026-01", "C"),
                    ("H4", "2026-12", "B"),
                    ("H5", "2026-01", "C"),
                ] {
                    let sql = version_insert(
                        household,
                        from,
                        &id_number_as_stored(account),
                        &account_as_stored(account),
                        1,
                    );
                    execute(&store, &sql).await.unwrap();
                }
                for (month, expected) in [
                    ("2026-05", vec!["A", "C"]),
                    ("2026-11", vec!["B", "C"]),
                    ("2026-12", vec!["B"]),
                ] {
                    let month = crate::domain::month::Month::parse(month).unwrap();
                    let mut transaction = store.begin_read().await.unwrap();
                    // SQLite counts inside the transaction, PostgreSQL from a stream
                    // on a connection of its own; both count, under the bound.
                    let (accounts, id_numbers) = transaction
                        .shared_values_in_one_pass(&store, month)
                        .await
                        .unwrap()
                        .unwrap_or_else(|| panic!("{url}: counted in one pass"));
                    for (column, as_stored) in [
                        ("account_number", account_as_stored as fn(&str) -> String),
                        ("head_id_number", id_number_as_stored),
                    ] {
                        let expected: Vec<String> =
                            expected.iter().map(|value| as_stored(value)).collect();
                        let grouped = transaction.shared_values(column, month).await.unwrap();
                        assert_eq!(sorted(grouped), expected, "{url}: {column} in {month}");
                        let counted = if column == "account_number" {
                            &accounts
                        } else {
                            &id_numbers
                        };
                        assert_eq!(
                            sorted(counted.clone()),
                            expected,
                            "{url}: {column} in {month}, one pass"
                        );
                    }
                    transaction.rollback().await.unwrap();
                }
                store.close().await;
            }
        });
    }

    /// Every reference of the four tables written a row per household holds on both
    /// backends: SQLite by its foreign keys, PostgreSQL (migration 0010) by checks per
    /// statement and on the parents. A row naming no parent is refused, a parent still
    /// named is neither deleted nor re-keyed, and a parent named by an open transaction's
    /// new rows is locked until it ends.
    #[test]
    fn references_hold_whether_checked_per_row_or_per_statement() {
        block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let sqlite_url = format!("sqlite://{}", dir.path().join("refs.db").display());
            let postgres = test_postgres::TestPostgres::create("references").await;
            for url in [sqlite_url, postgres.url.clone()] {
                let store = Store::connect(&url).await.unwrap();
                for sql in [
                    "INSERT INTO import_file (kind, sha256, file_name, row_count, imported_by, imported_at) VALUES ('roster', 'x', 'r.csv', 1, 'u', 't')",
                    "INSERT INTO run (run_id, run_no, programme, month, scope, pay_date, state, created_by, created_at, input_sha256, digest, line_count, pay_count, payable_fen, hold_count, hold_fen, approvals_required) VALUES ('R202611-000001', 1, 'dibao', '2026-11', '', '2026-11-10', 'exported', 'u', 't', 'i', 'd', 1, 1, 80000, 0, 0, 1)",
                    "INSERT INTO batch VALUES ('B1', 'R202611-000001', 1, 'csv', '102', 'P', '2026-11-10', 'f.csv', 1, 80000, 'sha', 'rsa', 'k', 'u', 't')",
                    "INSERT INTO result_file (sha256, format, file_name, result_count, ingested_by, ingested_at) VALUES ('s', 'csv', 'r.csv', 1, 'u', 't')",
                    &household_version_insert(1),
                    &run_line_insert(1, "H1", "DB000001-00000001"),
                    &payment_row_insert("R202611-000001", "B1"),
                    &payment_result_insert(1),
                ] {
                    execute(&store, sql).await.unwrap_or_else(|error| panic!("{url}: {sql}: {error}"));
                }
                let refused = [
                    (household_version_insert(9), "a version of no import"),
                    (
                        run_line_insert(2, "H2", "DB000001-00000002")
                            .replace("R202611-000001", "R209901-000009"),
                        "a line of no run",
                    ),
                    (
                        payment_row_insert("R209901-000009", "B1"),
                        "a payment of no run",
                    ),
                    (
                        payment_row_insert("R202611-000001", "B9"),
                        "a payment in no batch",
                    ),
                    (payment_result_insert(9), "a result of no file"),
                    (
                        "UPDATE payment SET batch_id = 'B9'".to_string(),
                        "a payment moved to no batch",
                    ),
                    (
                        "UPDATE run_line SET run_id = 'R209901-000009'".to_string(),
                        "a line moved to no run",
                    ),
                    (
                        "DELETE FROM run".to_string(),
                        "a run with lines and payments deleted",
                    ),
                    (
                        "DELETE FROM batch".to_string(),
                        "a batch with payments deleted",
                    ),
                    (
                        "DELETE FROM result_file".to_string(),
                        "a result file with lines deleted",
                    ),
                    (
                        "DELETE FROM import_file".to_string(),
                        "an import with versions deleted",
                    ),
                    (
                        "UPDATE batch SET batch_id = 'B2'".to_string(),
                        "a batch with payments re-keyed",
                    ),
                ];
                for (sql, what) in refused {
                    let error = execute(&store, &sql)
                        .await
                        .expect_err(&format!("{url}: {what} was kept"));
                    if url.starts_with("postgres") {
                        let code = error.as_database_error().and_then(|error| error.code());
                        assert_eq!(code.as_deref(), Some("23503"), "{url}: {what}: {error}");
                    }
                }
                let counts = store
                    .fetch_mapped(
                        "SELECT (SELECT COUNT(*) FROM household_version) + (SELECT COUNT(*) FROM run_line) \
                         + (SELECT COUNT(*) FROM payment) + (SELECT COUNT(*) FROM payment_result) AS n",
                        &[],
                        |row| Ok(row.int("n")?),
                    )
                    .await
                    .unwrap();
                assert_eq!(counts, vec![4], "{url}: nothing refused was kept");
                if let Store::Postgres(pool) = &store {
                    // File 2 has no lines yet. While an open transaction adds one, the
                    // file is locked: deleting it waits (here until the lock timeout)
                    // instead of missing the uncommitted line and leaving it orphaned.
                    execute(&store, "INSERT INTO result_file (sha256, format, file_name, result_count, ingested_by, ingested_at) VALUES ('s2', 'csv', 'r2.csv', 1, 'u', 't')").await.unwrap();
                    let mut inserting = pool.begin().await.unwrap();
                    sqlx::query(&payment_result_insert(2))
                        .execute(&mut *inserting)
                        .await
                        .unwrap();
                    let mut deleting = pool.begin().await.unwrap();
                    sqlx::query("SET LOCAL lock_timeout = '300ms'")
                        .execute(&mut *deleting)
                        .await
                        .unwrap();
                    let error = sqlx::query("DELETE FROM result_file WHERE result_file_id = 2")
                        .execute(&mut *deleting)
                        .await
                        .expect_err("a file named by an open transaction's new line is locked");
                    let code = error.as_database_error().and_then(|error| error.code());
                    assert_eq!(code.as_deref(), Some("55P03"), "{error}");
                    deleting.rollback().await.unwrap();
                    inserting.commit().await.unwrap();
                }
                store.close().await;
            }
        });
    }

    /// A `household_version` row of household H1 from import `import_id`.
    fn household_version_insert(import_id: i64) -> String {
        let from = format!("2026-0{import_id}");
        version_insert(
            "H1",
            &from,
            "210103195607233027",
            "6222020200112233445",
            import_id,
        )
    }

    /// A `household_version` row in region 210103 with these key, ID number, account
    /// and import; the other columns as any valid household has them.
    fn version_insert(
        household: &str,
        from: &str,
        id_number: &str,
        account: &str,
        import_id: i64,
    ) -> String {
        format!("INSERT INTO household_version VALUES ('{household}', '{from}', '210103', 'urban', '张三', '{id_number}', 2, 0, 0, 0, 0, 'stable', '2026-01-01', 80000, NULL, 'ref', 'who', '102100099996', '{account}', 'card', '张三', 'hash', {import_id})")
    }

    /// A `payment` row (its key, id and line made from the run and batch, so each is
    /// new).
    fn payment_row_insert(run_id: &str, batch_id: &str) -> String {
        let line_no = if batch_id == "B1" { 1 } else { 2 };
        let run_no: i64 = run_id[run_id.len() - 6..].parse().unwrap();
        let key = crate::run::payment_key(run_no, line_no);
        let id = crate::run::end_to_end_id("DB", run_no, line_no);
        format!(
            "INSERT INTO payment (payment_key, end_to_end_id, run_id, batch_id, line_no, household_id, bank_code, amount_fen) \
             VALUES ({key}, '{id}', '{run_id}', '{batch_id}', {line_no}, 'H1', '102100099996', 80000)"
        )
    }

    /// Run R202611-000007 (run number 7), exported, of two lines.
    fn run_7_insert() -> String {
        "INSERT INTO run (run_id, run_no, programme, month, scope, pay_date, state, created_by, created_at, input_sha256, digest, line_count, pay_count, payable_fen, hold_count, hold_fen, approvals_required) \
         VALUES ('R202611-000007', 7, 'dibao', '2026-11', '', '2026-11-10', 'exported', 'u', 't', 'i', 'd', 2, 2, 160000, 0, 0, 1)".to_string()
    }

    /// Batch `B000007-000{seq}` of run 7.
    fn batch_7_insert(seq: i64) -> String {
        format!("INSERT INTO batch VALUES ('B000007-000{seq}', 'R202611-000007', {seq}, 'pain001', '', '11001000000000000001', '2026-11-10', 'f{seq}.xml', 1, 80000, 'sha', 'rsa', 'k', 'u', 't')")
    }

    /// Line `line_no` of run 7 instructed in batch `B000007-000{seq}`, under its key
    /// and its `DB` id, as export writes it.
    fn payment_7_insert(line_no: i64, seq: i64) -> String {
        let key = crate::run::payment_key(7, line_no);
        let id = crate::run::end_to_end_id("DB", 7, line_no);
        format!(
            "INSERT INTO payment (payment_key, end_to_end_id, run_id, batch_id, line_no, household_id, bank_code, amount_fen) \
             VALUES ({key}, '{id}', 'R202611-000007', 'B000007-000{seq}', {line_no}, 'H{line_no}', '102100099996', 80000)"
        )
    }

    /// A `payment_result` row, line 1 of result file `result_file_id`.
    fn payment_result_insert(result_file_id: i64) -> String {
        format!("INSERT INTO payment_result VALUES ({result_file_id}, 1, 'E1', 'paid', 80000, NULL, NULL, 'S1', 'applied')")
    }

    /// A `run_line` row of run R202611-000001 paying 800 yuan.
    fn run_line_insert(line_no: i64, household_id: &str, end_to_end_id: &str) -> String {
        format!(
            "INSERT INTO run_line VALUES ('R202611-000001', {line_no}, '{household_id}', '2026-01', '210103', 'urban', 'pay', 80000, 0, 0, 0, 0, 80000, '102100099996', '6222020200112233445', '张三', '210103195607233027', '{end_to_end_id}', '', '')"
        )
    }

    /// Stored values are parsed again on the way out (straight from the row's
    /// bytes): a corrupt one is refused, naming the column and the household, never
    /// echoing the value (it may be an ID number, P13).
    #[test]
    fn a_corrupt_stored_household_is_refused_by_column() {
        block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}", dir.path().join("corrupt.db").display());
            let store = Store::connect(&url).await.unwrap();
            let Store::Sqlite(pool) = &store else {
                unreachable!()
            };
            sqlx::query("INSERT INTO import_file (kind, sha256, file_name, row_count, imported_by, imported_at) VALUES ('roster', 'x', 'r.csv', 2, 'u', 't')")
                .execute(pool).await.unwrap();
            for (id, id_number) in [
                ("210103000001", "210103195607233027"),
                ("210103000002", "21010319560723302X-bad"),
            ] {
                sqlx::query("INSERT INTO household_version VALUES ($1, '2026-01', '210103', 'urban', '张三', $2, 2, 0, 0, 0, 0, 'stable', '2026-01-01', 80000, NULL, 'ref', 'who', '102100099996', '6222020200112233446', 'card', '张三', 'hash', 1)")
                    .bind(id).bind(id_number).execute(pool).await.unwrap();
            }
            let mut transaction = store.begin().await.unwrap();
            let month = crate::domain::month::Month::parse("2026-11").unwrap();
            let first = transaction.household_chunk(month, "", "", 1).await.unwrap();
            assert_eq!(first[0][0].head_id_number.as_str(), "210103195607233027");
            assert_eq!(first[0][0].bank_code.as_str(), "102100099996");
            let error = transaction
                .household_chunk(month, "", "210103000001", 1)
                .await
                .unwrap_err()
                .to_string();
            assert!(
                error.contains("head_id_number of household \"210103000002\""),
                "{error}"
            );
            assert!(!error.contains("2101031956"), "{error}");
        });
    }

    #[test]
    fn a_new_sqlite_database_has_large_pages_and_an_older_one_keeps_its_own() {
        block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let older = dir.path().join("older.db");
            let connection = rusqlite::Connection::open(&older).unwrap();
            connection
                .execute_batch("PRAGMA page_size = 4096; CREATE TABLE kept (x INTEGER)")
                .unwrap();
            drop(connection);
            for (file, expected) in [("new.db", i64::from(SQLITE_PAGE_SIZE)), ("older.db", 4096)] {
                let url = format!("sqlite://{}", dir.path().join(file).display());
                let store = Store::connect(&url).await.unwrap();
                let page_size = store
                    .fetch_mapped("PRAGMA page_size", &[], |row| Ok(row.int("page_size")?))
                    .await
                    .unwrap();
                assert_eq!(page_size, vec![expected], "{file}");
                assert_eq!(store.table_row_count("household_version").await.unwrap(), 0);
                store.close().await;
            }
        });
    }

    #[test]
    fn durability_settings_table() {
        assert!(check_sqlite_durability("wal", 2).is_ok());
        assert!(check_sqlite_durability("WAL", 2).is_ok());
        assert!(check_sqlite_durability("delete", 2).is_err());
        assert!(check_sqlite_durability("memory", 2).is_err());
        assert!(check_sqlite_durability("wal", 1).is_err());
        assert!(check_postgres_durability("on", "on").is_ok());
        assert!(check_postgres_durability("off", "on").is_err());
        assert!(check_postgres_durability("on", "off").is_err());
    }
}
