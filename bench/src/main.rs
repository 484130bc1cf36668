//! `mailroom-bench`: every figure of Mailroom's benchmarks in one run, each
//! throughput with its ratio to the raw-SQLite ceiling measured in the same
//! run. See docs/BENCHMARKS.md for the figures and what they drove.
//!
//! ```sh
//! cargo run --release -p mailroom-bench            # the full run
//! cargo run --release -p mailroom-bench -- --quick # under a minute
//! ```

mod ceiling;
mod end_to_end;
mod footprint;
mod latency;
mod mailbox_only;
mod postgres;
mod report;
mod thread_cpu;
mod wasm_cost;
mod workload;

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Parser, Subcommand};
use mailroom::config::{LogConfig, LogFormat};
use mailroom::store::Location;

#[derive(Parser)]
#[command(
    about = "Mailroom's benchmarks, each figure with its ratio to the raw-SQLite ceiling of the same run"
)]
struct Args {
    /// A short run for development: fewer messages, shorter latency run, smaller queue.
    #[arg(long)]
    quick: bool,
    /// Messages per throughput run (default 100000; 10000 with --quick).
    #[arg(long)]
    messages: Option<usize>,
    /// Run only these sections after the ceiling (which every ratio needs),
    /// e.g. `--only mailbox,end-to-end` to profile one of them.
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Section>,
    /// Run each throughput measurement this many times and report the median
    /// (the ratios of a noisy machine settle with 3 or 5).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=99))]
    repeat: u32,
    /// The PostgreSQL server of the PostgreSQL section (a URL whose user may
    /// create databases); by default a private cluster with the server's
    /// default settings is started for the run.
    #[arg(long, value_name = "URL")]
    postgres: Option<String>,
    /// Log as `mailroom run` does, at this level (`info` is its default), to
    /// stderr: redirect that to a file. Without it the host logs nothing, and
    /// the figures leave out the log line each delivery writes at `info`.
    #[arg(long, value_name = "LEVEL")]
    log: Option<String>,
    /// The shape of those lines, as `log.format`.
    #[arg(long, value_enum, default_value_t = LogFormat::Human, requires = "log")]
    log_format: LogFormat,
    #[command(subcommand)]
    child: Option<Child>,
}

/// The sections after the ceiling.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Section {
    Mailbox,
    EndToEnd,
    Latency,
    Wasm,
    Footprint,
    Postgres,
}

#[derive(Subcommand)]
enum Child {
    /// Internal: measures a running host's footprint in a fresh process.
    #[command(hide = true)]
    FootprintChild {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        queued: usize,
        #[arg(long)]
        idle_ms: u64,
    },
}

/// Messages per claim and per settle transaction: the dispatcher's default batch.
const CLAIM_BATCH: usize = 256;
/// Outcomes per settle transaction in the end-to-end run on 2 cores
/// (`mailroom_commit_outcomes`: 100 to 135 on average): the settler waits
/// up to 1 ms for half a batch while deliveries run, less when a claim is
/// waiting to join the commit.
const HOST_SETTLE_GROUP: usize = CLAIM_BATCH / 2;
/// Messages per enqueue transaction.
const ENQUEUE_BATCH: usize = 1000;

/// The allocator the `mailroom` binary uses, so the host measured here is
/// the host as shipped (the ceiling runs on it too).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(level) = &args.log {
        mailroom::logging::init(&LogConfig {
            format: args.log_format,
            level: level.clone(),
        })?;
    }
    let runtime = host_runtime(&mailroom::config::Config::default().store_location())?;
    if let Some(Child::FootprintChild {
        dir,
        queued,
        idle_ms,
    }) = args.child
    {
        let measured = runtime.block_on(footprint::measure_host(
            &dir,
            queued,
            Duration::from_millis(idle_ms),
        ))?;
        println!("{}", serde_json::to_string(&measured)?);
        return Ok(());
    }
    let messages = args
        .messages
        .unwrap_or(if args.quick { 10_000 } else { 100_000 });
    let scratch = tempfile::tempdir()?;
    let run = Run {
        scratch: scratch.path().to_owned(),
        messages,
        quick: args.quick,
        repeat: args.repeat,
        runtime,
    };

    println!("# mailroom-bench: {messages} messages of ~100-byte JSON; durability: full (default)");
    match &args.log {
        Some(level) => println!(
            "log: `{level}`, {} lines to stderr, as `mailroom run` writes them",
            args.log_format.as_str()
        ),
        None => println!("log: none (the host's log lines are dropped unformatted)"),
    }
    if args.repeat > 1 {
        println!("throughputs: the median of {} runs each", args.repeat);
    }
    println!(
        "cores: {}",
        std::thread::available_parallelism().map_or(1, usize::from)
    );
    let ceiling = run.ceiling()?;
    let wants = |section| args.only.is_empty() || args.only.contains(&section);
    if wants(Section::Mailbox) {
        run.mailbox(&ceiling)?;
    }
    if wants(Section::EndToEnd) {
        run.end_to_end(&ceiling)?;
    }
    if wants(Section::Latency) {
        run.latency()?;
    }
    if wants(Section::Wasm) {
        run.wasm()?;
    }
    if wants(Section::Footprint) {
        run.footprint()?;
    }
    if wants(Section::Postgres) {
        run.postgres(args.postgres)?;
    }
    Ok(())
}

