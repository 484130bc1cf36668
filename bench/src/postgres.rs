//! The PostgreSQL section: the same measurements on a local server, each
//! against a raw-SQL ceiling on that server in the same run (a hand-written
//! `FOR UPDATE SKIP LOCKED` claim, the native handler, a batched delete).
//!
//! The server is the one `--postgres URL` names, or a private cluster with
//! the server's default settings (fsync on) that this run starts and stops.
//! Each measurement gets a database of its own.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use mailroom::config::Config;
use mailroom::host::Host;
use mailroom::message::NewMessage;
use mailroom::store::{Durability, Location, OpenOptions, Outcome, Settlement, Store};
use tokio_postgres::NoTls;

use crate::ceiling::Phases;
use crate::end_to_end::Drained;
use crate::workload::Plugin;
use crate::workload::{EVENT_TYPE, handle_natively, payload};

/// A server for the run: its URL, and how to stop it if this run started it.
pub struct Server {
    pub url: String,
    stop: Option<String>,
}

impl Server {
    /// `url`, or a private cluster with default settings.
    pub fn new(url: Option<String>) -> anyhow::Result<Self> {
        if let Some(url) = url {
            return Ok(Self { url, stop: None });
        }
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/lib/postgres.sh");
        let out = Command::new("bash")
            .args([script, "start"])
            // Benchmarks measure a durable server, as operators run it.
            .env("MAILROOM_TEST_POSTGRES_FSYNC", "on")
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "cannot start PostgreSQL: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{name}=")))
                .map(str::to_owned)
        };
        Ok(Self {
            url: field("url").ok_or_else(|| anyhow::anyhow!("no url from {script}"))?,
            stop: field("stop"),
        })
    }

    /// A new, empty database; its URL.
    pub async fn database(&self, name: &str) -> anyhow::Result<String> {
        let (client, connection) = tokio_postgres::connect(&self.url, NoTls).await?;
        tokio::spawn(connection);
        let db = format!("bench_{name}_{}", uuid::Uuid::now_v7().simple());
        client.batch_execute(&format!("CREATE DATABASE {db}")).await?;
        let (base, _) = self
            .url
            .rsplit_once('/')
            .ok_or_else(|| anyhow::anyhow!("no database in {}", self.url))?;
        Ok(format!("{base}/{db}"))
    }

    /// The settings that matter for these figures.
    pub async fn settings(&self) -> anyhow::Result<String> {
        let (client, connection) = tokio_postgres::connect(&self.url, NoTls).await?;
        tokio::spawn(connection);
        let mut shown = Vec::new();
        for name in [
            "server_version",
            "fsync",
            "synchronous_commit",
            "shared_buffers",
            "wal_level",
        ] {
            let row = client.query_one(&format!("SHOW {name}"), &[]).await?;
            shown.push(format!("{name}={}", row.get::<_, String>(0)));
        }
        Ok(shown.join(", "))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = &self.stop {
            let _ = Command::new("bash").args(["-c", stop]).output();
        }
    }
}

async fn connect(url: &str, synchronous_commit: &str) -> anyhow::Result<tokio_postgres::Client> {
    let mut config: tokio_postgres::Config = url.parse()?;
    config.options(format!("-c synchronous_commit={synchronous_commit}"));
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

/// The ceiling: batched inserts with synchronous commits (as ingest), then
/// claims under a lease with `SKIP LOCKED`, the native handler, and batched
/// deletes, committing without waiting for the disk (as the dispatcher).
pub async fn ceiling(
    url: &str,
    messages: usize,
    enqueue_batch: usize,
    claim_batch: usize,
) -> anyhow::Result<Phases> {
    let ingest = connect(url, "on").await?;
    let worker = connect(url, "off").await?;
    ingest
        .batch_execute(
            "CREATE TABLE queue (
                 seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, id uuid NOT NULL UNIQUE,
                 event_type text NOT NULL, payload bytea NOT NULL, state smallint NOT NULL,
                 available_at bigint NOT NULL, lease_token text, lease_expires_at bigint);
             CREATE INDEX queue_claim ON queue (seq) WHERE state = 0;",
        )
        .await?;
    let started = Instant::now();
    let mut n = 0;
    while n < messages {
        let count = enqueue_batch.min(messages - n);
        let ids: Vec<uuid::Uuid> = (0..count).map(|_| uuid::Uuid::now_v7()).collect();
        let payloads: Vec<Vec<u8>> = (n..n + count).map(payload).collect();
        ingest
            .execute(
                "INSERT INTO queue (id, event_type, payload, state, available_at)
                 SELECT id, $3, p, 0, 0 FROM unnest($1::uuid[], $2::bytea[]) AS t(id, p)",
                &[&ids, &payloads, &EVENT_TYPE],
            )
            .await?;
        n += count;
    }
    let enqueue = started.elapsed();

    let claim = worker
        .prepare(
            "UPDATE queue SET state = 1, lease_token = $1, lease_expires_at = $2
              WHERE seq IN (SELECT seq FROM queue WHERE state = 0 AND available_at <= $2
                             ORDER BY seq LIMIT $3 FOR UPDATE SKIP LOCKED)
             RETURNING seq, payload",
        )
        .await?;
    let delete = worker
        .prepare("DELETE FROM queue WHERE seq = ANY($1) AND state = 1")
        .await?;
    let limit = i64::try_from(claim_batch)?;
    let started = Instant::now();
    loop {
        let token = uuid::Uuid::now_v7().to_string();
        let rows = worker.query(&claim, &[&token, &1i64, &limit]).await?;
        if rows.is_empty() {
            break;
        }
        let handled: Vec<i64> = rows
            .iter()
            .map(|row| {
                std::hint::black_box(handle_natively(row.get::<_, &[u8]>(1)));
                row.get(0)
            })
            .collect();
        worker.execute(&delete, &[&handled]).await?;
    }
    Ok(Phases {
        enqueue,
        process: started.elapsed(),
        // The work is the server's.
        process_cpu: None,
    })
}

