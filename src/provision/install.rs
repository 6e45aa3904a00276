//! Uploads what `bootstrap/install.sh` installs from (buildspecs/README.md, "Bucket layout"):
//!
//! ```text
//! cachectl/install.sh
//! cachectl/bin/latest                                   the version string
//! cachectl/bin/<version>/cachectl-<target>              the static binary
//! cachectl/bin/<version>/cachectl-<target>.sha256       `<hex>  cachectl-<target>`
//! ```
//!
//! A version's binary, once uploaded, is never overwritten (conditional put): builds that
//! installed it keep getting the same bytes.

use super::Error;
use crate::aws::{self, Service};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};

/// install.sh as this cachectl ships it.
const INSTALL_SH: &str = include_str!("../../bootstrap/install.sh");

/// The musl targets install.sh picks from (`uname -m`).
pub const TARGETS: [&str; 2] = ["x86_64-unknown-linux-musl", "aarch64-unknown-linux-musl"];

/// The target this binary was built for, as install.sh names it.
pub fn own_target() -> &'static str {
    if cfg!(target_arch = "aarch64") {
        TARGETS[1]
    } else {
        TARGETS[0]
    }
}

/// What happened to one object.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Uploaded {
    Uploaded,
    /// Already there with these bytes (or, for a binary, this version: never overwritten).
    Present,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Upload {
    pub object: String,
    pub result: Uploaded,
}

/// A binary to upload for `target`, from `path`.
#[derive(Debug, Clone)]
pub struct Binary {
    pub target: &'static str,
    pub path: PathBuf,
}

/// The binaries to upload: this one for its own target, and the other target's from
/// `binaries` (laid out as `bootstrap/build-release.sh` writes them: `<dir>/<version>/
/// cachectl-<target>` or `<dir>/cachectl-<target>`). The second value names the targets left
/// out, for a warning.
pub fn binaries(binaries: Option<&Path>, version: &str) -> (Vec<Binary>, Vec<&'static str>) {
    let mut found = Vec::new();
    let mut missing = Vec::new();
    if let Ok(me) = std::env::current_exe() {
        found.push(Binary {
            target: own_target(),
            path: me,
        });
    }
    for target in TARGETS.into_iter().filter(|t| *t != own_target()) {
        let name = format!("cachectl-{target}");
        let candidates = binaries
            .map(|d| vec![d.join(version).join(&name), d.join(&name)])
            .unwrap_or_default();
        match candidates.into_iter().find(|p| p.is_file()) {
            Some(path) => found.push(Binary { target, path }),
            None => missing.push(target),
        }
    }
    (found, missing)
}

/// Why the file at `path` is not a Linux executable for `target`, if it is not: ELF magic,
/// 64-bit, and the machine (`e_machine` 62 for x86_64, 183 for aarch64; System V ABI).
pub fn not_for(path: &Path, target: &str) -> Option<String> {
    let mut head = [0u8; 20];
    let read = std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut head));
    if read.is_err() || &head[..4] != b"\x7fELF" || head[4] != 2 {
        return Some(format!("{} is not a 64-bit ELF executable", path.display()));
    }
    let machine = u16::from_le_bytes([head[18], head[19]]);
    let want = if target.starts_with("aarch64") {
        183
    } else {
        62
    };
    (machine != want).then(|| {
        format!(
            "{} is built for another machine (ELF machine {machine}), not {target}",
            path.display()
        )
    })
}

/// The sha256 of a file, hex, read in 1 MiB blocks.
fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

fn s3_err<E>(
    what: String,
    action: &'static str,
) -> impl FnOnce(aws_sdk_s3::error::SdkError<E, aws_smithy_runtime_api::http::Response>) -> Error
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + 'static,
{
    move |e| Error::S3 {
        what,
        source: aws::Error::from_sdk(Service::S3, action, &e),
    }
}

