//! The durable mailbox, behind one seam with two backends.
//!
//! The rest of the runtime reaches the mailbox only through the named, async
//! operations of [`Store`]: enqueue, claim, release, settle, reclaim, dead
//! letters, stats, hosts, the plugin registry, wake-ups, a readiness ping and
//! maintenance. [`Store`] is a closed enum over the two backends, so callers
//! (dispatcher, settler, loader, HTTP, CLI) stay free of generics:
//!
//! - [`sqlite`]: one SQLite file in WAL mode, the embedded default. Several
//!   processes on one machine may share it.
//! - [`postgres`]: a schema `mailroom` in a PostgreSQL database, for hosts on
//!   many machines sharing one queue, and for applications that enqueue
//!   inside their own transactions (the outbox).
//!
//! Neither backend decides anything: what follows a failure or an expired
//! lease, whether a host is gone, how counts add up and how pages end are
//! pure functions in the files below (and [`crate::state_machine`]), which
//! both backends call. Only this module names the database clients.
//!
//! | file              | holds                                                  |
//! | ----------------- | ------------------------------------------------------ |
//! | `location.rs`     | where the store lives: a file, or a PostgreSQL URL     |
//! | `options.rs`      | how to open it: durability, timeouts, clock, policies  |
//! | `error.rs`        | [`StoreError`]                                         |
//! | `health.rs`       | failures seen, by kind; damage, after which no writes  |
//! | `check.rs`        | what verifying a store found                           |
//! | `owner.rs`        | who holds a lease, and whether its process is alive    |
//! | `enqueue.rs`      | what an enqueue answers                                |
//! | `claim.rs`        | claimed messages, their leases and the claim order     |
//! | `settle.rs`       | outcomes of deliveries, and the decision each leads to |
//! | `reclaim.rs`      | what a reclaim did; whether a host is gone             |
//! | `dead_letters.rs` | stored messages, dead letters                          |
//! | `page.rs`         | pages of a list: sizes, cursors                        |
//! | `queue.rs`        | messages in any state, cancels, paused event types     |
//! | `stats.rs`        | counts and queue information, added up                 |
//! | `registry.rs`     | hosts, and the plugins each loaded or rejected         |
//! | `retention.rs`    | idempotency keys remembered after their message        |
//! | `wakeup.rs`       | noticing other processes' commits                      |

mod check;
mod claim;
mod dead_letters;
mod enqueue;
mod error;
mod health;
mod location;
mod options;
mod owner;
mod page;
pub mod postgres;
mod queue;
mod reclaim;
mod registry;
mod retention;
mod settle;
pub mod sqlite;
mod stats;
mod wakeup;

use std::time::Duration;

use crate::clock::Millis;
use crate::message::{MessageId, NewMessage};
use crate::state_machine::Failure;

pub use check::{CheckDepth, CheckReport};
pub use claim::{Claimed, Lease, TypeCaps};
pub(crate) use claim::type_limit;
pub use dead_letters::{
    DeadLetter, DeadLetterFilter, DeadLetterMatch, DeadLetterPage, Selection, StoredMessage,
    parse_cursor,
};
pub use enqueue::Enqueued;
pub use error::StoreError;
pub use health::StoreHealth;
pub use location::{Location, PostgresUrl, redact_url};
pub use options::{Durability, OpenOptions};
pub use owner::LeaseOwner;
pub(crate) use owner::short_random_id;
pub use page::Page;
pub use reclaim::Reclaimed;
pub use retention::{DEFAULT_KEY_RETENTION, Swept};
pub use registry::{HostRecord, PluginRecord, PluginRegistry, PluginStatus};
pub use settle::{Outcome, SettleEntry, Settled, SettledAndClaimed, Settlement};
pub use queue::{
    CancelRefusal, Cancelled, LeaseHolder, MessageFilter, MessagePage,
    MessageSummary, PauseChange, PausedType,
};
pub use stats::{EventTypeStats, Handler, StateCounts, Stats};
pub use wakeup::CommitSignal;

use postgres::PgStore;
use sqlite::SqliteStore;

