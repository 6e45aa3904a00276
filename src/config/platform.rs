//! What `{{ os }}`, `{{ arch }}` and `{{ libc }}` expand to on the machine cachectl runs on.

use std::io::Read;
use std::path::Path;

/// `{{ os }}`: Rust's name for the operating system (`linux`, `macos`, `windows`, ...).
pub fn os() -> String {
    std::env::consts::OS.to_owned()
}

/// `{{ arch }}`: Node's names for the two architectures CodeBuild runs (`x64`, `arm64`), which
/// are also the names most prebuilt-binary packages use; anything else keeps Rust's name.
pub fn arch() -> String {
    arch_name(std::env::consts::ARCH).to_owned()
}

pub(crate) fn arch_name(rust_arch: &str) -> &str {
    match rust_arch {
        "x86_64" => "x64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// `{{ libc }}`: the C library of the *system*, `gnu` or `musl`, detected at run time.
///
/// The answer cannot come from how cachectl was built: release builds are static musl
/// binaries that run on glibc images too. So, on Linux, in order:
///
/// 1. The ELF program interpreter of `/bin/sh` (what every shell step of the build runs):
///    `ld-musl-*` means musl, `ld-linux*` / `ld64.so*` means glibc. This is the reliable
///    signal, and the same one Python's `packaging` uses for its own interpreter.
/// 2. If `/bin/sh` is missing or static: a glibc loader in `/lib64` or `/lib` means `gnu`.
/// 3. Else a musl loader `/lib/ld-musl-*.so.1` means `musl`.
/// 4. Else `unknown` (no dynamic libc at all, e.g. a `scratch` image).
///
/// The presence of `/lib/ld-musl-*.so.1` alone is not trusted first: Debian's `musl` package
/// (pulled in by `musl-tools`, which our own README installs) puts it on glibc systems.
///
/// Off Linux the OS already tells the C library apart: the answer is Rust's `target_env`
/// (`msvc` or `gnu` on Windows), or `none` where that is empty (macOS, the BSDs).
pub fn libc() -> String {
    if cfg!(target_os = "linux") {
        detect_linux_libc(Path::new("/")).to_owned()
    } else if cfg!(target_env = "msvc") {
        "msvc".to_owned()
    } else if cfg!(target_env = "gnu") {
        "gnu".to_owned()
    } else {
        "none".to_owned()
    }
}

/// [`libc`]'s Linux detection below `root` (a parameter so tests can build fake systems).
pub(crate) fn detect_linux_libc(root: &Path) -> &'static str {
    if let Some(interp) = read_interpreter(&root.join("bin/sh")) {
        if let Some(kind) = classify_loader(&interp) {
            return kind;
        }
    }
    let has = |dir: &str, pred: &dyn Fn(&str) -> bool| {
        std::fs::read_dir(root.join(dir)).is_ok_and(|entries| {
            entries
                .filter_map(Result::ok)
                .any(|e| e.file_name().to_str().is_some_and(pred))
        })
    };
    let glibc_loader = |n: &str| classify_loader(n) == Some("gnu");
    if has("lib64", &glibc_loader) || has("lib", &glibc_loader) {
        return "gnu";
    }
    if has("lib", &|n| {
        n.starts_with("ld-musl-") && n.ends_with(".so.1")
    }) {
        return "musl";
    }
    "unknown"
}

/// Which libc a dynamic loader's path or file name belongs to.
fn classify_loader(path: &str) -> Option<&'static str> {
    let name = path.rsplit('/').next().unwrap_or(path);
    if name.starts_with("ld-musl-") {
        Some("musl")
    } else if name.starts_with("ld-linux") || name.starts_with("ld64.so") {
        // x86_64 `ld-linux-x86-64.so.2`, aarch64 `ld-linux-aarch64.so.1`, armhf
        // `ld-linux-armhf.so.3`, ppc64le / s390x `ld64.so.{1,2}`.
        Some("gnu")
    } else {
        None
    }
}

