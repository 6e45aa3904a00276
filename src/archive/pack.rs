//! Save side: walk each root (never following symlinks) and write a deterministic PAX tar.

use super::long::short;
use super::place::{STAGING_PREFIX, TRASH_PREFIX};
use super::{entry_name, Error};
use crate::timings;
use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use tar::{EntryType, Header};

/// How many left-out files a save names; the rest are counted.
pub const NAMED_SKIPS: usize = 5;

#[derive(Debug, Default, Clone)]
pub struct PackStats {
    /// Tar entries written (PAX headers not counted).
    pub entries: u64,
    /// Bytes of regular-file content.
    pub file_bytes: u64,
    /// Bytes of the uncompressed tar stream.
    pub tar_bytes: u64,
    /// Sockets, FIFOs and devices left out.
    pub skipped_special: u64,
    /// The first [`NAMED_SKIPS`] of them: (index of the root in the path set, path below it,
    /// what it is), for the warning that names them.
    pub skipped_examples: Vec<(usize, PathBuf, &'static str)>,
    /// cachectl's own directories and files found in the tree and left out (the store the save
    /// writes to, staging, state files), by path or name.
    pub own_left_out: Vec<String>,
}

/// Counts the bytes of the tar stream on their way to the compressor.
struct Counting<W> {
    inner: W,
    count: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// What a save never archives, besides its own staging and state files (recognised by name):
/// directories and files given by path (the local store the save writes to), matched by device
/// and inode, so any spelling of the path, or a link to it, is recognised.
#[derive(Debug, Default)]
pub struct Exclude {
    own: Vec<(u64, u64, PathBuf)>,
}

impl Exclude {
    /// `paths` that exist; the others are ignored.
    pub fn new(paths: &[PathBuf]) -> Self {
        Exclude {
            own: paths
                .iter()
                .filter_map(|p| fs::metadata(p).ok().map(|m| (m.dev(), m.ino(), p.clone())))
                .collect(),
        }
    }

    /// Why `md` at `name` is cachectl's own, if it is.
    fn own(&self, name: &std::ffi::OsStr, md: &fs::Metadata) -> Option<String> {
        if let Some((_, _, path)) = self
            .own
            .iter()
            .find(|(d, i, _)| (*d, *i) == (md.dev(), md.ino()))
        {
            return Some(path.display().to_string());
        }
        let name = name.to_string_lossy();
        let by_name = [STAGING_PREFIX, TRASH_PREFIX, STATE_PREFIX]
            .iter()
            .any(|p| name.starts_with(p));
        by_name.then(|| name.into_owned())
    }
}

/// State files of the restore -> save handoff (`state.rs`): `cachectl-state-<build>.json`.
pub const STATE_PREFIX: &str = "cachectl-state-";

/// Writes the tar stream for `roots` (index in the path set, absolute path) into `out`,
/// leaving out what `exclude` names and cachectl's own staging and state files.
///
/// Roots that do not exist are skipped (the caller reports them). A root that is a symlink
/// stands for what it points to (docs/FORMAT.md); links inside the tree stay links. Returns
/// `out` so the caller can finish the compressor behind it.
pub fn pack<W: Write>(
    roots: &[(usize, PathBuf)],
    exclude: &Exclude,
    out: W,
) -> Result<(W, PackStats), Error> {
    let mut w = Packer {
        out: Counting {
            inner: io::BufWriter::with_capacity(256 * 1024, out),
            count: 0,
        },
        stats: PackStats::default(),
        links: HashMap::new(),
        buf: vec![0u8; 1024 * 1024],
        exclude,
    };
    for (index, root) in roots {
        w.pack_root(*index, root)?;
    }
    // Two zero blocks end a tar stream.
    w.out.write_all(&[0u8; 1024]).map_err(Error::Stream)?;
    w.stats.tar_bytes = w.out.count;
    let stats = w.stats;
    let inner = w
        .out
        .inner
        .into_inner()
        .map_err(|e| Error::Stream(e.into_error()))?;
    Ok((inner, stats))
}

struct Packer<'a, W: Write> {
    out: Counting<io::BufWriter<W>>,
    stats: PackStats,
    /// (dev, inode) of multiply-linked files already written -> their entry name.
    links: HashMap<(u64, u64), Vec<u8>>,
    buf: Vec<u8>,
    exclude: &'a Exclude,
}

impl<W: Write> Packer<'_, W> {
    fn pack_root(&mut self, index: usize, root: &Path) -> Result<(), Error> {
        // The root is followed when it is a link: `~/.cargo -> /data/cargo` caches the
        // content. Everything inside is taken as it is: links stay links.
        let md = short(root)
            .and_then(fs::metadata)
            .map_err(|source| Error::Read {
                path: root.to_path_buf(),
                source,
            })?;
        self.visit(index, root, Path::new(""), &md, true)
    }

