//! Staging directories next to each destination, and moving a verified tree into place.
//!
//! A restore unpacks into `<parent>/.cachectl-staging-<pid>-<n>/root` (the destination's
//! filesystem, so placing is a rename), holding `<staging>/lock` locked for as long as it runs,
//! and places the trees only once the archive's digest has been checked:
//!
//! - [`Placement::Replace`] (the default): the destination becomes exactly the cached tree. An
//!   existing destination is swapped with the staged tree in one `renameat2(RENAME_EXCHANGE)`,
//!   so a crash at any instant leaves the old tree or the new one, never a mix; the old tree is
//!   left in the staging directory, renamed `.cachectl-trash-*`, for the caller to remove off
//!   the build's critical path.
//! - [`Placement::Merge`]: the cached tree is laid over the destination; what the destination
//!   has that the cache lacks stays. Each file is renamed over its old version, so no file that
//!   is in both versions is ever missing.
//!
//! With several paths, every path gets the new tree or none does: a path that cannot be placed
//! undoes the swaps already made. Staging and trash left by a killed restore (its lock is free)
//! are collected by the next restore beside the same destination.

use super::long::short;
use super::Error;
use rustix::fs::{renameat_with, RenameFlags, CWD};
use std::fs::{self, File, Permissions};
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

pub const STAGING_PREFIX: &str = ".cachectl-staging-";
/// A directory holding a replaced tree (or stale staging), waiting to be removed.
pub const TRASH_PREFIX: &str = ".cachectl-trash-";
/// Held locked by the restore that owns the staging directory; free once that process is gone.
const LOCK: &str = "lock";
/// The lock file before it is locked.
const LOCK_NEW: &str = "lock.new";

/// How a restored tree meets what is already at its destination.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Placement {
    /// The destination becomes exactly the cached tree, swapped in atomically.
    #[default]
    Replace,
    /// The cached tree is laid over the destination, file by file; other files stay.
    Merge,
}

/// One destination and the staging directory that feeds it. Dropping it without committing
/// removes the staging directory (an error, a panic, a signal).
#[derive(Debug)]
pub struct Staged {
    pub dest: PathBuf,
    placement: Placement,
    dir: PathBuf,
    /// The staging directory is inside `dest` (its parent could not be written, or `dest`
    /// cannot be renamed).
    inside: bool,
    /// Paths relative to `dest` that a replace carries over from the old tree (the local
    /// store, which a save never archives, must not go out with the old tree).
    keep: Vec<PathBuf>,
    /// Locked for the life of the staging directory.
    _lock: File,
}

