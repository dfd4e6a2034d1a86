//! Batch planning, PURE: a run's `pay` lines, in line order, and the configured routes
//! become batches. One batch is one route (layout + payer account) and one pay date,
//! split when it would pass the route's `max_records` or `max_amount`.
//!
//! **Invariants:** deterministic (same lines and routes, same batches, same ids); every
//! line in exactly one batch; a batch holds a contiguous range of its route's lines, so
//! it is described by (route, first line, last line) and the planner never holds
//! payments, only counts and totals.

use crate::config::Route;
use crate::domain::money::Fen;
use crate::formats::spec::LayoutKind;
use std::collections::HashSet;

/// Why a run cannot be planned, or a rendered file disagrees with its plan.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("line {line_no}: bank code {bank_code} matches no route (configure a route with bank_prefix = \"\")")]
    NoRoute { line_no: i64, bank_code: String },
    #[error("line {line_no}: lines must come in increasing line order")]
    OutOfOrder { line_no: i64 },
    #[error("line {line_no}: amount {amount} is negative")]
    NegativeAmount { line_no: i64, amount: Fen },
    #[error("line {line_no}: amount {amount} is above the route's max_amount {max_amount}, so no file can carry it")]
    AboveMaxAmount {
        line_no: i64,
        amount: Fen,
        max_amount: Fen,
    },
    #[error("batch {batch_id}: the file disagrees with the plan: {what}")]
    FileDisagrees { batch_id: String, what: String },
}

/// One planned batch: which lines it carries and what they add up to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedBatch {
    pub batch_id: String,
    /// 1-based, in the order batches were opened.
    pub batch_seq: u32,
    /// Index into the routes the planner was given.
    pub route_index: usize,
    pub first_line_no: i64,
    pub last_line_no: i64,
    pub record_count: u32,
    pub total: Fen,
}

impl PlannedBatch {
    /// Whether the line (of route `route_index`) belongs to this batch.
    pub fn holds(&self, route_index: usize, line_no: i64) -> bool {
        route_index == self.route_index
            && (self.first_line_no..=self.last_line_no).contains(&line_no)
    }
}

/// `B000001-0001`: the run number (unique forever, never reused) and the batch's
/// sequence in the run, so the id is unique forever and fixed by the plan.
pub fn batch_id(run_no: i64, batch_seq: u32) -> String {
    let id = format!("B{run_no:06}-{batch_seq:04}");
    assert!(
        id.len() <= 20 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'),
        "batch_id {id} breaks CONTRACTS §3.1"
    );
    id
}

/// `{batch_id}.xml` for ISO 20022, `{batch_id}.txt` for the tabular layouts.
pub fn file_name(batch_id: &str, kind: LayoutKind) -> String {
    match kind {
        LayoutKind::Iso20022Pain001 => format!("{batch_id}.xml"),
        LayoutKind::Delimited | LayoutKind::Fixed => format!("{batch_id}.txt"),
    }
}

/// The route of a bank code: the longest matching `bank_prefix`.
pub fn route_index(routes: &[Route], bank_code: &str) -> Option<usize> {
    routes
        .iter()
        .enumerate()
        .filter(|(_, route)| bank_code.starts_with(&route.bank_prefix))
        .max_by_key(|(_, route)| route.bank_prefix.len())
        .map(|(index, _)| index)
}

/// Plans batches from lines pushed in line order; holds one open batch per route.
pub struct BatchPlanner<'r> {
    routes: &'r [Route],
    run_no: i64,
    open: Vec<Option<PlannedBatch>>,
    closed: Vec<PlannedBatch>,
    next_seq: u32,
    last_line_no: i64,
}

