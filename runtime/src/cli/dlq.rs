//! `mailroom dlq`: list, show, redrive and purge dead letters.

use std::io::Write;

use anyhow::Context as _;
use clap::{ArgGroup, Args, Subcommand};
use serde::Serialize;
use serde_json::value::RawValue;

use super::failure::bad_input;
use super::output::{self, print_json, print_table, table, timestamp};
use crate::config::Config;
use crate::message::{self, MessageId};
use super::progress::Progress;
use crate::clock::Millis;
use crate::state_machine::MessageState;
use crate::store::{DeadLetterFilter, DeadLetterMatch, Selection, Store, StoreError, StoredMessage};

/// The `dlq` commands.
#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// List dead letters in order of death, oldest first, a page at a time.
    List(ListArgs),
    /// Show one dead letter: its fields, last error and payload.
    Show(ShowArgs),
    /// Put dead letters back in the queue, due now, with attempts reset to 0.
    #[command(after_help = REDRIVE_HELP)]
    Redrive(RedriveArgs),
    /// Delete dead letters for good.
    #[command(after_help = PURGE_HELP)]
    Purge(PurgeArgs),
}

const REDRIVE_HELP: &str = "\
Examples:
  mailroom dlq redrive 0192f5c4-1d2e-7c3b-9a4f-5e6d7c8b9a01
  mailroom dlq redrive --event-type email.send --error-contains timeout
  mailroom dlq redrive --died-after 2h --rate 50/s
  mailroom dlq redrive --all

Dead letters are taken first dead first, in batches of 1000 (each its own
transaction). --rate redrives gradually so a recovering downstream is not
flooded; those that die again meanwhile are not taken twice. A progress bar
shows on a terminal; the summary line is printed either way.";

const PURGE_HELP: &str = "\
Examples:
  mailroom dlq purge 0192f5c4-1d2e-7c3b-9a4f-5e6d7c8b9a01
  mailroom dlq purge --event-type email.send --died-before 7d
  mailroom dlq purge --all --yes

Dead letters are deleted first dead first, in batches of 1000 (each its own
transaction). Their idempotency keys stay remembered for store.key_retention.";

/// Conditions on dead letters, all of which must hold.
#[derive(Debug, Args)]
pub struct MatchArgs {
    /// Only dead letters of this event type
    #[arg(long, value_name = "TYPE")]
    event_type: Option<String>,
    /// Only dead letters whose last error contains TEXT (case-sensitive)
    #[arg(long, value_name = "TEXT")]
    error_contains: Option<String>,
    /// Only dead letters that died at or after WHEN: an RFC 3339 time
    /// (2026-11-30T05:00:00Z) or a time ago (90m, 2h, 7d)
    #[arg(long, value_name = "WHEN", value_parser = parse_when)]
    died_after: Option<Millis>,
    /// Only dead letters that died before WHEN (as --died-after)
    #[arg(long, value_name = "WHEN", value_parser = parse_when)]
    died_before: Option<Millis>,
}

impl MatchArgs {
    fn to_match(&self) -> anyhow::Result<DeadLetterMatch> {
        if let Some(t) = &self.event_type {
            message::validate_event_type(t).context("bad --event-type")?;
        }
        Ok(DeadLetterMatch {
            event_type: self.event_type.clone(),
            error_contains: self.error_contains.clone(),
            died_after: self.died_after,
            died_before: self.died_before,
        })
    }
}

/// A time given as RFC 3339, or as a duration ago.
fn parse_when(text: &str) -> Result<Millis, String> {
    if let Ok(at) = humantime::parse_rfc3339_weak(text) {
        return at
            .duration_since(std::time::UNIX_EPOCH)
            .map(crate::clock::duration_ms)
            .map_err(|_| format!("`{text}` is before 1970"));
    }
    match humantime::parse_duration(text) {
        Ok(ago) => Ok(now_ms().saturating_sub(crate::clock::duration_ms(ago))),
        Err(_) => Err(format!(
            "`{text}` is neither a time (2026-11-30T05:00:00Z) nor a time ago (90m, 2h, 7d)"
        )),
    }
}

fn now_ms() -> Millis {
    crate::clock::Clock::now_ms(&crate::clock::SystemClock)
}

/// A redrive rate: `N/s` or `N/m` (N may have a fraction).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    per_second: f64,
}