    /// Writes the entry at `root/rel`, then (a directory) its entries, sorted by name so the
    /// stream is deterministic: same tree, same bytes. Every path goes through [`short`], so
    /// depth is not limited by `PATH_MAX`.
    fn visit(
        &mut self,
        index: usize,
        root: &Path,
        rel: &Path,
        md: &fs::Metadata,
        follow: bool,
    ) -> Result<(), Error> {
        let path = if rel.as_os_str().is_empty() {
            root.to_path_buf()
        } else {
            root.join(rel)
        };
        let read_err = |source| Error::Read {
            path: path.clone(),
            source,
        };
        if let Some(what) = self.exclude.own(path.file_name().unwrap_or_default(), md) {
            self.stats.own_left_out.push(what);
            return Ok(());
        }
        let name = entry_name(index, rel.as_os_str().as_bytes());
        if !self.append(&path, name, md, follow)? {
            self.skipped(index, rel, md.file_type());
        }
        if !md.is_dir() {
            return Ok(());
        }
        let mut names: Vec<std::ffi::OsString> = short(&path)
            .and_then(fs::read_dir)
            .and_then(|entries| entries.map(|e| e.map(|e| e.file_name())).collect())
            .map_err(read_err)?;
        names.sort_unstable();
        for n in names {
            let child = path.join(&n);
            let md = short(&child)
                .and_then(fs::symlink_metadata)
                .map_err(|source| Error::Read {
                    path: child.clone(),
                    source,
                })?;
            self.visit(index, root, &rel.join(&n), &md, false)?;
        }
        Ok(())
    }

    /// Counts (and names the first few of) what cannot be cached.
    fn skipped(&mut self, index: usize, rel: &Path, ft: fs::FileType) {
        use std::os::unix::fs::FileTypeExt;
        self.stats.skipped_special += 1;
        if self.stats.skipped_examples.len() < NAMED_SKIPS {
            let what = if ft.is_socket() {
                "socket"
            } else if ft.is_fifo() {
                "FIFO"
            } else if ft.is_block_device() {
                "block device"
            } else if ft.is_char_device() {
                "character device"
            } else {
                "special file"
            };
            self.stats
                .skipped_examples
                .push((index, rel.to_path_buf(), what));
        }
    }

    /// Writes the entry; `false` (and nothing written) for a file type tar cannot restore.
    fn append(
        &mut self,
        path: &Path,
        mut name: Vec<u8>,
        md: &fs::Metadata,
        follow: bool,
    ) -> Result<bool, Error> {
        let ft = md.file_type();
        let mode = md.mode() & 0o7777;
        let mtime = md.mtime();
        if ft.is_dir() {
            name.push(b'/');
            self.header(&name, EntryType::Directory, mode, mtime, 0, None)?;
        } else if ft.is_symlink() {
            let target = short(path)
                .and_then(fs::read_link)
                .map_err(|source| Error::Read {
                    path: path.to_path_buf(),
                    source,
                })?;
            self.header(
                &name,
                EntryType::Symlink,
                0o777,
                mtime,
                0,
                Some(target.as_os_str().as_bytes()),
            )?;
        } else if ft.is_file() {
            if md.nlink() > 1 {
                let id = (md.dev(), md.ino());
                if let Some(first) = self.links.get(&id).cloned() {
                    self.header(&name, EntryType::Link, mode, mtime, 0, Some(&first))?;
                    return Ok(true);
                }
                self.links.insert(id, name.clone());
            }
            self.header(&name, EntryType::Regular, mode, mtime, md.len(), None)?;
            self.content(path, md, follow)?;
        } else {
            return Ok(false);
        }
        Ok(true)
    }

