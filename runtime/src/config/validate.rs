//! Checks on values that have the right type but are not allowed, alone or
//! together (a lease shorter than the plugin timeout). Every check runs, so
//! every problem is reported.

use super::decode::{Decoder, quote_key};
use super::error::Problem;
use super::{Config, RetryConfig};

/// SQLite's largest string or blob (`SQLITE_MAX_LENGTH`), so the largest payload.
const MAX_PAYLOAD_LIMIT: usize = 1_000_000_000;

/// A plugin instance's memory is 32-bit: it cannot grow past 4 GiB.
const MAX_MEMORY_LIMIT_MB: u64 = 4096;

/// Each concurrent delivery reserves an instance slot (address space for a
/// 4 GiB memory); past this the reservation no longer fits comfortably.
const MAX_CONCURRENCY: usize = 1024;

pub(super) fn validate(config: &Config, decoder: &Decoder, problems: &mut Vec<Problem>) {
    let mut check = Checker { decoder, problems };
    let c = config;

    check.that(!c.store.path.as_os_str().is_empty(), "store.path", || {
        "is empty: give the path of the store file, e.g. \"mailroom.db\"".into()
    });
    if let Some(url) = &c.store.url
        && let Err(e) = crate::store::Location::parse_url(url)
    {
        check.that(false, "store.url", || match e {
            crate::store::StoreError::BadUrl { reason, .. } => reason,
            other => other.to_string(),
        });
    }
    check.that(
        (1..=1000).contains(&c.store.max_connections),
        "store.max_connections",
        || format!("is {}: allowed are 1 to 1000", c.store.max_connections),
    );
    check.that(
        c.dispatcher.heartbeat_misses >= 1,
        "dispatcher.heartbeat_misses",
        || "is 0: use 1 or more (3 tolerates two late heartbeats)".into(),
    );
    check.that(
        (1..=MAX_PAYLOAD_LIMIT).contains(&c.store.max_payload_bytes),
        "store.max_payload_bytes",
        || {
            format!(
                "is {}: allowed are 1 to {MAX_PAYLOAD_LIMIT} bytes",
                c.store.max_payload_bytes
            )
        },
    );

    check.that(!c.plugins.dir.as_os_str().is_empty(), "plugins.dir", || {
        "is empty: give the folder to watch for .wasm files, e.g. \"plugins\"".into()
    });
    check.that(!c.plugins.timeout.is_zero(), "plugins.timeout", || {
        "is 0: a delivery needs some time, e.g. \"10s\"".into()
    });
    check.that(
        (1..=MAX_MEMORY_LIMIT_MB).contains(&c.plugins.memory_limit_mb),
        "plugins.memory_limit_mb",
        || {
            format!(
                "is {}: allowed are 1 to {MAX_MEMORY_LIMIT_MB} (MiB; a plugin's memory cannot grow past 4 GiB)",
                c.plugins.memory_limit_mb
            )
        },
    );
    check.that(
        c.plugins.instance_reuse >= 1,
        "plugins.instance_reuse",
        || "is 0: use 1 (a fresh instance for every delivery) or more".into(),
    );
    check.that(
        c.plugins.max_emit_bytes >= 1,
        "plugins.max_emit_bytes",
        || "is 0: allow at least the payload bytes a delivery emits, e.g. 16777216 (16 MiB)".into(),
    );
    check.that(
        c.plugins.max_chain_depth >= 1,
        "plugins.max_chain_depth",
        || "is 0: allow at least 1 (producer events may then emit, their follow-ups may not)".into(),
    );

    check.that(c.plugins.max_file_mb >= 1, "plugins.max_file_mb", || {
        "is 0: allow at least 1 MiB (a plugin built with mailroom-sdk is a few hundred KiB)".into()
    });
    check.that(!c.plugins.compile_timeout.is_zero(), "plugins.compile_timeout", || {
        "is 0: compiling a plugin needs some time, e.g. \"60s\"".into()
    });
    check.that(c.plugins.compile_memory_mb >= 64, "plugins.compile_memory_mb", || {
        format!(
            "is {}: allow at least 64 (MiB; compiling even a small plugin needs tens of MiB)",
            c.plugins.compile_memory_mb
        )
    });
    check.that(c.plugins.max_event_types >= 1, "plugins.max_event_types", || {
        "is 0: a plugin handles at least one event type".into()
    });
    check.that(
        c.plugins.http_max_concurrent_requests >= 1,
        "plugins.http_max_concurrent_requests",
        || "is 0: allow at least 1 open request per delivery (a plugin without allowed_outbound_hosts makes none anyway)".into(),
    );
    check.that(
        !c.plugins.http_connect_timeout.is_zero(),
        "plugins.http_connect_timeout",
        || "is 0: connecting needs some time, e.g. \"5s\"".into(),
    );

    check.that(
        (1..=MAX_CONCURRENCY).contains(&c.dispatcher.concurrency),
        "dispatcher.concurrency",
        || {
            format!(
                "is {}: allowed are 1 to {MAX_CONCURRENCY}",
                c.dispatcher.concurrency
            )
        },
    );
    if let Some(reserved) = c.dispatcher.reserved_slots {
        check.that(
            reserved < c.dispatcher.concurrency.max(1) || reserved == 0,
            "dispatcher.reserved_slots",
            || {
                format!(
                    "is {reserved}: at most dispatcher.concurrency - 1 ({}), so some slot is left for a busy event type",
                    c.dispatcher.concurrency.saturating_sub(1)
                )
            },
        );
    }
    check.that(
        c.dispatcher.batch_size >= 1,
        "dispatcher.batch_size",
        || "is 0: claim at least 1 message per transaction".into(),
    );
    if !decoder.failed("plugins.timeout") {
        let needed = crate::dispatcher::min_lease(c.plugins.timeout);
        check.that(
            c.dispatcher.lease >= needed,
            "dispatcher.lease",
            || {
                format!(
                    "{} is too short for plugins.timeout ({}, from {}): use at least {} (the timeout plus {} of margin). A delivery starts only with the timeout plus {} of its lease left, so a shorter lease hands every claim back and nothing is delivered",
                    humantime::format_duration(c.dispatcher.lease),
                    humantime::format_duration(c.plugins.timeout),
                    decoder.source("plugins.timeout"),
                    humantime::format_duration(needed),
                    humantime::format_duration(needed - c.plugins.timeout),
                    humantime::format_duration(crate::dispatcher::LEASE_MARGIN),
                )
            },
        );
    }
    check.that(
        !c.dispatcher.poll_interval.is_zero(),
        "dispatcher.poll_interval",
        || "is 0: use a positive interval such as \"50ms\"".into(),
    );
    check.that(
        !c.dispatcher.reclaim_interval.is_zero(),
        "dispatcher.reclaim_interval",
        || "is 0: use a positive interval such as \"10s\"".into(),
    );

    retry(&c.retry, &mut check);
    event_types(c, &mut check);

    if let Some(why) = log_filter_problem(&c.log.level) {
        check.problem("log.level", why);
    }

    check.that(
        c.http.max_body_bytes != Some(0),
        "http.max_body_bytes",
        || "is 0: allow at least one event, e.g. 8388608 (8 MiB), or leave the key out".into(),
    );
    check.that(
        c.http.token.as_ref().is_none_or(|t| !t.is_empty()),
        "http.token",
        || "is empty: set a secret token, or leave the key out".into(),
    );
    if let Some(addr) = c.http.listen {
        check.that(
            addr.ip().is_loopback() || c.http.token.is_some(),
            "http.listen",
            || {
                format!(
                    "{addr} is reachable from other machines but no token is set: set http.token (or MAILROOM_HTTP_TOKEN), or listen on a loopback address such as 127.0.0.1:{}",
                    addr.port()
                )
            },
        );
    }
}

