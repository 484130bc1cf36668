//! The PostgreSQL schema, in a schema of its own (`mailroom`), created and
//! upgraded by numbered migrations when a host or producer opens the store.
//!
//! Migrations only ever append. They run under a transaction-scoped
//! advisory lock, so several hosts starting at once migrate one after the
//! other (the later ones find the work done). A database whose version is
//! above the last migration here was written by a newer Mailroom and is
//! refused rather than misread.

use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

use super::connect::Errors;
use crate::store::StoreError;

/// The advisory lock key every Mailroom migration takes ("mailroom" in
/// ASCII, as a number).
const MIGRATION_LOCK: i64 = 0x6d61_696c_726f_6f6d;

/// The channel hosts `LISTEN` on and commits `NOTIFY`.
pub(crate) const CHANNEL: &str = "mailroom";

/// Version 1: the messages, the hosts, their plugins, and the functions
/// applications call (`mailroom.enqueue`) inside their own transactions.
///
/// Times are integers (milliseconds since the Unix epoch), as on SQLite,
/// so both backends share one notion of time; `mailroom.now_ms()` is the
/// database server's clock, which hosts on several machines share.
/// `max_attempts` is NULL for a message enqueued through SQL without one:
/// the handling host's policy for its event type applies.
const V1: &str = r#"
CREATE TABLE mailroom.messages (
    seq              bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id               uuid    NOT NULL UNIQUE,
    event_type       text    NOT NULL,
    payload          bytea   NOT NULL,
    key              text,
    source           text,
    correlation_id   text    NOT NULL,
    -- 0 low, 1 normal, 2 high.
    priority         smallint NOT NULL,
    state            text    NOT NULL CHECK (state IN ('queued', 'inflight', 'dead')),
    attempts         integer NOT NULL DEFAULT 0,
    max_attempts     integer CHECK (max_attempts > 0),
    available_at     bigint  NOT NULL,
    created_at       bigint  NOT NULL,
    updated_at       bigint  NOT NULL,
    lease_owner      text,
    lease_token      text,
    lease_expires_at bigint,
    last_error       text,
    last_plugin_digest text,
    dead_at          bigint
);
CREATE UNIQUE INDEX messages_key ON mailroom.messages (key) WHERE key IS NOT NULL;
CREATE INDEX messages_queue ON mailroom.messages (event_type, priority DESC, seq)
    WHERE state = 'queued';
-- Keyed by `event_type || ''` rather than `event_type` so that a claim
-- (which filters by type and due time) can never be planned on it: a queue
-- table swings from empty to millions of rows between two analyzes, and on
-- stale statistics the planner would pick this index and sort every queued
-- message of the type on each claim. Only the next-due query names the
-- expression.
CREATE INDEX messages_due ON mailroom.messages ((event_type || ''), available_at)
    WHERE state = 'queued';
CREATE INDEX messages_leases ON mailroom.messages (lease_expires_at)
    WHERE state = 'inflight';
CREATE INDEX messages_dead ON mailroom.messages (seq) WHERE state = 'dead';
-- Every message is inserted, updated and deleted within moments: vacuum and
-- analyze after 1% of the rows changed rather than the default 10-20%.
ALTER TABLE mailroom.messages SET (
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_analyze_scale_factor = 0.01
);

CREATE TABLE mailroom.hosts (
    owner         text    PRIMARY KEY,
    hostname      text    NOT NULL,
    pid           integer NOT NULL,
    process_start bigint,
    started_at    bigint  NOT NULL,
    heartbeat_at  bigint  NOT NULL
);

CREATE TABLE mailroom.plugin_registry (
    owner       text   NOT NULL,
    path        text   NOT NULL,
    status      text   NOT NULL,
    name        text,
    version     text,
    event_types text,
    digest      text,
    reason      text,
    updated_at  bigint NOT NULL,
    PRIMARY KEY (owner, path, status)
);

