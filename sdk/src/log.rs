//! Logging into the host's log.
//!
//! Lines are tagged by the host with the plugin and the message being handled,
//! and capped in length and number per delivery. Use the macros, which take
//! `format!` arguments and build the line only when the host keeps lines of
//! that level (see [`enabled`]), so a `debug!` on a host that logs `info` and
//! above costs one check:
//!
//! ```
//! use mailroom_sdk::log;
//!
//! let order_id = "o-42";
//! log::info!("accepted order {order_id}");
//! log::warn!("{} items out of stock", 2);
//! ```
//!
//! Outside a host (native unit tests) lines go to stderr.

use crate::wit::mailroom::plugin::logging as wit;

/// Severity of a log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Very detailed tracing.
    Trace,
    /// Diagnostic detail.
    Debug,
    /// Normal operation.
    Info,
    /// Something unexpected that the plugin handled.
    Warn,
    /// A failure.
    Error,
}

/// Writes one line to the host log. The macros ([`info!`] and friends) call
/// this; use it directly when the level is only known at run time.
pub fn write(level: Level, message: &str) {
    crate::host::log(to_wit(level), message);
}

/// Whether a line of `level` written now would reach the host log: the host
/// keeps lines of that level, and this delivery has not used up its lines.
/// The macros ask it before building their line; ask it yourself before other
/// work done only for a log line. Natively (unit tests) it is always `true`.
///
/// ```
/// use mailroom_sdk::log::{self, Level};
///
/// let readings = [12.5, 3.0, 7.25];
/// if log::enabled(Level::Debug) {
///     // Summed only for the log line.
///     let sum: f64 = readings.iter().sum();
///     log::debug!("{} readings, sum {sum}", readings.len());
/// }
/// ```
pub fn enabled(level: Level) -> bool {
    crate::host::log_enabled(to_wit(level))
}

fn to_wit(level: Level) -> wit::Level {
    match level {
        Level::Trace => wit::Level::Trace,
        Level::Debug => wit::Level::Debug,
        Level::Info => wit::Level::Info,
        Level::Warn => wit::Level::Warn,
        Level::Error => wit::Level::Error,
    }
}

// `#[macro_export]` puts macros at the crate root; these hidden names are
// re-exported below so authors write `log::info!`, next to `log::Level`.

#[doc(hidden)]
#[macro_export]
macro_rules! __mailroom_log {
    ($level:ident, $($arg:tt)+) => {
        if $crate::log::enabled($crate::log::Level::$level) {
            $crate::log::write($crate::log::Level::$level, &::std::format!($($arg)+))
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __mailroom_trace {
    ($($arg:tt)+) => { $crate::__mailroom_log!(Trace, $($arg)+) };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __mailroom_debug {
    ($($arg:tt)+) => { $crate::__mailroom_log!(Debug, $($arg)+) };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __mailroom_info {
    ($($arg:tt)+) => { $crate::__mailroom_log!(Info, $($arg)+) };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __mailroom_warn {
    ($($arg:tt)+) => { $crate::__mailroom_log!(Warn, $($arg)+) };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __mailroom_error {
    ($($arg:tt)+) => { $crate::__mailroom_log!(Error, $($arg)+) };
}

/// Logs a [`Level::Trace`] line; takes `format!` arguments.
#[doc(inline)]
pub use crate::__mailroom_trace as trace;

/// Logs a [`Level::Debug`] line; takes `format!` arguments.
#[doc(inline)]
pub use crate::__mailroom_debug as debug;

/// Logs a [`Level::Info`] line; takes `format!` arguments.
#[doc(inline)]
pub use crate::__mailroom_info as info;

/// Logs a [`Level::Warn`] line; takes `format!` arguments.
#[doc(inline)]
pub use crate::__mailroom_warn as warn;

/// Logs a [`Level::Error`] line; takes `format!` arguments.
#[doc(inline)]
pub use crate::__mailroom_error as error;
