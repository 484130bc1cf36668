//! `mailroom stats`, `dlq` and `plugins` through the real binary, against a
//! store the test fills (and fails messages in) with the library.

mod cli_support;

use std::time::Duration;

use cli_support::Workdir;
use mailroom::message::{MessageId, NewMessage};
use mailroom::state_machine::{Failure, MessageState};
use mailroom::store::LeaseOwner;
use mailroom::store::sqlite::Mailbox;
use serde_json::{Value, json};

const LEASE: Duration = Duration::from_secs(60);

fn enqueue(mb: &mut Mailbox, event_type: &str, payload: &[u8]) -> MessageId {
    mb.enqueue(NewMessage::new(event_type, payload.to_vec()))
        .expect("enqueue")
        .id
}

/// Claims every due message of `event_type` and fails it fatally.
fn kill_all(mb: &mut Mailbox, event_type: &str, reason: &str) {
    for claimed in mb.claim(100, LEASE, &[event_type]).expect("claim") {
        mb.fail(
            &claimed,
            Failure::Fatal {
                reason: reason.into(),
            },
        )
        .expect("fail");
    }
}

/// A store with 2 queued `order.created`, 1 in-flight `email.send`, 2 dead
/// `order.created` and 1 dead `email.send`. Returns the dead ids in order.
fn fixture(w: &Workdir) -> Vec<MessageId> {
    let mut mb = w.mailbox();
    let dead1 = enqueue(&mut mb, "order.created", br#"{"z": 1, "a": {"b": [1, 2]}}"#);
    let dead2 = enqueue(&mut mb, "order.created", b"not json at all");
    kill_all(&mut mb, "order.created", "bad order\nsecond line");
    let dead3 = enqueue(&mut mb, "email.send", &[0xff, 0x00, 0x41]);
    kill_all(&mut mb, "email.send", "no such mailbox");
    enqueue(&mut mb, "order.created", b"{}");
    enqueue(&mut mb, "order.created", b"{}");
    enqueue(&mut mb, "email.send", b"{}");
    assert_eq!(mb.claim(1, LEASE, &["email.send"]).expect("claim").len(), 1);
    vec![dead1, dead2, dead3]
}

#[test]
fn stats_json_has_the_stable_fields() {
    let w = Workdir::new();
    fixture(&w);
    let s = w.run(&["stats", "--json"]).json();
    assert_eq!(
        (&s["queued"], &s["inflight"], &s["dead"]),
        (&json!(2), &json!(1), &json!(3))
    );
    let orders = &s["by_event_type"]["order.created"];
    assert_eq!(
        (&orders["queued"], &orders["inflight"], &orders["dead"]),
        (&json!(2), &json!(0), &json!(2))
    );
    assert_eq!(
        (&orders["paused"], &orders["handlers"]),
        (&json!(false), &json!([]))
    );
    assert!(orders["oldest_due_age_ms"].is_u64(), "{s}");
    let emails = &s["by_event_type"]["email.send"];
    assert_eq!(
        (&emails["queued"], &emails["inflight"], &emails["dead"]),
        (&json!(0), &json!(1), &json!(1))
    );
    assert_eq!(emails["oldest_due_age_ms"], json!(null), "none due");
    assert_eq!(s["by_priority"]["normal"]["dead"], json!(3));
    assert_eq!(s["due"], json!(2));
    assert_eq!(
        s["waiting_for_handler"],
        json!(2),
        "no host serves order.created"
    );
    assert!(s["oldest_due_age_ms"].is_u64(), "{s}");
}

#[test]
fn stats_human_is_a_table() {
    let w = Workdir::new();
    fixture(&w);
    let out = w.run(&["stats"]).ok().to_owned();
    let lines: Vec<&str> = out.lines().collect();
    let starts = |words: &[&str]| {
        lines
            .iter()
            .any(|l| l.split_whitespace().take(words.len()).eq(words.iter().copied()))
    };
    assert!(
        starts(&["EVENT", "TYPE", "QUEUED", "INFLIGHT", "DEAD", "OLDEST", "DUE", "STATE", "HANDLER"]),
        "{out}"
    );
    assert!(starts(&["order.created", "2", "0", "2"]), "{out}");
    assert!(
        lines
            .iter()
            .any(|l| l.split_whitespace().eq(["email.send", "0", "1", "1", "none"])),
        "no due message, not paused, no handler: {out}"
    );
    assert!(starts(&["(all)", "2", "1", "3"]), "{out}");
    assert!(out.contains("waiting for a handler:  2"), "{out}");

    let empty = Workdir::new();
    drop(empty.mailbox());
    assert!(empty.run(&["stats"]).ok().contains("no messages"));
    assert_eq!(empty.run(&["stats", "--json"]).json()["queued"], json!(0));
}

#[test]
fn dlq_list_pages_with_a_cursor() {
    let w = Workdir::new();
    let dead = fixture(&w);
    let all = w.run(&["dlq", "list", "--json"]).json();
    let items = all.as_array().expect("a JSON array");
    assert_eq!(items.len(), 3);
    let first = &items[0];
    assert_eq!(first["id"], json!(dead[0].to_string()));
    assert_eq!(first["event_type"], json!("order.created"));
    assert_eq!(first["attempts"], json!(1));
    assert_eq!(first["last_error"], json!("fatal: bad order\nsecond line"));
    for field in [
        "max_attempts",
        "plugin_digest",
        "created_at",
        "dead_at",
        "payload_bytes",
    ] {
        assert!(first.get(field).is_some(), "{field} missing: {first}");
    }

    let page1 = w.run(&["dlq", "list", "--json", "--limit", "2"]);
    assert_eq!(page1.json().as_array().map(Vec::len), Some(2));
    let hint = page1.stderr.trim();
    let cursor = hint.rsplit(' ').next().expect("a cursor");
    assert!(
        hint.starts_with("more dead letters: mailroom dlq list --json --limit 2 --cursor "),
        "the hint keeps every option: {hint}"
    );
    let page2 = w.run(&["dlq", "list", "--json", "--limit", "2", "--cursor", cursor]);
    assert_eq!(page2.json(), json!([items[2].clone()]));
    assert!(page2.stderr.is_empty(), "last page: no hint: {page2:?}");

    let emails = w
        .run(&["dlq", "list", "--json", "--event-type", "email.send"])
        .json();
    assert_eq!(emails.as_array().map(Vec::len), Some(1));
    assert_eq!(emails[0]["id"], json!(dead[2].to_string()));

    let human = w.run(&["dlq", "list"]).ok().to_owned();
    assert!(
        human.lines().next().is_some_and(|l| l.starts_with("ID")),
        "{human}"
    );
    assert!(
        human.contains(&dead[1].to_string()) && human.contains("fatal: bad order…"),
        "{human}"
    );
    assert!(
        !human.contains("second line"),
        "errors are one line in the table: {human}"
    );

    w.run(&["dlq", "list", "--cursor", "abc"])
        .bad_input(&["not a dead-letter cursor"]);
    w.run(&["dlq", "list", "--limit", "0"])
        .fails(2, &["--limit"]);
}

#[test]
fn dlq_show_renders_the_payload() {
    let w = Workdir::new();
    let dead = fixture(&w);
    let json_one = w
        .run(&["dlq", "show", &dead[0].to_string()])
        .ok()
        .to_owned();
    assert!(json_one.contains("state:          dead"), "{json_one}");
    assert!(json_one.contains("attempts:       1 of 10"), "{json_one}");
    assert!(
        json_one.contains("payload (28 bytes, JSON):\n{\n  \"z\": 1,\n  \"a\": {\n    \"b\": ["),
        "{json_one}"
    );
    assert!(
        json_one.contains("  fatal: bad order\n  second line"),
        "{json_one}"
    );
    assert!(
        json_one.contains("created:        20"),
        "RFC 3339 time: {json_one}"
    );

    let text = w
        .run(&["dlq", "show", &dead[1].to_string()])
        .ok()
        .to_owned();
    assert!(
        text.contains("payload (15 bytes, text):\nnot json at all"),
        "{text}"
    );
    let binary = w
        .run(&["dlq", "show", &dead[2].to_string()])
        .ok()
        .to_owned();
    assert!(
        binary.contains("payload (3 bytes, binary):\n00000000  ff 00 41"),
        "{binary}"
    );

    let j = w
        .run(&["dlq", "show", "--json", &dead[0].to_string()])
        .json();
    assert_eq!(j["payload"], json!({"z": 1, "a": {"b": [1, 2]}}));
    assert_eq!(j["state"], json!("dead"));
    assert_eq!(j["id"], json!(dead[0].to_string()));
    let j = w
        .run(&["dlq", "show", "--json", &dead[1].to_string()])
        .json();
    assert_eq!(j["payload_text"], json!("not json at all"));
    let j = w
        .run(&["dlq", "show", "--json", &dead[2].to_string()])
        .json();
    assert_eq!(j["payload_hex"], json!("ff0041"));
}

#[test]
fn dlq_show_refuses_bad_ids_and_live_messages() {
    let w = Workdir::new();
    fixture(&w);
    let queued = {
        let mut mb = w.mailbox();
        enqueue(&mut mb, "x", b"{}")
    };
    w.run(&["dlq", "show", &queued.to_string()])
        .bad_input(&["is queued, not dead", "only dead letters"]);
    w.run(&["dlq", "show", "42"])
        .bad_input(&["`42` is not a message id", "mailroom dlq list"]);
    w.run(&["dlq", "show", &MessageId::new().to_string()])
        .bad_input(&["no message with id", "check the id"]);
}

#[test]
fn redrive_and_purge() {
    let w = Workdir::new();
    let dead = fixture(&w);
    let one = w.run(&["dlq", "redrive", &dead[0].to_string()]);
    assert_eq!(
        one.ok().trim(),
        format!(
            "redrove dead letter {} (queued again, due now, attempts reset)",
            dead[0]
        )
    );
    let m = w.mailbox().message(dead[0]).expect("stored");
    assert_eq!((m.state, m.summary.attempts), (MessageState::Queued, 0));
    w.run(&["dlq", "redrive", &dead[0].to_string()])
        .bad_input(&["is queued, not dead"]);

    let by_type = w
        .run(&["dlq", "redrive", "--event-type", "email.send", "--json"])
        .json();
    assert_eq!(by_type, json!({"action": "redrive", "count": 1}));
    assert_eq!(
        w.mailbox().message(dead[2]).expect("stored").state,
        MessageState::Queued
    );

    w.run(&["dlq", "purge"])
        .fails(2, &["<ID|--event-type <TYPE>|--error-contains <TEXT>|"]);
    w.run(&["dlq", "purge", "--all", "--event-type", "x"])
        .fails(2, &["cannot be used with"]);
    w.run(&["dlq", "purge", "--all"])
        .bad_input(&["deletes every dead letter for good", "--yes"]);
    assert_eq!(w.mailbox().stats().expect("stats").totals.dead, 1, "nothing purged");
    let purged = w.run(&["dlq", "purge", "--all", "--yes"]);
    assert_eq!(purged.ok().trim(), "purged 1 dead letter");
    assert!(w.mailbox().message(dead[1]).is_err(), "purged for good");
    let none = w
        .run(&["dlq", "purge", "--event-type", "order.created", "--json"])
        .json();
    assert_eq!(none, json!({"action": "purge", "count": 0}));
    assert_eq!(w.mailbox().stats().expect("stats").totals.dead, 0);
}

#[test]
fn plugins_shows_what_running_hosts_recorded() {
    let w = Workdir::new();
    drop(w.mailbox());
    let none = w.run(&["plugins"]);
    assert!(none.ok().contains("no plugins"), "{none:?}");
    assert_eq!(
        w.run(&["plugins", "--json"]).json(),
        json!({"loaded": [], "rejected": [], "hosts": []})
    );

    // This test process plays the running host; its records last while the
    // mailbox lives.
    let mut host = w.mailbox();
    host.record_plugin_loaded(
        "plugins/orders.wasm",
        "orders",
        "1.2.0",
        &["order.created".to_owned(), "order.paid".to_owned()],
        "sha256:0123456789abcdef0123",
    )
    .expect("record loaded");
    host.record_plugin_rejected("plugins/broken.wasm", "not a component: bad magic")
        .expect("record rejected");

    let j = w.run(&["plugins", "--json"]).json();
    let loaded = &j["loaded"][0];
    assert_eq!(loaded["name"], json!("orders"));
    assert_eq!(loaded["version"], json!("1.2.0"));
    assert_eq!(
        loaded["event_types"],
        json!(["order.created", "order.paid"])
    );
    assert_eq!(loaded["digest"], json!("sha256:0123456789abcdef0123"));
    assert_eq!(loaded["path"], json!("plugins/orders.wasm"));
    // Recorded by this process, named as `hostname:pid`.
    let me = LeaseOwner::current();
    let recorder = format!("{}:{}", me.hostname, me.pid);
    assert_eq!(loaded["host"], json!(recorder));
    assert_eq!(
        j["rejected"],
        json!([{"path": "plugins/broken.wasm", "reason": "not a component: bad magic", "updated_at": j["rejected"][0]["updated_at"].clone(), "host": recorder}])
    );

    let human = w.run(&["plugins"]).ok().to_owned();
    assert!(
        human.contains("loaded: 1") && human.contains("rejected: 1"),
        "{human}"
    );
    let row = human
        .lines()
        .find(|l| l.starts_with("orders"))
        .unwrap_or_default();
    assert!(
        row.contains("1.2.0")
            && row.contains("order.created, order.paid")
            && row.contains("sha256:0123456789ab "),
        "{human}"
    );
    assert!(
        human.contains("plugins/broken.wasm  not a component: bad magic")
            || human.contains("not a component: bad magic"),
        "{human}"
    );
    drop(host);
    let j: Value = w.run(&["plugins", "--json"]).json();
    assert_eq!(j["loaded"], json!([]), "a host that stopped is forgotten");
}

#[test]
fn read_commands_never_create_a_store() {
    let w = Workdir::new();
    for args in [
        &["stats"][..],
        &["dlq", "list"],
        &["dlq", "show", "0190a4f2-0000-7000-8000-000000000000"],
        &["dlq", "redrive", "--all"],
        &["dlq", "purge", "--all", "--yes"],
        &["plugins"],
    ] {
        w.run(args).unavailable(&[
            "no store at mailroom.db",
            "start `mailroom run` there first",
            "--db",
        ]);
    }
    w.run(&["stats", "--db", "elsewhere.db"])
        .unavailable(&["no store at elsewhere.db"]);
    for args in [
        &["stats", "--json"][..],
        &["dlq", "list", "--json"],
        &["plugins", "--json"],
    ] {
        let run = w.run(args);
        assert_eq!(run.code, 5, "{run:?}");
        let error: serde_json::Value =
            serde_json::from_str(&run.stdout).expect("--json prints the error as JSON");
        assert_eq!(
            error["error"]["code"],
            json!("store_unavailable"),
            "{error}"
        );
        let message = error["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("no store at mailroom.db"), "{error}");
        assert!(run.stderr.is_empty(), "{run:?}");
    }
    assert_eq!(
        std::fs::read_dir(w.path()).expect("list").count(),
        0,
        "nothing created"
    );
}

/// Redrive and purge by conditions (all must hold), with times given as
/// RFC 3339 or as a time ago; a gradual redrive moves the same set.
#[test]
fn filtered_redrive_and_purge() {
    let w = Workdir::new();
    let dead = fixture(&w);
    // dead[0], dead[1]: order.created, "bad order"; dead[2]: email.send.
    let none = w
        .run(&["dlq", "redrive", "--error-contains", "bad order", "--died-after", "2099-01-01T00:00:00Z", "--json"])
        .json();
    assert_eq!(none, json!({"action": "redrive", "count": 0}));
    let listed = w
        .run(&["dlq", "list", "--json", "--error-contains", "no such mailbox", "--died-before", "0s"])
        .json();
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(listed[0]["id"], dead[2].to_string());
    w.run(&["dlq", "redrive", "--died-after", "yesterday"])
        .fails(2, &["neither a time", "2h"]);
    w.run(&["dlq", "redrive", "--all", "--rate", "fast"])
        .fails(2, &["is not a rate", "50/s"]);
    w.run(&["dlq", "redrive", "--all", "--rate", "0/s"])
        .fails(2, &["above zero"]);

    let moved = w
        .run(&["dlq", "redrive", "--event-type", "order.created", "--error-contains", "bad order", "--died-after", "1h", "--rate", "20/s"])
        .ok()
        .trim()
        .to_owned();
    assert_eq!(
        moved,
        "redrove 2 dead letters of event type order.created whose last error contains \"bad order\" (queued again, due now, attempts reset)"
    );
    let mb = w.mailbox();
    for id in &dead[..2] {
        assert_eq!(mb.message(*id).expect("stored").state, MessageState::Queued);
    }
    assert_eq!(mb.message(dead[2]).expect("stored").state, MessageState::Dead);
    let purged = w
        .run(&["dlq", "purge", "--error-contains", "mailbox", "--json"])
        .json();
    assert_eq!(purged, json!({"action": "purge", "count": 1}));
    assert_eq!(w.mailbox().stats().expect("stats").totals.dead, 0);
}

/// A gradual redrive keeps to its rate: it can only be slower than asked
/// (a busy machine), never faster, so the lower bound on its duration is
/// asserted and the observed rate printed (as a benchmark would).
#[test]
fn a_gradual_redrive_keeps_to_its_rate() {
    let w = Workdir::new();
    let mut mb = w.mailbox();
    for _ in 0..40 {
        enqueue(&mut mb, "order.created", b"{}");
    }
    kill_all(&mut mb, "order.created", "downstream was down");
    drop(mb);
    let started = std::time::Instant::now();
    let run = w
        .run(&["dlq", "redrive", "--all", "--rate", "20/s", "--json"])
        .json();
    let took = started.elapsed();
    assert_eq!(run, json!({"action": "redrive", "count": 40}));
    // 20 steps of 2, 100 ms apart; the first goes at once.
    assert!(
        took >= Duration::from_millis(1900),
        "40 at 20/s took only {took:?}"
    );
    let observed = 40.0 / took.as_secs_f64();
    println!(
        "gradual redrive: asked 20/s, observed {observed:.1}/s over {took:?} ({:+.0}%)",
        (observed / 20.0 - 1.0) * 100.0
    );
    assert_eq!(w.mailbox().stats().expect("stats").totals.queued, 40);
}
