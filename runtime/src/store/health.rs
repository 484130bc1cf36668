//! What a process has seen of its store: failures by kind (for the
//! `mailroom_store_errors_total` metric), which operations are failing now
//! (for `/readyz`), and whether the store reported damage, after which
//! nothing more is written to it.
//!
//! Every [`Store`](super::Store) handle records here; the host gives its
//! handles one shared [`StoreHealth`] (through
//! [`OpenOptions::health`](super::OpenOptions::health)), so damage seen by
//! the dispatcher also stops the ingest path.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use super::StoreError;

/// A failure older than this no longer makes the store "failing" when the
/// operation has not run since (it may not run again for a long while).
const STALE: Duration = Duration::from_secs(60);

/// A process's view of its store's health. Share it in an `Arc`.
#[derive(Debug, Default)]
pub struct StoreHealth {
    /// Failures so far, by [`StoreError::kind`], in [`StoreError::KINDS`] order.
    errors: [AtomicU64; StoreError::KINDS.len()],
    /// Operations whose latest run failed: when, and why.
    failing: Mutex<BTreeMap<&'static str, (Instant, String)>>,
    /// Set once the store reports damage.
    damaged: OnceLock<String>,
}

impl StoreHealth {
    /// Records the outcome of `operation`. Errors about the input (an
    /// invalid message, a lost lease, an unknown id) say nothing about the
    /// store and count as success.
    pub fn record<T>(&self, operation: &'static str, result: &Result<T, StoreError>) {
        let mut failing = self.failing.lock().unwrap_or_else(PoisonError::into_inner);
        match result {
            Err(e) if e.is_store_failure() => {
                let kind = StoreError::KINDS
                    .iter()
                    .position(|k| *k == e.kind())
                    .unwrap_or(StoreError::KINDS.len() - 1);
                self.errors[kind].fetch_add(1, Ordering::Relaxed);
                failing.insert(operation, (Instant::now(), e.to_string()));
                if e.is_corrupt() && self.damaged.set(e.to_string()).is_ok() {
                    tracing::error!(
                        "{e}. Mailroom has stopped writing to it: no more claims, outcomes or enqueues until it is restored and the host restarted"
                    );
                }
            }
            _ => {
                failing.remove(operation);
            }
        }
    }

    /// Failures so far of each kind, in [`StoreError::KINDS`] order.
    pub fn error_counts(&self) -> [(&'static str, u64); StoreError::KINDS.len()] {
        std::array::from_fn(|i| {
            (
                StoreError::KINDS[i],
                self.errors[i].load(Ordering::Relaxed),
            )
        })
    }

    /// What is wrong with the store now, one line per failing operation
    /// (empty when nothing is).
    pub fn problems(&self) -> Vec<String> {
        if let Some(damage) = self.damaged.get() {
            return vec![damage.clone()];
        }
        let failing = self.failing.lock().unwrap_or_else(PoisonError::into_inner);
        failing
            .iter()
            .filter(|(_, (at, _))| at.elapsed() < STALE)
            .map(|(operation, (_, why))| format!("{operation} failed: {why}"))
            .collect()
    }

    /// The damage the store reported, once it has: nothing more may be
    /// written to it.
    pub fn damage(&self) -> Option<&str> {
        self.damaged.get().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn locked() -> StoreError {
        StoreError::Locked {
            store: "s.db".into(),
            waited: Duration::from_secs(1),
        }
    }

    #[test]
    fn failures_are_counted_by_kind_and_cleared_by_success() {
        let health = StoreHealth::default();
        health.record::<()>("claim", &Err(locked()));
        health.record::<()>("claim", &Err(locked()));
        assert_eq!(health.error_counts()[0], ("locked", 2));
        assert_eq!(health.problems().len(), 1, "{:?}", health.problems());
        health.record("claim", &Ok(()));
        assert!(health.problems().is_empty());
        assert_eq!(health.error_counts()[0], ("locked", 2), "counters only grow");
    }

    #[test]
    fn input_errors_say_nothing_about_the_store() {
        let health = StoreHealth::default();
        let lost = StoreError::LeaseLost {
            id: crate::message::MessageId::new(),
        };
        health.record::<()>("settle", &Err(lost));
        assert!(health.problems().is_empty());
        assert!(health.error_counts().iter().all(|(_, n)| *n == 0));
    }

    #[test]
    fn damage_latches() {
        let health = StoreHealth::default();
        let corrupt = StoreError::Corrupt {
            store: "s.db".into(),
            reason: "database disk image is malformed".into(),
        };
        health.record::<()>("claim", &Err(corrupt));
        health.record("claim", &Ok(()));
        assert!(health.damage().is_some_and(|d| d.contains("mailroom check")));
        assert_eq!(health.problems().len(), 1);
    }
}