CREATE FUNCTION mailroom.now_ms() RETURNS bigint LANGUAGE sql VOLATILE AS $$
    SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint
$$;

-- A UUID v7 (time-ordered, as the runtime makes them): a random v4 with
-- the time in its first 48 bits and the version bits turned to 7.
CREATE FUNCTION mailroom.uuid_v7() RETURNS uuid LANGUAGE sql VOLATILE AS $$
    SELECT encode(
        set_bit(set_bit(
            overlay(uuid_send(gen_random_uuid())
                    PLACING substring(int8send(mailroom.now_ms()) FROM 3) FROM 1 FOR 6),
            52, 1), 53, 1),
        'hex')::uuid
$$;

-- The outbox: enqueue an event inside the caller's transaction. It exists
-- if and only if that transaction commits, and hosts wake at that commit.
-- A key already stored returns the stored message's id and stores nothing.
CREATE FUNCTION mailroom.enqueue(
    event_type     text,
    payload        jsonb,
    key            text     DEFAULT NULL,
    priority       text     DEFAULT 'normal',
    delay          interval DEFAULT '0 seconds',
    max_attempts   integer  DEFAULT NULL,
    source         text     DEFAULT NULL,
    correlation_id text     DEFAULT NULL
) RETURNS uuid LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
    new_id   uuid := mailroom.uuid_v7();
    now_ms   bigint := mailroom.now_ms();
    rank     smallint;
    found_id uuid;
BEGIN
    IF event_type IS NULL OR event_type !~ '^[A-Za-z0-9._:-]{1,255}$' THEN
        RAISE EXCEPTION 'invalid event type %: 1 to 255 characters of A-Z a-z 0-9 . _ : -',
            quote_nullable(event_type) USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF payload IS NULL THEN
        RAISE EXCEPTION 'payload must not be NULL' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    rank := CASE lower(priority) WHEN 'low' THEN 0 WHEN 'normal' THEN 1 WHEN 'high' THEN 2 END;
    IF rank IS NULL THEN
        RAISE EXCEPTION 'invalid priority %: low, normal or high', quote_nullable(priority)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF max_attempts IS NOT NULL AND max_attempts < 1 THEN
        RAISE EXCEPTION 'max_attempts must be at least 1' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF delay < interval '0' THEN
        RAISE EXCEPTION 'delay must not be negative' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO mailroom.messages AS m
        (id, event_type, payload, key, source, correlation_id, priority, state, attempts,
         max_attempts, available_at, created_at, updated_at)
    VALUES (new_id, enqueue.event_type, convert_to(enqueue.payload::text, 'UTF8'), enqueue.key,
            enqueue.source, coalesce(enqueue.correlation_id, new_id::text), rank, 'queued', 0,
            enqueue.max_attempts,
            now_ms + (extract(epoch FROM enqueue.delay) * 1000)::bigint, now_ms, now_ms)
    ON CONFLICT (key) WHERE key IS NOT NULL DO NOTHING;
    IF FOUND THEN
        PERFORM pg_notify('mailroom', '');
        RETURN new_id;
    END IF;
    SELECT m.id INTO found_id FROM mailroom.messages m WHERE m.key = enqueue.key;
    RETURN found_id;
END
$$;
"#;

/// Version 2: paused event types: no host claims their messages until they are
/// resumed (one row per type, whatever the backlog).
const PAUSED_TYPES: &str = r#"
CREATE TABLE mailroom.paused_event_types (
    event_type text   PRIMARY KEY,
    paused_at  bigint NOT NULL
);
"#;

/// Version 3: each message carries its chain depth: 0 for what producers
/// and `mailroom.enqueue(...)` enqueue (the column default), the emitting
/// message's depth + 1 for a handler's follow-up, so a loop of
/// self-emitting handlers ends at `plugins.max_chain_depth`.
const CHAIN_DEPTH: &str = r#"
ALTER TABLE mailroom.messages ADD COLUMN IF NOT EXISTS depth integer NOT NULL DEFAULT 0;
"#;

