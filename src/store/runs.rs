//! Runs in the store: the pieces `engine` needs to compute a run in chunks inside one
//! transaction (households and their versions, decisions, earlier lines, flags that
//! span households), to write its lines in batches, and to read runs, lines, totals,
//! approvers and approvals back.

use crate::domain::household::{Area, Decision, DecisionKind, Household, ReviewClass};
use crate::domain::ids::{AccountNumber, BankCode, HouseholdId, RegionCode, ResidentId};
use crate::domain::money::Fen;
use crate::domain::month::{parse_date, Month};
use crate::domain::repeated_values::RepeatedValues;
use crate::policy::calc::{ArrearsSource, LineStatus, PriorLine};
use crate::run::{RunLine, RunState, RunTotals, PAYMENT_KEY_LINES};
use crate::store::raw_sqlite::{text_ref, with_raw, Prepared};
use crate::store::values::SqlValue;
use crate::store::{with_pool, with_tx, Store, StoreError, StoreResult, StoreTx};
use rust_decimal::Decimal;
use sqlx::Row;
use std::collections::HashSet;
use std::str::FromStr;

/// Reads plain values from a row of either backend.
pub(crate) trait PlainRow {
    fn text(&self, column: &str) -> Result<String, sqlx::Error>;
    /// Hands `read` the column's text borrowed from the row, without a copy: values
    /// parsed into domain types need not be allocated twice.
    fn with_text(&self, column: &str, read: &mut dyn FnMut(&str)) -> Result<(), sqlx::Error>;
    fn int(&self, column: &str) -> Result<i64, sqlx::Error>;
    fn opt_text(&self, column: &str) -> Result<Option<String>, sqlx::Error>;
    fn opt_int(&self, column: &str) -> Result<Option<i64>, sqlx::Error>;
}

macro_rules! plain_row {
    ($row:ty) => {
        impl PlainRow for $row {
            fn text(&self, column: &str) -> Result<String, sqlx::Error> {
                self.try_get(column)
            }
            fn with_text(
                &self,
                column: &str,
                read: &mut dyn FnMut(&str),
            ) -> Result<(), sqlx::Error> {
                read(self.try_get::<&str, _>(column)?);
                Ok(())
            }
            fn int(&self, column: &str) -> Result<i64, sqlx::Error> {
                self.try_get(column)
            }
            fn opt_text(&self, column: &str) -> Result<Option<String>, sqlx::Error> {
                self.try_get(column)
            }
            fn opt_int(&self, column: &str) -> Result<Option<i64>, sqlx::Error> {
                self.try_get(column)
            }
        }
    };
}
plain_row!(sqlx::sqlite::SqliteRow);
plain_row!(sqlx::postgres::PgRow);

fn corrupt(what: &str, value: &str) -> StoreError {
    StoreError::Corrupt(format!("stored {what} {value:?} does not parse"))
}

/// A text column parsed straight from the row's bytes; a value that does not parse
/// is corruption, named with `household_id`.
fn parsed_column<T, E>(
    row: &(impl PlainRow + ?Sized),
    column: &str,
    household_id: &str,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> StoreResult<T> {
    let mut parse = Some(parse);
    let mut parsed = None;
    row.with_text(column, &mut |text| {
        if let Some(parse) = parse.take() {
            parsed = Some(parse(text));
        }
    })?;
    match parsed {
        Some(Ok(value)) => Ok(value),
        Some(Err(_)) | None => Err(StoreError::Corrupt(format!(
            "stored {column} of household {household_id:?} does not parse"
        ))),
    }
}

fn month_of(text: &str) -> StoreResult<Month> {
    Month::parse(text).map_err(|_| corrupt("month", text))
}

fn count_of(row: &(impl PlainRow + ?Sized), column: &str) -> StoreResult<u32> {
    u32::try_from(row.int(column)?).map_err(|_| corrupt(column, "negative count"))
}

/// A stored household version, re-validated into the domain type.
fn household_from_row(row: &(impl PlainRow + ?Sized)) -> StoreResult<Household> {
    let text = |column: &str| row.text(column);
    let household_id = text("household_id")?;
    let id = household_id.as_str();
    Ok(Household {
        household_id: HouseholdId::parse(id).map_err(|_| corrupt("household_id", id))?,
        region_code: parsed_column(row, "region_code", id, RegionCode::parse)?,
        area: parsed_column(row, "area", id, |v| Area::parse(v).ok_or(()))?,
        head_name: text("head_name")?,
        head_id_number: parsed_column(row, "head_id_number", id, ResidentId::parse)?,
        members: count_of(row, "members")?,
        elderly: count_of(row, "elderly")?,
        minors: count_of(row, "minors")?,
        severely_disabled: count_of(row, "severely_disabled")?,
        seriously_ill: count_of(row, "seriously_ill")?,
        review_class: parsed_column(row, "review_class", id, |v| ReviewClass::parse(v).ok_or(()))?,
        last_review: parsed_column(row, "last_review", id, parse_date)?,
        base_amount: Fen::new(row.int("base_fen")?),
        employment_cost_deduction: row.opt_int("employment_cost_fen")?.map(Fen::new),
        approved_from: parsed_column(row, "approved_from", id, Month::parse)?,
        approval_ref: text("approval_ref")?,
        approved_by: text("approved_by")?,
        bank_code: parsed_column(row, "bank_code", id, BankCode::parse)?,
        account_number: parsed_column(row, "account_number", id, AccountNumber::parse)?,
        account_name: text("account_name")?,
    })
}

fn decision_from_row(row: &(impl PlainRow + ?Sized)) -> StoreResult<Decision> {
    let decision_id = row.text("decision_id")?;
    let household_id = row.text("household_id")?;
    let percent = match row.opt_text("percent")? {
        Some(text) => Some(Decimal::from_str(&text).map_err(|_| corrupt("percent", &text))?),
        None => None,
    };
    Ok(Decision {
        household_id: HouseholdId::parse(&household_id)
            .map_err(|_| corrupt("household_id", &household_id))?,
        kind: DecisionKind::parse(&row.text("kind")?)
            .ok_or_else(|| corrupt("kind of", &decision_id))?,
        effective_month: month_of(&row.text("effective_month")?)?,
        end_month: row
            .opt_text("end_month")?
            .map(|m| month_of(&m))
            .transpose()?,
        amount: row.opt_int("amount_fen")?.map(Fen::new),
        percent,
        months: row
            .opt_int("months")?
            .map(|m| u32::try_from(m).unwrap_or(0)),
        reason: row.text("reason")?,
        reference: row.text("ref")?,
        decided_by: row.text("decided_by")?,
        decided_on: parse_date(&row.text("decided_on")?)
            .map_err(|_| corrupt("decided_on of", &decision_id))?,
        decision_id,
    })
}

/// A run as stored.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RunRecord {
    pub run_id: String,
    pub run_no: i64,
    pub programme: String,
    pub month: String,
    pub scope: String,
    pub pay_date: String,
    pub state: String,
    pub created_by: String,
    pub created_at: String,
    pub input_sha256: String,
    pub digest: String,
    pub line_count: i64,
    pub pay_count: i64,
    pub payable_fen: i64,
    pub hold_count: i64,
    pub hold_fen: i64,
    pub approvals_required: i64,
    pub cancel_reason: Option<String>,
}

