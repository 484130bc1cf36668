//! `mailroom stats`: message counts by state, event type and priority, and
//! each event type's queue: paused or not, its oldest due message, and the
//! plugin serving it on each host.

use std::io::Write;

use clap::Args;

use super::output::{age, ago, print_json, print_table, table};
use crate::config::Config;
use crate::store::{EventTypeStats, HostRecord, StateCounts, Stats};

/// `mailroom stats`'s arguments.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Print JSON: {"queued", "inflight", "dead", "by_event_type": {TYPE: {"queued",
    /// "inflight", "dead", "paused", "oldest_due_age_ms", "handlers": [{"host",
    /// "plugin", "version"}], "max_queued", "ttl_ms", "concurrency" (when
    /// configured)}}, "by_priority", "due", "waiting_for_handler",
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
    if !stats.by_event_type.is_empty() {
        writeln!(out)?;
        let mut by_type = table(
            &[
                "EVENT TYPE", "QUEUED", "INFLIGHT", "DEAD", "OLDEST DUE", "STATE", "HANDLER",
                "LIMITS",
            ],
            &[1, 2, 3, 4],
        );
        for (event_type, queue) in &stats.by_event_type {
            by_type.add_row(type_row(event_type, queue));
        }
        let mut all = row("(all)", &stats.totals);
        all.push(stats.oldest_due_age_ms.map(age).unwrap_or_default());
        by_type.add_row(all);
        print_table(out, &by_type)?;
    }
    if stats.totals.total() == 0 {
        writeln!(out, "no messages")?;
        return Ok(());
    }

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

/// One event type's queue: counts, how long its oldest due message has
/// waited, paused or not, and its handler (plugin@version; the hosts when
/// they differ).
fn type_row(event_type: &str, queue: &EventTypeStats) -> Vec<String> {
    let mut cells = row(event_type, &queue.counts);
    cells.push(queue.oldest_due_age_ms.map(age).unwrap_or_default());
    cells.push(if queue.paused { "paused" } else { "" }.to_owned());
    let mut handlers: Vec<String> = queue
        .handlers
        .iter()
        .map(|h| format!("{}@{}", h.plugin, h.version))
        .collect();
    handlers.dedup();
    let handler = match handlers.as_slice() {
        [] => "none".to_owned(),
        [one] => one.clone(),
        _ => queue
            .handlers
            .iter()
            .map(|h| format!("{}@{} on {}", h.plugin, h.version, h.host))
            .collect::<Vec<_>>()
            .join(", "),
    };
    cells.push(handler);
    cells.push(limits(queue));
    cells
}

/// A type's configured limits: capacity and its use, time to live,
/// deliveries at once per host.
fn limits(queue: &EventTypeStats) -> String {
    let mut parts = Vec::new();
    if let Some(max) = queue.max_queued {
        let used = queue
            .counts
            .queued
            .saturating_mul(100)
            .checked_div(max)
            .unwrap_or(100);
        parts.push(format!("max {max} queued ({used}% used)"));
    }
    if let Some(ttl) = queue.ttl_ms {
        parts.push(format!("ttl {}", humantime::format_duration(std::time::Duration::from_millis(ttl))));
    }
    if let Some(n) = queue.concurrency {
        parts.push(format!("{n} at once"));
    }
    parts.join(", ")
}

fn row(label: &str, counts: &StateCounts) -> Vec<String> {
    vec![
        label.to_owned(),
        counts.queued.to_string(),
        counts.inflight.to_string(),
        counts.dead.to_string(),
    ]
}
