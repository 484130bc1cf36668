//! The `mailroom` command line: `run` starts the host; the other commands
//! operate on the same store from another process. Each command is a file
//! with the same shape: an args struct and `execute(config, args)`.
//!
//! | file          | command                                  |
//! | ------------- | ---------------------------------------- |
//! | `run.rs`      | `mailroom run`                           |
//! | `enqueue.rs`  | `mailroom enqueue`                       |
//! | `stats.rs`    | `mailroom stats`                         |
//! | `dlq.rs`      | `mailroom dlq list\|show\|redrive\|purge` |
//! | `messages.rs` | `mailroom messages list\|show\|cancel`, `mailroom pause\|resume` |
//! | `plugins.rs`  | `mailroom plugins`                       |
//! | `check.rs`    | `mailroom check`                         |
//! | `plugin/`     | `mailroom plugin new\|check\|run\|watch`  |
//! | `output.rs`   | tables, timestamps and JSON for all      |
//! | `failure.rs`  | exit statuses and how errors are printed |
//!
//! Human output goes to stdout; hints and errors to stderr. `--json` output
//! is a stable interface for scripts (see DESIGN.md, "Interfaces").

mod check;
mod compile_plugin;
mod dlq;
mod enqueue;
pub mod failure;
mod messages;
mod output;
mod plugin;
mod plugins;
mod progress;
mod run;
mod stats;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{Config, LogFormat, Overrides};
use anyhow::Context as _;

use crate::store::Store;

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "mailroom",
    version,
    about = "A WebAssembly-pluggable event processing runtime with a durable mailbox",
    long_about = "A WebAssembly-pluggable event processing runtime with a durable mailbox: an embedded \
        SQLite file, or a PostgreSQL database that many hosts share.\n\n\
        `mailroom run` is the long-lived host: it watches a folder of .wasm plugins and hands \
        each due message to the plugin for its event type. The other commands work on the same \
        store from another process, while the host runs or not; `mailroom plugin` writes, checks \
        and tries plugins without either.\n\n\
        Configuration: defaults < mailroom.toml (or --config) < MAILROOM_<SECTION>_<KEY> \
        environment variables < flags. See examples/mailroom.toml for every key.",
    after_help = failure::EXIT_STATUS_HELP,
    propagate_version = true
)]
pub struct Cli {
    /// Options every command takes.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Read the configuration from PATH instead of ./mailroom.toml; the file
    /// must exist.
    #[arg(
        long,
        global = true,
        value_name = "PATH",
        env = "MAILROOM_CONFIG",
        hide_env_values = true,
        display_order = 900
    )]
    pub config: Option<PathBuf>,
    /// The store file; overrides store.path and store.url from the config
    /// file and the environment [default: mailroom.db]
    #[arg(long, global = true, value_name = "PATH", display_order = 901)]
    pub db: Option<PathBuf>,
    /// The store as a URL: postgres://USER:PASSWORD@HOST:PORT/DATABASE for a
    /// PostgreSQL store, or sqlite:PATH; overrides store.url and
    /// MAILROOM_STORE_URL
    #[arg(
        long,
        global = true,
        value_name = "URL",
        conflicts_with = "db",
        display_order = 902
    )]
    pub store: Option<String>,
}

/// `mailroom run`'s help text.
const RUN_ABOUT: &str = "Run the host: load the plugins in the plugin folder (and every change \
    to it) and process messages until SIGINT or SIGTERM (the stop takes at most \
    dispatcher.shutdown_grace plus 11 s; a second signal exits at once with status 130). \
    SIGHUP re-reads the configuration's [plugin.<name>] tables (what each plugin may reach \
    and read) without a restart";

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the host: load the plugins in the plugin folder (and every change
    /// to it) and process messages until SIGINT or SIGTERM. SIGHUP re-reads
    /// the configuration's `[plugin.<name>]` tables. The help text is
    /// `RUN_ABOUT`, a plain string: in a doc comment rustdoc would read its
    /// `[plugin.<name>]` as a link.
    #[command(about = RUN_ABOUT, long_about = None)]
    Run(RunArgs),
    /// Add events to the store (creating it if needed: the SQLite file, or
    /// the schema in a PostgreSQL database).
    #[command(after_help = enqueue::AFTER_HELP)]
    Enqueue(enqueue::EnqueueArgs),
    /// Count messages by state, event type and priority, and list the
    /// running hosts.
    Stats(stats::StatsArgs),
    /// List, show, redrive or purge dead letters.
    #[command(subcommand)]
    Dlq(dlq::DlqCommand),
    /// List, show or cancel messages in any state.
    #[command(subcommand)]
    Messages(messages::MessagesCommand),
    /// Pause an event type: no host on the store claims its messages until
    /// it is resumed (enqueues are still accepted; the pause lasts across
    /// restarts).
    Pause(messages::PauseArgs),
    /// Resume a paused event type: hosts claim its due messages again.
    Resume(messages::PauseArgs),
    /// Show the plugins the running hosts have loaded, and the files they
    /// rejected and why.
    Plugins(plugins::PluginsArgs),
    /// Verify a store without changing it: schema version, the database's
    /// consistency check, and what it holds.
    #[command(after_help = check::AFTER_HELP)]
    Check(check::CheckArgs),
    /// Write, check and try plugins without a running host: new, check,
    /// run, watch.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
    /// The child process a host compiles a plugin in.
    #[command(name = "compile-plugin", hide = true)]
    CompilePlugin(compile_plugin::CompilePluginArgs),
}

