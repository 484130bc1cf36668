//! What can go wrong in the store, as one enum callers can match, whichever
//! backend holds the mailbox.

use std::path::PathBuf;
use std::time::Duration;

use crate::message::{InvalidInput, MessageId};
use crate::state_machine::MessageState;

/// An error from the store. Each message names what went wrong and, where
/// there is one, what to do about it. `store` fields name the store as the
/// operator wrote it (a file path, or a PostgreSQL URL without its password).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The directory that should hold the store file does not exist.
    #[error(
        "cannot open the store {path}: the directory {dir} does not exist (create it, or choose another store path)"
    )]
    MissingDirectory {
        /// The store's path.
        path: PathBuf,
        /// The missing directory.
        dir: PathBuf,
    },
    /// The store file does not exist and was not to be created.
    #[error(
        "no store at {path}: start `mailroom run` there first, or pass the path of an existing store with --db"
    )]
    NotFound {
        /// The store's path.
        path: PathBuf,
    },
    /// The PostgreSQL database holds no Mailroom store, and it was not to be
    /// created.
    #[error(
        "no Mailroom store in {store} (no `mailroom` schema): start `mailroom run` or `mailroom enqueue` there first"
    )]
    NoSchema {
        /// The store, without its password.
        store: String,
    },
    /// The file exists but is not an SQLite database.
    #[error("{path} is not a Mailroom store (not an SQLite database): check the path")]
    NotADatabase {
        /// The file's path.
        path: PathBuf,
    },
    /// The store URL cannot be used.
    #[error("invalid store URL `{url}`: {reason}")]
    BadUrl {
        /// The URL, without its password.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The database server could not be reached.
    #[error(
        "cannot reach the PostgreSQL server of {store}: {reason} (is it running, and are host and port right?)"
    )]
    Unreachable {
        /// The store, without its password.
        store: String,
        /// What the connection attempt said.
        reason: String,
    },
    /// The database server refused the login.
    #[error(
        "the PostgreSQL server of {store} refused the login: {reason} (check the user name and password in the store URL)"
    )]
    LoginRefused {
        /// The store, without its password.
        store: String,
        /// What the server said.
        reason: String,
    },
    /// The database user lacks a permission the store needs.
    #[error(
        "the PostgreSQL user of {store} lacks a permission: {reason} (grant it, or run once as the database owner so the schema is created)"
    )]
    PermissionDenied {
        /// The store, without its password.
        store: String,
        /// What the server said.
        reason: String,
    },
    /// Another process held the write lock for longer than the busy timeout.
    #[error(
        "the store {store} stayed locked by another process for {waited:?}: retry, or raise the busy timeout"
    )]
    Locked {
        /// The store.
        store: String,
        /// How long this process waited.
        waited: Duration,
    },
    /// The store was written by a newer Mailroom.
    #[error(
        "the store {store} has schema version {found}, newer than this mailroom understands ({supported}): upgrade mailroom"
    )]
    SchemaTooNew {
        /// The store.
        store: String,
        /// The store's schema version.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },
    /// A message broke a rule of the message contract.
    #[error("invalid message: {0}")]
    Invalid(#[from] InvalidInput),
    /// One message of a batch broke a rule; nothing of the batch was stored.
    #[error("invalid message at index {index} of the batch: {source}")]
    InvalidInBatch {
        /// The message's position in the batch, from 0.
        index: usize,
        /// What is wrong with it.
        source: InvalidInput,
    },
    /// The enqueue would put more messages of one event type in the queue
    /// than its `max_queued`; nothing of it was stored.
    #[error(
        "the queue of event type {event_type} is full ({max_queued} queued, its max_queued): nothing was enqueued; retry later, or raise event_types.\"{event_type}\".max_queued"
    )]
    OverCapacity {
        /// The event type.
        event_type: String,
        /// Its capacity.
        max_queued: u64,
    },
    /// The lease on a claimed message is no longer held: it expired and the
    /// message was reclaimed (and maybe claimed again). Nothing was committed.
    #[error(
        "the lease on message {id} is no longer held (it expired or was reclaimed); nothing was committed"
    )]
    LeaseLost {
        /// The message.
        id: MessageId,
    },
    /// No message has this id.
    #[error("no message with id {id}")]
    NoSuchMessage {
        /// The id asked for.
        id: MessageId,
    },
    /// The message exists but is not in the state the operation needs.
    #[error("message {id} is {actual}, not {expected}")]
    WrongState {
        /// The message.
        id: MessageId,
        /// The state the operation needs.
        expected: MessageState,
        /// The state it is in.
        actual: MessageState,
    },
    /// The file is an SQLite database, but not a Mailroom store (another
    /// application's database, or an empty one). Nothing was changed.
    #[error(
        "{path} is not a Mailroom store ({why}); it was left unchanged: check the path, or give Mailroom a file of its own"
    )]
    NotAStore {
        /// The file's path.
        path: PathBuf,
        /// What it holds instead.
        why: String,
    },
    /// The store has an older schema, and was opened read-only (which never
    /// migrates).
    #[error(
        "the store {store} has schema version {found}, older than this mailroom's ({current}): run `mailroom run` or `mailroom enqueue` on it once to upgrade it, then retry"
    )]
    SchemaTooOld {
        /// The store.
        store: String,
        /// The store's schema version.
        found: i64,
        /// The version this build writes.
        current: i64,
    },
    /// The store is damaged: the database reported corruption, or a stored
    /// row cannot be read back. The host stops writing to it.
    #[error(
        "the store {store} is damaged ({reason}): stop writing to it, run `mailroom check` on it, and restore it from a backup"
    )]
    Corrupt {
        /// The store.
        store: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The disk (or file system) holding the store is full.
    #[error(
        "the disk holding the store {store} is full: free some space (nothing committed was lost)"
    )]
    DiskFull {
        /// The store.
        store: String,
    },
    /// The store cannot be written by this process.
    #[error(
        "the store {store} cannot be written: give this user write permission on the file and its directory, or use a read-only command"
    )]
    ReadOnly {
        /// The store.
        store: String,
    },
    /// The store cannot be used as Mailroom needs it (for SQLite: WAL mode,
    /// which network file systems do not offer).
    #[error("cannot use the store {store}: {reason}")]
    Unusable {
        /// The store.
        store: String,
        /// What is missing.
        reason: String,
    },
    /// Any other SQLite failure.
    #[error("SQLite failed on the store {store}: {source}")]
    Sqlite {
        /// The store's path.
        store: String,
        /// The underlying error.
        #[source]
        source: rusqlite::Error,
    },
    /// Any other PostgreSQL failure (the connection dropped, the server
    /// restarted, a statement failed).
    #[error("PostgreSQL failed on the store {store}: {reason}")]
    Postgres {
        /// The store, without its password.
        store: String,
        /// What went wrong, with the server's message where there is one.
        reason: String,
    },
}

