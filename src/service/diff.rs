//! Pure pieces of the API's answers: a run against last month's (FAILURES #14) and the
//! Prometheus text of `/metrics`.
//!
//! **Invariants:** amounts stay `Fen`; a share is compared as a `Decimal`, never a float;
//! metric label values come from fixed state names, so no personal data can appear.

use crate::domain::money::Fen;
use rust_decimal::Decimal;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// `new`, `changed` (by more than `threshold` of before) and `exited` households.
pub fn diff_rows(
    before: &BTreeMap<String, Fen>,
    after: &BTreeMap<String, Fen>,
    threshold: Decimal,
) -> Vec<serde_json::Value> {
    let row = |change: &str, household: &str, was: Option<Fen>, now: Option<Fen>| {
        let show = |fen: Option<Fen>| fen.map(|f| f.to_string()).unwrap_or_default();
        serde_json::json!({"change": change, "household_id": household, "before": show(was), "after": show(now)})
    };
    let mut rows = Vec::new();
    for (household, now) in after {
        match before.get(household) {
            None => rows.push(row("new", household, None, Some(*now))),
            Some(was) if changed_more_than(*was, *now, threshold) => {
                rows.push(row("changed", household, Some(*was), Some(*now)))
            }
            Some(_) => {}
        }
    }
    for (household, was) in before.iter().filter(|(h, _)| !after.contains_key(*h)) {
        rows.push(row("exited", household, Some(*was), None));
    }
    rows
}

fn changed_more_than(before: Fen, after: Fen, threshold: Decimal) -> bool {
    let difference = Decimal::from((after.as_i64() - before.as_i64()).abs());
    difference / Decimal::from(before.as_i64().max(1)) > threshold
}

/// `/metrics`: runs by state, payments by status, the last successful schedule tick.
pub fn metrics_text(runs: &[(String, i64)], payments: &[(String, i64)], last_tick: i64) -> String {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "# HELP disburse_runs Runs by state.\n# TYPE disburse_runs gauge"
    );
    for (state, count) in runs {
        let _ = writeln!(text, "disburse_runs{{state=\"{}\"}} {count}", label(state));
    }
    let _ = writeln!(
        text,
        "# HELP disburse_payments Instructed payments by status.\n# TYPE disburse_payments gauge"
    );
    for (status, count) in payments {
        let _ = writeln!(
            text,
            "disburse_payments{{status=\"{}\"}} {count}",
            label(status)
        );
    }
    let _ = writeln!(
        text,
        "# HELP disburse_schedule_last_success_timestamp_seconds Unix time of the last successful schedule tick (0: none yet).\n\
         # TYPE disburse_schedule_last_success_timestamp_seconds gauge\n\
         disburse_schedule_last_success_timestamp_seconds {last_tick}"
    );
    text
}

fn label(value: &str) -> String {
    value
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_finds_new_changed_and_exited() {
        let before = BTreeMap::from([
            ("a".to_string(), Fen::new(1000)),
            ("b".into(), Fen::new(1000)),
            ("c".into(), Fen::new(5)),
        ]);
        let after = BTreeMap::from([
            ("a".to_string(), Fen::new(1100)),
            ("b".into(), Fen::new(1300)),
            ("d".into(), Fen::new(7)),
        ]);
        let rows = diff_rows(&before, &after, Decimal::new(20, 2));
        let kinds: Vec<(&str, &str)> = rows
            .iter()
            .map(|r| {
                (
                    r["change"].as_str().unwrap(),
                    r["household_id"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(kinds, [("changed", "b"), ("new", "d"), ("exited", "c")]);
    }

    #[test]
    fn metrics_are_prometheus_text() {
        let text = metrics_text(
            &[("computed".into(), 2)],
            &[("paid".into(), 5)],
            1_700_000_000,
        );
        assert!(text.contains("disburse_runs{state=\"computed\"} 2\n"));
        assert!(text.contains("disburse_payments{status=\"paid\"} 5\n"));
        assert!(text.contains("disburse_schedule_last_success_timestamp_seconds 1700000000\n"));
    }
}