/// Version 4: idempotency keys that outlive their message (see
/// `crate::store::retention`): deleting a keyed message by any path records
/// its key and id; the sweep stamps them with the hosts' clock and forgets
/// them `store.key_retention` later. `mailroom.enqueue` answers a
/// remembered key's id as it does a stored one's.
///
/// Also: dead letters in order of death (`dlq list`, filtered redrives and
/// purges take the first dead first), every dead letter with a time of death.
///
/// Self-contained: it reads only the `messages` columns of version 1.
const RETAINED_KEYS: &str = r#"
UPDATE mailroom.messages SET dead_at = updated_at WHERE state = 'dead' AND dead_at IS NULL;
CREATE INDEX messages_dead_order ON mailroom.messages (dead_at, seq) WHERE state = 'dead';

CREATE TABLE mailroom.retained_keys (
    key        text PRIMARY KEY,
    id         uuid NOT NULL,
    -- When a sweep first saw the key (ms); NULL until then.
    removed_at bigint
);
CREATE INDEX retained_keys_unstamped ON mailroom.retained_keys (key) WHERE removed_at IS NULL;
CREATE INDEX retained_keys_age ON mailroom.retained_keys (removed_at)
    WHERE removed_at IS NOT NULL;

CREATE FUNCTION mailroom.retain_key() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO mailroom.retained_keys (key, id, removed_at) VALUES (OLD.key, OLD.id, NULL)
        ON CONFLICT (key) DO UPDATE SET id = EXCLUDED.id, removed_at = NULL;
    RETURN NULL;
END
$$;
CREATE TRIGGER messages_retain_key AFTER DELETE ON mailroom.messages
    FOR EACH ROW WHEN (OLD.key IS NOT NULL) EXECUTE FUNCTION mailroom.retain_key();

-- Version 1's function with the remembered-key lookup added: its body names
-- its arguments as `enqueue.<name>`, so it cannot be wrapped under a new name,
-- and migrations never edit a released one.
CREATE OR REPLACE FUNCTION mailroom.enqueue(
    event_type     text,
    payload        jsonb,
    key            text     DEFAULT NULL,
    priority       text     DEFAULT 'normal',
    delay          interval DEFAULT '0 seconds',
    max_attempts   integer  DEFAULT NULL,
    source         text     DEFAULT NULL,
    correlation_id text     DEFAULT NULL
) RETURNS uuid LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
    new_id   uuid := mailroom.uuid_v7();
    now_ms   bigint := mailroom.now_ms();
    rank     smallint;
    found_id uuid;
BEGIN
    IF event_type IS NULL OR event_type !~ '^[A-Za-z0-9._:-]{1,255}$' THEN
        RAISE EXCEPTION 'invalid event type %: 1 to 255 characters of A-Z a-z 0-9 . _ : -',
            quote_nullable(event_type) USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF payload IS NULL THEN
        RAISE EXCEPTION 'payload must not be NULL' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    rank := CASE lower(priority) WHEN 'low' THEN 0 WHEN 'normal' THEN 1 WHEN 'high' THEN 2 END;
    IF rank IS NULL THEN
        RAISE EXCEPTION 'invalid priority %: low, normal or high', quote_nullable(priority)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF max_attempts IS NOT NULL AND max_attempts < 1 THEN
        RAISE EXCEPTION 'max_attempts must be at least 1' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF delay < interval '0' THEN
        RAISE EXCEPTION 'delay must not be negative' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF enqueue.key IS NOT NULL THEN
        SELECT r.id INTO found_id FROM mailroom.retained_keys r WHERE r.key = enqueue.key;
        IF FOUND THEN
            RETURN found_id;
        END IF;
    END IF;
    INSERT INTO mailroom.messages AS m
        (id, event_type, payload, key, source, correlation_id, priority, state, attempts,
         max_attempts, available_at, created_at, updated_at)
    VALUES (new_id, enqueue.event_type, convert_to(enqueue.payload::text, 'UTF8'), enqueue.key,
            enqueue.source, coalesce(enqueue.correlation_id, new_id::text), rank, 'queued', 0,
            enqueue.max_attempts,
            now_ms + (extract(epoch FROM enqueue.delay) * 1000)::bigint, now_ms, now_ms)
    ON CONFLICT (key) WHERE key IS NOT NULL DO NOTHING;
    IF FOUND THEN
        PERFORM pg_notify('mailroom', '');
        RETURN new_id;
    END IF;
    SELECT m.id INTO found_id FROM mailroom.messages m WHERE m.key = enqueue.key;
    RETURN found_id;