fn parse_rate(text: &str) -> Result<Rate, String> {
    let bad = || format!("`{text}` is not a rate: write N/s or N/m, e.g. 50/s or 30/m");
    let (n, unit) = text.split_once('/').ok_or_else(bad)?;
    let n: f64 = n.trim().parse().map_err(|_| bad())?;
    let per_second = match unit.trim() {
        "s" => n,
        "m" => n / 60.0,
        _ => return Err(bad()),
    };
    if !(per_second.is_finite() && per_second > 0.0) {
        return Err(format!("`{text}`: the rate must be above zero"));
    }
    Ok(Rate { per_second })
}

/// `dlq list`'s arguments.
#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    matching: MatchArgs,
    #[command(flatten)]
    page: output::PageArgs,
    /// Print a JSON array of {"id", "event_type", "attempts", "max_attempts",
    /// "last_error", "plugin_digest", "created_at", "dead_at", ...}; times in
    /// ms since the Unix epoch. The next cursor, if any, goes to stderr
    #[arg(long)]
    json: bool,
}

/// `dlq show`'s arguments.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The dead letter's id (a UUID, as `dlq list` prints it)
    id: String,
    /// Print JSON: the fields of `dlq list` plus "state", "available_at" and
    /// "payload" (the payload as JSON; "payload_text" or "payload_hex" when
    /// it is not JSON)
    #[arg(long)]
    json: bool,
}

/// Which dead letters `redrive` and `purge` act on: an id, conditions, or
/// `--all`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("which").required(true).multiple(true)
    .args(["id", "event_type", "error_contains", "died_after", "died_before", "all"])))]
pub struct SelectArgs {
    /// One dead letter, by id
    #[arg(conflicts_with_all = ["event_type", "error_contains", "died_after", "died_before", "all"])]
    id: Option<String>,
    #[command(flatten)]
    matching: MatchArgs,
    /// Every dead letter
    #[arg(long, conflicts_with_all = ["event_type", "error_contains", "died_after", "died_before"])]
    all: bool,
    /// Print {"count": N} (plus "action")
    #[arg(long)]
    json: bool,
}

/// `dlq redrive`'s arguments.
#[derive(Debug, Args)]
pub struct RedriveArgs {
    #[command(flatten)]
    select: SelectArgs,
    /// Redrive gradually, at most RATE dead letters a second or minute
    /// (50/s, 30/m)
    #[arg(long, value_name = "RATE", value_parser = parse_rate, conflicts_with = "id")]
    rate: Option<Rate>,
}

/// `dlq purge`'s arguments.
#[derive(Debug, Args)]
pub struct PurgeArgs {
    #[command(flatten)]
    select: SelectArgs,
    /// Confirm `--all`: every dead letter is deleted for good
    #[arg(long)]
    yes: bool,
}

pub(super) async fn execute(config: &Config, command: DlqCommand) -> anyhow::Result<()> {
    match command {
        DlqCommand::List(args) => list(config, args).await,
        DlqCommand::Show(args) => show(config, &args).await,
        DlqCommand::Redrive(args) => act(config, &args.select, Action::Redrive, args.rate).await,
        DlqCommand::Purge(args) => {
            if args.select.all && !args.yes {
                return Err(bad_input(
                    "`dlq purge --all` deletes every dead letter for good: add --yes to confirm, or narrow it with --event-type, --error-contains, --died-after or --died-before",
                ));
            }
            act(config, &args.select, Action::Purge, None).await
        }
    }
}

async fn list(config: &Config, args: ListArgs) -> anyhow::Result<()> {
    let m = args.matching.to_match()?;
    let store = super::open_read_only(config).await?;
    let page = store
        .dead_letters(DeadLetterFilter {
            event_type: m.event_type,
            error_contains: m.error_contains,
            died_after: m.died_after,
            died_before: m.died_before,
            limit: usize::from(args.page.limit),
            cursor: args.page.cursor,
        })
        .await?;
    let mut out = std::io::stdout().lock();
    if args.json {
        print_json(&mut out, &page.items)?;
    } else if page.items.is_empty() {
        writeln!(out, "no dead letters").map_err(super::stdout_error)?;
    } else {
        let mut t = table(
            &["ID", "EVENT TYPE", "ATTEMPTS", "DIED", "LAST ERROR"],
            &[2],
        );
        for d in &page.items {
            t.add_row(vec![
                d.id.to_string(),
                d.event_type.clone(),
                format!("{}/{}", d.attempts, d.max_attempts),
                d.dead_at.map(timestamp).unwrap_or_default(),
                d.last_error
                    .as_deref()
                    .map(|e| output::one_line(e, 80))
                    .unwrap_or_default(),
            ]);
        }
        print_table(&mut out, &t).map_err(super::stdout_error)?;
    }
    if let Some(cursor) = page.next_cursor {
        eprintln!("more dead letters: {}", output::next_page_command(&cursor));
    }
    Ok(())
}

