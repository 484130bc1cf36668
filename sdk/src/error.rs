//! The error a handler returns, and the rule that sorts `?`-converted errors
//! into "try again" and "give up".

use std::any::Any;
use std::fmt;
use std::time::Duration;

use crate::wit::mailroom::plugin::types as wit;

/// Why a handler could not process an event: either worth another attempt
/// ([`Error::retry`], [`Error::retry_after`]) or never going to succeed
/// ([`Error::fatal`]).
///
/// Errors from other crates convert with `?` by one rule: an error that the
/// same event would hit again on every attempt is fatal, anything else is
/// retried. Concretely:
///
/// | source error | becomes |
/// | --- | --- |
/// | [`serde_json::Error`] (a payload that does not parse or serialize) | fatal |
/// | [`EmitError`](crate::EmitError) (the host refused a follow-up event) | fatal |
/// | [`std::str::Utf8Error`], [`std::string::FromUtf8Error`] | fatal |
/// | anything else implementing [`std::error::Error`] (I/O, timeouts, ...) | retry |
///
/// The reason kept by the host is the error's message followed by its
/// [`source`](std::error::Error::source) chain, separated by `: `. When the
/// rule does not fit, say what you mean explicitly, e.g.
/// `.map_err(|e| Error::fatal(e.to_string()))?`.
///
/// `Error` deliberately does not implement [`std::error::Error`]: that is what
/// makes the blanket `From` conversion above possible (as in `anyhow`).
#[derive(Clone, PartialEq, Eq)]
pub struct Error {
    kind: Kind,
    reason: String,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Retry { after: Option<Duration> },
    Fatal,
}

impl Error {
    /// A transient failure: the host tries the event again later, with
    /// exponential backoff, until its attempts are spent.
    pub fn retry(reason: impl Into<String>) -> Self {
        Self {
            kind: Kind::Retry { after: None },
            reason: reason.into(),
        }
    }

    /// A transient failure that should be tried again after `delay` rather than
    /// after the host's backoff (for example the `Retry-After` of a rate-limited
    /// API). The host caps the delay at its configured maximum backoff and
    /// rounds it down to whole milliseconds.
    pub fn retry_after(delay: Duration, reason: impl Into<String>) -> Self {
        Self {
            kind: Kind::Retry { after: Some(delay) },
            reason: reason.into(),
        }
    }

    /// A permanent failure: the event can never succeed (for example its
    /// payload is invalid), so the host dead-letters it at once.
    pub fn fatal(reason: impl Into<String>) -> Self {
        Self {
            kind: Kind::Fatal,
            reason: reason.into(),
        }
    }

    /// Whether the host will dead-letter the event at once.
    pub fn is_fatal(&self) -> bool {
        self.kind == Kind::Fatal
    }

    /// The delay asked for by [`Error::retry_after`], if any.
    pub fn delay(&self) -> Option<Duration> {
        match self.kind {
            Kind::Retry { after } => after,
            Kind::Fatal => None,
        }
    }

    /// Why the event failed, as the host will record it.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// Converts to the WIT type returned to the host.
    pub(crate) fn into_wit(self) -> wit::HandlerError {
        match self.kind {
            Kind::Fatal => wit::HandlerError::Fatal(self.reason),
            Kind::Retry { after } => wit::HandlerError::Retry(wit::RetryRequest {
                reason: self.reason,
                // Saturate rather than wrap: a delay beyond u64 milliseconds is
                // "as late as the host allows" either way.
                after_ms: after.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            }),
        }
    }
}

/// The conversion rule documented on [`Error`].
impl<E: std::error::Error + 'static> From<E> for Error {
    fn from(error: E) -> Self {
        let reason = chain(&error);
        if is_deterministic(&error) {
            Error::fatal(reason)
        } else {
            Error::retry(reason)
        }
    }
}

/// Whether `error` is one that the same input reproduces on every attempt.
///
/// A blanket `From` cannot be specialised per type on stable Rust, so the
/// types are told apart at run time.
fn is_deterministic(error: &dyn Any) -> bool {
    error.is::<serde_json::Error>()
        || error.is::<crate::EmitError>()
        || error.is::<std::str::Utf8Error>()
        || error.is::<std::string::FromUtf8Error>()
}