/// A connection (SQLite) or a pool of connections (PostgreSQL) to the
/// mailbox. Cloning shares it. Give each role its own store: the host opens
/// one for producers (synced commits) and one for the dispatcher.
#[derive(Debug, Clone)]
pub enum Store {
    /// An SQLite file.
    Sqlite(SqliteStore),
    /// A PostgreSQL database.
    Postgres(PgStore),
}

/// Runs the same operation on whichever backend this is. Each arm's
/// expression sees the backend as `$b`.
macro_rules! each {
    ($self:expr, $b:ident => $e:expr) => {
        match $self {
            Store::Sqlite($b) => $e,
            Store::Postgres($b) => $e,
        }
    };
}

impl Store {
    /// Opens the store at `location`, creating and migrating it when
    /// `options.create` allows.
    ///
    /// # Errors
    ///
    /// A [`StoreError`] naming the store and what to do: a missing file or
    /// folder, a file that is not a store, a server that cannot be reached or
    /// refuses the login, a schema from a newer Mailroom.
    pub async fn open(location: &Location, options: &OpenOptions) -> Result<Self, StoreError> {
        match location {
            Location::Sqlite(path) => Ok(Self::Sqlite(SqliteStore::open(path, options).await?)),
            Location::Postgres(url) => Ok(Self::Postgres(PgStore::open(url, options).await?)),
        }
    }

    /// The store as messages name it (a path, or a URL without password).
    pub fn describe(&self) -> String {
        each!(self, b => b.describe())
    }

    /// Enqueues one message; durable (per the store's durability) when this
    /// returns.
    ///
    /// # Errors
    ///
    /// [`StoreError::Invalid`] (nothing stored), or a store failure.
    pub async fn enqueue(&self, message: NewMessage) -> Result<Enqueued, StoreError> {
        let mut out = self.enqueue_batch(vec![message]).await?;
        Ok(out.remove(0))
    }

    /// Enqueues many messages in one transaction: all are stored or none.
    /// A key repeated within the batch resolves to the first message that
    /// carried it; a key already stored answers the stored message's id,
    /// marked as a duplicate.
    ///
    /// # Errors
    ///
    /// [`StoreError::Invalid`] or [`StoreError::InvalidInBatch`] (nothing
    /// stored), or a store failure.
    pub async fn enqueue_batch(
        &self,
        messages: Vec<NewMessage>,
    ) -> Result<Vec<Enqueued>, StoreError> {
        self.writable()?;
        let result = each!(self, b => b.enqueue_batch(messages).await);
        self.seen("enqueue", result)
    }

    /// Claims up to `limit` due messages whose event type is in
    /// `event_types`, highest priority first, then oldest; each gets one
    /// more attempt and a lease of `lease`. A message is handed to exactly
    /// one claimer, whichever process or machine it is on.
    ///
    /// # Errors
    ///
    /// A store failure.
    pub async fn claim(
        &self,
        limit: usize,
        lease: Duration,
        event_types: &[String],
    ) -> Result<Vec<Claimed>, StoreError> {
        self.claim_capped(limit, lease, event_types, &TypeCaps::new())
            .await
    }

    /// [`Store::claim`], taking at most `caps[t]` messages of each type `t`
    /// listed in `caps`.
    ///
    /// # Errors
    ///
    /// A store failure.
    pub async fn claim_capped(
        &self,
        limit: usize,
        lease: Duration,
        event_types: &[String],
        caps: &TypeCaps,
    ) -> Result<Vec<Claimed>, StoreError> {
        if limit == 0 || event_types.is_empty() {
            return Ok(Vec::new());
        }
        self.writable()?;
        let result =
            each!(self, b => b.claim(limit, lease, event_types.to_vec(), caps.clone()).await);
        self.seen("claim", result)
    }

    /// When the next queued message of one of `event_types` (paused types
    /// left out) becomes due, if any is queued. When one is due already, a
    /// time at or before now, not necessarily the earliest.
    ///
    /// # Errors
    ///
    /// A store failure.
    pub async fn next_due_at(&self, event_types: &[String]) -> Result<Option<Millis>, StoreError> {
        let result = each!(self, b => b.next_due_at(event_types.to_vec()).await);
        self.seen("next_due_at", result)
    }

