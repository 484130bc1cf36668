//! Log output for `mailroom run`: human-readable lines by default, one JSON
//! object per line for log collectors. Either way every delivery line carries
//! the message id, event type, plugin and attempt.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;

use crate::config::{LogConfig, LogFormat};

/// The log filter was not understood.
#[derive(Debug, thiserror::Error)]
#[error(
    "log.level `{level}` is not a valid filter ({reason}): use e.g. `info`, `debug` or `info,mailroom=debug`"
)]
pub struct LogSetupError {
    level: String,
    reason: String,
}

/// Installs the global subscriber, writing to stderr. Does nothing if one is
/// already installed (a program embedding the host keeps its own).
///
/// # Errors
///
/// [`LogSetupError`] for an invalid `log.level`.
pub fn init(config: &LogConfig) -> Result<(), LogSetupError> {
    let filter = EnvFilter::try_new(&config.level).map_err(|e| LogSetupError {
        level: config.level.clone(),
        reason: e.to_string(),
    })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only for a person at a terminal, not in a log file.
        .with_ansi(std::io::stderr().is_terminal())
        .with_span_events(FmtSpan::NONE);
    let _ = match config.format {
        LogFormat::Human => builder.with_target(false).try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
    Ok(())
}