/// `error: source: source's source ...`, so no context is lost on the way
/// into the host's `last_error`.
fn chain(error: &dyn std::error::Error) -> String {
    let mut reason = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        reason.push_str(": ");
        reason.push_str(&cause.to_string());
        source = cause.source();
    }
    reason
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            Kind::Fatal => write!(f, "fatal: {}", self.reason),
            Kind::Retry { after: None } => write!(f, "retry: {}", self.reason),
            Kind::Retry { after: Some(d) } => write!(f, "retry after {d:?}: {}", self.reason),
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Display already says everything and reads better in test failures.
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn constructors_set_the_kind_and_reason() {
        let retry = Error::retry("db down");
        assert!(!retry.is_fatal());
        assert_eq!(retry.delay(), None);
        assert_eq!(retry.reason(), "db down");

        let later = Error::retry_after(Duration::from_secs(3), "rate limited");
        assert!(!later.is_fatal());
        assert_eq!(later.delay(), Some(Duration::from_secs(3)));

        let fatal = Error::fatal("bad payload");
        assert!(fatal.is_fatal());
        assert_eq!(fatal.delay(), None);
    }

    #[test]
    fn serde_json_errors_are_fatal() {
        let parse = serde_json::from_str::<u32>("nope").unwrap_err();
        let message = parse.to_string();
        let error = Error::from(parse);
        assert!(error.is_fatal());
        assert_eq!(error.reason(), message);
    }

    #[test]
    fn utf8_errors_are_fatal() {
        let bytes = vec![0xff, 0xfe];
        assert!(Error::from(std::str::from_utf8(&bytes).unwrap_err()).is_fatal());
        assert!(Error::from(String::from_utf8(bytes).unwrap_err()).is_fatal());
    }

    #[test]
    fn emit_errors_are_fatal() {
        let error = Error::from(crate::EmitError::TooManyEvents { limit: 100 });
        assert!(error.is_fatal());
    }

    #[test]
    fn io_and_other_errors_are_retried() {
        let io = std::io::Error::new(std::io::ErrorKind::TimedOut, "upstream timed out");
        let error = Error::from(io);
        assert!(!error.is_fatal());
        assert_eq!(error.reason(), "upstream timed out");

        let parse_int = "x".parse::<i32>().unwrap_err();
        assert!(!Error::from(parse_int).is_fatal());
    }

    #[test]
    fn question_mark_uses_the_rule() {
        fn parse(input: &str) -> Result<u32, Error> {
            Ok(serde_json::from_str(input)?)
        }
        fn read() -> Result<(), Error> {
            Err(std::io::Error::other("disk"))?
        }
        assert!(parse("{").unwrap_err().is_fatal());
        assert!(!read().unwrap_err().is_fatal());
    }

    #[test]
    fn the_reason_includes_the_source_chain() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl fmt::Display for Outer {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("calling the warehouse")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let error = Error::from(Outer(std::io::Error::other("connection reset")));
        assert_eq!(error.reason(), "calling the warehouse: connection reset");
    }

    #[test]
    fn converts_to_the_wit_error() {
        match Error::retry_after(Duration::from_millis(1500), "later").into_wit() {
            wit::HandlerError::Retry(request) => {
                assert_eq!(request.reason, "later");
                assert_eq!(request.after_ms, Some(1500));
            }
            other => panic!("expected retry, got {other:?}"),
        }
        match Error::retry("again").into_wit() {
            wit::HandlerError::Retry(request) => assert_eq!(request.after_ms, None),
            other => panic!("expected retry, got {other:?}"),
        }
        match Error::retry_after(Duration::MAX, "never").into_wit() {
            wit::HandlerError::Retry(request) => assert_eq!(request.after_ms, Some(u64::MAX)),
            other => panic!("expected retry, got {other:?}"),
        }
        match Error::fatal("no").into_wit() {
            wit::HandlerError::Fatal(reason) => assert_eq!(reason, "no"),
            other => panic!("expected fatal, got {other:?}"),
        }
    }

    #[test]
    fn display_says_what_the_host_will_do() {
        assert_eq!(Error::fatal("x").to_string(), "fatal: x");
        assert_eq!(Error::retry("y").to_string(), "retry: y");
        assert_eq!(
            Error::retry_after(Duration::from_secs(2), "z").to_string(),
            "retry after 2s: z"
        );
    }
}
