//! The decisions of the retry / dead-letter state machine, as pure functions.
//!
//! ```text
//! enqueue ──► queued ──claim──► inflight ──ok──────────────► (acked: removed)
//!               ▲                   │
//!               │   retryable error │ attempts < max: available_at = now + backoff(attempts)
//!               └───────────────────┤
//!                                   │ fatal error, or attempts == max, or lease expired at max
//!                                   ▼
//!                                 dead ──redrive──► queued (attempts = 0)
//!                                   └────purge────► removed
//! ```
//!
//! Nothing here does I/O or reads the clock: the mailbox passes in the
//! message's counters, the time and a jitter sample, and executes the
//! [`Transition`] it gets back.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::{Millis, duration_ms};

/// Where a stored message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageState {
    /// Waiting to be claimed once due (and once its event type has a handler).
    Queued,
    /// Claimed under a lease; a handler is working on it.
    Inflight,
    /// Dead-lettered: it will not be tried again unless redriven.
    Dead,
}

impl MessageState {
    /// Every state, in diagram order.
    pub const ALL: [MessageState; 3] = [Self::Queued, Self::Inflight, Self::Dead];

    /// The value stored in the `state` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Inflight => "inflight",
            Self::Dead => "dead",
        }
    }
}

impl fmt::Display for MessageState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A state name that is not one of `queued`, `inflight`, `dead`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown message state `{0}`")]
pub struct UnknownState(pub String);

impl FromStr for MessageState {
    type Err = UnknownState;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| UnknownState(s.to_owned()))
    }
}

/// How often, and how patiently, messages of one event type are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryPolicy {
    /// Attempts before a failing message is dead-lettered (at least 1).
    pub max_attempts: u32,
    /// The delay after the first failed attempt; it doubles with each attempt.
    #[serde(with = "humantime_serde")]
    pub backoff_base: Duration,
    /// The longest delay between two attempts, also the cap on a delay a
    /// handler asks for.
    #[serde(with = "humantime_serde")]
    pub backoff_cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 10,
            backoff_base: Duration::from_secs(1),
            backoff_cap: Duration::from_secs(10 * 60),
        }
    }
}

/// Limits on one event type's queue beyond its retry policy; `None` is no
/// limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueLimits {
    /// A message not handled within this time of its enqueue is
    /// dead-lettered, never delivered.
    pub ttl: Option<Duration>,
    /// The most deliveries of this type at once, per host.
    pub concurrency: Option<usize>,
    /// The most messages of this type queued at once: an enqueue that
    /// would exceed it is refused whole.
    pub max_queued: Option<u64>,
}

/// The retry policy of every event type: a default and per-type overrides,
/// and the per-type queue limits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policies {
    /// Applies to every event type without an override.
    pub default: RetryPolicy,
    /// Per event type.
    pub by_event_type: HashMap<String, RetryPolicy>,
    /// Queue limits per event type (none for a type not named).
    pub limits: HashMap<String, QueueLimits>,
}

impl Policies {
    /// The policy for `event_type`.
    pub fn for_event_type(&self, event_type: &str) -> &RetryPolicy {
        self.by_event_type.get(event_type).unwrap_or(&self.default)
    }

    /// The queue limits of `event_type`.
    pub fn limits(&self, event_type: &str) -> QueueLimits {
        self.limits.get(event_type).copied().unwrap_or_default()
    }

    /// The event types with a ttl, and their ttl.
    pub fn ttls(&self) -> impl Iterator<Item = (&str, Duration)> {
        self.limits
            .iter()
            .filter_map(|(t, l)| l.ttl.map(|ttl| (t.as_str(), ttl)))
    }
}

/// Whether a message enqueued at `created_at` has outlived `ttl` at `now`:
/// then it must be dead-lettered, never delivered.
pub fn is_expired(created_at: Millis, now: Millis, ttl: Option<Duration>) -> bool {
    ttl.is_some_and(|ttl| now.saturating_sub(created_at) >= duration_ms(ttl))
}

/// The enqueue time at or before which a message with `ttl` has expired
/// at `now`.
pub fn expired_if_created_by(now: Millis, ttl: Duration) -> Millis {
    now.saturating_sub(duration_ms(ttl))
}

/// The last error of a message that expired with `ttl`.
pub fn expiry_reason(ttl: Duration) -> String {
    format!(
        "expired after {}: not handled within its event type's ttl",
        humantime::format_duration(ttl)
    )
}

/// Why an attempt did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The failure may pass: try again later, after `after` if the handler asked
    /// for a delay, else after the policy's backoff. Traps, timeouts and memory
    /// overruns are retryable.
    Retry {
        /// What went wrong.
        reason: String,
        /// The delay the handler asked for.
        after: Option<Duration>,
    },
    /// The message can never succeed: dead-letter it now.
    Fatal {
        /// What went wrong.
        reason: String,
    },
    /// The lease ran out (or its owner died) before the attempt finished.
    LeaseExpired,
    /// The message outlived its event type's ttl before it was delivered.
    Expired {
        /// The ttl.
        ttl: Duration,
    },
}

