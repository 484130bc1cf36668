//! `mailroom plugin run FILE.wasm EVENT_TYPE [PAYLOAD]`: one delivery, as the
//! host would make it, without a store: the file is loaded as the host loads
//! it and the event handed to [`Plugin::handle`] under the configured limits.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Args;
use serde::Serialize;
use tracing_subscriber::layer::SubscriberExt as _;

use super::super::output::print_json;
use super::super::{ExitStatus, stdout_error};
use super::guest_log::{GuestLine, GuestLog};
use crate::clock::{Clock as _, SystemClock};
use crate::config::Config;
use crate::message::{self, MessageId};
use crate::plugin::{Delivery, Emitted, Outcome, Plugin};

pub(super) const AFTER_HELP: &str = "\
Examples:
  mailroom plugin run target/wasm32-wasip2/release/greeter.wasm greeting.requested '{\"name\": \"Ada\"}'
  mailroom plugin run greeter.wasm greeting.requested @event.json --attempt 3
  mailroom plugin run webhook.wasm notification.requested @n.json --set url=http://127.0.0.1:9000/hooks
  echo '{\"name\": \"Ada\"}' | mailroom plugin run greeter.wasm greeting.requested - --json

The plugin runs in the host's sandbox under the limits of the configuration
([plugins] in mailroom.toml: timeout, memory, emits, output), with a fresh
instance and what [plugin.<name>] opens to it (outbound origins,
configuration values, plus --set), as `mailroom run` would deliver the event. Nothing is stored: emitted
events are shown, not enqueued.

Exit status: 0 the handler succeeded (the host would ack), 3 it asked for a
retry or failed in a retryable way (trap, panic, timeout, memory), 4 it failed
fatally (the host would dead-letter the event), 1 the plugin could not be
loaded or the arguments are wrong.";

/// The exit status of each outcome.
const EXIT_RETRY: u8 = 3;
const EXIT_FATAL: u8 = 4;

/// `mailroom plugin run`'s arguments.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The component, e.g. target/wasm32-wasip2/release/greeter.wasm
    #[arg(value_name = "FILE.wasm")]
    file: PathBuf,
    /// The event type: one the plugin handles
    #[arg(value_name = "EVENT_TYPE")]
    event_type: String,
    /// The payload: JSON text, @FILE to read it from a file, or - to read it
    /// from stdin
    #[arg(value_name = "PAYLOAD", default_value = "{}")]
    payload: String,
    /// Which attempt this delivery is (what `Event::attempt` returns)
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..))]
    attempt: u32,
    /// Attempts after which the host dead-letters [default: from [retry] in
    /// the configuration]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    max_attempts: Option<u32>,
    /// The event's idempotency key
    #[arg(long)]
    key: Option<String>,
    /// Where the event comes from
    #[arg(long)]
    source: Option<String>,
    /// The correlation id [default: the event's id]
    #[arg(long)]
    correlation_id: Option<String>,
    /// A configuration value the plugin reads with `config::get`, as KEY=VALUE
    /// (repeatable); added to, or replacing, what `[plugin.<name>.config]`
    /// gives it
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_setting)]
    settings: Vec<(String, String)>,
    /// Print JSON: {"plugin": {"name", "version", "digest"}, "event_type",
    /// "id", "attempt", "outcome": "ack"|"retry"|"fatal", "reason",
    /// "retry_after_ms", "emitted": [{"event_type", "payload", "payload_text", "key",
    /// "priority", "delay_ms"}], "log": [{"level", "stream", "message"}],
    /// "elapsed_ms"}
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Report<'a> {
    plugin: PluginInfo<'a>,
    event_type: &'a str,
    id: String,
    attempt: u32,
    outcome: &'static str,
    reason: Option<&'a str>,
    retry_after_ms: Option<u128>,
    emitted: Vec<EmittedEvent<'a>>,
    log: Vec<GuestLine>,
    elapsed_ms: f64,
}

#[derive(Serialize)]
struct PluginInfo<'a> {
    name: &'a str,
    version: &'a str,
    digest: &'a str,
}

#[derive(Serialize)]
struct EmittedEvent<'a> {
    event_type: &'a str,
    /// The payload as JSON when it is JSON, else as (lossy) text.
    payload: serde_json::Value,
    /// The payload as (lossy UTF-8) text, exactly.
    payload_text: String,
    key: Option<&'a str>,
    priority: &'static str,
    delay_ms: u128,
}

/// `KEY=VALUE`, for `--set`.
fn parse_setting(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_owned(), value.to_owned()))
        }
        _ => Err(format!("`{s}` is not KEY=VALUE")),
    }
}

