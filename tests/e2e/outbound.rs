//! Plugins reaching the world: the bundled `webhook` plugin POSTs to real
//! HTTP servers on loopback, through the host's allow-list, with its
//! configuration and its secret from `[plugin.webhook]`; and a plugin built
//! from the 0.1.0 WIT still loads and runs.

#[path = "harness/mod.rs"]
mod harness;

use harness::receiver::{Receiver, Reply};
use harness::{TestHost, store};
use hmac::{Hmac, Mac};
use mailroom_test_artifacts::{LEGACY_V01, OUTBOUND_PROBE, WEBHOOK};
use serde_json::{Value, json};
use sha2::Sha256;

const SECRET: &str = "whsec-e2e-7f3a9c";
const SECRET_VAR: &str = "E2E_WEBHOOK_SECRET";

/// A host configuration: short retries (with a cap that lets a 2 s
/// `Retry-After` through), JSON logs, and `plugin` appended as written.
fn config(plugin_timeout: &str, extra_plugins: &str, plugin: &str) -> String {
    format!(
        r#"[store]
path = "mailroom.db"

[plugins]
dir = "plugins"
timeout = "{plugin_timeout}"
{extra_plugins}

[dispatcher]
concurrency = 1
poll_interval = "20ms"
reclaim_interval = "200ms"
lease = "30s"

[retry]
max_attempts = 4
backoff_base = "20ms"
backoff_cap = "10s"

[log]
format = "json"
level = "info"

{plugin}
"#
    )
}

/// `[plugin.webhook]` allowing `allowed` and posting to `url`, signed with
/// the secret from the environment.
fn webhook(allowed: &[String], url: &str) -> String {
    format!(
        r#"[plugin.webhook]
allowed_outbound_hosts = {allowed:?}

[plugin.webhook.config]
url = "{url}"
secret = "${{{SECRET_VAR}}}"
"#
    )
}

/// A host with the webhook plugin deployed and running under `config`.
fn start(config: &str) -> TestHost {
    let host = TestHost::with_config_text(config);
    host.set_env(SECRET_VAR, SECRET);
    host.deploy(WEBHOOK, "webhook.wasm");
    host.start();
    host.wait_loaded("webhook");
    host
}

/// A host whose webhook plugin may reach `receiver` and posts to its `/hooks`.
fn start_for(receiver: &Receiver) -> TestHost {
    start(&config(
        "10s",
        "",
        &webhook(&[receiver.origin()], &receiver.url("/hooks")),
    ))
}

fn notify(host: &TestHost) -> String {
    host.enqueue_one(
        "notification.requested",
        json!({"order_id": "o-1", "customer": "ada@example.com", "channel": "email"}),
    )
}

fn wait_acked(host: &TestHost, id: &str) {
    host.wait_until("the notification to be acked", || {
        store::message(&host.db(), id).is_none()
    });
}

fn wait_dead(host: &TestHost, id: &str) -> String {
    host.wait_for("the notification to be dead-lettered", || {
        store::message(&host.db(), id)
            .filter(|m| m.state == "dead")
            .map(|m| m.last_error.unwrap_or_default())
    })
}

