//! Opening the SQLite file: pragmas, migrations, and turning SQLite's error
//! codes into [`StoreError`]s that name the file.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::config::DbConfig;
use rusqlite::{Connection, ErrorCode, OpenFlags, TransactionBehavior};

use super::schema::{LATEST_VERSION, MIGRATIONS};
use crate::store::{Durability, OpenOptions, StoreError};

/// After a checkpoint SQLite truncates the WAL file back to this size, so a
/// burst of writes does not leave a large `-wal` file behind.
const JOURNAL_SIZE_LIMIT_BYTES: i64 = 64 * 1024 * 1024;

/// Opens (and if needed creates and migrates) the store at `path`.
pub(crate) fn open(path: &Path, options: &OpenOptions) -> Result<Connection, StoreError> {
    let exists = path.exists();
    if !exists {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
            && !dir.is_dir()
        {
            return Err(StoreError::MissingDirectory {
                path: path.to_owned(),
                dir: dir.to_owned(),
            });
        }
        if !options.create {
            return Err(StoreError::NotFound {
                path: path.to_owned(),
            });
        }
    }
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if options.create {
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    }
    let ctx = Ctx::new(path, options.busy_timeout);
    let mut conn = Connection::open_with_flags(path, flags).map_err(|e| ctx.err(e))?;
    conn.busy_timeout(options.busy_timeout)
        .map_err(|e| ctx.err(e))?;
    // Writers take the write lock when their transaction begins, so several
    // processes queue on the busy timeout instead of failing with
    // SQLITE_BUSY when a read lock cannot be upgraded.
    conn.set_transaction_behavior(TransactionBehavior::Immediate);

    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
        .map_err(|e| ctx.err(e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(ctx.err_text(format!(
            "could not switch to WAL mode (got `{mode}`); is the file on a network filesystem?"
        )));
    }
    let synchronous = match options.durability {
        Durability::Full => "FULL",
        Durability::Fast => "NORMAL",
    };
    conn.pragma_update(None, "synchronous", synchronous)
        .map_err(|e| ctx.err(e))?;
    conn.pragma_update(None, "journal_size_limit", JOURNAL_SIZE_LIMIT_BYTES)
        .map_err(|e| ctx.err(e))?;
    conn.pragma_update(None, "foreign_keys", true)
        .map_err(|e| ctx.err(e))?;
    // Plan each statement once. Without this SQLite re-plans a statement
    // whenever a parameter the planner peeked at is bound again (the claim's
    // `LIMIT ?` is one): a full re-prepare on every claim.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
        .map_err(|e| ctx.err(e))?;
    // Statement journals (a claim's multi-row UPDATE keeps one) stay in
    // memory instead of spilling to a temporary file.
    conn.pragma_update(None, "temp_store", "MEMORY")
        .map_err(|e| ctx.err(e))?;

    migrate(&mut conn, &ctx)?;
    Ok(conn)
}

fn migrate(conn: &mut Connection, ctx: &Ctx) -> Result<(), StoreError> {
    let found: i64 = conn
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(|e| ctx.err(e))?;
    if found > LATEST_VERSION {
        return Err(StoreError::SchemaTooNew {
            store: ctx.name(),
            found,
            supported: LATEST_VERSION,
        });
    }
    if found == LATEST_VERSION {
        return Ok(());
    }
    MIGRATIONS.to_latest(conn).map_err(|e| match e {
        rusqlite_migration::Error::RusqliteError { err, .. } => ctx.err(err),
        other => ctx.err_text(format!("schema migration failed: {other}")),
    })
}

/// Maps rusqlite errors on one store to [`StoreError`]s naming it.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    pub(crate) path: PathBuf,
    busy_timeout: Duration,
    started: Option<Instant>,
}

impl Ctx {
    pub(crate) fn new(path: &Path, busy_timeout: Duration) -> Self {
        Self {
            path: path.to_owned(),
            busy_timeout,
            started: None,
        }
    }

    pub(crate) fn err(&self, e: rusqlite::Error) -> StoreError {
        match e.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreError::Locked {
                store: self.name(),
                waited: self
                    .started
                    .map_or(self.busy_timeout, |started| started.elapsed()),
            },
            Some(ErrorCode::NotADatabase) => StoreError::NotADatabase {
                path: self.path.clone(),
            },
            _ => match e {
                rusqlite::Error::FromSqlConversionFailure(..)
                | rusqlite::Error::InvalidColumnType(..)
                | rusqlite::Error::IntegralValueOutOfRange(..) => StoreError::Corrupt {
                    store: self.name(),
                    reason: e.to_string(),
                },
                source => StoreError::Sqlite {
                    store: self.name(),
                    source,
                },
            },
        }
    }

    /// The store as messages name it.
    pub(crate) fn name(&self) -> String {
        self.path.display().to_string()
    }

    pub(crate) fn err_text(&self, reason: String) -> StoreError {
        StoreError::Corrupt {
            store: self.name(),
            reason,
        }
    }
}