impl Drop for Staged {
    fn drop(&mut self) {
        // Gone already once committed (renamed to trash); NotFound is the normal case then.
        let _ = remove_tree(&self.dir);
    }
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

impl Staged {
    /// Creates the staging directory beside `dest` (and `dest`'s missing parents), after
    /// renaming to trash the staging directories killed restores left there. Returns it and
    /// the trash found, for the caller to remove.
    ///
    /// Where `dest`'s parent cannot be written but `dest` is a directory that can (a user's own
    /// directory under a root-owned one, as `tar -x -C dest` would manage), the staging
    /// directory goes inside `dest` instead, and placing swaps its contents.
    pub fn create(
        dest: &Path,
        placement: Placement,
        keep: Vec<PathBuf>,
    ) -> Result<(Self, Vec<PathBuf>), Error> {
        let dest = &lexical(dest);
        let parent = dest.parent().unwrap_or(Path::new("/"));
        let dest_md = fs::symlink_metadata(dest).ok().filter(|m| m.is_dir());
        let cwd = std::env::current_dir().ok().map(|c| lexical(&c));
        if placement == Placement::Replace
            && cwd
                .as_deref()
                .is_some_and(|c| c != dest && c.starts_with(dest))
        {
            // Replacing it would move the build's own working directory away.
            return Err(Error::HoldsWorkingDir {
                path: dest.to_path_buf(),
            });
        }
        fs::create_dir_all(parent).map_err(|e| write_err(parent, e))?;
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("{STAGING_PREFIX}{}-{n}", std::process::id());
        // Staging goes inside the destination when the destination itself cannot be renamed:
        // it is a mount point (staging beside it would be another filesystem), or the working
        // directory (renaming it would leave the build in the trash).
        let pinned = dest_md.as_ref().is_some_and(|m| {
            cwd.as_deref() == Some(dest)
                || fs::symlink_metadata(parent).is_ok_and(|p| p.dev() != m.dev())
        });
        let beside = if pinned {
            None
        } else {
            match fs::create_dir(parent.join(&name)) {
                Ok(()) => Some(parent.join(&name)),
                Err(e) if e.kind() == io::ErrorKind::PermissionDenied && dest_md.is_some() => None,
                Err(e) => return Err(write_err(&parent.join(&name), e)),
            }
        };
        let (dir, inside) = match beside {
            Some(dir) => (dir, false),
            None => {
                let inner = dest.join(&name);
                create_dir_owned(&inner, dest).map_err(|e| write_err(&inner, e))?;
                (inner, true)
            }
        };
        // The lock file gets its name only once it is locked: a restore looking for stale
        // staging in between must see no lock (and judge by the live pid), never a free one.
        let lock = File::create(dir.join(LOCK_NEW))
            .and_then(|f| f.lock().map(|()| f))
            .and_then(|f| fs::rename(dir.join(LOCK_NEW), dir.join(LOCK)).map(|()| f))
            .map_err(|e| {
                let _ = fs::remove_dir_all(&dir);
                write_err(&dir, e)
            })?;
        let trash = stale_in(if inside { dest } else { parent }, &dir);
        Ok((
            Staged {
                dest: dest.to_path_buf(),
                placement,
                dir,
                inside,
                keep,
                _lock: lock,
            },
            trash,
        ))
    }

    /// Where the unpacker writes this root (a directory or a single file).
    pub fn root(&self) -> PathBuf {
        self.dir.join("root")
    }

