//! Watching the plugin folder. This module only reports what changed; what a
//! change means (load, replace, unload) is the loader's business.
//!
//! Events are debounced: a file is reported once it has stopped changing for
//! the debounce period (within twice that), so a plugin copied in slowly is
//! read whole. Hidden files and temporary names (`name.wasm.tmp`,
//! `name.wasm~`, editor swap files) are never reported: deploy by writing
//! `name.wasm.tmp` and renaming it into place.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::RecursiveMode;
use notify::event::{AccessKind, AccessMode, EventKind};
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};
use tokio::sync::mpsc::UnboundedSender;

/// How long a file must stay unchanged before it is reported.
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(250);

/// A change in the plugin folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FolderEvent {
    /// A plugin file appeared or changed.
    Changed(PathBuf),
    /// A plugin file is gone.
    Removed(PathBuf),
    /// Events may have been lost (the OS queue overflowed, or the watcher
    /// failed): the whole folder must be scanned again.
    Rescan,
}

/// Could not watch the plugin folder.
#[derive(Debug, thiserror::Error)]
#[error("cannot watch the plugin folder {dir}: {source} (check that it exists and is readable)")]
pub struct WatchError {
    /// The folder.
    pub dir: PathBuf,
    /// What the OS said.
    #[source]
    pub source: notify::Error,
}

/// Watches one folder until dropped.
pub struct FolderWatcher {
    _debouncer: Debouncer<notify::RecommendedWatcher, RecommendedCache>,
}

impl std::fmt::Debug for FolderWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FolderWatcher").finish_non_exhaustive()
    }
}

/// Whether `path` names a plugin file: `*.wasm`, not hidden. Temporary files
/// (`x.wasm.tmp`, `x.wasm~`, `.x.wasm.swp`) do not end in `.wasm`, or are hidden.
pub fn is_plugin_file(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    !name.starts_with('.') && name.ends_with(".wasm") && name.len() > ".wasm".len()
}

/// Starts watching `dir` (not recursively), sending [`FolderEvent`]s to `events`.
///
/// # Errors
///
/// [`WatchError`] when the OS watcher cannot be set up on `dir`.
pub fn watch(
    dir: &Path,
    debounce: Duration,
    events: UnboundedSender<FolderEvent>,
) -> Result<FolderWatcher, WatchError> {
    let dir_owned = dir.to_owned();
    let error = |source| WatchError {
        dir: dir_owned.clone(),
        source,
    };
    // The debouncer's thread wakes every tick whether or not anything
    // changed: one tick per debounce period (rather than the default four)
    // keeps an idle host near zero CPU, at the cost of reporting a file
    // between one and two periods after its last change.
    let mut debouncer = new_debouncer(debounce, Some(debounce), move |result: DebounceEventResult| {
        for event in translate(result) {
            // The receiver is gone when the host is shutting down.
            let _ = events.send(event);
        }
    })
    .map_err(error)?;
    debouncer
        .watch(dir, RecursiveMode::NonRecursive)
        .map_err(error)?;
    Ok(FolderWatcher {
        _debouncer: debouncer,
    })
}

/// One batch of debounced notifications, as folder events: one per plugin
/// file, whether it now exists deciding changed or removed.
fn translate(result: DebounceEventResult) -> Vec<FolderEvent> {
    let events = match result {
        Ok(events) => events,
        Err(errors) => {
            for e in errors {
                tracing::warn!(
                    "the plugin folder watcher reported an error ({e}); rescanning the folder"
                );
            }
            return vec![FolderEvent::Rescan];
        }
    };
    if events.iter().any(|e| e.need_rescan()) {
        return vec![FolderEvent::Rescan];
    }
    let paths: BTreeSet<PathBuf> = events
        .iter()
        // Opening or reading a file changes nothing, and the loader reads
        // every file it is told about: reporting reads would make each load
        // trigger the next, forever.
        .filter(|e| !is_read_only_access(&e.kind))
        .flat_map(|e| e.paths.iter())
        .filter(|p| is_plugin_file(p))
        .cloned()
        .collect();
    paths
        .into_iter()
        .map(|p| {
            // Whatever is there now (a FIFO or a device too) is the loader's
            // to judge, so it can say why it refuses it.
            if p.symlink_metadata().is_ok() {
                FolderEvent::Changed(p)
            } else {
                FolderEvent::Removed(p)
            }
        })
        .collect()
}

/// An open, or a close after reading only: the file's content is unchanged.
fn is_read_only_access(kind: &EventKind) -> bool {
    matches!(kind, EventKind::Access(access) if !matches!(access, AccessKind::Close(AccessMode::Write)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_wasm_files_are_plugins() {
        for yes in ["a.wasm", "/x/order-validator.wasm", "v1.2.wasm"] {
            assert!(is_plugin_file(Path::new(yes)), "{yes}");
        }
        for no in [
            "a.wasm.tmp",
            ".a.wasm",
            ".a.wasm.swp",
            "a.wasm~",
            "a.txt",
            ".wasm",
            "dir/",
        ] {
            assert!(!is_plugin_file(Path::new(no)), "{no}");
        }
    }

    #[tokio::test]
    async fn reports_new_changed_and_removed_files_but_not_temporary_ones() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let _watcher = watch(dir.path(), Duration::from_millis(50), tx).expect("watch");
        async fn next(rx: &mut tokio::sync::mpsc::UnboundedReceiver<FolderEvent>) -> FolderEvent {
            tokio::time::timeout(Duration::from_secs(10), rx.recv())
                .await
                .expect("an event")
                .expect("open")
        }

        let tmp = dir.path().join("p.wasm.tmp");
        let real = dir.path().join("p.wasm");
        std::fs::write(&tmp, b"bytes").expect("write");
        std::fs::rename(&tmp, &real).expect("rename");
        assert_eq!(next(&mut rx).await, FolderEvent::Changed(real.clone()));

        std::fs::write(&real, b"new bytes").expect("rewrite");
        assert_eq!(next(&mut rx).await, FolderEvent::Changed(real.clone()));

        std::fs::remove_file(&real).expect("remove");
        assert_eq!(next(&mut rx).await, FolderEvent::Removed(real));

        std::fs::write(dir.path().join(".hidden.wasm"), b"x").expect("write");
        std::fs::write(dir.path().join("q.wasm.tmp"), b"x").expect("write");
        assert!(
            tokio::time::timeout(Duration::from_millis(400), rx.recv())
                .await
                .is_err(),
            "hidden and temporary files are not reported"
        );
    }

    #[tokio::test]
    async fn reading_a_plugin_file_is_not_a_change() {
        let dir = tempfile::tempdir().expect("tempdir");
        let real = dir.path().join("p.wasm");
        std::fs::write(&real, b"bytes").expect("write");
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let _watcher = watch(dir.path(), Duration::from_millis(50), tx).expect("watch");

        // What the loader does with every file it is told about.
        assert_eq!(std::fs::read(&real).expect("read"), b"bytes");
        assert!(
            tokio::time::timeout(Duration::from_millis(400), rx.recv())
                .await
                .is_err(),
            "reading a file is not reported as a change"
        );
    }
}
