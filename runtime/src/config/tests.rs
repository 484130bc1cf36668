use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

fn env(vars: &[(&str, &str)]) -> Vec<(String, String)> {
    vars.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn write(dir: &tempfile::TempDir, text: &str) -> PathBuf {
    let path = dir.path().join("mailroom.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

fn load(
    file: Option<&Path>,
    vars: &[(&str, &str)],
    overrides: &Overrides,
) -> Result<Config, ConfigError> {
    Config::load_from(file, env(vars), overrides)
}

fn problems(err: &ConfigError) -> Vec<(String, Source)> {
    err.problems
        .iter()
        .map(|p| (p.key.clone(), p.source.clone()))
        .collect()
}

#[test]
fn defaults_without_any_source() {
    let c = load(None, &[], &Overrides::default()).expect("defaults are valid");
    assert_eq!(c, Config::default());
    assert_eq!(c.store.path, PathBuf::from("mailroom.db"));
    assert_eq!(c.store.durability, Durability::Full);
    assert_eq!(c.store.busy_timeout, Duration::from_secs(10));
    assert_eq!(c.store.max_payload_bytes, 1024 * 1024);
    assert_eq!(c.plugins.dir, PathBuf::from("plugins"));
    assert_eq!(c.plugins.cache_dir, None);
    assert_eq!(c.plugins.timeout, Duration::from_secs(10));
    assert_eq!(c.plugins.memory_limit_mb, 64);
    assert_eq!(c.plugins.instance_reuse, 1);
    assert_eq!(c.plugins.max_emits, 1000);
    assert_eq!(c.plugins.max_output_kb, 64);
    assert_eq!(c.dispatcher.concurrency, default_concurrency());
    assert!(c.dispatcher.concurrency >= 1);
    assert_eq!(c.dispatcher.batch_size, 256);
    assert_eq!(c.dispatcher.lease, Duration::from_secs(60));
    assert_eq!(c.dispatcher.poll_interval, Duration::from_secs(1));
    assert_eq!(c.dispatcher.reclaim_interval, Duration::from_secs(10));
    assert_eq!(c.dispatcher.shutdown_grace, Duration::from_secs(10));
    assert_eq!(c.retry.max_attempts, 10);
    assert_eq!(c.retry.backoff_base, Duration::from_secs(1));
    assert_eq!(c.retry.backoff_cap, Duration::from_secs(600));
    assert!(c.retry.event_types.is_empty());
    assert_eq!(c.log.format, LogFormat::Human);
    assert_eq!(c.log.level, "info");
    assert_eq!(c.http.listen, None);
    assert_eq!(c.http.token, None);
    assert_eq!(c.cache_dir(), PathBuf::from(".mailroom-cache"));
    // The derived conversions agree with the library's own defaults.
    assert_eq!(c.sandbox_limits(), SandboxLimits::default());
    assert_eq!(c.policies(), Policies::default());
}

#[test]
fn precedence_is_default_then_file_then_env_then_flag() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(
        &dir,
        r#"
        [store]
        path = "from-file.db"
        busy_timeout = "3s"
        [dispatcher]
        concurrency = 3
        batch_size = 7
        [log]
        format = "json"
        "#,
    );
    let vars = [
        ("MAILROOM_STORE_PATH", "from-env.db"),
        ("MAILROOM_DISPATCHER_CONCURRENCY", "5"),
        ("MAILROOM_LOG_LEVEL", "debug"),
        ("MAILROOM_TEST_ANYTHING", "ignored"),
        ("MAILROOM_CONFIG", "not a config key"),
        ("PATH", "/usr/bin"),
    ];
    let flags = Overrides {
        store_path: Some("from-flag.db".into()),
        ..Overrides::default()
    };

    // Each layer alone over the defaults.
    let c = load(Some(&file), &[], &Overrides::default()).expect("file only");
    assert_eq!(c.store.path, PathBuf::from("from-file.db"));
    assert_eq!(c.dispatcher.concurrency, 3);
    assert_eq!(c.log.format, LogFormat::Json);
    assert_eq!(
        c.plugins.dir,
        PathBuf::from("plugins"),
        "untouched keys keep defaults"
    );

    let c = load(Some(&file), &vars, &Overrides::default()).expect("file + env");
    assert_eq!(c.store.path, PathBuf::from("from-env.db"), "env beats file");
    assert_eq!(c.dispatcher.concurrency, 5, "env text read as a number");
    assert_eq!(
        c.dispatcher.batch_size, 7,
        "file keys the env leaves alone stay"
    );
    assert_eq!(c.store.busy_timeout, Duration::from_secs(3));
    assert_eq!(c.log.level, "debug");
    assert_eq!(c.log.format, LogFormat::Json);

    let c = load(Some(&file), &vars, &flags).expect("file + env + flags");
    assert_eq!(
        c.store.path,
        PathBuf::from("from-flag.db"),
        "flag beats env"
    );
    assert_eq!(c.dispatcher.concurrency, 5);

    let run_flags = Overrides {
        plugins_dir: Some("p".into()),
        concurrency: Some(9),
        log_format: Some(LogFormat::Human),
        http_listen: Some("127.0.0.1:9000".parse().expect("addr")),
        ..Overrides::default()
    };
    let c = load(Some(&file), &vars, &run_flags).expect("run flags");
    assert_eq!(c.plugins.dir, PathBuf::from("p"));
    assert_eq!(c.dispatcher.concurrency, 9);
    assert_eq!(c.log.format, LogFormat::Human);
    assert_eq!(c.http.listen, Some("127.0.0.1:9000".parse().expect("addr")));
}

#[test]
fn every_problem_is_reported_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(
        &dir,
        r#"
        concurrency = 4
        [store]
        pathh = "x.db"
        durability = "sometimes"
        [plugins]
        timeout = 5
        memory_limit_mb = 0
        [dispatcher]
        concurrency = 0
        lease = "5s"
        [retry]
        max_attempts = 0
        backoff_base = "1h"
        backoff_cap = "1m"
        [retry.event_types."order.created"]
        max_attemps = 3
        [log]
        format = "xml"
        level = "info,=nonsense=="
        [http]
        listen = "0.0.0.0:8080"
        [metrics]
        on = true
        "#,
    );
    let vars = [
        ("MAILROOM_DISPATCHER_BATCH_SIZE", "many"),
        ("MAILROOM_DISPATCHER_CONCURENCY", "2"),
        ("MAILROOM_STORAGE_PATH", "y.db"),
        ("MAILROOM_RETRY_EVENT_TYPES", "x"),
    ];
    let flags = Overrides {
        concurrency: Some(0),
        ..Overrides::default()
    };
    let err = load(Some(&file), &vars, &flags).expect_err("bad config");
    let found = problems(&err);
    let f = || Source::File(file.clone());
    let e = |name: &str| Source::Env(name.to_owned());
    let expected = [
        ("store.pathh".to_owned(), f()),
        ("store.durability".to_owned(), f()),
        ("plugins.timeout".to_owned(), f()),
        ("plugins.memory_limit_mb".to_owned(), f()),
        (
            "dispatcher.concurrency".to_owned(),
            Source::Flag("--concurrency"),
        ),
        (
            "dispatcher.batch_size".to_owned(),
            e("MAILROOM_DISPATCHER_BATCH_SIZE"),
        ),
        (
            "dispatcher.concurency".to_owned(),
            e("MAILROOM_DISPATCHER_CONCURENCY"),
        ),
        ("storage.path".to_owned(), e("MAILROOM_STORAGE_PATH")),
        (
            "retry.event_types".to_owned(),
            e("MAILROOM_RETRY_EVENT_TYPES"),
        ),
        ("retry.max_attempts".to_owned(), f()),
        ("retry.backoff_base".to_owned(), f()),
        ("log.format".to_owned(), f()),
        ("log.level".to_owned(), f()),
        ("http.listen".to_owned(), f()),
        ("metrics".to_owned(), f()),
        ("concurrency".to_owned(), f()),
    ];
    for want in &expected {
        assert!(found.contains(want), "missing {want:?} in:\n{err}");
    }
    assert_eq!(
        found.len(),
        expected.len(),
        "unexpected extra problems:\n{err}"
    );
    // A mistyped `plugins.timeout` is one problem, not also a lease problem.
    assert!(!found.iter().any(|(k, _)| k == "dispatcher.lease"), "{err}");

    let text = err.to_string();
    assert!(
        text.starts_with("invalid configuration (16 problems in "),
        "{text}"
    );
    assert_eq!(
        text.lines().count(),
        17,
        "a header and one line per problem:\n{text}"
    );
    assert!(
        text.contains(
            "dispatcher.concurrency (from flag --concurrency): is 0: allowed are 1 to 1024"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "unknown key: [store] accepts path, url, durability, busy_timeout, max_payload_bytes, max_connections, key_retention"
        ),
        "{text}"
    );
    assert!(
        text.contains(r#""sometimes" is not valid: expected "full" or "fast""#),
        "{text}"
    );
    assert!(
        text.contains("did you mean dispatcher.concurrency"),
        "{text}"
    );
    assert!(text.contains("no token is set"), "{text}");
    assert!(text.contains("has no environment form"), "{text}");
}

#[test]
fn lease_must_exceed_the_plugin_timeout() {
    let flags = Overrides::default();
    let err = load(None, &[("MAILROOM_PLUGINS_TIMEOUT", "2m")], &flags)
        .expect_err("lease 60s < timeout 2m");
    assert_eq!(
        problems(&err),
        [("dispatcher.lease".to_owned(), Source::Default)]
    );
    assert!(
        err.to_string()
            .contains("from environment variable MAILROOM_PLUGINS_TIMEOUT"),
        "{err}"
    );
    load(
        None,
        &[
            ("MAILROOM_PLUGINS_TIMEOUT", "2m"),
            ("MAILROOM_DISPATCHER_LEASE", "3m"),
        ],
        &flags,
    )
    .expect("lease 3m > timeout 2m");
}

/// A lease longer than the timeout but without the margin a delivery needs
/// would hand every claim back: refused, naming the shortest that works.
#[test]
fn lease_must_leave_the_dispatcher_its_margin() {
    let flags = Overrides::default();
    let short = [
        ("MAILROOM_PLUGINS_TIMEOUT", "2s"),
        ("MAILROOM_DISPATCHER_LEASE", "2500ms"),
    ];
    let err = load(None, &short, &flags).expect_err("lease 2.5s < timeout 2s + margin");
    assert_eq!(
        problems(&err),
        [(
            "dispatcher.lease".to_owned(),
            Source::Env("MAILROOM_DISPATCHER_LEASE".to_owned())
        )]
    );
    let needed = crate::dispatcher::min_lease(Duration::from_secs(2));
    assert!(
        err.to_string()
            .contains(&humantime::format_duration(needed).to_string()),
        "{err}"
    );
    load(
        None,
        &[
            ("MAILROOM_PLUGINS_TIMEOUT", "2s"),
            ("MAILROOM_DISPATCHER_LEASE", "4s"),
        ],
        &flags,
    )
    .expect("lease 4s = timeout 2s + margin");
}

#[test]
fn a_missing_or_broken_file_is_a_problem_and_env_is_still_checked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("nope.toml");
    let err = load(
        Some(&missing),
        &[("MAILROOM_STORE_BUSY_TIMEOUT", "soon")],
        &Overrides::default(),
    )
    .expect_err("missing file");
    assert_eq!(
        problems(&err),
        [
            (String::new(), Source::File(missing.clone())),
            (
                "store.busy_timeout".to_owned(),
                Source::Env("MAILROOM_STORE_BUSY_TIMEOUT".into())
            ),
        ]
    );
    assert!(err.to_string().contains("does not exist"), "{err}");

    let file = write(&dir, "[store]\npath = \"a.db\"\nbusy_timeout = \n");
    let err = load(Some(&file), &[], &Overrides::default()).expect_err("syntax error");
    let text = err.to_string();
    assert!(text.contains("not valid TOML: line 3"), "{text}");
    assert_eq!(text.lines().count(), 2, "{text}");
}

#[test]
fn env_values_take_the_keys_types_and_empty_unsets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(&dir, "[http]\nlisten = \"127.0.0.1:8080\"\ntoken = \"t\"\n");
    let c = load(
        Some(&file),
        &[
            ("MAILROOM_HTTP_LISTEN", ""),
            ("MAILROOM_STORE_DURABILITY", "fast"),
            ("MAILROOM_STORE_MAX_PAYLOAD_BYTES", "2048"),
            ("MAILROOM_PLUGINS_CACHE_DIR", "/tmp/cache"),
            ("MAILROOM_RETRY_BACKOFF_CAP", "1h"),
        ],
        &Overrides::default(),
    )
    .expect("valid");
    assert_eq!(c.http.listen, None, "empty value turns HTTP off");
    assert_eq!(c.http.token.as_deref(), Some("t"));
    assert_eq!(c.store.durability, Durability::Fast);
    assert_eq!(c.store.max_payload_bytes, 2048);
    assert_eq!(c.cache_dir(), PathBuf::from("/tmp/cache"));
    assert_eq!(c.retry.backoff_cap, Duration::from_secs(3600));
}

