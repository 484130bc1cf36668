//! The runtime's configuration: what a host and the operator commands read
//! before they touch the store.
//!
//! Values come from four layers, each overriding the one before:
//!
//! 1. embedded defaults (store `./mailroom.db`, plugin folder `./plugins`, …);
//! 2. the config file: `--config PATH` (which must exist), else `mailroom.toml`
//!    in the working directory when there is one;
//! 3. environment variables `MAILROOM_<SECTION>_<KEY>`, upper-cased
//!    (`MAILROOM_STORE_PATH`, `MAILROOM_DISPATCHER_CONCURRENCY`,
//!    `MAILROOM_HTTP_TOKEN`); see [`ENV_PREFIX`] for the exact rule;
//! 4. command-line flags ([`Overrides`]).
//!
//! Relative paths, wherever they come from, are relative to the working
//! directory: one rule for file, environment and flags.
//!
//! A bad configuration is reported whole: [`ConfigError`] lists every unknown
//! key, every value of the wrong type and every invalid value or combination,
//! each with its key, where it came from and what is allowed. The loader
//! decodes key by key (see `decode.rs`) rather than with one serde pass,
//! because serde stops at the first error.
//!
//! `examples/mailroom.toml` is the commented reference of every key; a test
//! loads it, so it cannot drift from the code.

mod decode;
mod error;
mod plugin_access;
mod sources;
mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::plugin::{AccessByPlugin, SandboxLimits};
use crate::store::{self, Durability, Location, OpenOptions};
use crate::state_machine::{Policies, QueueLimits, RetryPolicy};

pub use error::{ConfigError, Problem, Source};
pub use plugin_access::PluginEntry;

/// The prefix of every configuration environment variable.
///
/// The rule: `MAILROOM_<SECTION>_<KEY>`, upper-cased, where `<SECTION>` is one
/// of `STORE`, `PLUGINS`, `DISPATCHER`, `RETRY`, `LOG`, `HTTP` and `<KEY>` the
/// key's name (`MAILROOM_STORE_BUSY_TIMEOUT` sets `store.busy_timeout`).
/// Values are read as the key's type: a number for numeric keys, a duration
/// such as `10s` for durations, text otherwise. An empty value unsets an
/// optional key (`MAILROOM_HTTP_LISTEN=` turns HTTP off).
///
/// Any other variable with at least two words after the prefix looks like a
/// config key and is reported as unknown, except `MAILROOM_TEST_*` (reserved
/// for tests). Single-word names such as `MAILROOM_CONFIG` (the config file
/// path) are not config keys and are left alone. `retry.event_types`,
/// `[event_types."<type>"]` and `[plugin.<name>]` have no environment form.
pub const ENV_PREFIX: &str = "MAILROOM_";

/// The config file read from the working directory when `--config` is not given.
pub const DEFAULT_FILE: &str = "mailroom.toml";

/// The whole configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The store: an SQLite file, or a PostgreSQL database.
    pub store: StoreConfig,
    /// The plugin folder and the sandbox limits.
    pub plugins: PluginsConfig,
    /// How the host claims and runs messages.
    pub dispatcher: DispatcherConfig,
    /// Retry budgets and backoff.
    pub retry: RetryConfig,
    /// `[event_types."<type>"]`: the policies of one event type (its retry
    /// policy, overriding `[retry]`, and its queue limits).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub event_types: BTreeMap<String, EventTypeConfig>,
    /// Logging.
    pub log: LogConfig,
    /// The HTTP API.
    pub http: HttpConfig,
    /// `[plugin.<name>]`: what each plugin, by name, may reach and read.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub plugin: BTreeMap<String, PluginEntry>,
}

/// `[store]`: where every message is kept: the SQLite file `path` (the
/// embedded default) or the PostgreSQL database `url`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// The store file, when `url` is not set. Default `mailroom.db`.
    pub path: PathBuf,
    /// A store URL: `postgres://user:password@host:port/database` for a
    /// PostgreSQL store, or `sqlite:PATH`. Overrides `path`. Never shown in
    /// logs or errors with its password.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Whether an enqueue waits for the disk before it is acknowledged.
    /// Default `full`; `fast` may lose the latest enqueues to a power loss.
    pub durability: Durability,
    /// How long a write waits for another process's lock. Default 10 s.
    #[serde(with = "humantime_serde")]
    pub busy_timeout: Duration,
    /// The largest payload accepted, from producers and from handlers'
    /// emitted events alike. Default 1 MiB.
    pub max_payload_bytes: usize,
    /// The most connections one process opens to a PostgreSQL store, per
    /// role (producers, dispatcher). Default 8.
    pub max_connections: usize,
    /// How long an idempotency key is remembered after its message is
    /// gone (acked, cancelled or purged): an enqueue with it answers the
    /// original id as a duplicate. Default 24 h.
    #[serde(with = "humantime_serde")]
    pub key_retention: Duration,
}

