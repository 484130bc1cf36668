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

const MIGRATIONS_SLICE: &[M<'static>] = &[M::up(V1)];

/// Every migration, in order.
pub(crate) const MIGRATIONS: Migrations<'static> = Migrations::from_slice(MIGRATIONS_SLICE);

/// The schema version this build writes.
pub(crate) const LATEST_VERSION: i64 = MIGRATIONS_SLICE.len() as i64;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_valid() {
        assert!(MIGRATIONS.validate().is_ok());
    }
}
