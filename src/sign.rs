//! Entry signatures (docs/FORMAT.md, "Signatures"): ed25519 keys from ed25519-dalek, the
//! statement a signature binds, and signing and checking it. No cryptography of our own: the
//! statement is plain text and the signature is RFC 8032 ed25519 over it.
//!
//! The private key is PKCS#8 PEM (what `cachectl keygen` writes and `openssl genpkey -algorithm
//! ed25519` makes); a public key is written `ed25519:<base64 of its 32 bytes>`. Nothing here
//! ever formats a private key into a message: its `Debug` is redacted and parse errors do not
//! quote the input.

use crate::key::Scope;
use base64::Engine;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::Signer;
use std::fmt;

/// How a public key is written in `[trust] public-keys` and printed by `keygen`.
pub const PUBLIC_KEY_PREFIX: &str = "ed25519:";

/// First line of every signed statement; names the statement's own version.
const STATEMENT_TAG: &str = "cachectl entry signature v1";

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("the signing key is not an ed25519 private key in PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`)")]
    BadSigningKey,
    /// The text is not quoted: a private key pasted where a public one belongs would be printed.
    #[error("a public key is not `ed25519:` followed by the base64 of 32 bytes of a valid key")]
    BadPublicKey,
    #[error("the system's random number generator failed: {0}")]
    Random(String),
    /// A save every restore of this repository would refuse is not made.
    #[error("[trust] require-signature is on and {} is not set: restores would refuse this entry, so it is not saved", crate::env::SIGNING_KEY)]
    NoSigningKey,
    #[error("the signing key's public key {0} is not in [trust] public-keys: restores would refuse this entry, so it is not saved")]
    KeyNotListed(String),
}

impl crate::error::Hint for Error {
    fn hint(&self) -> Option<String> {
        match self {
            Error::BadSigningKey => Some(format!(
                "set {} to the whole file `cachectl keygen --out FILE` wrote, BEGIN and END lines included",
                crate::env::SIGNING_KEY
            )),
            Error::BadPublicKey => Some(
                "copy the last line `cachectl keygen` printed (`ed25519:` and 44 base64 characters)"
                    .into(),
            ),
            Error::Random(_) => None,
            Error::NoSigningKey => Some(format!(
                "give this trusted build {} (a SECRETS_MANAGER variable), or turn require-signature off",
                crate::env::SIGNING_KEY
            )),
            Error::KeyNotListed(_) => Some(
                "add that public key to [trust] public-keys (keep the old one listed while rotating)"
                    .into(),
            ),
        }
    }
}

/// An ed25519 private key. Never printed: `Debug` shows only its public half.
pub struct SigningKey(ed25519_dalek::SigningKey);

impl SigningKey {
    /// A new key from the operating system's random number generator.
    pub fn generate() -> Result<SigningKey, Error> {
        let mut seed = zeroize::Zeroizing::new([0u8; 32]);
        getrandom::getrandom(seed.as_mut()).map_err(|e| Error::Random(e.to_string()))?;
        Ok(SigningKey(ed25519_dalek::SigningKey::from_bytes(&seed)))
    }

    /// Reads a PKCS#8 PEM private key (surrounding whitespace allowed, as an environment
    /// variable filled from a secret often has). The error never quotes the text.
    pub fn from_pem(text: &str) -> Result<SigningKey, Error> {
        ed25519_dalek::SigningKey::from_pkcs8_pem(text.trim())
            .map(SigningKey)
            .map_err(|_| Error::BadSigningKey)
    }

    /// The key as PKCS#8 PEM, for the key file; wiped from memory when dropped. Version 1
    /// (RFC 8410: the private key alone), what `openssl genpkey` writes and every reader takes;
    /// version 2's attached public key is refused by OpenSSL 3.0.
    pub fn to_pem(&self) -> Result<zeroize::Zeroizing<String>, Error> {
        ed25519_dalek::pkcs8::KeypairBytes {
            secret_key: self.0.to_bytes(),
            public_key: None,
        }
        .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
        .map_err(|_| Error::BadSigningKey)
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// Signs the statement of one entry.
    pub fn sign(&self, statement: &Statement<'_>) -> Signature {
        Signature {
            public_key: self.public_key(),
            bytes: self.0.sign(&statement.to_bytes()).to_bytes(),
        }
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey(public {})", self.public_key())
    }
}

/// An ed25519 public key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(ed25519_dalek::VerifyingKey);

impl PublicKey {
    /// `ed25519:<base64>` (standard alphabet, padded: 44 characters).
    pub fn parse(s: &str) -> Result<PublicKey, Error> {
        let bad = || Error::BadPublicKey;
        let b64 = s.strip_prefix(PUBLIC_KEY_PREFIX).ok_or_else(bad)?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| bad())?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| bad())?;
        Self::from_bytes(&bytes).ok_or_else(bad)
    }

    /// `None` when the bytes are not a point on the curve, or a weak (small-order) point no
    /// honest key is and no strict verification accepts.
    pub fn from_bytes(bytes: &[u8; 32]) -> Option<PublicKey> {
        ed25519_dalek::VerifyingKey::from_bytes(bytes)
            .ok()
            .filter(|k| !k.is_weak())
            .map(PublicKey)
    }

    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(PUBLIC_KEY_PREFIX)?;
        f.write_str(&base64::engine::general_purpose::STANDARD.encode(self.0.to_bytes()))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// What a signature says about one entry: it binds every part of the entry's identity and its
