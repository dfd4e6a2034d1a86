//! The national month's storage (issue #7): work items (one scope of one month, its
//! reserved run number, its step and the lease of the worker on it) and the month's
//! shared values (P15 flags), found once per roster generation instead of once per run.
//!
//! **Invariants:** a work item is leased to at most one worker at a time: a claim is
//! one transaction that picks an item nobody holds (or whose lease ran out) and sets
//! the lease; on PostgreSQL the pick skips rows another claim has locked (`FOR UPDATE
//! SKIP LOCKED`), so workers never queue behind each other. A step is finished, and a
//! lease released, only by its holder. Run numbers reserved here are never taken by a
//! run created by hand (`next_run_no` reads both tables).

use crate::domain::month::Month;
use crate::store::runs::PlainRow;
use crate::store::values::SqlValue;
use crate::store::{with_pool, with_tx, Store, StoreError, StoreResult, StoreTx};
use std::collections::HashSet;

/// One scope of one month, as planned for workers.
#[derive(Clone, Debug, serde::Serialize)]
pub struct WorkItem {
    pub work_id: i64,
    pub programme: String,
    pub month: String,
    pub scope: String,
    pub pay_date: String,
    pub run_no: i64,
    pub step: WorkStep,
    pub holder: Option<String>,
    pub lease_until: Option<String>,
    pub attempts: i64,
    pub last_error: Option<String>,
}

fn work_item_from_row(row: &(impl PlainRow + ?Sized)) -> StoreResult<WorkItem> {
    Ok(WorkItem {
        work_id: row.int("work_id")?,
        programme: row.text("programme")?,
        month: row.text("month")?,
        scope: row.text("scope")?,
        pay_date: row.text("pay_date")?,
        run_no: row.int("run_no")?,
        step: {
            let text = row.text("step")?;
            WorkStep::parse(&text)
                .ok_or_else(|| StoreError::Corrupt(format!("work item step {text:?}")))?
        },
        holder: row.opt_text("holder")?,
        lease_until: row.opt_text("lease_until")?,
        attempts: row.int("attempts")?,
        last_error: row.opt_text("last_error")?,
    })
}

/// What a work item waits for next.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkStep {
    Compute,
    Approve,
    Done,
    Failed,
    Cancelled,
}

/// Which work item `StoreTx::cancel_work` closes.
#[derive(Clone, Copy, Debug)]
pub enum CancelWork {
    /// This item, only while it waits to be computed (`work cancel`).
    Waiting { work_id: i64 },
    /// The open item (waiting to be computed or approved) that reserved this run
    /// number: its run was cancelled, so its scope is planned again.
    OfRun { run_no: i64 },
}

impl std::fmt::Display for WorkStep {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `pad`, not `write_str`: `work list` aligns the step in a column (`{:<9}`).
        formatter.pad(self.as_str())
    }
}

impl WorkStep {
    pub fn parse(text: &str) -> Option<WorkStep> {
        [
            WorkStep::Compute,
            WorkStep::Approve,
            WorkStep::Done,
            WorkStep::Failed,
            WorkStep::Cancelled,
        ]
        .into_iter()
        .find(|step| step.as_str() == text)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            WorkStep::Compute => "compute",
            WorkStep::Approve => "approve",
            WorkStep::Done => "done",
            WorkStep::Failed => "failed",
            WorkStep::Cancelled => "cancelled",
        }
    }
}

/// Items a worker can take: to compute, or computed and approved (to export), with no
/// live lease and fewer than `$2` claims of this step. `$1` is now. An exported run
/// whose item still says approve (its worker died after the export committed, or
/// someone exported it by hand) is taken too, only to mark it done.
const CLAIMABLE: &str = "SELECT w.* FROM work_item w LEFT JOIN run r ON r.run_no = w.run_no \
     WHERE (w.step = 'compute' OR (w.step = 'approve' AND r.state IN ('approved', 'exported'))) \
     AND (w.lease_until IS NULL OR w.lease_until <= $1) AND w.attempts < $2 \
     ORDER BY w.work_id LIMIT 1";

