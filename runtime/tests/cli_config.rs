//! Configuration as the binary sees it: mailroom.toml in the working
//! directory < MAILROOM_* variables < flags, --config, and a bad config
//! reported whole.

mod cli_support;

use cli_support::Workdir;

/// Which store files exist in the working directory.
fn stores(w: &Workdir) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(w.path())
        .expect("list")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".db"))
        .collect();
    names.sort();
    names
}

#[test]
fn store_path_precedence_file_then_env_then_flag() {
    let w = Workdir::new();
    w.write("mailroom.toml", "[store]\npath = \"file.db\"\n");
    w.run(&["enqueue", "t", "{}"]).ok();
    assert_eq!(
        stores(&w),
        ["file.db"],
        "mailroom.toml in the working directory is read"
    );

    let env = [("MAILROOM_STORE_PATH", "env.db")];
    w.run_with(&["enqueue", "t", "{}"], &env, None).ok();
    assert_eq!(
        stores(&w),
        ["env.db", "file.db"],
        "the environment beats the file"
    );

    w.run_with(&["enqueue", "t", "{}", "--db", "flag.db"], &env, None)
        .ok();
    assert_eq!(
        stores(&w),
        ["env.db", "file.db", "flag.db"],
        "the flag beats both"
    );

    // The read commands look in the same place.
    let count = |args: &[&str], env: &[(&str, &str)]| {
        let out = w.run_with(args, env, None);
        serde_json::from_str::<serde_json::Value>(out.ok()).expect("json")["queued"].clone()
    };
    assert_eq!(count(&["stats", "--json"], &[]), serde_json::json!(1));
    assert_eq!(
        count(&["stats", "--json", "--db", "flag.db"], &env),
        serde_json::json!(1)
    );
}

#[test]
fn without_any_config_the_store_is_mailroom_db() {
    let w = Workdir::new();
    w.run(&["enqueue", "t", "{}"]).ok();
    assert_eq!(stores(&w), ["mailroom.db"]);
}

#[test]
fn config_flag_and_variable_name_a_file_that_must_exist() {
    let w = Workdir::new();
    std::fs::create_dir(w.path().join("etc")).expect("mkdir");
    w.write("etc/custom.toml", "[store]\npath = \"custom.db\"\n");
    w.write("mailroom.toml", "[store]\npath = \"ignored.db\"\n");
    w.run(&["enqueue", "t", "{}", "--config", "etc/custom.toml"])
        .ok();
    assert_eq!(
        stores(&w),
        ["custom.db"],
        "--config replaces ./mailroom.toml"
    );

    w.run_with(
        &["enqueue", "t", "{}"],
        &[("MAILROOM_CONFIG", "etc/custom.toml")],
        None,
    )
    .ok();
    assert_eq!(stores(&w), ["custom.db"], "MAILROOM_CONFIG is --config");

    let run = w.run(&["stats", "--config", "etc/nope.toml"]);
    run.fails(
        2,
        &[
            "error: invalid configuration (1 problem",
            "etc/nope.toml: the config file does not exist",
        ],
    );
}