END
$$;
"#;

/// Every migration, in order.
const MIGRATIONS: &[&str] = &[V1, PAUSED_TYPES, CHAIN_DEPTH, RETAINED_KEYS];

/// The schema version this build writes.
pub(crate) const LATEST_VERSION: i64 = MIGRATIONS.len() as i64;

/// The version recorded in the database, or `None` when there is no
/// Mailroom schema yet.
pub(crate) async fn version(client: &Client, errors: &Errors) -> Result<Option<i64>, StoreError> {
    match client
        .query_one("SELECT max(version)::bigint FROM mailroom.schema_version", &[])
        .await
    {
        Ok(row) => Ok(Some(row.get::<_, Option<i64>>(0).unwrap_or(0))),
        Err(e)
            if e.code() == Some(&SqlState::UNDEFINED_TABLE)
                || e.code() == Some(&SqlState::INVALID_SCHEMA_NAME) =>
        {
            Ok(None)
        }
        Err(e) => Err(errors.pg(&e)),
    }
}

/// Brings the schema up to date (creating it when `create` allows). With
/// `read_only` it changes nothing: a schema that is missing or not the
/// current version is refused.
pub(crate) async fn migrate(
    client: &mut Client,
    errors: &Errors,
    create: bool,
    read_only: bool,
) -> Result<(), StoreError> {
    let too_new = |found| StoreError::SchemaTooNew {
        store: errors.store.clone(),
        found,
        supported: LATEST_VERSION,
    };
    match version(client, errors).await? {
        Some(found) if found > LATEST_VERSION => return Err(too_new(found)),
        Some(found) if found == LATEST_VERSION => return Ok(()),
        None if !create || read_only => {
            return Err(StoreError::NoSchema {
                store: errors.store.clone(),
            });
        }
        Some(found) if read_only => {
            return Err(StoreError::SchemaTooOld {
                store: errors.store.clone(),
                found,
                current: LATEST_VERSION,
            });
        }
        _ => {}
    }
    let tx = client.transaction().await.map_err(|e| errors.pg(&e))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(|e| errors.pg(&e))?;
    tx.batch_execute(
        "CREATE SCHEMA IF NOT EXISTS mailroom;
         CREATE TABLE IF NOT EXISTS mailroom.schema_version (
             version    integer PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now()
         );",
    )
    .await
    .map_err(|e| errors.pg(&e))?;
    // Read again under the lock: another host may have migrated meanwhile.
    let found: i64 = tx
        .query_one(
            "SELECT coalesce(max(version), 0)::bigint FROM mailroom.schema_version",
            &[],
        )
        .await
        .map_err(|e| errors.pg(&e))?
        .get(0);
    if found > LATEST_VERSION {
        return Err(too_new(found));
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(usize::try_from(found).unwrap_or(0)) {
        let number = i32::try_from(index + 1).unwrap_or(i32::MAX);
        tx.batch_execute(sql).await.map_err(|e| errors.pg(&e))?;
        tx.execute(
            "INSERT INTO mailroom.schema_version (version) VALUES ($1)",
            &[&number],
        )
        .await
        .map_err(|e| errors.pg(&e))?;
    }
    tx.commit().await.map_err(|e| errors.pg(&e))
}
