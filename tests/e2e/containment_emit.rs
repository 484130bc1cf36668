//! A hostile plugin cannot take the host's memory or its delivery slots:
//! emitted bytes are capped per delivery, a loop of self-emitting handlers
//! ends at the chain-depth limit as dead letters saying so, and slow
//! handlers never hold every slot while another event type has work. In
//! each case another plugin keeps serving during the attack.
//!
//! Nothing here is timed: each wait polls an outcome under the harness's
//! generous bound, and the fairness test's "during the attack" is a
//! handler that sleeps for 10 minutes, far beyond what serving one order takes.

#[path = "harness/mod.rs"]
mod harness;

use harness::{Settings, TestHost, event, store};
use mailroom_test_artifacts::{HOSTILE, ORDER_VALIDATOR};
use serde_json::{Value, json};

const MIB: u64 = 1024 * 1024;

fn order(id: &str) -> Value {
    json!({
        "order_id": id,
        "customer": "ada@example.com",
        "items": [{"sku": "A-1", "qty": 2, "price": 19.99}],
    })
}

/// The host's peak resident memory so far (`VmHWM`), in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/status: {e}"));
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or_else(|| panic!("no VmHWM in /proc/{pid}/status"))
}

/// The harness's `mailroom.toml` for `settings`, with `plugins` added to
/// its `[plugins]` section.
fn config(settings: &Settings, plugins: &str) -> String {
    settings
        .toml()
        .replace("[plugins]\n", &format!("[plugins]\n{plugins}\n"))
}

/// Waits until `id` (an `order.created`) is acked: gone from the store,
/// its `order.accepted` follow-up queued.
fn wait_served(host: &TestHost, id: &str) {
    host.wait_until(&format!("order {id} to be served"), || {
        store::message(&host.db(), id).is_none()
    });
}

#[test]
fn emitted_bytes_are_capped_per_delivery_and_host_memory_stays_bounded() {
    let settings = Settings {
        concurrency: 4,
        max_attempts: 1,
        ..Settings::default()
    };
    // The default limits (16 MiB of emitted payloads per delivery), said
    // out loud so the bound below follows from them.
    let host = TestHost::with_config_text(&config(&settings, "max_emit_bytes = 16777216"));
    host.deploy(HOSTILE, "hostile.wasm");
    host.deploy(ORDER_VALIDATOR, "order-validator.wasm");
    host.start();
    let pid = host.pid();

    // Each delivery tries to make the host buffer 300 MiB; without the cap,
    // eight of them, four at a time, take the host past 1 GiB.
    let attack: Vec<Value> = (0..8)
        .map(|_| event("hostile.volume", json!({ "count": 300, "bytes": MIB })))
        .collect();
    let ignoring: Vec<Value> = (0..4)
        .map(|_| {
            event(
                "hostile.volume",
                json!({ "count": 40, "bytes": MIB, "ignore_errors": true }),
            )
        })
        .collect();
    host.enqueue(&attack);
    host.enqueue(&ignoring);
    let served = host.enqueue_one("order.created", order("o-volume"));
    wait_served(&host, &served);

    host.wait_drained("hostile.volume");
    let dead = host.dead_letters();
    let refused: Vec<&Value> = dead
        .iter()
        .filter(|d| d["event_type"] == "hostile.volume")
        .collect();
    assert_eq!(
        refused.len(),
        8,
        "each delivery that kept its refusal is dead: {dead:#?}"
    );
    for letter in &refused {
        let reason = letter["last_error"].as_str().unwrap_or_default();
        assert!(
            reason.contains("at most 16777216 payload bytes"),
            "the reason names the emitted-bytes limit: {reason}"
        );
    }
    // Those that ignored the refusal succeeded with what fit: 16 events of 1 MiB.
    let out = store::messages(&host.db(), "hostile.volume.out");
    assert_eq!(out.len(), 4 * 16, "what fit under the cap was committed");

    let peak = peak_rss(pid);
    assert!(
        peak < 320 * MIB,
        "the host's peak RSS is {} MiB: more than 4 deliveries × 16 MiB of emitted payloads (with their copies in the store) and the host's own needs",
        peak / MIB
    );
}

#[test]
fn a_self_emitting_loop_ends_at_the_chain_depth_as_dead_letters() {
    let settings = Settings {
        concurrency: 4,
        ..Settings::default()
    };
    let host = TestHost::with_config_text(&config(&settings, "max_chain_depth = 6"));
    host.deploy(HOSTILE, "hostile.wasm");
    host.deploy(ORDER_VALIDATOR, "order-validator.wasm");
    host.start();

    // Each delivery emits two of its own type: unbounded, the queue doubles
    // with every generation.
    host.enqueue_one("hostile.loop", json!({ "round": 1 }));
    let served = host.enqueue_one("order.created", order("o-loop"));
    wait_served(&host, &served);

    host.wait_drained("hostile.loop");
    let dead: Vec<Value> = host
        .dead_letters()
        .into_iter()
        .filter(|d| d["event_type"] == "hostile.loop")
        .collect();
    // Depths 0 to 6: the 2^6 messages at depth 6 may not emit.
    assert_eq!(
        dead.len(),
        64,
        "one dead letter per message at the last depth"
    );
    for letter in &dead {
        let reason = letter["last_error"].as_str().unwrap_or_default();
        assert!(
            reason.contains("chain depth limit reached")
                && reason.contains("plugins.max_chain_depth is 6"),
            "the reason names the chain-depth limit: {reason}"
        );
        assert_eq!(letter["attempts"], 1, "a loop is not retried: {letter}");
    }
    assert_eq!(host.stats().of("hostile.loop").queued, 0, "the loop ended");
    let peak = peak_rss(host.pid());
    assert!(
        peak < 320 * MIB,
        "the host's peak RSS is {} MiB",
        peak / MIB
    );
}

#[test]
fn slow_handlers_never_hold_every_slot_while_another_type_waits() {
    let settings = Settings {
        concurrency: 4,
        plugin_timeout: "15m",
        lease: "20m",
        ..Settings::default()
    };
    let host = TestHost::with_settings(&settings);
    host.deploy(HOSTILE, "hostile.wasm");
    host.deploy(ORDER_VALIDATOR, "order-validator.wasm");
    host.start();

    // Sixteen deliveries that each hold a slot for 10 minutes: far longer
    // than the wait below, so none can finish while the test runs.
    let slow: Vec<Value> = (0..16)
        .map(|_| event("hostile.slow", json!({ "ms": 600_000 })))
        .collect();
    host.enqueue(&slow);
    let pid = host.pid();
    host.wait_until("slow deliveries to hold the slots", || {
        host.stats().of("hostile.slow").inflight >= 3
    });

    let served = host.enqueue_one("order.created", order("o-slow"));
    wait_served(&host, &served);
    // Served while every slow delivery still runs or waits: none had
    // finished, so the order did not wait for a slot to free.
    let counts = host.stats().of("hostile.slow");
    assert_eq!(
        counts.queued + counts.inflight,
        16,
        "the order was served during the attack, not after a slow delivery ended: {counts:?}"
    );
    let peak = peak_rss(pid);
    assert!(
        peak < 320 * MIB,
        "the host's peak RSS is {} MiB",
        peak / MIB
    );
    host.sigkill();
}