/// The ceiling's rates, which every throughput is compared with.
struct Ceiling {
    enqueue: f64,
    process: f64,
    total: f64,
    /// The CPU time of claim + handle + delete, where known.
    process_cpu: Option<Duration>,
}

/// An async runtime as `mailroom run` builds it for a host on `store`:
/// the host's figures are measured with the worker threads it runs with.
fn host_runtime(store: &Location) -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(mailroom::host::worker_threads(store))
        .enable_all()
        .build()?)
}

/// One benchmark run's settings and scratch space.
struct Run {
    scratch: PathBuf,
    messages: usize,
    quick: bool,
    /// Runs per throughput measurement; the median is reported.
    repeat: u32,
    runtime: tokio::runtime::Runtime,
}

impl Run {
    /// A fresh scratch directory for one measurement.
    fn dir(&self, name: &str) -> anyhow::Result<PathBuf> {
        let d = self.scratch.join(name);
        std::fs::create_dir_all(&d)?;
        Ok(d)
    }

    /// Runs `measure` (given a fresh scratch directory named after `name`)
    /// `repeat` times; returns the runs sorted by `key`, so the median is in
    /// the middle.
    fn repeated<T>(
        &self,
        name: &str,
        mut measure: impl FnMut(&Path) -> anyhow::Result<T>,
        key: impl Fn(&T) -> Duration,
    ) -> anyhow::Result<T> {
        let mut runs = Vec::new();
        for i in 0..self.repeat {
            runs.push(measure(&self.dir(&format!("{name}-{i}"))?)?);
        }
        runs.sort_by_key(|r| key(r));
        Ok(runs.swap_remove(runs.len() / 2))
    }

    /// The median phases of `repeat` runs of `measure`, phase by phase.
    fn repeated_phases(
        &self,
        name: &str,
        mut measure: impl FnMut(&Path) -> anyhow::Result<ceiling::Phases>,
    ) -> anyhow::Result<ceiling::Phases> {
        let mut runs = Vec::new();
        for i in 0..self.repeat {
            runs.push(measure(&self.dir(&format!("{name}-{i}"))?)?);
        }
        let median = |mut d: Vec<Duration>| {
            d.sort();
            d[d.len() / 2]
        };
        Ok(ceiling::Phases {
            enqueue: median(runs.iter().map(|r| r.enqueue).collect()),
            process: median(runs.iter().map(|r| r.process).collect()),
            process_cpu: runs
                .iter()
                .map(|r| r.process_cpu)
                .collect::<Option<Vec<_>>>()
                .map(median),
        })
    }

    /// Prints an enqueue / process / total triple against `ceiling`.
    fn phases(&self, process_label: &str, phases: ceiling::Phases, ceiling: &Ceiling) {
        let n = self.messages;
        report::throughput(
            &format!("enqueue (batches of {ENQUEUE_BATCH})"),
            n,
            phases.enqueue,
            ceiling.enqueue,
        );
        report::throughput(process_label, n, phases.process, ceiling.process);
        report::cpu_per_message(n, phases.process_cpu, ceiling.process_cpu);
        report::throughput("total", n, phases.enqueue + phases.process, ceiling.total);
    }

    fn ceiling(&self) -> anyhow::Result<Ceiling> {
        report::section("1. Ceiling: raw SQLite, native handler");
        let n = self.messages;
        let phases = self.repeated_phases("ceiling", |dir| {
            Ok(ceiling::run(dir, n, ENQUEUE_BATCH, CLAIM_BATCH)?)
        })?;
        let ceiling = Ceiling {
            enqueue: report::rate(n, phases.enqueue),
            process: report::rate(n, phases.process),
            total: report::rate(n, phases.enqueue + phases.process),
            process_cpu: phases.process_cpu,
        };
        self.phases(
            &format!("claim + handle + delete (batches of {CLAIM_BATCH})"),
            phases,
            &ceiling,
        );
        Ok(ceiling)
    }

