//! Opening the SQLite file: pragmas, migrations, and turning SQLite's error
//! codes into [`MailboxError`]s that name the file.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::config::DbConfig;
use rusqlite::{Connection, ErrorCode, OpenFlags, TransactionBehavior};

use super::error::MailboxError;
use super::schema::{LATEST_VERSION, MIGRATIONS};

/// What a committed write costs if the machine loses power.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// Every enqueue is synced to disk before it is acknowledged
    /// (`synchronous=FULL`): a power loss cannot lose an acknowledged message.
    #[default]
    Full,
    /// Enqueues commit without waiting for the disk (`synchronous=NORMAL`): a
    /// power loss may lose the most recently acknowledged enqueues. A process
    /// crash still loses nothing that was committed.
    Fast,
}

impl Durability {
    fn synchronous(self) -> &'static str {
        match self {
            Self::Full => "FULL",
            Self::Fast => "NORMAL",
        }
    }
}

/// How to open the store.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// Create the file (not its directory) when it does not exist.
    pub create: bool,
    /// How long a write waits for another process's write lock before
    /// failing with [`MailboxError::Locked`].
    pub busy_timeout: Duration,
    /// The sync policy of this connection. Producers (ingest) use the
    /// configured durability; the dispatcher's claims, acks and failures may
    /// use [`Durability::Fast`], since losing them to a power cut only causes a
    /// redelivery: an ack and the events it emits commit together.
    pub durability: Durability,
    /// The largest payload accepted, in bytes.
    pub max_payload_bytes: usize,
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self {
            create: true,
            busy_timeout: Duration::from_secs(10),
            durability: Durability::Full,
            max_payload_bytes: crate::message::DEFAULT_MAX_PAYLOAD_BYTES,
        }
    }
}

/// After a checkpoint SQLite truncates the WAL file back to this size, so a
/// burst of writes does not leave a large `-wal` file behind.
const JOURNAL_SIZE_LIMIT_BYTES: i64 = 64 * 1024 * 1024;

/// Opens (and if needed creates and migrates) the store at `path`.
pub(crate) fn open(path: &Path, options: &OpenOptions) -> Result<Connection, MailboxError> {
    let exists = path.exists();
    if !exists {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
            && !dir.is_dir()
        {
            return Err(MailboxError::MissingDirectory {
                path: path.to_owned(),
                dir: dir.to_owned(),
            });
        }
        if !options.create {
            return Err(MailboxError::NotFound {
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
    conn.pragma_update(None, "synchronous", options.durability.synchronous())
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

fn migrate(conn: &mut Connection, ctx: &Ctx) -> Result<(), MailboxError> {
    let found: i64 = conn
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(|e| ctx.err(e))?;
    if found > LATEST_VERSION {
        return Err(MailboxError::SchemaTooNew {
            path: ctx.path.clone(),
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

/// Maps rusqlite errors on one store to [`MailboxError`]s naming it.
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

    pub(crate) fn err(&self, e: rusqlite::Error) -> MailboxError {
        match e.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => MailboxError::Locked {
                path: self.path.clone(),
                waited: self
                    .started
                    .map_or(self.busy_timeout, |started| started.elapsed()),
            },
            Some(ErrorCode::NotADatabase) => MailboxError::NotADatabase {
                path: self.path.clone(),
            },
            _ => match e {
                rusqlite::Error::FromSqlConversionFailure(..)
                | rusqlite::Error::InvalidColumnType(..)
                | rusqlite::Error::IntegralValueOutOfRange(..) => MailboxError::Corrupt {
                    path: self.path.clone(),
                    reason: e.to_string(),
                },
                source => MailboxError::Sqlite {
                    path: self.path.clone(),
                    source,
                },
            },
        }
    }

    pub(crate) fn err_text(&self, reason: String) -> MailboxError {
        MailboxError::Corrupt {
            path: self.path.clone(),
            reason,
        }
    }
}
