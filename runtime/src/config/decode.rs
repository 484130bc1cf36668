//! Turning the layered raw values into a [`Config`], key by key, so that every
//! unknown key and every value of the wrong type is reported, not only the
//! first. A key whose value is wrong keeps its default and the problem is
//! recorded; the keys a section asks for are the keys it accepts.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::de::DeserializeOwned;
use toml::Value;

use super::error::{Problem, Source};
use super::sources::{Entry, Layers, SECTIONS};
use super::{
    Config, DispatcherConfig, EventTypeConfig, HttpConfig, LogConfig, PluginsConfig, RetryConfig,
    RetryOverride,
    StoreConfig,
};
use crate::message::validate_event_type;

const WHOLE_NUMBER: &str = "a whole number (0 or more)";
/// For keys where 0 is refused too (validation says why).
const POSITIVE_NUMBER: &str = "a whole number (1 or more)";
const DURATION: &str = "a duration such as \"500ms\", \"10s\", \"5m\" or \"1h 30m\"";
const PATH: &str = "a path (text)";

/// What decoding learnt besides the values: where each came from and which
/// keys had values of the wrong type.
#[derive(Debug, Default)]
pub(super) struct Decoder {
    sources: BTreeMap<String, Source>,
    failed: BTreeSet<String>,
    /// The keys each top-level section accepts.
    accepted: BTreeMap<String, Vec<&'static str>>,
}

impl Decoder {
    /// Where the value of `key` (dotted) came from; [`Source::Default`] when
    /// no source set it.
    pub(super) fn source(&self, key: &str) -> Source {
        self.sources.get(key).cloned().unwrap_or(Source::Default)
    }

    /// Whether `key` had a value of the wrong type (so checks that involve it
    /// would only repeat the problem).
    pub(super) fn failed(&self, key: &str) -> bool {
        self.failed.contains(key)
    }
}

