//! The wasm plugin host against real plugins compiled to wasm32-wasip2: the
//! shipped plugins, the `behaviour` guest that drives every failure path, and
//! broken files that must be rejected.
//!
//! Limits are small (500 ms, 16 MiB) so hostile guests fail fast.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use mailroom::message::{MessageId, Priority};
use mailroom::plugin::{
    Compiler, Delivery, HostConfig, Outcome, Plugin, PluginError, PluginHost, SandboxLimits,
};
use mailroom_test_artifacts as artifacts;
use serde_json::{Value, json};

const TIMEOUT: Duration = Duration::from_millis(500);
const MEMORY: u64 = 16 << 20;

/// Test limits: small enough that hostile guests fail fast, and a small pool
/// because many hosts share this process.
fn limits() -> SandboxLimits {
    SandboxLimits {
        timeout: TIMEOUT,
        memory_bytes: MEMORY,
        max_output_bytes: 4 * 1024,
        max_instances: 8,
        ..SandboxLimits::default()
    }
}

/// A compiled-code cache shared by the tests (and by test processes), so each
/// plugin is compiled once; the cache tests use their own directories.
fn shared_cache() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("plugin-host-cache")
}

fn host_with(limits: SandboxLimits) -> PluginHost {
    PluginHost::new(HostConfig {
        limits,
        cache_dir: Some(shared_cache()),
        ..HostConfig::default()
    })
    .expect("host starts")
}

fn host() -> PluginHost {
    host_with(limits())
}

/// `load` is blocking: run it where blocking is allowed, as the dispatcher does.
async fn try_load(host: &PluginHost, path: impl AsRef<Path>) -> Result<Plugin, PluginError> {
    let host = host.clone();
    let path = path.as_ref().to_owned();
    tokio::task::spawn_blocking(move || host.load(&path))
        .await
        .expect("load does not panic")
}

async fn load(host: &PluginHost, path: &str) -> Plugin {
    try_load(host, path)
        .await
        .unwrap_or_else(|e| panic!("{path} loads: {e}"))
}

fn delivery(event_type: &str, payload: Value) -> Delivery {
    Delivery {
        id: MessageId::new(),
        event_type: event_type.into(),
        key: None,
        source: Some("tests".into()),
        correlation_id: "corr-1".into(),
        payload: serde_json::to_vec(&payload).expect("json"),
        attempt: 1,
        max_attempts: 5,
        created_at_ms: 1_700_000_000_000,
        depth: 0,
    }
}

fn behaviour(action: &str) -> Delivery {
    delivery("behaviour", json!({ "action": action }))
}

fn order() -> Value {
    json!({
        "order_id": "o-1",
        "customer": "ada@example.com",
        "items": [{"sku": "A-1", "qty": 2, "price": 19.99}, {"sku": "B-2", "qty": 1, "price": 0.5}],
    })
}

fn retry_reason(outcome: &Outcome) -> &str {
    match outcome {
        Outcome::Retry { reason, .. } => reason,
        other => panic!("expected a retry, got {other:?}"),
    }
}

/// Asserts that `plugin` (another plugin on the same host) still works.
async fn assert_serves(plugin: &Plugin) {
    let outcome = plugin.handle(delivery("order.created", order())).await;
    assert!(
        matches!(&outcome, Outcome::Success { emitted } if emitted.len() == 1),
        "the host keeps serving: {outcome:?}"
    );
}

fn json_of(payload: &[u8]) -> Value {
    serde_json::from_slice(payload).expect("payload is json")
}

#[tokio::test]
async fn order_validator_emits_exactly_the_accepted_order() {
    let host = host();
    let plugin = load(&host, artifacts::ORDER_VALIDATOR).await;
    assert_eq!(plugin.name(), "order-validator");
    assert_eq!(plugin.event_types(), ["order.created"]);
    assert!(plugin.digest().starts_with("sha256:") && plugin.digest().len() == 7 + 64);
    assert_eq!(plugin.path(), Path::new(artifacts::ORDER_VALIDATOR));

    let Outcome::Success { emitted } = plugin.handle(delivery("order.created", order())).await
    else {
        panic!("a valid order succeeds");
    };
    assert_eq!(emitted.len(), 1, "{emitted:?}");
    let accepted = &emitted[0];
    assert_eq!(accepted.event_type, "order.accepted");
    assert_eq!(accepted.key.as_deref(), Some("order.accepted:o-1"));
    assert_eq!(accepted.priority, Priority::Normal);
    assert_eq!(accepted.delay, Duration::ZERO);
    assert_eq!(
        json_of(&accepted.payload),
        json!({"order_id": "o-1", "customer": "ada@example.com", "total": 40.48, "total_cents": 4048})
    );
}

#[tokio::test]
async fn a_bad_order_is_fatal_naming_the_field_and_emits_nothing() {
    let host = host();
    let plugin = load(&host, artifacts::ORDER_VALIDATOR).await;
    let mut bad = order();
    bad["items"][1]["qty"] = json!(0);
    let outcome = plugin.handle(delivery("order.created", bad)).await;
    assert_eq!(
        outcome,
        Outcome::Fatal {
            reason: "items[1].qty must be > 0, got 0".into()
        }
    );
}

