//! How to open a store: options both backends understand.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::{SharedClock, SystemClock};
use super::StoreHealth;
use crate::state_machine::Policies;

/// What a committed write costs if the machine loses power.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// Every enqueue is synced to disk before it is acknowledged
    /// (SQLite `synchronous=FULL`, PostgreSQL
    /// `synchronous_commit = on`): a power loss cannot lose an acknowledged message.
    #[default]
    Full,
    /// Enqueues commit without waiting for the disk (SQLite `synchronous=NORMAL`,
    /// PostgreSQL `synchronous_commit = off`): a
    /// power loss may lose the most recently acknowledged enqueues. A process
    /// crash still loses nothing that was committed.
    Fast,
}

/// How to open the store.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// Create the store when it does not exist: the SQLite file (not its
    /// directory), or the schema in a PostgreSQL database. Read-only
    /// commands pass false.
    pub create: bool,
    /// Open for reading only (the read-only commands: `stats`, `dlq
    /// list|show`, `plugins`, `check`): never create, migrate or change the
    /// store, not even its journal mode, and refuse a file that is not a
    /// Mailroom store. A store this user may read but not write can be
    /// opened this way. Implies `create: false`.
    pub read_only: bool,
    /// How long a write waits for another process's write lock before
    /// failing with [`StoreError::Locked`](super::StoreError::Locked).
    pub busy_timeout: Duration,
    /// The sync policy of this connection. Producers (ingest) use the
    /// configured durability; the dispatcher's claims, acks and failures may
    /// use [`Durability::Fast`], since losing them to a power cut only causes a
    /// redelivery: an ack and the events it emits commit together.
    pub durability: Durability,
    /// The largest payload accepted, in bytes.
    pub max_payload_bytes: usize,
    /// How long a host may stay silent (no heartbeat) before it is taken
    /// for dead and its leases are reclaimed at once; zero leaves that to
    /// lease expiry alone.
    pub host_silence: Duration,
    /// The most connections a PostgreSQL store opens at once.
    pub max_connections: usize,
    /// Where every timestamp comes from. With the system clock a
    /// PostgreSQL store reads time from the database server, so hosts on
    /// several machines share one clock for leases.
    pub clock: SharedClock,
    /// Attempt budgets and backoff, per event type.
    pub policies: Policies,
    /// Where the store records its failures and damage. Handles opened
    /// with one shared `StoreHealth` stop writing together once the store
    /// reports damage.
    pub health: Arc<StoreHealth>,
    /// How long an idempotency key is remembered after its message is
    /// gone (acked, purged or cancelled).
    pub key_retention: Duration,
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self {
            create: true,
            read_only: false,
            busy_timeout: Duration::from_secs(10),
            durability: Durability::Full,
            max_payload_bytes: crate::message::DEFAULT_MAX_PAYLOAD_BYTES,
            host_silence: Duration::from_secs(30),
            max_connections: 8,
            clock: Arc::new(SystemClock),
            policies: Policies::default(),
            health: Arc::default(),
            key_retention: super::DEFAULT_KEY_RETENTION,
        }
    }
}

