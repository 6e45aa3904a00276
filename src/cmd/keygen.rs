//! `cachectl keygen --out FILE`: a new ed25519 signing key in FILE (PKCS#8 PEM, mode 0600,
//! never over an existing file); its public key, in the form `[trust] public-keys` takes, is the
//! last line of stdout.

use super::{Error, ExitStatus};
use crate::cli::{GlobalArgs, KeygenArgs};
use crate::output;
use crate::sign::SigningKey;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

pub fn run(g: &GlobalArgs, args: &KeygenArgs) -> Result<ExitStatus, Error> {
    let key = SigningKey::generate()?;
    let pem = key.to_pem()?;
    let path = &args.out;
    // create_new: an existing key is never replaced (the entries it signed would stop
    // verifying); mode 0600 from the start, so the key is never readable by others.
    let mut file = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(Error::usage(
                format!("{} exists; keygen never overwrites a key", path.display()),
                Some("choose another --out, or remove the old key once nothing uses it".into()),
            ))
        }
        Err(source) => {
            return Err(Error::Write {
                path: path.clone(),
                source,
            })
        }
    };
    if let Err(source) = file
        .write_all(pem.as_bytes())
        .and_then(|()| file.sync_all())
    {
        drop(file);
        let _ = std::fs::remove_file(path);
        return Err(Error::Write {
            path: path.clone(),
            source,
        });
    }
    let public = key.public_key().to_string();
    if g.json {
        output::json(&serde_json::json!({
            "private_key_file": path.display().to_string(),
            "public_key": public,
        }))?;
    } else {
        output::say(&format!(
            "wrote the private key to {} (mode 0600): store it as a secret for {} in trusted builds only; add the public key below to [trust] public-keys",
            path.display(),
            crate::env::SIGNING_KEY
        ));
        output::println(&public)?;
    }
    Ok(ExitStatus::Success)
}
