//! Writing bank files durably (FAILURES #5, #24): each file is written to
//! `DIR/.NAME.tmp`, fsynced, and only renamed to `DIR/NAME` (then the directory
//! fsynced) once every file of the export has been staged. A failed export removes
//! what it staged, so `DIR` never shows a partial set.

use anyhow::Context as _;
use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Files written to temporary names, waiting to be published together.
pub struct StagedFiles {
    dir: PathBuf,
    /// (temporary path, final name), in staging order.
    staged: Vec<(PathBuf, String)>,
    published: bool,
}

impl StagedFiles {
    pub fn new(dir: &Path) -> anyhow::Result<StagedFiles> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(StagedFiles {
            dir: dir.to_path_buf(),
            staged: Vec::new(),
            published: false,
        })
    }

    /// Writes `bytes` to `.NAME.tmp` and fsyncs it.
    pub fn stage(&mut self, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
        assert!(
            !name.contains('/') && !name.starts_with('.'),
            "file names are plain: {name}"
        );
        let temporary = self.dir.join(format!(".{name}.tmp"));
        self.staged.push((temporary.clone(), name.to_string()));
        write_and_sync(&temporary, bytes)?;
        crate::failpoint::hit("export.after_stage");
        Ok(())
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

impl Drop for StagedFiles {
    /// An export that did not publish leaves nothing behind.
    fn drop(&mut self) {
        if !self.published {
            for (temporary, _) in &self.staged {
                let _ = std::fs::remove_file(temporary);
            }
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
}