    /// Hands claimed messages back without counting their attempt. Leases no
    /// longer held are skipped. Returns how many were released.
    ///
    /// # Errors
    ///
    /// A store failure.
    pub async fn release(&self, leases: Vec<Lease>) -> Result<usize, StoreError> {
        if leases.is_empty() {
            return Ok(0);
        }
        self.writable()?;
        let result = each!(self, b => b.release(leases).await);
        self.seen("release", result)
    }

    /// Settles a batch of deliveries in one transaction and hands the batch
    /// back with one result per entry: a lost lease or an invalid follow-up
    /// changes nothing for that entry. The outer result is a store failure
    /// that rolled back the whole batch.
    pub async fn settle<E>(
        &self,
        batch: Vec<E>,
    ) -> (Vec<E>, Result<Vec<Result<Settled, StoreError>>, StoreError>)
    where
        E: SettleEntry + Send + Sync + 'static,
    {
        if let Err(e) = self.writable() {
            return (batch, Err(e));
        }
        let (batch, result) = each!(self, b => b.settle(batch).await);
        self.health().record("settle", &result);
        (batch, result)
    }

    /// Settles `batch` as [`Store::settle`] does, then claims up to `limit`
    /// messages of `event_types`, at most `caps[t]` of a type `t`, as
    /// [`Store::claim_capped`] does. On SQLite both
    /// happen in one transaction: one commit instead of two, and the pages
    /// both write (the head of the queue and its indexes) written once. On
    /// PostgreSQL the claim follows the commit. The outer result is a store
    /// failure that rolled back the whole batch, and claimed nothing.
    pub async fn settle_and_claim<E>(
        &self,
        batch: Vec<E>,
        limit: usize,
        lease: Duration,
        event_types: Vec<String>,
        caps: TypeCaps,
    ) -> (Vec<E>, Result<SettledAndClaimed, StoreError>)
    where
        E: SettleEntry + Send + Sync + 'static,
    {
        let Store::Sqlite(b) = self else {
            let (batch, settled) = self.settle(batch).await;
            let result = match settled {
                Ok(settled) => self
                    .claim_capped(limit, lease, &event_types, &caps)
                    .await
                    .map(|claimed| (settled, claimed)),
                Err(e) => Err(e),
            };
            return (batch, result);
        };
        if let Err(e) = self.writable() {
            return (batch, Err(e));
        }
        let (batch, result) = b.settle_and_claim(batch, limit, lease, event_types, caps).await;
        self.health().record("settle", &result);
        (batch, result)
    }

    /// Whether the dispatcher should make its claims with its commits
    /// ([`Store::settle_and_claim`]): on SQLite, whose one connection runs
    /// a claim and a commit one after the other anyway. On PostgreSQL a
    /// claim runs beside a commit, on another pooled connection.
    pub fn claims_join_commits(&self) -> bool {
        matches!(self, Store::Sqlite(_))
    }

    /// Acks one claimed message, enqueueing `follow_ups` with it.
    ///
    /// # Errors
    ///
    /// [`StoreError::LeaseLost`] or [`StoreError::Invalid`] (nothing
    /// committed), or a store failure.
    pub async fn ack(&self, claimed: &Claimed, follow_ups: Vec<NewMessage>) -> Result<(), StoreError> {
        self.settle_one(claimed, Settlement::Ack { follow_ups }, None)
            .await
            .map(|_| ())
    }

    /// Records a failed attempt of one claimed message.
    ///
    /// # Errors
    ///
    /// [`StoreError::LeaseLost`] (nothing committed), or a store failure.
    pub async fn fail(&self, claimed: &Claimed, failure: Failure) -> Result<Settled, StoreError> {
        self.settle_one(claimed, Settlement::Fail(failure), None)
            .await
    }

