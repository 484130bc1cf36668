//! A mailbox shared by async tasks. SQLite calls block, so each runs on
//! tokio's blocking pool, one at a time per connection.

use std::sync::{Arc, Mutex, PoisonError};

use super::{Mailbox, MailboxError};

/// A [`Mailbox`] usable from async code. Cloning shares the connection.
#[derive(Debug, Clone)]
pub struct SharedMailbox {
    inner: Arc<Mutex<Mailbox>>,
}

impl SharedMailbox {
    /// Shares `mailbox`.
    pub fn new(mailbox: Mailbox) -> Self {
        Self {
            inner: Arc::new(Mutex::new(mailbox)),
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
        match tokio::task::spawn_blocking(move || {
            // A panic inside `f` cannot leave the connection mid-transaction:
            // rusqlite rolls back an open transaction when it is dropped.
            let mut mailbox = inner.lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut mailbox)
        })
        .await
        {
            Ok(result) => result,
            Err(join) => std::panic::resume_unwind(join.into_panic()),
        }
    }
}
