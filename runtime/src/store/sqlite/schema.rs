//! The store's schema, created and upgraded by numbered migrations on open.
//!
//! Migrations only ever append: a released migration is never edited. A file
//! whose `user_version` is above the last migration here was written by a
//! newer Mailroom and is refused rather than misread.

use rusqlite_migration::{M, Migrations};

/// Version 1. Written with `IF NOT EXISTS` so two processes creating the same
/// new file at once cannot trip over each other (migration runs under an
/// immediate transaction, but the version is read before it starts).
const V1: &str = r#"
CREATE TABLE IF NOT EXISTS messages (
    -- Insertion order: "oldest first" among equal priorities.
    seq              INTEGER PRIMARY KEY,
    id               TEXT    NOT NULL UNIQUE,
    event_type       TEXT    NOT NULL,
    payload          BLOB    NOT NULL,
    -- Idempotency key: unique among stored messages (NULLs do not collide).
    key              TEXT    UNIQUE,
    source           TEXT,
    correlation_id   TEXT    NOT NULL,
    -- 0 low, 1 normal, 2 high.
    priority         INTEGER NOT NULL,
    -- queued | inflight | dead (see state_machine::MessageState).
    state            TEXT    NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL,
    -- Milliseconds since the Unix epoch, from the runtime's clock.
    available_at     INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    lease_owner      TEXT,
    lease_token      TEXT,
    lease_expires_at INTEGER,
    last_error       TEXT,
    -- Digest of the plugin build that ran the latest attempt.
    last_plugin_digest TEXT,
    dead_at          INTEGER
);

-- Claim order: due queued messages, highest priority, then oldest.
CREATE INDEX IF NOT EXISTS messages_claim_order
    ON messages (state, priority DESC, seq);
-- Stats and dead-letter filters by event type, and the next due time of
-- the types a host can route.
CREATE INDEX IF NOT EXISTS messages_by_type
    ON messages (event_type, state, available_at);
-- Expired-lease sweeps.
CREATE INDEX IF NOT EXISTS messages_leases
    ON messages (state, lease_expires_at);

-- Hosts that hold or held leases, so a lease whose owner process is gone
-- can be reclaimed at once instead of waiting for it to expire.
CREATE TABLE IF NOT EXISTS hosts (
    owner         TEXT    PRIMARY KEY,
    hostname      TEXT    NOT NULL,
    pid           INTEGER NOT NULL,
    -- The process's start time as the OS reports it, to tell a reused pid apart.
    process_start INTEGER,
    started_at    INTEGER NOT NULL,
    heartbeat_at  INTEGER NOT NULL
);

-- What each running host has loaded or rejected, so another process
-- (`mailroom plugins`, stats) sees what the hosts really run.
CREATE TABLE IF NOT EXISTS plugin_registry (
    owner       TEXT    NOT NULL,
    path        TEXT    NOT NULL,
    -- loaded | rejected
    status      TEXT    NOT NULL,
    name        TEXT,
    version     TEXT,
    -- JSON array of event types.
    event_types TEXT,
    digest      TEXT,
    reason      TEXT,
    updated_at  INTEGER NOT NULL,
    -- A file can be both: its last good version loaded and serving, and
    -- its newest version rejected.
    PRIMARY KEY (owner, path, status)
);
"#;

/// Version 2: indexes only where a query reads them, so each message costs
/// fewer index writes over its life (a benchmark-driven change: see
/// docs/BENCHMARKS.md). Partial indexes hold only the rows of one state, so
/// a claim moves a message out of the queue indexes instead of rewriting an
/// entry in each, and an ack has only the id and lease entries to remove.
/// The idempotency key is indexed only where set. Rebuilding the table is
/// the only way to drop V1's column-level `UNIQUE` on `key`; the steps are
/// safe to repeat (two processes migrating one new file at once).
///
/// Queries must spell the state as a literal (`state = 'queued'`) for
/// SQLite to use a partial index: see `INDEXED_STATES` and the plan tests.
const V2: &str = r#"
CREATE TABLE IF NOT EXISTS messages_v2 (
    seq              INTEGER PRIMARY KEY,
    id               TEXT    NOT NULL UNIQUE,
    event_type       TEXT    NOT NULL,
    payload          BLOB    NOT NULL,
    key              TEXT,
    source           TEXT,
    correlation_id   TEXT    NOT NULL,
    priority         INTEGER NOT NULL,
    state            TEXT    NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL,
    available_at     INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    lease_owner      TEXT,
    lease_token      TEXT,
    lease_expires_at INTEGER,
    last_error       TEXT,
    last_plugin_digest TEXT,
    dead_at          INTEGER
);
INSERT INTO messages_v2 SELECT * FROM messages;
DROP TABLE messages;
ALTER TABLE messages_v2 RENAME TO messages;

