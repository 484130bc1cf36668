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

fn read_only() -> OpenOptions {
    OpenOptions {
        read_only: true,
        ..OpenOptions::default()
    }
}

/// A read-only open never migrates: a store of an older schema is refused
/// with what to run, and its file is left byte for byte as it was.
#[tokio::test]
async fn a_read_only_open_refuses_an_older_schema_and_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("old.db");
    {
        let raw = rusqlite::Connection::open(&path).expect("raw open");
        raw.execute_batch(
            "PRAGMA journal_mode = WAL;
             CREATE TABLE messages (seq INTEGER PRIMARY KEY);
             CREATE TABLE hosts (owner TEXT PRIMARY KEY);
             CREATE TABLE plugin_registry (owner TEXT);
             PRAGMA user_version = 1;",
        )
        .expect("a version 1 store");
    }
    let before = std::fs::read(&path).expect("read");
    let err = try_open(&path, read_only()).await.unwrap_err();
    assert!(
        matches!(err, StoreError::SchemaTooOld { found: 1, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("to upgrade it"), "{err}");
    assert_eq!(std::fs::read(&path).expect("read"), before, "unchanged");

    // The current schema opens read-only, and reads.
    let f = fixture().await;
    let id = enqueue(&f.store, "a").await;
    let reader = try_open(&f.path, read_only()).await.expect("opens read-only");
    assert_eq!(reader.message(id).await.expect("read").state, MessageState::Queued);
    assert_eq!(reader.stats().await.expect("stats").totals.queued, 1);
    let refused = reader
        .enqueue(NewMessage::new("a", b"{}".to_vec()))
        .await
        .unwrap_err();
    assert!(matches!(refused, StoreError::ReadOnly { .. }), "{refused}");
}

/// The read-only open names the file by URI: characters URIs reserve and
/// non-ASCII names reach the same file.
#[tokio::test]
async fn a_read_only_open_finds_files_with_any_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let folder = dir.path().join("files ü %41 ?#&");
    std::fs::create_dir(&folder).expect("folder");
    let path = folder.join("störe 100%.db");
    let writer = try_open(&path, OpenOptions::default()).await.expect("create");
    let id = enqueue(&writer, "a").await;
    let reader = try_open(&path, read_only()).await.expect("opens read-only");
    assert_eq!(reader.message(id).await.expect("read").state, MessageState::Queued);
}

/// Failures are counted by kind and make the store "failing" until the
/// operation succeeds again; input errors are not failures of the store.
#[tokio::test]
async fn store_failures_are_recorded_by_kind_until_the_operation_succeeds() {
    let f = fixture().await;
    let store = try_open(
        &f.path,
        OpenOptions {
            busy_timeout: Duration::from_millis(20),
            ..OpenOptions::default()
        },
    )
    .await
    .expect("open");
    let health = store.health().clone();
    assert!(health.problems().is_empty());

    let lock = rusqlite::Connection::open(&f.path).expect("raw open");
    lock.execute_batch("BEGIN EXCLUSIVE").expect("hold the write lock");
    let err = store.claim(1, LEASE, &["a".to_owned()]).await.unwrap_err();
    assert!(err.is_locked(), "{err}");
    let locked = |h: &mailroom::store::StoreHealth| {
        h.error_counts()
            .iter()
            .find(|(kind, _)| *kind == "locked")
            .map_or(0, |(_, n)| *n)
    };
    assert_eq!(locked(&health), 1);
    assert_eq!(health.problems().len(), 1, "{:?}", health.problems());
    drop(lock);

    store
        .claim(1, LEASE, &["a".to_owned()])
        .await
        .expect("claims once the lock is gone");
    assert!(health.problems().is_empty(), "{:?}", health.problems());
    let unknown = store.message(MessageId::new()).await.unwrap_err();
    assert!(matches!(unknown, StoreError::NoSuchMessage { .. }));
    assert!(health.problems().is_empty(), "an unknown id is not a store failure");
    assert_eq!(locked(&health), 1);
}

/// Once the store reports damage, no handle sharing its health writes to
/// the file again: every write is refused before it reaches SQLite.
#[tokio::test]
async fn after_damage_is_reported_nothing_more_is_written() {
    let f = fixture().await;
    enqueue(&f.store, "a").await;
    drop(f.store);
    let health = Arc::new(mailroom::store::StoreHealth::default());
    let shared = || OpenOptions {
        health: health.clone(),
        ..OpenOptions::default()
    };
    let ingest = try_open(&f.path, shared()).await.expect("open");
    let dispatcher = try_open(&f.path, shared()).await.expect("open");
    // As the dispatcher would when SQLite answers SQLITE_CORRUPT.
    dispatcher.health().record::<()>(
        "claim",
        &Err(StoreError::Corrupt {
            store: f.path.display().to_string(),
            reason: "database disk image is malformed".into(),
        }),
    );
    drop(dispatcher);
    let before = std::fs::read(&f.path).expect("read");
    let err = ingest
        .enqueue(NewMessage::new("a", b"{}".to_vec()))
        .await
        .unwrap_err();
    assert!(err.is_corrupt(), "{err}");
    assert!(err.to_string().contains("mailroom check"), "{err}");
    assert!(ingest.claim(1, LEASE, &["a".to_owned()]).await.unwrap_err().is_corrupt());
    assert_eq!(std::fs::read(&f.path).expect("read"), before, "nothing written");
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

/// The checkpoint sequence number in the header of the store's WAL file:
/// it grows by one each time a writer starts the WAL over from its first
/// frame, which it can only do once every frame was copied back.
fn wal_restarts(path: &Path) -> u32 {
    let wal = std::fs::read(path.with_extension("db-wal")).expect("the WAL file");
    u32::from_be_bytes(wal[12..16].try_into().expect("a WAL header"))
}

/// A busy store's WAL is copied back and started over while the writes go
/// on (checkpoints run on a thread of their own, and the writer finishes
/// them): far more pages written than a checkpoint's threshold leave a WAL
/// file a fraction of their size, started over again and again, and the
/// database file holds the messages.
#[tokio::test]
async fn a_busy_stores_wal_is_started_over_and_stays_bounded() {
    let f = fixture().await;
    let payload = format!("{{\"pad\":\"{}\"}}", "x".repeat(4000)).into_bytes();
    let batches = 300;
    for _ in 0..batches {
        let batch = (0..64)
            .map(|_| NewMessage::new("a", payload.clone()))
            .collect();
        f.store.enqueue_batch(batch).await.expect("enqueue");
    }
    let written = batches as u64 * 64 * payload.len() as u64;
    let wal = std::fs::metadata(f.path.with_extension("db-wal"))
        .expect("the WAL file")
        .len();
    assert!(
        wal < written / 3,
        "a {wal}-byte WAL after {written} bytes of payload"
    );
    assert!(wal_restarts(&f.path) >= 2, "the WAL was started over");
    let db = std::fs::metadata(&f.path).expect("the database file").len();
    assert!(db > written / 2, "a {db}-byte database file holds {written} bytes of payload");
}