#[tokio::test]
async fn notifier_turns_an_accepted_order_into_a_notification() {
    let host = host();
    let plugin = load(&host, artifacts::NOTIFIER).await;
    let accepted = json!({"order_id": "o-1", "customer": "ada@example.com", "total": 40.48, "total_cents": 4048});
    let Outcome::Success { emitted } = plugin.handle(delivery("order.accepted", accepted)).await
    else {
        panic!("an accepted order succeeds");
    };
    assert_eq!(emitted.len(), 1, "{emitted:?}");
    assert_eq!(emitted[0].event_type, "notification.requested");
    let notification = json_of(&emitted[0].payload);
    assert_eq!(notification["channel"], "email");
    assert_eq!(notification["order_id"], "o-1");
}

#[tokio::test]
async fn flaky_retries_until_its_attempt() {
    let host = host();
    let plugin = load(&host, artifacts::FLAKY).await;
    for attempt in 1..=3 {
        let mut d = delivery("flaky", json!({"succeed_on_attempt": 3}));
        d.attempt = attempt;
        let outcome = plugin.handle(d).await;
        if attempt < 3 {
            assert!(
                retry_reason(&outcome).contains(&format!("attempt {attempt} fails on purpose")),
                "{outcome:?}"
            );
        } else {
            assert_eq!(outcome, Outcome::Success { emitted: vec![] });
        }
    }
}

#[tokio::test]
async fn handler_errors_become_retry_and_fatal_outcomes() {
    let host = host();
    let plugin = load(&host, artifacts::BEHAVIOUR).await;
    assert_eq!(
        plugin.handle(behaviour("succeed")).await,
        Outcome::Success { emitted: vec![] }
    );
    assert_eq!(
        plugin.handle(behaviour("retry")).await,
        Outcome::Retry {
            reason: "behaviour: retry".into(),
            after: None
        }
    );
    assert_eq!(
        plugin
            .handle(delivery(
                "behaviour",
                json!({"action": "retry_after", "ms": 1500})
            ))
            .await,
        Outcome::Retry {
            reason: "behaviour: retry_after".into(),
            after: Some(Duration::from_millis(1500))
        }
    );
    assert_eq!(
        plugin.handle(behaviour("fatal")).await,
        Outcome::Fatal {
            reason: "behaviour: fatal".into()
        }
    );
}

#[tokio::test]
async fn a_huge_error_reason_is_truncated() {
    let host = host();
    let plugin = load(&host, artifacts::BEHAVIOUR).await;
    let outcome = plugin.handle(behaviour("big_error")).await;
    let reason = retry_reason(&outcome);
    assert!(reason.len() < 5 * 1024, "{} bytes", reason.len());
    assert!(
        reason.contains("(truncated, "),
        "{}",
        &reason[reason.len() - 60..]
    );
}

#[tokio::test]
async fn emitted_events_come_back_with_success_only() {
    let host = host();
    let plugin = load(&host, artifacts::BEHAVIOUR).await;
    let emit = json!({
        "action": "emit", "count": 2, "event_type": "x.done", "key_prefix": "k-",
        "priority": "high", "delay_ms": 250,
    });
    let Outcome::Success { emitted } = plugin.handle(delivery("behaviour", emit.clone())).await
    else {
        panic!("emit succeeds");
    };
    assert_eq!(emitted.len(), 2);
    for (i, event) in emitted.iter().enumerate() {
        assert_eq!(event.event_type, "x.done");
        assert_eq!(event.key.as_deref(), Some(format!("k-{i}").as_str()));
        assert_eq!(event.priority, Priority::High);
        assert_eq!(event.delay, Duration::from_millis(250));
        assert_eq!(json_of(&event.payload), json!({"index": i}));
    }
    // The same emissions followed by a trap or a retry: nothing comes back.
    let mut then_trap = emit.clone();
    then_trap["then"] = json!({"action": "trap"});
    let outcome = plugin.handle(delivery("behaviour", then_trap)).await;
    assert!(matches!(outcome, Outcome::Retry { .. }), "{outcome:?}");
    let mut then_retry = emit;
    then_retry["then"] = json!({"action": "retry"});
    let outcome = plugin.handle(delivery("behaviour", then_retry)).await;
    assert!(matches!(outcome, Outcome::Retry { .. }), "{outcome:?}");
}

#[tokio::test]
async fn emitted_bytes_are_capped_per_delivery() {
    let host = host_with(SandboxLimits {
        max_emit_bytes: 1000,
        ..limits()
    });
    let plugin = load(&host, artifacts::BEHAVIOUR).await;
    // JSON strings of 400 bytes: two fit in 1000, the third (numbered 2
    // by the guest, from 0) would not.
    let outcome = plugin
        .handle(delivery(
            "behaviour",
            json!({"action": "emit", "count": 3, "payload_size": 400}),
        ))
        .await;
    let Outcome::Fatal { reason } = outcome else {
        panic!("the guest reports the refusal: {outcome:?}");
    };
    assert!(
        reason.contains("emit 2 of 3") && reason.contains("at most 1000 payload bytes"),
        "{reason}"
    );
    let Outcome::Success { emitted } = plugin
        .handle(delivery(
            "behaviour",
            json!({"action": "emit", "count": 5, "payload_size": 400, "ignore_errors": true}),
        ))
        .await
    else {
        panic!("ignoring the refusal succeeds");
    };
    assert_eq!(emitted.len(), 2, "what fit under the cap");
}

