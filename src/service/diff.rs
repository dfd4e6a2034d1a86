//! The Prometheus text of `/metrics`. Pure. (A run against last month's is
//! `run::diff`, shared with the CLI.)
//!
//! **Invariant:** metric label values come from fixed state names, so no personal data
//! can appear.

use std::fmt::Write as _;

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
