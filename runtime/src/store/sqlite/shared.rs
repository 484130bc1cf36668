//! A connection shared by async tasks: the SQLite backend of
//! [`crate::store::Store`]. SQLite calls block, so each runs on tokio's
//! blocking pool, one at a time per connection.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use std::path::{Path, PathBuf};

use super::Mailbox;
use crate::clock::Millis;
use crate::message::{MessageId, NewMessage};
use crate::store::check::{CheckDepth, CheckReport};
use crate::store::registry::Loaded;
use crate::store::{
    Cancelled, Claimed, CommitSignal, DeadLetterFilter, DeadLetterMatch, DeadLetterPage, Enqueued,
    Lease, MessageFilter, MessagePage, OpenOptions, PauseChange, PausedType, PluginRegistry,
    Reclaimed, Selection, SettleEntry, Settled, SettledAndClaimed, Stats, StoreError, StoreHealth,
    StoredMessage, Swept, TypeCaps,
};

/// A [`Mailbox`] usable from async code. Cloning shares the connection.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    inner: Arc<Mutex<Mailbox>>,
    path: Arc<PathBuf>,
    /// Nanoseconds spent inside calls, all clones together.
    busy_ns: Arc<AtomicU64>,
    health: Arc<StoreHealth>,
}

impl SqliteStore {
    /// Shares `mailbox`.
    pub fn new(mailbox: Mailbox) -> Self {
        Self::with_health(mailbox, Arc::default())
    }

    /// Shares `mailbox`, recording failures in `health`.
    pub fn with_health(mailbox: Mailbox, health: Arc<StoreHealth>) -> Self {
        Self {
            health,
            path: Arc::new(mailbox.path().to_owned()),
            inner: Arc::new(Mutex::new(mailbox)),
            busy_ns: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Runs `f` on the connection, off the async threads.
    ///
    /// # Errors
    ///
    /// Whatever `f` returns.
    pub(crate) async fn call<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&mut Mailbox) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        let inner = self.inner.clone();
        let busy_ns = self.busy_ns.clone();
        match tokio::task::spawn_blocking(move || {
            // A panic inside `f` cannot leave the connection mid-transaction:
            // rusqlite rolls back an open transaction when it is dropped.
            let mut mailbox = inner.lock().unwrap_or_else(PoisonError::into_inner);
            let started = Instant::now();
            super::checkpoints::Checkpointer::before_call();
            let result = f(&mut mailbox);
            mailbox.after_call();
            let took = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
            busy_ns.fetch_add(took, Ordering::Relaxed);
            result
        })
        .await
        {
            Ok(result) => result,
            Err(join) => std::panic::resume_unwind(join.into_panic()),
        }
    }

    /// The time spent inside `SqliteStore::call`s so far, holding the
    /// connection. Its growth over a span of time, divided by that span, is
    /// how saturated the connection is (near 100%: the store is the
    /// bottleneck).
    pub fn busy(&self) -> Duration {
        Duration::from_nanos(self.busy_ns.load(Ordering::Relaxed))
    }

    /// Opens the file at `path` off the async threads.
    pub(crate) async fn open(path: &Path, options: &OpenOptions) -> Result<Self, StoreError> {
        let path = path.to_owned();
        let options = options.clone();
        let health = options.health.clone();
        let open = move || -> Result<Mailbox, StoreError> {
            let mut mailbox = Mailbox::open_with(&path, &options)?;
            if !options.read_only {
                mailbox.checkpoint_apart();
            }
            Ok(mailbox)
        };
        match tokio::task::spawn_blocking(open).await {
            Ok(mailbox) => Ok(Self::with_health(mailbox?, health)),
            Err(join) => std::panic::resume_unwind(join.into_panic()),
        }
    }