/// Items whose workers claimed them `$2` times and never finished (each died, or lost
/// its lease): failed, so the next worker does not die on them too. `$1` is now.
const GIVE_UP_ON_ABANDONED: &str = "UPDATE work_item SET step = 'failed', holder = NULL, \
     lease_until = NULL, finished_at = $1, \
     last_error = 'claimed ' || CAST(attempts AS TEXT) || ' times and never finished (the workers died or lost their leases)' \
     WHERE step IN ('compute', 'approve') AND attempts >= $2 AND lease_until <= $1";

impl Store {
    /// Leases the first item a worker can take to `holder` until `lease_until`, or
    /// `None` when there is none.
    pub async fn claim_work(
        &self,
        holder: &str,
        now: &str,
        lease_until: &str,
        attempts_max: i64,
    ) -> StoreResult<Option<WorkItem>> {
        let mut transaction = self.begin().await?;
        with_tx!(&mut transaction, conn, Db => {
            sqlx::query(GIVE_UP_ON_ABANDONED).bind(now).bind(attempts_max).execute(&mut *conn).await?;
        });
        let picked = match &mut transaction {
            StoreTx::Sqlite(transaction) => sqlx::query(CLAIMABLE)
                .bind(now)
                .bind(attempts_max)
                .fetch_optional(&mut **transaction)
                .await?
                .as_ref()
                .map(work_item_from_row)
                .transpose()?,
            StoreTx::Postgres(transaction) => {
                let sql = format!("{CLAIMABLE} FOR UPDATE OF w SKIP LOCKED");
                sqlx::query(&sql)
                    .bind(now)
                    .bind(attempts_max)
                    .fetch_optional(&mut **transaction)
                    .await?
                    .as_ref()
                    .map(work_item_from_row)
                    .transpose()?
            }
        };
        let Some(mut item) = picked else {
            // Keeps what `GIVE_UP_ON_ABANDONED` failed.
            transaction.commit().await?;
            return Ok(None);
        };
        let sql = "UPDATE work_item SET holder = $1, lease_until = $2, attempts = attempts + 1 WHERE work_id = $3";
        with_tx!(&mut transaction, conn, Db => {
            sqlx::query(sql).bind(holder).bind(lease_until).bind(item.work_id).execute(&mut *conn).await?;
        });
        transaction.commit().await?;
        item.holder = Some(holder.to_string());
        item.lease_until = Some(lease_until.to_string());
        item.attempts += 1;
        Ok(Some(item))
    }

    /// Moves `holder`'s item to `step` (or leaves it at its step, for another claim) and
    /// releases the lease; `error` is kept for the
    /// operator. False when `holder` no longer holds it (the lease ran out and another
    /// worker took it: that worker's outcome stands).
    pub async fn finish_work(
        &self,
        work_id: i64,
        holder: &str,
        step: WorkStep,
        error: Option<&str>,
        now: &str,
    ) -> StoreResult<bool> {
        let finished_at = matches!(
            step,
            WorkStep::Done | WorkStep::Failed | WorkStep::Cancelled
        )
        .then_some(now);
        // Attempts count the claims of one step: the next step starts at none (a failed
        // or finished item keeps its count, for the operator).
        let sql = "UPDATE work_item SET attempts = CASE WHEN step = $1 OR $1 IN ('done', 'failed') THEN attempts ELSE 0 END, \
                   step = $1, holder = NULL, lease_until = NULL, last_error = $2, \
                   finished_at = $3 WHERE work_id = $4 AND holder = $5";
        let changed = with_pool!(self, pool, Db => {
            sqlx::query(sql).bind(step.as_str()).bind(error).bind(finished_at).bind(work_id).bind(holder)
                .execute(pool).await?.rows_affected()
        });
        Ok(changed == 1)
    }