impl RunRecord {
    pub fn state(&self) -> StoreResult<RunState> {
        RunState::parse(&self.state).ok_or_else(|| corrupt("state", &self.state))
    }
}

pub(crate) fn run_from_row(row: &(impl PlainRow + ?Sized)) -> StoreResult<RunRecord> {
    Ok(RunRecord {
        run_id: row.text("run_id")?,
        run_no: row.int("run_no")?,
        programme: row.text("programme")?,
        month: row.text("month")?,
        scope: row.text("scope")?,
        pay_date: row.text("pay_date")?,
        state: row.text("state")?,
        created_by: row.text("created_by")?,
        created_at: row.text("created_at")?,
        input_sha256: row.text("input_sha256")?,
        digest: row.text("digest")?,
        line_count: row.int("line_count")?,
        pay_count: row.int("pay_count")?,
        payable_fen: row.int("payable_fen")?,
        hold_count: row.int("hold_count")?,
        hold_fen: row.int("hold_fen")?,
        approvals_required: row.int("approvals_required")?,
        cancel_reason: row.opt_text("cancel_reason")?,
    })
}

pub(crate) fn line_from_row(row: &(impl PlainRow + ?Sized)) -> StoreResult<RunLine> {
    let status = row.text("status")?;
    let flags = row.text("flags")?;
    Ok(RunLine {
        line_no: row.int("line_no")?,
        household_id: row.text("household_id")?,
        approved_from: month_of(&row.text("approved_from")?)?,
        region_code: row.text("region_code")?,
        area: row.text("area")?,
        status: LineStatus::parse(&status).ok_or_else(|| corrupt("status", &status))?,
        base: Fen::new(row.int("base_fen")?),
        supplements: Fen::new(row.int("supplements_fen")?),
        arrears: Fen::new(row.int("arrears_fen")?),
        reduction: Fen::new(row.int("reduction_fen")?),
        recovery: Fen::new(row.int("recovery_fen")?),
        payable: Fen::new(row.int("payable_fen")?),
        bank_code: row.text("bank_code")?,
        account_number: row.text("account_number")?,
        account_name: row.text("account_name")?,
        head_id_number: row.text("head_id_number")?,
        end_to_end_id: row.text("end_to_end_id")?,
        flags: flags
            .split(';')
            .filter(|f| !f.is_empty())
            .map(str::to_string)
            .collect(),
        arrears_sources: ArrearsSource::split(&row.text("arrears_sources")?),
    })
}

/// A standing (not cancelled) run's key.
#[derive(Clone, Debug)]
pub struct StandingRun {
    pub run_id: String,
    pub month: Month,
    pub scope: String,
}

/// `LIKE` pattern of a region scope (`""` is every region).
fn scope_pattern(scope: &str) -> String {
    format!("{scope}%")
}

/// Latest versions per household, as of a month (SQL shared by the flag queries), on
/// PostgreSQL: one scan, sorted by the key, keeping each household's first row. The
/// join of the table to its own grouped key it replaces was planned in parallel with a
/// private copy of the grouping in every process, and the two flag queries side by
/// side took 2.8 s each at 500k households (issue #7). Sorted by bytes (`COLLATE "C"`,
/// the same groups and months' order): the two side by side at 300k took 1.26–1.30 s
/// against 1.56–1.65 s by the database's `C.UTF-8` collation.
const CURRENT_VERSIONS: &str = "FROM (SELECT DISTINCT ON (household_id COLLATE \"C\") \
     account_number, head_id_number FROM household_version WHERE approved_from <= $1 \
     ORDER BY household_id COLLATE \"C\" DESC, approved_from COLLATE \"C\" DESC) v";

