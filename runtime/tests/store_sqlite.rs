//! What only the SQLite backend has: a file in a directory, SQLite's own
//! locks, its schema version and WAL, and hosts that share the file on one
//! machine, whose dead processes are recognised by pid. The backend-neutral
//! contract is in `store_conformance.rs`.

mod store_support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use mailroom::clock::{ManualClock, SharedClock};
use mailroom::message::{MessageId, NewMessage};
use mailroom::state_machine::MessageState;
use mailroom::store::{Claimed, Location, OpenOptions, Store, StoreError};
use store_support::{LEASE, T0, policies};
use tempfile::TempDir;

struct Fixture {
    _dir: TempDir,
    path: PathBuf,
    clock: ManualClock,
    store: Store,
}


async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("mailroom.db");
    let clock = ManualClock::new(T0);
    let store = open(&path, &clock).await;
    Fixture {
        _dir: dir,
        path,
        clock,
        store,
    }
}

async fn open(path: &Path, clock: &ManualClock) -> Store {
    try_open(
        path,
        OpenOptions {
            clock: Arc::new(clock.clone()) as SharedClock,
            policies: policies(),
            ..OpenOptions::default()
        },
    )
    .await
    .expect("open store")
}

async fn try_open(path: &Path, options: OpenOptions) -> Result<Store, StoreError> {
    Store::open(&Location::Sqlite(path.to_owned()), &options).await
}

async fn enqueue(store: &Store, event_type: &str) -> MessageId {
    store
        .enqueue(NewMessage::new(event_type, br#"{"n":1}"#.to_vec()))
        .await
        .expect("enqueue")
        .id
}

async fn claim_one(store: &Store, event_type: &str) -> Claimed {
    let mut c = store
        .claim(1, LEASE, &[event_type.to_owned()])
        .await
        .expect("claim");
    assert_eq!(c.len(), 1, "expected one claimable message");
    c.remove(0)
}

#[tokio::test]
async fn reclaim_never_takes_a_live_hosts_unexpired_lease_but_takes_a_dead_owners_at_once() {
    let f = fixture().await;
    let a = open(&f.path, &f.clock).await;
    let b = open(&f.path, &f.clock).await;
    let id = enqueue(&a, "t").await;
    let claimed = claim_one(&a, "t").await;
    assert_eq!(
        b.reclaim().await.expect("reclaim"),
        Default::default(),
        "owner a is alive"
    );
    assert_eq!(
        a.message(id).await.expect("stored").state,
        MessageState::Inflight
    );

    // Make a's recorded process one that has exited.
    let mut child = std::process::Command::new("true").spawn().expect("spawn");
    let gone_pid = child.id();
    child.wait().expect("wait");
    let raw = rusqlite::Connection::open(&f.path).expect("raw open");
    let updated = raw
        .execute(
            "UPDATE hosts SET pid = ?1 \
             WHERE owner = (SELECT lease_owner FROM messages WHERE id = ?2)",
            rusqlite::params![gone_pid, id.to_string()],
        )
        .expect("update hosts");
    assert_eq!(updated, 1, "a is recorded as the lease's owner");
    let r = b.reclaim().await.expect("reclaim");
    assert_eq!((r.requeued, r.dead, r.dead_owners), (1, 0, 1));
    assert_eq!(
        b.message(id).await.expect("stored").state,
        MessageState::Queued
    );
    assert!(matches!(
        a.ack(&claimed, vec![]).await,
        Err(StoreError::LeaseLost { .. })
    ));
}

#[tokio::test]
async fn a_missing_directory_names_the_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("no/such/dir/mailroom.db");
    let err = try_open(&path, OpenOptions::default()).await.unwrap_err();
    assert!(matches!(err, StoreError::MissingDirectory { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains(&path.display().to_string()) && text.contains("does not exist"),
        "{text}"
    );
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_refused_by_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("notes.db");
    std::fs::write(&path, "these are my notes, not a database ".repeat(200)).expect("write");
    let err = try_open(&path, OpenOptions::default()).await.unwrap_err();
    assert!(matches!(err, StoreError::NotADatabase { .. }), "{err}");
    assert!(err.to_string().contains("notes.db"), "{err}");
}

#[tokio::test]
async fn a_store_locked_past_the_timeout_gives_a_clear_error() {
    let f = fixture().await;
    let holder = rusqlite::Connection::open(&f.path).expect("raw open");
    holder
        .execute_batch("BEGIN IMMEDIATE")
        .expect("take the write lock");
    let options = OpenOptions {
        busy_timeout: Duration::from_millis(200),
        ..OpenOptions::default()
    };
    let store = try_open(&f.path, options)
        .await
        .expect("open while locked (reads are fine)");
    let err = store
        .enqueue(NewMessage::new("a", b"{}".to_vec()))
        .await
        .unwrap_err();
    assert!(err.is_locked(), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("mailroom.db") && text.contains("locked by another process"),
        "{text}"
    );
    holder.execute_batch("ROLLBACK").expect("release");
    store
        .enqueue(NewMessage::new("a", b"{}".to_vec()))
        .await
        .expect("works once released");
}

#[tokio::test]
async fn a_store_from_a_newer_schema_is_refused() {
    let f = fixture().await;
    drop(f.store);
    let raw = rusqlite::Connection::open(&f.path).expect("raw open");
    raw.pragma_update(None, "user_version", 99).expect("bump");
    drop(raw);
    let err = try_open(&f.path, OpenOptions::default()).await.unwrap_err();
    assert!(
        matches!(err, StoreError::SchemaTooNew { found: 99, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("upgrade mailroom"), "{err}");
}

#[tokio::test]
async fn the_store_uses_wal_and_survives_reopening() {
    let f = fixture().await;
    let id = enqueue(&f.store, "a").await;
    drop(f.store);
    let raw = rusqlite::Connection::open(&f.path).expect("raw open");
    let mode: String = raw
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .expect("pragma");
    assert_eq!(mode, "wal");
    let store = open(&f.path, &f.clock).await;
    assert_eq!(
        store.message(id).await.expect("stored").state,
        MessageState::Queued
    );
    store.maintain().await.expect("checkpoint");
}

/// A keyed message deleted by any statement, not only by the store's own
/// operations (as another tool or command would), keeps its key remembered.
#[tokio::test]
async fn a_key_deleted_by_any_statement_is_remembered() {
    let f = fixture().await;
    let first = f
        .store
        .enqueue(NewMessage::new("a", b"{}".to_vec()).with_key("k"))
        .await
        .expect("enqueue");
    let raw = rusqlite::Connection::open(&f.path).expect("raw open");
    raw.execute("DELETE FROM messages WHERE key = 'k'", [])
        .expect("delete");
    drop(raw);
    let again = f
        .store
        .enqueue(NewMessage::new("a", b"{}".to_vec()).with_key("k"))
        .await
        .expect("enqueue");
    assert_eq!((again.id, again.duplicate), (first.id, true));
    assert_eq!(f.store.stats().await.expect("stats").totals.total(), 0);
}
