//! Entry point: parse the command line, build the one runtime, run the command, print a fatal
//! error once, return the exit code (README, "Exit codes").
#![forbid(unsafe_code)]

use cachectl::cli::Cli;
use cachectl::cmd::{self, Error};
use cachectl::error::{self, Hint};
use cachectl::signal;
use clap::Parser;
use std::process::ExitCode;

#[cfg(all(target_env = "musl", feature = "mimalloc"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    error::install_panic_hook();
    let cli = Cli::parse();
    cachectl::timings::init();
    let result = match cmd::run_offline(&cli) {
        Some(result) => result,
        None => match tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime.block_on(async move {
                if cli.command.forwards_signals() {
                    return cmd::run(cli).await;
                }
                let mut command = Box::pin(cmd::run(cli));
                tokio::select! {
                    result = &mut command => result,
                    status = signal::interrupted() => {
                        // See `signal`: take the open uploads, stop the command, abort them.
                        let open = signal::open_uploads();
                        let aborted = open.len();
                        drop(command);
                        signal::abort(open).await;
                        Err(Error::Interrupted { code: status, aborted })
                    }
                }
            }),
            Err(e) => Err(Error::Runtime(e)),
        },
    };
    match result {
        Ok(status) => status.into(),
        Err(e) => error::report(&e, e.hint(), e.exit_code()),
    }
}
