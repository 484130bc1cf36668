//! The durable mailbox: one SQLite file holding every message and its state.
//!
//! The mailbox executes transitions; it does not decide them. What follows a
//! failure or an expired lease comes from [`crate::state_machine`]; every
//! state-changing statement here is guarded by the state (and, for claimed
//! messages, the lease token) it expects, and "no row changed" becomes a
//! typed error ([`MailboxError::LeaseLost`], [`MailboxError::WrongState`]).
//!
//! Each operation is one immediate transaction, batches included: a claim of
//! 64 messages, or the acks and failures of 64 deliveries, cost one commit.
//!
//! | file              | holds                                               |
//! | ----------------- | --------------------------------------------------- |
//! | `connection.rs`   | opening: pragmas, durability, migrations, errors    |
//! | `schema.rs`       | the numbered migrations                             |
//! | `owner.rs`        | lease owners and whether their process is alive     |
//! | `enqueue.rs`      | validated inserts with key dedupe                   |
//! | `claim.rs`        | atomic batch claims under a lease                   |
//! | `settle.rs`       | acks (with follow-ups) and failures, in batches     |
//! | `reclaim.rs`      | expired leases and leases of dead processes         |
//! | `dead_letters.rs` | list, show, redrive, purge                          |
//! | `stats.rs`        | counts by state, type and priority                  |
//! | `registry.rs`     | the plugins a running host has loaded or rejected   |
//! | `shared.rs`       | one connection shared by async tasks                |

mod claim;
mod connection;
mod dead_letters;
mod enqueue;
mod error;
mod owner;
mod reclaim;
mod registry;
mod row;
mod schema;
mod settle;
mod shared;
mod stats;

use std::path::{Path, PathBuf};

use rusqlite::Connection;

use crate::clock::{Millis, SharedClock, SystemClock};
use crate::state_machine::Policies;

pub use claim::{Claimed, Lease};
pub use connection::{Durability, OpenOptions};
pub use dead_letters::{DeadLetter, DeadLetterFilter, DeadLetterPage, Selection, StoredMessage};
pub use enqueue::Enqueued;
pub use error::MailboxError;
pub use owner::LeaseOwner;
pub use reclaim::Reclaimed;
pub use registry::{PluginRecord, PluginRegistry, PluginStatus};
pub use settle::{Settled, Settlement};
pub use shared::SharedMailbox;
pub use stats::{StateCounts, Stats};

use connection::Ctx;

/// A connection to the durable mailbox.
///
/// One `Mailbox` is one SQLite connection: it is `Send` but not `Sync`; give
/// each thread (or each role: ingest, dispatcher) its own. Any number of
/// mailboxes, in any number of processes on one machine, may share a file.
#[derive(Debug)]
pub struct Mailbox {
    conn: Connection,
    ctx: Ctx,
    clock: SharedClock,
    owner: LeaseOwner,
    policies: Policies,
    max_payload_bytes: usize,
    /// Whether this mailbox has recorded its owner in `hosts` (done at its
    /// first claim, so producers never appear there).
    registered: bool,
}

impl Mailbox {
    /// Opens the store at `path` with default options (created if missing,
    /// full durability), the system clock and default retry policies.
    ///
    /// # Errors
    ///
    /// [`MailboxError::MissingDirectory`], [`MailboxError::NotADatabase`],
    /// [`MailboxError::Locked`], [`MailboxError::SchemaTooNew`], or any other
    /// SQLite failure, each naming the path.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, MailboxError> {
        Self::open_with(path, &OpenOptions::default())
    }

    /// Opens the store at `path` with `options`.
    ///
    /// # Errors
    ///
    /// As [`Mailbox::open`], plus [`MailboxError::NotFound`] when the file is
    /// missing and `options.create` is false.
    pub fn open_with(path: impl AsRef<Path>, options: &OpenOptions) -> Result<Self, MailboxError> {
        let path = path.as_ref();
        let conn = connection::open(path, options)?;
        Ok(Self {
            conn,
            ctx: Ctx::new(path, options.busy_timeout),
            clock: std::sync::Arc::new(SystemClock),
            owner: LeaseOwner::current(),
            policies: Policies::default(),
            max_payload_bytes: options.max_payload_bytes,
            registered: false,
        })
    }

    /// Uses `clock` for every timestamp from now on.
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Uses `policies` for attempt budgets and backoff.
    pub fn with_policies(mut self, policies: Policies) -> Self {
        self.policies = policies;
        self
    }

    /// The store's path.
    pub fn path(&self) -> &Path {
        &self.ctx.path
    }

    /// The identity this mailbox claims under.
    pub fn owner(&self) -> &LeaseOwner {
        &self.owner
    }

    /// The retry policies in force.
    pub fn policies(&self) -> &Policies {
        &self.policies
    }

    /// A counter that changes whenever another connection commits to the
    /// store: a cheap way to notice enqueues by other processes.
    ///
    /// # Errors
    ///
    /// Any SQLite failure.
    pub fn data_version(&self) -> Result<i64, MailboxError> {
        self.conn
            .query_row("PRAGMA data_version", [], |row| row.get(0))
            .map_err(|e| self.ctx.err(e))
    }

    /// Copies the WAL back into the database file and truncates it. The
    /// dispatcher calls this when idle so a busy host does not keep a large
    /// `-wal` file; SQLite's automatic checkpoints cover the rest.
    ///
    /// # Errors
    ///
    /// Any SQLite failure.
    pub fn checkpoint(&self) -> Result<(), MailboxError> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .map_err(|e| self.ctx.err(e))
    }

    fn now(&self) -> Millis {
        self.clock.now_ms()
    }

    fn tx(&mut self) -> Result<rusqlite::Transaction<'_>, MailboxError> {
        // Immediate (set on open): the write lock is taken here, waiting up
        // to the busy timeout.
        self.conn.transaction().map_err(|e| self.ctx.err(e))
    }
}

impl Drop for Mailbox {
    fn drop(&mut self) {
        if self.registered {
            // Best effort: a host that stops cleanly forgets its registry rows;
            // a crashed one is cleaned up by the next reclaim.
            let _ = registry::forget_owner(&self.conn, &self.owner.id);
        }
    }
}

/// The path of the default store, relative to the working directory.
pub fn default_path() -> PathBuf {
    PathBuf::from("mailroom.db")
}