impl<'r> BatchPlanner<'r> {
    pub fn new(routes: &'r [Route], run_no: i64) -> BatchPlanner<'r> {
        BatchPlanner {
            routes,
            run_no,
            open: vec![None; routes.len()],
            closed: Vec::new(),
            next_seq: 1,
            last_line_no: i64::MIN,
        }
    }

    /// Adds one `pay` line; returns its route index.
    pub fn push(&mut self, line_no: i64, bank_code: &str, amount: Fen) -> Result<usize, PlanError> {
        if line_no <= self.last_line_no {
            return Err(PlanError::OutOfOrder { line_no });
        }
        self.last_line_no = line_no;
        if amount < Fen::ZERO {
            return Err(PlanError::NegativeAmount { line_no, amount });
        }
        let index = route_index(self.routes, bank_code).ok_or_else(|| PlanError::NoRoute {
            line_no,
            bank_code: bank_code.to_string(),
        })?;
        let route = &self.routes[index];
        if let Some(max_amount) = route.max_amount.filter(|max| amount > *max) {
            return Err(PlanError::AboveMaxAmount {
                line_no,
                amount,
                max_amount,
            });
        }
        let full = self.open[index].as_ref().is_some_and(|batch| {
            batch.record_count >= route.max_records
                || route
                    .max_amount
                    .is_some_and(|max| batch.total.plus(amount) > max)
        });
        if full {
            self.closed.extend(self.open[index].take());
        }
        let batch = self.open[index].get_or_insert_with(|| {
            let seq = self.next_seq;
            self.next_seq += 1;
            PlannedBatch {
                batch_id: batch_id(self.run_no, seq),
                batch_seq: seq,
                route_index: index,
                first_line_no: line_no,
                last_line_no: line_no,
                record_count: 0,
                total: Fen::ZERO,
            }
        });
        batch.last_line_no = line_no;
        batch.record_count += 1;
        batch.total = batch.total.plus(amount);
        Ok(index)
    }

    /// Every batch, in `batch_seq` order.
    pub fn finish(self) -> Vec<PlannedBatch> {
        let mut batches = self.closed;
        batches.extend(self.open.into_iter().flatten());
        batches.sort_by_key(|batch| batch.batch_seq);
        batches
    }
}

/// The control figures of a file as rendered or re-read, to hold against the plan.
pub struct FileFigures<'a> {
    pub record_count: u64,
    pub total: Fen,
    /// The file's end_to_end_ids in file order, when the file was re-read.
    pub end_to_end_ids: Option<Vec<&'a str>>,
}

/// Fails closed unless the file carries exactly the planned count, total and ids.
/// `planned_ids` are the batch's ids in batch order; ids are compared as sets.
pub fn check_against_plan(
    planned: &PlannedBatch,
    planned_ids: &[&str],
    found: &FileFigures<'_>,
) -> Result<(), PlanError> {
    let disagree = |what: String| PlanError::FileDisagrees {
        batch_id: planned.batch_id.clone(),
        what,
    };
    if found.record_count != u64::from(planned.record_count) {
        return Err(disagree(format!(
            "{} records, planned {}",
            found.record_count, planned.record_count
        )));
    }
    if found.total != planned.total {
        return Err(disagree(format!(
            "total {}, planned {}",
            found.total, planned.total
        )));
    }
    let distinct = distinct_count(planned_ids);
    if distinct != planned.record_count as usize {
        return Err(disagree(format!(
            "{distinct} distinct end_to_end_ids for {} records",
            planned.record_count
        )));
    }
    if let Some(ids) = &found.end_to_end_ids {
        if !same_set(ids, planned_ids) {
            return Err(disagree(
                "its end_to_end_ids are not the planned ones".to_string(),
            ));
        }
    }
    Ok(())
}

/// How many distinct ids `ids` holds. A batch's ids are in line order and of one width,
/// so they are strictly increasing and counted without hashing; any other list is
/// counted by a set.
fn distinct_count(ids: &[&str]) -> usize {
    if ids.windows(2).all(|pair| pair[0] < pair[1]) {
        return ids.len();
    }
    ids.iter().collect::<HashSet<_>>().len()
}