#[test]
fn non_loopback_listen_needs_a_token() {
    let flags = Overrides {
        http_listen: Some("0.0.0.0:8080".parse().expect("addr")),
        ..Overrides::default()
    };
    let err = load(None, &[], &flags).expect_err("no token");
    assert_eq!(
        problems(&err),
        [("http.listen".to_owned(), Source::Flag("--http-listen"))]
    );
    let c = load(None, &[("MAILROOM_HTTP_TOKEN", "s3cret")], &flags).expect("token set");
    assert_eq!(c.http.token.as_deref(), Some("s3cret"));
    assert!(
        !format!("{c:?}").contains("s3cret"),
        "Debug must hide the token"
    );
    let loopback = Overrides {
        http_listen: Some("[::1]:8080".parse().expect("addr")),
        ..Overrides::default()
    };
    load(None, &[], &loopback).expect("loopback needs no token");
}

#[test]
fn per_event_type_retry_overrides_fall_back_to_the_global_policy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(
        &dir,
        r#"
        [retry]
        max_attempts = 4
        backoff_cap = "2m"
        [retry.event_types."payment.capture"]
        max_attempts = 20
        [retry.event_types.email]
        backoff_base = "5s"
        backoff_cap = "1h"
        "#,
    );
    let c = load(Some(&file), &[], &Overrides::default()).expect("valid");
    let p = c.policies();
    assert_eq!(p.default.max_attempts, 4);
    let pay = p.for_event_type("payment.capture");
    assert_eq!(
        (pay.max_attempts, pay.backoff_base, pay.backoff_cap),
        (20, Duration::from_secs(1), Duration::from_secs(120))
    );
    let email = p.for_event_type("email");
    assert_eq!(
        (email.max_attempts, email.backoff_base, email.backoff_cap),
        (4, Duration::from_secs(5), Duration::from_secs(3600))
    );
    assert_eq!(p.for_event_type("other"), &p.default);

    let bad = write(
        &dir,
        r#"
        [retry.event_types."bad type"]
        max_attempts = 2
        [retry.event_types.slow]
        backoff_base = "20m"
        [retry.event_types.zero]
        max_attempts = 0
        "#,
    );
    let err = load(Some(&bad), &[], &Overrides::default()).expect_err("bad overrides");
    let keys: Vec<String> = err.problems.iter().map(|p| p.key.clone()).collect();
    assert_eq!(
        keys,
        [
            r#"retry.event_types."bad type""#,
            "retry.event_types.slow.backoff_base",
            "retry.event_types.zero.max_attempts",
        ],
        "{err}"
    );
}