    /// The staging directory as trash: renamed so no restore mistakes it for work in progress.
    fn into_trash(self) -> Option<PathBuf> {
        let name = self.dir.file_name()?.to_string_lossy().into_owned();
        let trash = self
            .dir
            .with_file_name(name.replacen(STAGING_PREFIX, TRASH_PREFIX, 1));
        fs::rename(&self.dir, &trash).ok().map(|()| trash)
    }
}

/// Places every staged tree (see the module doc). The replacing swaps go first, then the
/// merges; when a path cannot be placed, the swapped paths get their old trees back, and the
/// error names the path. Returns trash directories (replaced trees) for the caller to remove.
///
/// Blocking: call it off the async workers.
pub fn commit_all(staged: Vec<Staged>) -> Result<Vec<PathBuf>, Error> {
    let (replace, merge): (Vec<Staged>, Vec<Staged>) = staged
        .into_iter()
        .partition(|s| s.placement == Placement::Replace);
    let mut done: Vec<(&Staged, Swapped)> = Vec::new();
    let placed = replace
        .iter()
        .try_for_each(|s| swap_in(s).map(|swapped| done.push((s, swapped))))
        .and_then(|()| {
            merge.iter().try_for_each(|s| {
                let root = s.root();
                match fs::symlink_metadata(&root) {
                    Ok(_) => move_into(&root, &s.dest),
                    Err(_) => Ok(()), // the archive had nothing for this path
                }
            })
        });
    if let Err(e) = placed {
        for (s, swapped) in done.iter().rev() {
            undo(s, swapped);
        }
        return Err(e);
    }
    // Staging that received an old tree becomes trash, as does the trash directory of a
    // contents swap; the rest is empty (merged, renamed away) and dropping removes it.
    let swaps: Vec<Swapped> = done.into_iter().map(|(_, s)| s).collect();
    let mut trash = Vec::new();
    for (s, swapped) in replace.into_iter().zip(swaps) {
        match swapped {
            Swapped::Exchanged => trash.extend(s.into_trash()),
            Swapped::Contents {
                trash: t,
                mode,
                mtime,
            } => {
                let dest = s.dest.clone();
                if mode & 0o200 == 0 {
                    // Read-only once it has the cached mode: nothing inside could be removed
                    // afterwards, so the old contents go now, off the background's hands.
                    let _ = remove_tree(&t);
                } else {
                    trash.push(t);
                }
                drop(s);
                let _ = fs::set_permissions(&dest, Permissions::from_mode(mode));
                let _ = filetime::set_file_mtime(&dest, mtime);
            }
            Swapped::Renamed | Swapped::Untouched => {}
        }
    }
    Ok(trash)
}

/// What one swap did, to undo it.
enum Swapped {
    /// The staged tree was renamed onto an absent destination.
    Renamed,
    /// The staged tree and the old destination traded places.
    Exchanged,
    /// The destination's contents were swapped (staging inside it): the old ones went to
    /// `trash`, the new ones were moved in; the cached tree's `mode` and `mtime` are applied
    /// to the destination once staging is gone (a read-only mode would keep it from going).
    Contents {
        trash: PathBuf,
        mode: u32,
        mtime: filetime::FileTime,
    },
    /// The archive had nothing for this path; the destination was left as it was.
    Untouched,
}

fn swap_in(s: &Staged) -> Result<Swapped, Error> {
    let root = s.root();
    let Ok(root_md) = fs::symlink_metadata(&root) else {
        return Ok(Swapped::Untouched);
    };
    if s.inside {
        return swap_contents(s, &root, &root_md);
    }
    let movable = Movable::new(&root, &root_md)?;
    let result = match fs::symlink_metadata(&s.dest) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => fs::rename(&root, &s.dest)
            .map(|()| Swapped::Renamed)
            .map_err(|e| write_err(&s.dest, e)),
        Err(e) => Err(write_err(&s.dest, e)),
        Ok(dest_md) => {
            let dest_movable = Movable::new(&s.dest, &dest_md)?;
            let exchange = || renameat_with(CWD, &root, CWD, &s.dest, RenameFlags::EXCHANGE);
            let swapped = exchange()
                .map_err(|e| write_err(&s.dest, e.into()))
                .and_then(|()| {
                    // The old tree is at `root` now; what it must keep goes to the new one.
                    carry_over(&s.keep, &root, &s.dest).inspect_err(|_| {
                        let _ = exchange();
                    })
                })
                .map(|()| Swapped::Exchanged);
            // After the exchange the old tree is at `root`, on its way to the trash.
            dest_movable.restore_at(if swapped.is_ok() { &root } else { &s.dest });
            swapped
        }
    };
    movable.restore_at(if result.is_ok() { &s.dest } else { &root });
    result
}

/// Staging inside the destination (its parent is not ours to write): the destination cannot
/// be renamed, so its contents are: the old ones into a trash directory inside it, the new
/// ones in. Not atomic (a crash in between leaves some of each, which the next restore
/// replaces); chosen only where the atomic swap is impossible.
fn swap_contents(s: &Staged, root: &Path, root_md: &fs::Metadata) -> Result<Swapped, Error> {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let trash = s
        .dest
        .join(format!("{TRASH_PREFIX}{}-{n}", std::process::id()));
    fs::create_dir(&trash).map_err(|e| write_err(&trash, e))?;
    // Entries leave the staged root, which may hold a cached read-only mode until the end.
    let _root_writable = Movable::new(root, root_md)?;
    let skip = stays_in(&s.dest);
    if let Err(e) = move_children(&s.dest, &trash, &skip) {
        // Some entries may have gone already: they go back before anything else happens.
        let _ = move_children(&trash, &s.dest, |_| false);
        rescue(&trash);
        return Err(e);
    }
    let moved_in =
        move_children(root, &s.dest, |_| false).and_then(|()| carry_over(&s.keep, &trash, &s.dest));
    if let Err(e) = moved_in {
        let _ = move_children(&s.dest, root, &skip);
        let _ = move_children(&trash, &s.dest, |_| false);
        rescue(&trash);
        return Err(e);
    }
    Ok(Swapped::Contents {
        trash,
        mode: root_md.permissions().mode() & 0o7777,
        mtime: filetime::FileTime::from_last_modification_time(root_md),
    })
}