    /// Settles one message; `digest` stamps the attempt with the plugin
    /// build that ran it.
    ///
    /// # Errors
    ///
    /// As [`Store::ack`] and [`Store::fail`].
    pub async fn settle_one(
        &self,
        claimed: &Claimed,
        settlement: Settlement,
        digest: Option<&str>,
    ) -> Result<Settled, StoreError> {
        let outcome = Outcome {
            claimed: claimed.clone(),
            settlement,
            digest: digest.map(str::to_owned),
        };
        let (_, results) = self.settle(vec![outcome]).await;
        results?.remove(0)
    }

    /// Records this store's owner as a running host (and its heartbeat).
    ///
    /// # Errors
    ///
    /// A store failure.
    pub async fn register_host(&self) -> Result<(), StoreError> {
        self.writable()?;
        let result = each!(self, b => b.register_host().await);
        self.seen("register_host", result)
    }

    /// Sends this host's heartbeat and returns every message whose lease
    /// expired, or whose host is gone, to the queue (or to the dead letters
    /// when its attempts are spent). Leases of live hosts are never taken.
    ///
    /// # Errors
    ///
    /// A store failure.
    pub async fn reclaim(&self) -> Result<Reclaimed, StoreError> {
        self.writable()?;
        let result = each!(self, b => b.reclaim().await);
        self.seen("reclaim", result)
    }

    /// Housekeeping the host runs when idle: on SQLite a WAL checkpoint, so
    /// a busy host does not keep a large `-wal` file.
    ///
    /// # Errors
    ///
    /// A store failure.
    pub async fn maintain(&self) -> Result<(), StoreError> {
        self.writable()?;
        let result = each!(self, b => b.maintain().await);
        self.seen("maintain", result)
    }

    /// Verifies the store without changing it: the schema version, the
    /// database's own consistency check (SQLite; a PostgreSQL server keeps
    /// its own pages consistent), and the message counts.
    ///
    /// # Errors
    ///
    /// A store failure that kept the check from running; damage it finds
    /// is in [`CheckReport::problems`].
    pub async fn check(&self, depth: CheckDepth) -> Result<CheckReport, StoreError> {
        let result = each!(self, b => b.check(depth).await);
        self.seen("check", result)
    }

    /// Housekeeping the host runs every reclaim interval, busy or not:
    /// stamps the idempotency keys of messages removed since the last
    /// sweep, forgets those removed `key_retention` ago, and dead-letters
    /// queued messages that outlived their event type's ttl.
    ///
    /// # Errors
    ///
    /// A store failure.
    pub async fn sweep(&self) -> Result<Swept, StoreError> {
        each!(self, b => b.sweep().await)
    }

    /// Whether the store answers (for readiness checks).
    ///
    /// # Errors
    ///
    /// The store failure that made it not answer.
    pub async fn ping(&self) -> Result<(), StoreError> {
        // Not recorded: readiness reports a failed ping itself.
        each!(self, b => b.ping().await)
    }

    /// Wakes whoever waits on it when another process (or another
    /// connection of this one) commits: the dispatcher's way of noticing
    /// enqueues without polling hard.
    pub async fn commit_signal(&self) -> CommitSignal {
        each!(self, b => b.commit_signal().await)
    }

    /// Lists dead letters in order of death, oldest first, a page at a time.
    ///
    /// # Errors
    ///
    /// [`StoreError::Invalid`] for a bad cursor, or a store failure.
    pub async fn dead_letters(&self, filter: DeadLetterFilter) -> Result<DeadLetterPage, StoreError> {
        let result = each!(self, b => b.dead_letters(filter).await);
        self.seen("dead_letters", result)
    }

    /// Any stored message by id, payload included.
    ///
    /// # Errors
    ///
    /// [`StoreError::NoSuchMessage`], or a store failure.
    pub async fn message(&self, id: MessageId) -> Result<StoredMessage, StoreError> {
        let result = each!(self, b => b.message(id).await);
        self.seen("message", result)
    }

    /// One dead letter, payload included.
    ///
    /// # Errors
    ///
    /// [`StoreError::NoSuchMessage`], [`StoreError::WrongState`] when it is
    /// not dead, or a store failure.
    pub async fn dead_letter(&self, id: MessageId) -> Result<StoredMessage, StoreError> {
        let message = self.message(id).await?;
        if message.state != crate::state_machine::MessageState::Dead {
            return Err(dead_letters::not_dead(id, Ok(message)));
        }
        Ok(message)
    }

