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

/// The first bytes of every SQLite database file.
const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// The tables every Mailroom store holds (besides SQLite's own).
const STORE_TABLES: [&str; 3] = ["messages", "hosts", "plugin_registry"];

/// Opens (and if needed creates and migrates) the store at `path`; with
/// `options.read_only`, opens it as it is without changing a byte.
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
        if !options.create || options.read_only {
            return Err(StoreError::NotFound {
                path: path.to_owned(),
            });
        }
    }
    if options.read_only {
        return open_read_only(path, options);
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
    // Before anything writes (the switch to WAL does): another application's
    // database is not ours to add tables to.
    identify(&conn, &ctx)?;

    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
        .map_err(|e| ctx.err(e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Unusable {
            store: ctx.name(),
            reason: format!(
                "it cannot be switched to WAL mode (got `{mode}`); is the file on a network filesystem?"
            ),
        });
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
    tune(&conn, &ctx)?;

    migrate(&mut conn, &ctx)?;
    Ok(conn)
}

/// Per-connection settings that change nothing in the file.
fn tune(conn: &Connection, ctx: &Ctx) -> Result<(), StoreError> {
    // Plan each statement once. Without this SQLite re-plans a statement
    // whenever a parameter the planner peeked at is bound again (the claim's
    // `LIMIT ?` is one): a full re-prepare on every claim.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
        .map_err(|e| ctx.err(e))?;
    // Statement journals (kept by any statement that writes many rows and
    // could fail half way) stay in memory instead of spilling to a temporary
    // file.
    conn.pragma_update(None, "temp_store", "MEMORY")
        .map_err(|e| ctx.err(e))
}

/// Opens an existing store for reading: `SQLITE_OPEN_READ_ONLY`, no journal
/// mode switch, no migration. A file that is not a Mailroom store of the
/// current schema is refused, unchanged.
fn open_read_only(path: &Path, options: &OpenOptions) -> Result<Connection, StoreError> {
    let ctx = Ctx::new(path, options.busy_timeout);
    check_header(path)?;
    let conn = match connect_read_only(path, options, false) {
        // A WAL store needs its `-shm` index to be read. When no process has
        // it open the index is gone, and a user who may not write the
        // directory cannot create it: then no process is writing either, and
        // the file can be read as it stands.
        Err(e) if cannot_create_index(&e) && !wal_path(path).exists() => {
            connect_read_only(path, options, true)?
        }
        other => other?,
    };
    match identify(&conn, &ctx)? {
        0 => Err(StoreError::NotAStore {
            path: path.to_owned(),
            why: "an empty SQLite database".to_owned(),
        }),
        found if found > LATEST_VERSION => Err(StoreError::SchemaTooNew {
            store: ctx.name(),
            found,
            supported: LATEST_VERSION,
        }),
        found if found < LATEST_VERSION => Err(StoreError::SchemaTooOld {
            store: ctx.name(),
            found,
            current: LATEST_VERSION,
        }),
        _ => Ok(conn),
    }
}

fn connect_read_only(
    path: &Path,
    options: &OpenOptions,
    immutable: bool,
) -> Result<Connection, StoreError> {
    let ctx = Ctx::new(path, options.busy_timeout);
    let flags =
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
    let uri = file_uri(path, immutable);
    let conn = Connection::open_with_flags(uri, flags).map_err(|e| ctx.err(e))?;
    conn.busy_timeout(options.busy_timeout)
        .map_err(|e| ctx.err(e))?;
    tune(&conn, &ctx)?;
    // The first read opens the WAL index: fail here, not in the command.
    user_version(&conn, &ctx)?;
    Ok(conn)
}

/// A `file:` URI for `path` (read-only; `immutable` when nothing can be
/// writing it). Every byte but plain ASCII is percent-encoded, which SQLite
/// decodes back to the same bytes (non-UTF-8 names included).
fn file_uri(path: &Path, immutable: bool) -> String {
    use std::fmt::Write as _;
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    let mut uri = String::from("file:");
    for &byte in absolute.as_os_str().as_encoded_bytes() {
        if byte.is_ascii_alphanumeric() || b"/-._~".contains(&byte) {
            uri.push(char::from(byte));
        } else {
            let _ = write!(uri, "%{byte:02X}");
        }
    }
    uri.push_str("?mode=ro");
    if immutable {
        uri.push_str("&immutable=1");
    }
    uri
}

pub(crate) fn wal_path(path: &Path) -> PathBuf {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    PathBuf::from(wal)
}

/// Whether opening failed only because the WAL index could not be created.
fn cannot_create_index(e: &StoreError) -> bool {
    match e {
        StoreError::ReadOnly { .. } => true,
        StoreError::Sqlite { source, .. } => matches!(
            source.sqlite_error_code(),
            Some(ErrorCode::CannotOpen | ErrorCode::ReadOnly)
        ),
        _ => false,
    }
}

/// Refuses a zero-length file or one that does not start as an SQLite
/// database, reading only its first bytes.
fn check_header(path: &Path) -> Result<(), StoreError> {
    use std::io::Read as _;
    let unreadable = |e: std::io::Error| StoreError::Unusable {
        store: path.display().to_string(),
        reason: format!("it cannot be read: {e}"),
    };
    let mut header = Vec::with_capacity(SQLITE_HEADER.len());
    std::fs::File::open(path)
        .map_err(unreadable)?
        .take(SQLITE_HEADER.len() as u64)
        .read_to_end(&mut header)
        .map_err(unreadable)?;
    if header.is_empty() {
        return Err(StoreError::NotAStore {
            path: path.to_owned(),
            why: "an empty file".to_owned(),
        });
    }
    if header != SQLITE_HEADER {
        return Err(StoreError::NotADatabase {
            path: path.to_owned(),
        });
    }
    Ok(())
}

fn user_version(conn: &Connection, ctx: &Ctx) -> Result<i64, StoreError> {
    conn.query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(|e| ctx.err(e))
}

/// The file's tables, SQLite's own left out.
fn tables(conn: &Connection, ctx: &Ctx) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
        .map_err(|e| ctx.err(e))?;
    stmt.query_map([], |row| row.get(0))
        .and_then(|rows| rows.collect())
        .map_err(|e| ctx.err(e))
}

