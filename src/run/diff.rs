//! A run against the previous month's (FAILURES #14): households new, exited, or whose
//! payment changed by more than a share of what it was. Pure.

use crate::domain::money::Fen;
use rust_decimal::Decimal;
use std::collections::BTreeMap;

/// One household that a reviewer should look at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiffRow {
    /// `new`, `changed` or `exited`.
    pub change: &'static str,
    pub household_id: String,
    pub before: Option<Fen>,
    pub after: Option<Fen>,
}

impl DiffRow {
    /// The row as JSON with amounts in yuan.
    pub fn to_json(&self) -> serde_json::Value {
        let show = |fen: Option<Fen>| fen.map(|f| f.to_string()).unwrap_or_default();
        serde_json::json!({"change": self.change, "household_id": self.household_id, "before": show(self.before), "after": show(self.after)})
    }
}

/// Households new, exited, or changed by more than `threshold` (a share of before),
/// sorted by change and household.
pub fn diff_rows(
    before: &BTreeMap<String, Fen>,
    after: &BTreeMap<String, Fen>,
    threshold: Decimal,
) -> Vec<DiffRow> {
    let row = |change, household: &str, before, after| DiffRow {
        change,
        household_id: household.to_string(),
        before,
        after,
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
    rows.sort_by(|a, b| (a.change, &a.household_id).cmp(&(b.change, &b.household_id)));
    rows
}

fn changed_more_than(before: Fen, after: Fen, threshold: Decimal) -> bool {
    let difference = Decimal::from((after.as_i64() - before.as_i64()).abs());
    difference / Decimal::from(before.as_i64().max(1)) > threshold
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_changed_and_exited() {
        let map = |rows: &[(&str, i64)]| {
            rows.iter()
                .map(|(h, f)| (h.to_string(), Fen::new(*f)))
                .collect::<BTreeMap<_, _>>()
        };
        let before = map(&[("H1", 10_000), ("H2", 10_000), ("H3", 10_000)]);
        let after = map(&[("H1", 12_100), ("H2", 11_900), ("H4", 5_000)]);
        let rows = diff_rows(&before, &after, Decimal::new(20, 2));
        let got: Vec<(&str, &str)> = rows
            .iter()
            .map(|r| (r.change, r.household_id.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![("changed", "H1"), ("exited", "H3"), ("new", "H4")]
        );
    }
}