    /// Keeps the month's shared values found in `transaction` (see
    /// `StoreTx::keep_shared_values`). On PostgreSQL in a short transaction of its own,
    /// committed at once: kept inside a long run transaction, the row would make every
    /// other worker's run wait for that run's commit. The values stay true whether that
    /// run commits or not (the caller holds `TxLock::Inputs`, so the roster generation
    /// cannot change). On SQLite in `transaction`, the only writer.
    pub async fn keep_shared_values_beside(
        &self,
        transaction: &mut StoreTx,
        month: Month,
        generation: i64,
        accounts: &HashSet<String>,
        id_numbers: &HashSet<String>,
    ) -> StoreResult<()> {
        if let StoreTx::Sqlite(_) = transaction {
            return transaction
                .keep_shared_values(month, generation, accounts, id_numbers)
                .await;
        }
        let mut own = self.begin().await?;
        own.keep_shared_values(month, generation, accounts, id_numbers)
            .await?;
        own.commit().await
    }

    /// Extends `holder`'s lease on an unfinished item to `lease_until`; false when
    /// `holder` no longer holds it.
    pub async fn renew_work(
        &self,
        work_id: i64,
        holder: &str,
        lease_until: &str,
    ) -> StoreResult<bool> {
        let sql = "UPDATE work_item SET lease_until = $1 WHERE work_id = $2 AND holder = $3 \
                   AND step IN ('compute', 'approve')";
        let changed = with_pool!(self, pool, Db => {
            sqlx::query(sql).bind(lease_until).bind(work_id).bind(holder).execute(pool).await?.rows_affected()
        });
        Ok(changed == 1)
    }

    /// Work items of a programme's month, in plan order.
    pub async fn work_items(&self, programme: &str, month: Month) -> StoreResult<Vec<WorkItem>> {
        let sql = "SELECT * FROM work_item WHERE programme = $1 AND month = $2 ORDER BY work_id";
        let items = with_pool!(self, pool, Db => {
            sqlx::query(sql).bind(programme).bind(month.to_string()).fetch_all(pool).await?
                .iter().map(work_item_from_row).collect::<StoreResult<Vec<_>>>()?
        });
        Ok(items)
    }
}

