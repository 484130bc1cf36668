//! The shared backend: the mailbox in a PostgreSQL database, schema
//! `mailroom`, for many hosts on many machines and for applications that
//! enqueue inside their own transactions.
//!
//! The client is `tokio-postgres` with a `deadpool-postgres` pool: natively
//! async (no thread per connection, no blocking pool), it pipelines the
//! statements of a batch over one connection, and it exposes the
//! connection's asynchronous messages, which is what `LISTEN` needs. sqlx
//! would add compile-time query checking against a live database, which a
//! build here cannot rely on.
//!
//! As on SQLite, nothing here decides: failures and expired leases go
//! through `crate::store::settle`'s decision, host liveness through
//! `crate::store::reclaim`'s. Every state-changing statement is guarded by
//! the state and the lease token it expects. Claims lock their rows with
//! `FOR UPDATE SKIP LOCKED`, so concurrent claimers never wait on each
//! other and never take one message twice.
//!
//! Time: with the system clock, every timestamp is the database server's
//! (measured once per heartbeat as an offset from this machine's clock), so
//! hosts on several machines agree on lease expiry. Tests drive time with a
//! manual clock instead.
//!
//! | file              | holds                                                  |
//! | ----------------- | ------------------------------------------------------ |
//! | `connect.rs`      | client configuration, the pool, error mapping          |
//! | `schema.rs`       | migrations, and the SQL functions applications call    |
//! | `messages.rs`     | enqueue, claim, release, settle                        |
//! | `inspect.rs`      | messages, dead letters, redrive, purge, stats          |
//! | `queue.rs`        | messages in any state, cancels, paused event types     |
//! | `hosts.rs`        | host registration, heartbeats, reclaim, plugin registry |
//! | `listen.rs`       | the `LISTEN` connection that wakes the dispatcher      |
//! | `retention.rs`    | the sweep: keys of removed messages, forgotten late    |
//! | `outbox.rs`       | enqueueing inside an application's own transaction     |

mod connect;
mod hosts;
mod inspect;
mod listen;
mod messages;
pub mod outbox;
mod queue;
mod retention;
mod schema;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use deadpool_postgres::{Object, Pool};

use crate::clock::{Millis, SharedClock};
use crate::state_machine::Policies;
use crate::store::{CommitSignal, LeaseOwner, OpenOptions, PostgresUrl, StoreError};
use connect::Errors;

pub(crate) use listen::Listener;

/// A pool of connections to a PostgreSQL store. Cloning shares it.
#[derive(Debug, Clone)]
pub struct PgStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    pool: Pool,
    url: PostgresUrl,
    errors: Errors,
    owner: LeaseOwner,
    clock: SharedClock,
    /// The database server's clock minus this machine's, in ms (used with
    /// the system clock only).
    offset_ms: AtomicI64,
    policies: Policies,
    max_payload_bytes: usize,
    host_silence: Duration,
    /// How long the key of a removed message is remembered.
    key_retention: Duration,
    /// Whether this store's owner is recorded in `hosts`.
    registered: AtomicBool,
    busy_ns: AtomicU64,
    health: Arc<crate::store::StoreHealth>,
}

impl PgStore {
    /// Connects, checks the login, and creates or migrates the schema when
    /// `options.create` allows.
    pub(crate) async fn open(url: &PostgresUrl, options: &OpenOptions) -> Result<Self, StoreError> {
        let errors = Errors {
            store: url.redacted(),
        };
        let pool = connect::pool(url, options)?;
        let store = Self {
            inner: Arc::new(Inner {
                pool,
                url: url.clone(),
                errors,
                owner: LeaseOwner::current(),
                clock: options.clock.clone(),
                offset_ms: AtomicI64::new(0),
                policies: options.policies.clone(),
                max_payload_bytes: options.max_payload_bytes,
                host_silence: options.host_silence,
                key_retention: options.key_retention,
                registered: AtomicBool::new(false),
                busy_ns: AtomicU64::new(0),
                health: options.health.clone(),
            }),
        };
        let mut client = store.client().await?;
        schema::migrate(&mut client, &store.inner.errors, options.create, options.read_only).await?;
        store.sync_clock(&client).await?;
        Ok(store)
    }

    pub(crate) fn health(&self) -> &Arc<crate::store::StoreHealth> {
        &self.inner.health
    }

    pub(crate) fn describe(&self) -> String {
        self.inner.url.redacted()
    }

    /// A pooled connection.
    async fn client(&self) -> Result<Object, StoreError> {
        self.inner
            .pool
            .get()
            .await
            .map_err(|e| self.inner.errors.pool(e))
    }

    fn errors(&self) -> &Errors {
        &self.inner.errors
    }

    /// Now, on the store's clock.
    fn now(&self) -> Millis {
        let local = self.inner.clock.now_ms();
        if self.inner.clock.is_system() {
            local.saturating_add(self.inner.offset_ms.load(Ordering::Relaxed))
        } else {
            local
        }
    }

    /// Measures the database server's clock against this machine's.
    async fn sync_clock(&self, client: &Object) -> Result<(), StoreError> {
        if !self.inner.clock.is_system() {
            return Ok(());
        }
        let before = self.inner.clock.now_ms();
        let server: i64 = client
            .query_one("SELECT mailroom.now_ms()", &[])
            .await
            .map_err(|e| self.errors().pg(&e))?
            .get(0);
        let after = self.inner.clock.now_ms();
        let local = before + (after - before) / 2;
        self.inner
            .offset_ms
            .store(server.saturating_sub(local), Ordering::Relaxed);
        Ok(())
    }

    /// Runs `work` and counts the time it took as busy.
    async fn timed<T>(&self, work: impl Future<Output = T>) -> T {
        let started = Instant::now();
        let out = work.await;
        let took = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.inner.busy_ns.fetch_add(took, Ordering::Relaxed);
        out
    }

    pub(crate) fn busy(&self) -> Duration {
        Duration::from_nanos(self.inner.busy_ns.load(Ordering::Relaxed))
    }

    pub(crate) async fn maintain(&self) -> Result<(), StoreError> {
        // The server vacuums on its own; nothing to do between claims.
        Ok(())
    }

    /// The schema version and the counts: the server keeps its own pages
    /// consistent (and reports damage in its log), so there is no page scan.
    pub(crate) async fn check(
        &self,
        _depth: crate::store::CheckDepth,
    ) -> Result<crate::store::CheckReport, StoreError> {
        let started = std::time::Instant::now();
        let client = self.client().await?;
        let schema_version = schema::version(&client, self.errors())
            .await?
            .unwrap_or(0);
        drop(client);
        let mut problems = Vec::new();
        if schema_version != schema::LATEST_VERSION {
            problems.push(format!(
                "schema version {schema_version}, this mailroom writes {}",
                schema::LATEST_VERSION
            ));
        }
        let totals = match self.stats().await {
            Ok(stats) => Some(stats.totals),
            Err(e) => {
                problems.push(e.to_string());
                None
            }
        };
        Ok(crate::store::CheckReport {
            store: self.describe(),
            backend: "postgres",
            schema_version,
            checked: "the schema version and the counts (the server checks its own pages)".to_owned(),
            problems,
            bytes: None,
            totals,
            took_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        })
    }

    pub(crate) async fn ping(&self) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .simple_query("SELECT 1")
            .await
            .map(|_| ())
            .map_err(|e| self.errors().pg(&e))
    }

    pub(crate) async fn commit_signal(&self) -> CommitSignal {
        CommitSignal::postgres(Listener::start(
            self.inner.url.clone(),
            self.inner.errors.clone(),
        ))
    }
}
