//! A running host picks up what other processes do: plugins dropped into its
//! folder start serving, and events enqueued by `mailroom enqueue` are
//! handled without any signal to the host.

#[path = "harness/mod.rs"]
mod harness;

use std::collections::BTreeSet;
use std::time::Duration;

use harness::{Settings, TestHost, event, store};
use mailroom_test_artifacts::{BEHAVIOUR, NOTIFIER, ORDER_VALIDATOR};
use serde_json::json;

fn order(order_id: &str, items: serde_json::Value) -> serde_json::Value {
    event(
        "order.created",
        json!({ "order_id": order_id, "customer": format!("{order_id}@example.com"), "items": items }),
    )
}

#[test]
fn plugins_dropped_into_a_running_host_start_serving() {
    let host = TestHost::new();
    host.start();

    let valid = ["o-1", "o-2", "o-3"];
    let mut orders: Vec<_> = valid
        .iter()
        .map(|id| order(id, json!([{ "sku": "A-1", "qty": 2, "price": 19.99 }, { "sku": "B-2", "qty": 1, "price": 0.5 }])))
        .collect();
    orders.push(order(
        "o-bad",
        json!([{ "sku": "A-1", "qty": 1, "price": 1 }, { "sku": "B-2", "qty": 0, "price": 1 }]),
    ));
    let ids = host.enqueue(&orders);
    let bad_id = ids[3].clone();

    // Nobody handles order.created yet: the orders wait, spending nothing.
    host.wait_until("the orders to show as waiting for a handler", || {
        let stats = host.stats();
        stats.of("order.created").queued == 4 && stats.waiting_for_handler().is_none_or(|n| n == 4)
    });
    for id in &ids {
        let stored = store::message(&host.db(), id).expect("a waiting order is stored");
        assert_eq!(
            (stored.state.as_str(), stored.attempts),
            ("queued", 0),
            "order {id} waits unclaimed"
        );
    }

    host.deploy(ORDER_VALIDATOR, "order-validator.wasm");
    host.deploy(NOTIFIER, "notifier.wasm");

    host.wait_until("the valid orders to become notification requests", || {
        let stats = host.stats();
        stats.of("order.created").queued == 0
            && stats.of("order.created").inflight == 0
            && stats.of("order.accepted").queued == 0
            && stats.of("order.accepted").inflight == 0
            && stats.of("notification.requested").queued == 3
    });
    let stats = host.stats();
    assert_eq!(
        stats.of("order.created").dead,
        1,
        "only the invalid order is dead: {stats}"
    );
    assert_eq!(stats.of("order.accepted").dead, 0, "{stats}");
    // Nobody handles notification.requested: they wait for a handler.
    if let Some(waiting) = stats.waiting_for_handler() {
        assert_eq!(
            waiting, 3,
            "the notification requests wait for a handler: {stats}"
        );
    }

    let notifications = store::messages(&host.db(), "notification.requested");
    let order_ids: BTreeSet<&str> = notifications
        .iter()
        .map(|n| n.payload["order_id"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        order_ids,
        valid.into_iter().collect(),
        "one notification per valid order: {notifications:#?}"
    );
    for n in &notifications {
        let order_id = n.payload["order_id"].as_str().unwrap_or_default();
        assert_eq!(
            n.payload["customer"],
            format!("{order_id}@example.com"),
            "{n:#?}"
        );
        assert_eq!(n.payload["channel"], "email", "{n:#?}");
        assert_eq!(
            n.payload["message"],
            format!("Your order {order_id} (40.48) has been accepted."),
            "the total is carried through order.accepted: {n:#?}"
        );
        assert_eq!(
            n.key.as_deref(),
            Some(format!("notification.requested:{order_id}").as_str())
        );
        assert_eq!(n.source.as_deref(), Some("plugin:notifier"), "{n:#?}");
        // The chain keeps the correlation id of the order that started it.
        let index = valid
            .iter()
            .position(|v| *v == order_id)
            .expect("a valid order");
        assert_eq!(n.correlation_id, ids[index], "{n:#?}");
    }

    // The invalid order is a dead letter naming the field at fault.
    let dead = host.dead_letters();
    assert_eq!(dead.len(), 1, "{dead:#?}");
    assert_eq!(dead[0]["id"], bad_id.as_str(), "{dead:#?}");
    assert_eq!(dead[0]["event_type"], "order.created", "{dead:#?}");
    assert_eq!(
        dead[0]["attempts"], 1,
        "a fatal error is not retried: {dead:#?}"
    );
    let last_error = dead[0]["last_error"].as_str().unwrap_or_default();
    assert!(
        last_error.contains("items[1].qty must be > 0, got 0"),
        "last_error: {last_error}"
    );

    let shown = host.json(&["dlq", "show", &bad_id, "--json"]);
    assert_eq!(shown["id"], bad_id.as_str(), "{shown:#}");
    assert!(
        shown["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("items[1].qty"),
        "`dlq show` names the field: {shown:#}"
    );
    assert!(
        shown.to_string().contains("o-bad"),
        "`dlq show` includes the payload: {shown:#}"
    );

    host.stop();
}

#[test]
fn an_event_enqueued_by_another_process_wakes_an_idle_host() {
    let host = TestHost::new();
    host.deploy(BEHAVIOUR, "behaviour.wasm");
    host.start();
    host.wait_loaded("behaviour");

    for round in 0..3 {
        // Idle: nothing queued, nothing in flight.
        let stats = host.stats();
        assert_eq!(
            stats.of("behaviour").queued + stats.of("behaviour").inflight,
            0,
            "{stats}"
        );

        let id = host.enqueue_one("behaviour", json!({ "action": "echo" }));
        let echo = host.wait_for(&format!("round {round}: the event to be handled"), || {
            store::messages(&host.db(), "behaviour.echo")
                .into_iter()
                .find(|e| e.correlation_id == id)
        });
        assert_eq!(echo.payload["id"], id.as_str(), "{echo:#?}");
        assert_eq!(echo.payload["attempt"], 1, "{echo:#?}");
        host.wait_until("the event to be acked", || {
            store::message(&host.db(), &id).is_none()
        });
    }

    host.stop();
}

#[test]
fn an_event_enqueued_by_another_process_just_after_start_is_handled() {
    // Long intervals widen the moment between the host's first claim and
    // its first look for other processes' commits; an enqueue landing there
    // must still be noticed.
    echo_from_another_process_is_handled("1s", Duration::ZERO);
}

#[test]
fn another_process_enqueueing_wakes_an_idle_host_without_waiting_for_the_poll() {
    // The poll would not look for an hour: only the store's file watch can
    // wake the idle host in time. Idle first: the start-up claims are over.
    echo_from_another_process_is_handled("1h", Duration::from_millis(300));
}

/// Starts a host polling every `poll_interval`, waits `idle_first`, then
/// enqueues an echo through the CLI (another process) and waits for the
/// host to handle it.
fn echo_from_another_process_is_handled(poll_interval: &'static str, idle_first: Duration) {
    let host = TestHost::with_settings(&Settings {
        poll_interval,
        reclaim_interval: "1h",
        ..Settings::default()
    });
    host.deploy(BEHAVIOUR, "behaviour.wasm");
    host.start();
    std::thread::sleep(idle_first);

    let id = host.enqueue_one("behaviour", json!({ "action": "echo" }));
    host.wait_until("the event to be handled", || {
        store::messages(&host.db(), "behaviour.echo")
            .iter()
            .any(|e| e.correlation_id == id)
    });
    host.stop();
}