#[tokio::test]
async fn a_delivery_at_the_chain_depth_limit_that_emits_is_dead_lettered() {
    let host = host_with(SandboxLimits {
        max_chain_depth: 3,
        ..limits()
    });
    let plugin = load(&host, artifacts::BEHAVIOUR).await;
    let at_depth = |depth: u32, payload: Value| Delivery {
        depth,
        ..delivery("behaviour", payload)
    };
    // One below the limit, emitting is fine.
    let outcome = plugin
        .handle(at_depth(2, json!({"action": "emit"})))
        .await;
    assert!(matches!(outcome, Outcome::Success { .. }), "{outcome:?}");
    // At the limit, not emitting is fine too.
    let outcome = plugin
        .handle(at_depth(3, json!({"action": "succeed"})))
        .await;
    assert!(matches!(outcome, Outcome::Success { .. }), "{outcome:?}");
    // At the limit, an emit ends the chain as a dead letter naming the
    // limit, whether the guest returns the refusal or ignores it.
    for payload in [
        json!({"action": "emit"}),
        json!({"action": "emit", "ignore_errors": true}),
        json!({"action": "emit", "ignore_errors": true, "then": {"action": "retry"}}),
    ] {
        let outcome = plugin.handle(at_depth(3, payload.clone())).await;
        let Outcome::Fatal { reason } = outcome else {
            panic!("{payload}: the chain ends as a dead letter: {outcome:?}");
        };
        assert!(
            reason.contains("chain depth limit reached")
                && reason.contains("at depth 3")
                && reason.contains("plugins.max_chain_depth is 3"),
            "{reason}"
        );
    }
    // A plugin built against 0.1.0 emits through the old interface, and
    // is held to the same limit.
    let legacy = load(&host, artifacts::LEGACY_V01).await;
    let outcome = legacy
        .handle(Delivery {
            depth: 3,
            ..delivery("legacy.ping", json!({}))
        })
        .await;
    let Outcome::Fatal { reason } = outcome else {
        panic!("the legacy plugin's chain ends too: {outcome:?}");
    };
    assert!(reason.contains("chain depth limit reached"), "{reason}");
}

/// Plugins built against earlier versions of the WIT load and run
/// unchanged: 0.1.0 (emitting through `emitter`) and 0.1.2 (through
/// `follow-ups`, logging without asking `log-filter`, as every SDK-built
/// plugin did before 0.1.3).
#[tokio::test]
async fn plugins_built_against_earlier_wit_versions_load_and_run() {
    let host = host();
    for (path, ping, pong) in [
        (artifacts::LEGACY_V01, "legacy.ping", "legacy.pong"),
        (artifacts::LEGACY_V012, "legacy.v012.ping", "legacy.v012.pong"),
    ] {
        let plugin = load(&host, path).await;
        assert_eq!(plugin.event_types(), [ping.to_owned()]);
        let outcome = plugin.handle(delivery(ping, json!({"n": 1}))).await;
        let Outcome::Success { emitted } = outcome else {
            panic!("{path}: {outcome:?}");
        };
        assert_eq!(emitted.len(), 1, "{path}");
        assert_eq!(emitted[0].event_type, pong);
        assert_eq!(json_of(&emitted[0].payload), json!({"n": 1}));
    }
}

#[tokio::test]
async fn emits_the_host_refuses_are_errors_the_guest_sees() {
    let host = host_with(SandboxLimits {
        max_emits: 3,
        max_payload_bytes: 1024,
        ..limits()
    });
    let plugin = load(&host, artifacts::BEHAVIOUR).await;
    // The behaviour guest turns a refused emit into a fatal error naming it.
    let refused = |payload: Value| {
        let plugin = plugin.clone();
        async move {
            match plugin.handle(delivery("behaviour", payload)).await {
                Outcome::Fatal { reason } => reason,
                other => panic!("expected the guest to report the refusal: {other:?}"),
            }
        }
    };
    let reason = refused(json!({"action": "emit", "event_type": "not valid!"})).await;
    assert!(
        reason.contains("invalid event type") && reason.contains("not valid!"),
        "{reason}"
    );
    let reason = refused(json!({"action": "emit", "payload_size": 1025})).await;
    assert!(reason.contains("limit of 1024 bytes"), "{reason}");
    let Outcome::Success { emitted } = plugin
        .handle(delivery(
            "behaviour",
            json!({"action": "emit", "payload_size": 1024}),
        ))
        .await
    else {
        panic!("a payload at the limit is accepted");
    };
    assert_eq!(emitted[0].payload.len(), 1024);
    let reason = refused(json!({"action": "emit", "count": 4})).await;
    assert!(
        reason.contains("emit 3 of 4") && reason.contains("at most 3"),
        "{reason}"
    );

    // The refusals are handleable: a guest that ignores them succeeds with
    // what was accepted.
    let Outcome::Success { emitted } = plugin
        .handle(delivery(
            "behaviour",
            json!({"action": "emit", "count": 5, "ignore_errors": true}),
        ))
        .await
    else {
        panic!("ignoring refusals succeeds");
    };
    assert_eq!(emitted.len(), 3);

    // A key the store could never accept fails the delivery for good.
    let long_key = "k".repeat(1100);
    let outcome = plugin
        .handle(delivery(
            "behaviour",
            json!({"action": "emit", "key_prefix": long_key}),
        ))
        .await;
    let Outcome::Fatal { reason } = outcome else {
        panic!("a bad key is fatal: {outcome:?}");
    };
    assert!(reason.contains("invalid key"), "{reason}");
}

