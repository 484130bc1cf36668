//! The HTTP API over a real socket (127.0.0.1:0), against a real store and
//! the real plugins: every endpoint, the bad inputs, the token, and metrics
//! that count what happened.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::{HeaderMap, Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use mailroom::config::Config;
use mailroom::host::Host;
use mailroom_test_artifacts as artifacts;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

const TOKEN: &str = "s3cret-token";
/// Small, so the size limits are cheap to cross: the body limit is then
/// 8 × 4096 + 64 KiB.
const MAX_PAYLOAD: usize = 4096;

/// A host with `plugins` deployed, serving HTTP on a free loopback port.
async fn start(token: Option<&str>, plugins: &[(&str, &str)]) -> (tempfile::TempDir, Host) {
    start_with(token, plugins, |_| {}).await
}

/// As [`start`], with `tweak` applied to the configuration.
async fn start_with(
    token: Option<&str>,
    plugins: &[(&str, &str)],
    tweak: impl FnOnce(&mut Config),
) -> (tempfile::TempDir, Host) {
    let dir = tempfile::tempdir().expect("temp dir");
    let plugin_dir = dir.path().join("plugins");
    std::fs::create_dir_all(&plugin_dir).expect("plugin dir");
    for (component, name) in plugins {
        artifacts::deploy(component, &plugin_dir, name).expect("deploy");
    }
    let mut config = Config::default();
    config.store.path = dir.path().join("mailroom.db");
    config.store.max_payload_bytes = MAX_PAYLOAD;
    config.plugins.dir = plugin_dir;
    config.plugins.cache_dir = Some(shared_cache());
    config.dispatcher.poll_interval = Duration::from_millis(20);
    config.http.listen = Some("127.0.0.1:0".parse().expect("addr"));
    config.http.token = token.map(str::to_owned);
    tweak(&mut config);
    let host = Host::start(&config).await.expect("host starts");
    (dir, host)
}

fn shared_cache() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("http-plugin-cache")
}

/// A tiny HTTP/1 client for one server.
struct Api {
    addr: SocketAddr,
    token: Option<String>,
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// The error body's `code`, checking the one error shape on the way.
    fn error(&self) -> Value {
        let body = self.json();
        let error = body["error"].clone();
        assert!(
            error["code"].is_string() && error["message"].is_string(),
            "error shape: {body}"
        );
        error
    }
}

