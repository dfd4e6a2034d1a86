//! The service's sections of `disburse.toml`, `[schedule]` and `[inbox]`, read from
//! `Config::raw`. Pure: the caller hands in the parsed table.
//!
//! **Invariants:** a present section is complete and valid or refused with its key;
//! the cron expression parses and its time zone is a named IANA zone (FAILURES #15:
//! never a fixed offset); scopes are region prefixes of up to 6 digits, without repeats.

use chrono_tz::Tz;
use serde::Deserialize;
use std::path::PathBuf;
use std::str::FromStr;

/// Why a service section was refused: the key and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration {key}: {reason}")]
pub struct SettingsError {
    pub key: String,
    pub reason: String,
}

fn refuse(key: &str, reason: impl Into<String>) -> SettingsError {
    SettingsError {
        key: key.to_string(),
        reason: reason.into(),
    }
}

/// `[schedule]`: when to compute each month's runs, and where to export approved ones.
#[derive(Clone, Debug)]
pub struct Schedule {
    pub cron: cron::Schedule,
    pub cron_text: String,
    pub timezone: Tz,
    pub programme: String,
    /// Region prefixes, one run each (`""` is every region).
    pub scopes: Vec<String>,
    pub export_dir: PathBuf,
    /// Signing key for exports; default `[keys] signing_key`.
    pub export_key: Option<PathBuf>,
    /// Seconds between ticks (reminders, exports, catching up after a stop).
    pub poll_seconds: u64,
    /// How long the scheduler's lease lasts without renewal.
    pub lease_seconds: i64,
}

/// `[inbox]`: a directory polled for bank results and treasury vouchers.
#[derive(Clone, Debug)]
pub struct Inbox {
    pub dir: PathBuf,
    /// Reconciliation reports land in `report_dir/RUN/`.
    pub report_dir: PathBuf,
    pub poll_seconds: u64,
    pub lease_seconds: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScheduleToml {
    cron: String,
    timezone: Option<String>,
    programme: Option<String>,
    scopes: Option<Vec<String>>,
    export_dir: String,
    export_key: Option<String>,
    poll_seconds: Option<u64>,
    lease_seconds: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InboxToml {
    dir: String,
    report_dir: String,
    poll_seconds: Option<u64>,
    lease_seconds: Option<i64>,
}

pub const DEFAULT_TIMEZONE: &str = "Asia/Shanghai";

/// `[schedule]` if present.
pub fn schedule(raw: &toml::Table) -> Result<Option<Schedule>, SettingsError> {
    let Some(value) = raw.get("schedule") else {
        return Ok(None);
    };
    let parsed: ScheduleToml = value
        .clone()
        .try_into()
        .map_err(|e| refuse("schedule", e.to_string()))?;
    let cron = cron::Schedule::from_str(&parsed.cron)
        .map_err(|e| refuse("schedule.cron", format!("{:?}: {e}", parsed.cron)))?;
    let zone_name = parsed.timezone.as_deref().unwrap_or(DEFAULT_TIMEZONE);
    let timezone = Tz::from_str(zone_name).map_err(|_| {
        refuse(
            "schedule.timezone",
            format!("{zone_name:?} is no IANA zone"),
        )
    })?;
    let programme = parsed.programme.unwrap_or_else(|| "dibao".to_string());
    if programme.is_empty()
        || !programme
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b == b'_')
    {
        return Err(refuse("schedule.programme", "lower-case letters"));
    }
    let scopes = parsed.scopes.unwrap_or_else(|| vec![String::new()]);
    check_scopes(&scopes)?;
    Ok(Some(Schedule {
        cron,
        cron_text: parsed.cron,
        timezone,
        programme,
        scopes,
        export_dir: PathBuf::from(parsed.export_dir),
        export_key: parsed.export_key.map(PathBuf::from),
        poll_seconds: positive(parsed.poll_seconds.unwrap_or(60), "schedule.poll_seconds")?,
        lease_seconds: lease(
            parsed.lease_seconds.unwrap_or(300),
            "schedule.lease_seconds",
        )?,
    }))
}

/// `[inbox]` if present.
pub fn inbox(raw: &toml::Table) -> Result<Option<Inbox>, SettingsError> {
    let Some(value) = raw.get("inbox") else {
        return Ok(None);
    };
    let parsed: InboxToml = value
        .clone()
        .try_into()
        .map_err(|e| refuse("inbox", e.to_string()))?;
    Ok(Some(Inbox {
        dir: PathBuf::from(parsed.dir),
        report_dir: PathBuf::from(parsed.report_dir),
        poll_seconds: positive(parsed.poll_seconds.unwrap_or(30), "inbox.poll_seconds")?,
        lease_seconds: lease(parsed.lease_seconds.unwrap_or(300), "inbox.lease_seconds")?,
    }))
}

fn check_scopes(scopes: &[String]) -> Result<(), SettingsError> {
    if scopes.is_empty() {
        return Err(refuse(
            "schedule.scopes",
            "name at least one scope (\"\" is every region)",
        ));
    }
    for (index, scope) in scopes.iter().enumerate() {
        if scope.len() > 6 || !scope.bytes().all(|b| b.is_ascii_digit()) {
            return Err(refuse(
                "schedule.scopes",
                format!("{scope:?}: a region prefix of up to 6 digits"),
            ));
        }
        if scopes[..index].contains(scope) {
            return Err(refuse(
                "schedule.scopes",
                format!("{scope:?} is named twice"),
            ));
        }
    }
    Ok(())
}

fn positive(value: u64, key: &str) -> Result<u64, SettingsError> {
    if value == 0 || value > 86_400 {
        return Err(refuse(key, "between 1 and 86400 seconds"));
    }
    Ok(value)
}

fn lease(value: i64, key: &str) -> Result<i64, SettingsError> {
    if !(10..=86_400).contains(&value) {
        return Err(refuse(key, "between 10 and 86400 seconds"));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> toml::Table {
        text.parse().unwrap()
    }

    #[test]
    fn schedule_defaults_and_refusals() {
        let raw = table("[schedule]\ncron = \"0 0 9 20 * *\"\nexport_dir = \"out\"\n");
        let schedule = schedule(&raw).unwrap().unwrap();
        assert_eq!(schedule.timezone, chrono_tz::Asia::Shanghai);
        assert_eq!(schedule.scopes, vec![String::new()]);
        assert_eq!(schedule.programme, "dibao");
        let bad_cron = table("[schedule]\ncron = \"every day\"\nexport_dir = \"out\"\n");
        assert_eq!(schedule_key(&bad_cron), "schedule.cron");
        let bad_zone = table(
            "[schedule]\ncron = \"0 0 9 20 * *\"\ntimezone = \"+08:00\"\nexport_dir = \"o\"\n",
        );
        assert_eq!(schedule_key(&bad_zone), "schedule.timezone");
        let bad_scope =
            table("[schedule]\ncron = \"0 0 9 20 * *\"\nscopes = [\"21a\"]\nexport_dir = \"o\"\n");
        assert_eq!(schedule_key(&bad_scope), "schedule.scopes");
        assert!(super::schedule(&table("")).unwrap().is_none());
    }

    fn schedule_key(raw: &toml::Table) -> String {
        schedule(raw).unwrap_err().key
    }

    #[test]
    fn inbox_section() {
        let raw = table("[inbox]\ndir = \"in\"\nreport_dir = \"rep\"\n");
        let inbox = inbox(&raw).unwrap().unwrap();
        assert_eq!(inbox.poll_seconds, 30);
        assert!(super::inbox(&table("[inbox]\ndir = \"in\"\n")).is_err());
    }
}
