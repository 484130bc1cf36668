//! How a failed command ends: the exit status that tells scripts what kind of
//! failure it was, and the one line (or, after `--json`, the one JSON object)
//! that says why.
//!
//! Statuses (also in `mailroom --help`):
//!
//! | status | meaning                                                      |
//! | ------ | ------------------------------------------------------------ |
//! | 0      | success                                                      |
//! | 1      | the command failed (the error says why)                      |
//! | 2      | bad input: command line, configuration, event, id or file    |
//! | 3, 4   | `mailroom plugin run`: the handler failed, retryable / fatal |
//! | 5      | the store is unavailable: missing, unreachable, locked, refused or damaged |
//! | 6      | refused: over capacity (an event type's `max_queued`); retry later |
//! | 130    | `mailroom run`: stopped at once by a second SIGINT or SIGTERM |

use std::process::ExitCode;

use crate::config::ConfigError;
use crate::host::HostError;
use crate::message::InvalidInput;
use crate::store::StoreError;

use super::ExitStatus;

/// The command failed for a reason not listed below.
pub const EXIT_FAILED: u8 = 1;
/// The command line, configuration or input was refused (clap's usage errors
/// exit with 2 too).
pub const EXIT_BAD_INPUT: u8 = 2;
/// The store could not be used: missing, unreachable, locked, refused or damaged.
pub const EXIT_STORE_UNAVAILABLE: u8 = 5;
/// An enqueue was refused because an event type's queue is full
/// (`max_queued`): nothing was stored, retrying later may succeed.
pub const EXIT_OVER_CAPACITY: u8 = 6;

/// The `Exit status:` section of `mailroom --help`.
pub const EXIT_STATUS_HELP: &str = "Exit status:\n  \
    0  success\n  \
    1  the command failed (the error line says why)\n  \
    2  bad input: a command line, configuration, event, id or file that was refused\n  \
    3  mailroom plugin run: the handler failed and would be retried\n  \
    4  mailroom plugin run: the handler failed for good\n  \
    5  the store is unavailable: missing, unreachable, locked, refused or damaged\n  \
    6  refused: over capacity (an event type's max_queued); nothing stored, retry later\n  \
    130  mailroom run: stopped at once by a second SIGINT or SIGTERM (leases left are reclaimed later)\n\n\
    With --json, an error is printed to standard output as \
    {\"error\": {\"code\": \"bad_input\"|\"store_unavailable\"|\"over_capacity\"|\"failed\", \"message\": \"...\"}}.";

/// Input a command refused: an argument, event, id or file it cannot use.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

/// A [`BadInput`] error, for `?`.
pub fn bad_input(message: impl Into<String>) -> anyhow::Error {
    BadInput(message.into()).into()
}

/// What kind of failure `error` is, as an exit status.
fn status(error: &anyhow::Error) -> u8 {
    for cause in error.chain() {
        if let Some(ExitStatus(status)) = cause.downcast_ref::<ExitStatus>() {
            return *status;
        }
        if cause.is::<BadInput>() || cause.is::<ConfigError>() || cause.is::<InvalidInput>() {
            return EXIT_BAD_INPUT;
        }
        if let Some(e) = cause.downcast_ref::<StoreError>() {
            return store_status(e);
        }
        match cause.downcast_ref::<HostError>() {
            // Transparent: the store error is not a cause of its own.
            Some(HostError::Store(e)) => return store_status(e),
            Some(HostError::PluginDirMissing { .. } | HostError::PluginDirNotAFolder { .. }) => {
                return EXIT_BAD_INPUT;
            }
            _ => {}
        }
    }
    EXIT_FAILED
}

fn store_status(error: &StoreError) -> u8 {
    match error {
        StoreError::Invalid(_)
        | StoreError::InvalidInBatch { .. }
        | StoreError::BadUrl { .. }
        | StoreError::NoSuchMessage { .. }
        | StoreError::WrongState { .. } => EXIT_BAD_INPUT,
        StoreError::MissingDirectory { .. }
        | StoreError::NotFound { .. }
        | StoreError::NoSchema { .. }
        | StoreError::NotADatabase { .. }
        | StoreError::Unreachable { .. }
        | StoreError::LoginRefused { .. }
        | StoreError::PermissionDenied { .. }
        | StoreError::Locked { .. }
        | StoreError::SchemaTooNew { .. }
        | StoreError::SchemaTooOld { .. }
        | StoreError::NotAStore { .. }
        | StoreError::DiskFull { .. }
        | StoreError::ReadOnly { .. }
        | StoreError::Unusable { .. }
        | StoreError::Corrupt { .. }
        | StoreError::Sqlite { .. }
        | StoreError::Postgres { .. } => EXIT_STORE_UNAVAILABLE,
        StoreError::OverCapacity { .. } => EXIT_OVER_CAPACITY,
        StoreError::LeaseLost { .. } => EXIT_FAILED,
    }
}

/// The error's causes on one line, each said once: a cause whose text an
/// outer message already quotes (`cannot serve HTTP on …: Address already in
/// use`) is not repeated after it.
pub fn one_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

/// Says why the command failed, on stderr (or, for `--json`, as a JSON
/// object on stdout), and returns the exit status. An [`ExitStatus`] has been
/// explained by its command already: nothing more is printed.
pub fn report(error: &anyhow::Error, json: bool) -> ExitCode {
    let status = status(error);
    if error.is::<ExitStatus>() {
        return ExitCode::from(status);
    }
    let message = one_line(error);
    if json {
        let code = match status {
            EXIT_BAD_INPUT => "bad_input",
            EXIT_STORE_UNAVAILABLE => "store_unavailable",
            EXIT_OVER_CAPACITY => "over_capacity",
            _ => "failed",
        };
        let body = serde_json::json!({ "error": { "code": code, "message": message } });
        println!("{body}");
    } else {
        eprintln!("error: {message}");
    }
    ExitCode::from(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot serve HTTP on 127.0.0.1:1: {source}")]
    struct Outer {
        #[source]
        source: std::io::Error,
    }

    #[test]
    fn a_cause_quoted_by_its_outer_message_is_said_once() {
        let io = std::io::Error::new(std::io::ErrorKind::AddrInUse, "Address already in use");
        let e = anyhow::Error::new(Outer { source: io }).context("cannot start the host");
        assert_eq!(
            one_line(&e),
            "cannot start the host: cannot serve HTTP on 127.0.0.1:1: Address already in use"
        );
    }

    #[test]
    fn a_cause_not_quoted_is_kept() {
        let e = anyhow::anyhow!("disk full").context("cannot write the report");
        assert_eq!(one_line(&e), "cannot write the report: disk full");
    }

    #[test]
    fn statuses_follow_the_kind_of_failure() {
        assert_eq!(
            status(&bad_input("bad id").context("dlq show")),
            EXIT_BAD_INPUT
        );
        let missing = StoreError::NotFound {
            path: "x.db".into(),
        };
        assert_eq!(status(&anyhow::Error::new(missing)), EXIT_STORE_UNAVAILABLE);
        assert_eq!(status(&anyhow::anyhow!("something else")), EXIT_FAILED);
        assert_eq!(status(&ExitStatus(4).into()), 4);
    }
}
