//! The 72-byte footer after the zstd stream: a skippable frame carrying the archive's blake3;
//! and the signature frame a signed entry has just before it (docs/FORMAT.md, "Footer",
//! "Signatures").

use super::Error;

pub const FOOTER_LEN: usize = 72;
/// zstd skippable-frame magic (0x184D2A50..=0x184D2A5F are all skippable; we use ...5C).
const MAGIC: u32 = 0x184D_2A5C;
const PAYLOAD_LEN: u32 = 64;
const TAG: &[u8; 8] = b"CACHECTL";
const VERSION: u32 = 1;
/// Footer flag: a [`SignatureFrame`] lies just before the footer. Readers ignore flags they
/// do not know, so older cachectl versions still restore signed entries.
const FLAG_SIGNED: u32 = 1;

/// Bytes of the signature frame: an 8-byte skippable-frame header and 104 bytes of payload.
pub const SIGNATURE_FRAME_LEN: usize = 112;
const SIGNATURE_MAGIC: u32 = 0x184D_2A5D;
const SIGNATURE_PAYLOAD_LEN: u32 = 104;
const SIGNATURE_TAG: &[u8; 8] = b"CACHESIG";

/// A zstd skippable frame (`5D 2A 4D 18`, payload 104) holding `CACHESIG`, the 32-byte ed25519
/// public key and the 64-byte signature of the entry's statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureFrame {
    pub public_key: [u8; 32],
    pub signature: [u8; 64],
}

impl SignatureFrame {
    pub fn encode(&self) -> [u8; SIGNATURE_FRAME_LEN] {
        let mut out = [0u8; SIGNATURE_FRAME_LEN];
        out[0..4].copy_from_slice(&SIGNATURE_MAGIC.to_le_bytes());
        out[4..8].copy_from_slice(&SIGNATURE_PAYLOAD_LEN.to_le_bytes());
        out[8..16].copy_from_slice(SIGNATURE_TAG);
        out[16..48].copy_from_slice(&self.public_key);
        out[48..112].copy_from_slice(&self.signature);
        out
    }

    pub fn decode(b: &[u8]) -> Result<Self, Error> {
        let ok = b.len() == SIGNATURE_FRAME_LEN
            && b[0..4] == SIGNATURE_MAGIC.to_le_bytes()
            && b[4..8] == SIGNATURE_PAYLOAD_LEN.to_le_bytes()
            && &b[8..16] == SIGNATURE_TAG;
        if !ok {
            return Err(Error::Corrupt(
                "its footer says it is signed but no signature frame precedes the footer".into(),
            ));
        }
        Ok(SignatureFrame {
            public_key: b[16..48].try_into().expect("32 bytes"),
            signature: b[48..112].try_into().expect("64 bytes"),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Footer {
    /// blake3 of every object byte before the footer.
    pub digest: [u8; 32],
    /// Length of the uncompressed tar stream.
    pub tar_bytes: u64,
    /// Tar entries, PAX headers not counted.
    pub entries: u64,
    /// A [`SignatureFrame`] precedes the footer.
    pub signed: bool,
}

impl Footer {
    pub fn encode(&self) -> [u8; FOOTER_LEN] {
        let mut out = [0u8; FOOTER_LEN];
        out[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        out[4..8].copy_from_slice(&PAYLOAD_LEN.to_le_bytes());
        out[8..16].copy_from_slice(TAG);
        out[16..20].copy_from_slice(&VERSION.to_le_bytes());
        let flags = if self.signed { FLAG_SIGNED } else { 0 };
        out[20..24].copy_from_slice(&flags.to_le_bytes());
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
            signed: u32_at(20) & FLAG_SIGNED != 0,
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
            signed: true,
        };
        let enc = f.encode();
        assert_eq!(&enc[0..4], &[0x5C, 0x2A, 0x4D, 0x18]);
        assert_eq!(&enc[20..24], &[1, 0, 0, 0]);
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
                signed: false,
            }
            .encode(),
        );
        assert_eq!(zstd::decode_all(&obj[..]).unwrap(), b"hello tar");
        let sig = SignatureFrame {
            public_key: [1; 32],
            signature: [2; 64],
        }
        .encode();
        assert_eq!(&sig[0..4], &[0x5D, 0x2A, 0x4D, 0x18]);
        let mut signed = zstd::encode_all(&b"hello tar"[..], 3).unwrap();
        signed.extend_from_slice(&sig);
        assert_eq!(zstd::decode_all(&signed[..]).unwrap(), b"hello tar");
        assert_eq!(
            SignatureFrame::decode(&sig).unwrap().signature,
            [2; 64],
            "the frame decodes"
        );
        assert!(SignatureFrame::decode(&sig[..111]).is_err());
    }
}