#[test]
fn accessors_map_the_config_onto_the_runtime() {
    let mut c = Config::default();
    c.store.path = PathBuf::from("/data/q/mailroom.db");
    c.store.max_payload_bytes = 4096;
    c.store.durability = Durability::Fast;
    c.store.busy_timeout = Duration::from_secs(2);
    c.store.key_retention = Duration::from_secs(90);
    c.plugins.memory_limit_mb = 16;
    c.plugins.max_output_kb = 8;
    c.plugins.timeout = Duration::from_secs(3);
    c.plugins.instance_reuse = 5;
    c.plugins.max_emits = 7;
    c.plugins.max_emit_bytes = 9000;
    c.plugins.max_chain_depth = 3;
    c.dispatcher.concurrency = 500;
    assert_eq!(c.cache_dir(), PathBuf::from("/data/q/.mailroom-cache"));
    let limits = c.sandbox_limits();
    assert_eq!(limits.memory_bytes, 16 << 20);
    assert_eq!(limits.max_output_bytes, 8 << 10);
    assert_eq!(limits.max_payload_bytes, 4096);
    assert_eq!(limits.timeout, Duration::from_secs(3));
    assert_eq!(limits.instance_reuse, 5);
    assert_eq!(limits.max_emits, 7);
    assert_eq!(limits.max_emit_bytes, 9000);
    assert_eq!(limits.max_chain_depth, 3);
    assert_eq!(limits.max_instances, 500, "a slot per concurrent delivery");
    let open = c.open_options(false);
    assert!(!open.create);
    assert_eq!(open.durability, Durability::Fast);
    assert_eq!(open.busy_timeout, Duration::from_secs(2));
    assert_eq!(open.key_retention, Duration::from_secs(90));
    assert_eq!(open.max_payload_bytes, 4096);
    assert!(c.open_options(true).create);
}

