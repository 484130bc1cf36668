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
use crate::state_machine::MessageState;
use crate::store::{DeadLetterFilter, Selection, StoreError, StoredMessage};

/// The `dlq` commands.
#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// List dead letters, oldest first, a page at a time.
    List(ListArgs),
    /// Show one dead letter: its fields, last error and payload.
    Show(ShowArgs),
    /// Put dead letters back in the queue, due now, with attempts reset to 0.
    Redrive(SelectArgs),
    /// Delete dead letters for good.
    Purge(SelectArgs),
}

/// `dlq list`'s arguments.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only dead letters of this event type
    #[arg(long, value_name = "TYPE")]
    event_type: Option<String>,
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

/// Which dead letters `redrive` and `purge` act on: exactly one of an id,
/// `--event-type` or `--all`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("which").required(true).args(["id", "event_type", "all"])))]
pub struct SelectArgs {
    /// One dead letter, by id
    id: Option<String>,
    /// Every dead letter of this event type
    #[arg(long, value_name = "TYPE")]
    event_type: Option<String>,
    /// Every dead letter
    #[arg(long)]
    all: bool,
    /// Print {"count": N} (plus "action")
    #[arg(long)]
    json: bool,
}

pub(super) async fn execute(config: &Config, command: DlqCommand) -> anyhow::Result<()> {
    match command {
        DlqCommand::List(args) => list(config, args).await,
        DlqCommand::Show(args) => show(config, &args).await,
        DlqCommand::Redrive(args) => act(config, &args, Action::Redrive).await,
        DlqCommand::Purge(args) => act(config, &args, Action::Purge).await,
    }
}

async fn list(config: &Config, args: ListArgs) -> anyhow::Result<()> {
    if let Some(t) = &args.event_type {
        message::validate_event_type(t).context("bad --event-type")?;
    }
    let store = super::open_existing(config).await?;
    let page = store
        .dead_letters(DeadLetterFilter {
            event_type: args.event_type.clone(),
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
    let store = super::open_existing(config).await?;
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

async fn act(config: &Config, args: &SelectArgs, action: Action) -> anyhow::Result<()> {
    let selection = if let Some(id) = &args.id {
        Selection::One(parse_id(id)?)
    } else if let Some(t) = &args.event_type {
        message::validate_event_type(t).context("bad --event-type")?;
        Selection::EventType(t.clone())
    } else {
        Selection::All
    };
    let store = super::open_existing(config).await?;
    let (count, verb, name) = match action {
        Action::Redrive => (
            store.redrive(selection.clone()).await.map_err(not_dead)?,
            "redrove",
            "redrive",
        ),
        Action::Purge => (
            store.purge(selection.clone()).await.map_err(not_dead)?,
            "purged",
            "purge",
        ),
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        return print_json(
            &mut out,
            &serde_json::json!({ "action": name, "count": count }),
        );
    }
    let plural = if count == 1 { "" } else { "s" };
    let what = match &selection {
        Selection::One(id) => format!("dead letter {id}"),
        Selection::EventType(t) => format!("{count} dead letter{plural} of event type {t}"),
        Selection::All => format!("{count} dead letter{plural}"),
    };
    let after = match action {
        Action::Redrive => " (queued again, due now, attempts reset)",
        Action::Purge => "",
    };
    writeln!(out, "{verb} {what}{after}").map_err(super::stdout_error)?;
    Ok(())
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