impl Default for StoreConfig {
    fn default() -> Self {
        let open = OpenOptions::default();
        Self {
            path: store::sqlite::default_path(),
            url: None,
            durability: open.durability,
            busy_timeout: open.busy_timeout,
            max_payload_bytes: open.max_payload_bytes,
            max_connections: open.max_connections,
            key_retention: open.key_retention,
        }
    }
}

// By hand so a URL's password never reaches a log line or a panic message.
impl fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreConfig")
            .field("path", &self.path)
            .field("url", &self.url.as_deref().map(store::redact_url))
            .field("durability", &self.durability)
            .field("busy_timeout", &self.busy_timeout)
            .field("max_payload_bytes", &self.max_payload_bytes)
            .field("max_connections", &self.max_connections)
            .field("key_retention", &self.key_retention)
            .finish()
    }
}

/// `[plugins]`: where plugins come from and what each delivery may cost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PluginsConfig {
    /// The watched folder of `.wasm` files. Default `plugins`.
    pub dir: PathBuf,
    /// Where compiled plugins are cached. Default: `.mailroom-cache` beside
    /// the store file (see [`Config::cache_dir`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_dir: Option<PathBuf>,
    /// Wall-clock limit of one delivery. Default 10 s.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Memory cap of one plugin instance, in MiB. Default 64.
    pub memory_limit_mb: u64,
    /// Deliveries one instance may serve; 1 gives every delivery a fresh
    /// instance. Default 1.
    pub instance_reuse: u32,
    /// Events one delivery may emit. Default 1000.
    pub max_emits: u32,
    /// Payload bytes one delivery may emit in all. Default 16 MiB.
    pub max_emit_bytes: usize,
    /// How many handlers one after another may emit a chain of events
    /// (producer-enqueued messages have depth 0). Default 32.
    pub max_chain_depth: u32,
    /// Guest stdout/stderr forwarded to the log per delivery, in KiB. Default 64.
    pub max_output_kb: usize,
    /// How long a plugin's outbound HTTP request may take to resolve and
    /// connect. Default 5 s.
    #[serde(with = "humantime_serde")]
    pub http_connect_timeout: Duration,
    /// The largest response body a plugin's outbound request may read, in
    /// KiB. Default 4096.
    pub http_max_response_kb: u64,
    /// Outbound requests one delivery may have open at once. Default 4.
    pub http_max_concurrent_requests: u32,
    /// The largest plugin file the host reads, in MiB. Default 50.
    pub max_file_mb: u64,
    /// How long compiling one plugin may take. Default 60 s.
    #[serde(with = "humantime_serde")]
    pub compile_timeout: Duration,
    /// The memory compiling one plugin may use, in MiB. Default 1024.
    pub compile_memory_mb: u64,
    /// Event types one plugin may declare. Default 1000.
    pub max_event_types: u32,
}

impl Default for PluginsConfig {
    fn default() -> Self {
        let limits = SandboxLimits::default();
        Self {
            dir: PathBuf::from("plugins"),
            cache_dir: None,
            timeout: limits.timeout,
            memory_limit_mb: limits.memory_bytes / MIB,
            instance_reuse: limits.instance_reuse,
            max_emits: limits.max_emits,
            max_emit_bytes: limits.max_emit_bytes,
            max_chain_depth: limits.max_chain_depth,
            max_output_kb: limits.max_output_bytes / 1024,
            http_connect_timeout: limits.http_connect_timeout,
            http_max_response_kb: limits.http_max_response_bytes / 1024,
            http_max_concurrent_requests: limits.http_max_concurrent_requests,
            max_file_mb: limits.max_file_bytes / MIB,
            compile_timeout: limits.compile_timeout,
            compile_memory_mb: limits.compile_memory_bytes / MIB,
            max_event_types: limits.max_event_types,
        }
    }
}

const MIB: u64 = 1024 * 1024;

