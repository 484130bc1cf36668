//! The sandbox policy, in one place. Every knob that bounds what a plugin can
//! do or cost is here, with the reason for its value: the per-delivery limits
//! an operator can set ([`SandboxLimits`]), the fixed bounds behind them, the
//! engine and pooling-allocator settings, the WASI context (nothing granted)
//! and the per-store resource limiter.

use std::time::Duration;

use wasmtime::{
    Config, Enabled, InstanceAllocationStrategy, PoolingAllocationConfig, ResourceLimiter,
};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder};

use crate::message::DEFAULT_MAX_PAYLOAD_BYTES;

/// Limits applied to every call into a plugin (each delivery, and the `info`
/// call at load time), and to every plugin file the host loads (its size,
/// its compilation, its declarations).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxLimits {
    /// Wall-clock time one delivery may take, including instantiation and time
    /// spent in host calls such as a WASI sleep. Past it the delivery fails
    /// as retryable ("timed out after …"). Default 10 s.
    pub timeout: Duration,
    /// The most bytes one linear memory of a plugin instance may grow to.
    /// Growing past it fails the allocation in the guest; a guest that then
    /// aborts fails as retryable ("memory limit of … exceeded"). Default 64 MiB.
    pub memory_bytes: u64,
    /// Guest stdout and stderr bytes forwarded to the host log per delivery;
    /// the rest is dropped (and the truncation logged once), so a guest
    /// printing without end costs time, never host memory. Default 64 KiB.
    pub max_output_bytes: usize,
    /// `logging.log` lines forwarded per delivery; later lines are dropped
    /// (and that is logged once). Default 200.
    pub max_log_lines: u32,
    /// Follow-up events one delivery may emit; `emit` past it returns the
    /// guest-visible `too-many-events` error. Default 1000.
    pub max_emits: u32,
    /// The largest payload of an emitted event; larger gets the guest-visible
    /// `payload-too-large` error. Default [`DEFAULT_MAX_PAYLOAD_BYTES`], the
    /// same limit producers have.
    pub max_payload_bytes: usize,
    /// The payload bytes one delivery may emit in all; an event that would
    /// pass it gets the guest-visible `too-many-bytes` error. It is what
    /// bounds the host memory a delivery's buffered follow-ups take (the
    /// event count alone would allow `max_emits` × `max_payload_bytes`).
    /// Default 16 MiB.
    pub max_emit_bytes: usize,
    /// How deep a chain of emitted events may grow: a message enqueued by a
    /// producer has depth 0, a follow-up its parent's depth + 1. A delivery
    /// of a message at this depth that emits gets the guest-visible
    /// `chain-too-deep` error and is dead-lettered with that reason, so a
    /// loop of handlers emitting each other's events ends. Default 32.
    pub max_chain_depth: u32,
    /// Deliveries one instance may serve. 1 (the default) gives every delivery
    /// a fresh instance, so nothing a handler leaves in memory leaks into the
    /// next message. A larger value saves instantiation for plugins that are
    /// known to be stateless; an instance that traps or times out is
    /// discarded whatever this says.
    pub instance_reuse: u32,
    /// Instances running at once across all plugins of a host. A delivery
    /// beyond it waits for a free slot (before its time limit starts). It
    /// sizes the pooling allocator, so it bounds the host's reserved memory.
    /// Default 100.
    pub max_instances: u32,
    /// How long an outbound HTTP request may take to resolve its host and
    /// connect (TLS included); the whole request is also bounded by the
    /// delivery's `timeout`. Default 5 s.
    pub http_connect_timeout: Duration,
    /// The most response-body bytes an outbound request may deliver; past
    /// it the guest's read fails with `http-response-body-size`. Default 4 MiB.
    pub http_max_response_bytes: u64,
    /// Outbound requests one delivery may have open at once; one more is
    /// refused with `connection-limit-reached`. Together with the delivery
    /// slots this bounds the host's outbound connections. Default 4.
    pub http_max_concurrent_requests: u32,
    /// The largest plugin file read. Checked on the open file before
    /// reading and enforced while reading (a file growing meanwhile is cut
    /// off), so a huge or endless file costs at most this much memory.
    /// Default 50 MiB: a plugin built with mailroom-sdk is a few hundred KiB.
    pub max_file_bytes: u64,
    /// How long compiling one plugin may take. Compilation runs in a child
    /// process (see `compile`), killed past this; the plugin is rejected
    /// and others load meanwhile. Default 60 s.
    pub compile_timeout: Duration,
    /// The address space the compiling child process may use. Cranelift's
    /// memory grows with the largest function, so a hostile straight-line
    /// function is rejected here rather than exhausting the host. Default
    /// 1 GiB.
    pub compile_memory_bytes: u64,
    /// Event types one plugin may declare. Routing and claims take the set of
    /// routable types into account, so a plugin declaring tens of thousands
    /// would slow every claim; past the limit it is rejected. Default 1000.
    pub max_event_types: u32,
}