/// Runs one hostile action and checks it fails only its own delivery, with a
/// reason naming what happened, within the limits; then the host serves
/// another plugin.
async fn assert_hostile(action: &str, expected: &str) {
    let host = host();
    let hostile = load(&host, artifacts::BEHAVIOUR).await;
    let other = load(&host, artifacts::ORDER_VALIDATOR).await;
    let started = Instant::now();
    let mut hostile_delivery = behaviour(action);
    // Emitted before the failure, and discarded with it.
    hostile_delivery.payload = serde_json::to_vec(&json!({
        "action": "emit", "then": { "action": action }
    }))
    .expect("json");
    let outcome = hostile.handle(hostile_delivery).await;
    let elapsed = started.elapsed();
    let reason = retry_reason(&outcome);
    assert!(reason.contains(expected), "{action}: {reason}");
    assert!(
        elapsed < TIMEOUT + Duration::from_millis(1500),
        "{action} took {elapsed:?}"
    );
    assert_serves(&other).await;
    // And the hostile plugin itself serves its next message.
    assert_eq!(
        hostile.handle(behaviour("succeed")).await,
        Outcome::Success { emitted: vec![] }
    );
}

#[tokio::test]
async fn a_busy_loop_times_out() {
    assert_hostile("loop", "timed out after 500ms").await;
}

/// A guest spinning in wasm gives its thread back at every epoch tick: on
/// a runtime of one thread (`tokio::test`'s), another plugin is served
/// while it spins, not once its time limit (a minute here) has passed.
#[tokio::test]
async fn a_spinning_guest_shares_its_thread() {
    let host = host_with(SandboxLimits {
        timeout: Duration::from_secs(60),
        ..limits()
    });
    let hostile = load(&host, artifacts::BEHAVIOUR).await;
    let other = load(&host, artifacts::ORDER_VALIDATOR).await;
    let spinning = tokio::spawn(async move { hostile.handle(behaviour("loop")).await });
    // The spawned call starts, and spins until it gives the thread back.
    tokio::task::yield_now().await;
    assert_serves(&other).await;
    assert!(
        !spinning.is_finished(),
        "the spinning call ended before another plugin was served: it held the thread"
    );
    spinning.abort();
    assert!(spinning.await.is_err_and(|e| e.is_cancelled()));
}

#[tokio::test]
async fn sleeping_through_the_wasi_clock_times_out() {
    assert_hostile("sleep", "timed out after 500ms").await;
}

#[tokio::test]
async fn unbounded_allocation_hits_the_memory_cap() {
    assert_hostile("alloc", "memory limit of 16 MiB exceeded").await;
}

#[tokio::test]
async fn unbounded_recursion_overflows_the_stack() {
    assert_hostile("recurse", "stack overflow").await;
}

#[tokio::test]
async fn a_panic_reports_its_message() {
    assert_hostile("panic", "panicked: behaviour: panic").await;
}

#[tokio::test]
async fn a_trap_reports_the_trap() {
    assert_hostile(
        "trap",
        "trapped: wasm trap: wasm `unreachable` instruction executed",
    )
    .await;
}

#[tokio::test]
async fn printing_100_mb_is_capped() {
    // The full 100 MB takes a few seconds through WASI; give it the time, and
    // check the host log budget (not host memory) absorbed it.
    let host = host_with(SandboxLimits {
        timeout: Duration::from_secs(20),
        ..limits()
    });
    let plugin = load(&host, artifacts::BEHAVIOUR).await;
    let before = rss_bytes();
    let outcome = plugin.handle(behaviour("print")).await;
    assert_eq!(outcome, Outcome::Success { emitted: vec![] });
    let outcome = plugin
        .handle(delivery(
            "behaviour",
            json!({"action": "print", "stream": "stderr"}),
        ))
        .await;
    assert_eq!(outcome, Outcome::Success { emitted: vec![] });
    let grown = rss_bytes().saturating_sub(before);
    assert!(grown < 50 << 20, "RSS grew by {} MiB", grown >> 20);
}

#[tokio::test]
async fn probes_find_nothing() {
    let host = host();
    let plugin = load(&host, artifacts::BEHAVIOUR).await;
    let Outcome::Success { emitted } = plugin.handle(behaviour("probe")).await else {
        panic!("probe succeeds");
    };
    assert_eq!(emitted.len(), 1);
    assert_eq!(emitted[0].event_type, "probe.result");
    let seen = json_of(&emitted[0].payload);
    assert_eq!(seen["passwd"]["ok"], false, "{seen}");
    assert_eq!(seen["passwd"]["bytes"], Value::Null, "{seen}");
    assert_eq!(seen["root_listing"]["ok"], false, "{seen}");
    assert_eq!(seen["root_listing"]["entries"], json!([]), "{seen}");
    assert_eq!(seen["env"], json!([]), "{seen}");
    assert_eq!(seen["args"], json!([]), "{seen}");
    assert_eq!(seen["socket"]["ok"], false, "{seen}");
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("procfs");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("VmRSS in kB");
    kib * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_memory_stays_bounded_across_1000_hostile_deliveries() {
    let host = host_with(SandboxLimits {
        memory_bytes: 4 << 20,
        ..limits()
    });
    let plugin = load(&host, artifacts::BEHAVIOUR).await;
    let actions = [
        json!({"action": "trap"}),
        json!({"action": "alloc"}),
        json!({"action": "print", "mb": 1}),
        json!({"action": "panic"}),
    ];
    // Warm up: the pool slot, fiber stack and allocator arenas settle.
    for action in actions.iter().cycle().take(40) {
        let _ = plugin.handle(delivery("behaviour", action.clone())).await;
    }
    let before = rss_bytes();
    for action in actions.iter().cycle().take(1000) {
        let outcome = plugin.handle(delivery("behaviour", action.clone())).await;
        assert!(
            !matches!(outcome, Outcome::Fatal { .. }),
            "{action}: {outcome:?}"
        );
    }
    let grown = rss_bytes().saturating_sub(before);
    // A leaked instance would be megabytes each, a leaked output buffer a MiB.
    assert!(grown < 64 << 20, "RSS grew by {} MiB", grown >> 20);
}

#[tokio::test]
async fn a_restart_loads_compiled_code_from_the_cache_without_compiling() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = || HostConfig {
        limits: limits(),
        cache_dir: Some(dir.path().join("cache")),
        ..HostConfig::default()
    };
    let first = PluginHost::new(config()).expect("host");
    let plugin = load(&first, artifacts::ORDER_VALIDATOR).await;
    assert!(!plugin.loaded_from_cache());
    let entries = cache_entries(&dir.path().join("cache"));
    assert_eq!(entries.len(), 1, "{entries:?}");
    let written = std::fs::metadata(&entries[0])
        .and_then(|m| m.modified())
        .expect("mtime");
    drop((plugin, first));

    // A new host, as after a restart.
    let second = PluginHost::new(config()).expect("host");
    let plugin = load(&second, artifacts::ORDER_VALIDATOR).await;
    assert!(plugin.loaded_from_cache());
    // Compiling would have rewritten the entry.
    assert_eq!(cache_entries(&dir.path().join("cache")), entries);
    let after = std::fs::metadata(&entries[0])
        .and_then(|m| m.modified())
        .expect("mtime");
    assert_eq!(after, written);
    assert_serves(&plugin).await;
}

