//! Operating live queues with the real binary: a type paused by
//! `mailroom pause` is claimed by no host sharing the store, across a
//! restart, until `mailroom resume`; queued messages are found, shown and
//! cancelled with `mailroom messages`, and one in flight is refused.

#[path = "harness/mod.rs"]
mod harness;
#[path = "../../runtime/tests/store_support/mod.rs"]
mod store_support;

use harness::{Settings, TestHost, event};
use mailroom_test_artifacts::{BEHAVIOUR, ORDER_VALIDATOR};
use serde_json::json;
use store_support::fresh_postgres_database;

fn config(url: &str) -> String {
    format!(
        r#"[store]
url = "{url}"

[plugins]
dir = "plugins"

[dispatcher]
concurrency = 2
poll_interval = "500ms"
reclaim_interval = "1s"
lease = "30s"

[log]
format = "json"
"#
    )
}

fn order(order_id: &str) -> serde_json::Value {
    event(
        "order.created",
        json!({ "order_id": order_id, "customer": "c@example.com", "items": [{ "sku": "A-1", "qty": 1, "price": 1 }] }),
    )
}

/// Waits until every order so far is handled: proof that the hosts are
/// claiming, so a paused type still queued was passed over, not missed.
fn orders_handled(host: &TestHost) {
    host.wait_drained("order.created");
}

#[test]
fn a_paused_type_waits_on_every_host_and_across_a_restart_until_resumed() {
    let url = tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(fresh_postgres_database());
    let hosts: Vec<TestHost> = (0..2)
        .map(|_| TestHost::with_config_text(&config(&url)))
        .collect();
    for host in &hosts {
        host.deploy(BEHAVIOUR, "behaviour.wasm");
        host.deploy(ORDER_VALIDATOR, "order-validator.wasm");
        host.start();
    }
    let ops = &hosts[0];
    let paused = ops.mailroom(&["pause", "behaviour"]).success();
    assert!(paused.stdout.contains("paused behaviour"), "{paused}");

    let ids = ops.enqueue(&vec![event("behaviour", json!({ "action": "succeed" })); 5]);
    ops.enqueue(&[order("o-1")]);
    orders_handled(ops);
    let stats = ops.stats();
    assert_eq!(stats.of("behaviour").queued, 5, "{:?}", stats.0);
    assert_eq!(stats.0["by_event_type"]["behaviour"]["paused"], json!(true));
    for id in &ids {
        let shown = ops.json(&["messages", "show", id, "--json"]);
        assert_eq!(
            (shown["state"].as_str(), shown["attempts"].as_u64()),
            (Some("queued"), Some(0))
        );
    }

    // A restart of every host keeps the pause: it lives in the store.
    for host in &hosts {
        host.stop();
        host.start();
    }
    ops.enqueue(&[order("o-2")]);
    orders_handled(ops);
    assert_eq!(ops.stats().of("behaviour").queued, 5);

    let resumed = hosts[1].mailroom(&["resume", "behaviour"]).success();
    assert!(resumed.stdout.contains("resumed behaviour"), "{resumed}");
    ops.wait_drained("behaviour");
    assert_eq!(
        ops.stats().0["by_event_type"]["behaviour"]["paused"],
        json!(false)
    );
    for host in &hosts {
        host.stop();
    }
}

#[test]
fn queued_messages_are_listed_shown_and_cancelled_but_one_in_flight_is_not() {
    let host = TestHost::with_settings(&Settings {
        plugin_timeout: "60s",
        lease: "90s",
        ..Settings::default()
    });
    host.deploy(BEHAVIOUR, "behaviour.wasm");
    host.start();
    // One message sleeps in its handler: in flight for the whole test.
    let running = host.enqueue_one("behaviour", json!({ "action": "sleep", "ms": 600_000 }));
    host.wait_until("the sleeper to be in flight", || {
        host.stats().of("behaviour").inflight == 1
    });
    let queued = host.enqueue(&vec![event("nobody.handles", json!({ "n": 1 })); 3]);

    let page = host.json(&["messages", "list", "--state", "queued", "--json"]);
    let listed: Vec<&str> = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert_eq!(
        listed,
        queued.iter().map(String::as_str).collect::<Vec<_>>()
    );

    let shown = host.json(&["messages", "show", &running, "--json"]);
    assert_eq!(shown["state"], json!("inflight"));
    let owner = shown["lease"]["owner"].as_str().expect("a lease holder");
    assert!(owner.ends_with(&format!(":{}", host.pid())), "{owner}");

    let refused = host.mailroom(&["messages", "cancel", &running, &queued[0], "--json"]);
    assert_eq!(
        refused.status.code(),
        Some(1),
        "not everything named was cancelled: {refused}"
    );
    let report = refused.json();
    assert_eq!(report["cancelled"], json!(1));
    let reason = report["refused"][0]["reason"].as_str().expect("a reason");
    assert!(reason.starts_with("in flight"), "{reason}");

    let bulk = host.mailroom(&["messages", "cancel", "--event-type", "nobody.handles"]);
    assert_eq!(
        bulk.status.code(),
        Some(2),
        "a bulk cancel needs --yes: {bulk}"
    );
    let bulk = host
        .mailroom(&[
            "messages",
            "cancel",
            "--event-type",
            "nobody.handles",
            "--yes",
        ])
        .success();
    assert!(
        bulk.stdout.contains("cancelled 2 queued messages"),
        "{bulk}"
    );
    assert_eq!(host.stats().of("nobody.handles").queued, 0);
    assert_eq!(
        host.stats().of("behaviour").inflight,
        1,
        "the running one is untouched"
    );
    host.sigkill();
}
