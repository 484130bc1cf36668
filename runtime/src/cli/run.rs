//! `mailroom run`: the long-lived host, until SIGINT or SIGTERM. SIGHUP
//! re-reads the configuration's `[plugin.<name>]` tables.
//!
//! The stop is bounded: the host gets `dispatcher.shutdown_grace` plus
//! [`SHUTDOWN_BOUND`] and then the process exits whatever the store is
//! doing; a second SIGINT or SIGTERM exits at once with
//! [`EXIT_SECOND_SIGNAL`].

use std::time::Duration;

use anyhow::Context as _;

use crate::config::{Config, Overrides};
use crate::host::{Host, SHUTDOWN_BOUND};

/// The exit status when a second SIGINT or SIGTERM cut the shutdown short
/// (128 + SIGINT's number, as shells report an interrupted command).
pub const EXIT_SECOND_SIGNAL: i32 = 130;

/// How long the process waits for store calls still blocked (on another
/// process's lock, a full disk) once the host has stopped: a blocked SQLite
/// call cannot be cancelled, so it is abandoned.
const ABANDON_BLOCKED_CALLS: Duration = Duration::from_millis(500);

/// Runs the host with `config` until a signal asks it to stop, then shuts it
/// down gracefully (running deliveries finish or are released) and returns.
/// On SIGHUP, loads the configuration again (from the same file, environment
/// and `overrides`) and applies its `[plugin.<name>]` tables; other changes
/// need a restart.
pub(crate) fn execute(config: Config, overrides: &Overrides) -> anyhow::Result<()> {
    crate::logging::init(&config.log)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(crate::host::worker_threads(&config.store_location()))
        .enable_all()
        .thread_name("mailroom")
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(async {
        let mut signals = Signals::new()?;
        // A start held up by the store (a lock another process holds) ends
        // on a signal too.
        let host = tokio::select! {
            host = Host::start(&config) => host.context("cannot start the host")?,
            signal = signals.stop() => {
                tracing::info!("{} received while starting: stopped", signal?);
                return Ok(());
            }
        };
        let signal = loop {
            match signals.next().await? {
                Signal::Stop(name) => break name,
                Signal::Reload => reload(&host, overrides),
            }
        };
        let grace = config.dispatcher.shutdown_grace;
        tracing::info!(
            "{signal} received: stopping (running deliveries get {grace:?} to finish; a second signal stops at once)"
        );
        tokio::select! {
            () = host.shutdown() => {
                tracing::info!("stopped");
                Ok(())
            }
            second = signals.stop() => {
                tracing::warn!(
                    "{} received again: exiting at once; what was in flight returns to the queue when its lease expires",
                    second.unwrap_or("the signal")
                );
                std::process::exit(EXIT_SECOND_SIGNAL);
            }
            () = tokio::time::sleep(grace + SHUTDOWN_BOUND) => {
                Err(anyhow::anyhow!(
                    "the host did not stop within {:?} (the store did not answer); exiting anyway: leases left behind are reclaimed by the next host",
                    grace + SHUTDOWN_BOUND
                ))
            }
        }
    });
    runtime.shutdown_timeout(ABANDON_BLOCKED_CALLS);
    result
}

/// Applies the configuration's `[plugin.<name>]` tables as they are now. A
/// configuration with problems changes nothing (and says why).
fn reload(host: &Host, overrides: &Overrides) {
    match Config::load(overrides) {
        Ok(config) => {
            host.set_plugin_access(&config);
            tracing::info!(
                plugins = ?config.plugin.keys().collect::<Vec<_>>(),
                "SIGHUP: [plugin.<name>] tables reloaded; they apply from the next delivery"
            );
        }
        Err(e) => tracing::error!("SIGHUP: the configuration was not reloaded: {e}"),
    }
}

enum Signal {
    Stop(&'static str),
    Reload,
}

/// The signals `mailroom run` acts on, listened to from start-up on so none
/// is missed between two waits.
struct Signals {
    #[cfg(unix)]
    listeners: [tokio::signal::unix::Signal; 3],
}

impl Signals {
    fn new() -> anyhow::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
            let int = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
            let hup = signal(SignalKind::hangup()).context("cannot listen for SIGHUP")?;
            Ok(Self {
                listeners: [term, int, hup],
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    /// Waits for SIGINT or SIGTERM (a SIGHUP meanwhile is ignored).
    async fn stop(&mut self) -> anyhow::Result<&'static str> {
        loop {
            if let Signal::Stop(name) = self.next().await? {
                return Ok(name);
            }
        }
    }

    /// Waits for SIGINT (Ctrl-C), SIGTERM or SIGHUP.
    async fn next(&mut self) -> anyhow::Result<Signal> {
        #[cfg(unix)]
        {
            let [term, int, hup] = &mut self.listeners;
            tokio::select! {
                _ = term.recv() => Ok(Signal::Stop("SIGTERM")),
                _ = int.recv() => Ok(Signal::Stop("SIGINT")),
                _ = hup.recv() => Ok(Signal::Reload),
            }
        }
        #[cfg(not(unix))]
        {
            tokio::signal::ctrl_c()
                .await
                .context("cannot listen for Ctrl-C")?;
            Ok(Signal::Stop("Ctrl-C"))
        }
    }
}
