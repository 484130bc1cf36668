//! The ceiling: the same SQL work with no Mailroom code. A minimal queue
//! table in WAL mode; batched inserts on a `synchronous=FULL` connection (as
//! Mailroom's default ingest), then batched claims (the first due rows read,
//! then marked in flight under a lease), the native handler, and batched
//! deletes on a `synchronous=NORMAL` connection (as Mailroom's dispatcher).

use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::{Connection, params};

use crate::workload::{EVENT_TYPE, handle_natively, payload};

/// How long each phase took.
#[derive(Debug, Clone, Copy)]
pub struct Phases {
    /// Inserting every message.
    pub enqueue: Duration,
    /// Claiming, handling and deleting every message.
    pub process: Duration,
    /// The CPU time `process` took on this thread, which does all of a
    /// SQLite run's work; `None` where the OS does not tell it, or the work is
    /// a server's.
    pub process_cpu: Option<Duration>,
}

fn open(path: &Path, synchronous: &str) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
    conn.pragma_update(None, "synchronous", synchronous)?;
    // As Mailroom does: plan each statement once (no re-prepare when the
    // claim's `LIMIT ?` is bound again), and keep statement journals in memory.
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS queue (
             seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, event_type TEXT NOT NULL,
             payload BLOB NOT NULL, state INTEGER NOT NULL, available_at INTEGER NOT NULL,
             lease_token TEXT, lease_expires_at INTEGER);
         CREATE INDEX IF NOT EXISTS queue_claim ON queue (state, seq);",
    )?;
    Ok(conn)
}

/// Runs the ceiling over `messages` messages in `dir`.
pub fn run(
    dir: &Path,
    messages: usize,
    enqueue_batch: usize,
    claim_batch: usize,
) -> rusqlite::Result<Phases> {
    let path = dir.join("ceiling.db");
    let mut ingest = open(&path, "FULL")?;
    let mut worker = open(&path, "NORMAL")?;

    let started = Instant::now();
    let mut n = 0;
    while n < messages {
        let tx = ingest.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO queue (id, event_type, payload, state, available_at) VALUES (?1, ?2, ?3, 0, 0)",
            )?;
            for _ in 0..enqueue_batch.min(messages - n) {
                insert.execute(params![
                    uuid::Uuid::now_v7().to_string(),
                    EVENT_TYPE,
                    payload(n)
                ])?;
                n += 1;
            }
        }
        tx.commit()?;
    }
    let enqueue = started.elapsed();

    let started = Instant::now();
    let cpu = crate::thread_cpu::now();
    loop {
        let tx = worker.transaction()?;
        let claimed: Vec<(i64, Vec<u8>)> = {
            // Read, then write, as Mailroom claims: with `RETURNING` SQLite
            // loads every column twice and copies what it returns through a
            // temporary table.
            let mut choose = tx.prepare_cached(
                "SELECT seq, payload FROM queue WHERE state = 0 AND available_at <= ?1
                  ORDER BY seq LIMIT ?2",
            )?;
            let rows: Vec<(i64, Vec<u8>)> = choose
                .query_map(
                    params![1, i64::try_from(claim_batch).unwrap_or(i64::MAX)],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?
                .collect::<rusqlite::Result<_>>()?;
            let seqs = serde_json::to_string(&rows.iter().map(|(seq, _)| *seq).collect::<Vec<_>>())
                .unwrap_or_else(|_| "[]".to_owned());
            tx.prepare_cached(
                "UPDATE queue SET state = 1, lease_token = ?1, lease_expires_at = ?2
                  WHERE seq IN (SELECT value FROM json_each(?3))",
            )?
            .execute(params![uuid::Uuid::now_v7().to_string(), 1, seqs])?;
            rows
        };
        tx.commit()?;
        if claimed.is_empty() {
            break;
        }
        let handled: Vec<i64> = claimed
            .into_iter()
            .map(|(seq, payload)| {
                std::hint::black_box(handle_natively(&payload));
                seq
            })
            .collect();
        let tx = worker.transaction()?;
        {
            let mut delete = tx.prepare_cached("DELETE FROM queue WHERE seq = ?1 AND state = 1")?;
            for seq in handled {
                delete.execute([seq])?;
            }
        }
        tx.commit()?;
    }
    Ok(Phases {
        enqueue,
        process: started.elapsed(),
        process_cpu: crate::thread_cpu::since(cpu),
    })
}