/// `CURRENT_VERSIONS` for SQLite, by a bare-column `MAX()`: SQLite documents that in a
/// query with one `MAX()`, bare columns come from the row that holds the maximum. One
/// scan of the clustered key instead of a scan and a join (1.31 → 0.99 CPU-s at 1M).
const CURRENT_VERSIONS_SQLITE: &str = "FROM (SELECT MAX(approved_from) AS latest, \
     account_number, head_id_number FROM household_version \
     WHERE approved_from <= $1 GROUP BY household_id) v";

/// Versions above which the shared values are grouped by SQL, not counted in this
/// process: 16 bytes a version for each of the two columns, so at most 64 MiB
/// (issue #7: peak memory at most 256 MiB at any size). Every version counts, those
/// after the month too, so the bound holds before the pass. It assumes packable values
/// (import accepts only digits for accounts and digits or `X` for ID numbers); a value
/// that does not pack is held as text.
pub const SHARED_VALUES_IN_MEMORY_MAX: usize = 2_000_000;

/// Every stored version, current or not: what `SHARED_VALUES_IN_MEMORY_MAX` bounds.
const VERSION_COUNT: &str = "SELECT COUNT(*) AS versions FROM household_version";

/// The versions in force by `$1`, a household's rows together and its current version
/// (the latest `approved_from`) last: on SQLite the clustered primary key's order, so
/// no sort.
const VERSIONS_IN_KEY_ORDER: &str = "SELECT household_id, account_number, head_id_number \
     FROM household_version WHERE approved_from <= $1 ORDER BY household_id, approved_from";

/// `VERSIONS_IN_KEY_ORDER` on PostgreSQL, whose heap is not in key order: sorted by
/// bytes (`COLLATE "C"`), which keeps a household's rows together and its months in
/// order as well as the database's collation does. At 300k households the sort took
/// 0.49 s by bytes (two workers) against 0.91 s by the `C.UTF-8` collation, and an
/// index scan 0.45 s but reading the heap at random (household ids correlate 0.15
/// with the heap's order), which does not stay cheap once the roster outgrows memory.
const VERSIONS_IN_BYTE_ORDER_POSTGRES: &str = "SELECT household_id, account_number, \
     head_id_number FROM household_version WHERE approved_from <= $1 \
     ORDER BY household_id COLLATE \"C\", approved_from COLLATE \"C\"";

/// Shared accounts and head ID numbers (P15), counted from `VERSIONS_IN_KEY_ORDER` or
/// `VERSIONS_IN_BYTE_ORDER_POSTGRES` one row at a time: only each household's last row
/// counts. The buffers are reused, so a row allocates nothing.
struct SharedValuesFold {
    household_id: String,
    account_number: String,
    head_id_number: String,
    any_version: bool,
    accounts: RepeatedValues,
    id_numbers: RepeatedValues,
}

impl SharedValuesFold {
    /// A fold with room for `versions`, or `None` above `SHARED_VALUES_IN_MEMORY_MAX`.
    fn within_limit(versions: i64) -> Option<SharedValuesFold> {
        let versions = usize::try_from(versions).expect("a count is not negative");
        (versions <= SHARED_VALUES_IN_MEMORY_MAX).then(|| SharedValuesFold {
            household_id: String::new(),
            account_number: String::new(),
            head_id_number: String::new(),
            any_version: false,
            accounts: RepeatedValues::with_capacity(versions),
            id_numbers: RepeatedValues::with_capacity(versions),
        })
    }

    /// The next row is `household_id`'s: the household before it is done.
    fn start_version(&mut self, household_id: &str) {
        if self.any_version && self.household_id != household_id {
            self.count_household();
        }
        self.any_version = true;
        self.household_id.clear();
        self.household_id.push_str(household_id);
    }

    fn set_account(&mut self, account_number: &str) {
        self.account_number.clear();
        self.account_number.push_str(account_number);
    }

    fn set_id_number(&mut self, head_id_number: &str) {
        self.head_id_number.clear();
        self.head_id_number.push_str(head_id_number);
    }

    fn count_household(&mut self) {
        self.accounts.see(&self.account_number);
        self.id_numbers.see(&self.head_id_number);
    }

    /// (shared accounts, shared head ID numbers).
    fn finish(mut self) -> (HashSet<String>, HashSet<String>) {
        if self.any_version {
            self.count_household();
        }
        (self.accounts.finish(), self.id_numbers.finish())
    }
}

impl StoreTx {
    /// Standing runs of a programme (any month).
    pub async fn standing_runs(&mut self, programme: &str) -> StoreResult<Vec<StandingRun>> {
        let sql = "SELECT run_id, month, scope FROM run WHERE programme = $1 AND state <> 'cancelled' ORDER BY month, run_id";
        let rows = with_tx!(self, conn, Db => {
            sqlx::query(sql).bind(programme).fetch_all(&mut *conn).await?.iter().map(|row| {
                Ok(StandingRun { run_id: row.text("run_id")?, month: month_of(&row.text("month")?)?, scope: row.text("scope")? })
            }).collect::<StoreResult<Vec<_>>>()?
        });
        Ok(rows)
    }

    /// The number after every run's and every work item's reservation (issue #7: a
    /// planned month reserves one per scope). Callers hold `TxLock::RunNumber`.
    pub async fn next_run_no(&mut self) -> StoreResult<i64> {
        let sql = "SELECT MAX(n) FROM (SELECT MAX(run_no) AS n FROM run \
                   UNION ALL SELECT MAX(run_no) AS n FROM work_item) AS taken";
        let max: Option<i64> = with_tx!(self, conn, Db => {
            sqlx::query_scalar(sql).fetch_one(&mut *conn).await?
        });
        Ok(max.unwrap_or(0) + 1)
    }