/// What the mailbox does to a claimed message after a failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// Back to `queued`, due at `available_at`.
    Requeue {
        /// When the next attempt may start.
        available_at: Millis,
        /// The reason kept as `last_error`, already truncated.
        last_error: String,
    },
    /// To `dead`.
    Dead {
        /// The reason kept as `last_error`, already truncated.
        last_error: String,
    },
}

/// The longest `last_error` kept, in bytes.
pub const MAX_ERROR_BYTES: usize = 4096;

/// Decides what follows a failed (or abandoned) attempt.
///
/// `attempts` counts the attempt that just failed (claiming increments it).
/// `jitter` is a sample from `[0, 1)`; see [`backoff`].
pub fn after_failure(
    failure: &Failure,
    attempts: u32,
    max_attempts: u32,
    policy: &RetryPolicy,
    now: Millis,
    jitter: f64,
) -> Transition {
    let (reason, requested) = match failure {
        Failure::Fatal { reason } => {
            return Transition::Dead {
                last_error: truncate_error(&format!("fatal: {reason}")),
            };
        }
        Failure::Expired { ttl } => {
            return Transition::Dead {
                last_error: expiry_reason(*ttl),
            };
        }
        Failure::Retry { reason, after } => (reason.clone(), *after),
        Failure::LeaseExpired => (
            format!(
                "lease expired during attempt {attempts}: the host stopped or hung before finishing it"
            ),
            None,
        ),
    };
    if attempts >= max_attempts {
        return Transition::Dead {
            last_error: truncate_error(&format!(
                "gave up after {attempts} attempt{}: {reason}",
                if attempts == 1 { "" } else { "s" }
            )),
        };
    }
    let delay = match requested {
        Some(after) => after.min(policy.backoff_cap),
        None => backoff(attempts, policy, jitter),
    };
    Transition::Requeue {
        available_at: now.saturating_add(duration_ms(delay)),
        last_error: truncate_error(&reason),
    }
}

/// The delay before the attempt after `attempts` failed ones: `base * 2^(attempts-1)`,
/// capped at `cap`, then reduced by up to half by `jitter` (in `[0, 1)`), so
/// messages that failed together do not all come back at once. The result is
/// never below half the capped delay nor above it.
pub fn backoff(attempts: u32, policy: &RetryPolicy, jitter: f64) -> Duration {
    let exponent = i32::try_from(attempts.saturating_sub(1).min(63)).unwrap_or(63);
    // In f64 seconds: exact for the powers of two involved, and no overflow
    // for any attempt count (2^63 s is finite; the cap bounds the result).
    let uncapped = policy.backoff_base.as_secs_f64() * 2f64.powi(exponent);
    let capped = Duration::from_secs_f64(uncapped.min(policy.backoff_cap.as_secs_f64()));
    let jitter = jitter.clamp(0.0, 1.0);
    capped.mul_f64(1.0 - jitter / 2.0)
}

/// Truncates an error to [`MAX_ERROR_BYTES`] on a character boundary, saying
/// how long it was.
pub fn truncate_error(reason: &str) -> String {
    truncate_text(reason, MAX_ERROR_BYTES)
}

