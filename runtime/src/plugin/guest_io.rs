//! Guest stdout and stderr, forwarded to the host log line by line.
//!
//! Each store gets two [`GuestStream`]s sharing one [`GuestOutput`]: a budget
//! of bytes per delivery (`max_output_bytes`), the partial line of each
//! stream, and the last few KiB of stderr. Bytes past the budget are counted
//! and dropped, so a guest printing 100 MB costs its own time, never host
//! memory. The stderr tail is kept apart from the budget: it is what explains
//! a panic (a Rust guest prints the panic message there just before it aborts).

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

use super::delivery::truncate_reason;
use super::sandbox::{MAX_LINE_BYTES, OUTPUT_WRITE_PERMIT, STDERR_TAIL_BYTES};

/// The tracing target of everything a guest says (stdout, stderr, `logging.log`).
pub const GUEST_TARGET: &str = "mailroom::plugin::guest";

/// Which guest stream a byte came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// The output state of one store, shared by its stdout and stderr streams.
#[derive(Debug, Clone)]
pub(crate) struct GuestOutput(Arc<Mutex<OutputState>>);

#[derive(Debug)]
struct OutputState {
    plugin: Arc<str>,
    /// The message id of the current delivery, or what the call is ("info").
    call: Arc<str>,
    budget: usize,
    used: usize,
    truncated: bool,
    stdout_line: Vec<u8>,
    stderr_line: Vec<u8>,
    stderr_tail: Vec<u8>,
}

impl GuestOutput {
    pub(crate) fn new(plugin: Arc<str>, budget: usize) -> Self {
        Self(Arc::new(Mutex::new(OutputState {
            plugin,
            // Empty until the first call: `default` shares one static
            // empty string, so a fresh instance allocates nothing here.
            call: Arc::default(),
            budget,
            used: 0,
            truncated: false,
            stdout_line: Vec::new(),
            stderr_line: Vec::new(),
            stderr_tail: Vec::new(),
        })))
    }

    fn lock(&self) -> MutexGuard<'_, OutputState> {
        // A panic while logging leaves nothing half-updated that matters.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts a call: a fresh budget and stderr tail, tagged with `call`.
    pub(crate) fn begin(&self, call: Arc<str>) {
        let mut state = self.lock();
        state.call = call;
        state.used = 0;
        state.truncated = false;
        state.stdout_line.clear();
        state.stderr_line.clear();
        state.stderr_tail.clear();
    }

    /// Ends a call: logs any unterminated line.
    pub(crate) fn finish(&self) {
        let mut state = self.lock();
        for stream in [Stream::Stdout, Stream::Stderr] {
            let line = std::mem::take(state.line_mut(stream));
            if !line.is_empty() {
                state.log_line(stream, &line);
            }
        }
    }

    /// The most recent stderr bytes of the current call, as text.
    pub(crate) fn stderr_tail(&self) -> String {
        String::from_utf8_lossy(&self.lock().stderr_tail).into_owned()
    }

    fn write(&self, stream: Stream, bytes: &[u8]) {
        let mut state = self.lock();
        if stream == Stream::Stderr {
            state.keep_stderr_tail(bytes);
        }
        let room = state.budget.saturating_sub(state.used);
        let (kept, dropped) = bytes.split_at(bytes.len().min(room));
        state.used += kept.len();
        for piece in kept.split_inclusive(|b| *b == b'\n') {
            let (text, ends_line) = match piece.strip_suffix(b"\n") {
                Some(text) => (text, true),
                None => (piece, false),
            };
            state.line_mut(stream).extend_from_slice(text);
            if ends_line || state.line_mut(stream).len() >= MAX_LINE_BYTES {
                let line = std::mem::take(state.line_mut(stream));
                state.log_line(stream, &line);
            }
        }
        if !dropped.is_empty() && !state.truncated {
            state.truncated = true;
            tracing::warn!(
                target: GUEST_TARGET,
                plugin = %state.plugin,
                message_id = %state.call,
                "guest output over {} bytes for this call: the rest is dropped",
                state.budget,
            );
        }
    }
}

impl OutputState {
    fn line_mut(&mut self, stream: Stream) -> &mut Vec<u8> {
        match stream {
            Stream::Stdout => &mut self.stdout_line,
            Stream::Stderr => &mut self.stderr_line,
        }
    }