/// What a contents swap of `dest` leaves where it is: cachectl's own staging and trash, and
/// mount points (another filesystem cannot be renamed into this one; like `rm
/// --one-file-system`, a replace leaves them alone).
fn stays_in(dest: &Path) -> impl Fn(&std::ffi::OsStr) -> bool + '_ {
    // A bind mount of the same filesystem has the same device number: the mount table is what
    // tells (only mounts directly inside `dest` can be among its entries).
    let mounts = mounts_under(dest);
    let here = lexical(dest);
    move |name: &std::ffi::OsStr| {
        let text = name.to_string_lossy();
        text.starts_with(STAGING_PREFIX)
            || text.starts_with(TRASH_PREFIX)
            || mounts.contains(&here.join(name))
    }
}

/// After a failed contents swap: an empty trash directory goes; one that still holds entries
/// (a move back failed too) is renamed so that no later restore mistakes it for trash and
/// deletes what may be a user's files.
fn rescue(trash: &Path) {
    if fs::remove_dir(trash).is_ok() {
        return;
    }
    if let Some(name) = trash.file_name() {
        let kept = name
            .to_string_lossy()
            .replacen(TRASH_PREFIX, ".cachectl-rescued-", 1);
        let _ = fs::rename(trash, trash.with_file_name(kept));
    }
}

/// Renames every entry of `from` (but those `skip` names) into `to`.
fn move_children(
    from: &Path,
    to: &Path,
    skip: impl Fn(&std::ffi::OsStr) -> bool,
) -> Result<(), Error> {
    let skip = &skip;
    for e in fs::read_dir(from).map_err(|e| write_err(from, e))? {
        let e = e.map_err(|e| write_err(from, e))?;
        if skip(&e.file_name()) {
            continue;
        }
        let (src, dst) = (e.path(), to.join(e.file_name()));
        let md = fs::symlink_metadata(&src).map_err(|e| write_err(&src, e))?;
        let movable = Movable::new(&src, &md)?;
        let moved = fs::rename(&src, &dst).map_err(|e| write_err(&dst, e));
        movable.restore_at(if moved.is_ok() { &dst } else { &src });
        moved?;
    }
    Ok(())
}

/// Moves each `keep` path (relative) from the old tree at `old` to the same place in the new
/// tree at `new`, creating its parents there; all or none.
fn carry_over(keep: &[PathBuf], old: &Path, new: &Path) -> Result<(), Error> {
    let mut moved: Vec<&PathBuf> = Vec::new();
    for rel in keep {
        let (from, to) = (old.join(rel), new.join(rel));
        if lstat(&from).is_err() {
            continue;
        }
        let result = to
            .parent()
            .map_or(Ok(()), fs::create_dir_all)
            .and_then(|()| rename(&from, &to))
            .map_err(|e| write_err(&to, e));
        if let Err(e) = result {
            for rel in moved.into_iter().rev() {
                let _ = rename(&new.join(rel), &old.join(rel));
            }
            return Err(e);
        }
        moved.push(rel);
    }
    Ok(())
}

/// `path` made absolute and with `.` and `..` resolved by name (`/w/p/.` -> `/w/p`), as the
/// kernel would reach it through real directories.
pub fn lexical(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::from("/");
    let base = if path.is_absolute() {
        PathBuf::new()
    } else {
        std::env::current_dir().unwrap_or_default()
    };
    for c in base.components().chain(path.components()) {
        match c {
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => out.push(n),
        }
    }
    out
}

/// `create_dir(dir)`; where that is denied inside `owner`, a directory of ours that is read-only
/// (a cached `0555` tree), `owner` is made writable first, as `tar -x` would need too.
fn create_dir_owned(dir: &Path, owner: &Path) -> io::Result<()> {
    match fs::create_dir(dir) {
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            let md = fs::symlink_metadata(owner)?;
            if md.uid() != rustix::process::geteuid().as_raw() {
                return Err(e);
            }
            let mode = md.permissions().mode() & 0o7777;
            fs::set_permissions(owner, Permissions::from_mode(mode | 0o700))?;
            fs::create_dir(dir)
        }
        other => other,
    }
}

