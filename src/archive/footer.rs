//! The 72-byte footer after the zstd stream: a skippable frame carrying the archive's blake3.

use super::Error;

pub const FOOTER_LEN: usize = 72;
/// zstd skippable-frame magic (0x184D2A50..=0x184D2A5F are all skippable; we use ...5C).
const MAGIC: u32 = 0x184D_2A5C;
const PAYLOAD_LEN: u32 = 64;
const TAG: &[u8; 8] = b"CACHECTL";
const VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Footer {
    /// blake3 of every object byte before the footer.
    pub digest: [u8; 32],
    /// Length of the uncompressed tar stream.
    pub tar_bytes: u64,
    /// Tar entries, PAX headers not counted.
    pub entries: u64,
}

impl Footer {
    pub fn encode(&self) -> [u8; FOOTER_LEN] {
        let mut out = [0u8; FOOTER_LEN];
        out[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        out[4..8].copy_from_slice(&PAYLOAD_LEN.to_le_bytes());
        out[8..16].copy_from_slice(TAG);
        out[16..20].copy_from_slice(&VERSION.to_le_bytes());
        // 20..24: flags, zero
        out[24..56].copy_from_slice(&self.digest);
        out[56..64].copy_from_slice(&self.tar_bytes.to_le_bytes());
        out[64..72].copy_from_slice(&self.entries.to_le_bytes());
        out
    }

    pub fn decode(b: &[u8]) -> Result<Self, Error> {
        let bad = |why: &str| Error::Corrupt(format!("footer {why}"));
        if b.len() != FOOTER_LEN {
            return Err(bad("missing (object shorter than a footer)"));
        }
        let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().expect("4 bytes"));
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        if u32_at(0) != MAGIC || u32_at(4) != PAYLOAD_LEN || &b[8..16] != TAG {
            return Err(bad(
                "missing: this object was not written by cachectl (or was truncated)",
            ));
        }
        if u32_at(16) != VERSION {
            return Err(bad("has an unknown version; upgrade cachectl"));
        }
        Ok(Footer {
            digest: b[24..56].try_into().expect("32 bytes"),
            tar_bytes: u64_at(56),
            entries: u64_at(64),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejects() {
        let f = Footer {
            digest: [7; 32],
            tar_bytes: 1 << 40,
            entries: 12345,
        };
        let enc = f.encode();
        assert_eq!(&enc[0..4], &[0x5C, 0x2A, 0x4D, 0x18]);
        assert_eq!(Footer::decode(&enc).unwrap(), f);
        let mut bad = enc;
        bad[9] ^= 1;
        assert!(Footer::decode(&bad).is_err());
        let mut ver = enc;
        ver[16] = 2;
        assert!(Footer::decode(&ver).is_err());
        assert!(Footer::decode(&enc[..71]).is_err());
    }

    #[test]
    fn zstd_skips_the_footer() {
        let mut obj = zstd::encode_all(&b"hello tar"[..], 3).unwrap();
        obj.extend_from_slice(
            &Footer {
                digest: [0; 32],
                tar_bytes: 9,
                entries: 1,
            }
            .encode(),
        );
        assert_eq!(zstd::decode_all(&obj[..]).unwrap(), b"hello tar");
    }
}
