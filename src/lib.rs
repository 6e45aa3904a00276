//! cachectl: dependency caches for AWS CodeBuild, kept as zstd tarballs in S3 or a local directory.
//!
//! `main.rs` parses the command line and calls [`cmd`]; tests and benchmarks reach the
//! pipeline ([`transfer`]), the store contract ([`store`], [`key`]), the metrics publisher
//! ([`metrics`]) and the outcomes ([`outcome`]).
//! Everything else is private to the crate, so the compiler reports what nothing uses.
#![forbid(unsafe_code)]

mod archive;
mod aws;
pub mod cli;
pub mod cmd;
mod config;
mod env;
pub mod error;
mod hash;
mod inventory;
pub mod key;
pub mod metrics;
pub mod outcome;
mod output;
mod progress;
#[cfg(feature = "provision")]
mod provision;
mod prune;
pub mod sign;
pub mod signal;
mod state;
pub mod store;
mod subprocess;
mod time;
pub mod timings;
pub mod transfer;
mod units;