impl StoreError {
    /// Whether this error means the store was busy (worth retrying later).
    pub fn is_locked(&self) -> bool {
        matches!(self, Self::Locked { .. })
    }

    /// Whether this is a failure of the store (rather than an answer about
    /// the input: an invalid message, a lost lease, an unknown id, a
    /// message in another state).
    pub fn is_store_failure(&self) -> bool {
        !matches!(
            self,
            Self::Invalid(_)
                | Self::InvalidInBatch { .. }
                | Self::LeaseLost { .. }
                | Self::NoSuchMessage { .. }
                | Self::WrongState { .. }
        )
    }

    /// Whether the store reported damage: nothing more should be written
    /// to it.
    pub fn is_corrupt(&self) -> bool {
        matches!(self, Self::Corrupt { .. })
    }

    /// The kind of a store failure, as the `mailroom_store_errors_total`
    /// metric labels it (one of [`StoreError::KINDS`]). Errors about the
    /// input (an invalid message, an unknown id) are `other`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Locked { .. } => "locked",
            Self::Corrupt { .. } | Self::NotADatabase { .. } => "corrupt",
            Self::DiskFull { .. } => "disk_full",
            Self::ReadOnly { .. } | Self::PermissionDenied { .. } => "read_only",
            Self::Unreachable { .. } | Self::LoginRefused { .. } | Self::Postgres { .. } => {
                "unavailable"
            }
            _ => "other",
        }
    }

    /// Every value [`StoreError::kind`] returns.
    pub const KINDS: [&'static str; 6] = [
        "locked",
        "corrupt",
        "disk_full",
        "read_only",
        "unavailable",
        "other",
    ];
}