#[tokio::test]
async fn a_corrupt_cache_entry_is_recompiled() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = || HostConfig {
        limits: limits(),
        cache_dir: Some(dir.path().to_owned()),
        ..HostConfig::default()
    };
    let host = PluginHost::new(config()).expect("host");
    drop(load(&host, artifacts::ORDER_VALIDATOR).await);
    let entries = cache_entries(dir.path());
    std::fs::write(&entries[0], b"not compiled code").expect("write");
    let host = PluginHost::new(config()).expect("host");
    let plugin = load(&host, artifacts::ORDER_VALIDATOR).await;
    assert!(!plugin.loaded_from_cache());
    assert_serves(&plugin).await;
    let plugin = load(&host, artifacts::ORDER_VALIDATOR).await;
    assert!(plugin.loaded_from_cache(), "the entry was rewritten");
}

fn cache_entries(dir: &Path) -> Vec<PathBuf> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("cache dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "cwasm"))
        .collect();
    entries.sort();
    entries
}

#[tokio::test]
async fn broken_files_are_rejected_with_distinct_clear_errors() {
    let host = host();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = |name: &str, bytes: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).expect("write");
        path
    };
    let component = std::fs::read(artifacts::ORDER_VALIDATOR).expect("artifact");

    let err = try_load(&host, file("empty.wasm", b""))
        .await
        .expect_err("empty");
    assert!(matches!(err, PluginError::Empty { .. }), "{err}");
    assert!(err.to_string().contains("empty.wasm") && err.to_string().contains("is empty"));

    let err = try_load(&host, file("half.wasm", &component[..component.len() / 2]))
        .await
        .expect_err("truncated");
    assert!(matches!(err, PluginError::Compile { .. }), "{err}");
    assert!(err.to_string().contains("truncated or corrupt"), "{err}");

    let err = try_load(&host, file("random.wasm", b"\x7fELF random bytes"))
        .await
        .expect_err("random");
    assert!(matches!(err, PluginError::NotWasm { .. }), "{err}");
    assert!(err.to_string().contains("not a WebAssembly file"), "{err}");

    let mut garbage = b"\0asm\x0d\0\x01\0".to_vec();
    garbage.extend((0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    let err = try_load(&host, file("garbage.wasm", &garbage))
        .await
        .expect_err("garbage");
    assert!(matches!(err, PluginError::Compile { .. }), "{err}");

    let err = try_load(&host, file("core.wasm", b"\0asm\x01\0\0\0"))
        .await
        .expect_err("core module");
    assert!(matches!(err, PluginError::NotAComponent { .. }), "{err}");
    assert!(err.to_string().contains("--target wasm32-wasip2"), "{err}");

    let err = try_load(&host, dir.path().join("missing.wasm"))
        .await
        .expect_err("missing");
    assert!(matches!(err, PluginError::Read { .. }), "{err}");

    let err = try_load(&host, artifacts::WRONG_WORLD)
        .await
        .expect_err("wrong world");
    assert!(matches!(err, PluginError::WrongWorld { .. }), "{err}");
    assert!(err.to_string().contains("handler"), "{err}");

    let err = try_load(&host, artifacts::INFO_TRAPS)
        .await
        .expect_err("info traps");
    assert!(matches!(err, PluginError::InfoTrapped { .. }), "{err}");
    assert!(err.to_string().contains("`info` call failed"), "{err}");

    let err = try_load(&host, artifacts::BAD_INFO)
        .await
        .expect_err("bad info");
    assert!(matches!(err, PluginError::InvalidInfo { .. }), "{err}");
    assert!(err.to_string().contains("`has space`"), "{err}");

    let err = try_load(&host, artifacts::NO_EVENT_TYPES)
        .await
        .expect_err("no event types");
    assert!(matches!(err, PluginError::InvalidInfo { .. }), "{err}");
    assert!(err.to_string().contains("names no event types"), "{err}");
}

#[tokio::test]
async fn every_problem_of_a_file_is_reported_at_once() {
    let host = host();
    let checker = host.clone();
    let problems = tokio::task::spawn_blocking(move || checker.check(artifacts::MANY_PROBLEMS.as_ref()))
        .await
        .expect("check does not panic")
        .expect_err("many problems");
    let kinds: Vec<&str> = problems.iter().map(PluginError::kind).collect();
    assert_eq!(
        kinds,
        ["wrong-world", "invalid-info", "invalid-info", "invalid-info"],
        "{problems:#?}"
    );

    // The host refuses the file with all of them in one message.
    let err = try_load(&host, artifacts::MANY_PROBLEMS)
        .await
        .expect_err("refused");
    let PluginError::Several { problems, .. } = &err else {
        panic!("expected every problem: {err}");
    };
    assert_eq!(problems.len(), 4);
    let message = err.to_string();
    for words in [
        "has 4 problems",
        "(1) ",
        "`test:many-problems/ledger`",
        "(4) ",
        "`has space`",
        "event type is empty",
    ] {
        assert!(message.contains(words), "{words}: {message}");
    }

    // A good file checks as it loads.
    let checker = host.clone();
    let plugin = tokio::task::spawn_blocking(move || checker.check(artifacts::BEHAVIOUR.as_ref()))
        .await
        .expect("check does not panic")
        .expect("behaviour passes");
    assert_eq!(plugin.name(), "behaviour");
}

#[tokio::test]
async fn two_versions_of_a_plugin_serve_side_by_side() {
    let host = host();
    let v1 = load(&host, artifacts::VERSIONED_V1).await;
    let v2 = load(&host, artifacts::VERSIONED_V2).await;
    assert_eq!((v1.name(), v1.version()), ("versioned", "1.0.0"));
    assert_eq!((v2.name(), v2.version()), ("versioned", "2.0.0"));
    assert_ne!(v1.digest(), v2.digest());
    for (plugin, version) in [(&v1, "1.0.0"), (&v2, "2.0.0"), (&v1, "1.0.0")] {
        let Outcome::Success { emitted } = plugin.handle(delivery("versioned", json!({}))).await
        else {
            panic!("versioned succeeds");
        };
        assert_eq!(json_of(&emitted[0].payload)["version"], version);
    }
}

#[tokio::test]
async fn the_delivery_reaches_the_guest_intact() {
    let host = host();
    let plugin = load(&host, artifacts::BEHAVIOUR).await;
    let mut d = behaviour("echo");
    d.key = Some("key-1".into());
    d.attempt = 2;
    let id = d.id.to_string();
    let Outcome::Success { emitted } = plugin.handle(d).await else {
        panic!("echo succeeds");
    };
    let echo = json_of(&emitted[0].payload);
    assert_eq!(
        echo,
        json!({
            "id": id, "event_type": "behaviour", "key": "key-1", "source": "tests",
            "correlation_id": "corr-1", "attempt": 2, "max_attempts": 5,
            "created_at_ms": 1_700_000_000_000u64, "payload": r#"{"action":"echo"}"#,
        })
    );
}

/// A `tracing` writer that keeps everything written, for asserting on logs.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(PoisonError::into_inner)).into_owned()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Captures what this thread logs at `max_level` and above, until the
/// returned guards drop. Tests using it run on a current-thread runtime, so
/// the delivery runs on the thread whose default subscriber this is.
fn capture_logs(
    max_level: tracing::Level,
) -> (Captured, (tracing::Dispatch, tracing::subscriber::DefaultGuard)) {
    // tracing caches per callsite whether anyone listens. With a single
    // registered subscriber it asks only the current thread's, so a callsite
    // first hit on another test's thread would be cached as unwanted. A second
    // registered (idle) subscriber makes it ask every registered one.
    let second = tracing::Dispatch::new(tracing_subscriber::registry());
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(captured.clone())
        .with_ansi(false)
        .with_max_level(max_level)
        .finish();
    let default = tracing::subscriber::set_default(subscriber);
    (captured, (second, default))
}

#[tokio::test(flavor = "current_thread")]
async fn guest_output_and_logs_reach_the_host_log_tagged_and_capped() {
    let host = host_with(SandboxLimits {
        max_log_lines: 5,
        max_output_bytes: 4 * 1024,
        ..limits()
    });
    let plugin = load(&host, artifacts::BEHAVIOUR).await;
    let (captured, _capturing) = capture_logs(tracing::Level::DEBUG);

    let d = delivery(
        "behaviour",
        json!({
            "action": "log", "level": "warn", "count": 10, "message": "hello from the guest",
            "then": {"action": "print", "mb": 1},
        }),
    );
    let id = d.id.to_string();
    assert_eq!(plugin.handle(d).await, Outcome::Success { emitted: vec![] });
    let log = captured.text();
    let guest_lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(mailroom::plugin::GUEST_TARGET))
        .collect();
    let hello = guest_lines
        .iter()
        .filter(|l| l.contains("hello from the guest"))
        .count();
    assert_eq!(hello, 5, "{log}");
    assert!(
        guest_lines
            .iter()
            .all(|l| l.contains(&id) && l.contains("behaviour")),
        "{log}"
    );
    assert!(log.contains("more than 5 log lines"), "{log}");
    // 1 MiB of 1 KiB lines, of which 4 KiB reach the log.
    let printed = guest_lines
        .iter()
        .filter(|l| l.contains("pppppppp"))
        .count();
    assert!((3..=5).contains(&printed), "{printed} lines printed: {log}");
    assert_eq!(
        log.matches("guest output over 4096 bytes").count(),
        1,
        "{log}"
    );

    // A panic's message reaches the log (stderr) and the reason.
    let outcome = plugin
        .handle(delivery(
            "behaviour",
            json!({"action": "panic", "message": "no stock for A-1"}),
        ))
        .await;
    assert_eq!(retry_reason(&outcome), "panicked: no stock for A-1");
    let log = captured.text();
    assert!(log.contains("no stock for A-1"), "{log}");
}

