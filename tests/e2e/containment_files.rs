//! What a hostile operator or plugin author can put in the plugin folder,
//! against the real binary: a 4 GiB sparse file, links to `/dev/zero`, a
//! FIFO swapped in for a plugin, a component that takes minutes and hundreds
//! of MiB to compile, a plugin declaring 50,000 event types. Each is rejected
//! with its reason in `mailroom plugins`, the host's memory stays bounded,
//! another plugin keeps serving meanwhile, and SIGTERM still stops the host.
//! And a plugin refused for an event type another plugin owns is loaded once
//! that plugin is removed.

#[path = "harness/mod.rs"]
mod harness;

use std::io::Write as _;
use std::path::Path;

use harness::{Settings, TestHost, store};
use mailroom_test_artifacts::{BEHAVIOUR, DUPLICATE_ORDER, MANY_TYPES, ORDER_VALIDATOR, hostile};
use serde_json::json;

/// The host's resident memory may not pass this while files are thrown at
/// it: far below what reading any of them whole, or compiling the costly
/// one in the host, would take.
const RSS_BOUND: u64 = 400 << 20;

/// A host with default test settings and `plugins.compile_timeout` set.
fn host_compiling_within(timeout: &str) -> TestHost {
    let host = TestHost::new();
    host.set_env("MAILROOM_PLUGINS_COMPILE_TIMEOUT", timeout);
    host
}

/// Enqueues an `echo` for the behaviour guest and waits until it is acked.
fn assert_behaviour_serves(host: &TestHost, why: &str) {
    let id = host.enqueue_one("behaviour", json!({ "action": "echo" }));
    host.wait_until(
        &format!("the behaviour plugin to ack an event ({why})"),
        || store::message(&host.db(), &id).is_none(),
    );
}

/// The resident memory of process `pid`.
fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("procfs");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("VmRSS in kB");
    kib * 1024
}

fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo runs");
    assert!(status.success(), "mkfifo {}", path.display());
}

/// Places `path` in the plugin folder by renaming it from a temporary name,
/// as a swap after a deploy would.
fn swap_in(host: &TestHost, make: impl FnOnce(&Path), file_name: &str) {
    let temporary = host.plugins_dir().join(format!("{file_name}.tmp"));
    make(&temporary);
    std::fs::rename(&temporary, host.plugins_dir().join(file_name)).expect("rename into place");
}

#[test]
fn files_that_are_not_plugins_are_rejected_unread_and_the_host_stays_bounded() {
    let host = host_compiling_within("2s");
    host.deploy(BEHAVIOUR, "behaviour.wasm");
    host.start();
    host.wait_loaded("behaviour");
    let pid = host.pid();

    // A 4 GiB sparse file with a component header.
    swap_in(
        &host,
        |path| {
            let mut file = std::fs::File::create(path).expect("create");
            file.write_all(b"\0asm\x0d\0\x01\0").expect("header");
            file.set_len(4 << 30).expect("sparse");
        },
        "sparse.wasm",
    );
    // A link to /dev/zero and a FIFO: what the loader opens is checked, so
    // one swapped in after the watcher reported a plugin file fares the same.
    swap_in(
        &host,
        |path| std::os::unix::fs::symlink("/dev/zero", path).expect("symlink"),
        "zero.wasm",
    );
    swap_in(&host, mkfifo, "fifo.wasm");
    // A component that would take minutes to compile.
    host.drop_file("costly.wasm", &hostile::huge_function(2 << 20));
    // A plugin declaring 50,000 event types.
    host.deploy(MANY_TYPES, "many-types.wasm");

    for (file, words) in [
        ("sparse.wasm", "is 4 GiB, over the 50 MiB limit on plugin files"),
        ("zero.wasm", "is a character device, not a regular file"),
        ("fifo.wasm", "is a FIFO (named pipe), not a regular file"),
        ("costly.wasm", "compiling took longer than 2s (plugins.compile_timeout)"),
        (
            "many-types.wasm",
            "names 50000 event types, over the limit of 1000 per plugin (plugins.max_event_types)",
        ),
    ] {
        let reason = host.wait_rejected(file);
        assert!(reason.contains(words), "{file}: {reason}");
        assert!(
            !reason.contains("truncated"),
            "{file} is not called truncated: {reason}"
        );
        assert!(
            rss_bytes(pid) < RSS_BOUND,
            "the host's memory stays bounded ({file})"
        );
    }
    assert!(host.loaded_version("many-types").is_none());
    assert_behaviour_serves(&host, "after every hostile file");
    assert!(rss_bytes(pid) < RSS_BOUND, "the host's memory stays bounded");

    // A FIFO in place at a rescan (the watcher lost events) is no trap either.
    host.stop();
    host.start();
    host.wait_loaded("behaviour");
    assert!(host.wait_rejected("fifo.wasm").contains("FIFO"));
    assert_behaviour_serves(&host, "after a restart with a FIFO in the folder");
    host.stop();
}

