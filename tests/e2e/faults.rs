//! The host and the commands under faults an operator meets: a store
//! another process keeps locked, a full disk (a small tmpfs, when running as
//! root), a damaged store, a file that is not a store, a store the user may
//! read but not write. Nothing here asserts how
//! long anything takes: every wait is bounded by the harness's generous
//! timeout, which a host that does not stop (or a command that hangs) fails.

#[path = "harness/mod.rs"]
mod harness;

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use harness::{MAILROOM, Settings, TestHost, event};
use mailroom_test_artifacts::{BEHAVIOUR, ORDER_VALIDATOR};
use serde_json::{Value, json};

/// The exit status of `mailroom check` when it found damage.
const EXIT_DAMAGED: i32 = 5;
/// The exit status of `mailroom run` stopped by a second signal.
const EXIT_SECOND_SIGNAL: i32 = 130;

/// Another process's connection holding the store's write lock (as a
/// stopped host in the middle of a write would) until dropped.
struct WriteLock {
    _conn: rusqlite::Connection,
}

impl WriteLock {
    fn take(db: &Path) -> Self {
        let conn = rusqlite::Connection::open(db).expect("open the store");
        conn.busy_timeout(harness::TIMEOUT).expect("busy timeout");
        conn.execute_batch("BEGIN EXCLUSIVE").expect("take the write lock");
        Self { _conn: conn }
    }
}

/// A delivery that logs `delivery started` and then sleeps `ms`.
fn slow(ms: u64) -> Value {
    event(
        "behaviour",
        json!({ "action": "log", "message": "delivery started", "then": { "action": "sleep", "ms": ms } }),
    )
}

/// Starts a host with the behaviour plugin, a short store busy timeout,
/// and `settings`; waits until `running` deliveries are running.
fn host_with_running_deliveries(settings: &Settings, ms: u64, count: usize, running: usize) -> (TestHost, Vec<String>) {
    let host = TestHost::with_settings(settings);
    host.set_env("MAILROOM_STORE_BUSY_TIMEOUT", "2s");
    host.deploy(BEHAVIOUR, "behaviour.wasm");
    host.start();
    host.wait_loaded("behaviour");
    let ids = host.enqueue(&vec![slow(ms); count]);
    host.wait_until(&format!("{running} deliveries to be running"), || {
        host.log_events()
            .iter()
            .filter(|l| l.get("message").and_then(Value::as_str) == Some("delivery started"))
            .count()
            >= running
    });
    (host, ids)
}

/// Every message is still stored (queued or in flight: nothing was lost,
/// and at most its attempt was spent).
fn all_still_stored(host: &TestHost, ids: &[String]) {
    for id in ids {
        let m = harness::store::message(&host.db(), id)
            .unwrap_or_else(|| panic!("{id} is still stored"));
        assert!(
            m.state == "queued" || m.state == "inflight",
            "{id} is waiting to be delivered again: {m:#?}"
        );
    }
}

#[test]
fn sigterm_ends_the_host_while_another_process_holds_the_write_lock() {
    let (host, ids) = host_with_running_deliveries(
        &Settings {
            shutdown_grace: "1s",
            ..Settings::default()
        },
        3_000,
        4,
        2,
    );
    let lock = WriteLock::take(&host.db());
    host.sigterm();
    // Without a bound the host would retry its commits for as long as the
    // lock is held (here: until the harness gives up).
    let status = host.wait_exit();
    drop(lock);
    assert!(
        status.code().is_some(),
        "the host exited on its own, got {status}"
    );
    all_still_stored(&host, &ids);

    // The next run delivers them all.
    host.start();
    host.wait_drained("behaviour");
    host.stop();
}

#[test]
fn a_second_sigterm_exits_at_once() {
    let (host, ids) = host_with_running_deliveries(
        &Settings {
            // Longer than the harness waits: only the second signal can end it in time.
            shutdown_grace: "600s",
            plugin_timeout: "600s",
            lease: "700s",
            ..Settings::default()
        },
        600_000,
        3,
        2,
    );
    host.sigterm();
    host.wait_until("the host to log that it is stopping", || {
        host.log().contains("received: stopping")
    });
    host.sigterm();
    let status = host.wait_exit();
    assert_eq!(status.code(), Some(EXIT_SECOND_SIGNAL), "{status}");
    assert!(host.log().contains("received again: exiting at once"));
    all_still_stored(&host, &ids);
}

