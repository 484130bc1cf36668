//! Failing deliveries back off and retry, end as dead letters saying why,
//! and come back when an operator redrives them.

#[path = "harness/mod.rs"]
mod harness;

use harness::{TestHost, event, store};
use mailroom_test_artifacts::FLAKY;
use serde_json::{Value, json};

/// The attempt numbers of `id`'s deliveries that ended with `outcome`
/// (`acked`, `retry`, `dead`), from the host's JSON log.
fn attempts_with_outcome(host: &TestHost, id: &str, outcome: &str) -> Vec<u64> {
    host.delivery_lines(id)
        .iter()
        .filter(|line| line["outcome"] == outcome)
        .filter_map(|line| line["attempt"].as_u64())
        .collect()
}

#[test]
fn retries_back_off_until_success_or_a_dead_letter_that_can_be_redriven() {
    let host = TestHost::new();
    host.deploy(FLAKY, "flaky.wasm");
    host.start();

    let mut gives_up = event("flaky", json!({ "succeed_on_attempt": 99 }));
    gives_up["max_attempts"] = json!(3);
    let succeeds = event("flaky", json!({ "succeed_on_attempt": 3 }));
    let ids = host.enqueue(&[gives_up, succeeds]);
    let (gives_up, succeeds) = (&ids[0], &ids[1]);

    host.wait_until("the flaky messages to be settled", || {
        let stats = host.stats().of("flaky");
        stats.queued == 0 && stats.inflight == 0 && stats.dead == 1
    });

    // Succeeding on attempt 3: two retries, then acked.
    assert!(
        store::message(&host.db(), succeeds).is_none(),
        "the message that succeeds on attempt 3 is acked"
    );
    assert_eq!(
        attempts_with_outcome(&host, succeeds, "retry"),
        [1, 2],
        "it failed twice first"
    );
    assert_eq!(
        attempts_with_outcome(&host, succeeds, "acked"),
        [3],
        "it was acked on attempt 3"
    );

    // Never succeeding within 3 attempts: a dead letter with the reason.
    let dead = host.dead_letters();
    assert_eq!(dead.len(), 1, "{dead:#?}");
    assert_eq!(dead[0]["id"], gives_up.as_str(), "{dead:#?}");
    assert_eq!(dead[0]["attempts"], 3, "{dead:#?}");
    let last_error = dead[0]["last_error"].as_str().unwrap_or_default();
    assert!(
        last_error.contains("gave up after 3 attempts"),
        "last_error: {last_error}"
    );
    assert!(
        last_error.contains("attempt 3 fails on purpose"),
        "the plugin's last reason is kept: {last_error}"
    );
    assert_eq!(attempts_with_outcome(&host, gives_up, "retry"), [1, 2]);
    assert_eq!(attempts_with_outcome(&host, gives_up, "dead"), [3]);

    // Redriven, it is queued again with its attempts reset, and runs its
    // three attempts again before it is dead once more.
    let redriven = host.mailroom(&["dlq", "redrive", gives_up]).success();
    host.wait_until("the redriven message to run again and die again", || {
        attempts_with_outcome(&host, gives_up, "dead").len() == 2
    });
    assert_eq!(
        attempts_with_outcome(&host, gives_up, "retry"),
        [1, 2, 1, 2],
        "after a redrive the attempts start again from 1 (redrive said: {redriven})"
    );
    let shown: Value = host.json(&["dlq", "show", gives_up, "--json"]);
    assert_eq!(shown["attempts"], 3, "{shown:#}");
    assert!(
        shown["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("gave up after 3 attempts"),
        "{shown:#}"
    );

    host.stop();
}
