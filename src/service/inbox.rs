//! The inbox: a directory polled for what comes back: bank result files (any format
//! `returns ingest` detects by content) and treasury vouchers (`*.csv`). Each file is
//! applied, then moved to `done/`; a refused file goes to `rejected/` with `FILE.why`
//! beside it saying why; after each file the exported runs' reconciliation is written
//! again to `report_dir/RUN/`.
//!
//! **Invariants:** each file is applied exactly once: the engine recognises a file seen
//! before by its SHA-256 (and a result file by its bank file id), so a crash between
//! applying and moving only makes the next poll a no-op before the move; a file that
//! fails for another reason (the database is down) stays where it is for the next poll;
//! hidden (`.x`) and partial (`*.tmp`, `*.part`) files are left alone, so senders write
//! then rename; one instance at a time works the inbox (lease `inbox`).

use crate::cli::{import, Context, Refusal};
use crate::engine::approve::Actor;
use crate::engine::ingest::ingest_file;
use crate::engine::reconcile::reconcile_run;
use crate::run::RunState;
use crate::service::scheduler::Lease;
use crate::service::settings::Inbox;
use anyhow::Context as _;
use chrono::{DateTime, Utc};
use std::path::{Path, PathBuf};

/// Who the inbox acts as in the audit log.
pub const INBOX_USER: &str = "inbox";

/// What became of one file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FileOutcome {
    pub file: String,
    /// `done`, `rejected` or `retry`.
    pub disposition: &'static str,
    pub detail: String,
}

/// The files waiting in `dir`, in name order.
pub fn waiting_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().to_string();
        let skipped =
            name.starts_with('.') || [".tmp", ".part", ".why"].iter().any(|s| name.ends_with(s));
        if entry.file_type()?.is_file() && !skipped {
            files.push(entry.path());
        }
    }
    files.sort();
    Ok(files)
}

/// One poll: every waiting file, under the `inbox` lease. `context` acts as `inbox`.
pub async fn poll(
    context: &Context,
    inbox: &Inbox,
    now: DateTime<Utc>,
    holder: &str,
) -> anyhow::Result<Vec<FileOutcome>> {
    let store = context.store().await?;
    let lease = Lease::new(store, "inbox".to_string(), holder, now, inbox.lease_seconds);
    if !lease.take().await? {
        return Ok(Vec::new());
    }
    let mut outcomes = Vec::new();
    let worked = async {
        for path in waiting_files(&inbox.dir)? {
            outcomes.push(take_file(context, inbox, &path, now).await?);
            lease.renew().await?;
        }
        anyhow::Ok(())
    }
    .await;
    lease.release().await?;
    worked.map(|()| outcomes)
}

async fn take_file(
    context: &Context,
    inbox: &Inbox,
    path: &Path,
    now: DateTime<Utc>,
) -> anyhow::Result<FileOutcome> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let applied = apply(context, path, now).await;
    let outcome = match applied {
        Ok(detail) => {
            move_into(path, &inbox.dir.join("done"))?;
            refresh_reports(context, inbox, now).await?;
            FileOutcome {
                file: name,
                disposition: "done",
                detail,
            }
        }
        Err(error) => match error.downcast_ref::<Refusal>() {
            Some(refusal) => {
                let moved = move_into(path, &inbox.dir.join("rejected"))?;
                let why = format!("{refusal}\n");
                std::fs::write(why_path(&moved), why.as_bytes())?;
                tracing::warn!(file = %name, "inbox: file refused: {}", refusal.summary);
                FileOutcome {
                    file: name,
                    disposition: "rejected",
                    detail: refusal.summary.clone(),
                }
            }
            None => {
                tracing::error!(file = %name, "inbox: file left for the next poll: {error:#}");
                FileOutcome {
                    file: name,
                    disposition: "retry",
                    detail: "failed; left for the next poll".into(),
                }
            }
        },
    };
    tracing::info!(file = %outcome.file, disposition = outcome.disposition, "inbox: {}", outcome.detail);
    Ok(outcome)
}

/// Applies one file; the human summary of what it did.
async fn apply(context: &Context, path: &Path, now: DateTime<Utc>) -> anyhow::Result<String> {
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
    {
        let summary = import::import_file(context, &import::TREASURY, path, "utf-8").await?;
        return Ok(format!(
            "treasury vouchers: {} rows ({} new)",
            summary.rows, summary.inserted
        ));
    }
    let now_text = crate::clock::format_utc(now);
    let actor = Actor {
        user: &context.user,
        now_text: &now_text,
    };
    let summary = ingest_file(context.store().await?, &actor, path, None).await?;
    Ok(match summary.duplicate_of {
        Some(earlier) => format!("already ingested as {earlier}; nothing changed"),
        None => format!(
            "{}: {} results, {} applied, {} exceptions",
            summary.format, summary.results, summary.applied, summary.exceptions
        ),
    })
}

/// Writes the reconciliation of every exported (not yet reconciled) run again.
pub async fn refresh_reports(
    context: &Context,
    inbox: &Inbox,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    refresh_reports_in(
        context.store().await?,
        &context.user,
        &inbox.report_dir,
        now,
    )
    .await
}

pub async fn refresh_reports_in(
    store: &crate::store::Store,
    user: &str,
    report_dir: &Path,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    let now_text = crate::clock::format_utc(now);
    let actor = Actor {
        user,
        now_text: &now_text,
    };
    for run in store.all_runs().await? {
        if run.state()? == RunState::Exported {
            reconcile_run(store, &actor, &run.run_id, &report_dir.join(&run.run_id)).await?;
        }
    }
    Ok(())
}

/// Moves `path` into `dir` (made if missing), never over an earlier file of the same name.
fn move_into(path: &Path, dir: &Path) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let name = path
        .file_name()
        .context("a file name")?
        .to_string_lossy()
        .to_string();
    let mut target = dir.join(&name);
    let mut n = 1;
    while target.exists() || why_path(&target).exists() {
        target = dir.join(format!("{name}.{n}"));
        n += 1;
    }
    std::fs::rename(path, &target)
        .with_context(|| format!("cannot move {} to {}", path.display(), target.display()))?;
    Ok(target)
}

fn why_path(path: &Path) -> PathBuf {
    let mut text = path.as_os_str().to_owned();
    text.push(".why");
    PathBuf::from(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiting_files_skip_hidden_partial_and_why() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["b.xml", "a.csv", ".hidden", "c.tmp", "d.part", "a.csv.why"] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        std::fs::create_dir(dir.path().join("done")).unwrap();
        let names: Vec<String> = waiting_files(dir.path())
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().to_string())
            .collect();
        assert_eq!(names, ["a.csv", "b.xml"]);
    }

    #[test]
    fn a_moved_file_never_overwrites_an_earlier_one() {
        let dir = tempfile::tempdir().unwrap();
        let done = dir.path().join("done");
        for _ in 0..2 {
            std::fs::write(dir.path().join("r.txt"), b"x").unwrap();
            move_into(&dir.path().join("r.txt"), &done).unwrap();
        }
        assert!(done.join("r.txt").exists() && done.join("r.txt.1").exists());
    }
}
