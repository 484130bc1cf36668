//! A mailbox shared by async tasks. SQLite calls block, so each runs on
//! tokio's blocking pool, one at a time per connection.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::{Mailbox, MailboxError};

/// A [`Mailbox`] usable from async code. Cloning shares the connection.
#[derive(Debug, Clone)]
pub struct SharedMailbox {
    inner: Arc<Mutex<Mailbox>>,
    /// Nanoseconds spent inside calls, all clones together.
    busy_ns: Arc<AtomicU64>,
}

impl SharedMailbox {
    /// Shares `mailbox`.
    pub fn new(mailbox: Mailbox) -> Self {
        Self {
            inner: Arc::new(Mutex::new(mailbox)),
            busy_ns: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Runs `f` on the connection, off the async threads.
    ///
    /// # Errors
    ///
    /// Whatever `f` returns.
    pub async fn call<T, F>(&self, f: F) -> Result<T, MailboxError>
    where
        F: FnOnce(&mut Mailbox) -> Result<T, MailboxError> + Send + 'static,
        T: Send + 'static,
    {
        let inner = self.inner.clone();
        let busy_ns = self.busy_ns.clone();
        match tokio::task::spawn_blocking(move || {
            // A panic inside `f` cannot leave the connection mid-transaction:
            // rusqlite rolls back an open transaction when it is dropped.
            let mut mailbox = inner.lock().unwrap_or_else(PoisonError::into_inner);
            let started = Instant::now();
            let result = f(&mut mailbox);
            let took = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
            busy_ns.fetch_add(took, Ordering::Relaxed);
            result
        })
        .await
        {
            Ok(result) => result,
            Err(join) => std::panic::resume_unwind(join.into_panic()),
        }
    }

    /// The time spent inside [`SharedMailbox::call`]s so far, holding the
    /// connection. Its growth over a span of time, divided by that span, is
    /// how saturated the connection is (near 100%: the store is the
    /// bottleneck).
    pub fn busy(&self) -> Duration {
        Duration::from_nanos(self.busy_ns.load(Ordering::Relaxed))
    }
}