    fn mailbox(&self, ceiling: &Ceiling) -> anyhow::Result<()> {
        report::section("2. Mailbox only: Mailroom's mailbox API, native handler");
        let shaped = |shape| {
            move |dir: &Path| -> anyhow::Result<ceiling::Phases> {
                Ok(mailbox_only::run(
                    dir,
                    self.messages,
                    ENQUEUE_BATCH,
                    CLAIM_BATCH,
                    shape,
                )?)
            }
        };
        let like_ceiling = mailbox_only::AckShape {
            group: CLAIM_BATCH,
            follow_up: false,
            claim_in_commit: false,
        };
        let phases = self.repeated_phases("mailbox", shaped(like_ceiling))?;
        self.phases(
            &format!("claim + handle + ack (batches of {CLAIM_BATCH})"),
            phases,
            ceiling,
        );
        // As the host claims on SQLite: in the transaction of the last acks.
        let claim_in_commit = mailbox_only::AckShape {
            claim_in_commit: true,
            ..like_ceiling
        };
        let phases = self.repeated_phases("mailbox-claim-in-commit", shaped(claim_in_commit))?;
        report::throughput(
            "  same, each claim in the last acks' transaction",
            self.messages,
            phases.process,
            ceiling.process,
        );
        report::cpu_per_message(self.messages, phases.process_cpu, ceiling.process_cpu);
        // The store's share of the end-to-end run, without wasm or dispatcher:
        // acks and claims as the host commits them there.
        let like_host = mailbox_only::AckShape {
            group: HOST_SETTLE_GROUP,
            follow_up: true,
            claim_in_commit: true,
        };
        let phases = self.repeated_phases("mailbox-host-shape", shaped(like_host))?;
        report::throughput(
            &format!("  same, a follow-up per ack, acks in {HOST_SETTLE_GROUP}s"),
            self.messages,
            phases.process,
            ceiling.process,
        );
        report::cpu_per_message(self.messages, phases.process_cpu, ceiling.process_cpu);
        Ok(())
    }

    fn end_to_end(&self, ceiling: &Ceiling) -> anyhow::Result<()> {
        report::section(
            "3. End to end, full queue to empty once the host has started: a wasm plugin that \
             emits nothing (fleet-a), and the order-validator (one follow-up per ack)",
        );
        let n = self.messages;
        let rt = &self.runtime;
        let mut busy = Vec::new();
        let mut per_message = Vec::new();
        let mut starts = Vec::new();
        for (label, plugin, reuse) in [
            ("no emit, fresh instance each", &workload::NO_EMIT, 1),
            ("no emit, instance reuse 64", &workload::NO_EMIT, 64),
            ("one follow-up, fresh instance each", &workload::ORDER_VALIDATOR, 1),
            ("one follow-up, instance reuse 64", &workload::ORDER_VALIDATOR, 64),
        ] {
            let drained = self.repeated(
                &format!("e2e-{reuse}-{}", plugin.file_name),
                |dir: &Path| rt.block_on(end_to_end::full_queue(dir, n, plugin, reuse)),
                |d| d.took,
            )?;
            report::throughput(label, drained.drained, drained.took, ceiling.process);
            busy.push(format!("{:.0}%", 100.0 * drained.store_busy));
            per_message.push(format!("{:.1}", drained.store_per_message.as_secs_f64() * 1e6));
            starts.push(format!("{:.0}", drained.start.as_secs_f64() * 1e3));
        }
        report::figure(
            "host start before each (store check, plugins)",
            format!("{} ms", starts.join(" / ")),
        );
        report::figure(
            "store connection busy (the lines above)",
            format!("{} of the run", busy.join(" / ")),
        );
        report::figure(
            "  per message",
            format!("{} µs", per_message.join(" / ")),
        );
        let produced = self.repeated(
            "e2e-producer",
            |dir| rt.block_on(end_to_end::with_producer(dir, n)),
            |took| *took,
        )?;
        report::throughput(
            "with a concurrent producer (enqueue + handle)",
            n,
            produced,
            ceiling.total,
        );
        Ok(())
    }

    fn latency(&self) -> anyhow::Result<()> {
        let duration = Duration::from_secs(if self.quick { 3 } else { 20 });
        report::section(&format!(
            "4. Latency: enqueue to ack at 5000 msg/s for {duration:?}"
        ));
        let l = self
            .runtime
            .block_on(latency::run(&self.dir("latency")?, 5000, duration))?;
        report::figure("messages", l.count);
        report::figure(
            "p50 / p99 / max",
            format!("{} ms / {} ms / {} ms", l.p50, l.p99, l.max),
        );
        report::figure(
            "p99 of the last quarter of the run",
            format!("{} ms", l.p99_last_quarter),
        );
        Ok(())
    }

