//! cachectl: dependency caches for AWS CodeBuild, kept as zstd tarballs in S3 or a local directory.
//!
//! The library exists so `tests/` and `benches/` reach the internals; `main.rs` is a thin shell.
#![forbid(unsafe_code)]

pub mod archive;
pub mod aws_error;
pub mod cli;
pub mod cmd;
pub mod config;
pub mod env;
pub mod error;
pub mod hash;
pub mod inventory;
pub mod key;
pub mod metrics;
pub mod output;
pub mod progress;
pub mod prune;
pub mod signal;
pub mod state;
pub mod store;
pub mod time;
pub mod timings;
pub mod transfer;