/// An exit status other than 0 (success) and 1 (an `error:` line), for
/// commands whose status says something to scripts (`mailroom plugin check`,
/// `mailroom plugin run`). The command has printed what there is to say; the
/// binary exits with the status and prints nothing more.
#[derive(Debug, thiserror::Error)]
#[error("exit status {0}")]
pub struct ExitStatus(pub u8);

/// `mailroom run`'s flags; each overrides the config file and environment.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The folder of .wasm plugins to watch (plugins.dir) [default: plugins]
    #[arg(long, value_name = "DIR")]
    pub plugins: Option<PathBuf>,
    /// Deliveries running at once, 1 to 1024 (dispatcher.concurrency)
    /// [default: the number of CPU cores]
    #[arg(long, value_name = "N")]
    pub concurrency: Option<usize>,
    /// The shape of log lines (log.format) [default: human]
    #[arg(long, value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
    /// Serve the HTTP API on ADDR, e.g. 127.0.0.1:8080 (http.listen); an
    /// address other than loopback needs http.token [default: off]
    #[arg(long, value_name = "ADDR")]
    pub http_listen: Option<SocketAddr>,
}

/// Parses the process's command line, runs it, and says how it ended: the
/// exit status and, on failure, one line on stderr (a JSON object on stdout
/// after `--json`). Usage errors are clap's (status 2).
pub fn run_command_line() -> std::process::ExitCode {
    use clap::{CommandFactory as _, FromArgMatches as _};
    let matches = Cli::command().get_matches();
    let json = wants_json(&matches);
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    match main(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => failure::report(&e, json),
    }
}

/// Whether the (sub)command was given `--json`.
fn wants_json(matches: &clap::ArgMatches) -> bool {
    let here = matches
        .try_get_one::<bool>("json")
        .ok()
        .flatten()
        .copied()
        .unwrap_or(false);
    here || matches.subcommand().is_some_and(|(_, sub)| wants_json(sub))
}

/// Runs the parsed command line.
///
/// # Errors
///
/// Whatever went wrong, with context naming what to do; the caller prints it
/// as one `error:` line and exits non-zero.
pub fn main(cli: Cli) -> anyhow::Result<()> {
    // Before the configuration: the child compiles whatever the host's is.
    if let Command::CompilePlugin(args) = &cli.command {
        return compile_plugin::execute(args);
    }
    let mut overrides = Overrides {
        config: cli.global.config,
        store_path: cli.global.db,
        store_url: cli.global.store,
        ..Overrides::default()
    };
    if let Command::Run(args) = &cli.command {
        overrides.plugins_dir = args.plugins.clone();
        overrides.concurrency = args.concurrency;
        overrides.log_format = args.log_format;
        overrides.http_listen = args.http_listen;
    }
    let config = Config::load(&overrides)?;
    let result = match cli.command {
        Command::Run(_) => run::execute(config, &overrides),
        Command::Plugin(command) => plugin::execute(&config, command),
        command => {
            // The other commands do a few store calls each: one thread will do.
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            runtime.block_on(async {
                match command {
                    Command::Run(_) | Command::Plugin(_) | Command::CompilePlugin(_) => {
                        unreachable!("handled above")
                    }
                    Command::Enqueue(args) => enqueue::execute(&config, args).await,
                    Command::Stats(args) => stats::execute(&config, &args).await,
                    Command::Dlq(command) => dlq::execute(&config, command).await,
                    Command::Messages(command) => messages::execute(&config, command).await,
                    Command::Pause(args) => messages::pause(&config, &args, true).await,
                    Command::Resume(args) => messages::pause(&config, &args, false).await,
                    Command::Plugins(args) => plugins::execute(&config, &args).await,
                    Command::Check(args) => check::execute(&config, &args).await,
                }
            })
        }
    };
    match result {
        // A reader that went away (`mailroom dlq list | head`) is not an error.
        Err(e) if is_broken_pipe(&e) => Ok(()),
        other => other,
    }
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Opens the configured store for a command that must not create it.
async fn open_existing(config: &Config) -> anyhow::Result<Store> {
    Ok(Store::open(&config.store_location(), &config.open_options(false)).await?)
}

/// Opens the configured store for a command that only reads: nothing is
/// created, migrated or changed.
async fn open_read_only(config: &Config) -> anyhow::Result<Store> {
    Ok(Store::open(&config.store_location(), &config.read_only_options()).await?)
}

/// Opens the configured store, creating it (not the file's directory) if
/// needed.
async fn open_or_create(config: &Config) -> anyhow::Result<Store> {
    Ok(Store::open(&config.store_location(), &config.open_options(true)).await?)
}

/// Writes to stdout, naming stdout in the error.
fn stdout_error(e: std::io::Error) -> anyhow::Error {
    anyhow::Error::new(e).context("cannot write to standard output")
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn run_flags_parse() {
        let cli = Cli::try_parse_from([
            "mailroom",
            "--db",
            "q.db",
            "run",
            "--plugins",
            "p",
            "--concurrency",
            "3",
            "--log-format",
            "json",
            "--http-listen",
            "127.0.0.1:8080",
        ])
        .expect("parses");
        assert_eq!(cli.global.db, Some(PathBuf::from("q.db")));
        let Command::Run(run) = cli.command else {
            panic!("expected run");
        };
        assert_eq!(run.concurrency, Some(3));
        assert_eq!(run.log_format, Some(LogFormat::Json));
        assert!(Cli::try_parse_from(["mailroom", "run", "--log-format", "xml"]).is_err());
    }

    #[test]
    fn global_options_go_after_the_command_too() {
        let cli =
            Cli::try_parse_from(["mailroom", "stats", "--db", "x.db", "--json"]).expect("parses");
        assert_eq!(cli.global.db, Some(PathBuf::from("x.db")));
    }
}
