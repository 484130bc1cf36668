//! `GET /v1/openapi.json`: the OpenAPI description of this API, generated
//! from the handlers' `#[utoipa::path]` annotations when the router is built.
//!
//! The types here describe, for the document only, JSON that other modules
//! serialize (the mailbox's [`crate::store::Stats`] and friends, which the
//! CLI's `--json` prints too, and [`crate::ingest::EventObject`]). A test
//! checks that each has exactly the fields its real counterpart serializes,
//! so the document cannot drift from the wire.

use std::collections::BTreeMap;

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

/// The document's frame; the paths come from the router.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Mailroom",
        description = "Ingest events, and operate a Mailroom host: stats, throughput, plugins, dead letters, health, metrics. \
                       Every error is `{\"error\": {\"code\", \"message\", \"field\"?, \"index\"?}}`.",
    ),
    modifiers(&BearerToken),
    tags(
        (name = "events", description = "Enqueueing events"),
        (name = "operations", description = "Stats, throughput, plugins and metrics"),
        (name = "messages", description = "Messages in any state; cancelling them; pausing event types"),
        (name = "dead letters", description = "The dead-letter queue"),
        (name = "health", description = "Liveness and readiness"),
    ),
)]
pub(crate) struct ApiDoc;

struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// One event to enqueue. Only `event_type` and `payload` are required;
/// unknown fields are refused.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct EventObject {
    /// Routes the event to its handler: 1 to 255 bytes of `[A-Za-z0-9._:-]`.
    #[schema(example = "order.created")]
    event_type: String,
    /// Any JSON value, stored as written.
    #[schema(value_type = Object)]
    payload: serde_json::Value,
    /// Idempotency key: a key already stored answers with the existing id.
    key: Option<String>,
    /// `low`, `normal` (default) or `high`.
    priority: Option<Priority>,
    /// Not due before this much time has passed, e.g. `"500ms"`, `"5s"`, `"1m 30s"`.
    #[schema(example = "5s")]
    delay: Option<String>,
    /// Attempts before dead-lettering (at least 1); default from the retry policy.
    max_attempts: Option<u32>,
    /// Where the event came from.
    source: Option<String>,
    /// Groups a chain of events; defaults to the message's own id.
    correlation_id: Option<String>,
}

/// How urgently a message should be handled.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub(crate) enum Priority {
    /// After every due normal and high message.
    Low,
    /// The default.
    Normal,
    /// Before every due normal and low message.
    High,
}

/// Message counts per state.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct StateCounts {
    /// Waiting to be claimed.
    queued: u64,
    /// Claimed, being handled.
    inflight: u64,
    /// Dead-lettered.
    dead: u64,
}

/// One event type's queue.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct EventTypeStats {
    /// Waiting to be claimed.
    queued: u64,
    /// Claimed, being handled.
    inflight: u64,
    /// Dead-lettered.
    dead: u64,
    /// Whether it is paused: no host claims its messages until it is resumed.
    paused: bool,
    /// How long its longest-waiting due message has been due, in ms.
    oldest_due_age_ms: Option<i64>,
    /// The plugin serving it on each running host.
    handlers: Vec<Handler>,
    /// Its capacity (`max_queued`), when configured.
    max_queued: Option<u64>,
    /// Its messages' time to live in ms, when configured.
    ttl_ms: Option<u64>,
    /// The most deliveries at once per host, when configured.
    concurrency: Option<usize>,
}

/// The plugin serving an event type on one host.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct Handler {
    /// The host, as `hostname:pid`.
    host: String,
    /// The plugin's name.
    plugin: String,
    /// The plugin's version.
    version: String,
}

