//! A host whose store keeps failing says so: `/readyz` answers 503 naming
//! the failing operation, `/metrics` counts the failures by kind, and both
//! recover once the store does.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mailroom::config::Config;
use mailroom::host::Host;
use mailroom::message::NewMessage;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// How long any wait may take before the test fails.
const TIMEOUT: Duration = Duration::from_secs(60);

/// `GET path`: the status code and the body.
async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .expect("send");
    let mut reply = String::new();
    stream.read_to_string(&mut reply).await.expect("read");
    let status = reply
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("a status line: {reply}"));
    (status, reply)
}

/// Polls `probe` until it answers `Some`, for at most [`TIMEOUT`].
async fn wait_for<T>(what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The value of `mailroom_store_errors_total{kind="<kind>"}`.
fn store_errors(metrics: &str, kind: &str) -> Option<u64> {
    let prefix = format!("mailroom_store_errors_total{{kind=\"{kind}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_and_metrics_follow_the_store_health() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = Config::default();
    config.store.path = dir.path().join("mailroom.db");
    config.store.busy_timeout = Duration::from_millis(20);
    config.plugins.dir = dir.path().join("plugins");
    std::fs::create_dir_all(&config.plugins.dir).expect("plugin dir");
    mailroom_test_artifacts::deploy(mailroom_test_artifacts::BEHAVIOUR, &config.plugins.dir, "behaviour.wasm")
        .expect("deploy");
    config.plugins.cache_dir =
        Some(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("store-health-plugin-cache"));
    config.dispatcher.poll_interval = Duration::from_millis(20);
    // Reclaims write (the heartbeat): each one fails while the lock is held.
    config.dispatcher.reclaim_interval = Duration::from_millis(50);
    config.http.listen = Some("127.0.0.1:0".parse().expect("addr"));
    let host = Host::start(&config).await.expect("host starts");
    let addr = host.http_addr().expect("HTTP is on");

    let (status, _) = get(addr, "/readyz").await;
    assert_eq!(status, 200);
    let (_, metrics) = get(addr, "/metrics").await;
    for kind in mailroom::store::StoreError::KINDS {
        assert_eq!(store_errors(&metrics, kind), Some(0), "{kind} at zero:\n{metrics}");
    }

    // Due while the lock is held: claims of it fail too.
    let due_soon = NewMessage::new("behaviour", br#"{"action":"succeed"}"#.to_vec())
        .with_delay(Duration::from_millis(500));
    let id = host.enqueue(vec![due_soon]).await.expect("enqueue").remove(0).id;
    let lock = rusqlite::Connection::open(&config.store.path).expect("raw open");
    lock.execute_batch("BEGIN EXCLUSIVE").expect("hold the write lock");
    let body = wait_for("/readyz to fail", async || {
        let (status, body) = get(addr, "/readyz").await;
        (status == 503).then_some(body)
    })
    .await;
    assert!(body.contains("the store is failing"), "{body}");
    assert!(body.contains("locked"), "{body}");
    // The loops back off: retried every 50 ms (reclaims) or every 20 ms
    // poll (claims), they would fail about a hundred times in two seconds;
    // backing off from 250 ms, a handful each.
    let (_, metrics) = get(addr, "/metrics").await;
    let first = store_errors(&metrics, "locked").unwrap_or(0);
    assert!(first >= 1, "{metrics}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, metrics) = get(addr, "/metrics").await;
    let failures = store_errors(&metrics, "locked").unwrap_or(0) - first;
    assert!(failures <= 15, "{failures} failed store calls in 2 s: a loop does not back off");
    drop(lock);

    wait_for("/readyz to recover", async || {
        (get(addr, "/readyz").await.0 == 200).then_some(())
    })
    .await;
    wait_for("the delayed message to be delivered", async || {
        host.store().message(id).await.is_err().then_some(())
    })
    .await;
    host.shutdown().await;
}
