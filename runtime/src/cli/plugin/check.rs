//! `mailroom plugin check FILE.wasm`: what the host would say when loading
//! the file, with every problem listed.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use serde::Serialize;

use super::super::output::print_json;
use super::super::{ExitStatus, stdout_error};
use crate::config::Config;
use crate::plugin::{Plugin, PluginError};

/// `mailroom plugin check`'s arguments.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The component to check, e.g. target/wasm32-wasip2/release/greeter.wasm
    #[arg(value_name = "FILE.wasm")]
    file: PathBuf,
    /// Print JSON: {"path", "ok", "plugin": {"name", "version",
    /// "event_types", "digest"} or null, "problems": [{"kind", "message"}]}
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Report<'a> {
    path: String,
    ok: bool,
    plugin: Option<Info<'a>>,
    problems: Vec<Problem>,
}

#[derive(Serialize)]
struct Info<'a> {
    name: &'a str,
    version: &'a str,
    event_types: &'a [String],
    digest: &'a str,
}

#[derive(Serialize)]
struct Problem {
    kind: &'static str,
    message: String,
}

pub(super) fn execute(config: &Config, args: &CheckArgs) -> anyhow::Result<()> {
    let host = super::host(config)?;
    let checked = host.check(&args.file);
    let report = report(&args.file, &checked);
    let mut out = std::io::stdout().lock();
    if args.json {
        print_json(&mut out, &report)?;
    } else {
        human(&mut out, &report).map_err(stdout_error)?;
    }
    if report.ok {
        Ok(())
    } else {
        Err(ExitStatus(1).into())
    }
}

fn report<'a>(
    path: &std::path::Path,
    checked: &'a Result<Plugin, Vec<PluginError>>,
) -> Report<'a> {
    match checked {
        Ok(plugin) => Report {
            path: path.display().to_string(),
            ok: true,
            plugin: Some(Info {
                name: plugin.name(),
                version: plugin.version(),
                event_types: plugin.event_types(),
                digest: plugin.digest(),
            }),
            problems: Vec::new(),
        },
        Err(problems) => Report {
            path: path.display().to_string(),
            ok: false,
            plugin: None,
            problems: problems
                .iter()
                .map(|p| Problem {
                    kind: p.kind(),
                    message: p.to_string(),
                })
                .collect(),
        },
    }
}

fn human(out: &mut impl Write, report: &Report<'_>) -> std::io::Result<()> {
    if let Some(plugin) = &report.plugin {
        writeln!(out, "{}: ok, the host would load it", report.path)?;
        writeln!(out, "  name:        {}", plugin.name)?;
        writeln!(out, "  version:     {}", plugin.version)?;
        writeln!(out, "  event types: {}", plugin.event_types.join(", "))?;
        writeln!(out, "  digest:      {}", plugin.digest)?;
        return Ok(());
    }
    let count = report.problems.len();
    let noun = if count == 1 { "problem" } else { "problems" };
    writeln!(
        out,
        "{}: {count} {noun}, the host would refuse it",
        report.path
    )?;
    for (i, problem) in report.problems.iter().enumerate() {
        writeln!(out, "  {}. {}", i + 1, problem.message)?;
    }
    Ok(())
}