/// `[dispatcher]`: how the host claims, runs and settles messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DispatcherConfig {
    /// Deliveries running at once. Default: the number of CPU cores.
    pub concurrency: usize,
    /// The most messages claimed per transaction; a claim asks for fewer
    /// of an event type whose handler is slow (as many as the slots get
    /// through in 20 ms, or the free slots if more). Outcomes commit in
    /// groups of up to half of it. Default 256.
    pub batch_size: usize,
    /// Delivery slots kept for event types that have none running, while
    /// more than one event type is routable: no type, however many of its
    /// messages wait or however long they run, takes every slot. Default
    /// (`None`): a quarter of `concurrency`, at least 1 (0 when
    /// `concurrency` is 1). See [`DispatcherConfig::reserved_slots`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reserved_slots: Option<usize>,
    /// How long a claim holds a message; must exceed `plugins.timeout`, so a
    /// message is never claimed again while its handler may still run.
    /// Default 60 s.
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
    /// How often to look for messages enqueued by other processes when no
    /// notification came: the safety net behind the store's file watch
    /// (a file system that reports no changes). Default 1 s.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// How often to return expired leases to the queue. Default 10 s.
    #[serde(with = "humantime_serde")]
    pub reclaim_interval: Duration,
    /// On SIGINT/SIGTERM, how long in-flight deliveries may take to finish
    /// before they are released. Default 10 s.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// A host sends a heartbeat every `reclaim_interval`; one silent for this
    /// many intervals is taken for dead and its leases are reclaimed at once
    /// (hosts on other machines, or hung ones). Default 3.
    pub heartbeat_misses: u32,
}

impl DispatcherConfig {
    /// The slots reserved for event types that have no delivery running:
    /// `reserved_slots` if set (at most `concurrency - 1`), else a quarter
    /// of `concurrency`, at least 1 when there are 2 slots or more.
    pub fn reserved_slots(&self) -> usize {
        let most = self.concurrency.saturating_sub(1);
        self.reserved_slots
            .unwrap_or_else(|| (self.concurrency / 4).max(1))
            .min(most)
    }
}

impl Default for DispatcherConfig {
    fn default() -> Self {
        Self {
            concurrency: default_concurrency(),
            batch_size: 256,
            reserved_slots: None,
            lease: Duration::from_secs(60),
            poll_interval: Duration::from_secs(1),
            reclaim_interval: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(10),
            heartbeat_misses: 3,
        }
    }
}

/// The number of CPU cores, or 1 when it cannot be told.
pub fn default_concurrency() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// `[retry]`: attempt budgets and backoff, globally and per event type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryConfig {
    /// Attempts before a failing message is dead-lettered. Default 10.
    pub max_attempts: u32,
    /// Delay after the first failure; doubles with each attempt. Default 1 s.
    #[serde(with = "humantime_serde")]
    pub backoff_base: Duration,
    /// The longest delay between attempts. Default 10 min.
    #[serde(with = "humantime_serde")]
    pub backoff_cap: Duration,
    /// Per-event-type overrides (`[retry.event_types."order.created"]`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub event_types: BTreeMap<String, RetryOverride>,
}

impl Default for RetryConfig {
    fn default() -> Self {
        let policy = RetryPolicy::default();
        Self {
            max_attempts: policy.max_attempts,
            backoff_base: policy.backoff_base,
            backoff_cap: policy.backoff_cap,
            event_types: BTreeMap::new(),
        }
    }
}

/// The retry policy of one event type; a field left out takes the global value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryOverride {
    /// Overrides `retry.max_attempts`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// Overrides `retry.backoff_base`.
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub backoff_base: Option<Duration>,
    /// Overrides `retry.backoff_cap`.
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub backoff_cap: Option<Duration>,
}

/// `[event_types."<type>"]`: everything about one event type's queue. A
/// field left out takes the `[retry]` value, or is no limit.
/// `[retry.event_types."<type>"]` is the older spelling of its retry keys,
/// still read; where both name a key, this section wins.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventTypeConfig {
    /// Overrides `retry.max_attempts`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// Overrides `retry.backoff_base`.
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub backoff_base: Option<Duration>,
    /// Overrides `retry.backoff_cap`.
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub backoff_cap: Option<Duration>,
    /// A message not handled within this time of its enqueue is
    /// dead-lettered ("expired after …") and never delivered.
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub ttl: Option<Duration>,
    /// The most deliveries of this type at once, per host (within
    /// `dispatcher.concurrency`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<usize>,
    /// The most messages of this type queued at once: an enqueue that would
    /// exceed it is refused whole (CLI exit 6, HTTP 429).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_queued: Option<u64>,
}