/// `dlq show --json`.
#[derive(Serialize)]
struct Shown<'a> {
    #[serde(flatten)]
    message: &'a StoredMessage,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<Box<RawValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload_text: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload_hex: Option<String>,
}

async fn show(config: &Config, args: &ShowArgs) -> anyhow::Result<()> {
    let id = parse_id(&args.id)?;
    let store = super::open_read_only(config).await?;
    let message = store.dead_letter(id).await.map_err(not_dead)?;
    print_message(&message, args.json)
}

/// Prints one stored message (any state) with its payload: fields and
/// payload for humans, or the `--json` object `dlq show` documents.
pub(super) fn print_message(message: &StoredMessage, json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        let bytes = &message.payload;
        let json = std::str::from_utf8(bytes)
            .ok()
            .and_then(|text| RawValue::from_string(text.trim().to_owned()).ok());
        let text = if json.is_none() {
            std::str::from_utf8(bytes).ok()
        } else {
            None
        };
        let hex = (json.is_none() && text.is_none())
            .then(|| bytes.iter().map(|b| format!("{b:02x}")).collect());
        return print_json(
            &mut out,
            &Shown {
                message,
                payload: json,
                payload_text: text,
                payload_hex: hex,
            },
        );
    }
    human_show(&mut out, message).map_err(super::stdout_error)
}

fn human_show(out: &mut impl Write, m: &StoredMessage) -> std::io::Result<()> {
    let d = &m.summary;
    let or_dash = |v: Option<&str>| v.unwrap_or("-").to_owned();
    let fields = [
        ("id", d.id.to_string()),
        ("event type", d.event_type.clone()),
        ("state", m.state.to_string()),
        ("attempts", format!("{} of {}", d.attempts, d.max_attempts)),
        ("priority", d.priority.to_string()),
        ("key", or_dash(d.key.as_deref())),
        ("source", or_dash(d.source.as_deref())),
        ("correlation id", d.correlation_id.clone()),
        (
            "created",
            format!(
                "{} ({})",
                timestamp(d.created_at),
                output::ago(d.created_at)
            ),
        ),
        (
            "due",
            if m.state == MessageState::Queued {
                format!("{} ({})", timestamp(m.available_at), output::when(m.available_at))
            } else {
                "-".into()
            },
        ),
        (
            "lease",
            m.lease
                .as_ref()
                .map(|l| match l.expires_at {
                    Some(t) => format!("held by {} until {}", l.owner, timestamp(t)),
                    None => format!("held by {}", l.owner),
                })
                .unwrap_or_else(|| "-".into()),
        ),
        (
            "died",
            d.dead_at
                .map(|t| format!("{} ({})", timestamp(t), output::ago(t)))
                .unwrap_or_else(|| "-".into()),
        ),
        ("plugin digest", or_dash(d.plugin_digest.as_deref())),
    ];
    for (name, value) in fields {
        writeln!(out, "{:<15} {value}", format!("{name}:"))?;
    }
    writeln!(out, "last error:")?;
    for line in d.last_error.as_deref().unwrap_or("-").lines() {
        writeln!(out, "  {line}")?;
    }
    let (kind, rendered) = output::payload(&m.payload);
    writeln!(out, "payload ({} bytes, {kind}):", m.payload.len())?;
    writeln!(out, "{rendered}")?;
    Ok(())
}

#[derive(Clone, Copy)]
enum Action {
    Redrive,
    Purge,
}

/// Dead letters redriven or purged per transaction.
const BATCH: usize = 1000;