/// Decodes every section, recording problems.
pub(super) fn decode(
    mut layers: Layers,
    env: super::plugin_access::EnvLookup<'_>,
    problems: &mut Vec<Problem>,
) -> (Config, Decoder) {
    let mut decoder = Decoder::default();
    let defaults = Config::default();
    let mut section = |name: &'static str| layers.sections.remove(name).unwrap_or_default();
    let store_entries = section("store");
    let plugins_entries = section("plugins");
    let dispatcher_entries = section("dispatcher");
    let retry_entries = section("retry");
    let event_types_entries = section("event_types");
    let log_entries = section("log");
    let http_entries = section("http");
    let plugin_entries = section("plugin");

    let store = {
        let d = defaults.store;
        let mut s = Section::new("store", store_entries, &mut decoder, problems);
        let store = StoreConfig {
            path: s.get("path", PATH, d.path),
            url: s.optional(
                "url",
                "a URL such as \"postgres://user:password@host:5432/db\"",
                parse,
            ),
            durability: s.get("durability", "\"full\" or \"fast\"", d.durability),
            busy_timeout: s.duration("busy_timeout", d.busy_timeout),
            max_payload_bytes: s.get("max_payload_bytes", POSITIVE_NUMBER, d.max_payload_bytes),
            max_connections: s.get("max_connections", POSITIVE_NUMBER, d.max_connections),
            key_retention: s.duration("key_retention", d.key_retention),
        };
        s.finish();
        store
    };
    let plugins = {
        let d = defaults.plugins;
        let mut s = Section::new("plugins", plugins_entries, &mut decoder, problems);
        let plugins = PluginsConfig {
            dir: s.get("dir", PATH, d.dir),
            cache_dir: s.optional("cache_dir", PATH, parse),
            timeout: s.duration("timeout", d.timeout),
            memory_limit_mb: s.get("memory_limit_mb", POSITIVE_NUMBER, d.memory_limit_mb),
            instance_reuse: s.get("instance_reuse", POSITIVE_NUMBER, d.instance_reuse),
            max_emits: s.get("max_emits", WHOLE_NUMBER, d.max_emits),
            max_emit_bytes: s.get("max_emit_bytes", POSITIVE_NUMBER, d.max_emit_bytes),
            max_chain_depth: s.get("max_chain_depth", POSITIVE_NUMBER, d.max_chain_depth),
            max_output_kb: s.get("max_output_kb", WHOLE_NUMBER, d.max_output_kb),
            http_connect_timeout: s.duration("http_connect_timeout", d.http_connect_timeout),
            http_max_response_kb: s.get(
                "http_max_response_kb",
                WHOLE_NUMBER,
                d.http_max_response_kb,
            ),
            http_max_concurrent_requests: s.get(
                "http_max_concurrent_requests",
                POSITIVE_NUMBER,
                d.http_max_concurrent_requests,
            ),
            max_file_mb: s.get("max_file_mb", WHOLE_NUMBER, d.max_file_mb),
            compile_timeout: s.duration("compile_timeout", d.compile_timeout),
            compile_memory_mb: s.get("compile_memory_mb", WHOLE_NUMBER, d.compile_memory_mb),
            max_event_types: s.get("max_event_types", WHOLE_NUMBER, d.max_event_types),
        };
        s.finish();
        plugins
    };
    let dispatcher = {
        let d = defaults.dispatcher;
        let mut s = Section::new("dispatcher", dispatcher_entries, &mut decoder, problems);
        let dispatcher = DispatcherConfig {
            concurrency: s.get("concurrency", POSITIVE_NUMBER, d.concurrency),
            batch_size: s.get("batch_size", POSITIVE_NUMBER, d.batch_size),
            reserved_slots: s.optional("reserved_slots", WHOLE_NUMBER, parse),
            lease: s.duration("lease", d.lease),
            poll_interval: s.duration("poll_interval", d.poll_interval),
            reclaim_interval: s.duration("reclaim_interval", d.reclaim_interval),
            shutdown_grace: s.duration("shutdown_grace", d.shutdown_grace),
            heartbeat_misses: s.get("heartbeat_misses", POSITIVE_NUMBER, d.heartbeat_misses),
        };
        s.finish();
        dispatcher
    };
    let retry = {
        let d = defaults.retry;
        let mut s = Section::new("retry", retry_entries, &mut decoder, problems);
        let max_attempts = s.get("max_attempts", POSITIVE_NUMBER, d.max_attempts);
        let backoff_base = s.duration("backoff_base", d.backoff_base);
        let backoff_cap = s.duration("backoff_cap", d.backoff_cap);
        let event_types = s.raw("event_types");
        s.finish();
        RetryConfig {
            max_attempts,
            backoff_base,
            backoff_cap,
            event_types: event_types
                .map(|entry| decode_event_types(entry, &mut decoder, problems))
                .unwrap_or_default(),
        }
    };
    let event_types = decode_type_sections(event_types_entries, &mut decoder, problems);
    let log = {
        let d = defaults.log;
        let mut s = Section::new("log", log_entries, &mut decoder, problems);
        let log = LogConfig {
            format: s.get("format", "\"human\" or \"json\"", d.format),
            level: s.get(
                "level",
                "a filter directive such as \"info\" or \"info,mailroom=debug\"",
                d.level,
            ),
        };
        s.finish();
        log
    };
    let http = {
        let mut s = Section::new("http", http_entries, &mut decoder, problems);
        let http = HttpConfig {
            listen: s.optional(
                "listen",
                "an IP address and port such as \"127.0.0.1:8080\"",
                parse,
            ),
            token: s.optional("token", "text", parse),
            max_body_bytes: s.optional("max_body_bytes", POSITIVE_NUMBER, parse),
        };
        s.finish();
        http
    };

    let plugin = super::plugin_access::decode(plugin_entries, env, problems);

    report_unknown_sections(layers.sections, problems);
    report_stray_keys(layers.stray, &decoder, problems);
    let config = Config {
        store,
        plugins,
        dispatcher,
        retry,
        event_types,
        log,
        http,
        plugin,
    };
    (config, decoder)
}

/// `[retry.event_types."<type>"]` tables: each a [`RetryOverride`].
fn decode_event_types(
    entry: Entry,
    decoder: &mut Decoder,
    problems: &mut Vec<Problem>,
) -> BTreeMap<String, RetryOverride> {
    let mut out = BTreeMap::new();
    let key = "retry.event_types".to_owned();
    let problem = |problems: &mut Vec<Problem>, key: String, message: String| {
        problems.push(Problem {
            key,
            source: entry.source.clone(),
            message,
        });
    };
    if matches!(entry.source, Source::Env(_)) {
        problem(
            problems,
            key,
            "has no environment form: set per-event-type retry policies in the config file".into(),
        );
        return out;
    }
    let Value::Table(types) = entry.value else {
        problem(
            problems,
            key,
            "expected a table per event type, e.g. [retry.event_types.\"order.created\"]".into(),
        );
        return out;
    };
    for (event_type, value) in types {
        let path = format!("retry.event_types.{}", quote_key(&event_type));
        let Some(entries) = type_table(
            &path,
            &event_type,
            Entry {
                value,
                source: entry.source.clone(),
            },
            "max_attempts, backoff_base, backoff_cap",
            problems,
        ) else {
            continue;
        };
        let mut s = Section::new_nested(path, entries, decoder, problems);
        let policy = RetryOverride {
            max_attempts: s.optional("max_attempts", POSITIVE_NUMBER, parse),
            backoff_base: s.optional("backoff_base", DURATION, duration),
            backoff_cap: s.optional("backoff_cap", DURATION, duration),
        };
        s.finish();
        out.insert(event_type, policy);
    }
    out
}

