//! Log output for `mailroom run`: human-readable lines by default, one JSON
//! object per line for log collectors. Either way every delivery line carries
//! the message id, event type, plugin and attempt.

use std::cell::Cell;
use std::io::{BufWriter, IsTerminal as _, Write};
use std::sync::{Mutex, OnceLock, PoisonError};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;

use crate::config::{LogConfig, LogFormat};

/// The log filter was not understood.
#[derive(Debug, thiserror::Error)]
#[error(
    "log.level `{level}` is not a valid filter ({reason}): use e.g. `info`, `debug` or `info,mailroom=debug`"
)]
pub struct LogSetupError {
    level: String,
    reason: String,
}

/// Installs the global subscriber, writing to stderr. Does nothing if one is
/// already installed (a program embedding the host keeps its own).
///
/// # Errors
///
/// [`LogSetupError`] for an invalid `log.level`.
pub fn init(config: &LogConfig) -> Result<(), LogSetupError> {
    let filter = EnvFilter::try_new(&config.level).map_err(|e| LogSetupError {
        level: config.level.clone(),
        reason: e.to_string(),
    })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| STDERR.get_or_init(|| Buffered::new(std::io::stderr())))
        // Colours only for a person at a terminal, not in a log file.
        .with_ansi(std::io::stderr().is_terminal())
        .with_span_events(FmtSpan::NONE);
    let _ = match config.format {
        LogFormat::Human => builder.with_target(false).try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
    Ok(())
}

/// The host's log lines on their way to stderr, once [`init`] installed
/// them: the only writer to flush at the end of a [`batch`].
static STDERR: OnceLock<Buffered<std::io::Stderr>> = OnceLock::new();

thread_local! {
    /// Inside a [`batch`] on this thread.
    static BATCHING: Cell<bool> = const { Cell::new(false) };
}

/// Lines logged on this thread until the guard is dropped are written to
/// stderr together, in one write, rather than one write each. For a loop
/// that logs a line per item (the settler's line per delivery): at the
/// default level a `write` per line was about 7% of a saturated host's
/// time (docs/BENCHMARKS.md). Lines from other threads meanwhile are
/// written as they come, and take the batch's lines so far with them.
pub(crate) fn batch() -> Batch {
    Batch {
        was_batching: BATCHING.replace(true),
        _this_thread: std::marker::PhantomData,
    }
}

/// See [`batch`].
#[must_use = "the batch is written when the guard is dropped"]
pub(crate) struct Batch {
    was_batching: bool,
    /// The batch belongs to this thread's flag: the guard must not move to
    /// another thread (an `.await` while it is held would not compile in a
    /// spawned task).
    _this_thread: std::marker::PhantomData<*const ()>,
}

impl Drop for Batch {
    fn drop(&mut self) {
        BATCHING.set(self.was_batching);
        if !self.was_batching
            && let Some(stderr) = STDERR.get()
        {
            // Nowhere to report a failure to write the log.
            let _ = stderr.lock().flush();
        }
    }
}

/// A writer behind a buffer that holds a [`batch`]'s lines; any other line
/// is written at once.
struct Buffered<W: Write> {
    buffer: Mutex<BufWriter<W>>,
}

impl<W: Write> Buffered<W> {
    fn new(out: W) -> Self {
        Self {
            buffer: Mutex::new(BufWriter::with_capacity(64 * 1024, out)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BufWriter<W>> {
        // A panic mid-write leaves at worst a partial line in the buffer.
        self.buffer.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<W: Write> Write for &Buffered<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut out = self.lock();
        out.write_all(buf)?;
        if !BATCHING.get() {
            out.flush()?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.lock().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What reached the writer under the buffer.
    #[derive(Clone, Default)]
    struct Sink(std::sync::Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Sink {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    #[test]
    fn a_line_is_written_at_once_and_a_batch_s_lines_together_at_its_end() {
        let sink = Sink::default();
        let buffered = Buffered::new(sink.clone());
        (&buffered).write_all(b"one\n").unwrap();
        assert_eq!(sink.text(), "one\n");

        let batch = batch();
        (&buffered).write_all(b"two\n").unwrap();
        (&buffered).write_all(b"three\n").unwrap();
        assert_eq!(sink.text(), "one\n", "held until the batch ends");
        // Another thread's line is written at once, the batch's with it.
        std::thread::scope(|s| {
            s.spawn(|| (&buffered).write_all(b"elsewhere\n").unwrap());
        });
        assert_eq!(sink.text(), "one\ntwo\nthree\nelsewhere\n");
        (&buffered).write_all(b"four\n").unwrap();
        // A batch inside a batch ends with the outer one.
        drop(super::batch());
        assert!(BATCHING.get());
        drop(batch);
        assert!(!BATCHING.get());
        (&buffered).flush().unwrap();
        assert_eq!(sink.text(), "one\ntwo\nthree\nelsewhere\nfour\n");
        (&buffered).write_all(b"five\n").unwrap();
        assert!(sink.text().ends_with("four\nfive\n"));
    }
}
