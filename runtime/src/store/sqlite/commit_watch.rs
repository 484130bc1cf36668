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

/// Watches the store's `-wal` file while it lives.
pub(crate) struct CommitWatch {
    _watcher: RecommendedWatcher,
}

impl std::fmt::Debug for CommitWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommitWatch").finish_non_exhaustive()
    }
}

/// The `-wal` file SQLite keeps beside `store`, as an absolute path (the
/// form the watcher reports paths in).
fn wal_path(store: &Path) -> std::io::Result<PathBuf> {
    let mut wal = std::path::absolute(store)?.into_os_string();
    wal.push("-wal");
    Ok(PathBuf::from(wal))
}

/// Notifies `changed` whenever the store's `-wal` file is written. Watches
/// the folder rather than the file: a process closing the store may remove
/// the WAL file, and the next writer creates a new one. The write comes a
/// moment before the commit is visible to readers, so whoever is notified
/// should look again shortly if it sees nothing new.
/// `None`, with a warning, when the file system cannot be watched: the
/// dispatcher's poll then does the job alone.
pub(crate) fn watch_commits(store: &Path, changed: Arc<Notify>) -> Option<CommitWatch> {
    let set_up = || -> Result<CommitWatch, String> {
        let wal = wal_path(store).map_err(|e| e.to_string())?;
        let dir = wal
            .parent()
            .ok_or_else(|| "the store path has no folder".to_owned())?
            .to_owned();
        let mut watcher =
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
        watcher
            .watch(&dir, RecursiveMode::NonRecursive)
            .map_err(|e| e.to_string())?;
        Ok(CommitWatch { _watcher: watcher })
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
}