impl Default for SandboxLimits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            memory_bytes: 64 * 1024 * 1024,
            max_output_bytes: 64 * 1024,
            max_log_lines: 200,
            max_emits: 1000,
            max_payload_bytes: DEFAULT_MAX_PAYLOAD_BYTES,
            max_emit_bytes: DEFAULT_MAX_EMIT_BYTES,
            max_chain_depth: DEFAULT_MAX_CHAIN_DEPTH,
            instance_reuse: 1,
            max_instances: 100,
            http_connect_timeout: Duration::from_secs(5),
            http_max_response_bytes: 4 * 1024 * 1024,
            http_max_concurrent_requests: 4,
            max_file_bytes: 50 * 1024 * 1024,
            compile_timeout: Duration::from_secs(60),
            compile_memory_bytes: 1024 * 1024 * 1024,
            max_event_types: 1000,
        }
    }
}

impl SandboxLimits {
    /// Epoch ticks of running wasm after which it traps: the timeout rounded
    /// up to whole ticks, plus one because the current tick may be nearly
    /// over. (The async timeout around each call bounds its wall-clock time,
    /// ticks in host calls included.)
    pub(crate) fn epoch_ticks(&self) -> u64 {
        let tick = EPOCH_TICK.as_nanos();
        let ticks = self.timeout.as_nanos().div_ceil(tick);
        u64::try_from(ticks).unwrap_or(u64::MAX).saturating_add(1)
    }

    /// Warm instances kept across all plugins when `instance_reuse > 1`. Kept
    /// equal to `max_instances` so the pool holds at most twice that many
    /// instances (running + warm), which is what it is sized for.
    pub(crate) fn max_warm_instances(&self) -> u32 {
        self.max_instances
    }

    /// The memory cap in bytes, as the `usize` wasmtime counts in.
    fn memory_cap(&self) -> usize {
        usize::try_from(self.memory_bytes).unwrap_or(usize::MAX)
    }
}

/// The default of [`SandboxLimits::max_emit_bytes`]: 16 payloads of the
/// default size, or many small events, per delivery; at the default
/// concurrency the host holds at most a few hundred MiB of follow-ups.
pub const DEFAULT_MAX_EMIT_BYTES: usize = 16 * 1024 * 1024;

/// The default of [`SandboxLimits::max_chain_depth`]: far deeper than any
/// designed workflow, shallow enough that a loop ends in seconds.
pub const DEFAULT_MAX_CHAIN_DEPTH: u32 = 32;

/// How often the epoch ticker advances the engine's epoch. The time limit is
/// enforced to this granularity; each tick costs a thread wake-up, and the
/// check in compiled code is a load and compare whatever the period.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The longest retry or fatal reason kept from a handler. A reason ends up in
/// the message's `last_error`, logs and dead-letter listings, so it must stay
/// small whatever the guest returns. Kept well under the store's limit on
/// `last_error` (which adds "fatal: " or "gave up after N attempts: "), so a
/// reason cut here is not cut again, and its marker keeps the true size the
/// guest returned.
pub(crate) const MAX_REASON_BYTES: usize = 3 * 1024;
const _: () = assert!(MAX_REASON_BYTES + 512 <= crate::state_machine::MAX_ERROR_BYTES);

/// The longest `logging.log` line or guest stdout/stderr line forwarded to the
/// host log; a longer line is cut with a marker. Log lines are for humans.
pub(crate) const MAX_LINE_BYTES: usize = 2 * 1024;

/// The stderr bytes kept (the most recent ones) to explain a trap: a Rust
/// guest prints its panic message there just before it aborts. Kept apart
/// from the log budget so a panic after much output is still explained.
pub(crate) const STDERR_TAIL_BYTES: usize = 4 * 1024;

/// The bytes a guest may hand to one stdout/stderr write. Larger than any
/// write wasi-libc issues (4 KiB); bytes past the log budget are only counted.
pub(crate) const OUTPUT_WRITE_PERMIT: usize = 64 * 1024;

