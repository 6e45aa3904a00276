//! Paths longer than the kernel takes in one call (`PATH_MAX`, 4,096 bytes), which a deep
//! `node_modules` or a Maven repository can reach and GNU tar handles: a path past [`LIMIT`]
//! is opened component by component as directory handles (`openat` with `O_PATH`), and handed
//! to the usual calls as `/proc/self/fd/<handle>/<rest>`, a short path to the same place.
//! Shorter paths pass through untouched, so the common case costs one length check.

use rustix::fs::{openat, Mode, OFlags, CWD};
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// Paths up to this many bytes are used as they are. Well under `PATH_MAX`, so the handle
/// prefix (`/proc/self/fd/<n>/`) and the last chunk always fit.
const LIMIT: usize = 3072;

/// A path the kernel takes in one call, and the directory handles that keep it valid.
#[derive(Debug)]
pub struct Short {
    path: PathBuf,
    _handles: Vec<OwnedFd>,
}

impl AsRef<Path> for Short {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

/// `path` as a path the kernel takes: itself when short enough, else through directory
/// handles opened along it (every component but the last must be a directory; they are
/// followed as `open` would follow them).
///
/// Errors: opening a directory on the way (it does not exist, is not a directory, or cannot be
/// searched).
pub fn short(path: &Path) -> io::Result<Short> {
    if path.as_os_str().len() <= LIMIT {
        return Ok(Short {
            path: path.to_path_buf(),
            _handles: Vec::new(),
        });
    }
    let mut components: Vec<Component<'_>> = path.components().collect();
    let last = components.pop();
    let mut handles: Vec<OwnedFd> = Vec::new();
    let mut chunk = PathBuf::new();
    for c in components {
        let len = c.as_os_str().as_bytes().len();
        if !chunk.as_os_str().is_empty() && chunk.as_os_str().len() + len + 1 > LIMIT {
            handles.push(open_dir(handles.last(), &chunk)?);
            chunk = PathBuf::new();
        }
        chunk.push(c);
    }
    if chunk.as_os_str().len() + last.map_or(0, |c| c.as_os_str().len()) + 1 > LIMIT {
        handles.push(open_dir(handles.last(), &chunk)?);
        chunk = PathBuf::new();
    }
    let mut short = match handles.last() {
        Some(h) => PathBuf::from(format!("/proc/self/fd/{}", h.as_raw_fd())),
        None => PathBuf::new(),
    };
    short.push(chunk);
    if let Some(last) = last {
        short.push(last);
    }
    Ok(Short {
        path: short,
        _handles: handles,
    })
}

/// Opens `rel` (relative to `at`, or to the working directory) as a directory handle.
fn open_dir(at: Option<&OwnedFd>, rel: &Path) -> io::Result<OwnedFd> {
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let fd = match at {
        Some(at) => openat(at.as_fd(), rel, flags, Mode::empty()),
        None => openat(CWD, rel, flags, Mode::empty()),
    };
    fd.map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// 21 directories of 200 bytes: ~4.2 KB of path, past PATH_MAX.
    fn deep(root: &Path) -> PathBuf {
        let mut p = root.to_path_buf();
        for i in 0..21 {
            p.push(format!("{i:02}{}", "d".repeat(198)));
        }
        p
    }

    #[test]
    fn short_paths_pass_through() {
        let s = short(Path::new("/tmp/a/b")).unwrap();
        assert_eq!(s.as_ref(), Path::new("/tmp/a/b"));
    }

    #[test]
    fn paths_past_path_max_work_through_handles() {
        let t = tempfile::tempdir().unwrap();
        let dir = deep(t.path());
        assert!(dir.as_os_str().len() > 4096);
        // Creating each level through `short` (the parent exists each time).
        let mut p = t.path().to_path_buf();
        for c in dir.strip_prefix(t.path()).unwrap().components() {
            p.push(c);
            fs::create_dir(short(&p).unwrap()).unwrap();
        }
        let file = dir.join("f.txt");
        fs::write(short(&file).unwrap(), "deep").unwrap();
        assert_eq!(fs::read_to_string(short(&file).unwrap()).unwrap(), "deep");
        assert!(
            fs::metadata(&file).is_err(),
            "the plain path is too long for the kernel"
        );
    }
}