/// Whether two lists hold the same set of ids. A file re-read holds its batch's ids in
/// the batch's order, which an element-by-element comparison shows without hashing.
fn same_set(found: &[&str], planned: &[&str]) -> bool {
    found == planned
        || found.iter().collect::<HashSet<_>>() == planned.iter().collect::<HashSet<_>>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn route(prefix: &str, layout: &str, max_records: u32, max_yuan: Option<i64>) -> Route {
        Route {
            bank_prefix: prefix.into(),
            layout: layout.into(),
            payer_account: "110060149018001234567".into(),
            payer_name: "某市财政局".into(),
            payer_bank_code: "102100099996".into(),
            max_records,
            max_amount: max_yuan.map(|yuan| Fen::new(yuan * 100)),
        }
    }

    fn routes() -> Vec<Route> {
        vec![
            route("402221", "bank-pipe-gbk", 50_000, None),
            route("402", "rcc-fixed-gbk", 2, None),
            route("313", "iso20022-pain001", 10, Some(100)),
            route("", "bank-pipe-gbk", 50_000, None),
        ]
    }

    #[test]
    fn longest_prefix_wins_and_empty_matches_everything() {
        let routes = routes();
        let cases = [
            ("402221000054", Some(0)),
            ("402331000011", Some(1)),
            ("313221000045", Some(2)),
            ("102100000012", Some(3)),
            ("", Some(3)),
        ];
        for (bank_code, expected) in cases {
            assert_eq!(route_index(&routes, bank_code), expected, "{bank_code}");
        }
        assert_eq!(route_index(&routes[..3], "105100000017"), None);
    }

    #[test]
    fn batches_split_by_records_and_amount_in_opening_order() {
        let routes = routes();
        let mut planner = BatchPlanner::new(&routes, 7);
        let lines = [
            (1, "402331000011", 10),
            (2, "102100000012", 20),
            (3, "402331000011", 30),
            (4, "402331000011", 40),
            (5, "313221000045", 6_000),
            (6, "313221000045", 5_000),
        ];
        for (line_no, bank_code, fen) in lines {
            planner.push(line_no, bank_code, Fen::new(fen)).unwrap();
        }
        let batches = planner.finish();
        let summary: Vec<_> = batches
            .iter()
            .map(|b| {
                (
                    b.batch_id.as_str(),
                    b.route_index,
                    b.first_line_no,
                    b.last_line_no,
                    b.record_count,
                    b.total.as_i64(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("B000007-0001", 1, 1, 3, 2, 40),
                ("B000007-0002", 3, 2, 2, 1, 20),
                ("B000007-0003", 1, 4, 4, 1, 40),
                ("B000007-0004", 2, 5, 5, 1, 6_000),
                ("B000007-0005", 2, 6, 6, 1, 5_000),
            ]
        );
        assert!(batches[0].holds(1, 3) && !batches[0].holds(3, 2) && !batches[0].holds(1, 4));
    }

    #[test]
    fn refusals() {
        let routes = routes();
        let mut planner = BatchPlanner::new(&routes, 1);
        assert!(matches!(
            planner.push(1, "313221000045", Fen::new(10_001)),
            Err(PlanError::AboveMaxAmount { .. })
        ));
        assert!(matches!(
            planner.push(1, "102100000012", Fen::new(1)),
            Err(PlanError::OutOfOrder { .. })
        ));
        assert!(matches!(
            planner.push(2, "102100000012", Fen::new(-1)),
            Err(PlanError::NegativeAmount { .. })
        ));
        let mut planner = BatchPlanner::new(&routes[..1], 1);
        assert!(matches!(
            planner.push(1, "102100000012", Fen::new(1)),
            Err(PlanError::NoRoute { .. })
        ));
    }

    #[test]
    fn identities_and_names_fit_the_contract() {
        assert_eq!(batch_id(1, 1), "B000001-0001");
        assert!(batch_id(crate::run::RUN_NO_MAX, 99_999).len() <= 20);
        assert_eq!(
            file_name("B000001-0001", LayoutKind::Fixed),
            "B000001-0001.txt"
        );
        assert_eq!(
            file_name("B000001-0001", LayoutKind::Iso20022Pain001),
            "B000001-0001.xml"
        );
    }

    #[test]
    fn a_file_must_match_its_plan() {
        let planned = PlannedBatch {
            batch_id: "B000001-0001".into(),
            batch_seq: 1,
            route_index: 0,
            first_line_no: 1,
            last_line_no: 2,
            record_count: 2,
            total: Fen::new(300),
        };
        let ids = ["E1", "E2"];
        let figures = |count, fen, found: &[&'static str]| FileFigures {
            record_count: count,
            total: Fen::new(fen),
            end_to_end_ids: Some(found.to_vec()),
        };
        assert!(check_against_plan(&planned, &ids, &figures(2, 300, &["E2", "E1"])).is_ok());
        assert!(check_against_plan(&planned, &ids, &figures(2, 300, &["E1", "E2"])).is_ok());
        assert!(check_against_plan(&planned, &ids, &figures(1, 300, &["E1"])).is_err());
        assert!(check_against_plan(&planned, &ids, &figures(2, 301, &["E1", "E2"])).is_err());
        assert!(check_against_plan(&planned, &ids, &figures(2, 300, &["E1", "E3"])).is_err());
        assert!(check_against_plan(&planned, &ids, &figures(2, 300, &["E1", "E1"])).is_err());
        // A batch that repeats an id is refused whatever the file says.
        let repeated = ["E2", "E2"];
        assert!(check_against_plan(&planned, &repeated, &figures(2, 300, &["E2", "E2"])).is_err());
        let unordered = ["E2", "E1"];
        assert!(check_against_plan(&planned, &unordered, &figures(2, 300, &["E1", "E2"])).is_ok());
    }

    proptest! {
        /// The fast paths (in order, same order) decide exactly as sets do.
        #[test]
        fn id_checks_agree_with_sets(
            planned in proptest::collection::vec(0u8..6, 0..8),
            found in proptest::collection::vec(0u8..6, 0..8),
            sorted in any::<bool>(),
        ) {
            let mut planned: Vec<String> = planned.iter().map(|id| format!("E{id}")).collect();
            if sorted {
                planned.sort();
            }
            let found: Vec<String> = found.iter().map(|id| format!("E{id}")).collect();
            let planned: Vec<&str> = planned.iter().map(String::as_str).collect();
            let found: Vec<&str> = found.iter().map(String::as_str).collect();
            fn set<'a>(ids: &[&'a str]) -> HashSet<&'a str> {
                ids.iter().copied().collect()
            }
            prop_assert_eq!(distinct_count(&planned), set(&planned).len());
            prop_assert_eq!(same_set(&found, &planned), set(&found) == set(&planned));
            prop_assert_eq!(same_set(&planned, &planned), true);
        }
    }

    proptest! {
        #[test]
        fn every_line_in_exactly_one_batch_within_limits(
            lines in proptest::collection::vec((0usize..4, 0i64..5_000), 0..300),
        ) {
            let routes = routes();
            let banks = ["402221000054", "402331000011", "313221000045", "105100000017"];
            let mut planner = BatchPlanner::new(&routes, 3);
            let mut pushed = Vec::new();
            for (index, (bank, fen)) in lines.iter().enumerate() {
                let line_no = index as i64 + 1;
                let route = planner.push(line_no, banks[*bank], Fen::new(*fen)).unwrap();
                pushed.push((line_no, route, Fen::new(*fen)));
            }
            let batches = planner.finish();
            let total: Fen = batches.iter().map(|b| b.total).sum();
            prop_assert_eq!(total, pushed.iter().map(|p| p.2).sum::<Fen>());
            for (line_no, route, _) in &pushed {
                prop_assert_eq!(batches.iter().filter(|b| b.holds(*route, *line_no)).count(), 1);
            }
            for batch in &batches {
                let route = &routes[batch.route_index];
                prop_assert!(batch.record_count <= route.max_records);
                prop_assert!(route.max_amount.is_none_or(|max| batch.total <= max));
                let held: Vec<_> = pushed.iter().filter(|p| batch.holds(p.1, p.0)).collect();
                prop_assert_eq!(held.len() as u32, batch.record_count);
                prop_assert_eq!(held.iter().map(|p| p.2).sum::<Fen>(), batch.total);
            }
        }
    }
}