    /// The next `limit` households (by id, after `after`) with a version in force by
    /// `month` in `scope`, with all their versions up to `month`, oldest first.
    pub async fn household_chunk(
        &mut self,
        month: Month,
        scope: &str,
        after: &str,
        limit: i64,
    ) -> StoreResult<Vec<Vec<Household>>> {
        let ids_sql = "SELECT DISTINCT household_id FROM household_version WHERE approved_from <= $1 \
                       AND region_code LIKE $2 AND household_id > $3 ORDER BY household_id LIMIT $4";
        let versions_sql =
            "SELECT * FROM household_version WHERE household_id >= $1 AND household_id <= $2 \
                            AND approved_from <= $3 ORDER BY household_id, approved_from";
        let month_text = SqlValue::Text(month.to_string().into());
        let ids: Vec<String> = self
            .fetch_mapped(
                ids_sql,
                &[
                    month_text.clone(),
                    SqlValue::Text(scope_pattern(scope).into()),
                    SqlValue::Text(after.into()),
                    SqlValue::Int(limit),
                ],
                |row| Ok(row.text("household_id")?),
            )
            .await?;
        let wanted: HashSet<&String> = ids.iter().collect();
        let mut chunk: Vec<Vec<Household>> = Vec::with_capacity(ids.len());
        if let (Some(first), Some(last)) = (ids.first(), ids.last()) {
            let bounds = [
                SqlValue::Text(first.as_str().into()),
                SqlValue::Text(last.as_str().into()),
                month_text,
            ];
            let versions = self
                .fetch_mapped(versions_sql, &bounds, |row| {
                    let id = row.text("household_id")?;
                    wanted
                        .contains(&id)
                        .then(|| household_from_row(row))
                        .transpose()
                })
                .await?;
            for household in versions.into_iter().flatten() {
                match chunk.last_mut() {
                    Some(versions) if versions[0].household_id == household.household_id => {
                        versions.push(household)
                    }
                    _ => chunk.push(vec![household]),
                }
            }
        }
        Ok(chunk)
    }

    /// Decisions of households with ids in `first..=last`.
    pub async fn decisions_between(
        &mut self,
        first: &str,
        last: &str,
    ) -> StoreResult<Vec<Decision>> {
        let sql = "SELECT * FROM decision WHERE household_id >= $1 AND household_id <= $2 ORDER BY household_id, effective_month, decision_id";
        let bounds = [SqlValue::Text(first.into()), SqlValue::Text(last.into())];
        self.fetch_mapped(sql, &bounds, |row| decision_from_row(row))
            .await
    }

    /// Lines of standing runs of the programme before `month`, for households in
    /// `first..=last`: (household_id, line).
    pub async fn prior_lines_between(
        &mut self,
        programme: &str,
        month: Month,
        first: &str,
        last: &str,
    ) -> StoreResult<Vec<(String, PriorLine)>> {
        // A payment the bank failed or returned did not happen: its recovery and arrears
        // are computed again and its month is paid again (issue #5).
        // `CROSS JOIN` keeps run_line the outer loop on SQLite (its household index gives
        // the chunk's range); joined from `run` instead, SQLite read every line of every
        // standing run, the one being written included, once per chunk: quadratic, 30 s
        // of a million-household run. PostgreSQL plans it as the same inner join. A
        // line's payment is found by its key (`run::payment_key`), the primary key.
        let sql = &format!("SELECT l.household_id, r.month, l.status, l.recovery_fen, l.arrears_sources, l.end_to_end_id, \
                   CAST(CASE WHEN p.status IN ('failed', 'returned') THEN 0 ELSE 1 END AS BIGINT) AS instructed_ok \
                   FROM run_line l CROSS JOIN run r \
                   LEFT JOIN payment p ON p.payment_key = r.run_no * {PAYMENT_KEY_LINES} + l.line_no \
                   WHERE r.run_id = l.run_id AND r.state <> 'cancelled' AND r.programme = $1 AND r.month <= $2 \
                   AND l.household_id >= $3 AND l.household_id <= $4 ORDER BY l.household_id, r.month");
        let values = [
            SqlValue::Text(programme.into()),
            SqlValue::Text(month.to_string().into()),
            SqlValue::Text(first.into()),
            SqlValue::Text(last.into()),
        ];
        self.fetch_mapped(sql, &values, |row| {
            let status = row.text("status")?;
            Ok((
                row.text("household_id")?,
                PriorLine {
                    month: month_of(&row.text("month")?)?,
                    end_to_end_id: row.text("end_to_end_id")?,
                    status: LineStatus::parse(&status).ok_or_else(|| corrupt("status", &status))?,
                    recovery: Fen::new(row.int("recovery_fen")?),
                    arrears_sources: ArrearsSource::split(&row.text("arrears_sources")?),
                    instructed_ok: row.int("instructed_ok")? == 1,
                },
            ))
        })
        .await
    }

    /// Values of `column` (`account_number` or `head_id_number`) that several
    /// households' current versions share.
    pub async fn shared_values(
        &mut self,
        column: &str,
        month: Month,
    ) -> StoreResult<HashSet<String>> {
        assert!(
            matches!(column, "account_number" | "head_id_number"),
            "not a shareable column"
        );
        let current_versions = match self {
            StoreTx::Sqlite(_) => CURRENT_VERSIONS_SQLITE,
            StoreTx::Postgres(_) => CURRENT_VERSIONS,
        };
        let sql = format!(
            "SELECT v.{column} AS value {current_versions} GROUP BY v.{column} HAVING COUNT(*) > 1"
        );
        let values = with_tx!(self, conn, Db => {
            sqlx::query_scalar::<_, String>(&sql).bind(month.to_string()).fetch_all(&mut *conn).await?
        });
        Ok(values.into_iter().collect())
    }

