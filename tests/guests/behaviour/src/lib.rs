//! `behaviour`: a test guest whose payload decides what it does, so one
//! component drives every path of the host.
//!
//! It handles event type `behaviour`. The payload is a JSON object whose
//! `action` field picks the behaviour; the other fields are that action's
//! options (all optional, defaults shown). Unknown actions or fields are a
//! fatal error, like any payload that does not parse.
//!
//! | payload | what the handler does |
//! | --- | --- |
//! | `{"action": "succeed"}` | returns `Ok` |
//! | `{"action": "emit", "event_type": "behaviour.emitted", "count": 1, "payload": <json>, "payload_size": <bytes>, "key_prefix": <string>, "priority": "normal", "delay_ms": 0, "ignore_errors": false, "then": <action>}` | emits `count` events of `event_type`; payload `payload` if given, else a JSON string of `payload_size` bytes if given, else `{"index": i}`; key `<key_prefix><i>` if `key_prefix` is given; then runs `then` (default `succeed`). An emit the host refuses fails the handler with a fatal error naming it, unless `ignore_errors` |
//! | `{"action": "log", "level": "info", "count": 1, "message": "behaviour log line", "bytes": <n>, "then": <action>}` | writes `count` log lines (of `bytes` bytes if given, else `message`), then runs `then` |
//! | `{"action": "retry", "reason": "behaviour: retry"}` | returns a retryable error |
//! | `{"action": "retry_after", "ms": 1000, "reason": "behaviour: retry_after"}` | returns a retryable error asking for a delay of `ms` |
//! | `{"action": "fatal", "reason": "behaviour: fatal"}` | returns a fatal error |
//! | `{"action": "trap", "kind": "unreachable"}` | traps: `unreachable` (a wasm `unreachable` instruction) or `abort` (`std::process::abort`) |
//! | `{"action": "panic", "message": "behaviour: panic"}` | panics with `message` (std prints it to stderr, then the guest traps) |
//! | `{"action": "loop"}` | spins forever without yielding |
//! | `{"action": "sleep", "ms": 3600000}` | sleeps through the WASI clock (`std::thread::sleep`), then succeeds |
//! | `{"action": "alloc", "mb": <n>}` | allocates 1 MiB blocks, writing to every page, without bound (or up to `mb` MiB, then succeeds) |
//! | `{"action": "recurse"}` | recurses without bound until the stack overflows |
//! | `{"action": "print", "mb": 100, "stream": "stdout"}` | writes `mb` MiB of 1 KiB text lines to `stdout` or `stderr`, then succeeds (a stream that refuses writes is logged as a warning, not an error) |
//! | `{"action": "big_error", "mb": 10}` | returns a retryable error whose reason is `mb` MiB long |
//! | `{"action": "probe"}` | tries what the sandbox should forbid and emits one `probe.result` event describing what it saw (see below), then succeeds |
//! | `{"action": "echo"}` | emits one `behaviour.echo` event describing the delivered event (see below), then succeeds |
//! | `{"action": "log_levels"}` | asks `log::enabled` for each level, writes one line with each macro (`trace!` … `error!`), and emits one `behaviour.log_levels` event `{"enabled": [...], "formatted": [...]}`: the levels `enabled` said yes to, and those whose line the macro built |
//!
//! `probe.result` payload, each probe being `{"ok": bool, "error": string or null, ...}`:
//!
//! ```json
//! {
//!   "passwd":       {"ok": false, "error": "...", "bytes": null},
//!   "root_listing": {"ok": false, "error": "...", "entries": []},
//!   "env":          [],
//!   "args":         [],
//!   "socket":       {"ok": false, "error": "..."}
//! }
//! ```
//!
//! `passwd` reads `/etc/passwd` (`bytes`: its size when readable), `root_listing`
//! lists `/` (`entries`: the names it saw), `env` is every variable as `"NAME=value"`,
//! `args` the program arguments, `socket` a TCP connect to `127.0.0.1:80`.
//!
//! `behaviour.echo` payload (no key):
//! `{"id", "event_type", "key", "source", "correlation_id", "attempt", "max_attempts",
//! "created_at_ms", "payload"}` where `payload` is the delivered payload as a string
//! (lossy UTF-8).

use std::cell::RefCell;
use std::hint::black_box;
use std::io::Write;
use std::time::Duration;

use mailroom_sdk::log::{self, Level};
use mailroom_sdk::{Emit, Error, Event, Plugin, Priority};
use serde::Deserialize;
use serde_json::{Value, json};

mod probe;

struct Behaviour;

const MIB: usize = 1024 * 1024;