/// A running host compiling a costly plugin without a time limit: the
/// host, its process id and the compiler's.
fn host_compiling_a_costly_plugin() -> (TestHost, u32, u32) {
    let host = host_compiling_within("1h");
    host.start();
    let pid = host.pid();
    host.drop_file("costly.wasm", &hostile::huge_function(2 << 20));
    let compiler = wait_for_compiler(&host, pid, "costly.wasm");
    (host, pid, compiler)
}

fn wait_gone(host: &TestHost, compiler: u32) {
    host.wait_until("the compiler process to be gone", || {
        !processes().iter().any(|&(p, _, _)| p == compiler)
    });
}

#[test]
fn a_plugin_slow_to_compile_delays_neither_another_plugin_nor_shutdown() {
    let (host, pid, compiler) = host_compiling_a_costly_plugin();
    // Stopped, the compilation never ends (it would take seconds to minutes
    // anyway): whatever loads now loads beside it.
    signal("-STOP", compiler);

    host.deploy(BEHAVIOUR, "behaviour.wasm");
    host.wait_loaded("behaviour");
    assert_behaviour_serves(&host, "while another plugin compiles");
    assert!(
        host.rejection("costly.wasm").is_none(),
        "the costly plugin is still compiling"
    );
    assert!(rss_bytes(pid) < RSS_BOUND, "the host's memory stays bounded");

    // SIGTERM stops the host, and the compilation with it.
    host.stop();
    wait_gone(&host, compiler);
}

#[test]
fn at_start_up_a_plugin_slow_to_compile_does_not_delay_another() {
    let host = host_compiling_within("1h");
    host.drop_file("costly.wasm", &hostile::huge_function(2 << 20));
    host.deploy(BEHAVIOUR, "behaviour.wasm");
    host.spawn(&[]);
    let pid = host.pid();
    let compiler = wait_for_compiler(&host, pid, "costly.wasm");
    signal("-STOP", compiler);
    assert_behaviour_serves(&host, "while the start-up scan waits for another plugin");
    host.sigkill();
}

#[test]
fn a_host_killed_mid_compile_leaves_no_compiler_running() {
    let (host, _, compiler) = host_compiling_a_costly_plugin();
    host.sigkill();
    wait_gone(&host, compiler);
}

/// Waits until host `pid` runs a compiler process for plugin `file_name`,
/// and returns its process id.
fn wait_for_compiler(host: &TestHost, pid: u32, file_name: &str) -> u32 {
    host.wait_for(&format!("the host to start compiling {file_name}"), || {
        processes()
            .into_iter()
            .find(|(_, parent, cmd)| {
                *parent == pid && cmd.contains("compile-plugin") && cmd.contains(file_name)
            })
            .map(|(child, _, _)| child)
    })
}

fn signal(signal: &str, pid: u32) {
    let status = std::process::Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill {signal} {pid}");
}

/// Every process as (pid, parent pid, command line), from procfs. Zombies
/// (exited, not yet reaped) count as gone.
fn processes() -> Vec<(u32, u32, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("procfs").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid ...`: comm may hold spaces, so split after it.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next().unwrap_or("");
        let parent: u32 = fields.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        if state == "Z" {
            continue;
        }
        let cmd = std::fs::read(entry.path().join("cmdline"))
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
            .unwrap_or_default();
        found.push((pid, parent, cmd));
    }
    found
}

#[test]
fn a_plugin_refused_for_a_taken_event_type_loads_once_the_owner_is_removed() {
    let host = TestHost::new();
    let owner = host.deploy(ORDER_VALIDATOR, "order-validator.wasm");
    host.start();
    host.wait_loaded("order-validator");
    host.deploy(DUPLICATE_ORDER, "duplicate-order.wasm");
    let reason = host.wait_rejected("duplicate-order.wasm");
    assert!(
        reason.contains("event type `order.created` is already handled by plugin `order-validator`")
            && reason.contains("Plugin::EVENT_TYPES"),
        "{reason}"
    );

    std::fs::remove_file(owner).expect("remove the owner");
    host.wait_loaded("duplicate-order");
    assert!(host.rejection("duplicate-order.wasm").is_none());
    host.stop();
}

#[test]
fn a_huge_reason_is_stored_cut_with_its_true_size() {
    let host = TestHost::with_settings(&Settings {
        max_attempts: 1,
        ..Settings::default()
    });
    host.deploy(BEHAVIOUR, "behaviour.wasm");
    host.start();
    host.wait_loaded("behaviour");
    host.enqueue_one("behaviour", json!({ "action": "big_error", "mb": 8 }));
    let dead = host.wait_for("the message to be dead-lettered", || {
        host.dead_letters().into_iter().next()
    });
    let last_error = dead["last_error"].as_str().expect("last_error");
    assert!(
        last_error.ends_with(&format!("(truncated, {} bytes)", 8 << 20)),
        "{}",
        &last_error[last_error.len().saturating_sub(80)..]
    );
    assert!(!last_error.contains("bytes in all"), "cut once");
    host.stop();
}
