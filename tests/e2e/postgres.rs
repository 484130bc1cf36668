//! Many hosts on one PostgreSQL store, through the real binary: three
//! `mailroom run` processes share a queue while hosts are killed with
//! SIGKILL, and a host rides out a restart of the server. Every message is
//! handled, and every follow-up committed exactly once.

#[path = "harness/mod.rs"]
mod harness;
#[path = "../../runtime/tests/store_support/mod.rs"]
mod store_support;

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use harness::{TestHost, event, once};
use mailroom_test_artifacts::BEHAVIOUR;
use rand::Rng;
use serde_json::json;
use store_support::{PrivateCluster, fresh_postgres_database};

const PRODUCER_BATCH: usize = 25;

/// A host configuration on the store at `url`, with short delays.
fn config(url: &str) -> String {
    format!(
        r#"[store]
url = "{url}"

[plugins]
dir = "plugins"

[dispatcher]
concurrency = 2
poll_interval = "500ms"
# Heartbeats every second; three missed on a busy machine before a host is
# taken for dead (killed hosts are found at once: their process is gone).
reclaim_interval = "1s"
lease = "30s"

[retry]
max_attempts = 1000
backoff_base = "20ms"
backoff_cap = "200ms"

[log]
format = "json"
"#
    )
}

/// The correlation id of every stored message of `event_type`.
fn correlations(url: &str, event_type: &str) -> Vec<String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(connection);
        client
            .query(
                "SELECT correlation_id FROM mailroom.messages WHERE event_type = $1",
                &[&event_type],
            )
            .await
            .expect("query")
            .iter()
            .map(|row| row.get(0))
            .collect()
    })
}

#[test]
fn three_hosts_share_one_queue_and_kills_lose_nothing() {
    let url = tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(fresh_postgres_database());
    let hosts: Vec<TestHost> = (0..3)
        .map(|_| TestHost::with_config_text(&config(&url)))
        .collect();
    for host in &hosts {
        host.deploy(BEHAVIOUR, "behaviour.wasm");
        host.start();
    }
    hosts[0].wait_until("three hosts to be listed", || {
        hosts[0].json(&["plugins", "--json"])["hosts"]
            .as_array()
            .is_some_and(|h| h.len() == 3)
    });

    let input = event(
        "behaviour",
        json!({ "action": "emit", "event_type": "behaviour.emitted" }),
    );
    let enqueued = Mutex::new(Vec::new());
    let stop = AtomicBool::new(false);
    let mut rng = rand::rng();
    const KILLS: usize = 6;
    std::thread::scope(|scope| {
        let _stop_producer = StopOnDrop(&stop);
        scope.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                let ids = hosts[0].enqueue(&vec![input.clone(); PRODUCER_BATCH]);
                enqueued.lock().expect("ids lock").extend(ids);
            }
        });
        for kill in 0..KILLS {
            let before = correlations(&url, "behaviour.emitted").len();
            hosts[0].wait_until(&format!("progress before kill {kill}"), || {
                correlations(&url, "behaviour.emitted").len() > before
            });
            std::thread::sleep(Duration::from_millis(rng.random_range(0..250)));
            let victim = &hosts[rng.random_range(0..hosts.len())];
            victim.sigkill();
            victim.start();
        }
    });

    let enqueued = enqueued.into_inner().expect("ids lock");
    hosts[0].wait_drained("behaviour");
    let stats = hosts[0].stats();
    assert_eq!(stats.of("behaviour").dead, 0, "{stats}");
    let follow_ups = correlations(&url, "behaviour.emitted");
    once::assert_each_once(&enqueued, follow_ups.iter().map(String::as_str));
    // Every host did work: the log of each names deliveries.
    for (n, host) in hosts.iter().enumerate() {
        assert!(
            host.log().contains("\"outcome\":\"acked\""),
            "host {n} delivered nothing"
        );
    }
    eprintln!(
        "{KILLS} kills across 3 hosts: {} inputs each handled once",
        enqueued.len()
    );
    for host in &hosts {
        host.stop();
    }
}

#[test]
fn a_host_rides_out_a_server_restart() {
    let cluster = PrivateCluster::start();
    let host = TestHost::with_config_text(&config(&cluster.url));
    host.deploy(BEHAVIOUR, "behaviour.wasm");
    host.start();
    let input = event(
        "behaviour",
        json!({ "action": "emit", "event_type": "behaviour.emitted" }),
    );
    let mut enqueued = host.enqueue(&vec![input.clone(); 200]);
    cluster.restart();
    host.wait_until("the host to notice the restart", || {
        host.log().contains("lost the connection that listens for commits")
    });
    // Enqueues made after the restart wake the host again (it listens anew).
    enqueued.extend(host.enqueue(&vec![input; 200]));
    host.wait_drained("behaviour");
    host.wait_until("the host to listen again", || {
        host.log().contains("listening for commits again")
    });
    let follow_ups = correlations(&cluster.url, "behaviour.emitted");
    once::assert_each_once(&enqueued, follow_ups.iter().map(String::as_str));
    host.stop();
}

/// Sets its flag when dropped.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}
