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

use super::enqueue::insert_all;
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
    insert_all(tx, [(message, None)], &Policies::default(), now)
        .map(|mut enqueued| enqueued.remove(0))
        .map_err(|source| StoreError::Sqlite {
            store: tx.path().unwrap_or("the caller's database").to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::Mailbox;

    #[test]
    fn the_event_commits_and_rolls_back_with_the_callers_transaction() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("m.db");
        let store = Mailbox::open(&path).expect("create the store");
        let mut app = rusqlite::Connection::open(&path).expect("the application's connection");
        app.execute_batch("CREATE TABLE orders (id TEXT PRIMARY KEY)")
            .expect("app table");
        let order = |id: &str| {
            NewMessage::new("order.created", format!(r#"{{"order_id":"{id}"}}"#).into_bytes())
        };

        let tx = app.transaction().expect("begin");
        tx.execute("INSERT INTO orders VALUES ('o-1')", [])
            .expect("order");
        let gone = enqueue(&tx, &order("o-1")).expect("enqueue");
        tx.rollback().expect("rollback");
        assert!(store.message(gone.id).is_err(), "rolled back with the order");

        let tx = app.transaction().expect("begin");
        tx.execute("INSERT INTO orders VALUES ('o-2')", [])
            .expect("order");
        let kept = enqueue(&tx, &order("o-2").with_key("order-o-2")).expect("enqueue");
        tx.commit().expect("commit");
        let stored = store.message(kept.id).expect("committed with the order");
        assert_eq!(stored.summary.key.as_deref(), Some("order-o-2"));

        let tx = app.transaction().expect("begin");
        let again = enqueue(&tx, &order("o-2").with_key("order-o-2")).expect("enqueue");
        tx.commit().expect("commit");
        assert_eq!((again.id, again.duplicate), (kept.id, true));
        let invalid = app.transaction().expect("begin");
        assert!(matches!(
            enqueue(&invalid, &NewMessage::new("no spaces", b"{}".to_vec())),
            Err(StoreError::Invalid(_))
        ));
    }
}