/// docs/LIMITS.md names every limit a plugin is held to: each `[plugins]`
/// key but where plugins come from, and the dispatcher's share of slots.
#[test]
fn the_limits_page_lists_every_plugin_limit() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let limits = std::fs::read_to_string(root.join("docs/LIMITS.md")).expect("read LIMITS.md");
    let mut full = Config::default();
    full.dispatcher.reserved_slots = Some(1);
    let table = toml::Table::try_from(&full).expect("serialize");
    let plugins = table["plugins"].as_table().expect("[plugins]");
    let keys = plugins
        .keys()
        .filter(|k| !["dir", "cache_dir"].contains(&k.as_str()))
        .map(|k| format!("plugins.{k}"))
        .chain(["dispatcher.concurrency".into(), "dispatcher.reserved_slots".into()]);
    for key in keys {
        assert!(limits.contains(&format!("`{key}`")), "{key} is missing from docs/LIMITS.md");
    }
}

#[test]
fn reserved_slots_default_to_a_quarter_and_leave_one_slot() {
    let mut d = crate::config::DispatcherConfig {
        concurrency: 16,
        ..Default::default()
    };
    assert_eq!(d.reserved_slots(), 4);
    d.concurrency = 2;
    assert_eq!(d.reserved_slots(), 1);
    d.concurrency = 1;
    assert_eq!(d.reserved_slots(), 0, "one slot cannot be reserved");
    d.concurrency = 8;
    d.reserved_slots = Some(20);
    assert_eq!(d.reserved_slots(), 7, "at most concurrency - 1");

    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(&dir, "[dispatcher]\nconcurrency = 4\nreserved_slots = 4\n");
    let err = load(Some(&file), &[], &Overrides::default()).expect_err("refused");
    assert!(
        err.to_string().contains("dispatcher.reserved_slots")
            && err.to_string().contains("at most dispatcher.concurrency - 1 (3)"),
        "{err}"
    );
}