/// `[log]`: how the host logs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `human` (default) or `json` (one object per line).
    pub format: LogFormat,
    /// A `tracing` filter directive, e.g. `info` or `info,mailroom=debug`.
    /// Default `info`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Human,
            level: "info".to_owned(),
        }
    }
}

/// The shape of log lines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Readable lines for a terminal.
    #[default]
    Human,
    /// One JSON object per line, for log collectors.
    Json,
}

impl LogFormat {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Human => "human",
            Self::Json => "json",
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `[http]`: the HTTP API, off unless `listen` is set.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// The address to serve on; `None` (the default) keeps HTTP off. A
    /// non-loopback address requires `token`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// The bearer token every request must carry (`Authorization: Bearer …`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// The largest request body accepted (413 beyond). Default: 8 ×
    /// `store.max_payload_bytes` + 64 KiB (see [`crate::http::Settings`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_body_bytes: Option<usize>,
}

// By hand so the token never reaches a log line or a panic message.
impl fmt::Debug for HttpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpConfig")
            .field("listen", &self.listen)
            .field("token", &self.token.as_ref().map(|_| "<hidden>"))
            .field("max_body_bytes", &self.max_body_bytes)
            .finish()
    }
}

/// What the command line says, each `None` when the flag was not given.
/// Flags override the environment and the file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `--config`: the config file, which must then exist.
    pub config: Option<PathBuf>,
    /// `--db`: `store.path` (and no `store.url`).
    pub store_path: Option<PathBuf>,
    /// `--store`: `store.url`.
    pub store_url: Option<String>,
    /// `--plugins`: `plugins.dir`.
    pub plugins_dir: Option<PathBuf>,
    /// `--concurrency`: `dispatcher.concurrency`.
    pub concurrency: Option<usize>,
    /// `--log-format`: `log.format`.
    pub log_format: Option<LogFormat>,
    /// `--http-listen`: `http.listen`.
    pub http_listen: Option<SocketAddr>,
}

impl Config {
    /// Loads the configuration: defaults, then the config file
    /// (`overrides.config`, else `mailroom.toml` in the working directory if
    /// present), then `MAILROOM_*` environment variables, then `overrides`.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] listing every problem found in every source.
    pub fn load(overrides: &Overrides) -> Result<Config, ConfigError> {
        let file = match &overrides.config {
            Some(path) => Some(path.clone()),
            None => Some(PathBuf::from(DEFAULT_FILE)).filter(|p| p.is_file()),
        };
        let env = std::env::vars_os().filter_map(|(name, value)| {
            // Only our variables matter; a non-UTF-8 one of ours is read
            // lossily, so its problem (if any) is still reported by name.
            let name = name.to_string_lossy().into_owned();
            name.starts_with(ENV_PREFIX)
                .then(|| (name, value.to_string_lossy().into_owned()))
        });
        Self::load_from(file.as_deref(), env, overrides)
    }

