//! Idempotency keys that outlive their message: what a sweep did, and when
//! a remembered key is forgotten.
//!
//! Deleting a keyed message (ack, purge, cancel, or any statement) records
//! its key and id in the store, by a trigger on both backends, so no
//! deletion path has to remember to. An enqueue with a remembered key
//! answers the original id as a duplicate and stores nothing. A trigger
//! cannot read the runtime's clock, so the periodic sweep stamps newly
//! remembered keys with it, then forgets those stamped `key_retention`
//! ago: a key is remembered at least `key_retention` after its message is
//! gone, and at most one sweep interval longer. Forgetting runs in the
//! sweep, never in an enqueue, so enqueues do not slow down.

use std::time::Duration;

use crate::clock::{Millis, duration_ms};

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    /// Idempotency keys forgotten because their retention ran out.
    pub keys_forgotten: usize,
    /// Queued messages dead-lettered because they outlived their event
    /// type's ttl.
    pub expired: usize,
}

/// The default time a key is remembered after its message is gone.
pub const DEFAULT_KEY_RETENTION: Duration = Duration::from_secs(24 * 60 * 60);

/// The stamp at or before which a remembered key is forgotten at `now`.
pub(crate) fn forget_stamped_until(now: Millis, retention: Duration) -> Millis {
    now.saturating_sub(duration_ms(retention))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_kept_for_the_whole_retention() {
        let retention = Duration::from_secs(60);
        let stamped = 1_000_000;
        let kept = |now| stamped > forget_stamped_until(now, retention);
        assert!(kept(stamped));
        assert!(kept(stamped + 59_999));
        assert!(!kept(stamped + 60_000));
    }

    #[test]
    fn zero_retention_forgets_at_the_first_sweep() {
        assert_eq!(forget_stamped_until(5, Duration::ZERO), 5);
    }

    #[test]
    fn early_clocks_do_not_underflow() {
        assert!(forget_stamped_until(0, Duration::MAX) < 0);
    }
}