    /// Both kinds of shared values, (accounts, head ID numbers), from one ordered pass
    /// over the versions current in `month`, counted in this process
    /// (`SharedValuesFold`): the same sets as `shared_values`, which sorts and groups
    /// every household once for each column (issue #7). SQLite reads inside this
    /// transaction, in its clustered key's order. PostgreSQL streams the versions by
    /// `COPY` on a connection of `store`'s own, sorted by bytes; that connection sees
    /// the roster as committed, and the caller holds the inputs lock
    /// (`TxLock::Inputs`), so no import changes it meanwhile. `None` when the roster
    /// holds more than `SHARED_VALUES_IN_MEMORY_MAX` versions: the caller then asks
    /// `shared_values`.
    pub async fn shared_values_in_one_pass(
        &mut self,
        store: &Store,
        month: Month,
    ) -> StoreResult<Option<(HashSet<String>, HashSet<String>)>> {
        let StoreTx::Sqlite(transaction) = self else {
            return store.shared_values_streamed(month).await;
        };
        let month_text = month.to_string();
        with_raw(transaction, |connection| {
            let versions: i64 = connection.query_row(VERSION_COUNT, [], |row| row.get(0))?;
            let Some(mut fold) = SharedValuesFold::within_limit(versions) else {
                return Ok(None);
            };
            Prepared::new(connection, VERSIONS_IN_KEY_ORDER)?.for_each_row(
                &[&month_text],
                |row| {
                    fold.start_version(text_ref(row, 0)?);
                    fold.set_account(text_ref(row, 1)?);
                    fold.set_id_number(text_ref(row, 2)?);
                    Ok(())
                },
            )?;
            Ok(Some(fold.finish()))
        })
        .await
    }

    pub async fn staff_relative_id_numbers(&mut self) -> StoreResult<HashSet<String>> {
        let values = with_tx!(self, conn, Db => {
            sqlx::query_scalar::<_, String>("SELECT DISTINCT relative_id_number FROM staff_relative").fetch_all(&mut *conn).await?
        });
        Ok(values.into_iter().collect())
    }

    /// Inserts the run's header; its totals and digest are set by `finish_run`.
    #[allow(clippy::too_many_arguments)]
    pub async fn insert_run(
        &mut self,
        run_id: &str,
        run_no: i64,
        programme: &str,
        month: Month,
        scope: &str,
        pay_date: &str,
        created_by: &str,
        created_at: &str,
    ) -> StoreResult<()> {
        let sql = "INSERT INTO run (run_id, run_no, programme, month, scope, pay_date, state, created_by, created_at, \
                   input_sha256, digest, line_count, pay_count, payable_fen, hold_count, hold_fen, approvals_required) \
                   VALUES ($1, $2, $3, $4, $5, $6, 'computed', $7, $8, '', '', 0, 0, 0, 0, 0, 1)";
        with_tx!(self, conn, Db => {
            sqlx::query(sql).bind(run_id).bind(run_no).bind(programme).bind(month.to_string()).bind(scope)
                .bind(pay_date).bind(created_by).bind(created_at).execute(&mut *conn).await?;
        });
        Ok(())
    }

    /// Writes lines in multi-row statements. Takes the lines by value: their text moves
    /// into the statement's values instead of being copied (a million-line run copied
    /// eight strings a line here).
    pub async fn insert_lines(&mut self, run_id: &str, lines: Vec<RunLine>) -> StoreResult<()> {
        const COLUMNS: &[&str] = &[
            "run_id",
            "line_no",
            "household_id",
            "approved_from",
            "region_code",
            "area",
            "status",
            "base_fen",
            "supplements_fen",
            "arrears_fen",
            "reduction_fen",
            "recovery_fen",
            "payable_fen",
            "bank_code",
            "account_number",
            "account_name",
            "head_id_number",
            "end_to_end_id",
            "flags",
            "arrears_sources",
        ];
        let text = |value: &str| SqlValue::Text(value.into());
        let rows: Vec<Vec<SqlValue>> = lines
            .into_iter()
            .map(|line| {
                vec![
                    text(run_id),
                    SqlValue::Int(line.line_no),
                    SqlValue::Text(line.household_id.into()),
                    line.approved_from
                        .with_text(|month| SqlValue::Text(month.into())),
                    SqlValue::Text(line.region_code.into()),
                    SqlValue::Text(line.area.into()),
                    text(line.status.as_str()),
                    SqlValue::Int(line.base.as_i64()),
                    SqlValue::Int(line.supplements.as_i64()),
                    SqlValue::Int(line.arrears.as_i64()),
                    SqlValue::Int(line.reduction.as_i64()),
                    SqlValue::Int(line.recovery.as_i64()),
                    SqlValue::Int(line.payable.as_i64()),
                    SqlValue::Text(line.bank_code.into()),
                    SqlValue::Text(line.account_number.into()),
                    SqlValue::Text(line.account_name.into()),
                    SqlValue::Text(line.head_id_number.into()),
                    SqlValue::Text(line.end_to_end_id.into()),
                    SqlValue::Text(line.flags.join(";").into()),
                    SqlValue::Text(ArrearsSource::join(&line.arrears_sources).into()),
                ]
            })
            .collect();
        self.insert_values("run_line", COLUMNS, &rows).await
    }