#[tokio::test(flavor = "current_thread")]
async fn guests_build_log_lines_only_for_levels_and_lines_the_host_keeps() {
    let host = host_with(SandboxLimits {
        max_log_lines: 4,
        ..limits()
    });
    let plugin = load(&host, artifacts::BEHAVIOUR).await;
    let (captured, _capturing) = capture_logs(tracing::Level::INFO);
    let levels = |payload: Value| {
        let plugin = &plugin;
        async move {
            let Outcome::Success { emitted } = plugin.handle(delivery("behaviour", payload)).await
            else {
                panic!("log_levels succeeds");
            };
            json_of(&emitted[0].payload)
        }
    };

    // A host logging `info` and above: the guest's `trace!` and `debug!`
    // never format their arguments.
    assert_eq!(
        levels(json!({"action": "log_levels"})).await,
        json!({"enabled": ["info", "warn", "error"], "formatted": ["info", "warn", "error"]})
    );
    let log = captured.text();
    for kept in ["info line", "warn line", "error line"] {
        assert!(log.contains(kept), "{kept}: {log}");
    }
    assert!(!log.contains("debug line") && !log.contains("trace line"), "{log}");

    // Four lines used up the call's four: the next line is still built (it
    // tells the log the rest are dropped), none after it.
    assert_eq!(
        levels(json!({
            "action": "log", "level": "error", "count": 4, "message": "filler",
            "then": {"action": "log_levels"},
        }))
        .await,
        json!({"enabled": ["info", "warn", "error"], "formatted": ["info"]})
    );
    assert!(captured.text().contains("more than 4 log lines"), "{}", captured.text());
}