impl Api {
    fn for_host(host: &Host, token: Option<&str>) -> Self {
        Self {
            addr: host.http_addr().expect("HTTP is on"),
            token: token.map(str::to_owned),
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: impl Into<Bytes>,
    ) -> Reply {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "localhost");
        if let Some(token) = &self.token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let request = request.body(Full::new(body.into())).expect("request");
        let stream = TcpStream::connect(self.addr).await.expect("connect");
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("handshake");
        tokio::spawn(connection);
        let response = sender.send_request(request).await.expect("response");
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("body").to_bytes();
        Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, None, Bytes::new()).await
    }

    async fn post_json(&self, path: &str, body: &Value) -> Reply {
        self.send(
            Method::POST,
            path,
            Some("application/json"),
            body.to_string(),
        )
        .await
    }

    /// The ids of a 202 enqueue.
    async fn enqueue(&self, body: &Value) -> Vec<String> {
        let reply = self.post_json("/v1/events", body).await;
        assert_eq!(
            reply.status,
            StatusCode::ACCEPTED,
            "{}",
            String::from_utf8_lossy(&reply.body)
        );
        reply.json()["ids"]
            .as_array()
            .expect("ids")
            .iter()
            .map(|id| id.as_str().expect("id").to_owned())
            .collect()
    }

    async fn stats(&self) -> Value {
        let reply = self.get("/v1/stats").await;
        assert_eq!(reply.status, StatusCode::OK);
        reply.json()
    }

    /// Every sample of `/metrics`, keyed by name and sorted labels.
    async fn metrics(&self) -> HashMap<String, f64> {
        let reply = self.get("/metrics").await;
        assert_eq!(reply.status, StatusCode::OK);
        let content_type = reply.headers["content-type"].to_str().expect("text");
        assert!(
            content_type.starts_with("application/openmetrics-text"),
            "{content_type}"
        );
        let text = String::from_utf8(reply.body.to_vec()).expect("UTF-8");
        let lines = text.lines().map(|l| Ok(l.to_owned()));
        let scrape = prometheus_parse::Scrape::parse(lines).expect("Prometheus text parses");
        scrape
            .samples
            .into_iter()
            .filter_map(|s| {
                let value = match s.value {
                    prometheus_parse::Value::Counter(v)
                    | prometheus_parse::Value::Gauge(v)
                    | prometheus_parse::Value::Untyped(v) => v,
                    _ => return None,
                };
                let mut labels: Vec<_> = s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                labels.sort();
                Some((format!("{}{{{}}}", s.metric, labels.join(",")), value))
            })
            .collect()
    }

    /// Polls `/v1/stats` until `done` holds (or fails after 60 s).
    async fn wait_for_stats(&self, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let stats = self.stats().await;
            if done(&stats) {
                return stats;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}: {stats}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

fn count(stats: &Value, event_type: &str, state: &str) -> u64 {
    stats["by_event_type"][event_type][state]
        .as_u64()
        .unwrap_or(0)
}

fn order(id: &str) -> Value {
    json!({"order_id": id, "customer": "ada@example.com", "items": [{"sku": "A-1", "qty": 2, "price": 19.99}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posted_events_are_handled_and_counted() {
    let (_dir, host) = start(
        Some(TOKEN),
        &[
            (artifacts::ORDER_VALIDATOR, "order-validator.wasm"),
            (artifacts::NOTIFIER, "notifier.wasm"),
            (artifacts::BEHAVIOUR, "behaviour.wasm"),
        ],
    )
    .await;
    let api = Api::for_host(&host, Some(TOKEN));

    // One object, an array, and NDJSON: 1 + 2 + 2 orders.
    let one = api
        .enqueue(&json!({"event_type": "order.created", "payload": order("o-1"), "key": "order-1", "priority": "high"}))
        .await;
    assert_eq!(one.len(), 1);
    let two = api
        .enqueue(&json!([
            {"event_type": "order.created", "payload": order("o-2"), "source": "shop"},
            {"event_type": "order.created", "payload": order("o-3"), "correlation_id": "checkout-3"},
        ]))
        .await;
    assert_eq!(two.len(), 2);
    let ndjson = format!(
        "{}\n\n{}\n",
        json!({"event_type": "order.created", "payload": order("o-4")}),
        json!({"event_type": "order.created", "payload": order("o-5"), "delay": "10ms", "max_attempts": 3}),
    );
    let reply = api
        .send(
            Method::POST,
            "/v1/events",
            Some("application/x-ndjson"),
            ndjson,
        )
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    assert_eq!(reply.json()["ids"].as_array().map(Vec::len), Some(2));

    // A duplicate key answers with the existing id and stores nothing
    // (while the first is stored: this type has no handler, so it waits).
    let audit =
        json!({"event_type": "audit.recorded", "payload": {"who": "ada"}, "key": "audit-1"});
    let first = api.enqueue(&audit).await;
    let again = api.enqueue(&audit).await;
    assert_eq!(again, first);

    // A fatal failure is dead-lettered.
    api.enqueue(
        &json!({"event_type": "behaviour", "payload": {"action": "fatal", "reason": "no way"}}),
    )
    .await;

    // order.created → order.accepted (notifier) → notification.requested,
    // which has no handler and waits.
    let stats = api
        .wait_for_stats("the chain to finish", |s| {
            count(s, "notification.requested", "queued") == 5 && count(s, "behaviour", "dead") == 1
        })
        .await;
    assert_eq!(count(&stats, "order.created", "queued"), 0, "{stats}");
    assert_eq!(stats["waiting_for_handler"], 6, "{stats}");
    assert_eq!(count(&stats, "audit.recorded", "queued"), 1, "{stats}");

    let m = api.metrics().await;
    let get = |k: &str| {
        m.get(k)
            .copied()
            .unwrap_or_else(|| panic!("{k} missing: {m:?}"))
    };
    assert_eq!(
        get("mailroom_events_enqueued_total{event_type=order.created}"),
        5.0
    );
    assert_eq!(
        get("mailroom_events_enqueued_total{event_type=behaviour}"),
        1.0
    );
    assert_eq!(
        get("mailroom_events_acked_total{event_type=order.created}"),
        5.0
    );
    assert_eq!(
        get("mailroom_events_acked_total{event_type=order.accepted}"),
        5.0
    );
    assert_eq!(
        get("mailroom_events_emitted_total{event_type=notification.requested}"),
        5.0
    );
    assert_eq!(
        get("mailroom_events_dead_lettered_total{event_type=behaviour}"),
        1.0
    );
    assert_eq!(
        get("mailroom_plugin_loads_total{plugin=order-validator}"),
        1.0
    );
    assert_eq!(get("mailroom_plugin_rejections_total{}"), 0.0);
    assert_eq!(
        get("mailroom_events_enqueued_total{event_type=audit.recorded}"),
        1.0
    );
    // Every outcome above (10 acks, 1 dead letter) was committed in some
    // group.
    assert_eq!(get("mailroom_commit_outcomes_sum{}"), 11.0);
    assert!((1.0..=11.0).contains(&get("mailroom_commit_outcomes_count{}")));
    assert_eq!(get("mailroom_queue_depth{state=queued}"), 6.0);
    assert_eq!(get("mailroom_queue_depth{state=dead}"), 1.0);
    assert_eq!(get("mailroom_queue_waiting_for_handler{}"), 6.0);
    assert!(
        m.contains_key("mailroom_queue_oldest_due_age_seconds{}"),
        "{m:?}"
    );
    // The console's deliveries per minute agree with the counters.
    let recent = api.get("/v1/throughput").await.json();
    let total = |event_type: &str, series: &str| -> u64 {
        recent["by_event_type"][event_type][series]
            .as_array()
            .map_or(0, |minutes| minutes.iter().filter_map(Value::as_u64).sum())
    };
    assert_eq!(total("order.created", "handled"), 5, "{recent}");
    assert_eq!(total("order.accepted", "handled"), 5, "{recent}");
    assert_eq!(total("behaviour", "failed"), 1, "{recent}");
    assert_eq!(total("behaviour", "handled"), 0, "{recent}");
    let handled = api.get("/metrics").await;
    let text = String::from_utf8_lossy(&handled.body);
    assert!(
        text.contains("mailroom_handler_duration_seconds_count{plugin=\"notifier\"} 5"),
        "{text}"
    );

    // The plugins endpoint has the CLI's shape.
    let plugins = api.get("/v1/plugins").await;
    assert_eq!(plugins.status, StatusCode::OK);
    let plugins = plugins.json();
    let names: Vec<&str> = plugins["loaded"]
        .as_array()
        .expect("loaded")
        .iter()
        .map(|p| p["name"].as_str().expect("name"))
        .collect();
    for name in ["order-validator", "notifier", "behaviour"] {
        assert!(names.contains(&name), "{plugins}");
    }
    for field in ["name", "version", "event_types", "digest", "path"] {
        assert!(
            plugins["loaded"][0].get(field).is_some(),
            "{field} in {plugins}"
        );
    }
    assert_eq!(plugins["rejected"], json!([]));
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_are_listed_shown_cancelled_and_types_paused_and_resumed() {
    let (_dir, host) = start(None, &[(artifacts::BEHAVIOUR, "behaviour.wasm")]).await;
    let api = Api::for_host(&host, None);

    let paused = api
        .send(Method::POST, "/v1/event-types/behaviour/pause", None, "")
        .await;
    assert_eq!(paused.status, StatusCode::OK);
    assert_eq!(
        paused.json(),
        json!({"event_type": "behaviour", "paused": true, "changed": true})
    );
    let succeed = json!({"action": "succeed"});
    let ids = api
        .enqueue(&json!([
            {"event_type": "behaviour", "payload": succeed},
            {"event_type": "behaviour", "payload": succeed},
            {"event_type": "behaviour", "payload": succeed},
        ]))
        .await;
    let stats = api.stats().await;
    assert_eq!(stats["by_event_type"]["behaviour"]["paused"], json!(true), "{stats}");
    let ready = api.get("/readyz").await.json();
    assert_eq!(ready["paused_event_types"], json!(["behaviour"]), "{ready}");
    let metrics = api.metrics().await;
    assert_eq!(
        metrics.get("mailroom_queue_paused{event_type=behaviour}"),
        Some(&1.0),
        "{metrics:?}"
    );

    let page = api
        .get("/v1/messages?event_type=behaviour&state=queued&limit=2")
        .await;
    assert_eq!(page.status, StatusCode::OK);
    let page = page.json();
    assert_eq!(page["items"][0]["id"], ids[0].as_str(), "{page}");
    assert_eq!(page["items"][0]["state"], "queued");
    assert!(page["next_cursor"].is_string(), "{page}");
    let shown = api.get(&format!("/v1/messages/{}", ids[1])).await.json();
    assert_eq!((shown["state"].clone(), shown["payload"].clone()), (json!("queued"), succeed.clone()));

    let cancelled = api
        .send(Method::DELETE, &format!("/v1/messages/{}", ids[0]), None, "")
        .await;
    assert_eq!(cancelled.status, StatusCode::OK);
    assert_eq!(cancelled.json()["cancelled"], 1);
    let again = api
        .send(Method::DELETE, &format!("/v1/messages/{}", ids[0]), None, "")
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    let rest = api
        .send(Method::DELETE, "/v1/event-types/behaviour/messages", None, "")
        .await;
    assert_eq!(rest.status, StatusCode::OK);
    assert_eq!(rest.json()["cancelled"], 2);
    assert_eq!(count(&api.stats().await, "behaviour", "queued"), 0);

    // Resumed: this host claims at once (no poll needed), and a dead letter
    // cannot be cancelled.
    let fatal = api
        .enqueue(&json!([{"event_type": "behaviour", "payload": {"action": "fatal", "reason": "no"}}]))
        .await;
    let resumed = api
        .send(Method::POST, "/v1/event-types/behaviour/resume", None, "")
        .await;
    assert_eq!(resumed.json()["paused"], json!(false));
    api.wait_for_stats("the resumed message to die", |s| count(s, "behaviour", "dead") == 1)
        .await;
    let dead = api
        .send(Method::DELETE, &format!("/v1/messages/{}", fatal[0]), None, "")
        .await;
    assert_eq!(dead.status, StatusCode::CONFLICT);
    assert!(
        dead.error()["message"]
            .as_str()
            .is_some_and(|m| m.contains("dlq purge")),
        "{}",
        dead.json()
    );
    let bad = api.get("/v1/messages?state=running").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.error()["field"], "state");
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_shown_redriven_and_purged() {
    let (_dir, host) = start(None, &[(artifacts::BEHAVIOUR, "behaviour.wasm")]).await;
    let api = Api::for_host(&host, None);
    let fatal = json!({"action": "fatal", "reason": "cannot"});
    let ids = api
        .enqueue(&json!([
            {"event_type": "behaviour", "payload": fatal, "key": "k-1"},
            {"event_type": "behaviour", "payload": fatal},
            {"event_type": "behaviour", "payload": fatal},
        ]))
        .await;
    api.wait_for_stats("3 dead letters", |s| count(s, "behaviour", "dead") == 3)
        .await;

    // Paged with a cursor, in order of death (the three die in whatever
    // order the deliveries finish): every one once, none twice.
    let first = api
        .get("/v1/dead-letters?event_type=behaviour&limit=2")
        .await;
    assert_eq!(first.status, StatusCode::OK);
    let first = first.json();
    assert_eq!(first["items"].as_array().map(Vec::len), Some(2), "{first}");
    assert_eq!(first["items"][0]["attempts"], 1);
    assert!(
        first["items"][0]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("cannot")),
        "{first}"
    );
    let cursor = first["next_cursor"].as_str().expect("a cursor");
    let rest = api
        .get(&format!(
            "/v1/dead-letters?event_type=behaviour&limit=2&cursor={cursor}"
        ))
        .await
        .json();
    assert_eq!(rest["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(rest["next_cursor"], Value::Null);
    let pages: Vec<&Value> = first["items"]
        .as_array()
        .into_iter()
        .chain(rest["items"].as_array())
        .flatten()
        .collect();
    let deaths: Vec<i64> = pages.iter().filter_map(|d| d["dead_at"].as_i64()).collect();
    assert!(deaths.windows(2).all(|w| w[0] <= w[1]), "in order of death: {deaths:?}");
    let mut listed: Vec<&str> = pages.iter().filter_map(|d| d["id"].as_str()).collect();
    listed.sort_unstable();
    let mut expected: Vec<&str> = ids.iter().map(String::as_str).collect();
    expected.sort_unstable();
    assert_eq!(listed, expected, "each dead letter on exactly one page");
    let other = api.get("/v1/dead-letters?event_type=other").await.json();
    assert_eq!(other["items"], json!([]));

    // Shown with the payload as JSON.
    let shown = api.get(&format!("/v1/dead-letters/{}", ids[0])).await;
    assert_eq!(shown.status, StatusCode::OK);
    let shown = shown.json();
    assert_eq!(shown["payload"], fatal);
    assert_eq!(shown["payload_encoding"], "json");
    assert_eq!(shown["state"], "dead");
    assert_eq!(shown["key"], "k-1");

    // Redriven: handled again, dead again with attempts counted from 0.
    let redriven = api
        .send(
            Method::POST,
            &format!("/v1/dead-letters/{}/redrive", ids[0]),
            None,
            "",
        )
        .await;
    assert_eq!(redriven.status, StatusCode::OK);
    assert_eq!(redriven.json(), json!({"redriven": 1}));
    let redriven_again = api
        .send(
            Method::POST,
            &format!("/v1/dead-letters/{}/redrive", ids[0]),
            None,
            "",
        )
        .await;
    // Either still queued (409), or already dead again (200).
    assert!(
        matches!(redriven_again.status, StatusCode::OK | StatusCode::CONFLICT),
        "{}",
        redriven_again.status
    );
    api.wait_for_stats("3 dead letters again", |s| {
        count(s, "behaviour", "dead") == 3
    })
    .await;
    let by_type = api
        .post_json(
            "/v1/dead-letters/redrive",
            &json!({"event_type": "behaviour"}),
        )
        .await;
    assert_eq!(by_type.json(), json!({"redriven": 3}));
    api.wait_for_stats("3 dead letters again", |s| {
        count(s, "behaviour", "dead") == 3
    })
    .await;
    let all = api
        .post_json("/v1/dead-letters/redrive", &json!({"all": true}))
        .await;
    assert_eq!(all.json(), json!({"redriven": 3}));
    let neither = api.post_json("/v1/dead-letters/redrive", &json!({})).await;
    assert_eq!(neither.status, StatusCode::BAD_REQUEST);
    assert_eq!(neither.error()["field"], "event_type");
    let bad_type = api
        .post_json(
            "/v1/dead-letters/redrive",
            &json!({"event_type": "no spaces"}),
        )
        .await;
    assert_eq!(bad_type.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad_type.error()["field"], "event_type");
    api.wait_for_stats("3 dead letters again", |s| {
        count(s, "behaviour", "dead") == 3
    })
    .await;

    // Purged; then gone.
    let purge = api
        .send(
            Method::DELETE,
            &format!("/v1/dead-letters/{}", ids[1]),
            None,
            "",
        )
        .await;
    assert_eq!(purge.status, StatusCode::OK);
    assert_eq!(purge.json(), json!({"purged": 1}));
    for (method, path) in [
        (Method::DELETE, format!("/v1/dead-letters/{}", ids[1])),
        (Method::GET, format!("/v1/dead-letters/{}", ids[1])),
        (Method::POST, format!("/v1/dead-letters/{}/redrive", ids[1])),
    ] {
        let gone = api.send(method.clone(), &path, None, "").await;
        assert_eq!(gone.status, StatusCode::NOT_FOUND, "{method} {path}");
        assert_eq!(gone.error()["code"], "not_found");
    }
    let bad_id = api.get("/v1/dead-letters/not-a-uuid").await;
    assert_eq!(bad_id.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad_id.error()["field"], "id");
    for (query, field) in [
        ("limit=0", "limit"),
        ("cursor=x", "cursor"),
        ("event_type=a%20b", "event_type"),
        ("sort=asc", "sort"),
    ] {
        let bad = api.get(&format!("/v1/dead-letters?{query}")).await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(bad.error()["field"], field, "{query}");
    }
    assert_eq!(api.stats().await["dead"], 2);

    // Purged by conditions: all must hold; everything needs `all` alone.
    let purge_many = |body: Value| {
        let api = &api;
        async move { api.post_json("/v1/dead-letters/purge", &body).await }
    };
    let none = purge_many(json!({"event_type": "behaviour", "error_contains": "no such thing"})).await;
    assert_eq!(none.json(), json!({"purged": 0}));
    let later = purge_many(json!({"died_after": i64::MAX})).await;
    assert_eq!(later.json(), json!({"purged": 0}));
    let both = purge_many(json!({"all": true, "event_type": "behaviour"})).await;
    assert_eq!(both.status, StatusCode::BAD_REQUEST);
    assert_eq!(both.error()["field"], "all");
    let neither = purge_many(json!({})).await;
    assert_eq!(neither.status, StatusCode::BAD_REQUEST);
    assert_eq!(api.stats().await["dead"], 2, "a refused purge deletes nothing");
    let matching = purge_many(json!({"event_type": "behaviour", "error_contains": "cannot"})).await;
    assert_eq!(matching.status, StatusCode::OK);
    assert_eq!(matching.json(), json!({"purged": 2}));
    assert_eq!(api.stats().await["dead"], 0);
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_names_what_is_wrong_and_stores_nothing() {
    let (_dir, host) = start(None, &[]).await;
    let api = Api::for_host(&host, None);
    let post = |content_type: &'static str, body: String| {
        let api = &api;
        async move {
            api.send(Method::POST, "/v1/events", Some(content_type), body)
                .await
        }
    };

    let malformed = post("application/json", "{\"event_type\": \"a\", ".into()).await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    assert_eq!(malformed.error()["code"], "malformed_json");

    let batch = json!([
        {"event_type": "ok", "payload": 1},
        {"event_type": "not ok", "payload": 2},
    ]);
    let invalid = post("application/json", batch.to_string()).await;
    assert_eq!(invalid.status, StatusCode::BAD_REQUEST);
    let error = invalid.error();
    assert_eq!(
        (
            error["code"].as_str(),
            error["field"].as_str(),
            error["index"].as_u64()
        ),
        (Some("invalid"), Some("event_type"), Some(1)),
        "{error}"
    );

    for (body, field, index) in [
        (
            json!({"event_type": "t", "payload": 1, "prio": "high"}),
            "prio",
            None,
        ),
        (json!({"event_type": "t"}), "payload", None),
        (
            json!({"event_type": "t", "payload": 1, "priority": "urgent"}),
            "priority",
            None,
        ),
        (
            json!({"event_type": "t", "payload": 1, "max_attempts": 0}),
            "max_attempts",
            None,
        ),
        (
            json!({"event_type": "t", "payload": 1, "delay": 5}),
            "delay",
            None,
        ),
        (
            json!([{"event_type": "t", "payload": 1}, {"event_type": "t", "payload": 1, "key": 7}]),
            "key",
            Some(1),
        ),
        (
            json!([{"event_type": "", "payload": 1}]),
            "event_type",
            Some(0),
        ),
    ] {
        let reply = post("application/json", body.to_string()).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}");
        let error = reply.error();
        assert_eq!(error["field"], field, "{body}: {error}");
        assert_eq!(
            error["index"].as_u64(),
            index.map(|i: u64| i),
            "{body}: {error}"
        );
    }

    let ndjson = format!(
        "{}\n{{\"event_type\": \"t\", \"payload\": }}\n",
        json!({"event_type": "t", "payload": 1})
    );
    let bad_line = post("application/x-ndjson", ndjson).await;
    assert_eq!(bad_line.status, StatusCode::BAD_REQUEST);
    let error = bad_line.error();
    assert_eq!(error["index"], 1, "{error}");
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("line 2")),
        "{error}"
    );

    let empty = post("application/json", "[]".into()).await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST);

    let form = post("application/x-www-form-urlencoded", "a=b".into()).await;
    assert_eq!(form.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(form.error()["code"], "unsupported_media_type");
    let none = api.send(Method::POST, "/v1/events", None, "{}").await;
    assert_eq!(none.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // A payload over store.max_payload_bytes, in a body under the limit.
    let big_payload = json!([{"event_type": "t", "payload": 1}, {"event_type": "t", "payload": "x".repeat(MAX_PAYLOAD)}]);
    let too_big = post("application/json", big_payload.to_string()).await;
    assert_eq!(too_big.status, StatusCode::PAYLOAD_TOO_LARGE);
    let error = too_big.error();
    assert_eq!(
        (error["field"].as_str(), error["index"].as_u64()),
        (Some("payload"), Some(1)),
        "{error}"
    );

    // A body over the limit, sent whole.
    let huge = json!([{"event_type": "t", "payload": "x".repeat(100 * 1024)}]);
    let over = post("application/json", huge.to_string()).await;
    assert_eq!(over.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(over.error()["code"], "too_large");

    // Nothing of any refused request was stored.
    assert_eq!(api.stats().await["queued"], 0);

    let unknown = api.get("/v1/nothing-here").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.error()["code"], "not_found");

    // A known endpoint with another method: the same JSON shape, and the
    // methods it does take.
    let wrong_method = api.send(Method::DELETE, "/v1/stats", None, "").await;
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(wrong_method.error()["code"], "method_not_allowed");
    assert!(
        wrong_method.headers["allow"]
            .to_str()
            .is_ok_and(|a| a.contains("GET")),
        "{:?}",
        wrong_method.headers
    );
    let message = wrong_method.error()["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(message.contains("does not take DELETE"), "{message}");
    host.shutdown().await;
}

/// A body announced as 1 GiB is refused from its headers: the server answers
/// 413 before reading (let alone buffering) it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_body_is_refused_before_it_is_read() {
    let (_dir, host) = start(None, &[]).await;
    let addr = host.http_addr().expect("HTTP is on");
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(
            b"POST /v1/events HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n\
              content-length: 1073741824\r\n\r\n[{\"event_type\": \"t\", \"payload\": \"",
        )
        .await
        .expect("write");
    let mut answer = vec![0; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut answer))
        .await
        .expect("answered without the body")
        .expect("read");
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("\"too_large\""), "{answer}");
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_guards_everything_but_healthz() {
    let (_dir, host) = start(Some(TOKEN), &[]).await;
    let anonymous = Api::for_host(&host, None);
    let wrong = Api::for_host(&host, Some("guess"));
    let right = Api::for_host(&host, Some(TOKEN));

    assert_eq!(anonymous.get("/healthz").await.status, StatusCode::OK);
    // The console's files hold no data; it signs in to call the API.
    assert_eq!(anonymous.get("/ui/").await.status, StatusCode::OK);
    for path in [
        "/readyz",
        "/v1/stats",
        "/v1/throughput",
        "/v1/plugins",
        "/v1/dead-letters",
        "/metrics",
        "/v1/openapi.json",
    ] {
        for api in [&anonymous, &wrong] {
            let reply = api.get(path).await;
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{path}");
            assert_eq!(reply.error()["code"], "unauthorized");
            assert_eq!(reply.headers["www-authenticate"], "Bearer");
        }
        assert_eq!(right.get(path).await.status, StatusCode::OK, "{path}");
    }
    let post = anonymous
        .post_json("/v1/events", &json!({"event_type": "t", "payload": 1}))
        .await;
    assert_eq!(post.status, StatusCode::UNAUTHORIZED);
    assert_eq!(right.stats().await["queued"], 0);
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_the_openapi_document() {
    let (_dir, host) = start(None, &[]).await;
    let api = Api::for_host(&host, None);
    assert_eq!(api.get("/healthz").await.json(), json!({"status": "ok"}));
    assert_eq!(
        api.get("/readyz").await.json(),
        json!({"status": "ready", "paused_event_types": []})
    );

    let doc = api.get("/v1/openapi.json").await;
    assert_eq!(doc.status, StatusCode::OK);
    let doc = doc.json();
    for (path, method) in [
        ("/v1/events", "post"),
        ("/v1/stats", "get"),
        ("/v1/throughput", "get"),
        ("/v1/plugins", "get"),
        ("/v1/dead-letters", "get"),
        ("/v1/dead-letters/{id}", "get"),
        ("/v1/dead-letters/{id}", "delete"),
        ("/v1/dead-letters/{id}/redrive", "post"),
        ("/v1/dead-letters/redrive", "post"),
        ("/v1/messages", "get"),
        ("/v1/messages/{id}", "get"),
        ("/v1/messages/{id}", "delete"),
        ("/v1/event-types/{event_type}/messages", "delete"),
        ("/v1/event-types/{event_type}/pause", "post"),
        ("/v1/event-types/{event_type}/resume", "post"),
        ("/v1/dead-letters/purge", "post"),
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/metrics", "get"),
        ("/v1/openapi.json", "get"),
    ] {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} missing"
        );
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    assert!(doc["components"]["schemas"]["EventObject"].is_object());

    // Not ready once the plugin folder is gone.
    std::fs::remove_dir_all(host.plugin_dir()).expect("remove the folder");
    let not_ready = api.get("/readyz").await;
    assert_eq!(not_ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(not_ready.error()["code"], "not_ready");
    host.shutdown().await;
}

/// A full queue refuses an enqueue whole with 429 and `Retry-After`; other
/// types, and the same type once there is room, are taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_429_and_stores_nothing() {
    let (_dir, host) = start_with(None, &[], |config| {
        config.event_types.insert(
            "capped".into(),
            mailroom::config::EventTypeConfig {
                max_queued: Some(2),
                ..Default::default()
            },
        );
    })
    .await;
    let api = Api::for_host(&host, None);
    let one = json!({"event_type": "capped", "payload": {}});
    api.enqueue(&json!([one, one])).await;
    let refused = api
        .post_json("/v1/events", &json!([{"event_type": "free", "payload": {}}, one]))
        .await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.error()["code"], "over_capacity");
    assert!(
        refused.error()["message"]
            .as_str()
            .is_some_and(|m| m.contains("capped") && m.contains("max_queued")),
        "{:?}",
        refused.error()
    );
    assert_eq!(
        refused.headers.get("retry-after").and_then(|v| v.to_str().ok()),
        Some("5")
    );
    let stats = api.stats().await;
    assert_eq!(stats["queued"], 2, "the batch was refused whole: {stats}");
    let free = api
        .post_json("/v1/events", &json!({"event_type": "free", "payload": {}}))
        .await;
    assert_eq!(free.status, StatusCode::ACCEPTED);
    host.shutdown().await;
}
