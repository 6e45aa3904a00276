//! Integration tests: drive the `cachectl` binary against a local store and `moto_server` S3.
//!
//! One test binary (`cargo test --test it`). `support` holds the harness: temp sandboxes on
//! tmpfs, the command builder, the shared moto servers, the tree generator and snapshots, and
//! hand-made archives per docs/FORMAT.md. The other modules hold the tests.

mod support;

mod archive_safety;
mod bootstrap;
mod codebuild;
mod contract;
mod exit_codes;
mod hardening;
mod harness;
mod hash_files;
mod metrics;
mod nonroot;
mod pipeline;
mod placement;
#[cfg(feature = "provision")]
mod provision;
mod prune;
mod run;
mod s3_errors;
mod store;
mod store_layout;
mod trust;