#[tokio::test(flavor = "current_thread")]
async fn at_info_each_line_of_a_delivery_names_its_plugin_and_message_without_a_span() {
    let host = host();
    let plugin = load(&host, artifacts::BEHAVIOUR).await;
    let (captured, _capturing) = capture_logs(tracing::Level::INFO);

    // A guest's own line, then a panic: its message on the guest's stderr,
    // and the host's warning that the call failed.
    let logs = delivery(
        "behaviour",
        json!({"action": "log", "level": "info", "count": 1, "message": "hello from the guest"}),
    );
    let panics = delivery(
        "behaviour",
        json!({"action": "panic", "message": "no stock for A-1"}),
    );
    let ids = [logs.id.to_string(), panics.id.to_string()];
    assert_eq!(plugin.handle(logs).await, Outcome::Success { emitted: vec![] });
    assert_eq!(retry_reason(&plugin.handle(panics).await), "panicked: no stock for A-1");

    let log = captured.text();
    assert!(log.contains("hello from the guest"), "{log}");
    assert!(log.contains("no stock for A-1"), "{log}");
    assert!(log.contains("plugin call failed"), "{log}");
    // The per-delivery span is for `debug`: at `info` it would cost every
    // delivery, so each line carries the plugin and the message itself.
    assert!(!log.contains("plugin.handle"), "{log}");
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        assert!(line.contains("plugin=behaviour"), "{line}");
        assert!(
            ids.iter().any(|id| line.contains(&format!("message_id={id}"))),
            "{line}"
        );
    }
    for id in &ids {
        assert!(log.contains(id.as_str()), "{id}: {log}");
    }
}

#[tokio::test]
async fn every_delivery_gets_a_fresh_instance_by_default() {
    let host = host();
    let plugin = load(&host, artifacts::BEHAVIOUR).await;
    for n in 1..=3 {
        assert_eq!(
            plugin.handle(behaviour("succeed")).await,
            Outcome::Success { emitted: vec![] }
        );
        assert_eq!(plugin.instantiations(), n);
    }
}

#[tokio::test]
async fn instance_reuse_serves_several_deliveries_and_a_trap_discards_the_instance() {
    let host = host_with(SandboxLimits {
        instance_reuse: 3,
        ..limits()
    });
    let plugin = load(&host, artifacts::BEHAVIOUR).await;
    let succeed = || plugin.handle(behaviour("succeed"));
    for _ in 0..3 {
        assert_eq!(succeed().await, Outcome::Success { emitted: vec![] });
    }
    assert_eq!(
        plugin.instantiations(),
        1,
        "one instance served three deliveries"
    );
    assert_eq!(succeed().await, Outcome::Success { emitted: vec![] });
    assert_eq!(plugin.instantiations(), 2, "after three, a fresh instance");
    // A handler error keeps the instance; a trap discards it.
    assert!(matches!(
        plugin.handle(behaviour("retry")).await,
        Outcome::Retry { .. }
    ));
    assert_eq!(plugin.instantiations(), 2);
    assert!(matches!(
        plugin.handle(behaviour("trap")).await,
        Outcome::Retry { .. }
    ));
    assert_eq!(succeed().await, Outcome::Success { emitted: vec![] });
    assert_eq!(
        plugin.instantiations(),
        3,
        "the trapped instance is not reused"
    );
}

/// A host that compiles in a child process, the built `mailroom` binary,
/// as `mailroom run` does.
fn compiling_host(limits: SandboxLimits) -> PluginHost {
    PluginHost::new(HostConfig {
        limits,
        cache_dir: None,
        compiler: Compiler::Child {
            program: PathBuf::from(env!("CARGO_BIN_EXE_mailroom")),
        },
    })
    .expect("host starts")
}

