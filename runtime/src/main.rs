//! The `mailroom` binary: parses the command line and hands it to
//! [`mailroom::cli::main`]. An error becomes `error: <reason>` on stderr and
//! exit status 1 (usage errors, reported by clap, exit with 2).

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let cli = mailroom::cli::Cli::parse();
    match mailroom::cli::main(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // `{:#}` keeps the whole chain of causes on one line.
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
