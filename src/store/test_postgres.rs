//! Tests only: a fresh database on the real PostgreSQL server (127.0.0.1:5432, or
//! `DISBURSE_TEST_PG`), dropped when the value is, so a failed test leaves none behind;
//! and `block_on`, the runtime the store's tests run on.

use sqlx::Connection as _;

/// Runs a test's future on a runtime of its own.
pub(crate) fn block_on(test: impl std::future::Future<Output = ()>) {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(test);
}

/// The server's admin URL for tests.
fn admin_url() -> String {
    std::env::var("DISBURSE_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

async fn admin_execute(sql: &str) -> Result<(), sqlx::Error> {
    let mut connection = sqlx::PgConnection::connect(&admin_url()).await?;
    sqlx::query(sql).execute(&mut connection).await?;
    connection.close().await
}

/// An empty database of its own, named by `label` and the process id.
pub(crate) struct TestPostgres {
    pub url: String,
    name: String,
}

impl TestPostgres {
    pub async fn create(label: &str) -> TestPostgres {
        let name = format!("disburse_{label}_{}", std::process::id());
        admin_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await
            .unwrap();
        admin_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        let admin = admin_url();
        let base = admin
            .rsplit_once('/')
            .map_or(admin.as_str(), |(base, _)| base);
        TestPostgres {
            url: format!("{base}/{name}"),
            name,
        }
    }
}

impl Drop for TestPostgres {
    /// Drops the database on a thread of its own (the test's runtime may be the one
    /// unwinding); a failure is reported, never a second panic.
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let dropped = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(sqlx::Error::Io)?
                .block_on(admin_execute(&sql))
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test database {}", self.name);
        }
    }
}
