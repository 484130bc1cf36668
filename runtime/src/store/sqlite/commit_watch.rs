//! Noticing commits by other processes without polling. In WAL mode every
//! commit appends to the `-wal` file beside the store, so a file-system
//! notification on that file means "the store may have changed". The
//! dispatcher then checks `PRAGMA data_version` once (which ignores its own
//! commits) and claims if another connection committed. Its slow poll stays
//! as the safety net: for a file system that reports no changes, or an
//! event lost in an overflow.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use notify::event::{EventKind, ModifyKind};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::Notify;

/// Watches the folder of the store's `-wal` file while armed.
///
/// Armed, every page this process writes to the WAL also raises an event
/// (the kernel's notification work in each write, and a wake-up of the
/// watcher's thread): a busy dispatcher, which looks again after every
/// commit anyway, disarms it.
pub(crate) struct CommitWatch {
    watcher: RecommendedWatcher,
    dir: PathBuf,
    armed: bool,
}

impl std::fmt::Debug for CommitWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommitWatch")
            .field("dir", &self.dir)
            .field("armed", &self.armed)
            .finish_non_exhaustive()
    }
}

impl CommitWatch {
    /// Starts watching again; true when it was not watching. A failure is
    /// logged and leaves it unarmed (the dispatcher's poll does the job).
    pub(crate) fn arm(&mut self) -> bool {
        if self.armed {
            return false;
        }
        match self.watch() {
            Ok(()) => true,
            Err(e) => {
                tracing::debug!(dir = %self.dir.display(), "cannot watch the store's folder again: {e}");
                false
            }
        }
    }

    fn watch(&mut self) -> notify::Result<()> {
        self.watcher.watch(&self.dir, RecursiveMode::NonRecursive)?;
        self.armed = true;
        Ok(())
    }

    /// Stops watching until [`CommitWatch::arm`].
    pub(crate) fn disarm(&mut self) {
        if self.armed {
            self.armed = false;
            let _ = self.watcher.unwatch(&self.dir);
        }
    }
}

/// The `-wal` file SQLite keeps beside `store`, as an absolute path (the
/// form the watcher reports paths in).
fn wal_path(store: &Path) -> std::io::Result<PathBuf> {
    let mut wal = std::path::absolute(store)?.into_os_string();
    wal.push("-wal");
    Ok(PathBuf::from(wal))
}

/// Notifies `changed` whenever the store's `-wal` file is written (while
/// armed; it starts armed). Watches the folder rather than the file: a
/// process closing the store may remove the WAL file, and the next writer
/// creates a new one. The write comes a moment before the commit is
/// visible to readers, so whoever is notified should look again shortly if
/// it sees nothing new.
/// `None`, with a warning, when the file system cannot be watched: the
/// dispatcher's poll then does the job alone.
pub(crate) fn watch_commits(store: &Path, changed: Arc<Notify>) -> Option<CommitWatch> {
    let set_up = || -> Result<CommitWatch, String> {
        let wal = wal_path(store).map_err(|e| e.to_string())?;
        let dir = wal
            .parent()
            .ok_or_else(|| "the store path has no folder".to_owned())?
            .to_owned();
        let watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                let Ok(event) = event else {
                    // An error (an overflow, say) may hide a commit: look.
                    changed.notify_one();
                    return;
                };
                let written = matches!(
                    event.kind,
                    EventKind::Create(_) | EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Any)
                );
                if written && event.paths.contains(&wal) {
                    changed.notify_one();
                }
            })
            .map_err(|e| e.to_string())?;
        let mut watch = CommitWatch {
            watcher,
            dir,
            armed: false,
        };
        watch.watch().map_err(|e| e.to_string())?;
        Ok(watch)
    };
    match set_up() {
        Ok(watch) => Some(watch),
        Err(reason) => {
            tracing::warn!(
                store = %store.display(),
                "cannot watch the store for other processes' commits ({reason}); \
                 relying on dispatcher.poll_interval alone"
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_commit_by_another_connection_is_noticed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("m.db");
        let _store = super::super::Mailbox::open(&path).expect("open");
        let mut other = super::super::Mailbox::open(&path).expect("open");
        let changed = Arc::new(Notify::new());
        let _watch = watch_commits(&path, changed.clone()).expect("watch");
        assert!(
            tokio::time::timeout(Duration::from_millis(300), changed.notified())
                .await
                .is_err(),
            "nothing was committed yet"
        );
        other
            .enqueue(crate::message::NewMessage::new("a", b"{}".to_vec()))
            .expect("enqueue");
        tokio::time::timeout(Duration::from_secs(10), changed.notified())
            .await
            .expect("the commit wakes the watch");
    }

    #[tokio::test]
    async fn a_disarmed_watch_is_silent_until_armed_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("m.db");
        let _store = super::super::Mailbox::open(&path).expect("open");
        let mut other = super::super::Mailbox::open(&path).expect("open");
        let changed = Arc::new(Notify::new());
        let mut watch = watch_commits(&path, changed.clone()).expect("watch");
        watch.disarm();
        other
            .enqueue(crate::message::NewMessage::new("a", b"{}".to_vec()))
            .expect("enqueue");
        assert!(
            tokio::time::timeout(Duration::from_millis(300), changed.notified())
                .await
                .is_err(),
            "a disarmed watch reports nothing"
        );
        assert!(watch.arm(), "arming a disarmed watch says so");
        assert!(!watch.arm(), "an armed watch stays armed");
        other
            .enqueue(crate::message::NewMessage::new("a", b"{}".to_vec()))
            .expect("enqueue");
        tokio::time::timeout(Duration::from_secs(10), changed.notified())
            .await
            .expect("the commit wakes the watch once armed again");
    }
}
