//! Replacing a plugin's file while messages flow: the new version takes over
//! without losing, failing or repeating a single message.

#[path = "harness/mod.rs"]
mod harness;

use std::collections::{BTreeMap, HashSet};

use harness::{TestHost, event, store};
use mailroom_test_artifacts::{VERSIONED_V1, VERSIONED_V2};
use serde_json::json;

const MESSAGES: usize = 10_000;
const BATCH: usize = 500;
/// The batch before which the new version is deployed.
const SWAP_AT_BATCH: usize = 4;
/// The batch before which the new version must be serving: the batches from
/// here on are all enqueued after the swap.
const SERVING_BY_BATCH: usize = 12;

#[test]
fn a_plugin_replaced_while_ten_thousand_messages_flow_loses_and_fails_none() {
    let host = TestHost::new();
    host.start();
    host.deploy(VERSIONED_V1, "versioned.wasm");
    host.wait_until("version 1.0.0 to be loaded", || {
        host.loaded_version("versioned").as_deref() == Some("1.0.0")
    });

    let mut all_ids = Vec::with_capacity(MESSAGES);
    // Ids enqueued once `mailroom plugins` showed 2.0.0 serving.
    let mut after_swap = HashSet::new();
    let mut swap_shown = false;
    for batch in 0..MESSAGES / BATCH {
        if batch == SWAP_AT_BATCH {
            // Make sure 1.0.0 has handled some before it is replaced.
            host.wait_until("version 1.0.0 to handle some messages", || {
                host.stats().of("versioned.handled").queued > 0
            });
            host.deploy(VERSIONED_V2, "versioned.wasm");
        }
        if batch > SWAP_AT_BATCH && !swap_shown {
            swap_shown = if batch == SERVING_BY_BATCH {
                host.wait_until("version 2.0.0 to be loaded", || {
                    host.loaded_version("versioned").as_deref() == Some("2.0.0")
                });
                true
            } else {
                host.loaded_version("versioned").as_deref() == Some("2.0.0")
            };
        }
        let events: Vec<_> = (0..BATCH)
            .map(|i| event("versioned", json!({ "n": batch * BATCH + i })))
            .collect();
        let ids = host.enqueue(&events);
        if swap_shown {
            after_swap.extend(ids.iter().cloned());
        }
        all_ids.extend(ids);
    }

    host.wait_until("every message to be handled", || {
        let stats = host.stats();
        let versioned = stats.of("versioned");
        versioned.queued == 0
            && versioned.inflight == 0
            && stats.of("versioned.handled").queued as usize == MESSAGES
    });
    let stats = host.stats();
    assert_eq!(
        stats.of("versioned").dead,
        0,
        "no message failed because of the swap: {stats}"
    );
    assert!(host.dead_letters().is_empty(), "no dead letters");

    // Exactly one follow-up per input, naming the input and the version that ran it.
    let handled = store::messages(&host.db(), "versioned.handled");
    assert_eq!(handled.len(), MESSAGES);
    let mut version_of = BTreeMap::new();
    for h in &handled {
        let id = h.payload["id"].as_str().unwrap_or_default().to_owned();
        assert_eq!(
            h.key.as_deref(),
            Some(format!("versioned.handled:{id}").as_str()),
            "{h:#?}"
        );
        assert_eq!(
            h.correlation_id, id,
            "a follow-up inherits its input's correlation id: {h:#?}"
        );
        let version = h.payload["version"].as_str().unwrap_or_default().to_owned();
        assert!(
            version_of.insert(id, version).is_none(),
            "one follow-up per input: {h:#?}"
        );
    }
    let missing: Vec<_> = all_ids
        .iter()
        .filter(|id| !version_of.contains_key(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} inputs have no follow-up, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );

    let by_v1 = version_of.values().filter(|v| *v == "1.0.0").count();
    let by_v2 = version_of.values().filter(|v| *v == "2.0.0").count();
    assert_eq!(
        by_v1 + by_v2,
        MESSAGES,
        "every follow-up names version 1.0.0 or 2.0.0"
    );
    assert!(
        by_v1 > 0,
        "some messages were handled by 1.0.0 before the swap"
    );
    assert!(!after_swap.is_empty());
    let late: Vec<_> = after_swap
        .iter()
        .filter(|id| version_of[*id] != "2.0.0")
        .collect();
    assert!(
        late.is_empty(),
        "{} of the {} messages enqueued after 2.0.0 was shown serving were handled by 1.0.0",
        late.len(),
        after_swap.len()
    );

    eprintln!(
        "{by_v1} messages handled by 1.0.0, {by_v2} by 2.0.0 ({} enqueued after 2.0.0 was shown serving)",
        after_swap.len()
    );

    // None was retried: every delivery of `versioned` was a first attempt and
    // succeeded.
    let deliveries: Vec<_> = host
        .log_events()
        .into_iter()
        .filter(|line| line["event_type"] == "versioned" && line.get("outcome").is_some())
        .collect();
    let failed: Vec<_> = deliveries
        .iter()
        .filter(|l| l["outcome"] != "acked" || l["attempt"] != 1)
        .collect();
    assert!(
        failed.is_empty(),
        "{} deliveries were not a successful first attempt, e.g. {:#?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert_eq!(deliveries.len(), MESSAGES, "one delivery per message");

    host.stop();
}
