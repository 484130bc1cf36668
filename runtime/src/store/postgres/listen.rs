//! The `LISTEN` connection that wakes a host's dispatcher. Enqueues, acks
//! with follow-ups, redrives and releases `NOTIFY` in their transaction;
//! the notification arrives when it commits.
//!
//! The connection is the host's own, outside the pool. When it or the
//! server drops, it reconnects with a capped exponential backoff (the first
//! failure logged in full, repeats summarised: [`crate::backoff`]), and after every (re)connect it
//! wakes the dispatcher once: notifications sent while it was away are
//! lost, so the dispatcher looks for itself.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;
use tokio_postgres::{AsyncMessage, NoTls};

use super::connect::{Errors, client_config};
use super::schema::CHANNEL;
use crate::backoff::Retry;
use crate::store::{Durability, PostgresUrl, StoreError};

/// The first wait before reconnecting, doubled after each failure.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The longest wait between two reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// A running `LISTEN` connection; dropping it closes the connection.
#[derive(Debug)]
pub(crate) struct Listener {
    notified: Arc<Notify>,
    task: JoinHandle<()>,
}

impl Listener {
    pub(crate) fn start(url: PostgresUrl, errors: Errors) -> Self {
        let notified = Arc::new(Notify::new());
        let task = tokio::spawn(listen(url, errors, notified.clone()));
        Self { notified, task }
    }

    /// Waits for a notification (or a reconnect).
    pub(crate) async fn notified(&self) {
        self.notified.notified().await;
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn listen(url: PostgresUrl, errors: Errors, notified: Arc<Notify>) {
    let mut retry = Retry::new(
        "listening for commits (the poll still runs)",
        FIRST_BACKOFF,
        MAX_BACKOFF,
    );
    let mut was_connected = false;
    loop {
        let backoff = match connect(&url, &errors, notified.clone()).await {
            Ok((client, closed)) => {
                if was_connected || retry.is_failing() {
                    tracing::info!(store = %errors.store, "listening for commits again");
                }
                retry.note_success(std::time::Instant::now());
                was_connected = true;
                // Anything committed while no one listened is found by a claim.
                notified.notify_one();
                let why = closed.await.unwrap_or_else(|_| "the connection ended".to_owned());
                drop(client);
                tracing::warn!(
                    store = %errors.store,
                    "lost the connection that listens for commits ({why}); reconnecting"
                );
                FIRST_BACKOFF
            }
            Err(e) => retry.failed(&e),
        };
        tokio::time::sleep(backoff).await;
    }
}

/// Connects and listens. Returns the client (keep it alive) and what ends
/// when the connection does, with the reason.
async fn connect(
    url: &PostgresUrl,
    errors: &Errors,
    notified: Arc<Notify>,
) -> Result<(tokio_postgres::Client, oneshot::Receiver<String>), StoreError> {
    let config = client_config(url, Durability::Fast)?;
    let (client, mut connection) = config.connect(NoTls).await.map_err(|e| errors.pg(&e))?;
    let (closed_tx, closed) = oneshot::channel();
    tokio::spawn(async move {
        let why = loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(_))) => notified.notify_one(),
                Some(Ok(_)) => {}
                Some(Err(e)) => break e.to_string(),
                None => break "closed by the server".to_owned(),
            }
        };
        let _ = closed_tx.send(why);
    });
    client
        .batch_execute(&format!("LISTEN {CHANNEL}"))
        .await
        .map_err(|e| errors.pg(&e))?;
    Ok((client, closed))
}