    pub async fn finish_run(
        &mut self,
        run_id: &str,
        input_sha256: &str,
        digest: &str,
        totals: &RunTotals,
        approvals_required: u32,
    ) -> StoreResult<()> {
        let sql = "UPDATE run SET input_sha256 = $1, digest = $2, line_count = $3, pay_count = $4, payable_fen = $5, \
                   hold_count = $6, hold_fen = $7, approvals_required = $8 WHERE run_id = $9";
        with_tx!(self, conn, Db => {
            sqlx::query(sql).bind(input_sha256).bind(digest).bind(totals.line_count).bind(totals.pay_count)
                .bind(totals.payable.as_i64()).bind(totals.hold_count).bind(totals.hold.as_i64())
                .bind(i64::from(approvals_required)).bind(run_id).execute(&mut *conn).await?;
        });
        Ok(())
    }

    /// Moves a run from `from` to `to`; refused if another writer moved it first.
    pub async fn set_run_state(
        &mut self,
        run_id: &str,
        from: RunState,
        to: RunState,
    ) -> StoreResult<()> {
        let sql = "UPDATE run SET state = $1 WHERE run_id = $2 AND state = $3";
        let changed = with_tx!(self, conn, Db => {
            sqlx::query(sql).bind(to.as_str()).bind(run_id).bind(from.as_str()).execute(&mut *conn).await?.rows_affected()
        });
        if changed != 1 {
            return Err(StoreError::Refused(format!(
                "run {run_id} is no longer {}",
                from.as_str()
            )));
        }
        Ok(())
    }

    /// A run's state as this transaction sees it (after its locks were taken).
    pub async fn run_state(&mut self, run_id: &str) -> StoreResult<Option<String>> {
        let state = with_tx!(self, conn, Db => {
            sqlx::query_scalar("SELECT state FROM run WHERE run_id = $1").bind(run_id)
                .fetch_optional(&mut *conn).await?
        });
        Ok(state)
    }

    pub async fn cancel_run(
        &mut self,
        run_id: &str,
        by: &str,
        at: &str,
        reason: &str,
    ) -> StoreResult<()> {
        let sql = "UPDATE run SET state = 'cancelled', cancelled_by = $1, cancelled_at = $2, cancel_reason = $3 \
                   WHERE run_id = $4 AND state IN ('computed', 'approved')";
        let changed = with_tx!(self, conn, Db => {
            sqlx::query(sql).bind(by).bind(at).bind(reason).bind(run_id).execute(&mut *conn).await?.rows_affected()
        });
        if changed != 1 {
            return Err(StoreError::Refused(format!(
                "run {run_id} can no longer be cancelled"
            )));
        }
        Ok(())
    }

    pub async fn insert_approver(
        &mut self,
        approver: &ApproverRecord,
        added_by: &str,
        added_at: &str,
    ) -> StoreResult<()> {
        let sql = "INSERT INTO approver (name, public_key_pem, algorithm, key_id, added_by, added_at) VALUES ($1, $2, $3, $4, $5, $6)";
        with_tx!(self, conn, Db => {
            sqlx::query(sql).bind(&approver.name).bind(&approver.public_key_pem).bind(&approver.algorithm)
                .bind(&approver.key_id).bind(added_by).bind(added_at).execute(&mut *conn).await?;
        });
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn insert_approval(
        &mut self,
        run: &RunRecord,
        approver: &str,
        key_id: &str,
        signature_hex: &str,
        approved_at: &str,
    ) -> StoreResult<()> {
        let sql = "INSERT INTO approval (run_id, approver, digest, line_count, payable_fen, key_id, signature_hex, approved_at) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
        with_tx!(self, conn, Db => {
            sqlx::query(sql).bind(&run.run_id).bind(approver).bind(&run.digest).bind(run.pay_count)
                .bind(run.payable_fen).bind(key_id).bind(signature_hex).bind(approved_at).execute(&mut *conn).await?;
        });
        Ok(())
    }
}

/// A registered approver.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ApproverRecord {
    pub name: String,
    pub public_key_pem: String,
    pub algorithm: String,
    pub key_id: String,
}

/// A stored approval.
#[derive(Clone, Debug, serde::Serialize)]
pub struct StoredApproval {
    pub approver: String,
    pub digest: String,
    pub pay_count: i64,
    pub payable_fen: i64,
    pub key_id: String,
    pub signature_hex: String,
    pub approved_at: String,
}

/// A group total of a run's lines.
#[derive(Clone, Debug, serde::Serialize)]
pub struct GroupTotal {
    pub group: String,
    pub status: String,
    pub count: i64,
    pub base_fen: i64,
    pub supplements_fen: i64,
    pub arrears_fen: i64,
    pub reduction_fen: i64,
    pub recovery_fen: i64,
    pub payable_fen: i64,
}

/// A run's `pay` lines of one region, area and bank class: how many, and their sum.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlaceTotal {
    pub region_code: String,
    pub area: String,
    /// The first three digits of the bank code.
    pub bank_class: String,
    pub count: i64,
    pub payable_fen: i64,
}

