//! Enqueue-to-ack latency at a fixed offered load. Each ack commits the
//! plugin's follow-up in the same transaction, stamped with the time of the
//! ack; the follow-up inherits the input's id as its correlation id, and a
//! UUID v7 id carries its creation time. So the latency of every message is
//! read back from the store afterwards, with no instrumentation in the host.

use std::time::{Duration, Instant};

use mailroom::host::Host;
use mailroom::message::NewMessage;

use crate::workload::{EVENT_TYPE, payload};

/// Latency percentiles, in milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct Latency {
    /// Messages measured.
    pub count: usize,
    /// Median.
    pub p50: i64,
    /// 99th percentile.
    pub p99: i64,
    /// Worst.
    pub max: i64,
    /// 99th percentile of the messages enqueued in the last quarter of the
    /// run: above the overall p99 when a backlog builds up.
    pub p99_last_quarter: i64,
}

/// Offers `rate` messages per second for `duration`, in ticks of 10 ms.
pub async fn run(
    dir: &std::path::Path,
    rate: usize,
    duration: Duration,
) -> anyhow::Result<Latency> {
    let config = crate::end_to_end::config(dir, &crate::workload::ORDER_VALIDATOR, 1)?;
    let host = Host::start(&config).await?;
    let per_tick = (rate / 100).max(1);
    let ticks = (duration.as_millis() / 10) as usize;
    let mut interval = tokio::time::interval(Duration::from_millis(10));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let mut n = 0;
    for _ in 0..ticks {
        interval.tick().await;
        let batch = (n..n + per_tick)
            .map(|i| NewMessage::new(EVENT_TYPE, payload(i)))
            .collect();
        n += per_tick;
        host.enqueue(batch).await?;
    }
    let offered = started.elapsed();
    crate::end_to_end::until_acked(&host, crate::workload::EVENT_TYPE, n).await;
    let watch = rusqlite::Connection::open(&config.store.path)?;
    host.shutdown().await;
    if offered > duration + duration / 10 {
        eprintln!("note: the producer fell behind: {n} messages offered in {offered:.2?}");
    }

    // (enqueued at, latency), both in ms.
    let mut samples: Vec<(i64, i64)> = {
        let mut stmt = watch.prepare(
            "SELECT correlation_id, created_at FROM messages WHERE event_type = 'order.accepted'",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (input, acked_at) = row?;
            let id = uuid::Uuid::parse_str(&input)?;
            let (secs, nanos) = id
                .get_timestamp()
                .ok_or_else(|| anyhow::anyhow!("{input} is not a UUID v7"))?
                .to_unix();
            let enqueued_at = i64::try_from(secs)? * 1000 + i64::from(nanos / 1_000_000);
            out.push((enqueued_at, acked_at - enqueued_at));
        }
        out
    };
    anyhow::ensure!(!samples.is_empty(), "no follow-ups found");
    samples.sort_unstable();
    // A tail that grows over the run shows in its last quarter.
    let last_quarter = percentiles(
        samples[samples.len() * 3 / 4..]
            .iter()
            .map(|s| s.1)
            .collect(),
    );
    let all = percentiles(samples.iter().map(|s| s.1).collect());
    Ok(Latency {
        count: samples.len(),
        p99_last_quarter: last_quarter.p99,
        ..all
    })
}

/// p50, p99 and max of `latencies`, in a [`Latency`] without the trend.
fn percentiles(mut latencies: Vec<i64>) -> Latency {
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    Latency {
        count: latencies.len(),
        p50: at(0.50),
        p99: at(0.99),
        max: *latencies.last().unwrap_or(&0),
        p99_last_quarter: 0,
    }
}
