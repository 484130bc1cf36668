//! `mailroom plugin new|check|run|watch`: the plugin author's loop, offline
//! and without a running host. `check` and `run` go through the host's own
//! load and delivery path ([`PluginHost::check`], [`Plugin::handle`]) under
//! the configured sandbox limits, so what they say is what `mailroom run`
//! would do.
//!
//! | file        | command                  |
//! | ----------- | ------------------------ |
//! | `new.rs`    | `mailroom plugin new`    |
//! | `check.rs`  | `mailroom plugin check`  |
//! | `run.rs`    | `mailroom plugin run`    |
//! | `watch.rs`  | `mailroom plugin watch`  |
//! | `scaffold.rs` | the files `new` writes, embedded in the binary |
//! | `guest_log.rs` | the plugin's log lines, captured for `run` |
//!
//! [`PluginHost::check`]: crate::plugin::PluginHost::check
//! [`Plugin::handle`]: crate::plugin::Plugin::handle

mod check;
mod guest_log;
mod new;
mod run;
mod scaffold;
mod watch;

use clap::Subcommand;

use crate::config::Config;
use crate::plugin::{HostConfig, PluginHost, SandboxLimits};

/// `mailroom plugin`'s subcommands.
#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Create a plugin crate: a handler, a native unit test, a README of the
    /// next steps, and a copy of mailroom-sdk, so it builds anywhere, offline
    #[command(after_help = new::AFTER_HELP)]
    New(new::NewArgs),
    /// Check a .wasm file as the host does at load time, without a host:
    /// every problem at once; exit status 0 when the host would load it, 1
    /// when it would refuse it
    Check(check::CheckArgs),
    /// Deliver one event to a .wasm file in the host's sandbox, under the
    /// host's limits, and show the outcome, emitted events and log lines;
    /// exit status 0 ack, 3 retry, 4 fatal, 1 when it cannot run
    #[command(after_help = run::AFTER_HELP)]
    Run(run::RunArgs),
    /// Rebuild a plugin crate whenever its sources change and deploy each
    /// good build into a plugin folder, atomically; Ctrl-C ends it
    Watch(watch::WatchArgs),
}

pub(super) fn execute(config: &Config, command: PluginCommand) -> anyhow::Result<()> {
    match command {
        PluginCommand::New(args) => new::execute(&args),
        PluginCommand::Check(args) => check::execute(config, &args),
        PluginCommand::Run(args) => run::execute(config, args),
        PluginCommand::Watch(args) => watch::execute(config, &args),
    }
}

/// A host for one command: the configured sandbox limits, one instance at a
/// time (a command runs one call), and no compiled-code cache (nothing is
/// written beside the store).
fn host(config: &Config) -> anyhow::Result<PluginHost> {
    let limits = SandboxLimits {
        max_instances: 1,
        ..config.sandbox_limits()
    };
    // What the operator opened to each plugin (`[plugin.<name>]`), as a
    // running host would.
    Ok(PluginHost::with_access(
        HostConfig {
            limits,
            cache_dir: None,
            ..HostConfig::default()
        },
        config.plugin_access(),
        None,
    )?)
}