    fn wasm(&self) -> anyhow::Result<()> {
        report::section("5. Wasm cost per delivery (order-validator, sequential)");
        let calls = self.messages.min(20_000);
        let fresh = self.runtime.block_on(wasm_cost::per_delivery(calls, 1))?;
        report::figure(
            "instantiate + call (fresh instance)",
            format!("{:.1} µs", fresh.as_secs_f64() * 1e6),
        );
        let reuse = self
            .runtime
            .block_on(wasm_cost::per_delivery(calls, 1000))?;
        report::figure(
            "call on a reused instance",
            format!("{:.1} µs", reuse.as_secs_f64() * 1e6),
        );
        Ok(())
    }

    fn postgres(&self, url: Option<String>) -> anyhow::Result<()> {
        let server = postgres::Server::new(url)?;
        let rt = &host_runtime(&Location::parse_url(&server.url)?)?;
        report::section("7. PostgreSQL: the same work on a local server");
        report::figure("server", rt.block_on(server.settings())?);
        let n = self.messages;
        let db = |name: &str| rt.block_on(server.database(name));
        let phases = self.repeated_phases("pg-ceiling", |_| {
            let url = db("ceiling")?;
            rt.block_on(postgres::ceiling(&url, n, ENQUEUE_BATCH, CLAIM_BATCH))
        })?;
        let ceiling = Ceiling {
            enqueue: report::rate(n, phases.enqueue),
            process: report::rate(n, phases.process),
            total: report::rate(n, phases.enqueue + phases.process),
            process_cpu: phases.process_cpu,
        };
        println!("ceiling: raw SQL, SKIP LOCKED claims, native handler, batched deletes");
        self.phases(
            &format!("claim + handle + delete (batches of {CLAIM_BATCH})"),
            phases,
            &ceiling,
        );
        let phases = self.repeated_phases("pg-mailbox", |_| {
            let url = db("mailbox")?;
            rt.block_on(postgres::mailbox(&url, n, ENQUEUE_BATCH, CLAIM_BATCH))
        })?;
        println!("mailbox only: Mailroom's store API, native handler");
        self.phases(
            &format!("claim + handle + ack (batches of {CLAIM_BATCH})"),
            phases,
            &ceiling,
        );
        let (no_emit, order_validator) = (&workload::NO_EMIT, &workload::ORDER_VALIDATOR);
        for (label, plugin, hosts, reuse) in [
            ("end to end, plugin that emits nothing, fresh instance", no_emit, 1, 1),
            ("end to end, plugin that emits nothing, instance reuse 64", no_emit, 1, 64),
            ("end to end, order-validator (one follow-up), fresh instance", order_validator, 1, 1),
            ("two hosts, plugin that emits nothing, fresh instance", no_emit, 2, 1),
        ] {
            let drained = self.repeated(
                &format!("pg-e2e-{hosts}-{reuse}-{}", plugin.file_name),
                |dir| {
                    let url = db("e2e")?;
                    rt.block_on(postgres::end_to_end(dir, &url, n, hosts, plugin, reuse))
                },
                |d| d.took,
            )?;
            report::throughput(label, drained.drained, drained.took, ceiling.process);
            report::figure(
                "  store connections busy",
                format!(
                    "{:.0}% of the run, {:.1} µs per message; host start {:.0} ms before it",
                    100.0 * drained.store_busy,
                    drained.store_per_message.as_secs_f64() * 1e6,
                    drained.start.as_secs_f64() * 1e3
                ),
            );
        }
        Ok(())
    }

    fn footprint(&self) -> anyhow::Result<()> {
        report::section("6. Footprint");
        let queued = if self.quick { 100_000 } else { 1_000_000 };
        let host_dir = self.dir("footprint")?;
        footprint::prepare(&host_dir, queued)?;
        let idle = Duration::from_secs(if self.quick { 2 } else { 5 });
        let f = footprint::in_child(&host_dir, queued, idle)?;
        report::figure(
            &format!("peak RSS, {} plugins, {} queued", f.plugins, f.queued),
            format!("{:.1} MiB", f.peak_rss_mib),
        );
        report::figure(
            "idle CPU",
            format!("{:.2}% of one core", f.idle_cpu_percent),
        );
        let (cold, cached) = footprint::restart_times(&self.dir("restart")?)?;
        let n = footprint::ROUTABLE.len();
        report::figure(
            &format!("restart with {n} plugins: cold compile"),
            format!("{cold:.2?}"),
        );
        report::figure(
            &format!("restart with {n} plugins: cached"),
            format!("{cached:.2?}"),
        );
        let first = self
            .runtime
            .block_on(footprint::time_to_first_handled(&self.dir("first")?))?;
        report::figure(
            "plugin file landing to first handled message",
            format!("{first:.2?}"),
        );
        Ok(())
    }
}
