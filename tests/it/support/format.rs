//! docs/FORMAT.md, written independently of src/: object names, the footer, and tar streams
//! with raw entry names (for hostile archives that `tar::Builder` refuses to write).

use std::io::Read;

/// Size of the footer: a zstd skippable frame with a 64-byte payload.
pub const FOOTER_BYTES: usize = 72;
const SKIPPABLE_MAGIC: u32 = 0x184D_2A5C;

/// `hex(blake3("cachectl-paths-v1\n" + join(sorted paths, "\n")))[0..16]` of normalized paths.
pub fn pathset(normalized: &[&str]) -> String {
    let mut paths = normalized.to_vec();
    paths.sort_unstable();
    paths.dedup();
    let input = format!("cachectl-paths-v1\n{}", paths.join("\n"));
    blake3::hash(input.as_bytes()).to_hex()[..16].to_owned()
}

/// Local store file name of a key: `%` -> `%25`, `/` -> `%2F`, leading `.` -> `%2E`.
pub fn escape_local_key(key: &str) -> String {
    let mut escaped = String::with_capacity(key.len());
    for (i, c) in key.chars().enumerate() {
        match c {
            '%' => escaped.push_str("%25"),
            '/' => escaped.push_str("%2F"),
            '.' if i == 0 => escaped.push_str("%2E"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// The 72-byte footer for `body` (every object byte before the footer).
pub fn footer(body: &[u8], tar_len: u64, entries: u64) -> Vec<u8> {
    let mut footer = Vec::with_capacity(FOOTER_BYTES);
    footer.extend_from_slice(&SKIPPABLE_MAGIC.to_le_bytes());
    footer.extend_from_slice(&64u32.to_le_bytes());
    footer.extend_from_slice(b"CACHECTL");
    footer.extend_from_slice(&1u32.to_le_bytes());
    footer.extend_from_slice(&0u32.to_le_bytes());
    footer.extend_from_slice(blake3::hash(body).as_bytes());
    footer.extend_from_slice(&tar_len.to_le_bytes());
    footer.extend_from_slice(&entries.to_le_bytes());
    assert_eq!(footer.len(), FOOTER_BYTES);
    footer
}

/// A complete object: zstd of `tar` followed by a correct footer.
pub fn object(tar: &[u8], entries: u64) -> Vec<u8> {
    let mut object = zstd::encode_all(tar, 3).unwrap();
    let footer = footer(&object, tar.len() as u64, entries);
    object.extend_from_slice(&footer);
    object
}

/// The decoded footer of an object.
#[derive(Debug)]
pub struct Footer {
    pub version: u32,
    pub flags: u32,
    pub digest: [u8; 32],
    pub tar_len: u64,
    pub entries: u64,
}

/// Splits an object into body and footer, checking the footer's fixed fields.
pub fn split_object(object: &[u8]) -> Result<(&[u8], Footer), String> {
    if object.len() < FOOTER_BYTES {
        return Err(format!("object of {} bytes has no footer", object.len()));
    }
    let (body, raw) = object.split_at(object.len() - FOOTER_BYTES);
    let u32_at = |at: usize| u32::from_le_bytes(raw[at..at + 4].try_into().unwrap());
    let u64_at = |at: usize| u64::from_le_bytes(raw[at..at + 8].try_into().unwrap());
    if u32_at(0) != SKIPPABLE_MAGIC {
        return Err(format!("footer magic is {:#x}", u32_at(0)));
    }
    if u32_at(4) != 64 {
        return Err(format!("footer payload length is {}", u32_at(4)));
    }
    if &raw[8..16] != b"CACHECTL" {
        return Err(format!(
            "footer tag is {:?}",
            String::from_utf8_lossy(&raw[8..16])
        ));
    }
    Ok((
        body,
        Footer {
            version: u32_at(16),
            flags: u32_at(20),
            digest: raw[24..56].try_into().unwrap(),
            tar_len: u64_at(56),
            entries: u64_at(64),
        },
    ))
}

/// Decompresses an object's body (zstd frames; the skippable footer is ignored by zstd too).
pub fn decompress(body: &[u8]) -> Vec<u8> {
    let mut tar = Vec::new();
    zstd::Decoder::new(body)
        .unwrap()
        .read_to_end(&mut tar)
        .unwrap();
    tar
}

/// Builds a tar stream whose entry names and link names are written byte for byte, so it can
/// hold `..`, absolute names and anything else a hostile archive might.
pub struct RawTar {
    builder: Option<tar::Builder<Vec<u8>>>,
    entries: u64,
}

impl Default for RawTar {
    fn default() -> Self {
        RawTar::new()
    }
}

impl RawTar {
    pub fn new() -> RawTar {
        RawTar {
            builder: Some(tar::Builder::new(Vec::new())),
            entries: 0,
        }
    }

    /// An extended (PAX) header for the next entry, with these records written as given.
    pub fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
        self.builder
            .as_mut()
            .unwrap()
            .append_pax_extensions(records.iter().map(|(k, v)| (*k, *v)))
            .unwrap();
        self
    }

    /// A global extended header (type `g`) with these records.
    pub fn global(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
        let mut data = Vec::new();
        for (key, value) in records {
            let body = key.len() + value.len() + 3;
            let mut len = body + 1;
            while len != body + len.to_string().len() {
                len = body + len.to_string().len();
            }
            data.extend_from_slice(format!("{len} {key}=").as_bytes());
            data.extend_from_slice(value);
            data.push(b'\n');
        }
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::XGlobalHeader);
        header.set_path("pax_global_header").unwrap();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        self.builder
            .as_mut()
            .unwrap()
            .append(&header, &data[..])
            .unwrap();
        self
    }

    pub fn dir(&mut self, name: &str) -> &mut Self {
        self.append(name, tar::EntryType::Directory, 0o755, b"", None)
    }

    pub fn file(&mut self, name: &str, contents: &[u8]) -> &mut Self {
        self.append(name, tar::EntryType::Regular, 0o644, contents, None)
    }

    pub fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.append(name, tar::EntryType::Symlink, 0o777, b"", Some(target))
    }

    pub fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.append(name, tar::EntryType::Link, 0o644, b"", Some(target))
    }

    fn append(
        &mut self,
        name: &str,
        kind: tar::EntryType,
        mode: u32,
        contents: &[u8],
        link: Option<&str>,
    ) -> &mut Self {
        assert!(name.len() < 100, "raw names must fit the 100-byte field");
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_size(contents.len() as u64);
        header.set_mtime(1_600_000_000);
        header.set_uid(0);
        header.set_gid(0);
        let old = header.as_old_mut();
        old.name = [0; 100];
        old.name[..name.len()].copy_from_slice(name.as_bytes());
        if let Some(link) = link {
            assert!(
                link.len() < 100,
                "raw link names must fit the 100-byte field"
            );
            old.linkname = [0; 100];
            old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        header.set_cksum();
        self.builder
            .as_mut()
            .unwrap()
            .append(&header, contents)
            .unwrap();
        self.entries += 1;
        self
    }

    /// The tar stream (with its end-of-archive blocks) and its entry count.
    pub fn finish(&mut self) -> (Vec<u8>, u64) {
        let tar = self.builder.take().unwrap().into_inner().unwrap();
        (tar, self.entries)
    }

    /// zstd of the tar stream plus a correct footer: only its content can be wrong.
    pub fn object(&mut self) -> Vec<u8> {
        let (tar, entries) = self.finish();
        object(&tar, entries)
    }
}