#[derive(Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
enum Action {
    Succeed,
    Emit {
        #[serde(default = "defaults::emitted_type")]
        event_type: String,
        #[serde(default = "defaults::one")]
        count: u32,
        payload: Option<Value>,
        payload_size: Option<usize>,
        key_prefix: Option<String>,
        #[serde(default)]
        priority: PriorityName,
        #[serde(default)]
        delay_ms: u64,
        #[serde(default)]
        ignore_errors: bool,
        then: Option<Box<Action>>,
    },
    Log {
        #[serde(default)]
        level: LevelName,
        #[serde(default = "defaults::one")]
        count: u32,
        #[serde(default = "defaults::log_message")]
        message: String,
        bytes: Option<usize>,
        then: Option<Box<Action>>,
    },
    Retry {
        #[serde(default = "defaults::retry_reason")]
        reason: String,
    },
    RetryAfter {
        #[serde(default = "defaults::second")]
        ms: u64,
        #[serde(default = "defaults::retry_after_reason")]
        reason: String,
    },
    Fatal {
        #[serde(default = "defaults::fatal_reason")]
        reason: String,
    },
    Trap {
        #[serde(default)]
        kind: TrapKind,
    },
    Panic {
        #[serde(default = "defaults::panic_message")]
        message: String,
    },
    Loop,
    Sleep {
        #[serde(default = "defaults::hour")]
        ms: u64,
    },
    Alloc {
        mb: Option<usize>,
    },
    Recurse,
    Print {
        #[serde(default = "defaults::hundred")]
        mb: usize,
        #[serde(default)]
        stream: Stream,
    },
    BigError {
        #[serde(default = "defaults::ten")]
        mb: usize,
    },
    Probe,
    Echo,
    LogLevels,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "snake_case")]
enum PriorityName {
    Low,
    #[default]
    Normal,
    High,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "snake_case")]
enum LevelName {
    Trace,
    Debug,
    #[default]
    Info,
    Warn,
    Error,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "snake_case")]
enum TrapKind {
    #[default]
    Unreachable,
    Abort,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "snake_case")]
enum Stream {
    #[default]
    Stdout,
    Stderr,
}

mod defaults {
    pub fn one() -> u32 {
        1
    }
    pub fn ten() -> usize {
        10
    }
    pub fn hundred() -> usize {
        100
    }
    pub fn second() -> u64 {
        1_000
    }
    pub fn hour() -> u64 {
        3_600_000
    }
    pub fn emitted_type() -> String {
        "behaviour.emitted".into()
    }
    pub fn log_message() -> String {
        "behaviour log line".into()
    }
    pub fn retry_reason() -> String {
        "behaviour: retry".into()
    }
    pub fn retry_after_reason() -> String {
        "behaviour: retry_after".into()
    }
    pub fn fatal_reason() -> String {
        "behaviour: fatal".into()
    }
    pub fn panic_message() -> String {
        "behaviour: panic".into()
    }
}

impl Plugin for Behaviour {
    const NAME: &'static str = "behaviour";
    const EVENT_TYPES: &'static [&'static str] = &["behaviour"];

    fn handle(event: Event) -> Result<(), Error> {
        let action: Action = event.json()?;
        run(action, &event)
    }
}

mailroom_sdk::export_plugin!(Behaviour);

