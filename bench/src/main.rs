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
mod report;
mod wasm_cost;
mod workload;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

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
    #[command(subcommand)]
    child: Option<Child>,
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
const CLAIM_BATCH: usize = 64;
/// Messages per enqueue transaction.
const ENQUEUE_BATCH: usize = 1000;

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
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
    let (latency_for, queued) = if args.quick {
        (Duration::from_secs(3), 100_000)
    } else {
        (Duration::from_secs(20), 1_000_000)
    };
    let scratch = tempfile::tempdir()?;
    let dir = |name: &str| -> anyhow::Result<PathBuf> {
        let d = scratch.path().join(name);
        std::fs::create_dir_all(&d)?;
        Ok(d)
    };

    println!("# mailroom-bench: {messages} messages of ~100-byte JSON; durability: full (default)");
    println!(
        "cores: {}",
        std::thread::available_parallelism().map_or(1, usize::from)
    );

    report::section("1. Ceiling: raw SQLite, native handler");
    let ceiling = ceiling::run(&dir("ceiling")?, messages, ENQUEUE_BATCH, CLAIM_BATCH)?;
    let ceiling_enqueue = report::rate(messages, ceiling.enqueue);
    let ceiling_process = report::rate(messages, ceiling.process);
    let ceiling_total = report::rate(messages, ceiling.enqueue + ceiling.process);
    report::throughput(
        "enqueue (batches of 1000)",
        messages,
        ceiling.enqueue,
        ceiling_enqueue,
    );
    report::throughput(
        "claim + handle + delete (batches of 64)",
        messages,
        ceiling.process,
        ceiling_process,
    );
    report::throughput(
        "total",
        messages,
        ceiling.enqueue + ceiling.process,
        ceiling_total,
    );

    report::section("2. Mailbox only: Mailroom's mailbox API, native handler");
    let mailbox = mailbox_only::run(&dir("mailbox")?, messages, ENQUEUE_BATCH, CLAIM_BATCH)?;
    report::throughput(
        "enqueue (batches of 1000)",
        messages,
        mailbox.enqueue,
        ceiling_enqueue,
    );
    report::throughput(
        "claim + handle + ack (batches of 64)",
        messages,
        mailbox.process,
        ceiling_process,
    );
    report::throughput(
        "total",
        messages,
        mailbox.enqueue + mailbox.process,
        ceiling_total,
    );

    report::section("3. End to end: the host with the order-validator plugin (wasm)");
    let full = runtime.block_on(end_to_end::full_queue(&dir("e2e-full")?, messages, 1))?;
    report::throughput(
        "full queue to empty, fresh instance each",
        messages,
        full,
        ceiling_process,
    );
    let reused = runtime.block_on(end_to_end::full_queue(&dir("e2e-reuse")?, messages, 64))?;
    report::throughput(
        "full queue to empty, instance reuse 64",
        messages,
        reused,
        ceiling_process,
    );
    let produced = runtime.block_on(end_to_end::with_producer(&dir("e2e-producer")?, messages))?;
    report::throughput(
        "with a concurrent producer (enqueue + handle)",
        messages,
        produced,
        ceiling_total,
    );

    report::section(&format!(
        "4. Latency: enqueue to ack at 5000 msg/s for {latency_for:?}"
    ));
    let l = runtime.block_on(latency::run(&dir("latency")?, 5000, latency_for))?;
    report::figure("messages", l.count);
    report::figure(
        "p50 / p99 / max",
        format!("{} ms / {} ms / {} ms", l.p50, l.p99, l.max),
    );

    report::section("5. Wasm cost per delivery (order-validator, sequential)");
    let fresh = runtime.block_on(wasm_cost::per_delivery(messages.min(20_000), 1))?;
    report::figure(
        "instantiate + call (fresh instance)",
        format!("{:.1} µs", fresh.as_secs_f64() * 1e6),
    );
    let reuse = runtime.block_on(wasm_cost::per_delivery(messages.min(20_000), 1000))?;
    report::figure(
        "call on a reused instance",
        format!("{:.1} µs", reuse.as_secs_f64() * 1e6),
    );

    report::section("6. Footprint");
    let host_dir = dir("footprint")?;
    footprint::prepare(&host_dir, queued)?;
    let f = footprint::in_child(
        &host_dir,
        queued,
        Duration::from_secs(if args.quick { 2 } else { 5 }),
    )?;
    report::figure(
        &format!("peak RSS, {} plugins, {} queued", f.plugins, f.queued),
        format!("{:.1} MiB", f.peak_rss_mib),
    );
    report::figure(
        "idle CPU",
        format!("{:.2}% of one core", f.idle_cpu_percent),
    );
    let (cold, cached) = footprint::restart_times(&dir("restart")?)?;
    let n = footprint::ROUTABLE.len();
    report::figure(
        &format!("restart with {n} plugins: cold compile"),
        format!("{cold:.2?}"),
    );
    report::figure(
        &format!("restart with {n} plugins: cached"),
        format!("{cached:.2?}"),
    );
    let first = runtime.block_on(footprint::time_to_first_handled(&dir("first")?))?;
    report::figure(
        "plugin file landing to first handled message",
        format!("{first:.2?}"),
    );
    Ok(())
}
