//! Writing bank files durably (FAILURES #5, #24): each file is written to
//! `DIR/.NAME.PID-SET.tmp`, fsynced, and only renamed to `DIR/NAME` (then the directory
//! fsynced) once every file of the export has been staged. A failed export removes
//! what it staged, so `DIR` never shows a partial set. The temporary name is the set's
//! own (process id, and a number per set in the process), so a writer a dropped export
//! left running never touches the files of the export that retries it; staging a name
//! removes what an earlier set left under that name (a crashed export's temporaries).

use anyhow::Context as _;
use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// Files written to temporary names, waiting to be published together.
pub struct StagedFiles {
    dir: PathBuf,
    /// (temporary path, final name), in staging order.
    staged: Vec<(PathBuf, String)>,
    published: bool,
    /// Set when the set is dropped unpublished, so a `StagedFile` written after that
    /// (its writer was not waited for: the export's future was dropped) removes itself.
    abandoned: Arc<AtomicBool>,
    /// The set's number in this process: part of each temporary name.
    set: u64,
}

/// Sets staged so far in this process, for `StagedFiles::set`.
static SETS_STAGED: AtomicU64 = AtomicU64::new(0);

impl StagedFiles {
    pub fn new(dir: &Path) -> anyhow::Result<StagedFiles> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(StagedFiles {
            dir: dir.to_path_buf(),
            staged: Vec::new(),
            published: false,
            abandoned: Arc::new(AtomicBool::new(false)),
            set: SETS_STAGED.fetch_add(1, Ordering::SeqCst),
        })
    }

    /// Writes `bytes` to the temporary file of `NAME` and fsyncs it.
    pub fn stage(&mut self, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
        self.reserve(name).write(bytes)
    }

    /// The temporary file `NAME` is staged in, to be written by `StagedFile::write`
    /// (on another thread, say) before `publish`. It is this set's from now on: a set
    /// dropped unpublished removes it, so whoever writes it must finish before the set
    /// is dropped.
    pub fn reserve(&mut self, name: &str) -> StagedFile {
        assert!(
            !name.contains('/') && !name.starts_with('.'),
            "file names are plain: {name}"
        );
        remove_earlier_temporaries(&self.dir, name);
        let temporary = self
            .dir
            .join(format!(".{name}.{}-{}.tmp", std::process::id(), self.set));
        self.staged.push((temporary.clone(), name.to_string()));
        StagedFile {
            temporary,
            abandoned: Arc::clone(&self.abandoned),
        }
    }

    /// Renames every staged file to its name, in staging order, then fsyncs the directory.
    pub fn publish(mut self) -> anyhow::Result<()> {
        for (temporary, name) in &self.staged {
            let target = self.dir.join(name);
            std::fs::rename(temporary, &target).with_context(|| {
                format!(
                    "cannot rename {} to {}",
                    temporary.display(),
                    target.display()
                )
            })?;
        }
        sync_directory(&self.dir)?;
        self.published = true;
        Ok(())
    }
}

/// One file of a `StagedFiles` set, reserved and not yet written.
#[must_use = "a reserved file must be written before its set is published"]
pub struct StagedFile {
    temporary: PathBuf,
    abandoned: Arc<AtomicBool>,
}

impl StagedFile {
    /// Writes `bytes` to the temporary file and fsyncs it.
    ///
    /// Why the flag is read after writing: the set's drop raises it before removing its
    /// files, so a file created after that removal sees it raised and removes itself,
    /// and one created before is removed by the drop.
    pub fn write(self, bytes: &[u8]) -> anyhow::Result<()> {
        write_and_sync(&self.temporary, bytes)?;
        if self.abandoned.load(Ordering::SeqCst) {
            let _ = std::fs::remove_file(&self.temporary);
            anyhow::bail!(
                "{} was staged for an export that stopped",
                self.temporary.display()
            );
        }
        crate::failpoint::hit("export.after_stage");
        Ok(())
    }
}

impl Drop for StagedFiles {
    /// An export that did not publish leaves nothing behind.
    fn drop(&mut self) {
        if !self.published {
            self.abandoned.store(true, Ordering::SeqCst);
            for (temporary, _) in &self.staged {
                let _ = std::fs::remove_file(temporary);
            }
        }
    }
}

