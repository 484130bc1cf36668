//! What the plugin folder can throw at a running host: files that are not
//! plugins, a broken replacement of a serving plugin, a second plugin for an
//! event type that is already handled, and a plugin removed and put back.
//! Each gets a clear reason in `mailroom plugins`, and nothing else changes.

#[path = "harness/mod.rs"]
mod harness;

use std::collections::BTreeMap;

use harness::{TestHost, store};
use mailroom_test_artifacts::{
    BAD_INFO, BEHAVIOUR, DUPLICATE_ORDER, INFO_TRAPS, NO_EVENT_TYPES, ORDER_VALIDATOR, WRONG_WORLD,
};
use serde_json::json;

/// Enqueues an `echo` for the behaviour guest and waits for its reply.
fn assert_behaviour_serves(host: &TestHost, why: &str) {
    let id = host.enqueue_one("behaviour", json!({ "action": "echo" }));
    host.wait_until(
        &format!("the behaviour plugin to handle an event ({why})"),
        || {
            store::messages(&host.db(), "behaviour.echo")
                .iter()
                .any(|e| e.correlation_id == id)
        },
    );
}

fn half_of(component: &str) -> Vec<u8> {
    let bytes = std::fs::read(component).expect("read a component");
    bytes[..bytes.len() / 2].to_vec()
}

/// Bytes that are no format at all (a fixed pseudo-random sequence).
fn noise(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x9E37_79B9;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x.to_le_bytes()[0]
        })
        .collect()
}

#[test]
fn files_that_are_not_valid_plugins_are_listed_with_their_reasons_and_change_nothing_else() {
    let host = TestHost::new();
    host.deploy(BEHAVIOUR, "behaviour.wasm");
    host.start();
    host.wait_loaded("behaviour");

    let core_module = b"\0asm\x01\0\0\0".to_vec();
    let drops: Vec<(&str, Vec<u8>)> = vec![
        ("empty.wasm", Vec::new()),
        ("truncated.wasm", half_of(ORDER_VALIDATOR)),
        ("noise.wasm", noise(4096)),
        ("core-module.wasm", core_module),
        (
            "wrong-world.wasm",
            std::fs::read(WRONG_WORLD).expect("read WRONG_WORLD"),
        ),
        (
            "bad-info.wasm",
            std::fs::read(BAD_INFO).expect("read BAD_INFO"),
        ),
        (
            "info-traps.wasm",
            std::fs::read(INFO_TRAPS).expect("read INFO_TRAPS"),
        ),
        (
            "no-event-types.wasm",
            std::fs::read(NO_EVENT_TYPES).expect("read NO_EVENT_TYPES"),
        ),
    ];
    for (name, bytes) in &drops {
        host.drop_file(name, bytes);
    }

    let mut reasons = BTreeMap::new();
    for (name, _) in &drops {
        let reason = host.wait_rejected(name);
        assert!(
            !reason.trim().is_empty(),
            "{name} is rejected with a reason"
        );
        reasons.insert(*name, reason);
    }
    let plugins = host.plugins();
    let loaded: Vec<_> = plugins["loaded"]
        .as_array()
        .expect("loaded")
        .iter()
        .map(|p| p["name"].clone())
        .collect();
    assert_eq!(
        loaded,
        [json!("behaviour")],
        "only the good plugin is loaded: {plugins:#}"
    );
    // Each kind of bad file gets its own explanation, not one catch-all.
    let mut by_reason: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (name, reason) in &reasons {
        by_reason.entry(reason.as_str()).or_default().push(name);
    }
    let shared: Vec<_> = by_reason
        .iter()
        .filter(|(_, names)| names.len() > 1)
        .collect();
    assert!(
        shared.is_empty(),
        "files given the same reason: {shared:#?}\nall reasons: {reasons:#?}"
    );
    assert!(reasons["empty.wasm"].contains("empty"), "{reasons:#?}");

    assert_behaviour_serves(&host, "after the bad drops");
    host.stop();
}

