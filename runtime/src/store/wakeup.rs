//! Noticing other processes' commits without polling hard.
//!
//! On SQLite every commit appends to the store's `-wal` file, so a
//! file-system notification on it means "the store may have changed"; a
//! cheap `PRAGMA data_version` on the dispatcher's own connection (which
//! ignores its own commits) then tells whether another connection
//! committed. On PostgreSQL, enqueues, acks with follow-ups, redrives and
//! releases `NOTIFY` in their transaction, and each host keeps a `LISTEN`
//! connection that reconnects on its own. Either way the dispatcher's slow
//! poll stays as the safety net.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::{Instant, sleep_until};

use super::postgres::Listener;
use super::sqlite::{CommitWatch, SqliteStore};

/// After a write to the WAL file that is not yet a visible commit, look
/// again this much later, then twice as late each time up to
/// [`LAST_RECHECK`]: a commit's frames are written before its sync (which can
/// take long on a busy disk) and before readers can see it, and the sync
/// itself raises no file event.
const FIRST_RECHECK: Duration = Duration::from_millis(10);
const LAST_RECHECK: Duration = Duration::from_millis(640);

/// What wakes a dispatcher when another process commits.
#[derive(Debug)]
pub struct CommitSignal {
    inner: Inner,
}

#[derive(Debug)]
enum Inner {
    Sqlite {
        store: SqliteStore,
        written: Arc<Notify>,
        watch: Option<CommitWatch>,
        version: Option<i64>,
        /// When to look again, and the wait that led there.
        recheck: Option<(Instant, Duration)>,
    },
    Postgres {
        listener: Listener,
    },
}

impl CommitSignal {
    pub(crate) fn sqlite(store: SqliteStore) -> Self {
        let written = Arc::new(Notify::new());
        let watch = super::sqlite::watch_commits(store.path(), written.clone());
        Self {
            inner: Inner::Sqlite {
                store,
                written,
                watch,
                version: None,
                recheck: None,
            },
        }
    }

    pub(crate) fn postgres(listener: Listener) -> Self {
        Self {
            inner: Inner::Postgres { listener },
        }
    }

    /// Whether the dispatcher is listening. A busy dispatcher looks again
    /// after each of its own commits anyway, so it need not be told of
    /// others': on SQLite the file watch is then set aside (armed, every
    /// page the dispatcher writes would raise a file event too). Attending
    /// again, it looks at once for what was committed meanwhile.
    pub fn attend(&mut self, attend: bool) {
        if let Inner::Sqlite {
            watch: Some(watch),
            recheck,
            ..
        } = &mut self.inner
        {
            if !attend {
                watch.disarm();
            } else if watch.arm() {
                // One look now (a zero wait is not repeated).
                *recheck = Some((Instant::now(), Duration::ZERO));
            }
        }
    }

    /// Waits until another process may have committed something claimable.
    /// Cancel-safe: dropped mid-wait, nothing is lost but that wait.
    pub async fn changed(&mut self) {
        loop {
            let by_write = match &mut self.inner {
                Inner::Postgres { listener } => return listener.notified().await,
                Inner::Sqlite {
                    written, recheck, ..
                } => {
                    let written = written.clone();
                    match *recheck {
                        Some((at, _)) => tokio::select! {
                            () = written.notified() => true,
                            () = sleep_until(at) => false,
                        },
                        None => {
                            written.notified().await;
                            true
                        }
                    }
                }
            };
            let changed = self.poll().await;
            if let Inner::Sqlite { recheck, .. } = &mut self.inner {
                // A write not yet visible as a commit: look again shortly,
                // less often the longer it takes.
                let wait = match (*recheck, by_write) {
                    _ if changed => None,
                    (_, true) => Some(FIRST_RECHECK),
                    (Some((_, waited)), false) if waited.is_zero() => None,
                    (Some((_, waited)), false) => {
                        Some(waited * 2).filter(|next| *next <= LAST_RECHECK)
                    }
                    (None, false) => None,
                };
                *recheck = wait.map(|wait| (Instant::now() + wait, wait));
            }
            if changed {
                return;
            }
        }
    }

    /// Whether another process committed since the last look (the slow
    /// poll). The first look counts as a change: a commit made before it
    /// could not have been noticed otherwise.
    pub async fn poll(&mut self) -> bool {
        match &mut self.inner {
            Inner::Sqlite { store, version, .. } => match store.data_version().await {
                Ok(now) => {
                    let changed = *version != Some(now);
                    *version = Some(now);
                    changed
                }
                Err(e) => {
                    tracing::debug!("could not look for other processes' commits: {e}");
                    true
                }
            },
            // Notifications do the work; the poll claims anyway, as a
            // safety net for notifications lost while reconnecting.
            Inner::Postgres { .. } => true,
        }
    }
}