/// Puts a path back as it was before [`swap_in`]; best effort (a failure here leaves the new
/// tree in place, which the caller's error still reports).
fn undo(s: &Staged, swapped: &Swapped) {
    let root = s.root();
    let _ = match swapped {
        Swapped::Renamed => fs::rename(&s.dest, &root),
        Swapped::Exchanged => {
            renameat_with(CWD, &root, CWD, &s.dest, RenameFlags::EXCHANGE).map_err(io::Error::from)
        }
        Swapped::Contents { trash, .. } => {
            let _ = move_children(&s.dest, &root, stays_in(&s.dest));
            let _ = move_children(trash, &s.dest, |_| false);
            rescue(trash);
            Ok(())
        }
        Swapped::Untouched => Ok(()),
    };
}

/// A directory that is about to move to another parent must be writable (its `..` entry
/// changes): made so for the move, its mode put back after.
struct Movable {
    mode: Option<u32>,
}

impl Movable {
    fn new(path: &Path, md: &fs::Metadata) -> Result<Self, Error> {
        let mode = md.permissions().mode() & 0o7777;
        if !md.is_dir() || mode & 0o700 == 0o700 {
            return Ok(Movable { mode: None });
        }
        short(path)
            .and_then(|p| fs::set_permissions(p, Permissions::from_mode(mode | 0o700)))
            .map_err(|e| write_err(path, e))?;
        Ok(Movable { mode: Some(mode) })
    }

    fn restore_at(self, path: &Path) {
        if let (Some(mode), Ok(p)) = (self.mode, short(path)) {
            let _ = fs::set_permissions(p, Permissions::from_mode(mode));
        }
    }
}

fn write_err(path: &Path, source: io::Error) -> Error {
    Error::Write {
        path: path.to_path_buf(),
        source,
    }
}

/// Lays `src` over `dst`: directories merge, anything else replaces what it collides with by a
/// rename over it (so a file in both versions is never missing); a symlinked `dst` is
/// replaced, never followed.
fn move_into(src: &Path, dst: &Path) -> Result<(), Error> {
    let src_md = lstat(src).map_err(|e| write_err(src, e))?;
    match lstat(dst) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let movable = Movable::new(src, &src_md)?;
            let moved = rename(src, dst).map_err(|e| write_err(dst, e));
            movable.restore_at(if moved.is_ok() { dst } else { src });
            moved
        }
        Err(e) => Err(write_err(dst, e)),
        Ok(dst_md) if dst_md.is_dir() && src_md.is_dir() => {
            // Both writable while entries move (out of the staged one, into the old one); the
            // cached mode is applied after, and the old one's put back if a move fails.
            let dst_mode = Movable::new(dst, &dst_md)?;
            Movable::new(src, &src_md)?;
            let moved = short(src)
                .and_then(fs::read_dir)
                .map_err(|e| write_err(src, e))
                .and_then(|entries| {
                    entries.into_iter().try_for_each(|ent| {
                        let ent = ent.map_err(|e| write_err(src, e))?;
                        move_into(&src.join(ent.file_name()), &dst.join(ent.file_name()))
                    })
                });
            if let Err(e) = moved {
                dst_mode.restore_at(dst);
                return Err(e);
            }
            let d = short(dst).map_err(|e| write_err(dst, e))?;
            fs::set_permissions(&d, src_md.permissions()).map_err(|e| write_err(dst, e))?;
            let mtime = filetime::FileTime::from_last_modification_time(&src_md);
            filetime::set_file_mtime(&d, mtime).map_err(|e| write_err(dst, e))?;
            Ok(())
        }
        // A file over a directory or the other way round: the old one must go first.
        Ok(dst_md) if dst_md.is_dir() || src_md.is_dir() => {
            if dst_md.is_dir() {
                remove_tree(dst).map_err(|e| write_err(dst, e))?;
            } else {
                short(dst)
                    .and_then(fs::remove_file)
                    .map_err(|e| write_err(dst, e))?;
            }
            move_into(src, dst)
        }
        Ok(_) => rename(src, dst).map_err(|e| write_err(dst, e)),
    }
}