/// Fills a store with enough messages to span many pages, then writes
/// garbage over a page in the middle of the file.
fn damaged_store(host: &TestHost) {
    let events: Vec<Value> = (0..200)
        .map(|i| event("order.created", json!({ "n": i, "pad": "x".repeat(2000) })))
        .collect();
    host.enqueue(&events);
    let db = host.db();
    let len = fs::metadata(&db).expect("store").len();
    assert!(len > 40 * 4096, "the store spans many pages: {len} bytes");
    let mut file = fs::OpenOptions::new().write(true).open(&db).expect("open");
    std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(10 * 4096)).expect("seek");
    file.write_all(&[0xA5; 4096]).expect("garbage");
}

fn sha(path: &Path) -> Vec<u8> {
    fs::read(path).unwrap_or_default()
}

#[test]
fn check_finds_damage_without_changing_the_file_and_the_host_refuses_to_start() {
    let host = TestHost::new();
    host.enqueue(&[event("order.created", json!({ "n": 1 }))]);
    let sound = host.mailroom(&["check", "--json"]).success().json();
    assert_eq!(sound["problems"], json!([]), "{sound}");
    assert_eq!(sound["totals"]["queued"], 1, "{sound}");
    assert_eq!(sound["schema_version"].as_i64().map(|v| v > 0), Some(true));

    damaged_store(&host);
    let before = sha(&host.db());
    let out = host.mailroom(&["check"]);
    assert_eq!(out.status.code(), Some(EXIT_DAMAGED), "{out}");
    assert!(out.stdout.contains("DAMAGED"), "{out}");
    let json = host.mailroom(&["check", "--full", "--json"]);
    assert_eq!(json.status.code(), Some(EXIT_DAMAGED), "{json}");
    assert!(!json.json()["problems"].as_array().expect("problems").is_empty());
    assert_eq!(sha(&host.db()), before, "check changed nothing");

    // The host checks at start-up, and refuses to write to it.
    host.spawn(&[]);
    let status = host.wait_exit();
    assert!(!status.success(), "the host refused to start: {status}");
    assert!(
        host.log().contains("mailroom check"),
        "the refusal names what to run:\n{}",
        host.log()
    );
}

/// A file every read-only command must refuse, leaving it as it was.
fn refused_unchanged(host: &TestHost, file: &Path, expect: &str) {
    let before = sha(file);
    let name = file.file_name().and_then(|n| n.to_str()).expect("name");
    for args in [
        vec!["stats"],
        vec!["stats", "--json"],
        vec!["dlq", "list"],
        vec!["dlq", "show", "01a22ace-7d75-7635-97c7-a7b84249ab69"],
        vec!["plugins"],
        vec!["check"],
    ] {
        let mut args = args.clone();
        args.extend(["--db", name]);
        let out = host.mailroom(&args);
        assert!(!out.status.success(), "{out}");
        // With --json the error is on stdout.
        let said = format!("{}{}", out.stderr, out.stdout);
        assert!(said.contains(expect), "{out}");
        assert!(said.contains("left unchanged"), "{out}");
    }
    assert_eq!(sha(file), before, "{name} is byte for byte unchanged");
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut companion = file.as_os_str().to_owned();
        companion.push(suffix);
        assert!(
            !PathBuf::from(&companion).exists(),
            "no {suffix} file was created beside {name}"
        );
    }
}

