//! `mailroom messages list|show|cancel`: find, inspect and remove messages
//! in any state, without touching the database by hand.

use std::io::{IsTerminal as _, Write};

use clap::{ArgGroup, Args, Subcommand};

use super::failure::bad_input;
use super::progress::Progress;
use super::output::{self, print_json, print_table, table};
use crate::config::Config;
use crate::message::{self, MessageId};
use crate::state_machine::MessageState;
use crate::store::{Cancelled, MessageFilter};

/// How many queued messages one transaction of a bulk cancel removes: small
/// enough that the store's write lock is never held for long.
const CANCEL_BATCH: usize = 1000;

/// `mailroom messages`'s subcommands.
#[derive(Debug, Subcommand)]
pub enum MessagesCommand {
    /// List messages in any state, in the order they were enqueued, a page at
    /// a time.
    List(ListArgs),
    /// Show one message in any state: its fields, lease, last error and
    /// payload.
    Show(ShowArgs),
    /// Remove queued messages: by id, or every queued message of an event
    /// type (with --yes). A message in flight or dead is not removed, and the
    /// reason is given.
    Cancel(CancelArgs),
}

/// `messages list`'s arguments.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only messages of this event type
    #[arg(long, value_name = "TYPE")]
    event_type: Option<String>,
    /// Only messages in this state: queued, inflight or dead
    #[arg(long, value_name = "STATE", value_parser = parse_state)]
    state: Option<MessageState>,
    #[command(flatten)]
    page: output::PageArgs,
    /// Print {"items": [{"id", "event_type", "state", "attempts", "max_attempts",
    /// "available_at", "last_error", "lease": {"owner", "expires_at"}, ...}],
    /// "next_cursor"}; times in ms since the Unix epoch
    #[arg(long)]
    json: bool,
}

/// `messages show`'s arguments.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The message's id (a UUID, as `messages list` prints it)
    id: String,
    /// Print JSON: the fields of `messages list` plus "payload" (the payload
    /// as JSON; "payload_text" or "payload_hex" when it is not JSON)
    #[arg(long)]
    json: bool,
}

/// `messages cancel`'s arguments.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("which").required(true).args(["ids", "event_type"])))]
pub struct CancelArgs {
    /// The ids of the messages to remove
    #[arg(value_name = "ID")]
    ids: Vec<String>,
    /// Remove every queued message of this event type (needs --yes)
    #[arg(long, value_name = "TYPE", conflicts_with = "ids")]
    event_type: Option<String>,
    /// Confirm a bulk cancel
    #[arg(long)]
    yes: bool,
    /// Print {"cancelled": N, "refused": [{"id", "reason"}], "inflight_left": N}
    #[arg(long)]
    json: bool,
}

fn parse_state(s: &str) -> Result<MessageState, String> {
    s.parse()
        .map_err(|_| format!("unknown state `{s}`: use queued, inflight or dead"))
}

pub(super) async fn execute(config: &Config, command: MessagesCommand) -> anyhow::Result<()> {
    match command {
        MessagesCommand::List(args) => list(config, args).await,
        MessagesCommand::Show(args) => show(config, &args).await,
        MessagesCommand::Cancel(args) => cancel(config, args).await,
    }
}

async fn list(config: &Config, args: ListArgs) -> anyhow::Result<()> {
    if let Some(t) = &args.event_type {
        message::validate_event_type(t).map_err(|e| bad_input(format!("bad --event-type: {e}")))?;
    }
    let store = super::open_read_only(config).await?;
    let page = store
        .messages(MessageFilter {
            event_type: args.event_type.clone(),
            state: args.state,
            limit: usize::from(args.page.limit),
            cursor: args.page.cursor,
        })
        .await?;
    let mut out = std::io::stdout().lock();
    if args.json {
        return print_json(&mut out, &page);
    }
    if page.items.is_empty() {
        writeln!(out, "no messages").map_err(super::stdout_error)?;
    } else {
        let mut t = table(
            &["ID", "EVENT TYPE", "STATE", "ATTEMPTS", "DUE", "LAST ERROR"],
            &[3],
        );
        for m in &page.items {
            let due = match m.state {
                MessageState::Queued => output::when(m.available_at),
                MessageState::Inflight => m
                    .lease
                    .as_ref()
                    .map(|l| format!("running on {}", l.owner))
                    .unwrap_or_default(),
                MessageState::Dead => String::new(),
            };
            t.add_row(vec![
                m.summary.id.to_string(),
                m.summary.event_type.clone(),
                m.state.to_string(),
                format!("{}/{}", m.summary.attempts, m.summary.max_attempts),
                due,
                m.summary
                    .last_error
                    .as_deref()
                    .map(|e| output::one_line(e, 60))
                    .unwrap_or_default(),
            ]);
        }
        print_table(&mut out, &t).map_err(super::stdout_error)?;
    }
    if let Some(cursor) = page.next_cursor {
        eprintln!("more messages: {}", output::next_page_command(&cursor));
    }
    Ok(())
}