/// Truncates `text` to at most `max` bytes on a character boundary, ending in
/// a marker that says how long it was.
pub fn truncate_text(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let marker = format!("… (truncated, {} bytes in all)", text.len());
    let mut cut = max.saturating_sub(marker.len());
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{marker}", &text[..cut])
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Millis = 1_000_000;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 5,
            backoff_base: Duration::from_secs(1),
            backoff_cap: Duration::from_secs(60),
        }
    }

    fn retry(reason: &str) -> Failure {
        Failure::Retry {
            reason: reason.into(),
            after: None,
        }
    }

    #[test]
    fn state_names_round_trip() {
        for state in MessageState::ALL {
            assert_eq!(state.as_str().parse::<MessageState>(), Ok(state));
        }
        assert!("acked".parse::<MessageState>().is_err());
    }

    #[test]
    fn retry_below_max_requeues_with_backoff() {
        let t = after_failure(&retry("boom"), 1, 5, &policy(), NOW, 0.0);
        assert_eq!(
            t,
            Transition::Requeue {
                available_at: NOW + 1000,
                last_error: "boom".into()
            }
        );
        let t = after_failure(&retry("boom"), 3, 5, &policy(), NOW, 0.0);
        assert_eq!(
            t,
            Transition::Requeue {
                available_at: NOW + 4000,
                last_error: "boom".into()
            }
        );
    }

    #[test]
    fn retry_at_max_is_dead() {
        let t = after_failure(&retry("boom"), 5, 5, &policy(), NOW, 0.0);
        assert_eq!(
            t,
            Transition::Dead {
                last_error: "gave up after 5 attempts: boom".into()
            }
        );
    }

    #[test]
    fn fatal_is_dead_at_once() {
        let fatal = Failure::Fatal {
            reason: "bad field".into(),
        };
        for attempts in [1, 4] {
            assert_eq!(
                after_failure(&fatal, attempts, 5, &policy(), NOW, 0.5),
                Transition::Dead {
                    last_error: "fatal: bad field".into()
                }
            );
        }
    }

    #[test]
    fn lease_expiry_requeues_then_dies_at_max() {
        match after_failure(&Failure::LeaseExpired, 2, 5, &policy(), NOW, 0.0) {
            Transition::Requeue {
                available_at,
                last_error,
            } => {
                assert_eq!(available_at, NOW + 2000);
                assert!(
                    last_error.contains("lease expired during attempt 2"),
                    "{last_error}"
                );
            }
            other => panic!("expected requeue, got {other:?}"),
        }
        match after_failure(&Failure::LeaseExpired, 5, 5, &policy(), NOW, 0.0) {
            Transition::Dead { last_error } => {
                assert!(last_error.starts_with("gave up after 5 attempts: lease expired"));
            }
            other => panic!("expected dead, got {other:?}"),
        }
    }

    #[test]
    fn requested_delay_is_honoured_and_capped() {
        let asked = |secs| Failure::Retry {
            reason: "later".into(),
            after: Some(Duration::from_secs(secs)),
        };
        assert_eq!(
            after_failure(&asked(7), 1, 5, &policy(), NOW, 0.9),
            Transition::Requeue {
                available_at: NOW + 7000,
                last_error: "later".into()
            }
        );
        assert_eq!(
            after_failure(&asked(3600), 1, 5, &policy(), NOW, 0.0),
            Transition::Requeue {
                available_at: NOW + 60_000,
                last_error: "later".into()
            }
        );
    }

    #[test]
    fn backoff_doubles_caps_and_jitters_within_half() {
        let p = policy();
        let secs = |a, j| backoff(a, &p, j).as_secs_f64();
        assert_eq!(secs(1, 0.0), 1.0);
        assert_eq!(secs(2, 0.0), 2.0);
        assert_eq!(secs(6, 0.0), 32.0);
        assert_eq!(secs(7, 0.0), 60.0);
        assert_eq!(secs(u32::MAX, 0.0), 60.0);
        assert_eq!(secs(7, 0.999_999), 30.000_03);
        for j in [0.0, 0.25, 0.5, 0.75, 0.999] {
            let d = secs(3, j);
            assert!((2.0..=4.0).contains(&d), "{d}");
        }
        // A zero base never overflows and never waits.
        let zero = RetryPolicy {
            backoff_base: Duration::ZERO,
            ..p
        };
        assert_eq!(backoff(40, &zero, 0.0), Duration::ZERO);
    }

    #[test]
    fn errors_are_truncated_on_char_boundaries() {
        let long = "é".repeat(10_000);
        let t = truncate_error(&long);
        assert!(t.len() <= MAX_ERROR_BYTES, "{}", t.len());
        assert!(t.ends_with("(truncated, 20000 bytes in all)"));
        assert_eq!(truncate_error("short"), "short");
        let t = after_failure(&retry(&long), 1, 5, &policy(), NOW, 0.0);
        let Transition::Requeue { last_error, .. } = t else {
            panic!("expected requeue")
        };
        assert!(last_error.len() <= MAX_ERROR_BYTES);
    }

    #[test]
    fn per_event_type_policy_overrides_default() {
        let mut policies = Policies::default();
        policies.by_event_type.insert("slow".into(), policy());
        assert_eq!(policies.for_event_type("slow").max_attempts, 5);
        assert_eq!(policies.for_event_type("other").max_attempts, 10);
    }

    #[test]
    fn a_message_expires_at_its_ttl_and_not_before() {
        let ttl = Some(Duration::from_secs(30));
        assert!(!is_expired(NOW, NOW + 29_999, ttl));
        assert!(is_expired(NOW, NOW + 30_000, ttl));
        assert!(!is_expired(NOW, NOW + 1_000_000_000, None), "no ttl, no expiry");
        assert_eq!(expired_if_created_by(NOW + 30_000, Duration::from_secs(30)), NOW);
        assert!(!is_expired(NOW, NOW - 5, ttl), "a clock behind the enqueue");
    }

    #[test]
    fn an_expired_message_is_dead_at_once_whatever_its_attempts() {
        let failure = Failure::Expired {
            ttl: Duration::from_secs(90),
        };
        assert_eq!(
            after_failure(&failure, 1, 5, &policy(), NOW, 0.0),
            Transition::Dead {
                last_error: "expired after 1m 30s: not handled within its event type's ttl".into()
            }
        );
    }

}