/// The longest plugin name or version accepted from `info`: they are shown in
/// logs, listings and stored with every attempt.
pub(crate) const MAX_INFO_FIELD_BYTES: usize = 255;

/// Table elements one table may grow to. Rust guests need a few hundred
/// (function pointers); the bound keeps a hostile `table.grow` from costing
/// host memory, and matches the pool's per-table slot.
const MAX_TABLE_ELEMENTS: usize = 20_000;

/// Core instances, memories and tables one store may create. A component
/// built by rustc for wasm32-wasip2 has a handful of core instances and one
/// memory; these bounds leave room and stop a component built to exhaust the
/// pool.
const MAX_CORE_INSTANCES_PER_STORE: usize = 32;
const MAX_MEMORIES_PER_STORE: usize = 4;
const MAX_TABLES_PER_STORE: usize = 32;

/// Linear memories, core instances and tables the pool reserves per component
/// instance slot: the same bounds as the per-store limits, so a component the
/// limiter admits always fits its slots.
const POOL_MEMORIES_PER_COMPONENT: u32 = 2;
const POOL_CORE_INSTANCES_PER_COMPONENT: u32 = 8;
const POOL_TABLES_PER_COMPONENT: u32 = 8;

/// The engine configuration shared by every plugin of a host. `pooling`
/// chooses the instance allocator; the caller falls back to on-demand
/// allocation when the pool cannot reserve its address space.
pub(crate) fn engine_config(limits: &SandboxLimits, pooling: bool) -> Config {
    let mut config = Config::new();
    // Components only: a plugin is one component of the `handler` world.
    config.wasm_component_model(true);
    // The wall-clock limit: compiled code checks the engine's epoch at
    // function entries and loop headers, and traps once the store's deadline
    // has passed. Cheaper than fuel and measures time, not instructions.
    config.epoch_interruption(true);
    // Deep recursion traps with a stack-overflow trap at this many bytes of
    // wasm stack (wasmtime's default, stated here because it is policy). The
    // async fiber stack each call runs on (2 MiB by default) must exceed it.
    config.max_wasm_stack(512 * 1024);
    // Each instance starts from a copy-on-write mapping of its initial memory
    // image instead of copying data segments: a fresh instance per delivery
    // costs microseconds.
    config.memory_init_cow(true);
    if pooling {
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling_config(limits)));
    }
    config
}

/// The pooling allocator: instance slots reserved once at start-up and reused,
/// so a delivery's instantiation does no mmap/munmap of its own and memory is
/// returned to a slot, not to the OS allocator, after each delivery.
fn pooling_config(limits: &SandboxLimits) -> PoolingAllocationConfig {
    // Running instances plus warm (reusable) ones: see `max_warm_instances`.
    let slots = limits
        .max_instances
        .max(1)
        .saturating_add(limits.max_warm_instances());
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(slots);
    pool.total_memories(slots.saturating_mul(POOL_MEMORIES_PER_COMPONENT));
    pool.total_core_instances(slots.saturating_mul(POOL_CORE_INSTANCES_PER_COMPONENT));
    pool.total_tables(slots.saturating_mul(POOL_TABLES_PER_COMPONENT));
    // Async calls run on fiber stacks from the pool, and a store keeps its
    // last stack for its next call: one per slot.
    pool.total_stacks(slots);
    // The hard ceiling behind the store limiter: even a limiter bug cannot
    // let a memory grow past the cap. Clamped to the 4 GiB reservation that
    // 32-bit memories get by default.
    pool.max_memory_size(limits.memory_cap().min(4 << 30));
    pool.table_elements(MAX_TABLE_ELEMENTS);
    // Keep up to 1 MiB of each memory resident when a slot is freed: the
    // next instance of the same plugin reuses the pages instead of faulting
    // them in again. Bounded, so the pool's RSS stays bounded.
    pool.linear_memory_keep_resident(1 << 20);
    // Freed slots remembered per plugin (so the next instance reuses warm
    // pages) beyond those in use. With the line above this bounds the RSS
    // idle slots can hold to 20 MiB.
    pool.max_unused_warm_slots(20);
    // Reset a freed memory by rewriting only the pages the instance dirtied
    // (found with the PAGEMAP_SCAN ioctl, Linux 6.7 and later) instead of
    // `memset` over the kept megabyte and `madvise` over the rest: a fresh
    // instance per delivery then costs no system call in the common case.
    // Older kernels keep the behaviour above.
    pool.pagemap_scan(Enabled::Auto);
    // What must still be returned to the OS is returned in batches: each
    // `madvise` flushes the TLB of every core, so one flush per batch rather
    // than per instance.
    pool.decommit_batch_size(DECOMMIT_BATCH);
    // Tables are reset like memories: the first 64 KiB with `memset`.
    pool.table_keep_resident(64 << 10);
    pool
}

