//! The outbox on SQLite: an application that keeps its own tables in the
//! store file enqueues inside its own transaction, so its rows and its
//! events commit together (or not at all). A running host notices the
//! commit through the file's WAL, as it does any other process's enqueue.
//!
//! ```no_run
//! # fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use mailroom::message::NewMessage;
//! use mailroom::store::sqlite::outbox;
//!
//! // The store must exist (a host or `mailroom enqueue` creates it).
//! let mut conn = rusqlite::Connection::open("mailroom.db")?;
//! let tx = conn.transaction()?;
//! tx.execute("INSERT INTO orders (id) VALUES (?1)", ["o-1"])?;
//! outbox::enqueue(&tx, &NewMessage::new("order.created", br#"{"order_id":"o-1"}"#.to_vec()))?;
//! tx.commit()?; // the order and its event, together
//! # Ok(())
//! # }
//! ```

use super::enqueue::insert;
use crate::message::{DEFAULT_MAX_PAYLOAD_BYTES, NewMessage};
use crate::state_machine::Policies;
use crate::store::{Enqueued, StoreError};

/// Enqueues `message` inside `tx`, a transaction on the store file. The
/// message takes the default attempt budget unless it names its own. Its
/// time is the system clock's.
///
/// # Errors
///
/// [`StoreError::Invalid`] when the message breaks a rule (nothing is
/// written), or the SQLite failure (the caller's transaction should then be
/// rolled back).
pub fn enqueue(tx: &rusqlite::Transaction<'_>, message: &NewMessage) -> Result<Enqueued, StoreError> {
    message.validate(DEFAULT_MAX_PAYLOAD_BYTES)?;
    let now = crate::clock::Clock::now_ms(&crate::clock::SystemClock);
    insert(tx, message, &Policies::default(), now, None).map_err(|source| StoreError::Sqlite {
        store: tx.path().unwrap_or("the caller's database").to_owned(),
        source,
    })
}