/// `symlink_metadata` for a path of any length.
fn lstat(path: &Path) -> io::Result<fs::Metadata> {
    short(path).and_then(fs::symlink_metadata)
}

/// `rename` for paths of any length.
fn rename(from: &Path, to: &Path) -> io::Result<()> {
    let from = short(from)?;
    short(to).and_then(|to| fs::rename(&from, to))
}

/// Removes a tree, making its directories writable first where a read-only one (a cached
/// `0555` directory) stands in the way, as an unprivileged user must.
///
/// Never crosses into another filesystem: a mount inside the tree (a bind mount a build made)
/// is left mounted with its contents, and so are the directories above it.
pub fn remove_tree(path: &Path) -> io::Result<()> {
    let mounts = mounts_under(path);
    if !mounts.is_empty() {
        return remove_around(path, &mounts);
    }
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            make_writable(path);
            fs::remove_dir_all(path)
        }
        other => other,
    }
}

/// Mount points strictly under `path`, from `/proc/self/mountinfo` (field 5, with the
/// kernel's octal escapes for space, tab, newline and backslash).
fn mounts_under(path: &Path) -> Vec<PathBuf> {
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let path = lexical(path);
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| PathBuf::from(unescape_mount(m)))
        .filter(|m| m != &path && m.starts_with(&path))
        .collect()
}

fn unescape_mount(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (b[i], octal) {
            (b'\\', Some(d)) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Removes what can be removed under `path` without entering `mounts` or their ancestors'
/// other entries' filesystems: every entry not on a mount's way is removed whole.
fn remove_around(path: &Path, mounts: &[PathBuf]) -> io::Result<()> {
    let on_way = |p: &Path| mounts.iter().any(|m| m.starts_with(p));
    make_writable_dir(path);
    for e in fs::read_dir(path)? {
        let p = e?.path();
        if mounts.contains(&lexical(&p)) {
            continue;
        }
        let _ = if on_way(&lexical(&p)) {
            remove_around(&p, mounts)
        } else if fs::symlink_metadata(&p)?.is_dir() {
            remove_tree(&p)
        } else {
            fs::remove_file(&p)
        };
    }
    fs::remove_dir(path)
}

fn make_writable_dir(dir: &Path) {
    if let Ok(md) = fs::symlink_metadata(dir) {
        let mode = md.permissions().mode();
        if md.is_dir() && mode & 0o700 != 0o700 {
            let _ = fs::set_permissions(dir, Permissions::from_mode(mode | 0o700));
        }
    }
}

fn make_writable(dir: &Path) {
    let Ok(md) = lstat(dir) else {
        return;
    };
    if !md.is_dir() {
        return;
    }
    let mode = md.permissions().mode();
    if mode & 0o700 != 0o700 {
        if let Ok(d) = short(dir) {
            let _ = fs::set_permissions(&d, Permissions::from_mode(mode | 0o700));
        }
    }
    if let Ok(entries) = short(dir).and_then(fs::read_dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                make_writable(&dir.join(e.file_name()));
            }
        }
    }
}

/// Staging left in `parent` by restores that are gone (their lock is free, or, without a lock,
/// their process is), renamed to trash; and trash nobody finished removing. `own` is this
/// restore's staging directory, made just before.
fn stale_in(parent: &Path, own: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(parent) else {
        return Vec::new();
    };
    let mut trash = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let path = e.path();
        if path == own {
            continue;
        }
        if name.starts_with(TRASH_PREFIX) {
            trash.push(path);
        } else if let Some(rest) = name.strip_prefix(STAGING_PREFIX) {
            if owner_gone(&path, rest) {
                let to = parent.join(format!("{TRASH_PREFIX}{rest}"));
                if fs::rename(&path, &to).is_ok() {
                    trash.push(to);
                }
            }
        }
    }
    trash
}