/// A snapshot of the store (as `mailroom stats --json`).
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct Stats {
    /// Queued messages.
    queued: u64,
    /// Messages being handled.
    inflight: u64,
    /// Dead letters.
    dead: u64,
    /// Per event type: every type with messages, a handler or a pause.
    by_event_type: BTreeMap<String, EventTypeStats>,
    /// Per priority (`low`, `normal`, `high`).
    by_priority: BTreeMap<String, StateCounts>,
    /// Queued messages due now.
    due: u64,
    /// Queued messages whose event type no running host serves.
    waiting_for_handler: u64,
    /// How long the longest-waiting due message has been due, in ms.
    oldest_due_age_ms: Option<i64>,
    /// The hosts running on the store.
    hosts: Vec<HostRecord>,
}

/// A host process running on the store.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct HostRecord {
    /// `hostname:pid`, as plugin records name it.
    host: String,
    /// The machine's host name.
    hostname: String,
    /// The process id on that machine.
    pid: u32,
    /// When it started (ms since the Unix epoch).
    started_at: i64,
    /// Its last heartbeat (ms since the Unix epoch).
    heartbeat_at: i64,
}

/// One plugin file as a running host sees it.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct PluginRecord {
    /// The file.
    path: String,
    /// `loaded` or `rejected`.
    status: String,
    /// The plugin's name (loaded only).
    name: Option<String>,
    /// The plugin's version (loaded only).
    version: Option<String>,
    /// The event types it serves (loaded only).
    event_types: Vec<String>,
    /// The SHA-256 of the file (loaded only).
    digest: Option<String>,
    /// Why it was refused (rejected only).
    reason: Option<String>,
    /// When the host recorded this (ms since the Unix epoch).
    updated_at: i64,
    /// The host that recorded it, as `hostname:pid`.
    host: String,
}

/// The plugins of every running host (as `mailroom plugins --json`).
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct PluginRegistry {
    /// Serving their event types.
    loaded: Vec<PluginRecord>,
    /// Refused files, with the reason.
    rejected: Vec<PluginRecord>,
    /// The hosts running on the store.
    hosts: Vec<HostRecord>,
}

/// Deliveries per minute over the last minutes (as the web console charts).
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct Throughput {
    /// The start of the first (oldest) minute, in ms since the Unix epoch.
    from_ms: i64,
    /// How many minutes each series covers; the last is the current, partial one.
    minutes: u64,
    /// Per event type with a delivery in the window.
    by_event_type: BTreeMap<String, ThroughputSeries>,
}

/// One event type's deliveries, one number per minute, oldest first.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct ThroughputSeries {
    /// Deliveries acked.
    handled: Vec<u64>,
    /// Deliveries that failed: retried or dead-lettered.
    failed: Vec<u64>,
}

/// A dead letter, without its payload.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct DeadLetter {
    /// The message id (UUID v7).
    id: String,
    /// Its event type.
    event_type: String,
    /// Its idempotency key.
    key: Option<String>,
    /// Where it came from.
    source: Option<String>,
    /// Its correlation id.
    correlation_id: String,
    /// Its priority.
    priority: Priority,
    /// Attempts made.
    attempts: u32,
    /// Its attempt budget.
    max_attempts: u32,
    /// Why it died (truncated).
    last_error: Option<String>,
    /// The digest of the plugin build that ran its last attempt.
    plugin_digest: Option<String>,
    /// Payload size in bytes.
    payload_bytes: u64,
    /// When it was enqueued (ms since the Unix epoch).
    created_at: i64,
    /// When it died (ms since the Unix epoch).
    dead_at: Option<i64>,
}

/// One page of dead letters, oldest first.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct DeadLetterPage {
    /// The dead letters.
    items: Vec<DeadLetter>,
    /// Pass as `cursor` for the next page; null on the last page.
    next_cursor: Option<String>,
}

/// Who holds an in-flight message.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct LeaseHolder {
    /// The host holding the lease, as `hostname:pid`.
    owner: String,
    /// When the lease runs out (ms since the Unix epoch); then the message is reclaimed.
    expires_at: Option<i64>,
}