/// The reference config lists every key with its default: loading it gives
/// the defaults, serde's derived reading agrees, and every key the code knows
/// appears in it (set or commented out).
#[test]
fn the_reference_config_matches_the_code() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/mailroom.toml");
    let c = load(Some(&path), &[], &Overrides::default()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c, Config::default());

    let text = std::fs::read_to_string(&path).expect("read reference");
    let derived: Config = toml::from_str(&text).expect("serde reads the reference too");
    assert_eq!(derived, c);

    let mut full = Config::default();
    full.plugins.cache_dir = Some("c".into());
    full.dispatcher.reserved_slots = Some(1);
    full.http.listen = Some("127.0.0.1:1".parse().expect("addr"));
    full.http.token = Some("t".into());
    full.store.url = Some("postgres://u@h/d".into());
    let table = toml::Table::try_from(&full).expect("serialize");
    for (section, keys) in &table {
        assert!(
            text.contains(&format!("[{section}]")),
            "[{section}] missing from the reference"
        );
        let keys = keys.as_table().expect("sections are tables");
        for key in keys.keys() {
            assert!(
                text.contains(&format!("\n{key} = ")) || text.contains(&format!("\n# {key} = ")),
                "{section}.{key} missing from the reference"
            );
        }
    }
    assert!(
        text.contains("[retry.event_types."),
        "per-type overrides are shown"
    );
}