-- Idempotency keys: unique among stored messages that have one.
CREATE UNIQUE INDEX IF NOT EXISTS messages_key ON messages (key) WHERE key IS NOT NULL;
-- Claim order within each event type: highest priority, then oldest,
-- among queued messages. Claims read it per routable type, so queued
-- messages no plugin handles are never scanned past.
CREATE INDEX IF NOT EXISTS messages_queue
    ON messages (event_type, priority DESC, seq) WHERE state = 'queued';
-- When the next queued message of given types becomes due.
CREATE INDEX IF NOT EXISTS messages_due
    ON messages (event_type, available_at) WHERE state = 'queued';
-- Lease sweeps over in-flight messages.
CREATE INDEX IF NOT EXISTS messages_leases
    ON messages (lease_expires_at) WHERE state = 'inflight';
-- Dead letters, oldest first.
CREATE INDEX IF NOT EXISTS messages_dead ON messages (seq) WHERE state = 'dead';
"#;

/// Version 3: paused event types: no host claims their messages until they are
/// resumed. A table rather than a flag on messages, so a pause costs one
/// row whatever the backlog, and applies to messages enqueued later too.
const PAUSED_TYPES: &str = r#"
CREATE TABLE IF NOT EXISTS paused_event_types (
    event_type TEXT    PRIMARY KEY,
    paused_at  INTEGER NOT NULL
) WITHOUT ROWID;
"#;

/// Version 4: each message carries its chain depth: 0 for what producers
/// enqueue, the emitting message's depth + 1 for a handler's follow-up, so
/// a loop of self-emitting handlers ends at `plugins.max_chain_depth`.
///
/// SQLite has no `ADD COLUMN IF NOT EXISTS`, and two processes may migrate
/// one file at once (the version is read before the migration's
/// transaction), so the table is rebuilt with named columns, like V2: a
/// second run finds the column and copies every row again. (It resets the
/// depths the first process wrote in between to 0, which only lets those
/// chains run a little longer.)
const CHAIN_DEPTH: &str = r#"
CREATE TABLE IF NOT EXISTS messages_v4 (
    seq              INTEGER PRIMARY KEY,
    id               TEXT    NOT NULL UNIQUE,
    event_type       TEXT    NOT NULL,
    payload          BLOB    NOT NULL,
    key              TEXT,
    source           TEXT,
    correlation_id   TEXT    NOT NULL,
    priority         INTEGER NOT NULL,
    state            TEXT    NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL,
    available_at     INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    lease_owner      TEXT,
    lease_token      TEXT,
    lease_expires_at INTEGER,
    last_error       TEXT,
    last_plugin_digest TEXT,
    dead_at          INTEGER,
    -- How many handlers emitted this message's ancestors: 0 when enqueued
    -- by a producer.
    depth            INTEGER NOT NULL DEFAULT 0
);
INSERT INTO messages_v4 (seq, id, event_type, payload, key, source, correlation_id, priority, state, attempts,
    max_attempts, available_at, created_at, updated_at, lease_owner, lease_token,
    lease_expires_at, last_error, last_plugin_digest, dead_at)
    SELECT seq, id, event_type, payload, key, source, correlation_id, priority, state, attempts,
    max_attempts, available_at, created_at, updated_at, lease_owner, lease_token,
    lease_expires_at, last_error, last_plugin_digest, dead_at FROM messages;
DROP TABLE messages;
ALTER TABLE messages_v4 RENAME TO messages;

CREATE UNIQUE INDEX IF NOT EXISTS messages_key ON messages (key) WHERE key IS NOT NULL;
CREATE INDEX IF NOT EXISTS messages_queue
    ON messages (event_type, priority DESC, seq) WHERE state = 'queued';
CREATE INDEX IF NOT EXISTS messages_due
    ON messages (event_type, available_at) WHERE state = 'queued';
CREATE INDEX IF NOT EXISTS messages_leases
    ON messages (lease_expires_at) WHERE state = 'inflight';
CREATE INDEX IF NOT EXISTS messages_dead ON messages (seq) WHERE state = 'dead';
"#;