/// Refuses a database that is not a Mailroom store (another application's,
/// whatever its `user_version`); returns the store's schema version, 0 for
/// a database with no tables at all (new, or empty).
fn identify(conn: &Connection, ctx: &Ctx) -> Result<i64, StoreError> {
    let version = user_version(conn, ctx)?;
    let tables = tables(conn, ctx)?;
    let has = |t: &str| tables.iter().any(|h| h == t);
    let ours = match version {
        0 => tables.is_empty(),
        // A newer schema may have changed its other tables.
        v if v > LATEST_VERSION => has("messages"),
        _ => STORE_TABLES.into_iter().all(has),
    };
    if ours {
        return Ok(version);
    }
    let why = if tables.is_empty() {
        format!("an SQLite database with user_version {version} and no tables")
    } else {
        let mut shown = tables.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
        if tables.len() > 5 {
            shown.push_str(", …");
        }
        format!("another application's SQLite database, with tables {shown}")
    };
    Err(StoreError::NotAStore {
        path: ctx.path.clone(),
        why,
    })
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
    pub(crate) busy_timeout: Duration,
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
            Some(ErrorCode::DatabaseCorrupt) => StoreError::Corrupt {
                store: self.name(),
                reason: e.to_string(),
            },
            Some(ErrorCode::DiskFull) => StoreError::DiskFull { store: self.name() },
            Some(ErrorCode::ReadOnly) => StoreError::ReadOnly { store: self.name() },
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
        StoreError::Unusable {
            store: self.name(),
            reason,
        }
    }
}
