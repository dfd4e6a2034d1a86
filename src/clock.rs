//! The clock, at the edge. The core takes times as arguments; only this module reads
//! the system time. `DISBURSE_NOW` (RFC 3339) pins it, for tests and reproducible demos.

use chrono::{DateTime, SecondsFormat, Utc};

/// Current UTC time, or the pinned `DISBURSE_NOW`.
pub fn now_utc() -> anyhow::Result<DateTime<Utc>> {
    match std::env::var("DISBURSE_NOW") {
        Ok(text) => Ok(DateTime::parse_from_rfc3339(&text)
            .map_err(|error| anyhow::anyhow!("DISBURSE_NOW {text:?} is not RFC 3339: {error}"))?
            .with_timezone(&Utc)),
        Err(_) => Ok(Utc::now()),
    }
}

/// RFC 3339 with seconds, `Z` suffix: how times are stored.
pub fn format_utc(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Secs, true)
}