/// The keys of one event type's table at `path`, each with the table's
/// source; `None` (with the problem recorded) when the name is not an event
/// type or the value not a table of `keys`.
fn type_table(
    path: &str,
    event_type: &str,
    entry: Entry,
    keys: &str,
    problems: &mut Vec<Problem>,
) -> Option<BTreeMap<String, Entry>> {
    let message = match (validate_event_type(event_type), entry.value) {
        (Err(e), _) => format!("not an event type: {e}"),
        (Ok(()), Value::Table(fields)) => {
            return Some(
                fields
                    .into_iter()
                    .map(|(k, value)| {
                        let source = entry.source.clone();
                        (k, Entry { value, source })
                    })
                    .collect(),
            );
        }
        (Ok(()), _) => format!("expected a table with any of {keys}"),
    };
    problems.push(Problem {
        key: path.to_owned(),
        source: entry.source,
        message,
    });
    None
}

/// `[event_types."<type>"]` tables: each an [`EventTypeConfig`].
fn decode_type_sections(
    entries: BTreeMap<String, Entry>,
    decoder: &mut Decoder,
    problems: &mut Vec<Problem>,
) -> BTreeMap<String, EventTypeConfig> {
    let mut out = BTreeMap::new();
    for (event_type, entry) in entries {
        let path = format!("event_types.{}", quote_key(&event_type));
        let Some(entries) = type_table(
            &path,
            &event_type,
            entry,
            "max_attempts, backoff_base, backoff_cap, ttl, concurrency, max_queued",
            problems,
        ) else {
            continue;
        };
        let mut s = Section::new_nested(path, entries, decoder, problems);
        let policy = EventTypeConfig {
            max_attempts: s.optional("max_attempts", POSITIVE_NUMBER, parse),
            backoff_base: s.optional("backoff_base", DURATION, duration),
            backoff_cap: s.optional("backoff_cap", DURATION, duration),
            ttl: s.optional("ttl", DURATION, duration),
            concurrency: s.optional("concurrency", POSITIVE_NUMBER, parse),
            max_queued: s.optional("max_queued", POSITIVE_NUMBER, parse),
        };
        s.finish();
        out.insert(event_type, policy);
    }
    out
}

/// A key as written in TOML: bare when it can be, quoted otherwise.
pub(super) fn quote_key(key: &str) -> String {
    if !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        key.to_owned()
    } else {
        format!("{key:?}")
    }
}

fn report_unknown_sections(
    unknown: BTreeMap<String, BTreeMap<String, Entry>>,
    problems: &mut Vec<Problem>,
) {
    let sections = SECTIONS.join(", ");
    for (name, entries) in unknown {
        let mut file_reported = false;
        for (key, entry) in entries {
            match entry.source {
                // One problem for a whole unknown table of the file.
                Source::File(_) if file_reported => {}
                Source::File(_) => {
                    file_reported = true;
                    problems.push(Problem {
                        key: name.clone(),
                        source: entry.source,
                        message: format!("unknown section [{name}]: the sections are {sections}"),
                    });
                }
                source => problems.push(Problem {
                    key: format!("{name}.{key}"),
                    source,
                    message: format!(
                        "not a config key: variables are named MAILROOM_<SECTION>_<KEY> with a section among {sections}"
                    ),
                }),
            }
        }
    }
}

fn report_stray_keys(stray: Vec<(String, Entry)>, decoder: &Decoder, problems: &mut Vec<Problem>) {
    for (name, entry) in stray {
        let message = if SECTIONS.contains(&name.as_str()) {
            format!("must be a table ([{name}] followed by its keys), not a single value")
        } else {
            let home = decoder
                .accepted
                .iter()
                .find(|(_, keys)| keys.contains(&name.as_str()))
                .map(|(section, _)| section.clone());
            match home {
                Some(section) => format!(
                    "unknown top-level key: keys belong in a section; did you mean {section}.{name} (under [{section}])?"
                ),
                None => format!(
                    "unknown top-level key: keys belong in one of the sections {}",
                    SECTIONS.join(", ")
                ),
            }
        };
        problems.push(Problem {
            key: name,
            source: entry.source,
            message,
        });
    }
}