fn run(action: Action, event: &Event) -> Result<(), Error> {
    match action {
        Action::Succeed => Ok(()),
        Action::Emit {
            event_type,
            count,
            payload,
            payload_size,
            key_prefix,
            priority,
            delay_ms,
            ignore_errors,
            then,
        } => {
            for i in 0..count {
                let mut emit = Emit::new(&event_type)
                    .priority(match priority {
                        PriorityName::Low => Priority::Low,
                        PriorityName::Normal => Priority::Normal,
                        PriorityName::High => Priority::High,
                    })
                    .delay(Duration::from_millis(delay_ms));
                emit = match (&payload, payload_size) {
                    (Some(payload), _) => emit.json(payload),
                    // A JSON string of exactly `size` bytes, quotes included.
                    (None, Some(size)) => {
                        let mut bytes = vec![b'a'; size.max(2)];
                        bytes[0] = b'"';
                        bytes[size.max(2) - 1] = b'"';
                        emit.payload(bytes)
                    }
                    (None, None) => emit.json(&json!({ "index": i })),
                };
                if let Some(prefix) = &key_prefix {
                    emit = emit.key(format!("{prefix}{i}"));
                }
                match emit.send() {
                    Ok(()) => {}
                    Err(error) if ignore_errors => log::warn!("emit {i} refused: {error}"),
                    Err(error) => {
                        return Err(Error::fatal(format!("emit {i} of {count}: {error}")));
                    }
                }
            }
            then.map_or(Ok(()), |next| run(*next, event))
        }
        Action::Log {
            level,
            count,
            message,
            bytes,
            then,
        } => {
            let level = match level {
                LevelName::Trace => Level::Trace,
                LevelName::Debug => Level::Debug,
                LevelName::Info => Level::Info,
                LevelName::Warn => Level::Warn,
                LevelName::Error => Level::Error,
            };
            let line = bytes.map_or(message, |n| "l".repeat(n));
            for _ in 0..count {
                log::write(level, &line);
            }
            then.map_or(Ok(()), |next| run(*next, event))
        }
        Action::Retry { reason } => Err(Error::retry(reason)),
        Action::RetryAfter { ms, reason } => {
            Err(Error::retry_after(Duration::from_millis(ms), reason))
        }
        Action::Fatal { reason } => Err(Error::fatal(reason)),
        Action::Trap {
            kind: TrapKind::Unreachable,
        } => trap(),
        Action::Trap {
            kind: TrapKind::Abort,
        } => std::process::abort(),
        Action::Panic { message } => panic!("{message}"),
        Action::Loop => spin(),
        Action::Sleep { ms } => {
            std::thread::sleep(Duration::from_millis(ms));
            Ok(())
        }
        Action::Alloc { mb } => {
            allocate(mb);
            Ok(())
        }
        Action::Recurse => {
            let depth = recurse(0, [1; 256]);
            Err(Error::fatal(format!("recursion ended at depth {depth}")))
        }
        Action::Print { mb, stream } => {
            print(mb, stream);
            Ok(())
        }
        Action::BigError { mb } => Err(Error::retry("e".repeat(mb * MIB))),
        Action::Probe => {
            mailroom_sdk::emit("probe.result", &probe::run())?;
            Ok(())
        }
        Action::Echo => {
            mailroom_sdk::emit(
                "behaviour.echo",
                &json!({
                    "id": event.id(),
                    "event_type": event.event_type(),
                    "key": event.key(),
                    "source": event.source(),
                    "correlation_id": event.correlation_id(),
                    "attempt": event.attempt(),
                    "max_attempts": event.max_attempts(),
                    "created_at_ms": event.created_at_ms(),
                    "payload": String::from_utf8_lossy(event.payload()),
                }),
            )?;
            Ok(())
        }
        Action::LogLevels => {
            let levels = [
                (Level::Trace, "trace"),
                (Level::Debug, "debug"),
                (Level::Info, "info"),
                (Level::Warn, "warn"),
                (Level::Error, "error"),
            ];
            let enabled: Vec<&str> = levels
                .iter()
                .filter(|(level, _)| log::enabled(*level))
                .map(|(_, name)| *name)
                .collect();
            let formatted = RefCell::new(Vec::new());
            let line = |name| Formatted(name, &formatted);
            log::trace!("{}", line("trace"));
            log::debug!("{}", line("debug"));
            log::info!("{}", line("info"));
            log::warn!("{}", line("warn"));
            log::error!("{}", line("error"));
            mailroom_sdk::emit(
                "behaviour.log_levels",
                &json!({"enabled": enabled, "formatted": formatted.into_inner()}),
            )?;
            Ok(())
        }
    }
}

/// A log line's argument that records each time it is formatted.
struct Formatted<'a>(&'static str, &'a RefCell<Vec<&'static str>>);

impl std::fmt::Display for Formatted<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.1.borrow_mut().push(self.0);
        write!(f, "{} line", self.0)
    }
}

/// Executes a wasm `unreachable` instruction.
fn trap() -> ! {
    #[cfg(target_arch = "wasm32")]
    core::arch::wasm32::unreachable();
    #[cfg(not(target_arch = "wasm32"))]
    std::process::abort();
}

/// Busy-loops forever; `black_box` keeps the optimiser from reasoning the
/// loop away, so only the host's epoch deadline can stop it.
fn spin() -> ! {
    let mut i: u64 = 0;
    loop {
        i = black_box(i.wrapping_add(1));
    }
}

/// Allocates 1 MiB blocks and writes to every page of each, so the memory is
/// really used, until `limit_mb` (or until the host's cap makes it trap).
fn allocate(limit_mb: Option<usize>) {
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    while limit_mb.is_none_or(|limit| blocks.len() < limit) {
        let mut block = vec![0u8; MIB];
        for page in block.chunks_mut(4096) {
            page[0] = 1;
        }
        blocks.push(black_box(block));
    }
    black_box(&blocks);
}

/// Recurses with a 256-byte frame until the stack overflows; the result use
/// after the call keeps it from being turned into a loop.
#[allow(unconditional_recursion)]
fn recurse(depth: u64, frame: [u8; 256]) -> u64 {
    let frame = black_box(frame);
    recurse(depth + 1, frame) + u64::from(frame[(depth % 256) as usize])
}

/// Writes `mb` MiB of 1 KiB lines. A stream the host closes or refuses is
/// logged, not an error: the point is to see what the host does with the
/// flood, and the handler still succeeds.
fn print(mb: usize, stream: Stream) {
    // 64 lines of 1 KiB (1023 characters and a newline) per 64 KiB chunk.
    let mut line = vec![b'p'; 1023];
    line.push(b'\n');
    let chunk = line.repeat(64);
    let mut out: Box<dyn Write> = match stream {
        Stream::Stdout => Box::new(std::io::stdout().lock()),
        Stream::Stderr => Box::new(std::io::stderr().lock()),
    };
    let mut written = 0;
    for _ in 0..mb * 16 {
        if let Err(error) = out.write_all(&chunk) {
            log::warn!("print: the stream refused writes after {written} bytes: {error}");
            return;
        }
        written += chunk.len();
    }
    if let Err(error) = out.flush() {
        log::warn!("print: flushing after {written} bytes failed: {error}");
    }
}