/// Whether the restore that made the staging directory `dir` (named `<pid>-<n>`) is gone.
fn owner_gone(dir: &Path, pid_n: &str) -> bool {
    match File::open(dir.join(LOCK)) {
        // The lock is released by the kernel when its holder dies, whatever killed it.
        Ok(lock) => lock.try_lock().is_ok(),
        // Made by a cachectl that took no lock, or killed before it took it: judged by its pid,
        // erring on keeping (a pid that exists may be another process: the directory stays).
        Err(_) => pid_n
            .split('-')
            .next()
            .and_then(|pid| pid.parse::<u32>().ok())
            .is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn staged(dest: &Path, placement: Placement) -> Staged {
        Staged::create(dest, placement, Vec::new()).unwrap().0
    }

    #[test]
    fn commit_renames_into_absent_destination() {
        let t = tempfile::tempdir().unwrap();
        let dest = t.path().join("a/b/node_modules");
        let s = staged(&dest, Placement::Replace);
        fs::create_dir(s.root()).unwrap();
        fs::write(s.root().join("x"), "1").unwrap();
        let trash = commit_all(vec![s]).unwrap();
        for t in trash {
            remove_tree(&t).unwrap();
        }
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
        let s = staged(&dest, Placement::Merge);
        fs::create_dir_all(s.root().join("sub")).unwrap();
        fs::write(s.root().join("sub/evil"), "x").unwrap();
        fs::write(s.root().join("replace"), "new").unwrap();
        commit_all(vec![s]).unwrap();
        assert_eq!(fs::read_to_string(dest.join("keep")).unwrap(), "user file");
        assert_eq!(fs::read_to_string(dest.join("replace")).unwrap(), "new");
        assert!(dest.join("sub").symlink_metadata().unwrap().is_dir());
        assert!(!outside.join("evil").exists(), "wrote through a symlink");
    }

    #[test]
    fn replace_makes_the_destination_exactly_the_cached_tree() {
        let t = tempfile::tempdir().unwrap();
        let dest = t.path().join("node_modules");
        fs::create_dir_all(dest.join("removed-pkg")).unwrap();
        fs::write(dest.join("removed-pkg/index.js"), "old").unwrap();
        fs::write(dest.join("kept.js"), "old").unwrap();
        let s = staged(&dest, Placement::Replace);
        fs::create_dir(s.root()).unwrap();
        fs::write(s.root().join("kept.js"), "new").unwrap();
        let trash = commit_all(vec![s]).unwrap();
        assert_eq!(trash.len(), 1);
        assert_eq!(
            fs::read_to_string(trash[0].join("root/removed-pkg/index.js")).unwrap(),
            "old",
            "the old tree waits in the trash"
        );
        let names: Vec<_> = fs::read_dir(&dest)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["kept.js"]);
        assert_eq!(fs::read_to_string(dest.join("kept.js")).unwrap(), "new");
    }

    #[test]
    fn stale_staging_is_trash_and_live_staging_stays() {
        let t = tempfile::tempdir().unwrap();
        let dest = t.path().join("deps");
        // Killed long ago: its lock is free.
        let dead = t.path().join(format!("{STAGING_PREFIX}1-0"));
        fs::create_dir_all(dead.join("root/ro")).unwrap();
        File::create(dead.join(LOCK)).unwrap();
        fs::set_permissions(dead.join("root/ro"), Permissions::from_mode(0o555)).unwrap();
        // In use: its lock is held (here, by this process).
        let live = t.path().join(format!("{STAGING_PREFIX}2-0"));
        fs::create_dir_all(&live).unwrap();
        let held = File::create(live.join(LOCK)).unwrap();
        held.lock().unwrap();
        let (s, trash) = Staged::create(&dest, Placement::Replace, Vec::new()).unwrap();
        assert_eq!(trash, [t.path().join(format!("{TRASH_PREFIX}1-0"))]);
        for t in &trash {
            remove_tree(t).unwrap();
        }
        assert!(live.exists(), "a staging directory in use was touched");
        drop(s);
        drop(held);
    }
}
