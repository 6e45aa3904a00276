//! `cachectl hash-files PATTERN...`

use crate::cli::HashFilesArgs;
use crate::error::{code, report, Hint};
use std::process::ExitCode;

pub fn run(args: &HashFilesArgs) -> ExitCode {
    let (cwd, _) = super::anchors();
    match crate::hash::hash_patterns(&cwd, &args.patterns) {
        Ok(hex) => {
            println!("{hex}");
            ExitCode::SUCCESS
        }
        Err(e) => report(&e, e.hint(), code::FAILED),
    }
}
