//! Footprint: peak memory and idle CPU of a running host with a large queue,
//! restart time cold and cached, and the time from a plugin file landing to
//! its first handled message. Memory and CPU are measured in a child process
//! (this binary run again), so the other benchmarks do not count.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mailroom::config::Config;
use mailroom::host::Host;
use mailroom::store::sqlite::Mailbox;
use mailroom::store::{Durability, OpenOptions};
use mailroom::message::NewMessage;
use mailroom::plugin::{HostConfig, PluginHost};
use serde::{Deserialize, Serialize};

use crate::workload::payload;

/// Every bundled and test plugin that can serve side by side (no two share
/// an event type).
pub const ROUTABLE: &[(&str, &str)] = &[
    (
        mailroom_test_artifacts::ORDER_VALIDATOR,
        "order-validator.wasm",
    ),
    (mailroom_test_artifacts::NOTIFIER, "notifier.wasm"),
    (mailroom_test_artifacts::FLAKY, "flaky.wasm"),
    (mailroom_test_artifacts::BEHAVIOUR, "behaviour.wasm"),
    (mailroom_test_artifacts::VERSIONED_V1, "versioned.wasm"),
    (mailroom_test_artifacts::FLEET_A, "fleet-a.wasm"),
    (mailroom_test_artifacts::FLEET_B, "fleet-b.wasm"),
    (mailroom_test_artifacts::FLEET_C, "fleet-c.wasm"),
    (mailroom_test_artifacts::FLEET_D, "fleet-d.wasm"),
    (mailroom_test_artifacts::FLEET_E, "fleet-e.wasm"),
];

/// What the child measured.
#[derive(Debug, Serialize, Deserialize)]
pub struct HostFootprint {
    /// Plugins loaded.
    pub plugins: usize,
    /// Messages queued (waiting for a handler none of the plugins provides).
    pub queued: usize,
    /// Peak resident memory of the process, in MiB.
    pub peak_rss_mib: f64,
    /// CPU used while idle, as a share of one core.
    pub idle_cpu_percent: f64,
}

fn config(dir: &Path) -> anyhow::Result<Config> {
    let mut config = Config::default();
    config.store.path = dir.join("mailroom.db");
    config.plugins.dir = dir.join("plugins");
    config.log.level = "warn".into();
    std::fs::create_dir_all(&config.plugins.dir)?;
    Ok(config)
}

/// Fills a store in `dir` with `queued` messages no plugin handles and deploys every routable plugin.
pub fn prepare(dir: &Path, queued: usize) -> anyhow::Result<()> {
    let config = config(dir)?;
    for (component, name) in ROUTABLE {
        mailroom_test_artifacts::deploy(component, &config.plugins.dir, name)?;
    }
    let options = OpenOptions {
        durability: Durability::Fast,
        ..OpenOptions::default()
    };
    let mut mb = Mailbox::open_with(&config.store.path, &options)?;
    let mut n = 0;
    while n < queued {
        let batch: Vec<NewMessage> = (n..(n + 10_000).min(queued))
            .map(|i| NewMessage::new("unhandled", payload(i)))
            .collect();
        n += batch.len();
        mb.enqueue_batch(batch)?;
    }
    Ok(())
}

/// In the child: runs the host on `dir`, idles, and reports.
pub async fn measure_host(
    dir: &Path,
    queued: usize,
    idle: Duration,
) -> anyhow::Result<HostFootprint> {
    let config = config(dir)?;
    let host = Host::start(&config).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let cpu_before = cpu_time()?;
    let started = Instant::now();
    tokio::time::sleep(idle).await;
    let idle_cpu = (cpu_time()? - cpu_before).as_secs_f64() / started.elapsed().as_secs_f64();
    let plugins = host.routes().plugins().len();
    host.shutdown().await;
    Ok(HostFootprint {
        plugins,
        queued,
        peak_rss_mib: peak_rss_mib()?,
        idle_cpu_percent: 100.0 * idle_cpu,
    })
}

/// Runs this binary again as the footprint child and parses its report.
pub fn in_child(dir: &Path, queued: usize, idle: Duration) -> anyhow::Result<HostFootprint> {
    let out = std::process::Command::new(std::env::current_exe()?)
        .args(["footprint-child", "--dir"])
        .arg(dir)
        .args([
            "--queued",
            &queued.to_string(),
            "--idle-ms",
            &idle.as_millis().to_string(),
        ])
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "footprint child failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// Loading every routable plugin into a fresh plugin host: with an empty
/// compile cache, then again (a restart) with the cache the first run left.
pub fn restart_times(dir: &Path) -> anyhow::Result<(Duration, Duration)> {
    let cache: PathBuf = dir.join("cache");
    let load_all = || -> anyhow::Result<Duration> {
        let started = Instant::now();
        let host = PluginHost::new(HostConfig {
            limits: Default::default(),
            cache_dir: Some(cache.clone()),
            ..HostConfig::default()
        })?;
        for (component, _) in ROUTABLE {
            host.load(Path::new(component))?;
        }
        Ok(started.elapsed())
    };
    let cold = load_all()?;
    let cached = load_all()?;
    Ok((cold, cached))
}

/// From a plugin file landing in a running host's folder to its first
/// handled message (the message was waiting for it).
pub async fn time_to_first_handled(dir: &Path) -> anyhow::Result<Duration> {
    let config = config(dir)?;
    let host = Host::start(&config).await?;
    host.enqueue(vec![NewMessage::new(
        "flaky",
        br#"{"succeed_on_attempt":1}"#.to_vec(),
    )])
    .await?;
    let started = Instant::now();
    mailroom_test_artifacts::deploy(
        mailroom_test_artifacts::FLAKY,
        &config.plugins.dir,
        "flaky.wasm",
    )?;
    while host.metrics().acked_total("flaky") == 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let took = started.elapsed();
    host.shutdown().await;
    Ok(took)
}

fn proc_status_kib(field: &str) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .ok_or_else(|| anyhow::anyhow!("no {field} in /proc/self/status"))?;
    Ok(line.split_whitespace().nth(1).unwrap_or("0").parse()?)
}

fn peak_rss_mib() -> anyhow::Result<f64> {
    Ok(proc_status_kib("VmHWM:")? / 1024.0)
}

/// CPU time of this process so far: the sum over its threads of the time
/// the scheduler ran them (`/proc/self/task/*/schedstat`, in nanoseconds;
/// `utime`/`stime` count whole 10 ms ticks, too coarse for an idle host).
fn cpu_time() -> anyhow::Result<Duration> {
    let mut total = 0u64;
    for task in std::fs::read_dir("/proc/self/task")? {
        // A thread may end between listing and reading: skip it.
        let Ok(stat) = std::fs::read_to_string(task?.path().join("schedstat")) else {
            continue;
        };
        total += stat
            .split_whitespace()
            .next()
            .unwrap_or("0")
            .parse::<u64>()?;
    }
    Ok(Duration::from_nanos(total))
}