#[test]
fn the_store_url_comes_from_file_environment_or_flag_and_db_wins() {
    use crate::store::Location;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(&dir, "[store]\nurl = \"postgres://app:file-pw@db/a\"\n");
    let c = load(Some(&file), &[], &Overrides::default()).expect("valid");
    assert!(matches!(c.store_location(), Location::Postgres(_)));
    assert_eq!(c.store_location().to_string(), "postgres://app:***@db/a");
    assert!(!format!("{c:?}").contains("file-pw"), "Debug hides the password");

    let c = load(
        Some(&file),
        &[("MAILROOM_STORE_URL", "postgres://app:env-pw@db/b")],
        &Overrides::default(),
    )
    .expect("valid");
    assert_eq!(c.store_location().to_string(), "postgres://app:***@db/b");

    let flag = Overrides {
        store_url: Some("sqlite:flag.db".into()),
        ..Overrides::default()
    };
    let c = load(Some(&file), &[], &flag).expect("valid");
    assert_eq!(c.store_location(), Location::Sqlite("flag.db".into()));

    // `--db` names a file and wins over a URL from the file or environment.
    let db = Overrides {
        store_path: Some("q.db".into()),
        ..Overrides::default()
    };
    let c = load(
        Some(&file),
        &[("MAILROOM_STORE_URL", "postgres://app:env-pw@db/b")],
        &db,
    )
    .expect("valid");
    assert_eq!(c.store_location(), Location::Sqlite("q.db".into()));
}

#[test]
fn a_bad_store_url_is_a_problem_that_hides_its_password() {
    let err = load(
        None,
        &[("MAILROOM_STORE_URL", "mysql://app:hidden-pw@db/a")],
        &Overrides::default(),
    )
    .expect_err("refused");
    assert_eq!(
        problems(&err),
        vec![(
            "store.url".to_owned(),
            Source::Env("MAILROOM_STORE_URL".into())
        )]
    );
    let text = err.to_string();
    assert!(!text.contains("hidden-pw"), "{text}");
    assert!(text.contains("postgres://"), "says what is allowed: {text}");
}

/// `[event_types."T"]` holds a type's retry keys and its ttl; the older
/// `[retry.event_types."T"]` is still read, this section winning per key.
#[test]
fn event_type_sections_hold_retry_keys_and_queue_limits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(
        &dir,
        r#"
        [retry]
        max_attempts = 4
        [retry.event_types."order.created"]
        max_attempts = 7
        backoff_base = "2s"
        [event_types."order.created"]
        max_attempts = 3
        ttl = "15m"
        [event_types.email]
        backoff_cap = "1m"
        "#,
    );
    let c = load(Some(&file), &[], &Overrides::default()).expect("valid");
    let p = c.policies();
    let order = p.for_event_type("order.created");
    assert_eq!(
        (order.max_attempts, order.backoff_base),
        (3, Duration::from_secs(2)),
        "the new section wins; the old one fills in"
    );
    assert_eq!(p.limits("order.created").ttl, Some(Duration::from_secs(900)));
    assert_eq!(p.for_event_type("email").backoff_cap, Duration::from_secs(60));
    assert_eq!(p.limits("email").ttl, None);
    assert_eq!(p.limits("other"), crate::state_machine::QueueLimits::default());

    let bad = write(
        &dir,
        r#"
        [event_types."bad type"]
        ttl = "1m"
        [event_types.a]
        ttl = "0s"
        [event_types.b]
        tll = "1m"
        [event_types.c]
        ttl = "soon"
        "#,
    );
    let err = load(Some(&bad), &[], &Overrides::default()).expect_err("refused");
    let text = err.to_string();
    for expected in [
        "event_types.\"bad type\"",
        "not an event type",
        "event_types.a.ttl",
        "every message would expire at once",
        "event_types.b.tll",
        "unknown key",
        "event_types.c.ttl",
    ] {
        assert!(text.contains(expected), "{expected:?} missing from:\n{text}");
    }
}
