//! `mailroom check`: verifies a store without changing it: its schema
//! version, the database's own consistency check, and what it holds.

use std::io::Write;

use clap::Args;

use super::ExitStatus;
use super::output::print_json;
use crate::config::Config;
use crate::store::{CheckDepth, CheckReport};

/// The exit status when the check ran and found damage: the store is
/// unusable, as when it cannot be opened.
pub(crate) const EXIT_DAMAGED: u8 = super::failure::EXIT_STORE_UNAVAILABLE;

/// `mailroom check`'s arguments.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Also compare every index with its table (SQLite `integrity_check`
    /// instead of `quick_check`); slower on a large store
    #[arg(long)]
    full: bool,
    /// Print JSON: {"store", "backend", "schema_version", "checked",
    /// "problems": [..], "bytes", "totals": {"queued", "inflight", "dead"},
    /// "took_ms"}
    #[arg(long)]
    json: bool,
}

/// After-help text: what the exit status says.
pub(crate) const AFTER_HELP: &str = "Exit status: 0 when the store is sound, 5 when the check \
    found damage (listed, no error line) or the store could not be opened (an `error:` line). The store is opened read-only: nothing is created, migrated or written.";

pub(super) async fn execute(config: &Config, args: &CheckArgs) -> anyhow::Result<()> {
    let store = super::open_read_only(config).await?;
    let depth = if args.full {
        CheckDepth::Full
    } else {
        CheckDepth::Quick
    };
    let report = store.check(depth).await?;
    let mut out = std::io::stdout().lock();
    if args.json {
        print_json(&mut out, &report)?;
    } else {
        human(&mut out, &report).map_err(super::stdout_error)?;
    }
    if report.is_sound() {
        Ok(())
    } else {
        Err(ExitStatus(EXIT_DAMAGED).into())
    }
}

fn human(out: &mut impl Write, report: &CheckReport) -> std::io::Result<()> {
    writeln!(out, "store:   {} ({})", report.store, report.backend)?;
    writeln!(out, "schema:  version {}", report.schema_version)?;
    if let Some(bytes) = report.bytes {
        writeln!(out, "size:    {bytes} bytes")?;
    }
    writeln!(out, "checked: {} in {} ms", report.checked, report.took_ms)?;
    if let Some(t) = &report.totals {
        writeln!(
            out,
            "holds:   {} queued, {} in flight, {} dead",
            t.queued, t.inflight, t.dead
        )?;
    }
    if report.is_sound() {
        writeln!(out, "result:  ok")
    } else {
        writeln!(out, "result:  DAMAGED ({} problems)", report.problems.len())?;
        for problem in &report.problems {
            writeln!(out, "  - {problem}")?;
        }
        writeln!(
            out,
            "Stop the hosts writing to it and restore it from a backup; the rows that can still \
             be read can be listed with `mailroom dlq list` and `mailroom stats`."
        )
    }
}