/// What a receiver computes to check a delivery: the HMAC of
/// `"<timestamp>.<body>"`, as `sha256=<hex>`.
fn expected_signature(timestamp: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("any key length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

#[test]
fn a_signed_post_reaches_an_allowed_receiver_and_the_secret_shows_nowhere() {
    // A receiver that closes the connection after answering, as many do.
    let receiver = Receiver::start(vec![Reply::Status(
        204,
        vec![("connection", "close".into())],
        String::new(),
    )]);
    let host = start_for(&receiver);
    let id = notify(&host);
    wait_acked(&host, &id);

    let received = receiver.received();
    assert_eq!(received.len(), 1, "{received:#?}");
    let request = &received[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/hooks");
    assert_eq!(request.header("content-type"), Some("application/json"));
    let length = request.body.len().to_string();
    assert_eq!(
        request.header("content-length"),
        Some(length.as_str()),
        "the body is sent with its length, not chunked"
    );
    assert_eq!(request.header("idempotency-key"), Some(id.as_str()));
    let body: Value = serde_json::from_slice(&request.body).expect("a JSON body");
    assert_eq!(body["order_id"], "o-1");
    let timestamp = request.header("x-mailroom-timestamp").expect("a timestamp");
    assert_eq!(
        request.header("x-mailroom-signature"),
        Some(expected_signature(timestamp, &request.body).as_str()),
        "the receiver verifies the signature with the shared secret"
    );

    let plugins = host.mailroom(&["plugins", "--json"]).success();
    assert!(!plugins.stdout.contains(SECRET), "{plugins}");
    host.stop();
    assert!(
        !host.log().contains(SECRET),
        "the secret is in the host log:\n{}",
        host.log_tail(50)
    );
}

#[test]
fn a_refused_origin_dead_letters_and_the_host_says_which_key_to_change() {
    let receiver = Receiver::start(vec![Reply::status(204)]);
    // Allowed: another port of the same host, which is not the same origin.
    let host = start(&config(
        "10s",
        "",
        &webhook(&["http://127.0.0.1:1".to_owned()], &receiver.url("/hooks")),
    ));
    let id = notify(&host);
    let last_error = wait_dead(&host, &id);
    assert!(
        last_error.contains("refused by the host") && last_error.contains("allowed_outbound_hosts"),
        "{last_error}"
    );
    assert!(
        receiver.received().is_empty(),
        "a refused request must not leave the host"
    );
    let refusal = host
        .log_events()
        .into_iter()
        .find(|line| {
            line["message"]
                .as_str()
                .is_some_and(|m| m.contains("outbound request refused"))
        })
        .unwrap_or_else(|| panic!("no refusal logged:\n{}", host.log_tail(40)));
    let text = refusal.to_string();
    assert!(text.contains("webhook"), "{text}");
    assert!(text.contains(&receiver.origin()), "{text}");
    assert!(text.contains("[plugin.webhook]"), "{text}");
    // The delivery that asked for it.
    assert_eq!(refusal["message_id"].as_str(), Some(id.as_str()), "{text}");
    host.stop();
}

#[test]
fn a_plugin_without_an_entry_gets_no_origin_and_no_secret() {
    let receiver = Receiver::start(vec![Reply::status(204)]);
    // The entry names another plugin: the webhook plugin gets nothing.
    let entry = webhook(&[receiver.origin()], &receiver.url("/hooks"))
        .replace("[plugin.webhook", "[plugin.other");
    let host = start(&config("10s", "", &entry));
    let id = notify(&host);
    let last_error = wait_dead(&host, &id);
    assert!(last_error.contains("\"url\" is not set"), "{last_error}");
    assert!(receiver.received().is_empty());
    host.stop();
}

#[test]
fn one_plugin_s_origin_and_secret_are_not_another_s() {
    let receiver = Receiver::start(vec![Reply::status(200)]);
    let host = TestHost::with_config_text(&config(
        "10s",
        "",
        &webhook(&[receiver.origin()], &receiver.url("/hooks")),
    ));
    host.set_env(SECRET_VAR, SECRET);
    host.deploy(WEBHOOK, "webhook.wasm");
    host.deploy(OUTBOUND_PROBE, "probe.wasm");
    host.start();
    host.wait_loaded("outbound-probe");
    host.enqueue_one("probe", json!({"url": receiver.url("/probe")}));
    let result = host.wait_for("the probe's result", || {
        store::messages(&host.db(), "probe.result")
            .pop()
            .map(|m| m.payload)
    });
    assert_eq!(result["secret"], Value::Null, "{result}");
    assert_eq!(result["status"], Value::Null, "{result}");
    assert!(
        result["error"]
            .as_str()
            .is_some_and(|e| e.contains("refused by the host")),
        "{result}"
    );
    assert!(
        receiver.received().is_empty(),
        "the probe reached the webhook's origin"
    );
    host.stop();
    assert!(!host.log().contains(SECRET));
}

#[test]
fn a_redirect_to_a_refused_origin_is_not_followed() {
    let elsewhere = Receiver::start(vec![Reply::status(204)]);
    let receiver = Receiver::start(vec![Reply::Status(
        302,
        vec![("location", elsewhere.url("/stolen"))],
        String::new(),
    )]);
    let host = start_for(&receiver);
    let id = notify(&host);
    let last_error = wait_dead(&host, &id);
    assert!(
        last_error.contains("HTTP 302") && last_error.contains("redirects are not followed"),
        "{last_error}"
    );
    assert!(
        last_error.contains(&elsewhere.url("/stolen")),
        "{last_error}"
    );
    assert_eq!(receiver.received().len(), 1);
    assert!(elsewhere.received().is_empty(), "the redirect was followed");
    host.stop();
}

#[test]
fn a_receiver_that_never_answers_is_cut_at_the_deadline_and_the_slot_is_freed() {
    // The first request hangs; the second is answered. With one delivery
    // slot, the retry can only run once the hung delivery gave its slot back.
    let receiver = Receiver::start(vec![Reply::Hang, Reply::status(204)]);
    let host = start(&config(
        "2s",
        "",
        &webhook(&[receiver.origin()], &receiver.url("/hooks")),
    ));
    let id = notify(&host);
    wait_acked(&host, &id);
    assert_eq!(receiver.received().len(), 2);
    let retried = host
        .delivery_lines(&id)
        .into_iter()
        .find(|line| line["outcome"] == "retry")
        .unwrap_or_else(|| panic!("no retry logged:\n{}", host.log_tail(40)));
    let reason = retried["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("time limit") || reason.contains("timed out"),
        "{retried}"
    );
    host.stop();
}

#[test]
fn a_huge_response_is_capped() {
    let receiver = Receiver::start(vec![Reply::Huge(1 << 20)]);
    let host = start(&config(
        "10s",
        "http_max_response_kb = 64",
        &webhook(&[receiver.origin()], &receiver.url("/hooks")),
    ));
    let id = notify(&host);
    let last_error = wait_dead(&host, &id);
    assert!(
        last_error.contains("larger than the host allows (65536 bytes)"),
        "{last_error}"
    );
    host.stop();
}

#[test]
fn a_server_error_is_retried_until_it_succeeds_with_the_same_idempotency_key() {
    let receiver = Receiver::start(vec![
        Reply::Status(500, Vec::new(), "oops".into()),
        Reply::status(200),
    ]);
    let host = start_for(&receiver);
    let id = notify(&host);
    wait_acked(&host, &id);
    let received = receiver.received();
    assert_eq!(received.len(), 2, "{received:#?}");
    for request in &received {
        assert_eq!(request.header("idempotency-key"), Some(id.as_str()));
    }
    host.stop();
}

#[test]
fn too_many_requests_waits_for_retry_after() {
    let receiver = Receiver::start(vec![
        Reply::Status(429, vec![("retry-after", "2".into())], String::new()),
        Reply::status(204),
    ]);
    let host = start_for(&receiver);
    let id = notify(&host);
    let due_after = host.wait_for("the 429 to put the notification back", || {
        store::due_after_ms(&host.db(), &id).filter(|_| !receiver.received().is_empty())
    });
    assert!(
        (1_900..=2_100).contains(&due_after),
        "the next attempt is due {due_after} ms after the 429, not about 2 s"
    );
    wait_acked(&host, &id);
    assert_eq!(receiver.received().len(), 2);
    host.stop();
}

#[test]
fn a_gone_receiver_dead_letters_naming_the_status() {
    let receiver = Receiver::start(vec![Reply::Status(
        410,
        Vec::new(),
        "this hook was deleted".into(),
    )]);
    let host = start_for(&receiver);
    let id = notify(&host);
    let last_error = wait_dead(&host, &id);
    assert!(
        last_error.contains("HTTP 410") && last_error.contains("this hook was deleted"),
        "{last_error}"
    );
    assert_eq!(receiver.received().len(), 1, "a 410 is not retried");
    host.stop();
}

#[test]
fn a_reloaded_configuration_opens_an_origin_without_a_restart() {
    let receiver = Receiver::start(vec![Reply::status(204)]);
    let closed = config("10s", "", &webhook(&[], &receiver.url("/hooks")));
    let host = start(&closed);
    let id = notify(&host);
    wait_dead(&host, &id);

    host.write_config(&config(
        "10s",
        "",
        &webhook(&[receiver.origin()], &receiver.url("/hooks")),
    ));
    host.sighup();
    host.wait_until("the host to reload its [plugin] tables", || {
        host.log().contains("tables reloaded")
    });
    host.mailroom(&["dlq", "redrive", &id]).success();
    wait_acked(&host, &id);
    assert_eq!(receiver.received().len(), 1);
    host.stop();
}

#[test]
fn an_unset_secret_variable_is_a_configuration_error_naming_it() {
    let host = TestHost::with_config_text(&config(
        "10s",
        "",
        &webhook(&["http://127.0.0.1:9".to_owned()], "http://127.0.0.1:9/"),
    ));
    // SECRET_VAR is not set for this host.
    let output = host.mailroom(&["stats"]);
    assert!(!output.status.success(), "{output}");
    assert!(output.stderr.contains(SECRET_VAR), "{output}");
    assert!(output.stderr.contains("is not set"), "{output}");
}

#[test]
fn a_plugin_built_from_the_0_1_0_wit_still_loads_and_runs() {
    let host = TestHost::new();
    host.deploy(LEGACY_V01, "legacy.wasm");
    host.start();
    host.wait_loaded("legacy-v01");
    let id = host.enqueue_one("legacy.ping", json!({"n": 1}));
    host.wait_until("the 0.1.0 plugin to emit its pong", || {
        store::messages(&host.db(), "legacy.pong")
            .iter()
            .any(|m| m.payload == json!({"n": 1}))
    });
    assert!(
        store::message(&host.db(), &id).is_none(),
        "the ping is acked"
    );
    host.stop();
}
