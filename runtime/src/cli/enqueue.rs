//! `mailroom enqueue`: one event from the command line, or many as
//! newline-delimited JSON on stdin.

use std::io::{BufRead, Read as _, Write};
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use serde::Serialize;

use super::failure::bad_input;
use super::output::print_json;
use super::progress::Progress;
use crate::config::Config;
use crate::ingest::{self, EventDefaults};
use crate::message::{self, InvalidInput, MessageId, NewMessage, Priority};
use crate::store::{Enqueued, Store, StoreError};

/// Lines per transaction with `--ndjson`: large enough that a commit (and its
/// sync) is amortized, small enough that a bad line late in a huge input
/// leaves most of it stored and the rest easy to resend.
const BATCH: usize = 1000;

pub(super) const AFTER_HELP: &str = "\
Examples:
  mailroom enqueue order.created '{\"id\": 7}'
  mailroom enqueue order.created @order.json --key order-7 --priority high
  echo '{\"id\": 8}' | mailroom enqueue order.created -
  mailroom enqueue order.created --ndjson < payloads.ndjson
  mailroom enqueue --ndjson < events.ndjson

With --ndjson and no event type, each line is an event object:
  {\"event_type\": \"order.created\", \"payload\": {\"id\": 7}, \"key\": \"order-7\",
   \"priority\": \"high\", \"delay\": \"5s\", \"max_attempts\": 3, \"source\": \"shop\",
   \"correlation_id\": \"checkout-42\"}
Only event_type and payload are required; the flags give defaults for the rest.
Blank lines are skipped. Each 1000 lines are stored in one transaction.

The payload must be valid JSON; it is stored as written (without surrounding
whitespace). An enqueue is acknowledged (exit 0) only once it is on disk.";

/// `mailroom enqueue`'s arguments.
#[derive(Debug, Args)]
pub struct EnqueueArgs {
    /// The event type: 1 to 255 of A-Z a-z 0-9 . _ : -  (optional with
    /// --ndjson: then each line is an event object naming its own type)
    #[arg(value_name = "EVENT_TYPE", required_unless_present = "ndjson")]
    event_type: Option<String>,
    /// The payload: JSON text, @FILE to read it from a file, or - to read it
    /// from stdin
    #[arg(
        value_name = "PAYLOAD",
        required_unless_present = "ndjson",
        conflicts_with = "ndjson"
    )]
    payload: Option<String>,
    /// Read many events from stdin, one JSON value per line: payloads of
    /// EVENT_TYPE, or event objects when EVENT_TYPE is left out
    #[arg(long)]
    ndjson: bool,
    /// Idempotency key: if a message with this key is stored (queued, in
    /// flight or dead), nothing is added and its id is printed
    #[arg(long, conflicts_with = "ndjson")]
    key: Option<String>,
    /// low, normal or high [default: normal]
    #[arg(long, value_parser = parse_priority)]
    priority: Option<Priority>,
    /// Not due before this much time, e.g. 500ms, 5s, 2m, "1h 30m" [default: 0s]
    #[arg(long, value_parser = parse_delay, allow_hyphen_values = true)]
    delay: Option<Duration>,
    /// Attempts before the message is dead-lettered [default: from [retry]]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    max_attempts: Option<u32>,
    /// Where the events come from
    #[arg(long)]
    source: Option<String>,
    /// Groups a chain of events [default: the message's own id]
    #[arg(long)]
    correlation_id: Option<String>,
    /// Print {"ids": [...], "duplicates": [...]} instead of one id per line
    #[arg(long)]
    json: bool,
}

fn parse_priority(s: &str) -> Result<Priority, String> {
    s.parse().map_err(|e: InvalidInput| e.to_string())
}

fn parse_delay(s: &str) -> Result<Duration, String> {
    if s.trim_start().starts_with('-') {
        return Err(
            "a delay cannot be negative: give how long from now the event falls due, e.g. 5s (or leave --delay out for now)"
                .into(),
        );
    }
    humantime::parse_duration(s)
        .map_err(|e| format!("{e}: write a duration such as 500ms, 5s, 2m or \"1h 30m\""))
}

