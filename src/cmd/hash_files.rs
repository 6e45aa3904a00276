//! `cachectl hash-files PATTERN...`: the digest `{{ hashFiles }}` puts in keys, on stdout.

use super::{Error, ExitStatus};
use crate::cli::{GlobalArgs, HashFilesArgs};
use crate::output;

pub fn run(g: &GlobalArgs, args: &HashFilesArgs) -> Result<ExitStatus, Error> {
    let (cwd, _) = super::anchors();
    let hex = crate::hash::hash_patterns(&cwd, &args.patterns)?;
    if g.json {
        output::json(&serde_json::json!({ "digest": hex }))?;
    } else {
        output::println(&hex)?;
    }
    Ok(ExitStatus::Success)
}
