//! `mailroom plugins`: what the running hosts have loaded and rejected, as
//! they recorded it in the store.

use std::io::Write;

use clap::Args;
use serde::Serialize;

use super::output::{ago, print_json, print_table, table};
use crate::clock::Millis;
use crate::config::Config;
use crate::store::{HostRecord, PluginRegistry};

/// `mailroom plugins`'s arguments.
#[derive(Debug, Args)]
pub struct PluginsArgs {
    /// Print JSON: {"loaded": [{"name", "version", "event_types", "digest",
    /// "path", "host", "updated_at"}], "rejected": [{"path", "reason", "host",
    /// "updated_at"}], "hosts": [{"host", "hostname", "pid", "started_at",
    /// "heartbeat_at"}]}
    #[arg(long)]
    json: bool,
}

/// One loaded plugin in `--json` output; every field always present.
#[derive(Serialize)]
struct Loaded<'a> {
    name: &'a str,
    version: &'a str,
    event_types: &'a [String],
    digest: &'a str,
    path: &'a str,
    host: &'a str,
    updated_at: Millis,
}

/// One rejected file in `--json` output.
#[derive(Serialize)]
struct Rejected<'a> {
    path: &'a str,
    reason: &'a str,
    host: &'a str,
    updated_at: Millis,
}

#[derive(Serialize)]
struct Report<'a> {
    loaded: Vec<Loaded<'a>>,
    rejected: Vec<Rejected<'a>>,
    hosts: &'a [HostRecord],
}

pub(super) async fn execute(config: &Config, args: &PluginsArgs) -> anyhow::Result<()> {
    let store = super::open_read_only(config).await?;
    let registry = store.plugin_registry().await?;
    let mut out = std::io::stdout().lock();
    if args.json {
        return print_json(&mut out, &report(&registry));
    }
    human(&mut out, &registry).map_err(super::stdout_error)
}

fn report(registry: &PluginRegistry) -> Report<'_> {
    Report {
        loaded: registry
            .loaded
            .iter()
            .map(|p| Loaded {
                name: text(&p.name),
                version: text(&p.version),
                event_types: &p.event_types,
                digest: text(&p.digest),
                path: &p.path,
                host: &p.host,
                updated_at: p.updated_at,
            })
            .collect(),
        rejected: registry
            .rejected
            .iter()
            .map(|p| Rejected {
                path: &p.path,
                reason: text(&p.reason),
                host: &p.host,
                updated_at: p.updated_at,
            })
            .collect(),
        hosts: &registry.hosts,
    }
}

fn text(s: &Option<String>) -> &str {
    s.as_deref().unwrap_or("")
}

fn human(out: &mut impl Write, registry: &PluginRegistry) -> std::io::Result<()> {
    if registry.loaded.is_empty() && registry.rejected.is_empty() {
        writeln!(
            out,
            "no plugins: no running host has recorded any (is `mailroom run` running on this store, with .wasm files in its plugin folder?)"
        )?;
        return Ok(());
    }
    super::stats::hosts(out, &registry.hosts)?;
    writeln!(out)?;
    writeln!(out, "loaded: {}", registry.loaded.len())?;
    if !registry.loaded.is_empty() {
        let mut t = table(
            &["NAME", "VERSION", "EVENT TYPES", "DIGEST", "PATH", "HOST", "SINCE"],
            &[],
        );
        for p in &registry.loaded {
            t.add_row(vec![
                p.name.clone().unwrap_or_default(),
                p.version.clone().unwrap_or_default(),
                p.event_types.join(", "),
                short_digest(p.digest.as_deref().unwrap_or("")),
                p.path.clone(),
                p.host.clone(),
                ago(p.updated_at),
            ]);
        }
        print_table(out, &t)?;
    }
    for (event_type, digests) in registry.mixed_builds() {
        let builds: Vec<String> = digests.iter().map(|d| short_digest(d)).collect();
        writeln!(
            out,
            "note: hosts serve {event_type} with different builds ({}): a deploy in progress, or plugin folders that differ",
            builds.join(", ")
        )?;
    }
    writeln!(out)?;
    writeln!(out, "rejected: {}", registry.rejected.len())?;
    if !registry.rejected.is_empty() {
        let mut t = table(&["PATH", "HOST", "REASON"], &[]);
        for p in &registry.rejected {
            t.add_row(vec![
                p.path.clone(),
                p.host.clone(),
                p.reason.clone().unwrap_or_default(),
            ]);
        }
        print_table(out, &t)?;
    }
    Ok(())
}

/// `sha256:` and the first 12 hex digits: enough to tell builds apart in a
/// table (`--json` has the whole digest).
fn short_digest(digest: &str) -> String {
    match digest.split_once(':') {
        Some((algo, hex)) => format!("{algo}:{}", hex.chars().take(12).collect::<String>()),
        None => digest.chars().take(19).collect(),
    }
}