impl StoreTx {
    /// Work items of a programme that are not finished (any month).
    pub async fn open_work_items(&mut self, programme: &str) -> StoreResult<Vec<WorkItem>> {
        let sql = "SELECT * FROM work_item WHERE programme = $1 AND step IN ('compute', 'approve') ORDER BY work_id";
        let items = with_tx!(self, conn, Db => {
            sqlx::query(sql).bind(programme).fetch_all(&mut *conn).await?
                .iter().map(work_item_from_row).collect::<StoreResult<Vec<_>>>()?
        });
        Ok(items)
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn insert_work_item(
        &mut self,
        programme: &str,
        month: Month,
        scope: &str,
        pay_date: &str,
        run_no: i64,
        planned_by: &str,
        planned_at: &str,
    ) -> StoreResult<()> {
        let sql = "INSERT INTO work_item (programme, month, scope, pay_date, run_no, step, planned_by, planned_at) \
                   VALUES ($1, $2, $3, $4, $5, 'compute', $6, $7)";
        with_tx!(self, conn, Db => {
            sqlx::query(sql).bind(programme).bind(month.to_string()).bind(scope).bind(pay_date)
                .bind(run_no).bind(planned_by).bind(planned_at).execute(&mut *conn).await?;
        });
        Ok(())
    }

    /// The work item `work_id`, if any.
    pub async fn work_item(&mut self, work_id: i64) -> StoreResult<Option<WorkItem>> {
        self.work_item_where("work_id", work_id).await
    }

    /// The work item that reserved `run_no`, if any.
    pub async fn work_item_of_run_no(&mut self, run_no: i64) -> StoreResult<Option<WorkItem>> {
        self.work_item_where("run_no", run_no).await
    }

    /// The item whose `column` (a unique one: `work_id`, `run_no`) is `value`.
    async fn work_item_where(&mut self, column: &str, value: i64) -> StoreResult<Option<WorkItem>> {
        assert!(matches!(column, "work_id" | "run_no"), "a unique column");
        let sql = format!("SELECT * FROM work_item WHERE {column} = $1");
        let item = with_tx!(self, conn, Db => {
            sqlx::query(&sql).bind(value)
                .fetch_optional(&mut *conn).await?.as_ref().map(work_item_from_row).transpose()?
        });
        Ok(item)
    }

    /// Closes the work item `which` names if it is still open in the way `which` says,
    /// with `why` as its last error (digit runs masked, P13: `work list` shows it);
    /// false if there was none to close.
    pub async fn cancel_work(
        &mut self,
        which: CancelWork,
        why: &str,
        now: &str,
    ) -> StoreResult<bool> {
        let (filter, id) = match which {
            CancelWork::Waiting { work_id } => ("work_id = $3 AND step = 'compute'", work_id),
            CancelWork::OfRun { run_no } => {
                ("run_no = $3 AND step IN ('compute', 'approve')", run_no)
            }
        };
        let sql = format!(
            "UPDATE work_item SET step = 'cancelled', holder = NULL, lease_until = NULL, \
             last_error = $1, finished_at = $2 WHERE {filter}"
        );
        let why = crate::domain::mask::mask_digits_in_text(why);
        let changed = with_tx!(self, conn, Db => {
            sqlx::query(&sql).bind(why).bind(now).bind(id).execute(&mut *conn).await?.rows_affected()
        });
        Ok(changed > 0)
    }

    /// The last import's id: every import bumps it, so shared values found at one
    /// generation hold until the next import.
    pub async fn roster_generation(&mut self) -> StoreResult<i64> {
        let generation: Option<i64> = with_tx!(self, conn, Db => {
            sqlx::query_scalar("SELECT MAX(import_id) FROM import_file").fetch_one(&mut *conn).await?
        });
        Ok(generation.unwrap_or(0))
    }

    /// The month's shared accounts and ID numbers at `generation`, if found before.
    pub async fn cached_shared_values(
        &mut self,
        month: Month,
        generation: i64,
    ) -> StoreResult<Option<(HashSet<String>, HashSet<String>)>> {
        let month_text = month.to_string();
        let found: Option<i64> = with_tx!(self, conn, Db => {
            sqlx::query_scalar("SELECT roster_generation FROM shared_value_set WHERE month = $1 AND roster_generation = $2")
                .bind(&month_text).bind(generation).fetch_optional(&mut *conn).await?
        });
        if found.is_none() {
            return Ok(None);
        }
        let sql =
            "SELECT kind, value FROM shared_value WHERE month = $1 AND roster_generation = $2";
        let rows: Vec<(String, String)> = with_tx!(self, conn, Db => {
            sqlx::query_as(sql).bind(&month_text).bind(generation).fetch_all(&mut *conn).await?
        });
        let (mut accounts, mut id_numbers) = (HashSet::new(), HashSet::new());
        for (kind, value) in rows {
            match kind.as_str() {
                "account_number" => accounts.insert(value),
                "head_id_number" => id_numbers.insert(value),
                _ => return Err(StoreError::Corrupt(format!("shared value kind {kind:?}"))),
            };
        }
        Ok(Some((accounts, id_numbers)))
    }

    /// Keeps the month's shared values at `generation` (nothing when another run kept
    /// them first: the same roster gives the same values).
    pub async fn keep_shared_values(
        &mut self,
        month: Month,
        generation: i64,
        accounts: &HashSet<String>,
        id_numbers: &HashSet<String>,
    ) -> StoreResult<()> {
        let month_text = month.to_string();
        let sql = "INSERT INTO shared_value_set (month, roster_generation) VALUES ($1, $2) ON CONFLICT DO NOTHING";
        let inserted = with_tx!(self, conn, Db => {
            sqlx::query(sql).bind(&month_text).bind(generation).execute(&mut *conn).await?.rows_affected()
        });
        if inserted == 0 {
            return Ok(());
        }
        let kinds = [("account_number", accounts), ("head_id_number", id_numbers)];
        let rows: Vec<Vec<SqlValue>> = kinds
            .iter()
            .flat_map(|(kind, values)| {
                values.iter().map(|value| {
                    vec![
                        SqlValue::Text(month_text.as_str().into()),
                        SqlValue::Int(generation),
                        SqlValue::Text((*kind).into()),
                        SqlValue::Text(value.as_str().into()),
                    ]
                })
            })
            .collect();
        let columns = ["month", "roster_generation", "kind", "value"];
        self.insert_values("shared_value", &columns, &rows).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_postgres::block_on;
    use crate::store::test_postgres::TestPostgres;

    const MONTH: &str = "2026-11";

    /// `work list` pads the step into a column (regression: `Display` ignored width).
    #[test]
    fn a_step_pads_to_its_column() {
        assert_eq!(format!("[{:<9}]", WorkStep::Approve), "[approve  ]");
        assert_eq!(format!("[{:>9}]", WorkStep::Done), "[     done]");
    }
    const NOW: &str = "2026-11-20T02:00:00Z";
    const LEASE_UNTIL: &str = "2026-11-20T02:15:00Z";
    const AFTER_LEASE: &str = "2026-11-20T03:00:00Z";
    const ATTEMPTS: i64 = 3;

    /// Plans `scopes` one after another; each takes the next run number.
    async fn plan(store: &Store, scopes: &[&str]) {
        for (offset, scope) in scopes.iter().enumerate() {
            let run_no = plan_more(store, scope).await;
            assert_eq!(run_no, 1 + offset as i64, "reservations count as taken");
        }
    }

    /// Leases: two workers never hold one item, a live lease is skipped, an expired one
    /// is taken over (one more attempt), and only the holder moves an item.
    async fn leases_on(store: &Store) {
        plan(store, &["1101", "1102"]).await;
        let first = store
            .claim_work("w1", NOW, LEASE_UNTIL, ATTEMPTS)
            .await
            .unwrap()
            .unwrap();
        let second = store
            .claim_work("w2", NOW, LEASE_UNTIL, ATTEMPTS)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (first.scope.as_str(), second.scope.as_str()),
            ("1101", "1102")
        );
        assert!(store
            .claim_work("w3", NOW, LEASE_UNTIL, ATTEMPTS)
            .await
            .unwrap()
            .is_none());
        assert!(!store
            .finish_work(first.work_id, "w3", WorkStep::Approve, None, NOW)
            .await
            .unwrap());
        assert!(!store
            .renew_work(first.work_id, "w9", AFTER_LEASE)
            .await
            .unwrap());
        assert!(store
            .renew_work(second.work_id, "w2", "2026-11-20T02:30:00Z")
            .await
            .unwrap());
        let taken_over = store
            .claim_work("w3", AFTER_LEASE, "2026-11-20T03:15:00Z", ATTEMPTS)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (taken_over.work_id, taken_over.attempts),
            (first.work_id, 2)
        );
        assert!(!store
            .finish_work(first.work_id, "w1", WorkStep::Approve, None, NOW)
            .await
            .unwrap());
        assert!(store
            .finish_work(first.work_id, "w3", WorkStep::Approve, None, NOW)
            .await
            .unwrap());
        // Computed but not approved: no worker's until its run is approved.
        let month = Month::parse(MONTH).unwrap();
        let items = store.work_items("dibao", month).await.unwrap();
        assert_eq!(items[0].step, WorkStep::Approve);
        assert_eq!((items[0].holder.as_deref(), items[0].attempts), (None, 0));
        // Released at its step (an error to retry), it keeps its count.
        assert!(store
            .finish_work(
                second.work_id,
                "w2",
                WorkStep::Compute,
                Some("disk full"),
                NOW
            )
            .await
            .unwrap());
        let items = store.work_items("dibao", month).await.unwrap();
        assert_eq!(
            (items[1].attempts, items[1].last_error.as_deref()),
            (1, Some("disk full"))
        );
        assert!(store
            .claim_work("w4", AFTER_LEASE, "2026-11-20T03:15:00Z", ATTEMPTS)
            .await
            .unwrap()
            .is_some_and(|item| item.work_id == second.work_id && item.attempts == 2));
        // A worker that dies on an item every time: after `ATTEMPTS` claims that never
        // finish, the item is failed and no further worker takes it.
        assert!(store
            .finish_work(second.work_id, "w4", WorkStep::Approve, None, NOW)
            .await
            .unwrap());
        plan_more(store, "12").await;
        let leases =
            ["04:00", "05:00", "06:00", "07:00"].map(|time| format!("2026-11-20T{time}:00Z"));
        for window in leases.windows(2) {
            let claimed = store
                .claim_work("dies", &window[0], &window[1], ATTEMPTS)
                .await
                .unwrap();
            assert_eq!(claimed.map(|item| item.scope), Some("12".to_string()));
        }
        assert!(store
            .claim_work("w5", &leases[3], "2026-11-20T08:00:00Z", ATTEMPTS)
            .await
            .unwrap()
            .is_none());
        let items = store.work_items("dibao", month).await.unwrap();
        assert_eq!((items[2].step, items[2].attempts), (WorkStep::Failed, 3));
        assert!(
            items[2]
                .last_error
                .as_deref()
                .unwrap()
                .contains("never finished"),
            "{:?}",
            items[2]
        );
    }