impl Store {
    /// PostgreSQL's half of `StoreTx::shared_values_in_one_pass`: the versions sorted by
    /// bytes (`VERSIONS_IN_BYTE_ORDER_POSTGRES`), one `COPY` stream on a connection of
    /// this pool's own, folded as they arrive.
    async fn shared_values_streamed(
        &self,
        month: Month,
    ) -> StoreResult<Option<(HashSet<String>, HashSet<String>)>> {
        assert!(
            matches!(self, Store::Postgres(_)),
            "SQLite reads its shared values inside the run's transaction"
        );
        let counted = self
            .fetch_mapped(VERSION_COUNT, &[], |row| Ok(row.int("versions")?))
            .await?;
        let versions = counted.first().copied().unwrap_or_default();
        let Some(mut fold) = SharedValuesFold::within_limit(versions) else {
            return Ok(None);
        };
        let month_text = SqlValue::Text(month.to_string().into());
        self.fetch_mapped(VERSIONS_IN_BYTE_ORDER_POSTGRES, &[month_text], |row| {
            row.with_text("household_id", &mut |value| fold.start_version(value))?;
            row.with_text("account_number", &mut |value| fold.set_account(value))?;
            row.with_text("head_id_number", &mut |value| fold.set_id_number(value))?;
            Ok(())
        })
        .await?;
        Ok(Some(fold.finish()))
    }

    pub async fn run(&self, run_id: &str) -> StoreResult<Option<RunRecord>> {
        let run = with_pool!(self, pool, Db => {
            sqlx::query("SELECT * FROM run WHERE run_id = $1").bind(run_id).fetch_optional(pool).await?
                .as_ref().map(run_from_row).transpose()?
        });
        Ok(run)
    }

    /// The standing run of the previous month with the same programme and scope.
    pub async fn previous_run(&self, run: &RunRecord) -> StoreResult<Option<RunRecord>> {
        let previous_month = month_of(&run.month)?.plus(-1).to_string();
        let sql = "SELECT * FROM run WHERE programme = $1 AND scope = $2 AND month = $3 AND state <> 'cancelled'";
        let found = with_pool!(self, pool, Db => {
            sqlx::query(sql).bind(&run.programme).bind(&run.scope).bind(previous_month).fetch_optional(pool).await?
                .as_ref().map(run_from_row).transpose()?
        });
        Ok(found)
    }

    /// Lines after `after_line_no`, at most `limit`, in line order.
    pub async fn run_lines_page(
        &self,
        run_id: &str,
        after_line_no: i64,
        limit: i64,
    ) -> StoreResult<Vec<RunLine>> {
        self.run_lines_page_where(run_id, "TRUE", after_line_no, limit)
            .await
    }

    /// Like `run_lines_page`, for lines meeting `condition` (a fixed SQL text, never input).
    pub(crate) async fn run_lines_page_where(
        &self,
        run_id: &str,
        condition: &'static str,
        after_line_no: i64,
        limit: i64,
    ) -> StoreResult<Vec<RunLine>> {
        let sql = format!(
            "SELECT * FROM run_line WHERE run_id = $1 AND line_no > $2 AND {condition} ORDER BY line_no LIMIT $3"
        );
        let values = [
            SqlValue::Text(run_id.into()),
            SqlValue::Int(after_line_no),
            SqlValue::Int(limit),
        ];
        self.fetch_mapped(&sql, &values, |row| line_from_row(row))
            .await
    }

    /// Totals of a run's lines grouped by `region_code`, `area` or bank class, and status.
    pub async fn run_group_totals(
        &self,
        run_id: &str,
        grouping: &str,
    ) -> StoreResult<Vec<GroupTotal>> {
        let group = match grouping {
            "region" => "region_code",
            "area" => "area",
            "bank" => "SUBSTR(bank_code, 1, 3)",
            "all" => "'all'", // PostgreSQL refuses a constant in GROUP BY: see below
            other => panic!("unknown grouping {other}"),
        };
        // PostgreSQL refuses a constant in GROUP BY, so the whole-run total groups by status alone.
        let group_by = if grouping == "all" {
            "status".to_string()
        } else {
            format!("{group}, status")
        };
        let sql = format!(
            "SELECT {group} AS grp, status, COUNT(*) AS n, {}, {}, {}, {}, {}, {} \
             FROM run_line WHERE run_id = $1 GROUP BY {group_by} ORDER BY 1, 2",
            sum_as("base_fen", "base"),
            sum_as("supplements_fen", "supp"),
            sum_as("arrears_fen", "arr"),
            sum_as("reduction_fen", "red"),
            sum_as("recovery_fen", "rec"),
            sum_as("payable_fen", "pay")
        );
        let totals = with_pool!(self, pool, Db => {
            sqlx::query(&sql).bind(run_id).fetch_all(pool).await?.iter().map(|row| Ok(GroupTotal {
                group: row.text("grp")?,
                status: row.text("status")?,
                count: row.int("n")?,
                base_fen: sum_of(row, "base")?,
                supplements_fen: sum_of(row, "supp")?,
                arrears_fen: sum_of(row, "arr")?,
                reduction_fen: sum_of(row, "red")?,
                recovery_fen: sum_of(row, "rec")?,
                payable_fen: sum_of(row, "pay")?,
            })).collect::<StoreResult<Vec<_>>>()?
        });
        Ok(totals)
    }

    /// Count and payable of a run's `pay` lines by region, area and bank class at once:
    /// the report's three tables fold from these rows, one pass over the lines where
    /// `run_group_totals` would take three.
    pub async fn run_pay_totals_by_place(&self, run_id: &str) -> StoreResult<Vec<PlaceTotal>> {
        let sql = format!(
            "SELECT region_code, area, SUBSTR(bank_code, 1, 3) AS bank_class, COUNT(*) AS n, {} \
             FROM run_line WHERE run_id = $1 AND status = 'pay' \
             GROUP BY region_code, area, SUBSTR(bank_code, 1, 3)",
            sum_as("payable_fen", "pay")
        );
        let totals = with_pool!(self, pool, Db => {
            sqlx::query(&sql).bind(run_id).fetch_all(pool).await?.iter().map(|row| Ok(PlaceTotal {
                region_code: row.text("region_code")?,
                area: row.text("area")?,
                bank_class: row.text("bank_class")?,
                count: row.int("n")?,
                payable_fen: sum_of(row, "pay")?,
            })).collect::<StoreResult<Vec<_>>>()?
        });
        Ok(totals)
    }

