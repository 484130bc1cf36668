//! The whole host: `Host::start` with a real plugin (one that emits nothing,
//! the peers' shape, or the order-validator, each ack committing the
//! `order.accepted` follow-up it emits), a fresh wasm instance per delivery
//! or instances reused. Measured from a full queue to empty once the host
//! has started (its start-up reported apart), and with a producer
//! enqueueing while the host works.

use std::path::Path;
use std::time::{Duration, Instant};

use mailroom::config::Config;
use mailroom::host::Host;
use mailroom::store::sqlite::Mailbox;
use mailroom::message::NewMessage;

use crate::workload::{EVENT_TYPE, ORDER_VALIDATOR, Plugin, payload};

/// A host configuration in `dir` with `plugin` deployed.
pub fn config(dir: &Path, plugin: &Plugin, instance_reuse: u32) -> anyhow::Result<Config> {
    let mut config = Config::default();
    config.store.path = dir.join("mailroom.db");
    config.plugins.dir = dir.join("plugins");
    config.plugins.instance_reuse = instance_reuse;
    config.log.level = "warn".into();
    std::fs::create_dir_all(&config.plugins.dir)?;
    mailroom_test_artifacts::deploy(plugin.component, &config.plugins.dir, plugin.file_name)?;
    Ok(config)
}

/// Until the host has acked `messages` messages of `event_type`. Reads the
/// host's own counter: counting rows in the store would compete with the
/// host for the CPU and skew the figure.
pub async fn until_acked(host: &Host, event_type: &str, messages: usize) {
    let target = u64::try_from(messages).unwrap_or(u64::MAX);
    while host.metrics().acked_total(event_type) < target {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// How a full queue drained.
#[derive(Debug, Clone, Copy)]
pub struct Drained {
    /// From the moment `Host::start` returned to the last ack: processing,
    /// as the ceiling's claim + handle + delete is timed.
    pub took: Duration,
    /// How many messages were acked in that time (those acked while the
    /// host was still starting are left out).
    pub drained: usize,
    /// What `Host::start` took before it: the store's start-up check and
    /// compiling and loading the plugin.
    pub start: Duration,
    /// The share of that time the dispatcher's store connection was in use
    /// (claims and commits): near 1, the store is the bottleneck.
    pub store_busy: f64,
    /// The dispatcher's store connection time per message: steadier than
    /// throughput on a shared machine.
    pub store_per_message: Duration,
}

impl Drained {
    /// `drained` messages in `took` after a start of `start`, `hosts`
    /// store connections busy `busy` in all meanwhile.
    pub fn new(took: Duration, drained: usize, start: Duration, busy: Duration, hosts: u32) -> Self {
        Self {
            took,
            drained,
            start,
            store_busy: busy.as_secs_f64() / (took.as_secs_f64() * f64::from(hosts)).max(1e-9),
            store_per_message: busy / u32::try_from(drained.max(1)).unwrap_or(u32::MAX),
        }
    }
}

/// From a full queue of `messages` for `plugin` to empty, timed from the
/// moment the host has started.
pub async fn full_queue(
    dir: &Path,
    messages: usize,
    plugin: &Plugin,
    instance_reuse: u32,
) -> anyhow::Result<Drained> {
    let config = config(dir, plugin, instance_reuse)?;
    {
        let mut mb = Mailbox::open(&config.store.path)?;
        for chunk in (0..messages).collect::<Vec<_>>().chunks(1000) {
            mb.enqueue_batch(
                chunk
                    .iter()
                    .map(|i| NewMessage::new(plugin.event_type, (plugin.input)(*i)))
                    .collect(),
            )?;
        }
    }
    let started = Instant::now();
    let host = Host::start(&config).await?;
    let start = started.elapsed();
    let acked_in_start = host.metrics().acked_total(plugin.event_type);
    let busy_before = host.store().busy();
    let draining = Instant::now();
    until_acked(&host, plugin.event_type, messages).await;
    let took = draining.elapsed();
    let busy = host.store().busy() - busy_before;
    let drained = messages.saturating_sub(usize::try_from(acked_in_start).unwrap_or(usize::MAX));
    host.shutdown().await;
    Ok(Drained::new(took, drained, start, busy, 1))
}

/// A producer enqueues `messages` in batches of 100 while the host works;
/// until the last one is handled.
pub async fn with_producer(dir: &Path, messages: usize) -> anyhow::Result<Duration> {
    let config = config(dir, &ORDER_VALIDATOR, 1)?;
    let host = Host::start(&config).await?;
    let started = Instant::now();
    for chunk in (0..messages).collect::<Vec<_>>().chunks(100) {
        host.enqueue(
            chunk
                .iter()
                .map(|i| NewMessage::new(EVENT_TYPE, payload(*i)))
                .collect(),
        )
        .await?;
    }
    until_acked(&host, EVENT_TYPE, messages).await;
    let took = started.elapsed();
    host.shutdown().await;
    Ok(took)
}