/// Removes the temporaries an earlier set left for `name` in `dir` (an export that
/// crashed after staging it; `.NAME.tmp` of earlier builds too). Only that name's: the
/// names are batch ids, so another run's export into the same directory is left alone,
/// and the run's own export holds the run's lock. Best effort: what cannot be read or
/// removed stays, as it did before.
fn remove_earlier_temporaries(dir: &Path, name: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let prefix = format!(".{name}.");
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(file_name) = file_name.to_str() else {
            continue;
        };
        let Some(middle) = file_name
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix("tmp"))
        else {
            continue;
        };
        let set_suffix = middle.strip_suffix('.').is_some_and(|set| {
            set.split_once('-').is_some_and(|(process, number)| {
                [process, number]
                    .iter()
                    .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
            })
        });
        if middle.is_empty() || set_suffix {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Writes one file atomically: temporary name, fsync, rename, directory fsync.
pub fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
    let mut staged = StagedFiles::new(dir)?;
    staged.stage(name, bytes)?;
    staged.publish()
}

fn write_and_sync(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut file =
        File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let (first, rest) = bytes.split_at(bytes.len() / 2);
    file.write_all(first)
        .and_then(|()| crate::failpoint::io_error("export.write_error"))
        .and_then(|()| file.write_all(rest))
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

fn sync_directory(dir: &Path) -> anyhow::Result<()> {
    File::open(dir)
        .and_then(|handle| handle.sync_all())
        .with_context(|| format!("cannot fsync directory {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_shows_until_published_and_an_abandoned_stage_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let mut staged = StagedFiles::new(dir.path()).unwrap();
        staged.stage("a.txt", b"one").unwrap();
        assert!(!dir.path().join("a.txt").exists());
        drop(staged);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let mut staged = StagedFiles::new(dir.path()).unwrap();
        staged.stage("a.txt", b"one").unwrap();
        staged.stage("a.txt.sig", b"two").unwrap();
        staged.publish().unwrap();
        assert_eq!(std::fs::read(dir.path().join("a.txt.sig")).unwrap(), b"two");
        write_atomically(dir.path(), "manifest.json", b"{}").unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 3);
    }

    /// A file reserved and written on another thread is published with the set, and
    /// removed with it when the set is dropped unpublished.
    #[test]
    fn a_file_written_elsewhere_is_published_or_removed_with_its_set() {
        let dir = tempfile::tempdir().unwrap();
        for publish in [false, true] {
            let mut staged = StagedFiles::new(dir.path()).unwrap();
            let file = staged.reserve("b.txt");
            std::thread::spawn(move || file.write(b"three"))
                .join()
                .unwrap()
                .unwrap();
            assert!(!dir.path().join("b.txt").exists());
            if publish {
                staged.publish().unwrap();
            } else {
                drop(staged);
                assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
            }
        }
        assert_eq!(std::fs::read(dir.path().join("b.txt")).unwrap(), b"three");
    }

    /// A writer a dropped export left running never touches the files of the export
    /// that stages the same names again in the same directory (each set has its own
    /// temporary names), and the file it writes late removes itself.
    #[test]
    fn a_late_writer_of_a_dropped_set_leaves_the_next_set_alone() {
        let dir = tempfile::tempdir().unwrap();
        let mut first = StagedFiles::new(dir.path()).unwrap();
        let late = first.reserve("d.txt");
        drop(first);
        let mut second = StagedFiles::new(dir.path()).unwrap();
        second.stage("d.txt", b"second").unwrap();
        assert!(late.write(b"first").is_err());
        second.publish().unwrap();
        assert_eq!(std::fs::read(dir.path().join("d.txt")).unwrap(), b"second");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    /// A crashed export's temporaries of a name, of this build's form or the old
    /// `.NAME.tmp`, are removed when the name is staged again; another name's, and a
    /// file that only looks alike, stay.
    #[test]
    fn staging_a_name_removes_what_a_crash_left_under_it() {
        let dir = tempfile::tempdir().unwrap();
        let left = [
            ".e.txt.123-4.tmp",
            ".e.txt.tmp",
            ".e.txt.sig.123-4.tmp",
            ".f.txt.1-1.tmp",
            ".e.txt.x-1.tmp",
        ];
        for name in left {
            std::fs::write(dir.path().join(name), b"crashed").unwrap();
        }
        let mut staged = StagedFiles::new(dir.path()).unwrap();
        staged.stage("e.txt", b"again").unwrap();
        staged.publish().unwrap();
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                ".e.txt.sig.123-4.tmp",
                ".e.txt.x-1.tmp",
                ".f.txt.1-1.tmp",
                "e.txt"
            ]
        );
    }
}
