//! The `mailroom` binary: hands the command line to
//! [`mailroom::cli::run_command_line`], which runs it and prints why it
//! failed, if it did; the exit status says what kind of failure it was (see
//! `mailroom --help`).

fn main() -> std::process::ExitCode {
    mailroom::cli::run_command_line()
}