    /// The store file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn health(&self) -> &Arc<StoreHealth> {
        &self.health
    }

    pub(crate) fn describe(&self) -> String {
        self.path.display().to_string()
    }

    pub(crate) async fn enqueue_batch(
        &self,
        messages: Vec<NewMessage>,
    ) -> Result<Vec<Enqueued>, StoreError> {
        self.call(move |mb| mb.enqueue_batch(messages)).await
    }

    pub(crate) async fn claim(
        &self,
        limit: usize,
        lease: Duration,
        event_types: Vec<String>,
        caps: TypeCaps,
    ) -> Result<Vec<Claimed>, StoreError> {
        // A claim is a settle-and-claim with nothing to settle.
        let nothing: Vec<crate::store::Outcome> = Vec::new();
        let (_, result) = self.settle_and_claim(nothing, limit, lease, event_types, caps).await;
        result.map(|(_, claimed)| claimed)
    }

    pub(crate) async fn next_due_at(
        &self,
        event_types: Vec<String>,
    ) -> Result<Option<Millis>, StoreError> {
        self.call(move |mb| mb.next_due_at(&event_types)).await
    }

    pub(crate) async fn release(&self, leases: Vec<Lease>) -> Result<usize, StoreError> {
        self.call(move |mb| mb.release(&leases)).await
    }

    pub(crate) async fn settle<E>(
        &self,
        batch: Vec<E>,
    ) -> (Vec<E>, Result<Vec<Result<Settled, StoreError>>, StoreError>)
    where
        E: SettleEntry + Send + Sync + 'static,
    {
        self.call(move |mb| {
            let results = mb.settle(&batch);
            Ok((batch, results))
        })
        .await
        .unwrap_or_else(|_| unreachable!("the closure never fails"))
    }

    pub(crate) async fn settle_and_claim<E>(
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
        self.call(move |mb| {
            let result = mb.settle_and_claim(&batch, limit, lease, &event_types, &caps);
            Ok((batch, result))
        })
        .await
        .unwrap_or_else(|_| unreachable!("the closure never fails"))
    }

    pub(crate) async fn register_host(&self) -> Result<(), StoreError> {
        self.call(Mailbox::register_host).await
    }

    pub(crate) async fn reclaim(&self) -> Result<Reclaimed, StoreError> {
        self.call(Mailbox::reclaim).await
    }

    pub(crate) async fn maintain(&self) -> Result<(), StoreError> {
        self.call(|mb| mb.checkpoint()).await
    }

    pub(crate) async fn check(&self, depth: CheckDepth) -> Result<CheckReport, StoreError> {
        self.call(move |mb| mb.check(depth)).await
    }

    pub(crate) async fn sweep(&self) -> Result<Swept, StoreError> {
        self.call(Mailbox::sweep).await
    }

    pub(crate) async fn ping(&self) -> Result<(), StoreError> {
        self.call(|mb| mb.data_version().map(|_| ())).await
    }

    /// The file's commit counter as this connection sees it (ignores its
    /// own commits).
    pub(crate) async fn data_version(&self) -> Result<i64, StoreError> {
        self.call(|mb| mb.data_version()).await
    }

    pub(crate) async fn commit_signal(&self) -> CommitSignal {
        CommitSignal::sqlite(self.clone())
    }

    pub(crate) async fn dead_letters(
        &self,
        filter: DeadLetterFilter,
    ) -> Result<DeadLetterPage, StoreError> {
        self.call(move |mb| mb.dead_letters(&filter)).await
    }

    pub(crate) async fn message(&self, id: MessageId) -> Result<StoredMessage, StoreError> {
        self.call(move |mb| mb.message(id)).await
    }

    pub(crate) async fn redrive(&self, selection: Selection) -> Result<usize, StoreError> {
        self.call(move |mb| mb.redrive(&selection)).await
    }

    pub(crate) async fn purge(&self, selection: Selection) -> Result<usize, StoreError> {
        self.call(move |mb| mb.purge(&selection)).await
    }

    pub(crate) async fn count_dead_letters(
        &self,
        matching: DeadLetterMatch,
    ) -> Result<u64, StoreError> {
        self.call(move |mb| mb.count_dead_letters(&matching)).await
    }

    pub(crate) async fn stats(&self) -> Result<Stats, StoreError> {
        self.call(|mb| mb.stats()).await
    }

    pub(crate) async fn messages(&self, filter: MessageFilter) -> Result<MessagePage, StoreError> {
        self.call(move |mb| mb.messages(&filter)).await
    }

    pub(crate) async fn cancel_ids(&self, ids: Vec<MessageId>) -> Result<Cancelled, StoreError> {
        self.call(move |mb| mb.cancel_ids(&ids)).await
    }

    pub(crate) async fn cancel_queued(
        &self,
        event_type: String,
        limit: usize,
    ) -> Result<usize, StoreError> {
        self.call(move |mb| mb.cancel_queued(&event_type, limit))
            .await
    }

    pub(crate) async fn inflight_of(&self, event_type: String) -> Result<u64, StoreError> {
        self.call(move |mb| mb.inflight_of(&event_type)).await
    }

    pub(crate) async fn set_paused(
        &self,
        event_type: String,
        paused: bool,
    ) -> Result<PauseChange, StoreError> {
        self.call(move |mb| mb.set_paused(&event_type, paused))
            .await
    }

    pub(crate) async fn paused(&self) -> Result<Vec<PausedType>, StoreError> {
        self.call(|mb| mb.paused()).await
    }

    pub(crate) async fn plugin_registry(&self) -> Result<PluginRegistry, StoreError> {
        self.call(|mb| mb.plugin_registry()).await
    }

    pub(crate) async fn record_plugin_loaded(&self, p: Loaded) -> Result<(), StoreError> {
        self.call(move |mb| {
            mb.record_plugin_loaded(&p.path, &p.name, &p.version, &p.event_types, &p.digest)
        })
        .await
    }

    pub(crate) async fn record_plugin_rejected(
        &self,
        path: String,
        reason: String,
    ) -> Result<(), StoreError> {
        self.call(move |mb| mb.record_plugin_rejected(&path, &reason))
            .await
    }

    pub(crate) async fn forget_plugin(&self, path: String) -> Result<(), StoreError> {
        self.call(move |mb| mb.forget_plugin(&path)).await
    }

    pub(crate) async fn close(&self) {
        let _ = self.call(|mb| mb.forget_host()).await;
    }
}
