//! The host's Prometheus metrics: counters fed where things happen (the
//! ingest paths, the dispatcher's outcome commits, the plugin loader) and
//! queue gauges computed from [`Stats`] when `/metrics` is scraped.
//!
//! Counters count what this process did since it started, as Prometheus
//! counters do: events enqueued by another process (`mailroom enqueue`) are
//! not in this host's `mailroom_events_enqueued_total`, but they are in the
//! queue gauges, which read the store itself.
//!
//! | metric | type | labels |
//! | --- | --- | --- |
//! | `mailroom_events_enqueued_total` | counter | `event_type` |
//! | `mailroom_events_emitted_total` | counter | `event_type` |
//! | `mailroom_events_acked_total` | counter | `event_type` |
//! | `mailroom_events_retried_total` | counter | `event_type` |
//! | `mailroom_events_dead_lettered_total` | counter | `event_type` |
//! | `mailroom_outcomes_uncommitted_total` | counter | `event_type` |
//! | `mailroom_handler_duration_seconds` | histogram | `plugin` |
//! | `mailroom_plugin_loads_total` | counter | `plugin` |
//! | `mailroom_plugin_rejections_total` | counter | |
//! | `mailroom_store_errors_total` | counter | `kind` (`locked`, `corrupt`, `disk_full`, `read_only`, `unavailable`, `other`) |
//! | `mailroom_queue_depth` | gauge | `state` (`queued`, `inflight`, `dead`) |
//! | `mailroom_queue_due` | gauge | |
//! | `mailroom_queue_waiting_for_handler` | gauge | |
//! | `mailroom_queue_oldest_due_age_seconds` | gauge | |
//! | `mailroom_queue_paused` | gauge (1 paused, 0 not) | `event_type` |
//! | `mailroom_queue_type_oldest_due_age_seconds` | gauge | `event_type` |
//! | `mailroom_commit_outcomes` | histogram | |
//! | `mailroom_outbound_requests_total` | counter | `plugin`, `origin`, `status` (`2xx` … `5xx`, `error`) |
//! | `mailroom_outbound_request_duration_seconds` | histogram | `plugin`, `origin` |
//! | `mailroom_outbound_refused_total` | counter | `plugin`, `origin` |
//!
//! Outcomes are also counted per minute ([`crate::throughput`]) for the web
//! console's charts.
//!
//! An `origin` label is the request's scheme, host and port, never its path
//! or query. A plugin choosing origins to refuse could grow the label set
//! without end, so past [`MAX_ORIGIN_LABELS`] distinct origins the rest count
//! under `origin="other"`.

use std::sync::atomic::AtomicU64;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::clock::{SharedClock, SystemClock};
use crate::message::NewMessage;
use crate::plugin::OutboundObserver;
use crate::store::{Enqueued, Reclaimed, Settled, Settlement, Stats, StoreError};
use crate::throughput::{Outcome, Throughput, ThroughputReport};

