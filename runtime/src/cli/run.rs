//! `mailroom run`: the long-lived host, until SIGINT or SIGTERM.

use anyhow::Context as _;

use crate::config::Config;
use crate::host::Host;

/// Runs the host with `config` until a signal asks it to stop, then shuts it
/// down gracefully (running deliveries finish or are released) and returns.
pub(crate) fn execute(config: Config) -> anyhow::Result<()> {
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
        let signal = stop_signal().await?;
        tracing::info!(
            "{signal} received: stopping (running deliveries get {:?} to finish)",
            config.dispatcher.shutdown_grace
        );
        host.shutdown().await;
        tracing::info!("stopped");
        Ok(())
    })
}

/// Waits for SIGINT (Ctrl-C) or SIGTERM; returns which.
async fn stop_signal() -> anyhow::Result<&'static str> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
        let mut int = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
        tokio::select! {
            _ = term.recv() => Ok("SIGTERM"),
            _ = int.recv() => Ok("SIGINT"),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c()
            .await
            .context("cannot listen for Ctrl-C")?;
        Ok("Ctrl-C")
    }
}
