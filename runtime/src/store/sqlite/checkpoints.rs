//! Checkpoints off the connection that writes. SQLite checkpoints the WAL
//! inside the commit that takes it past 1,000 pages: the committing
//! connection copies the pages back into the database file and syncs it
//! before its call returns, about 7% of a busy host's store time
//! (docs/BENCHMARKS.md). A connection shared by a host's tasks hands that
//! to a thread of its own with its own connection instead.
//!
//! The writer cannot start the WAL over while any frame is left to copy, and
//! a writer that never pauses always leaves the last few: so the thread
//! copies the bulk, and the writer itself copies the short rest (a cheap
//! checkpoint) once the thread is done, after which its next commit starts
//! the WAL over. Should the thread's copies keep falling short, the writer
//! copies everything itself past [`BACKSTOP_FRAMES`].

use std::cell::Cell;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::hooks::Wal;
use rusqlite::{Connection, OpenFlags};

/// WAL frames (pages) at which a checkpoint starts: SQLite's own default.
const CHECKPOINT_FRAMES: u32 = 1000;

/// Frames left to copy that the writer copies itself, so the WAL can start
/// over.
const TAIL_FRAMES: u32 = 250;

/// Frames past which the writer copies everything itself when the thread
/// is not at it.
const BACKSTOP_FRAMES: u32 = 4 * CHECKPOINT_FRAMES;

thread_local! {
    /// The WAL's size after the latest commit on this thread by a connection
    /// with a [`Checkpointer`] (its hook runs inside the commit, on the
    /// committing thread); read and reset by [`Checkpointer::after_call`].
    static WAL_FRAMES: Cell<u32> = const { Cell::new(0) };
}

/// The WAL hook of a connection whose checkpoints a [`Checkpointer`] runs:
/// notes the WAL's size, and checkpoints nothing.
fn note_frames(_: &Wal, frames: std::ffi::c_int) -> rusqlite::Result<()> {
    WAL_FRAMES.set(u32::try_from(frames).unwrap_or(0));
    Ok(())
}

/// A thread that checkpoints one store file for one writing connection.
#[derive(Debug)]
pub(crate) struct Checkpointer {
    wake: Option<SyncSender<()>>,
    state: Arc<State>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Debug, Default)]
struct State {
    /// A checkpoint is under way on the thread.
    running: AtomicBool,
    /// Frames the thread's latest checkpoint had copied (0 once the writer
    /// has copied the rest itself).
    copied: AtomicU32,
}

impl Checkpointer {
    /// Starts the thread for the store at `path` and takes over `writer`'s
    /// checkpoints. On failure `writer` keeps checkpointing itself.
    pub(crate) fn start(writer: &Connection, path: &Path, busy_timeout: Duration) -> std::io::Result<Self> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .and_then(|conn| conn.busy_timeout(busy_timeout).map(|()| conn))
        .map_err(std::io::Error::other)?;
        let state = Arc::new(State::default());
        let (wake, woken) = mpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("mailroom-checkpoint".into())
            .spawn({
                let state = state.clone();
                move || run(&conn, &woken, &state)
            })?;
        writer.wal_hook(Some(note_frames));
        Ok(Self {
            wake: Some(wake),
            state,
            thread: Some(thread),
        })
    }

    /// Called on the writer's thread before each call on it.
    pub(crate) fn before_call() {
        WAL_FRAMES.set(0);
    }

    /// Called on the writer's thread after each call on it: starts, or
    /// finishes, a checkpoint when the call's commit grew the WAL far enough.
    pub(crate) fn after_call(&self, writer: &Connection) {
        let frames = WAL_FRAMES.replace(0);
        if frames < CHECKPOINT_FRAMES || self.state.running.load(Ordering::SeqCst) {
            return;
        }
        let copied = self.state.copied.load(Ordering::SeqCst);
        let tail = copied > 0 && frames.saturating_sub(copied) <= TAIL_FRAMES;
        if tail || frames >= BACKSTOP_FRAMES {
            // Passive, as SQLite's own: it never waits for a lock.
            if let Err(e) = writer.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                tracing::warn!(error = %e, "a checkpoint of the store failed; the next one retries");
            }
            self.state.copied.store(0, Ordering::SeqCst);
        } else if let Some(wake) = &self.wake {
            self.state.running.store(true, Ordering::SeqCst);
            if let Err(TrySendError::Disconnected(())) = wake.try_send(()) {
                self.state.running.store(false, Ordering::SeqCst);
            }
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        // Closing the channel ends the thread after its current pass.
        self.wake = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The thread: a passive checkpoint each time it is woken, until the writer
/// is gone.
fn run(conn: &Connection, woken: &Receiver<()>, state: &State) {
    while woken.recv().is_ok() {
        let copied = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| row.get::<_, i64>(2));
        match copied {
            Ok(copied) => state
                .copied
                .store(u32::try_from(copied).unwrap_or(0), Ordering::SeqCst),
            Err(e) => tracing::warn!(error = %e, "a background checkpoint of the store failed; the next one retries"),
        }
        state.running.store(false, Ordering::SeqCst);
    }
}
