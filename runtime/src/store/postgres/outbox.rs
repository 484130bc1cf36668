//! The outbox on PostgreSQL: an application enqueues inside its own
//! transaction, so its business rows and its events commit together (or
//! not at all), and hosts wake at that commit.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use mailroom::message::NewMessage;
//! use mailroom::store::postgres::outbox;
//!
//! let (mut client, connection) =
//!     tokio_postgres::connect("postgres://app:secret@localhost/shop", tokio_postgres::NoTls).await?;
//! tokio::spawn(connection);
//! let tx = client.transaction().await?;
//! tx.execute("INSERT INTO orders (id) VALUES ($1)", &[&"o-1"]).await?;
//! let id = outbox::enqueue(&tx, &NewMessage::new("order.created", br#"{"order_id":"o-1"}"#.to_vec())).await?;
//! tx.commit().await?; // the order and its event, together
//! # let _ = id;
//! # Ok(())
//! # }
//! ```
//!
//! From any other language, the same is one SQL call in the transaction:
//! `SELECT mailroom.enqueue(event_type => 'order.created', payload => '{"order_id":"o-1"}'::jsonb)`.

use tokio_postgres::GenericClient;

use crate::message::{MessageId, NewMessage};
use crate::store::StoreError;

/// Enqueues `message` through `client` (a transaction of the caller's, or
/// any client) with `mailroom.enqueue`. The store's schema must exist (a
/// host or `mailroom enqueue` creates it). Returns the new id, or the
/// stored message's id when its key is already stored.
///
/// # Errors
///
/// [`StoreError::Invalid`] when the message breaks a rule (the payload
/// must be JSON), or the database's error as [`StoreError::Postgres`].
pub async fn enqueue<C: GenericClient>(
    client: &C,
    message: &NewMessage,
) -> Result<MessageId, StoreError> {
    message.validate(usize::MAX)?;
    let payload: serde_json::Value = serde_json::from_slice(&message.payload).map_err(|e| {
        StoreError::Invalid(crate::message::InvalidInput::Payload(format!(
            "the outbox takes JSON payloads: {e}"
        )))
    })?;
    let delay = format!("{} milliseconds", message.delay.as_millis());
    let max_attempts = message
        .max_attempts
        .map(|n| i32::try_from(n).unwrap_or(i32::MAX));
    let row = client
        .query_one(
            "SELECT mailroom.enqueue(
                 event_type => $1, payload => $2::text::jsonb, key => $3,
                 priority => $4, delay => $5::text::interval, max_attempts => $6,
                 source => $7, correlation_id => $8)",
            &[
                &message.event_type,
                &payload.to_string(),
                &message.key,
                &message.priority.as_str(),
                &delay,
                &max_attempts,
                &message.source,
                &message.correlation_id,
            ],
        )
        .await
        .map_err(|e| StoreError::Postgres {
            store: "the caller's database".to_owned(),
            reason: e
                .as_db_error()
                .map_or_else(|| e.to_string(), |db| db.message().to_owned()),
        })?;
    Ok(MessageId(row.get(0)))
}