/// A message in any state, without its payload.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct MessageSummary {
    /// `queued`, `inflight` or `dead`.
    state: String,
    /// The message id (UUID v7).
    id: String,
    /// Its event type.
    event_type: String,
    /// Its idempotency key.
    key: Option<String>,
    /// Where it came from.
    source: Option<String>,
    /// Its correlation id.
    correlation_id: String,
    /// Its priority.
    priority: Priority,
    /// Attempts made.
    attempts: u32,
    /// Its attempt budget.
    max_attempts: u32,
    /// Why its last attempt failed (truncated).
    last_error: Option<String>,
    /// The digest of the plugin build that ran its last attempt.
    plugin_digest: Option<String>,
    /// Payload size in bytes.
    payload_bytes: u64,
    /// When it was enqueued (ms since the Unix epoch).
    created_at: i64,
    /// When it died (ms since the Unix epoch; dead letters only).
    dead_at: Option<i64>,
    /// When it is (or was) next due (ms since the Unix epoch).
    available_at: i64,
    /// The lease, while in flight.
    lease: Option<LeaseHolder>,
}

/// One page of messages, in the order they were enqueued.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct MessagePage {
    /// The messages.
    items: Vec<MessageSummary>,
    /// Pass as `cursor` for the next page; null on the last page.
    next_cursor: Option<String>,
}

/// What a cancel did.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct Cancelled {
    /// How many queued messages were removed.
    cancelled: usize,
    /// The ids named that were not removed, and why.
    refused: Vec<CancelRefusal>,
    /// For a cancel by event type: its messages in flight, left to finish.
    inflight_left: Option<u64>,
}

/// A message a cancel did not remove.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct CancelRefusal {
    /// The id named.
    id: String,
    /// Why it was not removed.
    reason: String,
}