/// The content type of [`Metrics::render`]'s text (OpenMetrics, which
/// Prometheus scrapes natively).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventTypeLabel {
    event_type: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginLabel {
    plugin: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OriginLabel {
    plugin: String,
    origin: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabel {
    plugin: String,
    origin: String,
    status: &'static str,
}

/// The most distinct `origin` label values kept (see the module docs).
pub const MAX_ORIGIN_LABELS: usize = 256;

type ByEventType = Family<EventTypeLabel, Counter>;

/// One finished delivery, as [`Metrics::delivered`] counts it.
#[derive(Debug, Clone, Copy)]
pub struct Delivered<'a> {
    /// The message's event type.
    pub event_type: &'a str,
    /// The plugin that handled it.
    pub plugin: &'a str,
    /// How long the handler took.
    pub took: Duration,
    /// How the delivery ended.
    pub settlement: &'a Settlement,
    /// What its commit gave.
    pub result: &'a Result<Settled, StoreError>,
}

/// The outcomes of one event type in one commit.
#[derive(Debug, Default)]
struct Tally {
    acked: u64,
    retried: u64,
    dead: u64,
    uncommitted: u64,
}

/// The host's metrics. Cheap to update from any task; share it in an `Arc`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    enqueued: ByEventType,
    emitted: ByEventType,
    acked: ByEventType,
    retried: ByEventType,
    dead_lettered: ByEventType,
    uncommitted: ByEventType,
    handler_duration: Family<PluginLabel, Histogram>,
    commit_outcomes: Histogram,
    plugin_loads: Family<PluginLabel, Counter>,
    plugin_rejections: Counter,
    queue_depth: Family<StateLabel, Gauge>,
    queue_due: Gauge,
    waiting_for_handler: Gauge,
    oldest_due_age: Gauge<f64, AtomicU64>,
    paused: Family<EventTypeLabel, Gauge>,
    type_oldest_due_age: Family<EventTypeLabel, Gauge<f64, AtomicU64>>,
    outbound_requests: Family<RequestLabel, Counter>,
    outbound_duration: Family<OriginLabel, Histogram>,
    outbound_refused: Family<OriginLabel, Counter>,
    /// The `(plugin, origin)` label values in use, at most [`MAX_ORIGIN_LABELS`].
    origins: Mutex<std::collections::HashSet<(String, String)>>,
    /// Store failures by kind, and where they are counted.
    store_errors: Family<KindLabel, Counter>,
    store_health: std::sync::OnceLock<std::sync::Arc<crate::store::StoreHealth>>,
    /// Two scrapes at once would interleave setting the gauges and encoding
    /// them; scrapes are rare, so they simply take turns.
    scrape: Mutex<()>,
    /// Outcomes per minute for the web console, counted with the counters.
    throughput: Mutex<Throughput>,
    clock: SharedClock,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every metric at zero.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let mut by_event_type = |name: &str, help: &str| {
            let family = ByEventType::default();
            registry.register(name, help, family.clone());
            family
        };
        let enqueued = by_event_type(
            "mailroom_events_enqueued",
            "Events enqueued by producers through this process (duplicates of a stored key not counted)",
        );
        let emitted = by_event_type(
            "mailroom_events_emitted",
            "Events emitted by handlers and committed with their message's ack",
        );
        let acked = by_event_type(
            "mailroom_events_acked",
            "Messages handled successfully and acked",
        );
        let retried = by_event_type(
            "mailroom_events_retried",
            "Failed deliveries put back in the queue for another attempt",
        );
        let dead_lettered = by_event_type(
            "mailroom_events_dead_lettered",
            "Messages dead-lettered: a handler's fatal error, or attempts spent (by failures or by leases that ran out)",
        );
        let uncommitted = by_event_type(
            "mailroom_outcomes_uncommitted",
            "Delivery outcomes the store refused (lease lost); the message is delivered again",
        );
        // 1 ms to ~33 s: handlers run under a wall-clock limit of seconds.
        let handler_duration = Family::<PluginLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 16))
        });
        registry.register(
            "mailroom_handler_duration_seconds",
            "Wall-clock time of one delivery to a plugin",
            handler_duration.clone(),
        );
        // 1 to 512: a commit holds up to four batches' outcomes.
        let commit_outcomes = Histogram::new(exponential_buckets(1.0, 2.0, 10));
        registry.register(
            "mailroom_commit_outcomes",
            "Delivery outcomes committed together in one store transaction (group commit)",
            commit_outcomes.clone(),
        );
        let plugin_loads = Family::<PluginLabel, Counter>::default();
        registry.register(
            "mailroom_plugin_loads",
            "Plugin versions loaded (a replaced version counts again)",
            plugin_loads.clone(),
        );
        let plugin_rejections = Counter::default();
        registry.register(
            "mailroom_plugin_rejections",
            "Plugin files refused (not a component, wrong world, event type taken, ...)",
            plugin_rejections.clone(),
        );
        let queue_depth = Family::<StateLabel, Gauge>::default();
        registry.register(
            "mailroom_queue_depth",
            "Messages in the store by state",
            queue_depth.clone(),
        );
        let queue_due = Gauge::default();
        registry.register(
            "mailroom_queue_due",
            "Queued messages that are due now",
            queue_due.clone(),
        );
        let waiting_for_handler = Gauge::default();
        registry.register(
            "mailroom_queue_waiting_for_handler",
            "Queued messages whose event type no running host has a plugin for",
            waiting_for_handler.clone(),
        );
        let oldest_due_age = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "mailroom_queue_oldest_due_age_seconds",
            "How long the longest-waiting due message has been due (0 when none is)",
            oldest_due_age.clone(),
        );
        let paused = Family::<EventTypeLabel, Gauge>::default();
        registry.register(
            "mailroom_queue_paused",
            "1 for an event type paused (no host claims its messages), 0 for one that is not",
            paused.clone(),
        );
        let type_oldest_due_age = Family::<EventTypeLabel, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "mailroom_queue_type_oldest_due_age_seconds",
            "How long each event type's longest-waiting due message has been due (0 when none is)",
            type_oldest_due_age.clone(),
        );
        let outbound_requests = Family::<RequestLabel, Counter>::default();
        registry.register(
            "mailroom_outbound_requests",
            "Plugins' outbound HTTP requests that got a response (by status class) or failed without one (status=\"error\")",
            outbound_requests.clone(),
        );
        // 1 ms to ~33 s, as handlers: a request runs within a delivery.
        let outbound_duration = Family::<OriginLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 16))
        });
        registry.register(
            "mailroom_outbound_request_duration_seconds",
            "Time from a plugin's outbound request to its response headers (or its failure)",
            outbound_duration.clone(),
        );
        let outbound_refused = Family::<OriginLabel, Counter>::default();
        registry.register(
            "mailroom_outbound_refused",
            "Plugins' outbound requests refused: origin not in allowed_outbound_hosts, or resolved to an address not allowed",
            outbound_refused.clone(),
        );
        let store_errors = Family::<KindLabel, Counter>::default();
        registry.register(
            "mailroom_store_errors",
            "Store operations that failed, by kind: locked, corrupt, disk_full, read_only, unavailable, other",
            store_errors.clone(),
        );
        for kind in StoreError::KINDS {
            let _ = store_errors.get_or_create(&KindLabel { kind });
        }
        Self {
            store_errors,
            store_health: std::sync::OnceLock::new(),
            registry,
            enqueued,
            emitted,
            acked,
            retried,
            dead_lettered,
            uncommitted,
            handler_duration,
            commit_outcomes,
            plugin_loads,
            plugin_rejections,
            queue_depth,
            queue_due,
            waiting_for_handler,
            oldest_due_age,
            paused,
            type_oldest_due_age,
            outbound_requests,
            outbound_duration,
            outbound_refused,
            origins: Mutex::default(),
            scrape: Mutex::new(()),
            throughput: Mutex::new(Throughput::default()),
            clock: std::sync::Arc::new(SystemClock),
        }
    }

    /// Reports the store failures `health` counts as
    /// `mailroom_store_errors_total` (read at each scrape).
    pub fn watch_store(&self, health: std::sync::Arc<crate::store::StoreHealth>) {
        let _ = self.store_health.set(health);
    }

    /// The same metrics, timing the per-minute throughput by `clock`.
    #[must_use]
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Handled and failed deliveries per minute over the last minutes.
    pub fn throughput(&self) -> ThroughputReport {
        let now = self.clock.now_ms();
        self.throughput
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .report(now)
    }

    fn count_outcome(&self, event_type: &str, outcome: Outcome, n: u64) {
        let now = self.clock.now_ms();
        self.throughput
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .record(now, event_type, outcome, n);
    }

    /// The label of `plugin`'s requests to `origin`, `origin="other"` once
    /// the label set is full.
    fn origin_label(&self, plugin: &str, origin: &str) -> OriginLabel {
        let mut origins = self.origins.lock().unwrap_or_else(PoisonError::into_inner);
        let key = (plugin.to_owned(), origin.to_owned());
        let origin = if origins.contains(&key) || origins.len() < MAX_ORIGIN_LABELS {
            origins.insert(key);
            origin
        } else {
            "other"
        };
        OriginLabel {
            plugin: plugin.to_owned(),
            origin: origin.to_owned(),
        }
    }

    fn outbound(&self, plugin: &str, origin: &str, status: &'static str, latency: Duration) {
        let label = self.origin_label(plugin, origin);
        self.outbound_duration
            .get_or_create(&label)
            .observe(latency.as_secs_f64());
        self.outbound_requests
            .get_or_create(&RequestLabel {
                plugin: label.plugin,
                origin: label.origin,
                status,
            })
            .inc();
    }

    /// Counts a committed enqueue: `results[i]` is the outcome of `messages[i]`.
    pub fn enqueued(&self, messages: &[NewMessage], results: &[Enqueued]) {
        for (message, result) in messages.iter().zip(results) {
            if !result.duplicate {
                add(&self.enqueued, &message.event_type, 1);
            }
        }
    }

    /// Counts the finished deliveries of one commit. Each label is looked
    /// up once per commit rather than once per delivery (a commit holds up
    /// to a batch, mostly of a few types and plugins).
    pub fn delivered<'a>(&self, deliveries: impl IntoIterator<Item = Delivered<'a>>) {
        let mut durations: Vec<(&str, Vec<f64>)> = Vec::new();
        let mut by_type: Vec<(&str, Tally)> = Vec::new();
        let mut emitted: Vec<(&str, u64)> = Vec::new();
        for d in deliveries {
            entry(&mut durations, d.plugin).push(d.took.as_secs_f64());
            let tally = entry(&mut by_type, d.event_type);
            match d.result {
                Ok(Settled::Acked) => {
                    tally.acked += 1;
                    if let Settlement::Ack { follow_ups } = d.settlement {
                        for f in follow_ups {
                            *entry(&mut emitted, &f.event_type) += 1;
                        }
                    }
                }
                Ok(Settled::Requeued { .. }) => tally.retried += 1,
                Ok(Settled::Dead) => tally.dead += 1,
                Err(_) => tally.uncommitted += 1,
            }
        }
        for (plugin, took) in durations {
            let histogram = self.handler_duration.get_or_create(&PluginLabel {
                plugin: plugin.to_owned(),
            });
            for t in took {
                histogram.observe(t);
            }
        }
        for (event_type, t) in by_type {
            add(&self.acked, event_type, t.acked);
            add(&self.retried, event_type, t.retried);
            add(&self.dead_lettered, event_type, t.dead);
            add(&self.uncommitted, event_type, t.uncommitted);
            if t.acked > 0 {
                self.count_outcome(event_type, Outcome::Handled, t.acked);
            }
            if t.retried + t.dead > 0 {
                self.count_outcome(event_type, Outcome::Failed, t.retried + t.dead);
            }
        }
        for (event_type, n) in emitted {
            add(&self.emitted, event_type, n);
        }
    }

    /// Counts one commit of `outcomes` delivery outcomes.
    pub fn committed(&self, outcomes: usize) {
        self.commit_outcomes.observe(outcomes as f64);
    }

    /// Messages of `event_type` acked (committed) since the host started.
    pub fn acked_total(&self, event_type: &str) -> u64 {
        total(&self.acked, event_type)
    }

    /// Counts the messages a reclaim pass dead-lettered: their last attempt's
    /// lease ran out (a host crashed or hung on it).
    pub fn reclaimed(&self, reclaimed: &Reclaimed) {
        for (event_type, n) in &reclaimed.dead_by_event_type {
            let n = u64::try_from(*n).unwrap_or(u64::MAX);
            self.dead_lettered
                .get_or_create(&EventTypeLabel {
                    event_type: event_type.clone(),
                })
                .inc_by(n);
            self.count_outcome(event_type, Outcome::Failed, n);
        }
    }

    /// Messages of `event_type` dead-lettered since the host started.
    pub fn dead_lettered_total(&self, event_type: &str) -> u64 {
        total(&self.dead_lettered, event_type)
    }

    /// Counts a plugin version loaded (new or replacing an older one).
    pub fn plugin_loaded(&self, plugin: &str) {
        let label = PluginLabel {
            plugin: plugin.to_owned(),
        };
        self.plugin_loads.get_or_create(&label).inc();
        // Present (empty) from now on, not only after the first delivery.
        drop(self.handler_duration.get_or_create(&label));
    }

    /// Gives every per-event-type counter a series for `event_type`, at zero
    /// if nothing was counted yet: an alert on `rate(…retried_total…)` reads
    /// 0 rather than "no data".
    fn known_event_type(&self, event_type: &str) {
        let label = EventTypeLabel {
            event_type: event_type.to_owned(),
        };
        for family in [
            &self.enqueued,
            &self.emitted,
            &self.acked,
            &self.retried,
            &self.dead_lettered,
            &self.uncommitted,
        ] {
            drop(family.get_or_create(&label));
        }
    }

    /// Counts a plugin file refused.
    pub fn plugin_rejected(&self) {
        self.plugin_rejections.inc();
    }

    /// The exposition text: every counter, and the queue gauges set from `stats`.
    pub fn render(&self, stats: &Stats) -> String {
        let _turn = self.scrape.lock().unwrap_or_else(PoisonError::into_inner);
        // Types come and go with their messages: last scrape's series go.
        self.paused.clear();
        self.type_oldest_due_age.clear();
        for (event_type, queue) in &stats.by_event_type {
            self.known_event_type(event_type);
            let label = EventTypeLabel {
                event_type: event_type.clone(),
            };
            self.paused.get_or_create(&label).set(i64::from(queue.paused));
            // Millisecond ages are far inside f64's exact integer range.
            #[allow(clippy::cast_precision_loss)]
            let age = queue.oldest_due_age_ms.unwrap_or(0).max(0) as f64 / 1000.0;
            self.type_oldest_due_age.get_or_create(&label).set(age);
        }
        for (state, n) in [
            ("queued", stats.totals.queued),
            ("inflight", stats.totals.inflight),
            ("dead", stats.totals.dead),
        ] {
            self.queue_depth
                .get_or_create(&StateLabel { state })
                .set(gauge(n));
        }
        self.queue_due.set(gauge(stats.due));
        self.waiting_for_handler
            .set(gauge(stats.waiting_for_handler));
        // Millisecond ages are far inside f64's exact integer range.
        #[allow(clippy::cast_precision_loss)]
        let age = stats.oldest_due_age_ms.unwrap_or(0).max(0) as f64 / 1000.0;
        self.oldest_due_age.set(age);
        if let Some(health) = self.store_health.get() {
            for (kind, n) in health.error_counts() {
                let counter = self.store_errors.get_or_create(&KindLabel { kind });
                counter.inc_by(n.saturating_sub(counter.get()));
            }
        }
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

fn total(family: &ByEventType, event_type: &str) -> u64 {
    family
        .get(&EventTypeLabel {
            event_type: event_type.to_owned(),
        })
        .map_or(0, |counter| counter.get())
}

/// `n` more of `event_type` (nothing, not even the label, when 0).
fn add(family: &ByEventType, event_type: &str, n: u64) {
    if n > 0 {
        family
            .get_or_create(&EventTypeLabel {
                event_type: event_type.to_owned(),
            })
            .inc_by(n);
    }
}

/// The value kept for `key` in a short list of keys, added if new.
fn entry<'l, 'k, T: Default>(list: &'l mut Vec<(&'k str, T)>, key: &'k str) -> &'l mut T {
    let at = match list.iter().position(|(k, _)| *k == key) {
        Some(at) => at,
        None => {
            list.push((key, T::default()));
            list.len() - 1
        }
    };
    &mut list[at].1
}

fn gauge(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl OutboundObserver for Metrics {
    fn responded(&self, plugin: &str, origin: &str, status: u16, latency: Duration) {
        let class = match status {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        self.outbound(plugin, origin, class, latency);
    }

    fn failed(&self, plugin: &str, origin: &str, latency: Duration) {
        self.outbound(plugin, origin, "error", latency);
    }

    fn refused(&self, plugin: &str, origin: &str) {
        self.outbound_refused
            .get_or_create(&self.origin_label(plugin, origin))
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::MessageId;
    use crate::store::EventTypeStats;

    #[test]
    fn outbound_requests_count_by_plugin_origin_and_status_class() {
        let m = Metrics::new();
        let origin = "http://127.0.0.1:9000";
        m.responded("webhook", origin, 204, Duration::from_millis(5));
        m.responded("webhook", origin, 503, Duration::from_millis(5));
        m.failed("webhook", origin, Duration::from_millis(5));
        m.refused("other", "https://evil.example");
        let text = m.render(&Stats::default());
        for line in [
            r#"mailroom_outbound_requests_total{plugin="webhook",origin="http://127.0.0.1:9000",status="2xx"} 1"#,
            r#"mailroom_outbound_requests_total{plugin="webhook",origin="http://127.0.0.1:9000",status="5xx"} 1"#,
            r#"mailroom_outbound_requests_total{plugin="webhook",origin="http://127.0.0.1:9000",status="error"} 1"#,
            r#"mailroom_outbound_request_duration_seconds_count{plugin="webhook",origin="http://127.0.0.1:9000"} 3"#,
            r#"mailroom_outbound_refused_total{plugin="other",origin="https://evil.example"} 1"#,
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
    }

    #[test]
    fn origin_labels_are_bounded() {
        let m = Metrics::new();
        for i in 0..MAX_ORIGIN_LABELS + 10 {
            m.refused("p", &format!("https://h{i}.example"));
        }
        let text = m.render(&Stats::default());
        assert!(
            text.contains(r#"mailroom_outbound_refused_total{plugin="p",origin="other"} 10"#),
            "{text}"
        );
    }

    #[test]
    fn every_counter_has_a_zero_series_for_each_event_type_in_the_store() {
        let m = Metrics::new();
        let mut stats = Stats::default();
        stats
            .by_event_type
            .insert("order.created".to_owned(), EventTypeStats::default());
        let text = m.render(&stats);
        for family in ["enqueued", "emitted", "acked", "retried", "dead_lettered"] {
            let line = format!("mailroom_events_{family}_total{{event_type=\"order.created\"}} 0");
            assert!(text.contains(&line), "{line} missing:\n{text}");
        }
        assert!(
            text.contains("mailroom_outcomes_uncommitted_total{event_type=\"order.created\"} 0"),
            "{text}"
        );
    }

    /// A commit's deliveries are counted by type and plugin, each with its
    /// own outcome and duration.
    #[test]
    fn a_commit_counts_each_delivery() {
        let m = Metrics::new();
        let ack = Settlement::Ack {
            follow_ups: vec![
                NewMessage::new("b", b"{}".to_vec()),
                NewMessage::new("c", b"{}".to_vec()),
            ],
        };
        let retry = Settlement::Fail(crate::state_machine::Failure::Retry {
            reason: "later".into(),
            after: None,
        });
        let acked = Ok(Settled::Acked);
        let requeued = Ok(Settled::Requeued { available_at: 5 });
        let lost = Err(StoreError::LeaseLost { id: MessageId::new() });
        let one = |event_type, plugin, settlement, result| Delivered {
            event_type,
            plugin,
            took: Duration::from_millis(2),
            settlement,
            result,
        };
        m.delivered([
            one("a", "p", &ack, &acked),
            one("a", "p", &ack, &acked),
            one("a", "q", &retry, &requeued),
            one("x", "q", &retry, &Ok(Settled::Dead)),
            one("x", "q", &ack, &lost),
        ]);
        let text = m.render(&Stats::default());
        for line in [
            "mailroom_events_acked_total{event_type=\"a\"} 2",
            "mailroom_events_emitted_total{event_type=\"b\"} 2",
            "mailroom_events_emitted_total{event_type=\"c\"} 2",
            "mailroom_events_retried_total{event_type=\"a\"} 1",
            "mailroom_events_dead_lettered_total{event_type=\"x\"} 1",
            "mailroom_outcomes_uncommitted_total{event_type=\"x\"} 1",
            "mailroom_handler_duration_seconds_count{plugin=\"p\"} 2",
            "mailroom_handler_duration_seconds_count{plugin=\"q\"} 3",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing from\n{text}");
        }
        assert!(
            !text.contains("mailroom_events_acked_total{event_type=\"x\"}"),
            "no label for what did not happen:\n{text}"
        );
        let recent = m.throughput().by_event_type;
        assert_eq!(recent["a"].handled.iter().sum::<u64>(), 2);
        assert_eq!(recent["a"].failed.iter().sum::<u64>(), 1);
        assert_eq!(recent["x"].failed.iter().sum::<u64>(), 1);
    }

    #[test]
    fn counters_and_gauges_render() {
        let m = Metrics::new();
        let messages = vec![
            NewMessage::new("a", b"1".to_vec()),
            NewMessage::new("a", b"2".to_vec()),
        ];
        let results = [
            Enqueued {
                id: MessageId::new(),
                duplicate: false,
            },
            Enqueued {
                id: MessageId::new(),
                duplicate: true,
            },
        ];
        m.enqueued(&messages, &results);
        m.delivered([Delivered {
            event_type: "a",
            plugin: "p",
            took: Duration::from_millis(3),
            settlement: &Settlement::Ack {
                follow_ups: vec![NewMessage::new("b", b"{}".to_vec())],
            },
            result: &Ok(Settled::Acked),
        }]);
        m.committed(1);
        m.plugin_loaded("p");
        m.plugin_rejected();
        let stats = Stats {
            oldest_due_age_ms: Some(1500),
            ..Stats::default()
        };
        let text = m.render(&stats);
        let recent = m.throughput().by_event_type;
        assert_eq!(recent["a"].handled.iter().sum::<u64>(), 1);
        assert_eq!(recent["a"].failed.iter().sum::<u64>(), 0);
        for line in [
            "mailroom_events_enqueued_total{event_type=\"a\"} 1",
            "mailroom_events_acked_total{event_type=\"a\"} 1",
            "mailroom_events_emitted_total{event_type=\"b\"} 1",
            "mailroom_plugin_loads_total{plugin=\"p\"} 1",
            "mailroom_plugin_rejections_total 1",
            "mailroom_handler_duration_seconds_count{plugin=\"p\"} 1",
            "mailroom_commit_outcomes_count 1",
            "mailroom_commit_outcomes_sum 1.0",
            "mailroom_queue_depth{state=\"queued\"} 0",
            "mailroom_queue_oldest_due_age_seconds 1.5",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from\n{text}"
            );
        }
    }
}
