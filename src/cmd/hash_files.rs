//! `cachectl hash-files PATTERN...`: the digest `{{ hashFiles }}` puts in keys, on stdout.

use super::{Error, ExitStatus};
use crate::cli::HashFilesArgs;
use crate::output;

pub fn run(args: &HashFilesArgs) -> Result<ExitStatus, Error> {
    let (cwd, _) = super::anchors();
    let hex = crate::hash::hash_patterns(&cwd, &args.patterns)?;
    output::println(&hex)?;
    Ok(ExitStatus::Success)
}