    /// Flag names and how many lines carry each.
    pub async fn run_flag_counts(&self, run_id: &str) -> StoreResult<Vec<(String, i64)>> {
        let sql = "SELECT flags, status FROM run_line WHERE run_id = $1 AND flags <> ''";
        let mut counts: std::collections::BTreeMap<String, i64> = Default::default();
        with_pool!(self, pool, Db => {
            for row in sqlx::query(sql).bind(run_id).fetch_all(pool).await? {
                for flag in row.text("flags")?.split(';') {
                    let name = flag.split(':').next().unwrap_or(flag);
                    *counts.entry(name.to_string()).or_default() += 1;
                }
            }
        });
        Ok(counts.into_iter().collect())
    }

    pub async fn approver_by_key_id(&self, key_id: &str) -> StoreResult<Option<ApproverRecord>> {
        self.approver_where("key_id", key_id).await
    }

    pub async fn approver_by_name(&self, name: &str) -> StoreResult<Option<ApproverRecord>> {
        self.approver_where("name", name).await
    }

    async fn approver_where(
        &self,
        column: &str,
        value: &str,
    ) -> StoreResult<Option<ApproverRecord>> {
        let sql = format!("SELECT * FROM approver WHERE {column} = $1");
        let found = with_pool!(self, pool, Db => {
            sqlx::query(&sql).bind(value).fetch_optional(pool).await?.as_ref().map(|row| Ok::<_, StoreError>(ApproverRecord {
                name: row.text("name")?,
                public_key_pem: row.text("public_key_pem")?,
                algorithm: row.text("algorithm")?,
                key_id: row.text("key_id")?,
            })).transpose()?
        });
        Ok(found)
    }

    pub async fn approvals(&self, run_id: &str) -> StoreResult<Vec<StoredApproval>> {
        let sql = "SELECT * FROM approval WHERE run_id = $1 ORDER BY approved_at, approver";
        let approvals = with_pool!(self, pool, Db => {
            sqlx::query(sql).bind(run_id).fetch_all(pool).await?.iter().map(|row| Ok(StoredApproval {
                approver: row.text("approver")?,
                digest: row.text("digest")?,
                pay_count: row.int("line_count")?,
                payable_fen: row.int("payable_fen")?,
                key_id: row.text("key_id")?,
                signature_hex: row.text("signature_hex")?,
                approved_at: row.text("approved_at")?,
            })).collect::<StoreResult<Vec<_>>>()?
        });
        Ok(approvals)
    }
}

/// `SUM` as BIGINT on both backends (PostgreSQL's `SUM(BIGINT)` is NUMERIC).
fn sum_as(column: &str, alias: &str) -> String {
    format!("CAST(COALESCE(SUM({column}), 0) AS BIGINT) AS {alias}")
}

fn sum_of(row: &(impl PlainRow + ?Sized), column: &str) -> StoreResult<i64> {
    Ok(row.int(column)?)
}

impl StoreTx {
    /// (count, total) of a run's `pay` lines as stored, to check against the totals
    /// computed while writing them.
    pub async fn stored_pay_totals(&mut self, run_id: &str) -> StoreResult<(i64, Fen)> {
        let sql = "SELECT COUNT(*) AS n, CAST(COALESCE(SUM(payable_fen), 0) AS BIGINT) AS total \
                   FROM run_line WHERE run_id = $1 AND status = 'pay'";
        let (count, total) = with_tx!(self, conn, Db => {
            let row = sqlx::query(sql).bind(run_id).fetch_one(&mut *conn).await?;
            (row.int("n")?, row.int("total")?)
        });
        Ok((count, Fen::new(total)))
    }
}

impl Store {
    /// What each household's `pay` line of a run pays, page by page.
    pub async fn pay_amounts_by_household(
        &self,
        run_id: &str,
    ) -> StoreResult<std::collections::BTreeMap<String, Fen>> {
        const PAGE: i64 = 10_000;
        let mut amounts = std::collections::BTreeMap::new();
        let mut after = 0;
        loop {
            let page = self.run_lines_page(run_id, after, PAGE).await?;
            let Some(last) = page.last() else { break };
            after = last.line_no;
            for line in page.into_iter().filter(|l| l.status == LineStatus::Pay) {
                amounts.insert(line.household_id, line.payable);
            }
        }
        Ok(amounts)
    }
}

impl StoreTx {
    /// The payable total of the previous month's standing run of a programme and scope.
    pub async fn previous_payable(
        &mut self,
        programme: &str,
        scope: &str,
        month: Month,
    ) -> StoreResult<Option<Fen>> {
        let sql = "SELECT payable_fen FROM run WHERE programme = $1 AND scope = $2 AND month = $3 AND state <> 'cancelled'";
        let found: Option<i64> = with_tx!(self, conn, Db => {
            sqlx::query_scalar(sql).bind(programme).bind(scope).bind(month.plus(-1).to_string()).fetch_optional(&mut *conn).await?
        });
        Ok(found.map(Fen::new))
    }
}