fn retry(r: &RetryConfig, check: &mut Checker<'_>) {
    check.that(r.max_attempts >= 1, "retry.max_attempts", || {
        "is 0: allow at least 1 attempt".into()
    });
    backoff_order("retry", r.backoff_base, r.backoff_cap, check);
    for (event_type, o) in &r.event_types {
        let path = format!("retry.event_types.{}", quote_key(event_type));
        check.that(
            o.max_attempts != Some(0),
            &format!("{path}.max_attempts"),
            || "is 0: allow at least 1 attempt".into(),
        );
        if o.backoff_base.is_some() || o.backoff_cap.is_some() {
            backoff_order(
                &path,
                o.backoff_base.unwrap_or(r.backoff_base),
                o.backoff_cap.unwrap_or(r.backoff_cap),
                check,
            );
        }
    }
}

fn event_types(c: &Config, check: &mut Checker<'_>) {
    for (event_type, t) in &c.event_types {
        let path = format!("event_types.{}", quote_key(event_type));
        check.that(
            t.max_attempts != Some(0),
            &format!("{path}.max_attempts"),
            || "is 0: allow at least 1 attempt".into(),
        );
        check.that(
            t.ttl != Some(std::time::Duration::ZERO),
            &format!("{path}.ttl"),
            || "is 0: every message would expire at once; leave ttl out for no limit".into(),
        );
        check.that(
            t.concurrency != Some(0),
            &format!("{path}.concurrency"),
            || "is 0: no message of this type would ever run; allow at least 1".into(),
        );
        check.that(
            t.max_queued != Some(0),
            &format!("{path}.max_queued"),
            || "is 0: every enqueue would be refused; allow at least 1".into(),
        );
        if t.backoff_base.is_some() || t.backoff_cap.is_some() {
            let old = c.retry.event_types.get(event_type);
            backoff_order(
                &path,
                t.backoff_base
                    .or(old.and_then(|o| o.backoff_base))
                    .unwrap_or(c.retry.backoff_base),
                t.backoff_cap
                    .or(old.and_then(|o| o.backoff_cap))
                    .unwrap_or(c.retry.backoff_cap),
                check,
            );
        }
    }
}