    /// Plans one more scope; its reserved run number.
    async fn plan_more(store: &Store, scope: &str) -> i64 {
        let mut transaction = store.begin().await.unwrap();
        let run_no = transaction.next_run_no().await.unwrap();
        let month = Month::parse(MONTH).unwrap();
        transaction
            .insert_work_item("dibao", month, scope, "2026-11-20", run_no, "tester", NOW)
            .await
            .unwrap();
        transaction.commit().await.unwrap();
        run_no
    }

    #[test]
    fn leases_on_sqlite() {
        block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}", dir.path().join("work.db").display());
            let store = Store::connect(&url).await.unwrap();
            leases_on(&store).await;
            store.close().await;
        });
    }

    #[test]
    fn leases_on_postgres() {
        block_on(async {
            let database = TestPostgres::create("work_leases").await;
            let store = Store::connect(&database.url).await.unwrap();
            leases_on(&store).await;
            store.close().await;
        });
    }

    /// On PostgreSQL a claim skips an item another claim has locked instead of queueing
    /// behind it (`FOR UPDATE SKIP LOCKED`).
    #[test]
    fn a_claim_skips_an_item_another_claim_has_locked() {
        block_on(async {
            let database = TestPostgres::create("work_skip").await;
            let store = Store::connect(&database.url).await.unwrap();
            plan(&store, &["1101", "1102"]).await;
            let mut claiming = store.begin().await.unwrap();
            with_tx!(&mut claiming, conn, Db => {
                sqlx::query("SELECT work_id FROM work_item WHERE scope = '1101' FOR UPDATE")
                    .execute(&mut *conn).await.unwrap();
            });
            let claimed = tokio::time::timeout(
                std::time::Duration::from_secs(5),
                store.claim_work("w2", NOW, LEASE_UNTIL, ATTEMPTS),
            )
            .await
            .expect("the claim does not wait for the locked row")
            .unwrap()
            .unwrap();
            assert_eq!(claimed.scope, "1102");
            claiming.rollback().await.unwrap();
            store.close().await;
        });
    }

    /// Scope locks: overlapping scopes (one a prefix of the other) exclude each other;
    /// sibling scopes do not.
    #[test]
    fn overlapping_scopes_wait_for_each_other_and_siblings_do_not() {
        block_on(async {
            let database = TestPostgres::create("work_scope_locks").await;
            let store = Store::connect(&database.url).await.unwrap();
            let try_lock = |scope: &'static str| {
                let store = store.clone();
                async move {
                    let mut transaction = store.begin().await.unwrap();
                    with_tx!(&mut transaction, conn, Db => {
                        sqlx::query("SET LOCAL lock_timeout = '200ms'").execute(&mut *conn).await.unwrap();
                    });
                    let locked = transaction.lock_scope(scope).await.is_ok();
                    transaction.rollback().await.unwrap();
                    locked
                }
            };
            let mut holder = store.begin().await.unwrap();
            holder.lock_scope("1101").await.unwrap();
            for (scope, free) in [
                ("1101", false),
                ("11", false),
                ("", false),
                ("110101", false),
                ("1102", true),
                ("12", true),
                ("110", false),
            ] {
                assert_eq!(try_lock(scope).await, free, "scope {scope:?} beside 1101");
            }
            holder.rollback().await.unwrap();
            let mut holder = store.begin().await.unwrap();
            holder.lock_scope("11").await.unwrap();
            assert!(!try_lock("1101").await, "1101 inside 11");
            assert!(try_lock("12").await, "12 beside 11");
            holder.rollback().await.unwrap();
            store.close().await;
        });
    }
}
