//! Staging directories next to each destination, and moving a verified tree into place.
//!
//! Restores unpack into `<parent>/.cachectl-staging-*` (same filesystem as the destination, so
//! the final move is a rename) and only move once the archive's digest has been checked.

use super::Error;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

pub const STAGING_PREFIX: &str = ".cachectl-staging-";

/// One destination and the staging directory that feeds it.
/// Dropping it without `commit` removes the staging directory (an error, a panic, a signal).
#[derive(Debug)]
pub struct Staged {
    pub dest: PathBuf,
    dir: PathBuf,
}

impl Drop for Staged {
    fn drop(&mut self) {
        // Gone already after commit; NotFound is the normal case then.
        let _ = fs::remove_dir_all(&self.dir);
    }
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

impl Staged {
    /// Creates the staging directory beside `dest` (and `dest`'s missing parents).
    pub fn create(dest: &Path) -> Result<Self, Error> {
        let parent = dest.parent().unwrap_or(Path::new("/"));
        fs::create_dir_all(parent).map_err(|e| write_err(parent, e))?;
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = parent.join(format!("{STAGING_PREFIX}{}-{n}", std::process::id()));
        fs::create_dir(&dir).map_err(|e| write_err(&dir, e))?;
        Ok(Staged {
            dest: dest.to_path_buf(),
            dir,
        })
    }

    /// Where the unpacker writes this root (a directory or a single file).
    pub fn root(&self) -> PathBuf {
        self.dir.join("root")
    }

    /// Moves the staged tree onto `dest`: a rename when `dest` is absent, else a merge where
    /// staged entries replace what they collide with and other existing files are kept.
    pub fn commit(self) -> Result<(), Error> {
        let root = self.root();
        if fs::symlink_metadata(&root).is_ok() {
            move_into(&root, &self.dest)
        } else {
            Ok(()) // the archive had nothing for this path
        }
        // Drop removes the (now empty) staging directory.
    }
}

fn write_err(path: &Path, source: io::Error) -> Error {
    Error::Write {
        path: path.to_path_buf(),
        source,
    }
}

fn move_into(src: &Path, dst: &Path) -> Result<(), Error> {
    let src_md = fs::symlink_metadata(src).map_err(|e| write_err(src, e))?;
    match fs::symlink_metadata(dst) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::rename(src, dst).map_err(|e| write_err(dst, e))
        }
        Err(e) => Err(write_err(dst, e)),
        // Both real directories (a symlinked `dst` is replaced, never followed): merge.
        Ok(dst_md) if dst_md.is_dir() && src_md.is_dir() => {
            for ent in fs::read_dir(src).map_err(|e| write_err(src, e))? {
                let ent = ent.map_err(|e| write_err(src, e))?;
                move_into(&ent.path(), &dst.join(ent.file_name()))?;
            }
            fs::set_permissions(dst, src_md.permissions()).map_err(|e| write_err(dst, e))?;
            let mtime = filetime::FileTime::from_last_modification_time(&src_md);
            filetime::set_file_mtime(dst, mtime).map_err(|e| write_err(dst, e))?;
            Ok(())
        }
        Ok(dst_md) => {
            if dst_md.is_dir() {
                fs::remove_dir_all(dst).map_err(|e| write_err(dst, e))?;
            } else {
                fs::remove_file(dst).map_err(|e| write_err(dst, e))?;
            }
            fs::rename(src, dst).map_err(|e| write_err(dst, e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn commit_renames_into_absent_destination() {
        let t = tempfile::tempdir().unwrap();
        let dest = t.path().join("a/b/node_modules");
        let s = Staged::create(&dest).unwrap();
        fs::create_dir(s.root()).unwrap();
        fs::write(s.root().join("x"), "1").unwrap();
        s.commit().unwrap();
        assert_eq!(fs::read_to_string(dest.join("x")).unwrap(), "1");
        let left: Vec<_> = fs::read_dir(t.path().join("a/b")).unwrap().collect();
        assert_eq!(left.len(), 1, "staging directory removed");
    }

    #[test]
    fn commit_merges_and_never_follows_destination_symlinks() {
        let t = tempfile::tempdir().unwrap();
        let outside = t.path().join("outside");
        fs::create_dir(&outside).unwrap();
        let dest = t.path().join("dest");
        fs::create_dir(&dest).unwrap();
        fs::write(dest.join("keep"), "user file").unwrap();
        fs::write(dest.join("replace"), "old").unwrap();
        symlink(&outside, dest.join("sub")).unwrap();
        let s = Staged::create(&dest).unwrap();
        fs::create_dir_all(s.root().join("sub")).unwrap();
        fs::write(s.root().join("sub/evil"), "x").unwrap();
        fs::write(s.root().join("replace"), "new").unwrap();
        s.commit().unwrap();
        assert_eq!(fs::read_to_string(dest.join("keep")).unwrap(), "user file");
        assert_eq!(fs::read_to_string(dest.join("replace")).unwrap(), "new");
        assert!(dest.join("sub").symlink_metadata().unwrap().is_dir());
        assert!(!outside.join("evil").exists(), "wrote through a symlink");
    }
}