#[test]
fn a_bad_config_lists_every_problem() {
    let w = Workdir::new();
    w.write(
        "mailroom.toml",
        r#"
[store]
durability = "sometimes"
[dispatcher]
concurrency = 0
lease = "1s"
[retry]
backoff_base = "1h"
backoff_cap = "1m"
[http]
listen = "0.0.0.0:8080"
[extra]
x = 1
"#,
    );
    let run = w.run_with(
        &["stats"],
        &[
            ("MAILROOM_DISPATCHER_BATCH_SIZE", "lots"),
            ("MAILROOM_LOG_FORMATT", "json"),
        ],
        None,
    );
    let stderr = run.fails(2, &[]).to_owned();
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(
        lines[0].starts_with("error: invalid configuration (8 problems in mailroom.toml"),
        "{stderr}"
    );
    for expected in [
        "store.durability (from mailroom.toml): \"sometimes\" is not valid: expected \"full\" or \"fast\"",
        "dispatcher.concurrency (from mailroom.toml): is 0",
        "dispatcher.lease (from mailroom.toml): 1s must be longer than plugins.timeout",
        "retry.backoff_base (from mailroom.toml): 1h is longer than the backoff cap",
        "http.listen (from mailroom.toml): 0.0.0.0:8080 is reachable from other machines but no token is set",
        "extra (from mailroom.toml): unknown section [extra]",
        "dispatcher.batch_size (from environment variable MAILROOM_DISPATCHER_BATCH_SIZE): \"lots\" is not valid",
        "log.formatt (from environment variable MAILROOM_LOG_FORMATT): unknown key: [log] accepts format, level",
    ] {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("  - ") && l.contains(expected)),
            "missing {expected:?} in:\n{stderr}"
        );
    }
    assert_eq!(lines.len(), 9, "header + 8 problems:\n{stderr}");
    assert!(run.stdout.is_empty());
    assert!(stores(&w).is_empty(), "nothing touched");
}

#[test]
fn run_flags_are_checked_with_the_config() {
    let w = Workdir::new();
    w.run(&["run", "--concurrency", "0", "--http-listen", "0.0.0.0:1"])
        .fails(
            2,
            &[
                "dispatcher.concurrency (from flag --concurrency): is 0",
                "http.listen (from flag --http-listen)",
            ],
        );
    w.run(&["run", "--log-format", "xml"])
        .fails(2, &["--log-format", "human", "json"]);
}

#[test]
fn a_log_level_that_is_not_a_level_is_refused() {
    let w = Workdir::new();
    w.run_with(&["run"], &[("MAILROOM_LOG_LEVEL", "loud")], None)
        .fails(2, &["log.level", "\"loud\" is not a level", "loud=debug"]);
    assert!(stores(&w).is_empty(), "nothing touched");
}

#[test]
fn a_mistyped_plugin_folder_is_refused_before_the_store_is_touched() {
    let w = Workdir::new();
    w.run(&["run", "--plugins", "plugns/orders"]).bad_input(&[
        "the plugin folder plugns/orders does not exist",
        "plugns",
        "check plugins.dir (or --plugins)",
    ]);
    w.write("a-file", "");
    w.run(&["run", "--plugins", "a-file"])
        .bad_input(&["the plugin folder a-file is not a folder"]);
    assert!(stores(&w).is_empty(), "no store created: {:?}", stores(&w));
    assert!(!w.path().join("plugns").exists(), "no folder created");
}

#[test]
fn a_taken_port_is_said_once() {
    let w = Workdir::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let stderr = w
        .run(&["run", "--http-listen", &addr])
        .error(&["cannot serve HTTP on"])
        .to_owned();
    let cause = "in use";
    assert_eq!(stderr.matches(cause).count(), 1, "the cause once: {stderr}");
}

#[test]
fn help_describes_every_command() {
    let w = Workdir::new();
    let help = w.run(&["--help"]).ok().to_owned();
    for command in [
        "run",
        "enqueue",
        "stats",
        "dlq",
        "plugins",
        "--config",
        "--db",
        "Exit status:",
        "2  bad input",
        "5  the store is unavailable",
    ] {
        assert!(help.contains(command), "{command} missing from:\n{help}");
    }
    let enqueue = w.run(&["enqueue", "--help"]).ok().to_owned();
    for flag in [
        "--key",
        "--priority",
        "--delay",
        "--max-attempts",
        "--source",
        "--correlation-id",
        "--ndjson",
        "--json",
        "event_type",
    ] {
        assert!(enqueue.contains(flag), "{flag} missing from:\n{enqueue}");
    }
    let dlq = w.run(&["dlq", "--help"]).ok().to_owned();
    for sub in ["list", "show", "redrive", "purge"] {
        assert!(dlq.contains(sub), "{sub} missing from:\n{dlq}");
    }
}
