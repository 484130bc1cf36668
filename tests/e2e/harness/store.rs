//! Reading the store file directly, for what no subcommand lists: the
//! messages of one event type with their state, attempts, correlation id and
//! payload (the follow-ups a handler emitted wait in the queue when no plugin
//! handles them, and that is where the tests count and inspect them).
//!
//! It reads the `messages` table of the schema in
//! `runtime/src/store/sqlite/schema.rs`, and never writes.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use serde_json::Value;

/// One stored message.
#[derive(Debug, Clone)]
pub struct Message {
    /// Its id.
    pub id: String,
    /// `queued`, `inflight` or `dead`.
    pub state: String,
    /// Attempts spent.
    pub attempts: u32,
    /// Idempotency key.
    pub key: Option<String>,
    /// The correlation id (the id of the message a follow-up came from, for
    /// a chain started without one).
    pub correlation_id: String,
    /// Which plugin emitted it (`plugin:<name>`), or the producer's source.
    pub source: Option<String>,
    /// The payload, parsed as JSON (`Null` when it is not JSON).
    pub payload: Value,
    /// The last failure's reason.
    pub last_error: Option<String>,
}

fn open(db: &Path) -> Connection {
    let conn = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .unwrap_or_else(|e| panic!("open the store {}: {e}", db.display()));
    conn.busy_timeout(Duration::from_secs(30))
        .expect("set a busy timeout");
    conn
}

/// A message whose correlation id is its own id stores the empty text.
const COLUMNS: &str =
    "id, state, attempts, key, coalesce(nullif(correlation_id, ''), id), source, payload, last_error";

fn read(row: &rusqlite::Row<'_>) -> rusqlite::Result<Message> {
    let payload: Vec<u8> = row.get(6)?;
    Ok(Message {
        id: row.get(0)?,
        state: row.get(1)?,
        attempts: row.get(2)?,
        key: row.get(3)?,
        correlation_id: row.get(4)?,
        source: row.get(5)?,
        payload: serde_json::from_slice(&payload).unwrap_or(Value::Null),
        last_error: row.get(7)?,
    })
}

/// Every stored message of `event_type`, oldest first.
pub fn messages(db: &Path, event_type: &str) -> Vec<Message> {
    let conn = open(db);
    let mut stmt = conn
        .prepare(&format!(
            "SELECT {COLUMNS} FROM messages WHERE event_type = ?1 ORDER BY seq"
        ))
        .expect("prepare the messages query");
    stmt.query_map([event_type], read)
        .expect("query the messages")
        .collect::<Result<_, _>>()
        .expect("read the messages")
}

/// The stored message with `id`, if it is still stored (not acked or purged).
pub fn message(db: &Path, id: &str) -> Option<Message> {
    let conn = open(db);
    let mut stmt = conn
        .prepare(&format!("SELECT {COLUMNS} FROM messages WHERE id = ?1"))
        .expect("prepare the message query");
    stmt.query_map([id], read)
        .expect("query the message")
        .next()
        .map(|row| row.expect("read the message"))
}

/// How long after its last update message `id` becomes due again
/// (`available_at - updated_at`, in milliseconds): the delay a retry asked for.
pub fn due_after_ms(db: &Path, id: &str) -> Option<i64> {
    let conn = open(db);
    conn.query_row(
        "SELECT available_at - updated_at FROM messages WHERE id = ?1 AND state = 'queued'",
        [id],
        |row| row.get(0),
    )
    .ok()
}
