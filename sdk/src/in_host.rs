//! Running the built component in a real Mailroom host from `cargo test`:
//! [`build_component`] builds the crate under test for `wasm32-wasip2`, and
//! [`run_in_host`] delivers one event to it with `mailroom plugin run`, in
//! the host's sandbox and under its limits. What such a test sees is what a
//! host would do: the sandbox, the limits, traps and panics, the host's
//! checks of emitted events.
//!
//! It needs the `mailroom` binary: on `PATH`, or named by the `MAILROOM_BIN`
//! environment variable.
//!
//! ```no_run
//! use mailroom_sdk::{Event, testing};
//!
//! let wasm = testing::build_component().unwrap();
//! let run = testing::run_in_host(&wasm, &Event::new("greeting.requested", r#"{"name":"Ada"}"#)).unwrap();
//! assert_eq!(run.outcome, testing::HostOutcome::Ack);
//! assert_eq!(run.emitted[0].event_type, "greeting.sent");
//! ```

use std::ffi::OsString;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::testing::Emitted;
use crate::{Event, Priority};

/// How the host's delivery ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostOutcome {
    /// The handler succeeded: the host would acknowledge the event.
    Ack,
    /// A retryable failure (an error, a trap, a panic, a timeout, memory).
    Retry {
        /// Why, as the host records it.
        reason: String,
        /// The delay the handler asked for, if any.
        after: Option<Duration>,
    },
    /// A fatal failure: the host would dead-letter the event.
    Fatal {
        /// Why, as the host records it.
        reason: String,
    },
}

/// One delivery in the host: its outcome, the events emitted (only with
/// [`HostOutcome::Ack`]), and the plugin's log lines.
#[derive(Clone, Debug)]
pub struct HostRun {
    /// How it ended.
    pub outcome: HostOutcome,
    /// The follow-up events the host would commit.
    pub emitted: Vec<Emitted>,
    /// The plugin's log lines and stdout/stderr lines, in order.
    pub log: Vec<String>,
}

/// Why a component could not be built or run.
#[derive(Debug)]
pub struct HostError(String);

impl std::fmt::Display for HostError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for HostError {}

/// Builds the crate under test (`CARGO_MANIFEST_DIR`) with `cargo build
/// --release --target wasm32-wasip2` and returns the component's path.
///
/// # Errors
///
/// When cargo cannot run or the build fails (cargo's errors are on stderr).
pub fn build_component() -> Result<PathBuf, HostError> {
    let dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .ok_or_else(|| HostError("CARGO_MANIFEST_DIR is not set: run under `cargo test`".into()))?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let output = Command::new(cargo)
        .current_dir(&dir)
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .arg("--message-format=json-render-diagnostics")
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| HostError(format!("cannot run cargo: {e}")))?;
    if !output.status.success() {
        return Err(HostError(
            "cargo build --release --target wasm32-wasip2 failed (see the errors above)".into(),
        ));
    }
    output
        .stdout
        .split(|&b| b == b'\n')
        .filter_map(|line| serde_json::from_slice::<Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact")
        .filter_map(|m| {
            m["filenames"]
                .as_array()?
                .iter()
                .filter_map(Value::as_str)
                .find(|f| f.ends_with(".wasm"))
                .map(PathBuf::from)
        })
        .next_back()
        .ok_or_else(|| HostError("the build made no .wasm: is the crate a cdylib?".into()))
}

/// Delivers `event` to the component at `wasm` with `mailroom plugin run`:
/// its type, payload (which must be JSON), key, source, correlation id and
/// attempt. The event's id is the host's own.
///
/// # Errors
///
/// When `mailroom` cannot run, the host refuses the component, or the event
/// is not one it would deliver (its type not handled, a payload that is not
/// JSON).
pub fn run_in_host(wasm: &Path, event: &Event) -> Result<HostRun, HostError> {
    let mailroom = std::env::var_os("MAILROOM_BIN").unwrap_or_else(|| OsString::from("mailroom"));
    let mut command = Command::new(&mailroom);
    command
        .args(["plugin", "run"])
        .arg(wasm)
        .arg(event.event_type())
        .arg("-")
        .args(["--json", "--attempt", &event.attempt().to_string()])
        .args(["--max-attempts", &event.max_attempts().to_string()])
        .args(["--correlation-id", event.correlation_id()]);
    if let Some(key) = event.key() {
        command.args(["--key", key]);
    }
    if let Some(source) = event.source() {
        command.args(["--source", source]);
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            HostError(format!(
                "cannot run {}: {e}; put `mailroom` on PATH or set MAILROOM_BIN",
                mailroom.to_string_lossy()
            ))
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(event.payload())
            .map_err(|e| HostError(format!("cannot write the payload: {e}")))?;
    }
    let output = child
        .wait_with_output()
        .map_err(|e| HostError(format!("mailroom failed: {e}")))?;
    let report: Value = serde_json::from_slice(&output.stdout).map_err(|_| {
        HostError(format!(
            "mailroom plugin run failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    })?;
    Ok(parse(&report))
}

fn parse(report: &Value) -> HostRun {
    let reason = report["reason"].as_str().unwrap_or_default().to_owned();
    let outcome = match report["outcome"].as_str() {
        Some("ack") => HostOutcome::Ack,
        Some("fatal") => HostOutcome::Fatal { reason },
        _ => HostOutcome::Retry {
            reason,
            after: report["retry_after_ms"].as_u64().map(Duration::from_millis),
        },
    };
    let emitted = report["emitted"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| Emitted {
            event_type: e["event_type"].as_str().unwrap_or_default().to_owned(),
            payload: e["payload_text"]
                .as_str()
                .unwrap_or_default()
                .as_bytes()
                .to_vec(),
            key: e["key"].as_str().map(str::to_owned),
            priority: match e["priority"].as_str() {
                Some("low") => Priority::Low,
                Some("high") => Priority::High,
                _ => Priority::Normal,
            },
            delay: Duration::from_millis(e["delay_ms"].as_u64().unwrap_or(0)),
        })
        .collect();
    let log = report["log"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|line| line["message"].as_str().map(str::to_owned))
        .collect();
    HostRun {
        outcome,
        emitted,
        log,
    }
}
