//! `mailroom enqueue` through the real binary: every input form, the stored
//! rows, key dedupe, and every kind of bad input (exit code, message, and
//! nothing stored).

mod cli_support;

use std::time::Duration;

use cli_support::Workdir;
use mailroom::message::{MessageId, Priority};
use mailroom::state_machine::MessageState;
use mailroom::store::StoredMessage;

fn stored(w: &Workdir, id: MessageId) -> StoredMessage {
    w.mailbox().message(id).expect("stored message")
}

fn total(w: &Workdir) -> u64 {
    w.mailbox().stats().expect("stats").totals.total()
}

#[test]
fn one_event_from_the_argument_creates_the_store() {
    let w = Workdir::new();
    assert!(!w.db().exists());
    let run = w.run(&["enqueue", "order.created", r#" {"id": 7, "b": [1.50]} "#]);
    let ids = run.ids();
    assert_eq!(ids.len(), 1, "{run:?}");
    assert!(
        w.db().exists(),
        "enqueue creates the default store in the working directory"
    );
    let m = stored(&w, ids[0]);
    assert_eq!(m.summary.event_type, "order.created");
    assert_eq!(
        m.payload, br#"{"id": 7, "b": [1.50]}"#,
        "stored as written, outer whitespace trimmed"
    );
    assert_eq!(m.state, MessageState::Queued);
    assert_eq!(m.summary.priority, Priority::Normal);
    assert_eq!(m.summary.max_attempts, 10, "from the default retry policy");
}

#[test]
fn payload_from_a_file_and_from_stdin() {
    let w = Workdir::new();
    w.write("order.json", "{\n  \"id\": 8\n}\n");
    let from_file = w.run(&["enqueue", "order.created", "@order.json"]).ids();
    assert_eq!(stored(&w, from_file[0]).payload, b"{\n  \"id\": 8\n}");

    let from_stdin = w
        .run_stdin(&["enqueue", "order.created", "-"], "[1, 2]\n")
        .ids();
    assert_eq!(stored(&w, from_stdin[0]).payload, b"[1, 2]");
}

#[test]
fn flags_set_the_message_fields() {
    let w = Workdir::new();
    let run = w.run(&[
        "enqueue",
        "email.send",
        "{}",
        "--key",
        "k-1",
        "--priority",
        "high",
        "--delay",
        "1h",
        "--max-attempts",
        "3",
        "--source",
        "shop",
        "--correlation-id",
        "checkout-42",
    ]);
    let m = stored(&w, run.ids()[0]);
    assert_eq!(m.summary.key.as_deref(), Some("k-1"));
    assert_eq!(m.summary.priority, Priority::High);
    assert_eq!(m.summary.max_attempts, 3);
    assert_eq!(m.summary.source.as_deref(), Some("shop"));
    assert_eq!(m.summary.correlation_id, "checkout-42");
    let delay = m.available_at - m.summary.created_at;
    assert_eq!(delay, Duration::from_secs(3600).as_millis() as i64);
}

#[test]
fn a_repeated_key_prints_the_stored_id_as_a_duplicate() {
    let w = Workdir::new();
    let first = w.run(&["enqueue", "t", "1", "--key", "same"]).ids()[0];
    let again = w.run(&["enqueue", "t", "2", "--key", "same"]);
    assert_eq!(again.ids(), [first]);
    assert!(again.stdout.contains("duplicate"), "{again:?}");
    let json = w
        .run(&["enqueue", "t", "3", "--key", "same", "--json"])
        .json();
    assert_eq!(json["ids"], serde_json::json!([first.to_string()]));
    assert_eq!(json["duplicates"], serde_json::json!([first.to_string()]));
    assert_eq!(total(&w), 1);
    assert_eq!(stored(&w, first).payload, b"1", "the first payload is kept");
}

#[test]
fn ndjson_payloads_of_one_event_type() {
    let w = Workdir::new();
    let run = w.run_stdin(
        &[
            "enqueue",
            "order.created",
            "--ndjson",
            "--priority",
            "low",
            "--json",
        ],
        "{\"n\":1}\n\n  {\"n\":2}  \n[3]",
    );
    let json = run.json();
    let ids: Vec<MessageId> = serde_json::from_value(json["ids"].clone()).expect("ids");
    assert_eq!(
        ids.len(),
        3,
        "blank lines skipped, last line without newline read: {run:?}"
    );
    assert_eq!(json["duplicates"], serde_json::json!([]));
    let payloads: Vec<Vec<u8>> = ids.iter().map(|id| stored(&w, *id).payload).collect();
    assert_eq!(
        payloads,
        [
            b"{\"n\":1}".to_vec(),
            b"{\"n\":2}".to_vec(),
            b"[3]".to_vec()
        ]
    );
    assert!(
        ids.iter()
            .all(|id| stored(&w, *id).summary.priority == Priority::Low)
    );
}

#[test]
fn ndjson_event_objects_with_flag_defaults() {
    let w = Workdir::new();
    let input = concat!(
        r#"{"event_type":"a","payload":{"x":1},"key":"ka","priority":"high","delay":"5s","max_attempts":2,"source":"s1","correlation_id":"c1"}"#,
        "\n",
        r#"{"event_type":"b","payload":"text"}"#,
        "\n",
        r#"{"event_type":"a","payload":0,"key":"ka"}"#,
        "\n",
    );
    let run = w.run_stdin(
        &[
            "enqueue",
            "--ndjson",
            "--source",
            "cli",
            "--max-attempts",
            "4",
        ],
        input,
    );
    let ids = run.ids();
    assert_eq!(ids.len(), 3);
    assert_eq!(ids[2], ids[0], "the key repeats: the first message's id");
    assert!(
        run.stdout
            .lines()
            .nth(2)
            .is_some_and(|l| l.contains("duplicate")),
        "{run:?}"
    );
    let a = stored(&w, ids[0]);
    assert_eq!(a.summary.event_type, "a");
    assert_eq!(a.payload, br#"{"x":1}"#);
    assert_eq!(a.summary.priority, Priority::High);
    assert_eq!(
        a.summary.max_attempts, 2,
        "the object's field wins over the flag"
    );
    assert_eq!(a.summary.source.as_deref(), Some("s1"));
    assert_eq!(a.summary.correlation_id, "c1");
    assert_eq!(a.available_at - a.summary.created_at, 5000);
    let b = stored(&w, ids[1]);
    assert_eq!(b.summary.event_type, "b");
    assert_eq!(b.payload, b"\"text\"");
    assert_eq!(
        b.summary.max_attempts, 4,
        "the flag fills what the object leaves out"
    );
    assert_eq!(b.summary.source.as_deref(), Some("cli"));
}

#[test]
fn a_bad_line_in_a_large_input_keeps_the_batches_before_it() {
    let w = Workdir::new();
    let mut input = String::new();
    for i in 1..=2500 {
        if i == 1500 {
            input.push_str("{\"n\": oops}\n");
        } else {
            input.push_str(&format!("{{\"n\":{i}}}\n"));
        }
    }
    let run = w.run_stdin(&["enqueue", "bulk", "--ndjson"], &input);
    run.bad_input(&[
        "line 1500",
        "not valid JSON",
        "1000 events before line 1001 were enqueued",
        "resend from line 1001",
    ]);
    assert_eq!(
        run.stdout.lines().count(),
        1000,
        "the ids of the stored batch are printed"
    );
    assert_eq!(total(&w), 1000);

    let ok = Workdir::new();
    let good: String = (1..=2500).map(|i| format!("{{\"n\":{i}}}\n")).collect();
    assert_eq!(
        ok.run_stdin(&["enqueue", "bulk", "--ndjson"], &good)
            .ids()
            .len(),
        2500
    );
    assert_eq!(total(&ok), 2500);
}

#[test]
fn malformed_json_is_refused_with_its_position() {
    let w = Workdir::new();
    w.run(&["enqueue", "t", "{\"a\": }"]).bad_input(&[
        "the payload is not valid JSON",
        "line 1, column 7",
        "pass JSON text, @FILE or -",
    ]);
    w.write("bad.json", "{\n\"a\": 1,\n}");
    w.run(&["enqueue", "t", "@bad.json"])
        .bad_input(&["the payload file bad.json is not valid JSON", "line 3"]);
    w.run_stdin(&["enqueue", "t", "-"], "not json")
        .bad_input(&["standard input is not valid JSON"]);
    w.run_stdin(&["enqueue", "t", "--ndjson"], "1\n{\n")
        .bad_input(&["line 2: not valid JSON", "nothing was enqueued"]);
    w.run_stdin(
        &["enqueue", "--ndjson"],
        "{\"event_type\":\"t\",\"payload\":1,\"prio\":\"high\"}\n",
    )
    .bad_input(&["line 1: not an event object", "unknown field `prio`"]);
    w.run_stdin(
        &["enqueue", "--ndjson"],
        "{\"event_type\":\"bad type\",\"payload\":1}\n",
    )
    .bad_input(&[
        "line 1:",
        "bad type",
        "only A-Z a-z 0-9 . _ : - are allowed",
    ]);
    w.run_stdin(&["enqueue", "--ndjson"], "\n\n")
        .bad_input(&["held no events"]);
    assert_eq!(total(&w), 0, "nothing stored from bad input");
}

#[test]
fn bad_arguments_are_refused_and_nothing_is_stored() {
    let w = Workdir::new();
    w.run(&["enqueue", "bad type", "{}"])
        .bad_input(&["bad EVENT_TYPE", "' '"]);
    w.run(&["enqueue", "t", "@missing.json"])
        .bad_input(&["cannot read the payload file missing.json"]);
    w.run(&["enqueue", "t", "{}", "--priority", "urgent"])
        .fails(2, &["unknown priority `urgent`", "low, normal, high"]);
    w.run(&["enqueue", "t", "{}", "--delay", "soon"])
        .fails(2, &["--delay", "500ms"]);
    w.run(&["enqueue", "t", "{}", "--delay", "-5s"])
        .fails(2, &["--delay", "a delay cannot be negative"]);
    w.run(&["enqueue", "t", "{}", "--max-attempts", "0"])
        .fails(2, &["--max-attempts"]);
    w.run(&["enqueue", "t"]).fails(2, &["PAYLOAD"]);
    w.run(&["enqueue", "t", "{}", "--ndjson"])
        .fails(2, &["cannot be used with"]);
    w.run(&["enqueue", "t", "--ndjson", "--key", "k"])
        .fails(2, &["cannot be used with"]);
    assert!(!w.db().exists(), "no store is created for refused input");

    w.run_with(
        &["enqueue", "t", "[1,2,3,4,5,6]"],
        &[("MAILROOM_STORE_MAX_PAYLOAD_BYTES", "8")],
        None,
    )
    .bad_input(&[
        "payload is 13 bytes, over the 8-byte limit",
        "raise store.max_payload_bytes",
    ]);
    assert_eq!(total(&w), 0);
}

#[test]
fn a_missing_directory_is_an_error_not_created() {
    let w = Workdir::new();
    w.run(&["enqueue", "t", "{}", "--db", "nowhere/q.db"])
        .unavailable(&["nowhere", "does not exist"]);
    assert!(!w.path().join("nowhere").exists());
}

/// An enqueue over an event type's `max_queued` exits 6 and stores nothing.
#[test]
fn an_enqueue_into_a_full_queue_exits_6() {
    let w = Workdir::new();
    w.write(
        "mailroom.toml",
        "[event_types.capped]\nmax_queued = 1\n",
    );
    w.run(&["enqueue", "capped", "{}"]).ok();
    let refused = w.run(&["enqueue", "capped", "{}"]);
    refused.fails(6, &["queue of event type capped is full", "max_queued"]);
    let json = w.run(&["enqueue", "capped", "{}", "--json"]);
    assert_eq!(json.code, 6);
    assert!(json.stdout.contains("\"over_capacity\""), "{json:?}");
    assert_eq!(w.mailbox().stats().expect("stats").totals.queued, 1);
}
