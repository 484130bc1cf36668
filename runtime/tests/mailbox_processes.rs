//! Several OS processes on one store file: concurrent claimers, and a
//! producer-consumer killed with SIGKILL at random moments.
//!
//! The child processes are this test binary run again on one of the ignored
//! `child_*` entry points below, with the store path in an environment
//! variable.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use mailroom::clock::Clock;
use mailroom::message::{MessageId, NewMessage};
use mailroom::store::sqlite::Mailbox;
use mailroom::store::{Durability, OpenOptions, Settlement};
use rand::Rng;

const STORE_ENV: &str = "MAILROOM_TEST_STORE";
const WORK: &str = "work";
const DONE: &str = "done";

fn spawn_child(entry: &str, store: &Path) -> Child {
    Command::new(std::env::current_exe().expect("test binary"))
        .args([
            entry,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(STORE_ENV, store)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child")
}

fn store_from_env() -> std::path::PathBuf {
    std::env::var_os(STORE_ENV)
        .expect("run by a parent test")
        .into()
}

/// Counts `done` follow-ups per correlation id (the acked message's id).
fn done_counts(mb: &Mailbox) -> HashMap<String, u32> {
    let raw = rusqlite::Connection::open(mb.path()).expect("raw open");
    let mut stmt = raw
        .prepare("SELECT correlation_id, count(*) FROM messages WHERE event_type = ?1 GROUP BY correlation_id")
        .expect("prepare");
    stmt.query_map([DONE], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, u32>(1)?))
    })
    .expect("query")
    .map(|r| r.expect("row"))
    .collect()
}

/// Claims and acks `work` in batches until none is queued; every ack emits
/// one `done` inheriting the message's id as its correlation id. Returns how
/// many this mailbox acked.
fn drain(mb: &mut Mailbox) -> usize {
    let mut acked = 0;
    loop {
        let claimed = mb
            .claim(32, Duration::from_secs(60), &[WORK])
            .expect("claim: no busy error");
        if claimed.is_empty() {
            let stats = mb.stats().expect("stats");
            if stats.by_event_type.get(WORK).map_or(0, |c| c.counts.queued) == 0 {
                return acked;
            }
            std::thread::sleep(Duration::from_millis(10));
            continue;
        }
        let ack = Settlement::Ack {
            follow_ups: vec![NewMessage::new(DONE, b"{}".to_vec())],
        };
        let batch: Vec<_> = claimed.iter().map(|c| (c, &ack, None)).collect();
        for result in mb.settle(&batch).expect("settle: no busy error") {
            result.expect("our own lease");
            acked += 1;
        }
    }
}

#[test]
#[ignore = "child process entry point, run by two_processes_share_one_file"]
fn child_claimer() {
    let options = OpenOptions {
        durability: Durability::Fast,
        ..OpenOptions::default()
    };
    let mut mb = Mailbox::open_with(store_from_env(), &options).expect("open");
    let acked = drain(&mut mb);
    // A fresh line: libtest has already printed "test child_claimer ... ".
    println!("\nTOTAL {acked}");
}

#[test]
fn two_processes_share_one_file() {
    const N: usize = 20_000;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("shared.db");
    let mut mb = Mailbox::open(&path).expect("open");
    let ids: HashSet<MessageId> = (0..N / 1000)
        .flat_map(|_| {
            mb.enqueue_batch(
                (0..1000)
                    .map(|i| NewMessage::new(WORK, format!("{{\"i\":{i}}}")))
                    .collect(),
            )
            .expect("enqueue")
        })
        .map(|e| e.id)
        .collect();
    assert_eq!(ids.len(), N);

    let children: Vec<Child> = (0..2)
        .map(|_| spawn_child("child_claimer", &path))
        .collect();
    let mut totals = Vec::new();
    for mut child in children {
        let stdout = child.stdout.take().expect("piped");
        let total = BufReader::new(stdout)
            .lines()
            .map(|l| l.expect("line"))
            .filter_map(|l| {
                l.strip_prefix("TOTAL ")
                    .map(|n| n.parse::<usize>().expect("count"))
            })
            .last();
        let status = child.wait().expect("wait");
        assert!(
            status.success(),
            "a claimer failed (a busy/locked error panics it): {status}"
        );
        totals.push(total.expect("child reported its total"));
    }
    // How the work was split depends on scheduling (on a busy machine one
    // process may take it all); what is guaranteed is that every message is
    // acked exactly once, by one process or the other.
    assert_eq!(
        totals.iter().sum::<usize>(),
        N,
        "acks per process: {totals:?}"
    );

    let stats = mb.stats().expect("stats");
    assert_eq!(
        stats.by_event_type.get(WORK).map_or(0, |c| c.counts.total()),
        0,
        "all work acked"
    );
    let done = done_counts(&mb);
    assert_eq!(done.len(), N);
    for id in &ids {
        assert_eq!(
            done.get(&id.to_string()),
            Some(&1),
            "{id} acked exactly once"
        );
    }
}

