//! The cost of one delivery as the host makes it: instantiate (unless an
//! instance is reused) and call `handle`, sequentially on one plugin.

use std::time::{Duration, Instant};

use mailroom::message::MessageId;
use mailroom::plugin::{Delivery, HostConfig, Outcome, PluginHost, SandboxLimits};

use crate::workload::{EVENT_TYPE, payload};

/// Mean time per delivery over `deliveries`, with `instance_reuse` deliveries per instance.
pub async fn per_delivery(deliveries: usize, instance_reuse: u32) -> anyhow::Result<Duration> {
    let limits = SandboxLimits {
        instance_reuse,
        ..SandboxLimits::default()
    };
    let host = PluginHost::new(HostConfig {
        limits,
        cache_dir: None,
        ..HostConfig::default()
    })?;
    let plugin = tokio::task::spawn_blocking(move || {
        host.load(std::path::Path::new(
            mailroom_test_artifacts::ORDER_VALIDATOR,
        ))
    })
    .await??;
    let delivery = |i: usize| Delivery {
        id: MessageId::new(),
        event_type: EVENT_TYPE.into(),
        key: None,
        source: None,
        correlation_id: "c".into(),
        payload: payload(i),
        attempt: 1,
        max_attempts: 10,
        created_at_ms: 0,
        depth: 0,
    };
    // Warm up: first instantiations fault in the pool's memory.
    for i in 0..100 {
        plugin.handle(delivery(i)).await;
    }
    let started = Instant::now();
    for i in 0..deliveries {
        match plugin.handle(delivery(i)).await {
            Outcome::Success { .. } => {}
            other => anyhow::bail!("delivery {i} failed: {other:?}"),
        }
    }
    Ok(started.elapsed() / u32::try_from(deliveries)?)
}