    /// As [`Config::load`], with the config file (`None`: no file) and the
    /// environment given explicitly. `overrides.config` is not consulted.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] listing every problem found.
    pub fn load_from(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        overrides: &Overrides,
    ) -> Result<Config, ConfigError> {
        let mut problems = Vec::new();
        let mut layers = sources::Layers::default();
        let mut consulted = Vec::new();
        if let Some(path) = file {
            consulted.push(Source::File(path.to_owned()));
            layers.add_file(path, &mut problems);
        }
        layers.add_env(env);
        layers.add_overrides(overrides, &mut problems);
        let (config, decoder) = decode::decode(layers, &host_env, &mut problems);
        validate::validate(&config, &decoder, &mut problems);
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError {
                file: file.map(Path::to_owned),
                problems,
            })
        }
    }

    /// What each plugin may reach and read (`[plugin.<name>]`), with
    /// `${NAME}` references replaced from the host's environment (secrets
    /// from then on, never shown).
    pub fn plugin_access(&self) -> AccessByPlugin {
        plugin_access::resolve(&self.plugin, &host_env)
    }

    /// The retry policy of every event type: the global `[retry]` values, and
    /// each `[retry.event_types.<type>]` with its missing fields filled from them.
    pub fn policies(&self) -> Policies {
        let default = RetryPolicy {
            max_attempts: self.retry.max_attempts,
            backoff_base: self.retry.backoff_base,
            backoff_cap: self.retry.backoff_cap,
        };
        let mut overrides = self.retry.event_types.clone();
        for (event_type, t) in &self.event_types {
            let o = overrides.entry(event_type.clone()).or_default();
            o.max_attempts = t.max_attempts.or(o.max_attempts);
            o.backoff_base = t.backoff_base.or(o.backoff_base);
            o.backoff_cap = t.backoff_cap.or(o.backoff_cap);
        }
        let by_event_type = overrides
            .iter()
            .map(|(event_type, o)| (event_type.clone(), o.resolve(&default)))
            .collect();
        let limits = self
            .event_types
            .iter()
            .map(|(event_type, t)| {
                let limits = QueueLimits {
                    ttl: t.ttl,
                    concurrency: t.concurrency,
                    max_queued: t.max_queued,
                };
                (event_type.clone(), limits)
            })
            .collect();
        Policies {
            default,
            by_event_type,
            limits,
        }
    }

    /// The sandbox limits of every delivery, from `[plugins]`; emitted
    /// payloads get the producers' limit, `store.max_payload_bytes`.
    pub fn sandbox_limits(&self) -> SandboxLimits {
        let defaults = SandboxLimits::default();
        SandboxLimits {
            timeout: self.plugins.timeout,
            memory_bytes: self.plugins.memory_limit_mb.saturating_mul(MIB),
            max_output_bytes: self.plugins.max_output_kb.saturating_mul(1024),
            max_emits: self.plugins.max_emits,
            max_payload_bytes: self.store.max_payload_bytes,
            max_emit_bytes: self.plugins.max_emit_bytes,
            max_chain_depth: self.plugins.max_chain_depth,
            instance_reuse: self.plugins.instance_reuse,
            http_connect_timeout: self.plugins.http_connect_timeout,
            http_max_response_bytes: self.plugins.http_max_response_kb.saturating_mul(1024),
            http_max_concurrent_requests: self.plugins.http_max_concurrent_requests,
            max_file_bytes: self.plugins.max_file_mb.saturating_mul(MIB),
            compile_timeout: self.plugins.compile_timeout,
            compile_memory_bytes: self.plugins.compile_memory_mb.saturating_mul(MIB),
            max_event_types: self.plugins.max_event_types,
            // Every concurrent delivery needs an instance slot, and the
            // watcher's load-time `info` calls need a few more; the default
            // pool already covers ordinary concurrency.
            max_instances: defaults
                .max_instances
                .max(u32::try_from(self.dispatcher.concurrency).unwrap_or(u32::MAX)),
            ..defaults
        }
    }

    /// Where the store lives: `store.url` when set, else the file
    /// `store.path`.
    pub fn store_location(&self) -> Location {
        self.store
            .url
            .as_deref()
            .and_then(|url| Location::parse_url(url).ok())
            .unwrap_or_else(|| Location::Sqlite(self.store.path.clone()))
    }

    /// How to open the store: `create` says whether a missing store may be
    /// created (a producer or the host) or not (the read-only commands).
    pub fn open_options(&self, create: bool) -> OpenOptions {
        OpenOptions {
            create,
            busy_timeout: self.store.busy_timeout,
            durability: self.store.durability,
            max_payload_bytes: self.store.max_payload_bytes,
            host_silence: self
                .dispatcher
                .reclaim_interval
                .saturating_mul(self.dispatcher.heartbeat_misses),
            max_connections: self.store.max_connections,
            policies: self.policies(),
            key_retention: self.store.key_retention,
            ..OpenOptions::default()
        }
    }

    /// How the read-only commands open the store: never creating, migrating
    /// or changing it.
    pub fn read_only_options(&self) -> OpenOptions {
        OpenOptions {
            read_only: true,
            ..self.open_options(false)
        }
    }

    /// Where compiled plugins are cached: `plugins.cache_dir`, else
    /// `.mailroom-cache` in the store file's directory (so one store keeps one
    /// cache, whatever the working directory); with a PostgreSQL store, in
    /// the working directory.
    pub fn cache_dir(&self) -> PathBuf {
        self.plugins.cache_dir.clone().unwrap_or_else(|| {
            self.store_location()
                .sqlite_path()
                .and_then(Path::parent)
                .unwrap_or_else(|| Path::new(""))
                .join(".mailroom-cache")
        })
    }
}

/// A variable of the host's environment, for `${NAME}` in `[plugin.<name>.config]`.
fn host_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

impl RetryOverride {
    /// This override with its missing fields taken from `global`.
    pub fn resolve(&self, global: &RetryPolicy) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.max_attempts.unwrap_or(global.max_attempts),
            backoff_base: self.backoff_base.unwrap_or(global.backoff_base),
            backoff_cap: self.backoff_cap.unwrap_or(global.backoff_cap),
        }
    }
}

#[cfg(test)]
mod tests;