    fn keep_stderr_tail(&mut self, bytes: &[u8]) {
        let tail = &mut self.stderr_tail;
        if bytes.len() >= STDERR_TAIL_BYTES {
            tail.clear();
            tail.extend_from_slice(&bytes[bytes.len() - STDERR_TAIL_BYTES..]);
        } else {
            let excess = (tail.len() + bytes.len()).saturating_sub(STDERR_TAIL_BYTES);
            tail.drain(..excess);
            tail.extend_from_slice(bytes);
        }
    }

    fn log_line(&self, stream: Stream, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end();
        if text.is_empty() {
            return;
        }
        let text = truncate_reason(text.to_owned(), MAX_LINE_BYTES);
        match stream {
            Stream::Stdout => tracing::info!(
                target: GUEST_TARGET,
                plugin = %self.plugin,
                message_id = %self.call,
                stream = stream.name(),
                "{text}"
            ),
            Stream::Stderr => tracing::warn!(
                target: GUEST_TARGET,
                plugin = %self.plugin,
                message_id = %self.call,
                stream = stream.name(),
                "{text}"
            ),
        }
    }
}

/// One guest stream (stdout or stderr) of a store.
#[derive(Debug, Clone)]
pub(crate) struct GuestStream {
    output: GuestOutput,
    stream: Stream,
}

impl GuestStream {
    pub(crate) fn new(output: &GuestOutput, stream: Stream) -> Self {
        Self {
            output: output.clone(),
            stream,
        }
    }
}

impl IsTerminal for GuestStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestStream {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

// Writes never block and never fail: past the budget they are counted and
// dropped. Failing them instead would make `println!` in a Rust guest panic.
impl OutputStream for GuestStream {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        self.output.write(self.stream, &bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(OUTPUT_WRITE_PERMIT)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for GuestStream {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for GuestStream {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.output.write(self.stream, buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// The panic message in a Rust guest's stderr, if it panicked: the text after
/// the last `panicked at <location>:` line, up to the `note:` line.
pub(crate) fn panic_message(stderr: &str) -> Option<String> {
    let start = stderr.rfind("panicked at ")?;
    let after = &stderr[start..];
    // Since Rust 1.73 the location ends the first line and the message
    // follows; older guests print `panicked at 'message', location`.
    let (first, rest) = after.split_once('\n').unwrap_or((after, ""));
    let message: Vec<&str> = rest
        .lines()
        .take_while(|line| !line.starts_with("note: "))
        .collect();
    let message = message.join("\n");
    let message = message.trim();
    if message.is_empty() {
        let legacy = first.trim_start_matches("panicked at ").trim();
        return Some(legacy.to_string());
    }
    Some(message.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_message_is_found_after_other_output() {
        let stderr = "warming up\nthread '<unnamed>' panicked at src/lib.rs:12:9:\nthe answer is not 42\nnote: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n";
        assert_eq!(
            panic_message(stderr).as_deref(),
            Some("the answer is not 42")
        );
        assert_eq!(panic_message("just noise\n"), None);
    }

    #[test]
    fn output_past_the_budget_is_dropped_and_the_tail_kept() {
        let out = GuestOutput::new("p".into(), 10);
        out.begin("m1".into());
        out.write(Stream::Stdout, b"0123456789abcdef\n");
        out.write(Stream::Stderr, b"panicked at x:\nboom\n");
        {
            let state = out.lock();
            assert_eq!(state.used, 10);
            assert!(state.truncated);
        }
        assert!(out.stderr_tail().contains("boom"));
        out.begin("m2".into());
        assert_eq!(out.lock().used, 0);
        assert!(out.stderr_tail().is_empty());
    }

    #[test]
    fn stderr_tail_is_bounded() {
        let out = GuestOutput::new("p".into(), 0);
        for _ in 0..10 {
            out.write(Stream::Stderr, &[b'x'; 1000]);
        }
        out.write(Stream::Stderr, b"end");
        let tail = out.stderr_tail();
        assert_eq!(tail.len(), STDERR_TAIL_BYTES);
        assert!(tail.ends_with("xend"));
    }
}
