//! The embedded backend: one SQLite file (WAL) holding every message and
//! its state.
//!
//! It executes transitions; it does not decide them. What follows a failure
//! or an expired lease comes from [`crate::state_machine`]; every
//! state-changing statement here is guarded by the state (and, for claimed
//! messages, the lease token) it expects, and "no row changed" becomes a
//! typed error ([`StoreError::LeaseLost`], [`StoreError::WrongState`]).
//!
//! Each operation is one immediate transaction, batches included: a claim of
//! 64 messages, or the acks and failures of 64 deliveries, cost one commit.
//! [`Mailbox`] is one connection with a blocking API; [`SqliteStore`] shares
//! one with async tasks, and is what [`crate::store::Store`] forwards to.
//!
//! | file              | holds                                               |
//! | ----------------- | --------------------------------------------------- |
//! | `connection.rs`   | opening: pragmas, durability, migrations, errors;   |
//! |                   | the read-only open that changes nothing             |
//! | `check.rs`        | verifying the file (`mailroom check`)               |
//! | `schema.rs`       | the numbered migrations                             |
//! | `enqueue.rs`      | validated inserts with key dedupe                   |
//! | `claim.rs`        | atomic batch claims under a lease                   |
//! | `settle.rs`       | acks (with follow-ups) and failures, in batches     |
//! | `claimed_rows.rs` | where this connection's claimed messages are stored |
//! | `reclaim.rs`      | expired leases and leases of dead processes         |
//! | `dead_letters.rs` | list, show, redrive, purge                          |
//! | `queue.rs`        | messages in any state, cancels, paused event types  |
//! | `stats.rs`        | counts by state, type and priority                  |
//! | `registry.rs`     | hosts, and the plugins each has loaded or rejected  |
//! | `retention.rs`    | the sweep: keys of removed messages, forgotten late |
//! | `row.rs`          | typed values to and from columns                    |
//! | `shared.rs`       | one connection shared by async tasks                |
//! | `commit_watch.rs` | other processes' commits, seen through the WAL file |
//! | `checkpoints.rs`  | WAL checkpoints on a thread of their own            |
//! | `outbox.rs`       | enqueueing inside an application's own transaction  |

mod check;
mod checkpoints;
mod claim;
mod claimed_rows;
mod commit_watch;
mod connection;
mod dead_letters;
mod enqueue;
pub mod outbox;
mod queue;
mod reclaim;
mod registry;
mod retention;
mod row;
mod schema;
mod settle;
mod shared;
mod stats;

use std::path::{Path, PathBuf};

use rusqlite::Connection;

use super::owner::LeaseOwner;
use super::{OpenOptions, StoreError};
use crate::clock::{Millis, SharedClock};
use crate::state_machine::Policies;

pub(crate) use commit_watch::{CommitWatch, watch_commits};
pub use shared::SqliteStore;

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
    /// How long a host may stay silent before it is taken for dead.
    host_silence: std::time::Duration,
    /// How long the key of a removed message is remembered.
    key_retention: std::time::Duration,
    /// Whether this mailbox has recorded its owner in `hosts` (done at its
    /// first claim or registry write, so producers never appear there).
    registered: bool,
    /// The thread that checkpoints for this connection, when it has one.
    checkpoints: Option<checkpoints::Checkpointer>,
    /// Where the messages it claimed are stored, for its acks.
    claimed_rows: claimed_rows::ClaimedRows,
}

impl Mailbox {
    /// Opens the store at `path` with default options (created if missing,
    /// full durability), the system clock and default retry policies.
    ///
    /// # Errors
    ///
    /// [`StoreError::MissingDirectory`], [`StoreError::NotADatabase`],
    /// [`StoreError::Locked`], [`StoreError::SchemaTooNew`], or any other
    /// SQLite failure, each naming the path.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(path, &OpenOptions::default())
    }

    /// Opens the store at `path` with `options`.
    ///
    /// # Errors
    ///
    /// As [`Mailbox::open`], plus [`StoreError::NotFound`] when the file is
    /// missing and `options.create` is false.
    pub fn open_with(path: impl AsRef<Path>, options: &OpenOptions) -> Result<Self, StoreError> {
        let path = path.as_ref();
        let conn = connection::open(path, options)?;
        Ok(Self {
            conn,
            ctx: Ctx::new(path, options.busy_timeout),
            clock: options.clock.clone(),
            owner: LeaseOwner::current(),
            policies: options.policies.clone(),
            max_payload_bytes: options.max_payload_bytes,
            host_silence: options.host_silence,
            key_retention: options.key_retention,
            registered: false,
            checkpoints: None,
            claimed_rows: claimed_rows::ClaimedRows::default(),
        })
    }

    /// Hands this connection's WAL checkpoints to a thread of its own (see
    /// `checkpoints.rs`), for a connection shared by a host's tasks. When
    /// the thread cannot start, the connection checkpoints as before.
    pub(crate) fn checkpoint_apart(&mut self) {
        match checkpoints::Checkpointer::start(&self.conn, &self.ctx.path, self.ctx.busy_timeout) {
            Ok(checkpointer) => self.checkpoints = Some(checkpointer),
            Err(e) => tracing::warn!(
                error = %e,
                store = %self.ctx.path.display(),
                "checkpoints stay on the store's connection"
            ),
        }
    }

    /// After a call on this connection: the checkpoint its commit may call for.
    pub(crate) fn after_call(&self) {
        if let Some(checkpointer) = &self.checkpoints {
            checkpointer.after_call(&self.conn);
        }
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
    pub fn data_version(&self) -> Result<i64, StoreError> {
        self.conn
            .query_row("PRAGMA data_version", [], |row| row.get(0))
            .map_err(|e| self.ctx.err(e))
    }

    /// Copies what it can of the WAL back into the database file. The
    /// dispatcher calls this when idle so the next write can start the WAL
    /// over (and `journal_size_limit` then trims the file); the checkpoints
    /// a busy connection's commits call for cover the rest (SQLite's own, or
    /// those of `checkpoints.rs`).
    ///
    /// Passive: it takes no write lock and never waits for one, so it
    /// cannot hold up another process's writes, not even if this process
    /// is stopped in the middle of it (a `TRUNCATE` checkpoint would wait
    /// for every reader while keeping writers out).
    ///
    /// # Errors
    ///
    /// Any SQLite failure.
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
            .map_err(|e| self.ctx.err(e))
    }

    fn now(&self) -> Millis {
        self.clock.now_ms()
    }

    fn tx(&mut self) -> Result<rusqlite::Transaction<'_>, StoreError> {
        // Immediate (set on open): the write lock is taken here, waiting up
        // to the busy timeout.
        self.conn.transaction().map_err(|e| self.ctx.err(e))
    }
}

impl Mailbox {
    /// Forgets this mailbox's host and its registry rows (a clean stop).
    ///
    /// # Errors
    ///
    /// A store failure.
    pub fn forget_host(&mut self) -> Result<(), StoreError> {
        if self.registered {
            registry::forget_owner(&self.conn, &self.owner.id).map_err(|e| self.ctx.err(e))?;
            self.registered = false;
        }
        Ok(())
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