    /// Puts dead letters back in the queue, due now, attempts reset to 0.
    /// Returns how many moved.
    ///
    /// # Errors
    ///
    /// For [`Selection::One`]: [`StoreError::NoSuchMessage`] or
    /// [`StoreError::WrongState`]. Otherwise a store failure.
    pub async fn redrive(&self, selection: Selection) -> Result<usize, StoreError> {
        self.writable()?;
        let result = each!(self, b => b.redrive(selection).await);
        self.seen("redrive", result)
    }

    /// Deletes dead letters for good. Returns how many were removed.
    ///
    /// # Errors
    ///
    /// As [`Store::redrive`].
    pub async fn purge(&self, selection: Selection) -> Result<usize, StoreError> {
        self.writable()?;
        let result = each!(self, b => b.purge(selection).await);
        self.seen("purge", result)
    }

    /// Lists messages in any state, in the order they were enqueued, a page
    /// at a time.
    ///
    /// # Errors
    ///
    /// [`StoreError::Invalid`] for a bad cursor, or a store failure.
    pub async fn messages(&self, filter: MessageFilter) -> Result<MessagePage, StoreError> {
        let result = each!(self, b => b.messages(filter).await);
        self.seen("messages", result)
    }

    /// Removes the named messages that are queued, in one transaction; says
    /// why each other id was not removed (in flight, dead, or gone).
    ///
    /// # Errors
    ///
    /// A store failure (then nothing was removed).
    pub async fn cancel_ids(&self, ids: Vec<MessageId>) -> Result<Cancelled, StoreError> {
        self.writable()?;
        let result = each!(self, b => b.cancel_ids(ids).await);
        self.seen("cancel", result)
    }

    /// Removes up to `limit` queued messages of `event_type` (highest
    /// priority, then oldest, first) in one short transaction, and returns
    /// how many. Call it until it returns 0 to empty a queue without holding
    /// the store's write lock for long; messages in flight are left alone.
    ///
    /// # Errors
    ///
    /// A store failure.
    pub async fn cancel_queued(&self, event_type: &str, limit: usize) -> Result<usize, StoreError> {
        let event_type = event_type.to_owned();
        self.writable()?;
        let result = each!(self, b => b.cancel_queued(event_type, limit).await);
        self.seen("cancel", result)
    }

    /// How many messages of `event_type` are in flight now.
    ///
    /// # Errors
    ///
    /// A store failure.
    pub async fn inflight_of(&self, event_type: &str) -> Result<u64, StoreError> {
        let event_type = event_type.to_owned();
        let result = each!(self, b => b.inflight_of(event_type).await);
        self.seen("inflight_of", result)
    }

    /// Removes every queued message of `event_type`, `batch` at a time
    /// (each batch a short transaction of its own, see
    /// [`Store::cancel_queued`]), calling `progress` with the running total
    /// after each; then counts those in flight, which are left to finish.
    ///
    /// # Errors
    ///
    /// A store failure; batches already committed stay removed.
    pub async fn cancel_all_queued(
        &self,
        event_type: &str,
        batch: usize,
        mut progress: impl FnMut(usize),
    ) -> Result<Cancelled, StoreError> {
        let mut done = Cancelled::default();
        loop {
            let n = self.cancel_queued(event_type, batch).await?;
            done.cancelled += n;
            progress(done.cancelled);
            if n == 0 {
                break;
            }
        }
        done.inflight_left = Some(self.inflight_of(event_type).await?);
        Ok(done)
    }

    /// Pauses `event_type` for every host on this store: none claims its
    /// messages (enqueues are still accepted) until it is resumed. Lasts
    /// across restarts.
    ///
    /// # Errors
    ///
    /// A store failure.
    pub async fn pause(&self, event_type: &str) -> Result<PauseChange, StoreError> {
        let event_type = event_type.to_owned();
        self.writable()?;
        let result = each!(self, b => b.set_paused(event_type, true).await);
        self.seen("pause", result)
    }