async fn show(config: &Config, args: &ShowArgs) -> anyhow::Result<()> {
    let id = parse_id(&args.id)?;
    let store = super::open_read_only(config).await?;
    let message = store.message(id).await.map_err(|e| match e {
        crate::store::StoreError::NoSuchMessage { .. } => bad_input(format!(
            "{e} (it was acked, cancelled, purged or never enqueued): check the id with `mailroom messages list`"
        )),
        other => other.into(),
    })?;
    super::dlq::print_message(&message, args.json)
}

async fn cancel(config: &Config, args: CancelArgs) -> anyhow::Result<()> {
    let store;
    let done = if let Some(event_type) = &args.event_type {
        message::validate_event_type(event_type)
            .map_err(|e| bad_input(format!("bad --event-type: {e}")))?;
        if !args.yes {
            return Err(bad_input(format!(
                "cancelling every queued message of {event_type} cannot be undone: add --yes to confirm"
            )));
        }
        store = super::open_existing(config).await?;
        let queued = store
            .stats()
            .await?
            .by_event_type
            .get(event_type)
            .map_or(0, |q| q.counts.queued);
        let progress = Progress::bar(queued, "cancelled");
        let done = store
            .cancel_all_queued(event_type, CANCEL_BATCH, |n| progress.set(n))
            .await?;
        progress.finish(done.cancelled);
        done
    } else {
        let ids = args
            .ids
            .iter()
            .map(|id| parse_id(id))
            .collect::<anyhow::Result<Vec<_>>>()?;
        store = super::open_existing(config).await?;
        store.cancel_ids(ids).await?
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        print_json(&mut out, &done)?;
    } else {
        human_cancel(&mut out, &done, args.event_type.as_deref()).map_err(super::stdout_error)?;
    }
    if done.refused.is_empty() {
        Ok(())
    } else {
        // Scripts learn that not everything named was removed.
        Err(super::ExitStatus(super::failure::EXIT_FAILED).into())
    }
}

fn human_cancel(
    out: &mut impl Write,
    done: &Cancelled,
    event_type: Option<&str>,
) -> std::io::Result<()> {
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    match event_type {
        Some(t) => writeln!(
            out,
            "cancelled {} queued message{} of {t}",
            done.cancelled,
            plural(done.cancelled)
        )?,
        None => writeln!(
            out,
            "cancelled {} message{}",
            done.cancelled,
            plural(done.cancelled)
        )?,
    }
    if let Some(n) = done.inflight_left.filter(|n| *n > 0) {
        writeln!(
            out,
            "{n} in flight left to finish (a handler is running them; they are settled as usual)"
        )?;
    }
    for r in &done.refused {
        // On stderr as well when stdout is not a terminal: the refusals are
        // what a script must notice.
        writeln!(out, "not cancelled: {}: {}", r.id, r.reason)?;
        if !std::io::stdout().is_terminal() {
            eprintln!("not cancelled: {}: {}", r.id, r.reason);
        }
    }
    Ok(())
}

fn parse_id(id: &str) -> anyhow::Result<MessageId> {
    id.parse::<MessageId>()
        .map_err(|e| bad_input(format!("{e}; copy an id from `mailroom messages list`")))
}

/// `mailroom pause`/`resume`'s arguments.
#[derive(Debug, Args)]
pub struct PauseArgs {
    /// The event type
    #[arg(value_name = "EVENT_TYPE")]
    event_type: String,
    /// Print {"event_type", "paused", "changed"}
    #[arg(long)]
    json: bool,
}

/// Pauses (`pause`) or resumes an event type for every host on the store.
pub(super) async fn pause(config: &Config, args: &PauseArgs, pause: bool) -> anyhow::Result<()> {
    message::validate_event_type(&args.event_type)
        .map_err(|e| bad_input(format!("bad EVENT_TYPE: {e}")))?;
    let store = super::open_existing(config).await?;
    let change = if pause {
        store.pause(&args.event_type).await?
    } else {
        store.resume(&args.event_type).await?
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        return print_json(
            &mut out,
            &serde_json::json!({
                "event_type": args.event_type,
                "paused": change.paused,
                "changed": change.changed,
            }),
        );
    }
    let t = &args.event_type;
    let line = match (pause, change.changed) {
        (true, true) => format!(
            "paused {t}: no host claims its messages until `mailroom resume {t}` (enqueues are still accepted)"
        ),
        (true, false) => format!("{t} was already paused"),
        (false, true) => format!("resumed {t}: hosts claim its due messages again"),
        (false, false) => format!("{t} was not paused"),
    };
    writeln!(out, "{line}").map_err(super::stdout_error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_parse_and_others_are_named() {
        assert_eq!(parse_state("inflight"), Ok(MessageState::Inflight));
        let e = parse_state("running").expect_err("refused");
        assert!(e.contains("queued, inflight or dead"), "{e}");
    }

    #[test]
    fn a_bad_id_says_where_to_find_one() {
        let e = parse_id("42").expect_err("refused").to_string();
        assert!(e.contains("mailroom messages list"), "{e}");
    }
}