/// Freed instance resources returned to the OS per batch (see `pooling_config`).
const DECOMMIT_BATCH: usize = 32;

/// The WASI context of one store: nothing granted. No preopened directories,
/// no environment, no arguments, no network (TCP, UDP and name lookup all
/// denied, and no address allowed), stdin closed. Clocks and randomness are
/// the host's. Stdout and stderr go to the host log through `stdout` and
/// `stderr`.
pub(crate) fn wasi_ctx(
    stdout: impl wasmtime_wasi::cli::StdoutStream + 'static,
    stderr: impl wasmtime_wasi::cli::StdoutStream + 'static,
) -> WasiCtx {
    let mut builder = WasiCtxBuilder::new();
    builder
        .stdout(stdout)
        .stderr(stderr)
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        // Belt and braces: even if a protocol were allowed, no address is.
        .socket_addr_check(|_, _| Box::pin(async { false }));
    builder.build()
}

/// The per-store resource limiter: the memory cap (per linear memory), table
/// size, and counts of instances, memories and tables. It remembers that it
/// refused a memory growth, so a guest that aborts after a failed allocation
/// is reported as over its memory cap rather than as a bare trap.
#[derive(Debug)]
pub(crate) struct StoreLimiter {
    memory_cap: usize,
    memory_refused: bool,
}

impl StoreLimiter {
    pub(crate) fn new(limits: &SandboxLimits) -> Self {
        Self {
            memory_cap: limits.memory_cap(),
            memory_refused: false,
        }
    }

    /// Whether a memory growth was refused since the last reset.
    pub(crate) fn memory_refused(&self) -> bool {
        self.memory_refused
    }

    /// Forgets earlier refusals: called when an instance starts a delivery.
    pub(crate) fn reset(&mut self) {
        self.memory_refused = false;
    }
}

impl ResourceLimiter for StoreLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Refusing (rather than trapping) keeps to the wasm semantics of
        // `memory.grow` returning -1, which a guest may handle.
        if desired > self.memory_cap {
            self.memory_refused = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }

    fn instances(&self) -> usize {
        MAX_CORE_INSTANCES_PER_STORE
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES_PER_STORE
    }

    fn tables(&self) -> usize {
        MAX_TABLES_PER_STORE
    }
}

/// A byte count the way limits are written: "64 MiB", "512 KiB", "100 bytes".
pub(crate) fn format_bytes(bytes: u64) -> String {
    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * KIB;
    const GIB: u64 = 1024 * MIB;
    match bytes {
        b if b >= GIB && b % GIB == 0 => format!("{} GiB", b / GIB),
        b if b >= MIB && b % MIB == 0 => format!("{} MiB", b / MIB),
        b if b >= KIB && b % KIB == 0 => format!("{} KiB", b / KIB),
        b => format!("{b} bytes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_ticks_cover_the_timeout() {
        let limits = SandboxLimits {
            timeout: Duration::from_millis(500),
            ..SandboxLimits::default()
        };
        assert_eq!(limits.epoch_ticks(), 51);
        let limits = SandboxLimits {
            timeout: Duration::from_millis(1),
            ..SandboxLimits::default()
        };
        assert_eq!(limits.epoch_ticks(), 2);
    }

    #[test]
    fn limiter_refuses_past_the_cap_and_remembers() {
        let mut limiter = StoreLimiter::new(&SandboxLimits {
            memory_bytes: 1 << 20,
            ..SandboxLimits::default()
        });
        assert!(limiter.memory_growing(0, 1 << 20, None).unwrap_or(false));
        assert!(!limiter.memory_refused());
        assert!(
            !limiter
                .memory_growing(1 << 20, 2 << 20, None)
                .unwrap_or(true)
        );
        assert!(limiter.memory_refused());
        limiter.reset();
        assert!(!limiter.memory_refused());
    }

    #[test]
    fn bytes_read_like_limits() {
        assert_eq!(format_bytes(64 << 20), "64 MiB");
        assert_eq!(format_bytes(16 << 20), "16 MiB");
        assert_eq!(format_bytes(64 << 10), "64 KiB");
        assert_eq!(format_bytes(1000), "1000 bytes");
        assert_eq!(format_bytes(4 << 30), "4 GiB");
    }
}