/// What `--json` prints.
#[derive(Debug, Default, Serialize)]
struct Report {
    /// Every id, in input order; a duplicate's id is the stored message's.
    ids: Vec<MessageId>,
    /// The ids of events whose key was already stored (nothing was added).
    duplicates: Vec<MessageId>,
}

pub(super) async fn execute(config: &Config, args: EnqueueArgs) -> anyhow::Result<()> {
    if let Some(event_type) = &args.event_type {
        message::validate_event_type(event_type)
            .with_context(|| "bad EVENT_TYPE argument".to_owned())?;
    }
    let defaults = EventDefaults {
        priority: args.priority,
        delay: args.delay,
        max_attempts: args.max_attempts,
        source: args.source.clone(),
        correlation_id: args.correlation_id.clone(),
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut report = Report::default();
    let result = if args.ndjson {
        // Opened first, so a bad store path fails before a long input is read.
        let store = super::open_or_create(config).await?;
        let stdin = std::io::stdin();
        enqueue_lines(
            &store,
            stdin.lock(),
            args.event_type.as_deref(),
            &defaults,
            &mut |done: &[Enqueued]| record(&mut out, &mut report, done, args.json),
        )
        .await
    } else {
        let message = single(&args, &defaults)?;
        let store = super::open_or_create(config).await?;
        let done = store
            .enqueue(message)
            .await
            .map_err(|e| explain(e, config))?;
        record(&mut out, &mut report, &[done], args.json)
    };
    if args.json {
        // Even after an error: the ids already stored are worth knowing.
        print_json(&mut out, &report)?;
    }
    result
}

/// The one message of `mailroom enqueue TYPE PAYLOAD`.
fn single(args: &EnqueueArgs, defaults: &EventDefaults) -> anyhow::Result<NewMessage> {
    let event_type = args.event_type.clone().unwrap_or_default();
    let payload = read_payload(args.payload.as_deref().unwrap_or_default())?;
    let mut message = defaults.message(&event_type, payload);
    message.key = args.key.clone();
    Ok(message)
}

/// The JSON payload given as a PAYLOAD argument: JSON text, `@FILE`, or `-`
/// for standard input; stored as written, without surrounding whitespace.
pub(super) fn read_payload(given: &str) -> anyhow::Result<Vec<u8>> {
    let (bytes, what) = if given == "-" {
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .context("cannot read the payload from standard input")?;
        (bytes, "the payload read from standard input".to_owned())
    } else if let Some(path) = given.strip_prefix('@') {
        let bytes = std::fs::read(path)
            .map_err(|e| bad_input(format!("cannot read the payload file {path}: {e}")))?;
        (bytes, format!("the payload file {path}"))
    } else {
        (given.as_bytes().to_vec(), "the payload".to_owned())
    };
    let payload = ingest::json_payload(&bytes).map_err(|e| {
        bad_input(format!(
            "{what} is not valid JSON ({e}): pass JSON text, @FILE or - for standard input"
        ))
    })?;
    Ok(payload.to_vec())
}

/// Reads `input` line by line and enqueues a batch at a time, calling
/// `done` after each commit. On a bad line, the batches before it stay
/// stored and the error says from which line to resend.
async fn enqueue_lines(
    store: &Store,
    mut input: impl BufRead,
    event_type: Option<&str>,
    defaults: &EventDefaults,
    done: &mut dyn FnMut(&[Enqueued]) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let progress = Progress::counter("events enqueued");
    let mut stored = 0usize;
    let mut batch: Vec<NewMessage> = Vec::with_capacity(BATCH);
    let mut lines: Vec<usize> = Vec::with_capacity(BATCH);
    let mut line_no = 0usize;
    let mut buf = String::new();
    // The first line of the batch being filled: where to resend from.
    let mut batch_start = 1usize;
    let resend = |stored: usize, from: usize| {
        if stored == 0 {
            "nothing was enqueued".to_owned()
        } else {
            format!(
                "the {stored} events before line {from} were enqueued, nothing from line {from} on: fix it and resend from line {from}"
            )
        }
    };
    loop {
        buf.clear();
        let n = input.read_line(&mut buf).map_err(|e| {
            anyhow::anyhow!(
                "cannot read line {} of standard input ({e}); {}",
                line_no + 1,
                resend(stored, batch_start)
            )
        })?;
        if n > 0 {
            line_no += 1;
            let line = buf.trim();
            if !line.is_empty() {
                let message = parse_line(line, event_type, defaults).map_err(|reason| {
                    bad_input(format!(
                        "line {line_no}: {reason}; {}",
                        resend(stored, batch_start)
                    ))
                })?;
                batch.push(message);
                lines.push(line_no);
            }
        }
        if batch.len() == BATCH || (n == 0 && !batch.is_empty()) {
            let count = batch.len();
            let result = store.enqueue_batch(std::mem::take(&mut batch)).await;
            let enqueued = result.map_err(|e| {
                let resend = resend(stored, batch_start);
                match e {
                    StoreError::InvalidInBatch { index, source } => {
                        let line = lines.get(index).copied().unwrap_or(batch_start);
                        bad_input(format!("line {line}: {}; {resend}", invalid(&source)))
                    }
                    StoreError::Invalid(source) => bad_input(format!(
                        "line {batch_start}: {}; {resend}",
                        invalid(&source)
                    )),
                    other => anyhow::Error::new(other).context(format!(
                        "cannot enqueue from line {batch_start} on ({resend})"
                    )),
                }
            })?;
            stored += count;
            batch_start = line_no + 1;
            lines.clear();
            progress.set(stored);
            done(&enqueued)?;
        }
        if n == 0 {
            break;
        }
    }
    progress.finish(stored);
    if stored == 0 {
        return Err(bad_input(
            "standard input held no events: pass one JSON value per line",
        ));
    }
    Ok(())
}

fn parse_line(
    line: &str,
    event_type: Option<&str>,
    defaults: &EventDefaults,
) -> Result<NewMessage, String> {
    match event_type {
        Some(event_type) => {
            let payload = ingest::json_payload(line.as_bytes())
                .map_err(|e| format!("not valid JSON (column {}: {})", e.column, e.reason))?;
            Ok(defaults.message(event_type, payload.to_vec()))
        }
        None => ingest::event_object(line)
            .map(|o| o.into_message(defaults))
            .map_err(|e| {
                format!(
                    "not an event object (column {}: {}); each line must be like {{\"event_type\": \"order.created\", \"payload\": {{...}}}}",
                    e.column, e.reason
                )
            }),
    }
}

fn invalid(source: &InvalidInput) -> String {
    match source {
        InvalidInput::PayloadTooLarge { .. } => {
            format!("{source}: send a smaller payload, or raise store.max_payload_bytes")
        }
        other => other.to_string(),
    }
}

/// Adds reasons the mailbox cannot know to its errors.
fn explain(error: StoreError, config: &Config) -> anyhow::Error {
    match &error {
        StoreError::Invalid(InvalidInput::PayloadTooLarge { .. }) => bad_input(format!(
            "{error}: send a smaller payload, or raise store.max_payload_bytes (now {})",
            config.store.max_payload_bytes
        )),
        _ => error.into(),
    }
}

/// Prints ids as they are stored (human) or keeps them for the report (JSON).
fn record(
    out: &mut impl Write,
    report: &mut Report,
    done: &[Enqueued],
    json: bool,
) -> anyhow::Result<()> {
    for e in done {
        report.ids.push(e.id);
        if e.duplicate {
            report.duplicates.push(e.id);
        }
        if !json {
            if e.duplicate {
                writeln!(
                    out,
                    "{} (duplicate: a message with this key is stored or was handled recently; nothing added)",
                    e.id
                )
            } else {
                writeln!(out, "{}", e.id)
            }
            .map_err(super::stdout_error)?;
        }
    }
    Ok(())
}