/// The PT_INTERP path of an ELF executable (symlinks followed), if it has one.
fn read_interpreter(path: &Path) -> Option<String> {
    // The interpreter string sits right after the program headers, well inside 64 KiB.
    let mut head = Vec::with_capacity(4096);
    std::fs::File::open(path)
        .ok()?
        .take(64 * 1024)
        .read_to_end(&mut head)
        .ok()?;
    elf_interpreter(&head).map(str::to_owned)
}

/// PT_INTERP of an ELF image, from its first bytes; `None` for non-ELF or static binaries.
pub(crate) fn elf_interpreter(bytes: &[u8]) -> Option<&str> {
    const PT_INTERP: u32 = 3;
    if bytes.get(..4)? != b"\x7fELF" {
        return None;
    }
    let is64 = match bytes.get(4)? {
        1 => false,
        2 => true,
        _ => return None,
    };
    let le = match bytes.get(5)? {
        1 => true,
        2 => false,
        _ => return None,
    };
    let uint = |at: usize, len: usize| -> Option<u64> {
        let raw = bytes.get(at..at.checked_add(len)?)?;
        let mut v: u64 = 0;
        for i in 0..len {
            let b = if le { raw[len - 1 - i] } else { raw[i] };
            v = (v << 8) | u64::from(b);
        }
        Some(v)
    };
    let to_usize = |v: u64| usize::try_from(v).ok();
    // (e_phoff, e_phentsize, e_phnum) and, per header, (p_offset, p_filesz) positions.
    let (phoff, phentsize, phnum, off_at, size_at, word) = if is64 {
        (
            uint(0x20, 8)?,
            uint(0x36, 2)?,
            uint(0x38, 2)?,
            0x08,
            0x20,
            8,
        )
    } else {
        (
            uint(0x1c, 4)?,
            uint(0x2a, 2)?,
            uint(0x2c, 2)?,
            0x04,
            0x10,
            4,
        )
    };
    let (phoff, phentsize) = (to_usize(phoff)?, to_usize(phentsize)?);
    for i in 0..to_usize(phnum)? {
        let ph = phoff.checked_add(i.checked_mul(phentsize)?)?;
        if uint(ph, 4)? != u64::from(PT_INTERP) {
            continue;
        }
        let start = to_usize(uint(ph + off_at, word)?)?;
        let len = to_usize(uint(ph + size_at, word)?)?;
        let raw = bytes.get(start..start.checked_add(len)?)?;
        let raw = raw.split(|&b| b == 0).next()?;
        return std::str::from_utf8(raw).ok();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// A minimal little-endian ELF64 image whose PT_INTERP names `interp` (or none).
    fn elf64(interp: Option<&str>) -> Vec<u8> {
        let mut b = vec![0u8; 0x40 + 0x38 * 2];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = 1;
        b[0x20..0x28].copy_from_slice(&0x40u64.to_le_bytes());
        b[0x36..0x38].copy_from_slice(&0x38u16.to_le_bytes());
        b[0x38..0x3a].copy_from_slice(&2u16.to_le_bytes());
        // Header 0: PT_LOAD (1), ignored.
        b[0x40..0x44].copy_from_slice(&1u32.to_le_bytes());
        if let Some(interp) = interp {
            let ph = 0x40 + 0x38;
            let off = b.len() as u64;
            b[ph..ph + 4].copy_from_slice(&3u32.to_le_bytes());
            b[ph + 8..ph + 16].copy_from_slice(&off.to_le_bytes());
            b[ph + 0x20..ph + 0x28].copy_from_slice(&(interp.len() as u64 + 1).to_le_bytes());
            b.extend_from_slice(interp.as_bytes());
            b.push(0);
        }
        b
    }

    /// A big-endian ELF32 image with a PT_INTERP.
    fn elf32_be(interp: &str) -> Vec<u8> {
        let mut b = vec![0u8; 0x34 + 0x20];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 1;
        b[5] = 2;
        b[0x1c..0x20].copy_from_slice(&0x34u32.to_be_bytes());
        b[0x2a..0x2c].copy_from_slice(&0x20u16.to_be_bytes());
        b[0x2c..0x2e].copy_from_slice(&1u16.to_be_bytes());
        let off = b.len() as u32;
        b[0x34..0x38].copy_from_slice(&3u32.to_be_bytes());
        b[0x38..0x3c].copy_from_slice(&off.to_be_bytes());
        b[0x44..0x48].copy_from_slice(&(interp.len() as u32 + 1).to_be_bytes());
        b.extend_from_slice(interp.as_bytes());
        b.push(0);
        b
    }

    #[test]
    fn elf_interpreter_table() {
        let cases: &[(&str, Vec<u8>, Option<&str>)] = &[
            (
                "elf64 glibc",
                elf64(Some("/lib64/ld-linux-x86-64.so.2")),
                Some("/lib64/ld-linux-x86-64.so.2"),
            ),
            (
                "elf64 musl",
                elf64(Some("/lib/ld-musl-aarch64.so.1")),
                Some("/lib/ld-musl-aarch64.so.1"),
            ),
            ("elf64 static", elf64(None), None),
            (
                "elf32 big endian",
                elf32_be("/lib/ld.so.1"),
                Some("/lib/ld.so.1"),
            ),
            ("script", b"#!/bin/sh\necho hi\n".to_vec(), None),
            ("empty", Vec::new(), None),
            ("truncated header", elf64(Some("/x"))[..0x30].to_vec(), None),
        ];
        for (name, bytes, want) in cases {
            assert_eq!(elf_interpreter(bytes), *want, "case {name}");
        }
    }

    #[test]
    fn elf_interpreter_survives_garbage() {
        // Offsets pointing past the end or overflowing must not panic.
        let mut b = elf64(Some("/lib/ld-musl-x86_64.so.1"));
        b[0x20..0x28].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(elf_interpreter(&b), None);
        let mut b = elf64(Some("/lib/ld-musl-x86_64.so.1"));
        b[0x40 + 0x38 + 8..0x40 + 0x38 + 16].copy_from_slice(&(u64::MAX - 1).to_le_bytes());
        assert_eq!(elf_interpreter(&b), None);
    }

    #[test]
    fn linux_libc_detection_table() {
        type Setup = &'static [(&'static str, Option<&'static str>)];
        // (file below the fake root, Some(ELF interpreter) or None for a plain file)
        let cases: &[(&str, Setup, &str)] = &[
            (
                "glibc shell",
                &[("bin/sh", Some("/lib64/ld-linux-x86-64.so.2"))],
                "gnu",
            ),
            (
                "musl shell (alpine)",
                &[("bin/sh", Some("/lib/ld-musl-x86_64.so.1"))],
                "musl",
            ),
            (
                "glibc shell wins over an installed musl loader (debian + musl-tools)",
                &[
                    ("bin/sh", Some("/lib64/ld-linux-x86-64.so.2")),
                    ("lib/ld-musl-x86_64.so.1", None),
                ],
                "gnu",
            ),
            (
                "no shell, glibc loader",
                &[("lib/ld-linux-aarch64.so.1", None)],
                "gnu",
            ),
            (
                "static shell, musl loader only",
                &[("bin/sh", Some("")), ("lib/ld-musl-aarch64.so.1", None)],
                "musl",
            ),
            ("nothing at all", &[], "unknown"),
        ];
        for (name, files, want) in cases {
            let root = tempfile::tempdir().unwrap();
            for (rel, interp) in *files {
                let path = root.path().join(rel);
                fs::create_dir_all(path.parent().unwrap()).unwrap();
                let body = match interp {
                    Some("") => elf64(None),
                    Some(i) => elf64(Some(i)),
                    None => b"loader".to_vec(),
                };
                fs::write(path, body).unwrap();
            }
            assert_eq!(detect_linux_libc(root.path()), *want, "case {name}");
        }
    }

    #[test]
    fn arch_names() {
        let cases = [
            ("x86_64", "x64"),
            ("aarch64", "arm64"),
            ("riscv64", "riscv64"),
        ];
        for (rust, want) in cases {
            assert_eq!(arch_name(rust), want, "arch {rust}");
        }
    }

    #[test]
    fn this_machine_has_an_answer() {
        let libc = libc();
        assert!(
            ["gnu", "musl", "unknown", "none", "msvc"].contains(&libc.as_str()),
            "{libc}"
        );
        assert!(!os().is_empty() && !arch().is_empty());
    }
}