pub(super) fn execute(config: &Config, args: RunArgs) -> anyhow::Result<()> {
    message::validate_event_type(&args.event_type).context("bad EVENT_TYPE argument")?;
    let payload = super::super::enqueue::read_payload(&args.payload)?;
    let host = super::host(config)?;
    let plugin = host.load(&args.file)?;
    if !args.settings.is_empty() {
        let mut access = config.plugin_access();
        let entry = access.entry(plugin.name().to_owned()).or_default();
        for (key, value) in &args.settings {
            entry
                .config
                .insert(key.clone(), crate::plugin::ConfigValue::plain(value.clone()));
        }
        host.set_access(access);
    }
    if !plugin.event_types().contains(&args.event_type) {
        bail!(
            "plugin {} does not handle `{}`: it handles {}; the host would never route this event to it",
            plugin.name(),
            args.event_type,
            plugin.event_types().join(", ")
        );
    }
    let id = MessageId::new();
    let max_attempts = args.max_attempts.unwrap_or_else(|| {
        config
            .policies()
            .for_event_type(&args.event_type)
            .max_attempts
    });
    let delivery = Delivery {
        id,
        event_type: args.event_type.clone(),
        key: args.key.clone(),
        source: args.source.clone(),
        correlation_id: args.correlation_id.clone().unwrap_or_else(|| id.to_string()),
        payload,
        attempt: args.attempt,
        max_attempts: max_attempts.max(args.attempt),
        created_at_ms: SystemClock.now_ms(),
        depth: 0,
    };

    let log = GuestLog::default();
    let subscriber = tracing_subscriber::registry().with(log.clone());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    // One thread: the subscriber set here sees every line the guest logs.
    let (outcome, elapsed) = tracing::subscriber::with_default(subscriber, || {
        runtime.block_on(async {
            let started = Instant::now();
            let outcome = plugin.handle(delivery).await;
            (outcome, started.elapsed())
        })
    });

    let report = report(&plugin, &args, id, &outcome, log.lines(), elapsed);
    let mut out = std::io::stdout().lock();
    if args.json {
        print_json(&mut out, &report)?;
    } else {
        human(&mut out, &report).map_err(stdout_error)?;
    }
    match outcome {
        Outcome::Success { .. } => Ok(()),
        Outcome::Retry { .. } => Err(ExitStatus(EXIT_RETRY).into()),
        Outcome::Fatal { .. } => Err(ExitStatus(EXIT_FATAL).into()),
    }
}

fn report<'a>(
    plugin: &'a Plugin,
    args: &'a RunArgs,
    id: MessageId,
    outcome: &'a Outcome,
    log: Vec<GuestLine>,
    elapsed: Duration,
) -> Report<'a> {
    let (name, reason, after, emitted) = match outcome {
        Outcome::Success { emitted } => ("ack", None, None, emitted.as_slice()),
        Outcome::Retry { reason, after } => ("retry", Some(reason.as_str()), *after, &[][..]),
        Outcome::Fatal { reason } => ("fatal", Some(reason.as_str()), None, &[][..]),
    };
    Report {
        plugin: PluginInfo {
            name: plugin.name(),
            version: plugin.version(),
            digest: plugin.digest(),
        },
        event_type: &args.event_type,
        id: id.to_string(),
        attempt: args.attempt,
        outcome: name,
        reason,
        retry_after_ms: after.map(|d| d.as_millis()),
        emitted: emitted.iter().map(emitted_event).collect(),
        log,
        elapsed_ms: elapsed.as_secs_f64() * 1000.0,
    }
}

fn emitted_event(event: &Emitted) -> EmittedEvent<'_> {
    EmittedEvent {
        event_type: &event.event_type,
        payload: serde_json::from_slice(&event.payload).unwrap_or_else(|_| {
            serde_json::Value::String(String::from_utf8_lossy(&event.payload).into_owned())
        }),
        payload_text: String::from_utf8_lossy(&event.payload).into_owned(),
        key: event.key.as_deref(),
        priority: event.priority.as_str(),
        delay_ms: event.delay.as_millis(),
    }
}

fn human(out: &mut impl Write, report: &Report<'_>) -> std::io::Result<()> {
    let plugin = &report.plugin;
    let elapsed = format_elapsed(report.elapsed_ms);
    write!(
        out,
        "{} {} handled {} (attempt {}) in {elapsed}: ",
        plugin.name, plugin.version, report.event_type, report.attempt
    )?;
    let reason = report.reason.unwrap_or_default();
    match (report.outcome, report.retry_after_ms) {
        ("ack", _) => writeln!(out, "ack")?,
        ("retry", Some(ms)) => writeln!(
            out,
            "retry after {}: {reason}",
            humantime::format_duration(Duration::from_millis(
                u64::try_from(ms).unwrap_or(u64::MAX)
            ))
        )?,
        ("retry", None) => writeln!(out, "retry (after the host's backoff): {reason}")?,
        _ => writeln!(out, "fatal (the host would dead-letter it): {reason}")?,
    }
    if !report.emitted.is_empty() {
        writeln!(out, "emitted {}:", report.emitted.len())?;
        for event in &report.emitted {
            let mut details = vec![format!("priority {}", event.priority)];
            if let Some(key) = event.key {
                details.push(format!("key {key}"));
            }
            if event.delay_ms > 0 {
                details.push(format!("delay {} ms", event.delay_ms));
            }
            writeln!(
                out,
                "  {} {} ({})",
                event.event_type,
                event.payload,
                details.join(", ")
            )?;
        }
    }
    if !report.log.is_empty() {
        writeln!(out, "log:")?;
        for line in &report.log {
            let source = if line.stream == "log" {
                line.level.clone()
            } else {
                line.stream.clone()
            };
            writeln!(out, "  {source:<6} {}", line.message)?;
        }
    }
    Ok(())
}

/// `0.8 ms`, `12 ms`, `1.52 s`.
fn format_elapsed(ms: f64) -> String {
    if ms < 10.0 {
        format!("{ms:.1} ms")
    } else if ms < 1000.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{:.2} s", ms / 1000.0)
    }
}