#[test]
fn read_only_commands_never_create_or_change_a_file() {
    let host = TestHost::new();

    let foreign = host.path().join("app.db");
    {
        let conn = rusqlite::Connection::open(&foreign).expect("create");
        conn.execute_batch(
            "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT);
             INSERT INTO customers (name) VALUES ('Ada');
             PRAGMA user_version = 7;",
        )
        .expect("another application's tables");
    }
    refused_unchanged(&host, &foreign, "not a Mailroom store");
    // A write command refuses it too, before switching it to WAL.
    let out = host.mailroom(&["enqueue", "--db", "app.db", "order.created", "{}"]);
    assert!(!out.status.success(), "{out}");
    let conn = rusqlite::Connection::open(&foreign).expect("open");
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .expect("mode");
    assert_eq!(mode, "delete", "still in its own journal mode");

    let empty = host.path().join("empty.db");
    fs::write(&empty, b"").expect("empty file");
    refused_unchanged(&host, &empty, "not a Mailroom store (an empty file)");

    let no_tables = host.path().join("blank.db");
    rusqlite::Connection::open(&no_tables)
        .and_then(|c| c.execute_batch("VACUUM"))
        .expect("an empty database");
    if fs::metadata(&no_tables).map(|m| m.len()).unwrap_or(0) > 0 {
        refused_unchanged(&host, &no_tables, "not a Mailroom store");
    }

    let out = host.mailroom(&["stats", "--db", "missing.db"]);
    assert!(!out.status.success(), "{out}");
    assert!(!host.path().join("missing.db").exists(), "nothing was created");
}

/// Why the permission test cannot run here, if it cannot.
fn cannot_switch_user() -> Option<String> {
    let uid = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Some("not running as root, so cannot run a command as another user".into());
    }
    match Command::new("runuser").args(["-u", "nobody", "--", "true"]).status() {
        Ok(s) if s.success() => None,
        _ => Some("`runuser -u nobody` is not available".into()),
    }
}

#[test]
fn a_store_the_user_may_read_but_not_write_can_be_read() {
    if let Some(why) = cannot_switch_user() {
        println!("skipped: {why}");
        return;
    }
    let host = TestHost::new();
    let ids = host.enqueue(&[event("order.created", json!({ "n": 1 }))]);

    // A directory and a store `nobody` may read but not write, and a copy
    // of the binary `nobody` may run.
    let shared = tempfile::Builder::new()
        .prefix("mailroom-ro-")
        .tempdir()
        .expect("temp dir");
    let dir = shared.path();
    fs::copy(host.db(), dir.join("m.db")).expect("copy the store");
    fs::copy(MAILROOM, dir.join("mailroom")).expect("copy the binary");
    chmod(dir, 0o755);
    chmod(&dir.join("m.db"), 0o644);
    chmod(&dir.join("mailroom"), 0o755);
    let before = sha(&dir.join("m.db"));

    let as_nobody = |args: &[&str]| {
        let out = Command::new("runuser")
            .args(["-u", "nobody", "--"])
            .arg(dir.join("mailroom"))
            .args(args)
            .args(["--db", &dir.join("m.db").display().to_string()])
            .current_dir(dir)
            .env_remove("MAILROOM_CONFIG")
            .output()
            .expect("run as nobody");
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        assert!(
            out.status.success(),
            "`mailroom {}` as nobody failed: {}{}",
            args.join(" "),
            text(&out.stdout),
            text(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).unwrap_or(Value::Null)
    };
    let stats = as_nobody(&["stats", "--json"]);
    assert_eq!(stats["queued"], 1, "{stats}");
    assert_eq!(as_nobody(&["dlq", "list", "--json"]), json!([]));
    assert!(as_nobody(&["plugins", "--json"])["loaded"].is_array());
    as_nobody(&["check"]);
    assert_eq!(sha(&dir.join("m.db")), before);
    assert_eq!(ids.len(), 1);
}

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
}

#[test]
fn store_loops_that_keep_failing_back_off_and_are_summarised() {
    let host = TestHost::with_settings(&Settings::default());
    // Each claim waits this long for the lock, then fails.
    host.set_env("MAILROOM_STORE_BUSY_TIMEOUT", "20ms");
    host.deploy(BEHAVIOUR, "behaviour.wasm");
    host.start();
    host.wait_loaded("behaviour");
    // Due once the lock is held: the host tries to claim it and fails.
    let mut delayed = event("behaviour", json!({ "action": "succeed" }));
    delayed["delay"] = json!("10s");
    let id = host.enqueue(&[delayed]).remove(0);
    let lock = WriteLock::take(&host.db());
    let lines = |prefix: &str| {
        host.log_events()
            .iter()
            .filter(|l| {
                l.get("message")
                    .and_then(Value::as_str)
                    .is_some_and(|m| m.starts_with(prefix))
            })
            .count()
    };
    host.wait_until("a claim to fail", || lines("claiming messages failed") >= 1);
    // With a 20 ms poll and a 200 ms reclaim interval, loops retried at
    // that pace would log dozens of lines in this time; backed off, the
    // first failure is the only line until the summary, due after 30 s.
    std::thread::sleep(Duration::from_secs(3));
    let (claims, reclaims) = (lines("claiming messages"), lines("reclaiming expired leases"));
    drop(lock);
    assert!(
        claims <= 2 && reclaims <= 2,
        "{claims} lines about failing claims and {reclaims} about failing reclaims in 3 s:\n{}",
        host.log()
    );
    // Once the lock is gone, delivery resumes.
    host.wait_until("the message to be delivered", || {
        harness::store::message(&host.db(), &id).is_none()
    });
    host.wait_until("the recovery to be logged", || {
        host.log().contains("claiming messages works again")
    });
    host.stop();
}