/// One table being decoded.
struct Section<'a> {
    /// The dotted path of the table (`store`, `retry.event_types."a.b"`).
    path: String,
    /// Whether this is a top-level section (its keys feed "did you mean").
    top_level: bool,
    entries: BTreeMap<String, Entry>,
    accepted: Vec<&'static str>,
    decoder: &'a mut Decoder,
    problems: &'a mut Vec<Problem>,
}

impl<'a> Section<'a> {
    fn new(
        name: &'static str,
        entries: BTreeMap<String, Entry>,
        decoder: &'a mut Decoder,
        problems: &'a mut Vec<Problem>,
    ) -> Self {
        let mut s = Self::new_nested(name.to_owned(), entries, decoder, problems);
        s.top_level = true;
        s
    }

    fn new_nested(
        path: String,
        entries: BTreeMap<String, Entry>,
        decoder: &'a mut Decoder,
        problems: &'a mut Vec<Problem>,
    ) -> Self {
        Self {
            path,
            top_level: false,
            entries,
            accepted: Vec::new(),
            decoder,
            problems,
        }
    }

    /// The value of `key` as a `T`, or `default` when absent or invalid.
    fn get<T: DeserializeOwned>(&mut self, key: &'static str, expected: &str, default: T) -> T {
        self.value(key, expected, parse).unwrap_or(default)
    }

    /// A humantime duration.
    fn duration(&mut self, key: &'static str, default: Duration) -> Duration {
        self.value(key, DURATION, duration).unwrap_or(default)
    }

    /// An optional key: absent, or set to the empty text from the
    /// environment, is `None`.
    fn optional<T>(
        &mut self,
        key: &'static str,
        expected: &str,
        read: impl Fn(Value) -> Option<T>,
    ) -> Option<T> {
        if let Some(entry) = self.entries.get(key)
            && matches!(&entry.value, Value::String(s) if s.is_empty())
            && matches!(entry.source, Source::Env(_))
        {
            let source = entry.source.clone();
            self.entries.remove(key);
            self.accepted.push(key);
            self.decoder.sources.insert(self.dotted(key), source);
            return None;
        }
        self.value(key, expected, read)
    }

    /// Accepts `key` and hands over its raw entry, for tables decoded apart.
    fn raw(&mut self, key: &'static str) -> Option<Entry> {
        self.accepted.push(key);
        self.entries.remove(key)
    }

    fn value<T>(
        &mut self,
        key: &'static str,
        expected: &str,
        read: impl Fn(Value) -> Option<T>,
    ) -> Option<T> {
        self.accepted.push(key);
        let entry = self.entries.remove(key)?;
        let dotted = self.dotted(key);
        match read_entry(&entry, &read) {
            Some(value) => {
                self.decoder.sources.insert(dotted, entry.source);
                Some(value)
            }
            None => {
                self.problems.push(Problem {
                    message: format!(
                        "{} is not valid: expected {expected}",
                        shown(key, &entry.value)
                    ),
                    key: dotted.clone(),
                    source: entry.source,
                });
                self.decoder.failed.insert(dotted);
                None
            }
        }
    }

    fn dotted(&self, key: &str) -> String {
        format!("{}.{key}", self.path)
    }

    /// Reports every key nobody asked for.
    fn finish(self) {
        let accepted = self.accepted.join(", ");
        for (key, entry) in self.entries {
            self.problems.push(Problem {
                key: format!("{}.{}", self.path, quote_key(&key)),
                source: entry.source,
                message: format!("unknown key: [{}] accepts {accepted}", self.path),
            });
        }
        if self.top_level {
            self.decoder.accepted.insert(self.path, self.accepted);
        }
    }
}

/// Reads an entry as its key's type. Environment values are text, so when
/// the text itself does not fit, it is read as a TOML value (`4` → 4).
fn read_entry<T>(entry: &Entry, read: &impl Fn(Value) -> Option<T>) -> Option<T> {
    if let Some(value) = read(entry.value.clone()) {
        return Some(value);
    }
    let (Value::String(text), Source::Env(_)) = (&entry.value, &entry.source) else {
        return None;
    };
    let mut table = format!("v = {text}").parse::<toml::Table>().ok()?;
    read(table.remove("v")?)
}

fn parse<T: DeserializeOwned>(value: Value) -> Option<T> {
    T::deserialize(value).ok()
}

fn duration(value: Value) -> Option<Duration> {
    humantime_serde::deserialize(value).ok()
}

/// A value as shown in a problem: short, and never a secret.
fn shown(key: &str, value: &Value) -> String {
    if key == "token" {
        return "this value".to_owned();
    }
    let text = match value {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    };
    crate::state_machine::truncate_text(&text, 80)
}