/// `<path>.backoff_base` must not exceed the cap that applies to it.
fn backoff_order(
    path: &str,
    base: std::time::Duration,
    cap: std::time::Duration,
    check: &mut Checker<'_>,
) {
    let base_key = format!("{path}.backoff_base");
    let cap_key = format!("{path}.backoff_cap");
    if check.decoder.failed(&base_key) || check.decoder.failed(&cap_key) {
        return;
    }
    let cap_source = check.decoder.source(&cap_key);
    check.that(base <= cap, &base_key, || {
        format!(
            "{} is longer than the backoff cap ({}, from {cap_source}): the base must not exceed the cap",
            humantime::format_duration(base),
            humantime::format_duration(cap),
        )
    });
}

struct Checker<'a> {
    decoder: &'a Decoder,
    problems: &'a mut Vec<Problem>,
}

impl Checker<'_> {
    /// Records a problem with `key` unless `ok`, or unless its value already
    /// had the wrong type (then the default was checked, which says nothing).
    fn that(&mut self, ok: bool, key: &str, message: impl FnOnce() -> String) {
        if !ok && !self.decoder.failed(key) {
            self.problem(key, message());
        }
    }

    fn problem(&mut self, key: &str, message: String) {
        self.problems.push(Problem {
            key: key.to_owned(),
            source: self.decoder.source(key),
            message,
        });
    }
}

/// What is wrong with a `log.level` filter, if anything. Beyond what the
/// filter syntax rejects, a bare word that is not a level (`loud`) is refused:
/// the syntax reads it as "everything from the target `loud`", which silences
/// every line Mailroom writes.
fn log_filter_problem(level: &str) -> Option<String> {
    const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];
    if let Err(e) = tracing_subscriber::EnvFilter::try_new(level) {
        return Some(format!(
            "{level:?} is not a filter directive ({e}): use a level (error, warn, info, debug, trace) or e.g. \"info,mailroom=debug\""
        ));
    }
    let bare = level
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty() && !d.contains(['=', '[']))
        .find(|d| !LEVELS.iter().any(|l| l.eq_ignore_ascii_case(d)));
    bare.map(|word| {
        format!(
            "{word:?} is not a level: use one of error, warn, info, debug, trace or off, or name a target with its level, e.g. \"info,{word}=debug\""
        )
    })
}

#[cfg(test)]
mod log_filter_tests {
    use super::log_filter_problem;

    #[test]
    fn levels_and_target_directives_pass() {
        for ok in [
            "info",
            "DEBUG",
            "warn,mailroom=debug",
            "mailroom::dispatcher=trace",
            "off",
            "",
        ] {
            assert_eq!(log_filter_problem(ok), None, "{ok}");
        }
    }

    #[test]
    fn a_bare_word_that_is_not_a_level_is_named() {
        let why = log_filter_problem("loud").expect("refused");
        assert!(why.contains("\"loud\" is not a level"), "{why}");
        let why = log_filter_problem("info,verbose").expect("refused");
        assert!(why.contains("\"verbose\""), "{why}");
        assert!(log_filter_problem("info,=nonsense==").is_some());
    }
}