#[test]
#[ignore = "child process entry point, run by sigkill_at_random_moments_loses_nothing"]
fn child_producer_consumer() {
    let mut mb = Mailbox::open(store_from_env()).expect("open");
    // Leases of the previous (killed) child are reclaimed at once: its process is gone.
    mb.reclaim().expect("reclaim");
    let mut out = std::io::stdout().lock();
    // A fresh line: libtest has already printed "test child_... ".
    writeln!(out).expect("stdout");
    let mut rng = rand::rng();
    loop {
        let n = rng.random_range(1..=5);
        let batch = (0..n)
            .map(|_| NewMessage::new(WORK, b"{}".to_vec()).with_max_attempts(1000))
            .collect();
        for e in mb.enqueue_batch(batch).expect("enqueue") {
            // Only now, after the commit, is the message durably enqueued.
            writeln!(out, "E {}", e.id).expect("stdout");
        }
        out.flush().expect("flush");
        let claimed = mb
            .claim(rng.random_range(1..=8), Duration::from_secs(60), &[WORK])
            .expect("claim");
        for c in &claimed {
            let follow_ups = vec![NewMessage::new(DONE, b"{}".to_vec())];
            mb.ack(c, follow_ups).expect("ack");
            writeln!(out, "A {}", c.id()).expect("stdout");
        }
        out.flush().expect("flush");
    }
}

#[test]
fn sigkill_at_random_moments_loses_nothing() {
    const KILLS: usize = 24;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("crashy.db");
    drop(Mailbox::open(&path).expect("create"));
    let mut enqueued: HashSet<String> = HashSet::new();
    let mut rng = rand::rng();

    for round in 0..KILLS {
        let mut child = spawn_child("child_producer_consumer", &path);
        let stdout = child.stdout.take().expect("piped");
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Let it get going (the first line), then kill it at a random moment.
        let first = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("child started working");
        let mut lines = vec![first];
        let deadline = Instant::now() + Duration::from_millis(rng.random_range(5..150));
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match rx.recv_timeout(left) {
                Ok(line) => lines.push(line),
                Err(_) => break,
            }
        }
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        reader.join().expect("reader");
        lines.extend(rx.try_iter());
        enqueued.extend(
            lines
                .iter()
                .filter_map(|l| l.strip_prefix("E ").map(str::to_owned)),
        );

        // The file opens cleanly and is intact.
        let mb =
            Mailbox::open(&path).unwrap_or_else(|e| panic!("round {round}: reopen failed: {e}"));
        let raw = rusqlite::Connection::open(&path).expect("raw open");
        let check: String = raw
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .expect("check");
        assert_eq!(check, "ok", "round {round}");
        // Every durably enqueued message is acked exactly once or still present.
        let done = done_counts(&mb);
        for id in &enqueued {
            let present = mb.message(id.parse().expect("id")).is_ok();
            let acks = done.get(id).copied().unwrap_or(0);
            match (present, acks) {
                (true, 0) | (false, 1) => {}
                _ => panic!("round {round}: {id} present={present} acks={acks}"),
            }
        }
    }
    assert!(
        enqueued.len() > KILLS,
        "the child made progress: {}",
        enqueued.len()
    );

    // Finally, a clean drain: everything ever enqueued ends acked exactly once.
    // Time is driven from here on, so the backoffs of lost attempts pass at once.
    let clock = mailroom::clock::ManualClock::new(mailroom::clock::SystemClock.now_ms());
    let mut mb = Mailbox::open(&path)
        .expect("open")
        .with_clock(std::sync::Arc::new(clock.clone()));
    let r = mb.reclaim().expect("reclaim the last child's leases");
    assert_eq!(r.dead, 0);
    clock.advance(Duration::from_secs(86_400));
    drain(&mut mb);
    let done = done_counts(&mb);
    for id in &enqueued {
        assert_eq!(done.get(id), Some(&1), "{id} acked exactly once");
    }
}
