//! The `mailroom` binary: parses the command line and hands it to
//! [`mailroom::cli::main`]. An error becomes `error: <reason>` on stderr and
//! exit status 1 (usage errors, reported by clap, exit with 2); a command
//! whose status says more returns a [`mailroom::cli::ExitStatus`].

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let cli = mailroom::cli::Cli::parse();
    match mailroom::cli::main(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // The command has said why; the status tells scripts what happened.
        Err(e) if e.is::<mailroom::cli::ExitStatus>() => {
            ExitCode::from(e.downcast_ref::<mailroom::cli::ExitStatus>().map_or(1, |s| s.0))
        }
        Err(e) => {
            // `{:#}` keeps the whole chain of causes on one line.
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
