//! Entry point: parse the command line, build the one runtime, run the command.
#![forbid(unsafe_code)]

use cachectl::cli::{Cli, Command};
use cachectl::{cmd, signal};
use clap::Parser;
use std::process::ExitCode;

#[cfg(all(target_env = "musl", feature = "mimalloc"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    cachectl::timings::init();
    match &cli.command {
        Command::HashFiles(args) => return cmd::hash_files::run(args),
        Command::Keys(args) => return cmd::keys::run(args),
        _ => {}
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(cachectl::error::code::BUG);
        }
    };
    runtime.block_on(async move {
        let command = async move {
            match cli.command {
                Command::Save(args) => cmd::save::run(args).await,
                Command::Restore(args) => cmd::restore::run(args).await,
                Command::Stats(args) => cmd::stats::run(args).await,
                Command::Prune(args) => cmd::prune::run(args).await,
                Command::Ls(args) => cmd::ls::run(args).await,
                Command::Rm(args) => cmd::rm::run(args).await,
                Command::HashFiles(_) | Command::Keys(_) => unreachable!("handled above"),
            }
        };
        tokio::select! {
            status = command => status,
            status = signal::interrupted() => {
                eprintln!("cachectl: interrupted; aborting open uploads");
                signal::abort_open_uploads().await;
                ExitCode::from(status)
            }
        }
    })
}