#[test]
fn a_broken_replacement_of_a_serving_plugin_keeps_the_last_good_version_serving() {
    let host = TestHost::new();
    host.deploy(BEHAVIOUR, "behaviour.wasm");
    host.start();
    host.wait_loaded("behaviour");
    assert_behaviour_serves(&host, "before the replacement");

    // Written in place, as a careless copy would, and left half-written.
    std::fs::write(
        host.plugins_dir().join("behaviour.wasm"),
        half_of(BEHAVIOUR),
    )
    .expect("overwrite the plugin");
    let reason = host.wait_rejected("behaviour.wasm");
    let plugins = host.plugins();
    assert!(
        plugins["loaded"]
            .as_array()
            .expect("loaded")
            .iter()
            .any(|p| p["name"] == "behaviour"
                && p["path"]
                    .as_str()
                    .is_some_and(|path| path.ends_with("behaviour.wasm"))),
        "the last good version is still listed as loaded while the new file is rejected ({reason}): {plugins:#}"
    );
    assert_behaviour_serves(&host, "after the broken replacement");

    // A good file again: served, and no longer listed as rejected.
    host.deploy(BEHAVIOUR, "behaviour.wasm");
    host.wait_until("the good file to clear the rejection", || {
        host.rejection("behaviour.wasm").is_none()
    });
    host.wait_loaded("behaviour");
    assert_behaviour_serves(&host, "after the repair");
    host.stop();
}

#[test]
fn a_second_plugin_for_a_handled_event_type_is_refused_naming_both() {
    let host = TestHost::new();
    host.deploy(ORDER_VALIDATOR, "order-validator.wasm");
    host.start();
    host.wait_loaded("order-validator");

    host.deploy(DUPLICATE_ORDER, "duplicate-order.wasm");
    let reason = host.wait_rejected("duplicate-order.wasm");
    for needle in ["order-validator", "duplicate-order", "order.created"] {
        assert!(
            reason.contains(needle),
            "the refusal names {needle}: {reason}"
        );
    }
    assert!(
        host.loaded_version("duplicate-order").is_none(),
        "{:#}",
        host.plugins()
    );

    // The first plugin keeps serving the type.
    let id = host.enqueue_one(
        "order.created",
        json!({ "order_id": "o-1", "customer": "ada@example.com", "items": [{ "sku": "A", "qty": 1, "price": 2.5 }] }),
    );
    host.wait_until("order-validator to accept the order", || {
        store::messages(&host.db(), "order.accepted")
            .iter()
            .any(|m| m.correlation_id == id)
    });
    assert!(
        host.dead_letters().is_empty(),
        "duplicate-order never handled it"
    );
    host.stop();
}

#[test]
fn a_removed_plugin_stops_serving_and_its_events_wait_until_it_is_back() {
    let host = TestHost::new();
    let file = host.deploy(BEHAVIOUR, "behaviour.wasm");
    host.deploy(ORDER_VALIDATOR, "order-validator.wasm");
    host.start();
    host.wait_loaded("behaviour");
    host.wait_loaded("order-validator");
    assert_behaviour_serves(&host, "before the removal");

    std::fs::remove_file(&file).expect("remove the plugin");
    host.wait_until("the plugin to be unloaded", || {
        host.loaded_version("behaviour").is_none()
    });

    let ids = host.enqueue(&vec![
        harness::event(
            "behaviour",
            json!({ "action": "echo" })
        );
        3
    ]);
    // An order enqueued after them and handled proves the host has claimed
    // since: the echoes were passed over, not missed.
    let order = host.enqueue_one(
        "order.created",
        json!({ "order_id": "o-1", "customer": "ada@example.com", "items": [{ "sku": "A", "qty": 1, "price": 2.5 }] }),
    );
    host.wait_until("the order to be handled", || {
        store::message(&host.db(), &order).is_none()
    });
    let stats = host.stats();
    assert_eq!(stats.of("behaviour").queued, 3, "{stats}");
    if let Some(waiting) = stats.waiting_for_handler() {
        // The echoes, and the follow-ups nobody handles, all wait.
        assert_eq!(
            waiting,
            stats.totals().queued,
            "the events wait for a handler: {stats}"
        );
    }
    for id in &ids {
        let stored = store::message(&host.db(), id).expect("stored");
        assert_eq!(
            (stored.state.as_str(), stored.attempts),
            ("queued", 0),
            "{id} waits without spending attempts"
        );
    }

    host.deploy(BEHAVIOUR, "behaviour.wasm");
    host.wait_until(
        "the waiting events to be handled once the plugin is back",
        || {
            let echoes = store::messages(&host.db(), "behaviour.echo");
            ids.iter()
                .all(|id| echoes.iter().any(|e| e.correlation_id == *id))
        },
    );
    host.stop();
}