    /// Resumes a paused event type; hosts claim its due messages again.
    ///
    /// # Errors
    ///
    /// A store failure.
    pub async fn resume(&self, event_type: &str) -> Result<PauseChange, StoreError> {
        let event_type = event_type.to_owned();
        self.writable()?;
        let result = each!(self, b => b.set_paused(event_type, false).await);
        self.seen("pause", result)
    }

    /// The paused event types.
    ///
    /// # Errors
    ///
    /// A store failure.
    pub async fn paused(&self) -> Result<Vec<PausedType>, StoreError> {
        let result = each!(self, b => b.paused().await);
        self.seen("paused", result)
    }

    /// How many dead letters meet `matching`.
    ///
    /// # Errors
    ///
    /// A store failure.
    pub async fn count_dead_letters(&self, matching: DeadLetterMatch) -> Result<u64, StoreError> {
        each!(self, b => b.count_dead_letters(matching).await)
    }

    /// Counts the store's messages; lists the live hosts.
    ///
    /// # Errors
    ///
    /// A store failure.
    pub async fn stats(&self) -> Result<Stats, StoreError> {
        let result = each!(self, b => b.stats().await);
        self.seen("stats", result)
    }

    /// The plugins every live host has loaded or rejected, and the hosts.
    ///
    /// # Errors
    ///
    /// A store failure.
    pub async fn plugin_registry(&self) -> Result<PluginRegistry, StoreError> {
        let result = each!(self, b => b.plugin_registry().await);
        self.seen("plugin_registry", result)
    }

    /// Records that this host loaded the plugin at `path` (clearing an
    /// earlier rejection of the file).
    ///
    /// # Errors
    ///
    /// A store failure.
    pub async fn record_plugin_loaded(
        &self,
        path: String,
        name: String,
        version: String,
        event_types: Vec<String>,
        digest: String,
    ) -> Result<(), StoreError> {
        let record = registry::Loaded {
            path,
            name,
            version,
            event_types,
            digest,
        };
        self.writable()?;
        let result = each!(self, b => b.record_plugin_loaded(record).await);
        self.seen("record_plugin", result)
    }

    /// Records that this host rejected the file at `path`, and why.
    ///
    /// # Errors
    ///
    /// A store failure.
    pub async fn record_plugin_rejected(&self, path: String, reason: String) -> Result<(), StoreError> {
        self.writable()?;
        let result = each!(self, b => b.record_plugin_rejected(path, reason).await);
        self.seen("record_plugin", result)
    }

    /// Forgets what this host recorded about `path` (the file was removed).
    ///
    /// # Errors
    ///
    /// A store failure.
    pub async fn forget_plugin(&self, path: String) -> Result<(), StoreError> {
        self.writable()?;
        let result = each!(self, b => b.forget_plugin(path).await);
        self.seen("record_plugin", result)
    }

    /// Forgets this host (its registry rows) on a clean stop, so other
    /// processes stop showing it at once. Best effort.
    pub async fn close(&self) {
        each!(self, b => b.close().await)
    }

    /// What this handle (and those opened with the same
    /// [`OpenOptions::health`]) has seen of the store's health.
    pub fn health(&self) -> &std::sync::Arc<StoreHealth> {
        each!(self, b => b.health())
    }

    /// Refuses to write to a store that reported damage.
    fn writable(&self) -> Result<(), StoreError> {
        match self.health().damage() {
            Some(damage) => Err(StoreError::Corrupt {
                store: self.describe(),
                reason: format!("it reported damage earlier: {damage}"),
            }),
            None => Ok(()),
        }
    }

    /// Records `result` as the outcome of `operation`, and hands it back.
    fn seen<T>(&self, operation: &'static str, result: Result<T, StoreError>) -> Result<T, StoreError> {
        self.health().record(operation, &result);
        result
    }

    /// Time spent inside store calls so far, all clones together: its growth
    /// over a span, divided by the span, is how saturated the store is.
    pub fn busy(&self) -> Duration {
        each!(self, b => b.busy())
    }
}