    /// Writes the file's `md.len()` bytes, and makes sure they are one version of the file:
    /// a file that shrinks, grows, is rewritten or replaced while it is read fails the save
    /// ([`Error::Changed`]), so torn or padded content is never committed under a key.
    fn content(&mut self, path: &Path, md: &fs::Metadata, follow: bool) -> Result<(), Error> {
        let read_err = |source| Error::Read {
            path: path.to_path_buf(),
            source,
        };
        let changed = |why: String| Error::Changed {
            path: path.to_path_buf(),
            why,
        };
        let len = md.len();
        let mut file = short(path).and_then(File::open).map_err(read_err)?;
        let mut left = len;
        while left > 0 {
            let want = left.min(self.buf.len() as u64) as usize;
            let n = timings::WALK_READ
                .time(|| file.read(&mut self.buf[..want]))
                .map_err(read_err)?;
            if n == 0 {
                return Err(changed(format!(
                    "it shrank: {len} bytes when listed, {} read",
                    len - left
                )));
            }
            self.out.write_all(&self.buf[..n]).map_err(Error::Stream)?;
            left -= n as u64;
        }
        if file.read(&mut self.buf[..1]).map_err(read_err)? > 0 {
            return Err(changed(format!("it grew past the {len} bytes listed")));
        }
        // The path, after reading: gone, another inode (replaced since listing: what was read
        // is an old version), another size or mtime (written while read: not one version).
        let after = match short(path).and_then(|p| {
            if follow {
                fs::metadata(p)
            } else {
                fs::symlink_metadata(p)
            }
        }) {
            Ok(after) => after,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(changed("it was removed".into()))
            }
            Err(e) => return Err(read_err(e)),
        };
        if after.ino() != md.ino() || after.dev() != md.dev() {
            return Err(changed("it was replaced".into()));
        }
        if (after.len(), after.mtime(), after.mtime_nsec()) != (len, md.mtime(), md.mtime_nsec()) {
            return Err(changed("it was written to".into()));
        }
        // A writer that puts the mtime back (`touch -d`, tools preserving times) still moves
        // the change time, which only the kernel sets.
        if (after.ctime(), after.ctime_nsec()) != (md.ctime(), md.ctime_nsec()) {
            return Err(changed(
                "it was written to or its attributes changed (its change time moved)".into(),
            ));
        }
        self.stats.file_bytes += len;
        pad(&mut self.out, len).map_err(Error::Stream)
    }

    fn header(
        &mut self,
        name: &[u8],
        kind: EntryType,
        mode: u32,
        mtime: i64,
        size: u64,
        link: Option<&[u8]>,
    ) -> Result<(), Error> {
        let mut pax = Vec::new();
        // ustar holds 100-byte ASCII names and 8 GiB sizes; PAX records carry anything longer.
        if name.len() > 100 || !name.is_ascii() {
            pax_record(&mut pax, "path", name);
        }
        if let Some(l) = link {
            if l.len() > 100 || !l.is_ascii() {
                pax_record(&mut pax, "linkpath", l);
            }
        }
        if size > USTAR_MAX {
            pax_record(&mut pax, "size", size.to_string().as_bytes());
        }
        // ustar's mtime is 11 octal digits of seconds since 1970: times before it (a file
        // dated 1969) or after 2242 travel in PAX.
        if !(0..=USTAR_MAX as i64).contains(&mtime) {
            pax_record(&mut pax, "mtime", mtime.to_string().as_bytes());
        }
        if !pax.is_empty() {
            let mut h = Header::new_ustar();
            h.set_entry_type(EntryType::XHeader);
            set_bytes(&mut h.as_ustar_mut().expect("ustar").name, b"PaxHeader");
            h.set_size(pax.len() as u64);
            h.set_mode(0o644);
            h.set_mtime(0);
            h.set_cksum();
            self.out.write_all(h.as_bytes()).map_err(Error::Stream)?;
            self.out.write_all(&pax).map_err(Error::Stream)?;
            pad(&mut self.out, pax.len() as u64).map_err(Error::Stream)?;
        }
        let mut h = Header::new_ustar();
        h.set_entry_type(kind);
        {
            let u = h.as_ustar_mut().expect("ustar");
            set_bytes(&mut u.name, name);
            if let Some(l) = link {
                set_bytes(&mut u.linkname, l);
            }
        }
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(mtime.clamp(0, USTAR_MAX as i64) as u64);
        h.set_size(size);
        h.set_cksum();
        self.out.write_all(h.as_bytes()).map_err(Error::Stream)?;
        self.stats.entries += 1;
        Ok(())
    }
}

/// The largest value of ustar's 12-byte numeric fields (11 octal digits).
const USTAR_MAX: u64 = 0o77777777777;

/// Copies what fits; the full value travels in a PAX record when it does not.
fn set_bytes(field: &mut [u8], value: &[u8]) {
    let n = value.len().min(field.len());
    field[..n].copy_from_slice(&value[..n]);
}

/// `"<len> <key>=<value>\n"`, where `<len>` counts the whole record including itself.
fn pax_record(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    let body = key.len() + value.len() + 3; // space, '=', '\n'
    let mut len = body + 1;
    while len != body + len.to_string().len() {
        len = body + len.to_string().len();
    }
    out.extend_from_slice(format!("{len} {key}=").as_bytes());
    out.extend_from_slice(value);
    out.push(b'\n');
}

fn pad<W: Write>(w: &mut W, len: u64) -> io::Result<()> {
    let rem = (len % 512) as usize;
    if rem != 0 {
        w.write_all(&[0u8; 512][..512 - rem])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_record_lengths_count_themselves() {
        for value_len in [0usize, 1, 5, 90, 95, 96, 994, 995, 9990] {
            let mut out = Vec::new();
            pax_record(&mut out, "path", &vec![b'a'; value_len]);
            let (len, _) = std::str::from_utf8(&out[..6])
                .unwrap()
                .split_once(' ')
                .unwrap();
            assert_eq!(
                len.parse::<usize>().unwrap(),
                out.len(),
                "value_len {value_len}"
            );
        }
    }
}