/// Version 5: idempotency keys that outlive their message. When a keyed message is
/// deleted, by whatever path (an ack, a purge, a cancel, or a statement an
/// operator typed), the trigger remembers its key and id, so an enqueue
/// with that key answers the original id as a duplicate. `removed_at` is
/// stamped from the runtime's clock by the next sweep (a trigger cannot
/// read that clock); the sweep forgets keys `store.key_retention` after
/// their stamp, so a key is remembered at least that long.
///
/// Also: dead letters in order of death (`dlq list`, filtered redrives and
/// purges take the first dead first), every dead letter with a time of death.
///
/// Self-contained: it reads only the `messages` columns of version 1.
const RETAINED_KEYS: &str = r#"
UPDATE messages SET dead_at = updated_at WHERE state = 'dead' AND dead_at IS NULL;
CREATE INDEX IF NOT EXISTS messages_dead_order ON messages (dead_at, seq) WHERE state = 'dead';

CREATE TABLE IF NOT EXISTS retained_keys (
    key        TEXT PRIMARY KEY,
    id         TEXT NOT NULL,
    -- When a sweep first saw the key (ms); NULL until then.
    removed_at INTEGER
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS retained_keys_unstamped
    ON retained_keys (key) WHERE removed_at IS NULL;
CREATE INDEX IF NOT EXISTS retained_keys_age
    ON retained_keys (removed_at) WHERE removed_at IS NOT NULL;
CREATE TRIGGER IF NOT EXISTS messages_retain_key
    AFTER DELETE ON messages WHEN OLD.key IS NOT NULL
BEGIN
    INSERT INTO retained_keys (key, id, removed_at) VALUES (OLD.key, OLD.id, NULL)
        ON CONFLICT (key) DO UPDATE SET id = excluded.id, removed_at = NULL;
END;
"#;

/// Version 6: one index write fewer per message. The due-time index held
/// every queued message, so each enqueue and each claim wrote it; it now
/// holds only the messages that were not due when they were written
/// (`messages_delayed`: enqueued with a delay, backed off, redriven), the
/// only ones a dispatcher must wake for later. The claim index carries the
/// due time instead, so a claim checks it without reading the row, and the
/// counts of due messages read that index alone.
///
/// Indexes only: safe to repeat (a second process migrating the same file
/// builds the same indexes again).
const DELAYED_INDEX: &str = r#"
DROP INDEX IF EXISTS messages_due;
DROP INDEX IF EXISTS messages_queue;
CREATE INDEX messages_queue
    ON messages (event_type, priority DESC, seq, available_at) WHERE state = 'queued';
CREATE INDEX IF NOT EXISTS messages_delayed
    ON messages (event_type, available_at) WHERE state = 'queued' AND available_at > created_at;
"#;

/// Version 7: the key-retention trigger rewritten so it cannot abort. Its
/// upsert could (a `NOT NULL` or key conflict left to `ABORT`), so every
/// statement that deletes from `messages`, an ack among them, kept a
/// statement journal, a copy of each page it wrote, even when no deleted
/// row had a key. An update then an insert, both `OR IGNORE`, remember the
/// same key and id, and nothing a delete runs can abort half way.
///
/// Safe to repeat: the trigger is dropped and created again.
const RETAIN_KEYS_WITHOUT_ABORT: &str = r#"
DROP TRIGGER IF EXISTS messages_retain_key;
CREATE TRIGGER messages_retain_key
    AFTER DELETE ON messages WHEN OLD.key IS NOT NULL
BEGIN
    UPDATE OR IGNORE retained_keys SET id = OLD.id, removed_at = NULL WHERE key = OLD.key;
    INSERT OR IGNORE INTO retained_keys (key, id, removed_at) VALUES (OLD.key, OLD.id, NULL);
END;
"#;

/// Version 8: a message whose correlation id is its own id stores the empty
/// text instead of a copy of the id (36 bytes less in every such row, which
/// each claim rewrites); reads give the id back
/// (`coalesce(nullif(correlation_id, ''), id)`). An empty correlation id is
/// never valid input, so the two cannot be confused. Rows written before
/// keep their copy, which reads the same.
///
/// No statement: the number is what changes, so that an older Mailroom
/// refuses the file rather than read its empty correlation ids as given.
const OWN_CORRELATION_EMPTY: &str = "";

const MIGRATIONS_SLICE: &[M<'static>] = &[
    M::up(V1),
    M::up(V2),
    M::up(PAUSED_TYPES),
    M::up(CHAIN_DEPTH),
    M::up(RETAINED_KEYS),
    M::up(DELAYED_INDEX),
    M::up(RETAIN_KEYS_WITHOUT_ABORT),
    M::up(OWN_CORRELATION_EMPTY),
];

/// Every migration, in order.
pub(crate) const MIGRATIONS: Migrations<'static> = Migrations::from_slice(MIGRATIONS_SLICE);

/// The schema version this build writes.
pub(crate) const LATEST_VERSION: i64 = MIGRATIONS_SLICE.len() as i64;

#[cfg(test)]
mod tests {
    use super::*;

    use crate::store::sqlite::Mailbox;
    use crate::state_machine::MessageState;

    #[test]
    fn migrations_are_valid() {
        assert!(MIGRATIONS.validate().is_ok());
    }

    /// The partial indexes name states as literals; they must be the
    /// spellings the rows carry.
    #[test]
    fn partial_indexes_spell_states_as_stored() {
        for state in [
            MessageState::Queued,
            MessageState::Inflight,
            MessageState::Dead,
        ] {
            assert!(
                V2.contains(&format!("WHERE state = '{}'", state.as_str()))
                    && CHAIN_DEPTH.contains(&format!("WHERE state = '{}'", state.as_str())),
                "no partial index for {state:?}"
            );
        }
    }

    /// A store file at schema `version` holding a queued message with a
    /// key and a dead letter, opened (so migrated) by this build.
    fn migrated_from(version: usize, path: &std::path::Path) -> Mailbox {
        {
            let mut conn = rusqlite::Connection::open(path).expect("open");
            MIGRATIONS.to_version(&mut conn, version).expect("old version");
            conn.execute_batch(
                "INSERT INTO messages (id, event_type, payload, key, correlation_id, priority,
                                       state, max_attempts, available_at, created_at, updated_at,
                                       last_error, dead_at)
                 VALUES ('0190c5a0-0000-7000-8000-000000000001', 'a', X'7B7D', 'k1', 'c', 1,
                         'queued', 5, 0, 0, 0, NULL, NULL),
                        ('0190c5a0-0000-7000-8000-000000000002', 'a', X'7B7D', NULL, 'c', 1,
                         'dead', 5, 0, 0, 0, 'boom', 1)",
            )
            .expect("old rows");
        }
        let mb = Mailbox::open(path).expect("migrates");
        let found: i64 = mb
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .expect("version");
        assert_eq!(found, LATEST_VERSION);
        mb
    }

    /// A store written by version 1 keeps every message, state and key
    /// through the table rebuild of version 2.
    #[test]
    fn version_1_stores_migrate_with_their_messages() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut mb = migrated_from(1, &dir.path().join("m.db"));
        let dead = mb
            .dead_letters(&crate::store::DeadLetterFilter::default())
            .expect("dead letters");
        assert_eq!(dead.items.len(), 1);
        assert_eq!(dead.items[0].last_error.as_deref(), Some("boom"));
        let again = crate::message::NewMessage {
            key: Some("k1".into()),
            ..crate::message::NewMessage::new("a", b"{}".to_vec())
        };
        assert!(mb.enqueue(again).expect("enqueue").duplicate, "key kept");
        let claimed = mb
            .claim(10, std::time::Duration::from_secs(60), &["a"])
            .expect("claim");
        assert_eq!(claimed.len(), 1, "the queued message is still claimable");
    }

    /// A store written by version 2 keeps its messages through the rebuild
    /// of version 4, every one at depth 0, and its follow-ups count from
    /// there. Running version 4 again (a second process migrating the same
    /// file at once) keeps every row.
    #[test]
    fn version_2_stores_migrate_to_chain_depths() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut mb = migrated_from(2, &dir.path().join("m.db"));
        mb.conn
            .execute_batch(CHAIN_DEPTH)
            .expect("version 4 is safe to repeat");
        let dead = mb
            .dead_letters(&crate::store::DeadLetterFilter::default())
            .expect("dead letters");
        assert_eq!(dead.items.len(), 1, "the dead letter is kept");
        let claimed = mb
            .claim(10, std::time::Duration::from_secs(60), &["a"])
            .expect("claim");
        assert_eq!(claimed.len(), 1, "the queued message is still claimable");
        assert_eq!(claimed[0].depth, 0);
        mb.ack(&claimed[0], vec![crate::message::NewMessage::new("b", b"{}".to_vec())])
            .expect("ack");
        let follow = mb
            .claim(10, std::time::Duration::from_secs(60), &["b"])
            .expect("claim");
        assert_eq!(follow[0].depth, 1);
    }

    /// Version 6 swaps indexes only: a version-5 store keeps its messages,
    /// and running version 6 again (a second process migrating the same
    /// file) leaves the same indexes. A message due when written is due at
    /// once; a delayed one is found by its due time.
    #[test]
    fn version_5_stores_migrate_to_the_delayed_index() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut mb = migrated_from(5, &dir.path().join("m.db"));
        mb.conn
            .execute_batch(DELAYED_INDEX)
            .expect("version 6 is safe to repeat");
        let indexes: Vec<String> = mb
            .conn
            .prepare(
                "SELECT name FROM sqlite_master
                  WHERE type = 'index' AND tbl_name = 'messages' ORDER BY name",
            )
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
            .expect("indexes");
        assert!(indexes.contains(&"messages_delayed".to_owned()), "{indexes:?}");
        assert!(!indexes.contains(&"messages_due".to_owned()), "{indexes:?}");
        assert_eq!(mb.next_due_at(&["a"]).expect("next due"), Some(0));
        let delayed = crate::message::NewMessage::new("b", b"{}".to_vec())
            .with_delay(std::time::Duration::from_secs(5));
        mb.enqueue(delayed).expect("enqueue");
        let due = mb.next_due_at(&["b"]).expect("next due").expect("queued");
        assert!(due > mb.now(), "not due yet: {due}");
        let claimed = mb
            .claim(10, std::time::Duration::from_secs(60), &["a", "b"])
            .expect("claim");
        assert_eq!(
            claimed.len(),
            1,
            "the old message is claimable, the delayed one waits"
        );
    }

    /// Version 7 swaps the key-retention trigger: a version-6 store keeps its
    /// messages, running version 7 again changes nothing, and a key is
    /// remembered when its message is deleted, first or again (the id of the
    /// latest removal, its window restarted).
    #[test]
    fn version_6_stores_migrate_to_the_trigger_that_cannot_abort() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut mb = migrated_from(6, &dir.path().join("m.db"));
        mb.conn
            .execute_batch(RETAIN_KEYS_WITHOUT_ABORT)
            .expect("version 7 is safe to repeat");
        let retained = |mb: &Mailbox| -> Vec<(String, String, Option<i64>)> {
            mb.conn
                .prepare("SELECT key, id, removed_at FROM retained_keys ORDER BY key")
                .and_then(|mut s| s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect())
                .expect("retained keys")
        };
        let old = "0190c5a0-0000-7000-8000-000000000001";
        mb.conn
            .execute("DELETE FROM messages WHERE key = 'k1'", [])
            .expect("delete");
        assert_eq!(retained(&mb), [("k1".to_owned(), old.to_owned(), None)]);
        mb.conn
            .execute("UPDATE retained_keys SET removed_at = 5", [])
            .expect("stamp");
        // The same key stored again (as after its retention ran out) and
        // deleted again: the latest id, unstamped.
        let new = "0190c5a0-0000-7000-8000-000000000009";
        mb.conn
            .execute(
                "INSERT INTO messages (id, event_type, payload, key, correlation_id, priority,
                                       state, max_attempts, available_at, created_at, updated_at)
                 VALUES (?1, 'a', X'7B7D', 'k1', 'c', 1, 'queued', 5, 0, 0, 0)",
                [new],
            )
            .expect("insert");
        mb.conn
            .execute("DELETE FROM messages WHERE key = 'k1'", [])
            .expect("delete");
        assert_eq!(retained(&mb), [("k1".to_owned(), new.to_owned(), None)]);
        let again = crate::message::NewMessage {
            key: Some("k1".into()),
            ..crate::message::NewMessage::new("a", b"{}".to_vec())
        };
        let enqueued = mb.enqueue(again).expect("enqueue");
        assert!(enqueued.duplicate);
        assert_eq!(enqueued.id.to_string(), new);
    }

    /// Version 8 stores a message's own id as its correlation id as the
    /// empty text: a row of version 7 holding a copy of its id reads the
    /// same as a new row holding nothing, in a claim and in `message`, and
    /// the follow-ups of either inherit the id.
    #[test]
    fn version_7_stores_read_own_correlation_ids_either_way() {
        use crate::message::NewMessage;
        let dir = tempfile::tempdir().expect("tempdir");
        let mut mb = migrated_from(7, &dir.path().join("m.db"));
        let old = "0190c5a0-0000-7000-8000-000000000003";
        mb.conn
            .execute(
                "INSERT INTO messages (id, event_type, payload, correlation_id, priority,
                                       state, max_attempts, available_at, created_at, updated_at)
                 VALUES (?1, 'own', X'7B7D', ?1, 1, 'queued', 5, 0, 0, 0)",
                [old],
            )
            .expect("a row as version 7 wrote it");
        let new = mb
            .enqueue(NewMessage::new("own", b"{}".to_vec()))
            .expect("enqueue")
            .id;
        let stored: String = mb
            .conn
            .query_row("SELECT correlation_id FROM messages WHERE id = ?1", [new], |r| r.get(0))
            .expect("the new row");
        assert_eq!(stored, "", "no copy of the id is stored");
        assert_eq!(mb.message(new).expect("message").summary.correlation_id, new.to_string());
        let lease = std::time::Duration::from_secs(60);
        let claimed = mb.claim(10, lease, &["own"]).expect("claim");
        assert_eq!(claimed.len(), 2);
        for c in &claimed {
            assert_eq!(c.correlation_id, c.id().to_string());
            mb.ack(c, vec![NewMessage::new("next", b"{}".to_vec())])
                .expect("ack with a follow-up");
        }
        let mut inherited: Vec<String> = mb
            .claim(10, lease, &["next"])
            .expect("claim the follow-ups")
            .into_iter()
            .map(|c| c.correlation_id)
            .collect();
        inherited.sort();
        let mut ids = vec![old.to_owned(), new.to_string()];
        ids.sort();
        assert_eq!(inherited, ids);
    }

    /// What SQLite plans for `sql`: one line per step.
    fn plan(mb: &Mailbox, sql: &str) -> Vec<String> {
        let mut stmt = mb
            .conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .expect("plan");
        let nulls = vec![rusqlite::types::Null; stmt.parameter_count()];
        stmt.query_map(rusqlite::params_from_iter(nulls), |row| {
            row.get::<_, String>(3)
        })
        .expect("plan rows")
        .collect::<Result<_, _>>()
        .expect("plan rows")
    }

    /// Every hot or periodic query reads its partial index, never the
    /// whole table: with a million messages queued a full scan per claim,
    /// sweep or idle check would cost the host its throughput and idle CPU.
    #[test]
    fn queries_use_their_partial_index() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mb = Mailbox::open(dir.path().join("m.db")).expect("open");
        let page = super::super::dead_letters::page_sql();
        for (name, sql, index) in [
            (
                "claim",
                super::super::claim::CANDIDATES,
                "COVERING INDEX messages_queue (event_type=?",
            ),
            ("chosen", super::super::claim::CHOSEN, "INTEGER PRIMARY KEY"),
            (
                "claim of one type",
                super::super::claim::FIRST_DUE,
                "INDEX messages_queue (event_type=?",
            ),
            ("take", super::super::claim::TAKE, "INTEGER PRIMARY KEY"),
            ("ack claimed", super::super::settle::ACK_CLAIMED, "INTEGER PRIMARY KEY"),
            ("held", super::super::settle::HELD, "sqlite_autoindex_messages_1 (id=?)"),
            ("ack", super::super::settle::ACK, "INTEGER PRIMARY KEY"),
            ("next due: delayed", super::super::claim::NEXT_DUE, "messages_delayed"),
            (
                "next due: due now",
                super::super::claim::NEXT_DUE,
                "COVERING INDEX messages_queue (event_type=?",
            ),
            ("reclaim", super::super::reclaim::STUCK, "messages_leases"),
            ("dead letters", page.as_str(), "messages_dead"),
            (
                "stats: queued",
                super::super::stats::COUNTS[0].1,
                "COVERING INDEX messages_queue",
            ),
            (
                "stats: in flight",
                super::super::stats::COUNTS[1].1,
                "messages_leases",
            ),
            (
                "stats: dead",
                super::super::stats::COUNTS[2].1,
                "messages_dead",
            ),
            (
                "stats: due",
                super::super::stats::DUE,
                "COVERING INDEX messages_queue",
            ),
            (
                "stats: oldest due by type",
                super::super::stats::OLDEST_DUE_BY_TYPE,
                "COVERING INDEX messages_queue",
            ),
        ] {
            let steps = plan(&mb, sql);
            assert!(
                steps.iter().any(|s| s.contains(index)),
                "{name} does not use {index}: {steps:?}"
            );
            assert!(
                !steps.iter().any(|s| s == "SCAN messages"),
                "{name} scans the whole table: {steps:?}"
            );
        }
    }
}