/// A small file system of its own (tmpfs) for the store, unmounted when
/// dropped.
struct SmallDisk {
    path: PathBuf,
}

impl SmallDisk {
    /// Mounts a tmpfs of `size` at `path`, or says why it cannot.
    fn mount(path: PathBuf, size: &str) -> Result<Self, String> {
        if let Some(why) = cannot_switch_user().filter(|w| w.starts_with("not running as root")) {
            return Err(why);
        }
        fs::create_dir_all(&path).expect("mount point");
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .status();
        match mounted {
            Ok(s) if s.success() => Ok(Self { path }),
            _ => Err("`mount -t tmpfs` is not allowed here".into()),
        }
    }

    /// Fills the disk to the last byte; returns the filler file.
    fn fill(&self) -> PathBuf {
        let filler = self.path.join("filler");
        let mut file = fs::File::create(&filler).expect("filler");
        let block = vec![0_u8; 64 * 1024];
        while file.write_all(&block).is_ok() {}
        while file.write_all(&[0]).is_ok() {}
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        // Lazy: a host killed by a failing test may still hold the store open.
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

#[test]
fn a_full_disk_neither_holds_the_stop_up_nor_loses_a_message() {
    let host = TestHost::with_settings(&Settings {
        shutdown_grace: "30s",
        ..Settings::default()
    });
    let disk = match SmallDisk::mount(host.path().join("disk"), "16m") {
        Ok(disk) => disk,
        Err(why) => {
            println!("skipped: {why}");
            return;
        }
    };
    let db = disk.path.join("m.db");
    host.set_env("MAILROOM_STORE_PATH", &db.display().to_string());
    host.set_env(
        "MAILROOM_PLUGINS_CACHE_DIR",
        &host.path().join("cache").display().to_string(),
    );
    host.deploy(BEHAVIOUR, "behaviour.wasm");
    host.start();
    host.wait_loaded("behaviour");

    // Each delivery emits a large event, committed with its ack: the
    // commit must grow the file.
    let delivery = event(
        "behaviour",
        json!({
            "action": "log", "message": "delivery started",
            "then": { "action": "emit", "event_type": "behaviour.done", "payload_size": 300_000,
                      "then": { "action": "sleep", "ms": 2_000 } }
        }),
    );
    let ids = host.enqueue(&vec![delivery; 3]);
    host.wait_until("2 deliveries to be running", || {
        host.log_events()
            .iter()
            .filter(|l| l.get("message").and_then(Value::as_str) == Some("delivery started"))
            .count()
            >= 2
    });
    let filler = disk.fill();

    let big = json!({ "pad": "x".repeat(200_000) }).to_string();
    let refused = host.mailroom_with_stdin(&["enqueue", "order.created", "-"], Some(big.as_bytes()));
    assert!(!refused.status.success(), "{refused}");
    assert!(refused.stderr.contains("is full"), "{refused}");

    // The outcomes cannot be committed; the stop does not wait for space.
    host.sigterm();
    let status = host.wait_exit();
    assert!(status.code().is_some(), "the host exited on its own: {status}");

    fs::remove_file(filler).expect("free the space");
    host.start();
    host.wait_drained("behaviour");
    host.stop();
    let done = harness::store::messages(&db, "behaviour.done");
    for id in &ids {
        assert_eq!(
            done.iter().filter(|m| &m.correlation_id == id).count(),
            1,
            "{id} was acked once, with its one follow-up"
        );
    }
}

#[test]
fn claims_handed_back_for_want_of_lease_are_explained_and_backed_off() {
    // The shortest lease validation allows. Quick deliveries first, so the
    // type's pace has the host claim ahead of its slots; then slower ones,
    // claimed ahead at that pace: those waiting behind the first two for a
    // slot have too little lease left to start.
    let host = TestHost::with_settings(&Settings {
        concurrency: 2,
        plugin_timeout: "2s",
        lease: "4s",
        ..Settings::default()
    });
    host.deploy(BEHAVIOUR, "behaviour.wasm");
    host.start();
    host.wait_loaded("behaviour");
    let mut events = vec![slow(0); 30];
    events.extend(vec![slow(1_200); 4]);
    let ids = host.enqueue(&events);
    host.wait_drained("behaviour");
    let log = host.log();
    assert!(
        log.contains("were handed back; raise dispatcher.lease or lower dispatcher.batch_size"),
        "the hand-back is explained:\n{log}"
    );
    for id in &ids {
        assert!(harness::store::message(&host.db(), id).is_none(), "{id} was delivered");
    }
    host.stop();
}

#[test]
fn slow_handlers_are_claimed_a_few_at_a_time_and_the_rest_waits_in_the_queue() {
    // One slot and deliveries of 300 ms, longer than the 20 ms a claim
    // holds ahead: the host claims one message when its slot is free, so it
    // holds the running delivery (and, for a moment, one whose outcome is
    // being committed, or one claimed for the slot it freed), never the
    // whole queue. The rest waits in the store, spending no lease.
    let host = TestHost::with_settings(&Settings {
        concurrency: 1,
        ..Settings::default()
    });
    host.deploy(BEHAVIOUR, "behaviour.wasm");
    host.start();
    host.wait_loaded("behaviour");
    let ids = host.enqueue(&vec![slow(300); 8]);
    let most_held = most_held_until_drained(&host, "behaviour", &["behaviour"]);
    assert!(
        (1..=3).contains(&most_held),
        "at most 3 of the 8 messages were held by the host at once, saw {most_held}"
    );
    for id in &ids {
        assert!(harness::store::message(&host.db(), id).is_none(), "{id} was delivered");
    }
    host.stop();
}

#[test]
fn a_slow_type_beside_a_fast_one_is_claimed_a_few_at_a_time() {
    // Orders are handled in microseconds, the behaviour plugin's deliveries
    // take 300 ms: each type has its own pace, so while orders are claimed
    // by the batch the slow type is claimed only for free slots and held to
    // a few messages (running, claimed for a slot, being committed), never
    // its whole queue.
    let host = TestHost::with_settings(&Settings::default());
    host.deploy(BEHAVIOUR, "behaviour.wasm");
    host.deploy(ORDER_VALIDATOR, "order-validator.wasm");
    host.start();
    host.wait_loaded("behaviour");
    host.wait_loaded("order-validator");
    let mut events: Vec<Value> = (0..200)
        .map(|i| {
            event(
                "order.created",
                json!({
                    "order_id": format!("o-{i}"),
                    "customer": "ada@example.com",
                    "items": [{"sku": "A-1", "qty": 2, "price": 19.99}],
                }),
            )
        })
        .collect();
    events.extend(vec![slow(300); 12]);
    host.enqueue(&events);
    let most_held = most_held_until_drained(&host, "behaviour", &["behaviour", "order.created"]);
    assert!(
        (1..=5).contains(&most_held),
        "at most 5 of the 12 slow messages were held by the host at once, saw {most_held}"
    );
    host.stop();
}

/// The most messages of `event_type` the host held claimed at once (in
/// flight in the store), looked at until no message of `drained` is left.
fn most_held_until_drained(host: &TestHost, event_type: &str, drained: &[&str]) -> usize {
    let mut most = 0;
    host.wait_for("the queues to drain", || {
        let held = harness::store::messages(&host.db(), event_type)
            .iter()
            .filter(|m| m.state == "inflight")
            .count();
        most = most.max(held);
        drained
            .iter()
            .all(|t| harness::store::messages(&host.db(), t).is_empty())
            .then_some(())
    });
    most
}
