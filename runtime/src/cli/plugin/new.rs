//! `mailroom plugin new NAME [--event-type T]...`: a plugin crate that builds
//! where it is written, offline, with a handler, a native unit test and a
//! README of the next steps.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::Args;

use super::scaffold::{self, Plan};
use crate::message;

pub(super) const AFTER_HELP: &str = "\
Examples:
  mailroom plugin new greeter --event-type greeting.requested
  mailroom plugin new order-audit --event-type order.placed --event-type order.paid --path plugins/audit

The crate has its own [workspace] table and a copy of mailroom-sdk in
mailroom-sdk/, so it builds wherever it is, with crates.io dependencies only.
Its README.md walks through the rest: cargo test, cargo build --release
--target wasm32-wasip2, mailroom plugin check, mailroom plugin run, and
mailroom plugin watch to deploy it into a running host's plugin folder.";

/// The longest plugin name `new` accepts (a package name too).
const MAX_NAME_LEN: usize = 64;

/// `mailroom plugin new`'s arguments.
#[derive(Debug, Args)]
pub struct NewArgs {
    /// The plugin's name, also the crate's: a letter, then letters, digits,
    /// `-` or `_` (at most 64)
    #[arg(value_name = "NAME")]
    name: String,
    /// An event type the plugin handles (repeat for more) [default:
    /// NAME.requested]
    #[arg(long = "event-type", value_name = "T")]
    event_types: Vec<String>,
    /// Where to create the crate; it must not exist or be empty [default:
    /// ./NAME]
    #[arg(long, value_name = "DIR")]
    path: Option<PathBuf>,
}

pub(super) fn execute(args: &NewArgs) -> anyhow::Result<()> {
    check_name(&args.name)?;
    let event_types = if args.event_types.is_empty() {
        vec![format!("{}.requested", args.name)]
    } else {
        args.event_types.clone()
    };
    for event_type in &event_types {
        message::validate_event_type(event_type).context("bad --event-type")?;
    }
    let dir = args.path.clone().unwrap_or_else(|| PathBuf::from(&args.name));
    if std::fs::read_dir(&dir).is_ok_and(|mut entries| entries.next().is_some()) {
        bail!(
            "{} exists and is not empty: choose another NAME or --path",
            dir.display()
        );
    }
    let files = scaffold::files(&Plan {
        name: args.name.clone(),
        event_types,
    })?;
    for (path, text) in &files {
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let wasm = args.name.replace('-', "_");
    println!("created {} (plugin `{}`)", dir.display(), args.name);
    println!();
    println!("next:");
    println!("  cd {}", dir.display());
    println!("  cargo test                                   # the handler's unit tests");
    println!("  cargo build --release --target wasm32-wasip2");
    println!("  mailroom plugin check target/wasm32-wasip2/release/{wasm}.wasm");
    println!("  mailroom plugin run target/wasm32-wasip2/release/{wasm}.wasm <EVENT_TYPE> '{{}}'");
    println!("  see README.md for the rest: deploying with `mailroom plugin watch`");
    Ok(())
}

/// A name that is a valid plugin name, package name and file name.
fn check_name(name: &str) -> anyhow::Result<()> {
    let mut chars = name.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && name.len() <= MAX_NAME_LEN;
    if !valid {
        bail!(
            "bad NAME `{}`: a plugin name here starts with a letter and has only letters, digits, `-` and `_` (at most {MAX_NAME_LEN}), as it names the crate too",
            name.escape_debug()
        );
    }
    Ok(())
}
