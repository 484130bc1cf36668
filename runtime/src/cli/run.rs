//! `mailroom run`: the long-lived host, until SIGINT or SIGTERM. SIGHUP
//! re-reads the configuration's `[plugin.<name>]` tables.

use anyhow::Context as _;

use crate::config::{Config, Overrides};
use crate::host::Host;

/// Runs the host with `config` until a signal asks it to stop, then shuts it
/// down gracefully (running deliveries finish or are released) and returns.
/// On SIGHUP, loads the configuration again (from the same file, environment
/// and `overrides`) and applies its `[plugin.<name>]` tables; other changes
/// need a restart.
pub(crate) fn execute(config: Config, overrides: &Overrides) -> anyhow::Result<()> {
    crate::logging::init(&config.log)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("mailroom")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let host = Host::start(&config)
            .await
            .context("cannot start the host")?;
        let mut signals = Signals::new()?;
        let signal = loop {
            match signals.next().await? {
                Signal::Stop(name) => break name,
                Signal::Reload => reload(&host, overrides),
            }
        };
        tracing::info!(
            "{signal} received: stopping (running deliveries get {:?} to finish)",
            config.dispatcher.shutdown_grace
        );
        host.shutdown().await;
        tracing::info!("stopped");
        Ok(())
    })
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