async fn fill(store: &Store, messages: usize, enqueue_batch: usize) -> anyhow::Result<()> {
    for chunk in (0..messages).collect::<Vec<_>>().chunks(enqueue_batch) {
        store
            .enqueue_batch(
                chunk
                    .iter()
                    .map(|i| NewMessage::new(EVENT_TYPE, payload(*i)))
                    .collect(),
            )
            .await?;
    }
    Ok(())
}

/// Mailroom's store API on PostgreSQL with the native handler: claims of
/// `claim_batch`, acks settled per claim.
pub async fn mailbox(
    url: &str,
    messages: usize,
    enqueue_batch: usize,
    claim_batch: usize,
) -> anyhow::Result<Phases> {
    let location = Location::parse_url(url)?;
    let ingest = Store::open(&location, &OpenOptions::default()).await?;
    let worker = Store::open(
        &location,
        &OpenOptions {
            durability: Durability::Fast,
            ..OpenOptions::default()
        },
    )
    .await?;
    let started = Instant::now();
    fill(&ingest, messages, enqueue_batch).await?;
    let enqueue = started.elapsed();
    let started = Instant::now();
    let types = [EVENT_TYPE.to_owned()];
    loop {
        let claimed = worker
            .claim(claim_batch, Duration::from_secs(60), &types)
            .await?;
        if claimed.is_empty() {
            break;
        }
        let batch: Vec<Outcome> = claimed
            .into_iter()
            .map(|c| {
                std::hint::black_box(handle_natively(&c.payload));
                Outcome::new(c, Settlement::Ack { follow_ups: vec![] })
            })
            .collect();
        let (_, results) = worker.settle(batch).await;
        for result in results? {
            result?;
        }
    }
    Ok(Phases {
        enqueue,
        process: started.elapsed(),
        // The work is the server's.
        process_cpu: None,
    })
}

/// `hosts` hosts (each with its own pools, as separate processes would
/// have) drain a full queue of `messages` for `plugin`, each instance
/// serving `instance_reuse` deliveries.
pub async fn end_to_end(
    dir: &Path,
    url: &str,
    messages: usize,
    hosts: usize,
    plugin: &Plugin,
    instance_reuse: u32,
) -> anyhow::Result<Drained> {
    let (component, file_name, event_type, input) =
        (plugin.component, plugin.file_name, plugin.event_type, plugin.input);
    let location = Location::parse_url(url)?;
    {
        let store = Store::open(&location, &OpenOptions::default()).await?;
        for chunk in (0..messages).collect::<Vec<_>>().chunks(1000) {
            store
                .enqueue_batch(
                    chunk
                        .iter()
                        .map(|i| NewMessage::new(event_type, input(*i)))
                        .collect(),
                )
                .await?;
        }
    }
    let mut config = Config::default();
    config.store.url = Some(url.to_owned());
    config.plugins.dir = dir.join("plugins");
    config.plugins.cache_dir = Some(dir.join("cache"));
    config.plugins.instance_reuse = instance_reuse;
    config.log.level = "warn".into();
    std::fs::create_dir_all(&config.plugins.dir)?;
    mailroom_test_artifacts::deploy(component, &config.plugins.dir, file_name)?;
    let started = Instant::now();
    let mut running = Vec::new();
    for _ in 0..hosts {
        running.push(Host::start(&config).await?);
    }
    let start = started.elapsed();
    let acked = |running: &[Host]| -> u64 {
        running
            .iter()
            .map(|h| h.metrics().acked_total(event_type))
            .sum()
    };
    let acked_in_start = acked(&running);
    let busy_before: Duration = running.iter().map(|h| h.store().busy()).sum();
    let draining = Instant::now();
    let target = u64::try_from(messages).unwrap_or(u64::MAX);
    while acked(&running) < target {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let took = draining.elapsed();
    let busy = running.iter().map(|h| h.store().busy()).sum::<Duration>() - busy_before;
    let drained = messages.saturating_sub(usize::try_from(acked_in_start).unwrap_or(usize::MAX));
    for host in running {
        host.shutdown().await;
    }
    let hosts = u32::try_from(hosts).unwrap_or(u32::MAX);
    Ok(Drained::new(took, drained, start, busy, hosts))
}