/// A message (a dead letter, or any message) with its payload.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct DeadLetterDetail {
    /// `dead` for a dead letter; `queued` or `inflight` from `/v1/messages/{id}`.
    state: String,
    /// The message id (UUID v7).
    id: String,
    /// Its event type.
    event_type: String,
    /// Its idempotency key.
    key: Option<String>,
    /// Where it came from.
    source: Option<String>,
    /// Its correlation id.
    correlation_id: String,
    /// Its priority.
    priority: Priority,
    /// Attempts made.
    attempts: u32,
    /// Its attempt budget.
    max_attempts: u32,
    /// Why it died (truncated).
    last_error: Option<String>,
    /// The digest of the plugin build that ran its last attempt.
    plugin_digest: Option<String>,
    /// Payload size in bytes.
    payload_bytes: u64,
    /// When it was enqueued (ms since the Unix epoch).
    created_at: i64,
    /// When it died (ms since the Unix epoch).
    dead_at: Option<i64>,
    /// When it was last due (ms since the Unix epoch).
    available_at: i64,
    /// The lease, while in flight.
    lease: Option<LeaseHolder>,
    /// The payload: JSON when it parses as JSON, else a string (see
    /// `payload_encoding`).
    #[schema(value_type = Object)]
    payload: serde_json::Value,
    /// `json` (the payload as JSON), `utf8` (a string holding the text) or
    /// `base64` (a string holding the bytes in standard base64).
    payload_encoding: String,
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde::Serialize;
    use utoipa::PartialSchema;

    use super::*;
    use crate::store;
    use crate::message::{MessageId, Priority as P};

    fn properties<T: PartialSchema>() -> BTreeSet<String> {
        let schema = serde_json::to_value(T::schema()).expect("schema serializes");
        schema["properties"]
            .as_object()
            .expect("an object schema")
            .keys()
            .cloned()
            .collect()
    }

    fn keys(value: &impl Serialize) -> BTreeSet<String> {
        serde_json::to_value(value)
            .expect("serializes")
            .as_object()
            .expect("an object")
            .keys()
            .cloned()
            .collect()
    }

    fn dead_letter() -> store::DeadLetter {
        store::DeadLetter {
            id: MessageId::new(),
            event_type: "t".into(),
            key: Some("k".into()),
            source: Some("s".into()),
            correlation_id: "c".into(),
            priority: P::Normal,
            attempts: 1,
            max_attempts: 2,
            last_error: Some("e".into()),
            plugin_digest: Some("d".into()),
            payload_bytes: 2,
            created_at: 1,
            dead_at: Some(2),
        }
    }

    #[test]
    fn documented_shapes_match_what_is_served() {
        assert_eq!(properties::<Stats>(), keys(&store::Stats::default()));
        assert_eq!(
            properties::<StateCounts>(),
            keys(&store::StateCounts::default())
        );
        assert_eq!(properties::<DeadLetter>(), keys(&dead_letter()));
        assert_eq!(
            properties::<DeadLetterPage>(),
            keys(&store::DeadLetterPage::default())
        );
        assert_eq!(
            properties::<PluginRegistry>(),
            keys(&store::PluginRegistry::default())
        );
        let lease = Some(store::LeaseHolder {
            owner: "h:1".into(),
            expires_at: Some(4),
        });
        let detail = super::super::dead_letters::DeadLetterDetail::from(store::StoredMessage {
            state: crate::state_machine::MessageState::Inflight,
            summary: dead_letter(),
            available_at: 3,
            lease: lease.clone(),
            payload: b"{}".to_vec(),
        });
        assert_eq!(properties::<DeadLetterDetail>(), keys(&detail));
        let summary = store::MessageSummary {
            state: crate::state_machine::MessageState::Inflight,
            summary: dead_letter(),
            available_at: 3,
            lease: lease.clone(),
        };
        assert_eq!(properties::<MessageSummary>(), keys(&summary));
        assert_eq!(properties::<LeaseHolder>(), keys(&lease));
        assert_eq!(
            properties::<MessagePage>(),
            keys(&store::MessagePage::default())
        );
        let cancelled = store::Cancelled {
            cancelled: 1,
            refused: vec![store::CancelRefusal {
                id: MessageId::new(),
                reason: "r".into(),
            }],
            inflight_left: Some(0),
        };
        assert_eq!(properties::<Cancelled>(), keys(&cancelled));
        assert_eq!(properties::<CancelRefusal>(), keys(&cancelled.refused[0]));
        let queue = store::EventTypeStats {
            handlers: vec![store::Handler {
                host: "h:1".into(),
                plugin: "p".into(),
                version: "1".into(),
            }],
            max_queued: Some(1),
            ttl_ms: Some(1),
            concurrency: Some(1),
            ..store::EventTypeStats::default()
        };
        assert_eq!(properties::<EventTypeStats>(), keys(&queue));
        assert_eq!(properties::<Handler>(), keys(&queue.handlers[0]));
        let mut recent = crate::throughput::Throughput::default();
        recent.record(0, "t", crate::throughput::Outcome::Handled, 1);
        let report = recent.report(0);
        assert_eq!(properties::<Throughput>(), keys(&report));
        assert_eq!(
            properties::<ThroughputSeries>(),
            keys(&report.by_event_type["t"])
        );
        let event: crate::ingest::EventObject = serde_json::from_str(
            r#"{"event_type":"t","payload":1,"key":"k","priority":"high","delay":"1s",
                "max_attempts":2,"source":"s","correlation_id":"c"}"#,
        )
        .expect("a full event object");
        assert_eq!(properties::<EventObject>(), keys(&event));
    }

    #[test]
    fn plugin_records_have_no_undocumented_fields() {
        let loaded = store::PluginRecord {
            path: "p".into(),
            status: store::PluginStatus::Loaded,
            name: Some("n".into()),
            version: Some("1".into()),
            event_types: vec!["t".into()],
            digest: Some("d".into()),
            reason: Some("r".into()),
            updated_at: 1,
            host: "h:1".into(),
        };
        assert_eq!(properties::<PluginRecord>(), keys(&loaded));
    }
}