#[tokio::test]
async fn a_plugin_compiled_in_a_child_process_serves() {
    let host = compiling_host(limits());
    let plugin = host
        .load_async(Path::new(artifacts::ORDER_VALIDATOR))
        .await
        .expect("loads");
    assert!(!plugin.loaded_from_cache());
    assert_serves(&plugin).await;
}

#[tokio::test]
async fn an_ordinary_plugin_compiles_within_the_smallest_budget_allowed() {
    // `plugins.compile_memory_mb` may be as low as 64.
    let host = compiling_host(SandboxLimits {
        compile_memory_bytes: 64 << 20,
        ..limits()
    });
    let plugin = host
        .load_async(Path::new(artifacts::ORDER_VALIDATOR))
        .await
        .expect("loads");
    assert_serves(&plugin).await;
}

/// A component whose compilation takes many seconds and most of a GiB.
fn costly_component(dir: &Path) -> PathBuf {
    let path = dir.join("costly.wasm");
    std::fs::write(&path, artifacts::hostile::huge_function(2 << 20)).expect("write");
    path
}

/// Loads the costly component with `limits` in a child process: refused
/// for its budget, with `words` in the reason. Returns the host.
async fn assert_refused_for_its_compile_budget(limits: SandboxLimits, words: &str) -> PluginHost {
    let dir = tempfile::tempdir().expect("tempdir");
    let costly = costly_component(dir.path());
    let host = compiling_host(limits);
    let err = host.load_async(&costly).await.expect_err("refused");
    assert!(matches!(err, PluginError::CompileBudget { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(words), "{text}");
    host
}

#[tokio::test]
async fn compiling_past_the_time_budget_is_refused_naming_it() {
    let _ = assert_refused_for_its_compile_budget(
        SandboxLimits {
            compile_timeout: Duration::from_millis(300),
            ..limits()
        },
        "took longer than 300ms (plugins.compile_timeout)",
    )
    .await;
}

#[tokio::test]
async fn compiling_past_the_memory_budget_is_refused_naming_it() {
    let host = assert_refused_for_its_compile_budget(
        SandboxLimits {
            compile_memory_bytes: 256 << 20,
            compile_timeout: Duration::from_secs(600),
            ..limits()
        },
        "needed more than 256 MiB of memory (plugins.compile_memory_mb)",
    )
    .await;
    // An ordinary plugin compiles well within the same budget.
    let plugin = host
        .load_async(Path::new(artifacts::ORDER_VALIDATOR))
        .await
        .expect("loads");
    assert_serves(&plugin).await;
}

#[tokio::test]
async fn an_invalid_component_compiled_in_a_child_is_named_invalid() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bytes = std::fs::read(artifacts::ORDER_VALIDATOR).expect("read");
    let half = dir.path().join("half.wasm");
    std::fs::write(&half, &bytes[..bytes.len() / 2]).expect("write");
    let err = compiling_host(limits())
        .load_async(&half)
        .await
        .expect_err("refused");
    assert!(matches!(err, PluginError::Compile { .. }), "{err:?}");
}

#[tokio::test]
async fn a_memory_minimum_over_the_cap_is_refused_for_that_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("big-memory.wasm");
    // 32 MiB to start, over the 16 MiB test cap.
    std::fs::write(&path, artifacts::hostile::memory_minimum(512)).expect("write");
    let err = try_load(&host(), &path).await.expect_err("refused");
    let text = err.to_string();
    assert!(matches!(err, PluginError::MemoryOverCap { .. }), "{text}");
    assert!(
        text.contains("asks for 32 MiB of memory at start")
            && text.contains("16 MiB memory cap")
            && !text.contains("not a valid")
            && !text.contains("truncated"),
        "{text}"
    );
}

#[tokio::test]
async fn only_regular_files_within_the_size_cap_are_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A 4 GiB sparse file with a component header: refused unread.
    let sparse = dir.path().join("sparse.wasm");
    {
        let mut file = std::fs::File::create(&sparse).expect("create");
        file.write_all(b"\0asm\x0d\0\x01\0").expect("header");
        file.set_len(4 << 30).expect("sparse");
    }
    let zero = dir.path().join("zero.wasm");
    std::os::unix::fs::symlink("/dev/zero", &zero).expect("symlink");
    let fifo = dir.path().join("fifo.wasm");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo runs");
    assert!(status.success());
    let host = host();
    let before = rss_bytes();
    let err = try_load(&host, &sparse).await.expect_err("refused");
    assert!(
        err.to_string()
            .contains("is 4 GiB, over the 50 MiB limit on plugin files"),
        "{err}"
    );
    for (path, kind) in [(&zero, "a character device"), (&fifo, "a FIFO")] {
        // A FIFO with no writer would block a reader for good: bound the wait.
        let err = tokio::time::timeout(Duration::from_secs(60), try_load(&host, path))
            .await
            .expect("the load does not block")
            .expect_err("refused");
        assert!(matches!(err, PluginError::NotRegularFile { .. }), "{err:?}");
        assert!(err.to_string().contains(kind), "{err}");
    }
    assert!(
        rss_bytes() < before + (64 << 20),
        "no file was read into memory"
    );
    assert_serves(&load(&host, artifacts::ORDER_VALIDATOR).await).await;
}

#[tokio::test]
async fn a_plugin_declaring_too_many_event_types_is_refused() {
    let err = try_load(&host(), artifacts::MANY_TYPES)
        .await
        .expect_err("refused");
    let text = err.to_string();
    assert!(
        text.contains("names 50000 event types, over the limit of 1000 per plugin (plugins.max_event_types)"),
        "{text}"
    );
    assert!(text.contains("Plugin::EVENT_TYPES"), "{text}");
}