async fn act(
    config: &Config,
    args: &SelectArgs,
    action: Action,
    rate: Option<Rate>,
) -> anyhow::Result<()> {
    let (verb, name) = match action {
        Action::Redrive => ("redrove", "redrive"),
        Action::Purge => ("purged", "purge"),
    };
    let mut out = std::io::stdout().lock();
    if let Some(id) = &args.id {
        let id = parse_id(id)?;
        let store = super::open_existing(config).await?;
        let count = apply(&store, action, Selection::One(id))
            .await
            .map_err(not_dead)?;
        if args.json {
            return print_json(&mut out, &serde_json::json!({ "action": name, "count": count }));
        }
        let after = match action {
            Action::Redrive => " (queued again, due now, attempts reset)",
            Action::Purge => "",
        };
        writeln!(out, "{verb} dead letter {id}{after}").map_err(super::stdout_error)?;
        return Ok(());
    }
    let mut matching = args.matching.to_match()?;
    let store = super::open_existing(config).await?;
    // Those that die again while this runs are not taken a second time.
    let started = now_ms();
    matching.died_before = Some(matching.died_before.map_or(started + 1, |b| b.min(started + 1)));
    let total = store.count_dead_letters(matching.clone()).await?;
    let done = match action {
        Action::Redrive => "redriven",
        Action::Purge => "purged",
    };
    let progress = Progress::bar(total, &format!("dead letters {done}"));
    let batch = rate.map_or(BATCH, |r| batch_for(r.per_second));
    let mut ticker = rate.map(|r| {
        let every = std::time::Duration::from_secs_f64(batch as f64 / r.per_second);
        let mut t = tokio::time::interval(every);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    let mut count = 0usize;
    let outcome = loop {
        if let Some(t) = ticker.as_mut() {
            t.tick().await;
        }
        let selection = Selection::Matching {
            matching: matching.clone(),
            limit: Some(batch),
        };
        match apply(&store, action, selection).await {
            Ok(n) => {
                count += n;
                progress.set(count);
                if n < batch {
                    break Ok(());
                }
            }
            Err(e) => break Err(e),
        }
    };
    progress.finish(count);
    if let Err(e) = outcome {
        return Err(anyhow::Error::new(e).context(format!(
            "{count} dead letter{} {verb} before the store failed",
            if count == 1 { " was" } else { "s were" }
        )));
    }
    if args.json {
        return print_json(&mut out, &serde_json::json!({ "action": name, "count": count }));
    }
    let plural = if count == 1 { "" } else { "s" };
    let after = match action {
        Action::Redrive if count > 0 => " (queued again, due now, attempts reset)",
        _ => "",
    };
    writeln!(out, "{verb} {count} dead letter{plural}{}{after}", describe(&matching))
        .map_err(super::stdout_error)?;
    Ok(())
}

/// How many to take per step at `per_second`: about ten steps a second at
/// high rates, one message per step at low ones.
fn batch_for(per_second: f64) -> usize {
    let per_tenth = (per_second / 10.0).ceil();
    if per_tenth >= BATCH as f64 {
        BATCH
    } else {
        (per_tenth as usize).max(1)
    }
}

/// The conditions as words: " of event type x whose error contains \"y\"".
fn describe(m: &DeadLetterMatch) -> String {
    let mut words = String::new();
    if let Some(t) = &m.event_type {
        words.push_str(&format!(" of event type {t}"));
    }
    if let Some(e) = &m.error_contains {
        words.push_str(&format!(" whose last error contains {e:?}"));
    }
    words
}

async fn apply(store: &Store, action: Action, selection: Selection) -> Result<usize, StoreError> {
    match action {
        Action::Redrive => store.redrive(selection).await,
        Action::Purge => store.purge(selection).await,
    }
}

fn parse_id(id: &str) -> anyhow::Result<MessageId> {
    id.parse::<MessageId>()
        .map_err(|e| bad_input(format!("{e}; copy an id from `mailroom dlq list`")))
}

/// Says what to do when the message is missing or not a dead letter.
fn not_dead(error: StoreError) -> anyhow::Error {
    match error {
        StoreError::WrongState { .. } => bad_input(format!(
            "{error}: only dead letters can be shown, redriven or purged"
        )),
        StoreError::NoSuchMessage { .. } => bad_input(format!(
            "{error} (it was acked, purged or never enqueued): check the id with `mailroom dlq list`"
        )),
        other => other.into(),
    }
}