/// The object's bytes, or None if there is none.
async fn get(client: &Client, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, Error> {
    match client.get_object().bucket(bucket).key(key).send().await {
        Ok(out) => {
            let bytes = out
                .body
                .collect()
                .await
                .map_err(|e| Error::Other(format!("reading s3://{bucket}/{key}: {e}")))?;
            Ok(Some(bytes.to_vec()))
        }
        Err(e) => {
            let err = aws::Error::from_sdk(Service::S3, crate::aws::iam::S3_GET_OBJECT, &e);
            if err.kind == aws::Kind::NotFound {
                Ok(None)
            } else {
                Err(Error::S3 {
                    what: format!("read s3://{bucket}/{key}"),
                    source: err,
                })
            }
        }
    }
}

/// Puts `body` at `key` unless the object already holds exactly it.
async fn put_if_changed(
    client: &Client,
    bucket: &str,
    key: &str,
    body: &[u8],
) -> Result<Upload, Error> {
    let result = if get(client, bucket, key).await?.as_deref() == Some(body) {
        Uploaded::Present
    } else {
        client
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(ByteStream::from(body.to_vec()))
            .send()
            .await
            .map_err(s3_err(
                format!("upload s3://{bucket}/{key}"),
                crate::aws::iam::S3_PUT_OBJECT,
            ))?;
        Uploaded::Uploaded
    };
    Ok(Upload {
        object: format!("s3://{bucket}/{key}"),
        result,
    })
}

/// Uploads install.sh, each binary with its checksum (never over one already there), and
/// `latest` = `version`.
pub async fn upload(
    client: &Client,
    bucket: &str,
    version: &str,
    binaries: &[Binary],
) -> Result<Vec<Upload>, Error> {
    let mut done = Vec::new();
    done.push(put_if_changed(client, bucket, "cachectl/install.sh", INSTALL_SH.as_bytes()).await?);
    for b in binaries {
        let name = format!("cachectl-{}", b.target);
        let key = format!("cachectl/bin/{version}/{name}");
        let exists = client.head_object().bucket(bucket).key(&key).send().await;
        let present = match exists {
            Ok(_) => true,
            Err(e) => {
                let err = aws::Error::from_sdk(Service::S3, crate::aws::iam::S3_GET_OBJECT, &e);
                if err.kind != aws::Kind::NotFound {
                    return Err(Error::S3 {
                        what: format!("look for s3://{bucket}/{key}"),
                        source: err,
                    });
                }
                false
            }
        };
        if present {
            for object in [format!("{key}.sha256"), key] {
                done.push(Upload {
                    object: format!("s3://{bucket}/{object}"),
                    result: Uploaded::Present,
                });
            }
            continue;
        }
        let path = b.path.clone();
        let sum = tokio::task::spawn_blocking(move || sha256_file(&path))
            .await
            .map_err(|e| Error::Other(format!("hashing {}: {e}", b.path.display())))?
            .map_err(|e| Error::Other(format!("reading {}: {e}", b.path.display())))?;
        let sum_line = format!("{sum}  {name}\n");
        // The checksum first: install.sh needs both, and a binary without its checksum is
        // refused by it, whereas a checksum without its binary is just not installable yet.
        done.push(
            put_if_changed(
                client,
                bucket,
                &format!("{key}.sha256"),
                sum_line.as_bytes(),
            )
            .await?,
        );
        let body = ByteStream::from_path(&b.path)
            .await
            .map_err(|e| Error::Other(format!("reading {}: {e}", b.path.display())))?;
        client
            .put_object()
            .bucket(bucket)
            .key(&key)
            .if_none_match("*")
            .body(body)
            .send()
            .await
            .map_err(s3_err(
                format!("upload s3://{bucket}/{key}"),
                crate::aws::iam::S3_PUT_OBJECT,
            ))?;
        done.push(Upload {
            object: format!("s3://{bucket}/{key}"),
            result: Uploaded::Uploaded,
        });
    }
    done.push(
        put_if_changed(
            client,
            bucket,
            "cachectl/bin/latest",
            format!("{version}\n").as_bytes(),
        )
        .await?,
    );
    Ok(done)
}