/// bytes, so a signed entry copied under another key, scope or path set, or with other bytes,
/// no longer matches.
#[derive(Debug, Clone, Copy)]
pub struct Statement<'a> {
    pub scope: &'a Scope,
    /// The normalized path set, sorted (docs/FORMAT.md, "Path normalization").
    pub paths: &'a [String],
    pub key: &'a str,
    /// blake3 of the archive: every object byte before the signature frame.
    pub digest: [u8; 32],
}

impl Statement<'_> {
    /// The signed bytes: six `\n`-terminated lines (docs/FORMAT.md, "Signatures").
    pub fn to_bytes(&self) -> Vec<u8> {
        // Compact JSON, as serde_json writes it: every string unambiguous on one line.
        format!(
            "{STATEMENT_TAG}\nformat {}\nscope {}\npaths {}\nkey {}\nblake3 {}\n",
            crate::key::FORMAT_VERSION,
            self.scope,
            serde_json::to_string(self.paths).expect("strings serialize"),
            serde_json::to_string(self.key).expect("strings serialize"),
            blake3::Hash::from_bytes(self.digest).to_hex(),
        )
        .into_bytes()
    }
}

/// A signature of an entry's statement, with the public key that made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signature {
    pub public_key: PublicKey,
    pub bytes: [u8; 64],
}

impl Signature {
    /// Whether it is a valid signature of `statement` by its own public key (RFC 8032 with
    /// the strict checks that refuse malleable signatures and weak keys).
    pub fn matches(&self, statement: &Statement<'_>) -> bool {
        let sig = ed25519_dalek::Signature::from_bytes(&self.bytes);
        self.public_key
            .0
            .verify_strict(&statement.to_bytes(), &sig)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statement<'a>(scope: &'a Scope, paths: &'a [String], key: &'a str) -> Statement<'a> {
        Statement {
            scope,
            paths,
            key,
            digest: [7; 32],
        }
    }

    #[test]
    fn the_statement_is_six_lines_of_text() {
        let paths = vec!["node_modules".to_owned(), "~/.npm".to_owned()];
        let s = statement(&Scope::Trusted, &paths, "npm-\"x\"");
        assert_eq!(
            String::from_utf8(s.to_bytes()).unwrap(),
            format!(
                "cachectl entry signature v1\nformat 1\nscope trusted\npaths [\"node_modules\",\"~/.npm\"]\nkey \"npm-\\\"x\\\"\"\nblake3 {}\n",
                "07".repeat(32)
            )
        );
    }

    #[test]
    fn a_signature_matches_only_its_own_statement() {
        let k = SigningKey::generate().unwrap();
        let paths = vec!["node_modules".to_owned()];
        let other_paths = vec!["vendor".to_owned()];
        let pr = Scope::Untrusted("pr-1".into());
        let good = statement(&Scope::Trusted, &paths, "k1");
        let sig = k.sign(&good);
        assert!(sig.matches(&good));
        assert_eq!(sig.public_key, k.public_key());
        let others = [
            statement(&Scope::Trusted, &paths, "k2"),
            statement(&pr, &paths, "k1"),
            statement(&Scope::Trusted, &other_paths, "k1"),
            Statement {
                digest: [8; 32],
                ..good
            },
        ];
        for (i, s) in others.iter().enumerate() {
            assert!(!sig.matches(s), "changed statement {i} still matches");
        }
        let mut flipped = sig;
        flipped.bytes[5] ^= 1;
        assert!(!flipped.matches(&good));
        let stranger = Signature {
            public_key: SigningKey::generate().unwrap().public_key(),
            ..sig
        };
        assert!(!stranger.matches(&good));
    }

    #[test]
    fn keys_round_trip_through_their_text_forms() {
        let k = SigningKey::generate().unwrap();
        let pem = k.to_pem().unwrap();
        // PKCS#8 v1 of an ed25519 key: 48 bytes of DER, base64 `MC4CAQAw…` (RFC 8410).
        assert!(pem[28..].starts_with("MC4CAQAw"), "{}", pem.as_str());
        assert!(
            pem.starts_with("-----BEGIN PRIVATE KEY-----\n"),
            "{}",
            pem.as_str()
        );
        let back = SigningKey::from_pem(&format!("\n  {}\n\n", pem.as_str())).unwrap();
        assert_eq!(back.public_key(), k.public_key());
        let text = k.public_key().to_string();
        assert_eq!(text.len(), "ed25519:".len() + 44);
        assert_eq!(PublicKey::parse(&text).unwrap(), k.public_key());
        assert!(!format!("{k:?}").contains(&pem[28..60]));
    }

    #[test]
    fn bad_keys_are_refused_without_quoting_them() {
        let secret = "-----BEGIN PRIVATE KEY-----\nTOPSECRETTOPSECRET\n-----END PRIVATE KEY-----";
        let e = SigningKey::from_pem(secret).unwrap_err();
        assert_eq!(e, Error::BadSigningKey);
        assert!(!e.to_string().contains("TOPSECRET"));
        // The identity point (small order): a key no signature verifies under.
        let weak = format!("ed25519:AQ{}=", "A".repeat(41));
        for bad in [
            "",
            "ed25519:",
            "ed25519:AAAA",
            "rsa:AAAA",
            "ed25519:!!!",
            &weak,
            secret,
        ] {
            assert_eq!(PublicKey::parse(bad), Err(Error::BadPublicKey), "{bad}");
        }
        assert!(!Error::BadPublicKey.to_string().contains("TOPSECRET"));
    }
}
