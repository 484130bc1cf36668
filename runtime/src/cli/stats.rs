//! `mailroom stats`: message counts by state, event type and priority.

use std::io::Write;

use clap::Args;

use super::output::{age, ago, print_json, print_table, table};
use crate::config::Config;
use crate::store::{HostRecord, StateCounts, Stats};

/// `mailroom stats`'s arguments.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Print JSON: {"queued", "inflight", "dead", "by_event_type": {TYPE: {"queued",
    /// "inflight", "dead"}}, "by_priority", "due", "waiting_for_handler",
    /// "oldest_due_age_ms", "hosts": [{"host", "hostname", "pid", "started_at",
    /// "heartbeat_at"}]}
    #[arg(long)]
    json: bool,
}

pub(super) async fn execute(config: &Config, args: &StatsArgs) -> anyhow::Result<()> {
    let store = super::open_read_only(config).await?;
    let stats = store.stats().await?;
    let mut out = std::io::stdout().lock();
    if args.json {
        return print_json(&mut out, &stats);
    }
    human(&mut out, &stats, config).map_err(super::stdout_error)
}

fn human(out: &mut impl Write, stats: &Stats, config: &Config) -> std::io::Result<()> {
    writeln!(out, "store: {}", config.store_location())?;
    hosts(out, &stats.hosts)?;
    if stats.totals.total() == 0 {
        writeln!(out, "no messages")?;
        return Ok(());
    }
    writeln!(out)?;
    let mut by_type = table(&["EVENT TYPE", "QUEUED", "INFLIGHT", "DEAD"], &[1, 2, 3]);
    for (event_type, counts) in &stats.by_event_type {
        by_type.add_row(row(event_type, counts));
    }
    by_type.add_row(row("(all)", &stats.totals));
    print_table(out, &by_type)?;

    writeln!(out)?;
    let mut by_priority = table(&["PRIORITY", "QUEUED", "INFLIGHT", "DEAD"], &[1, 2, 3]);
    // Most urgent first, as they are claimed.
    for (priority, counts) in stats.by_priority.iter().rev() {
        by_priority.add_row(row(priority.as_str(), counts));
    }
    print_table(out, &by_priority)?;

    writeln!(out)?;
    writeln!(out, "due now:                {}", stats.due)?;
    writeln!(
        out,
        "waiting for a handler:  {}{}",
        stats.waiting_for_handler,
        if stats.waiting_for_handler > 0 {
            "  (queued, of event types no running host has a plugin for)"
        } else {
            ""
        }
    )?;
    if let Some(ms) = stats.oldest_due_age_ms {
        writeln!(out, "oldest due message:     due for {}", age(ms))?;
    }
    Ok(())
}

/// The running hosts, one line each.
pub(super) fn hosts(out: &mut impl Write, hosts: &[HostRecord]) -> std::io::Result<()> {
    if hosts.is_empty() {
        return writeln!(out, "hosts: none running");
    }
    writeln!(out, "hosts: {}", hosts.len())?;
    let mut t = table(&["HOST", "STARTED", "LAST HEARTBEAT"], &[]);
    for h in hosts {
        t.add_row(vec![h.host.clone(), ago(h.started_at), ago(h.heartbeat_at)]);
    }
    print_table(out, &t)
}

fn row(label: &str, counts: &StateCounts) -> Vec<String> {
    vec![
        label.to_owned(),
        counts.queued.to_string(),
        counts.inflight.to_string(),
        counts.dead.to_string(),
    ]
}
