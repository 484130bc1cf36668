//! What a store check found: the schema version, whether the database's own
//! consistency check passed, and what the store holds. `mailroom check`
//! prints it; the host runs the quick variant at start-up.

use serde::Serialize;

use super::StateCounts;

/// How thorough a check is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckDepth {
    /// SQLite `PRAGMA quick_check`: every page and row, without comparing
    /// indexes to their tables. Reads the whole file once.
    Quick,
    /// SQLite `PRAGMA integrity_check`: also every index against its table.
    Full,
}

/// The most problems a check lists (the database stops after as many).
pub const MAX_PROBLEMS: usize = 20;

/// What a check found. `problems` is empty when the store is sound.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// The store, as messages name it.
    pub store: String,
    /// `sqlite` or `postgres`.
    pub backend: &'static str,
    /// The schema version the store records.
    pub schema_version: i64,
    /// What was verified beyond the schema version, in words.
    pub checked: String,
    /// What is wrong, at most `MAX_PROBLEMS` lines; empty when nothing is.
    pub problems: Vec<String>,
    /// The file's size with its WAL, in bytes (SQLite only).
    pub bytes: Option<u64>,
    /// Messages per state (absent when the store could not be counted).
    pub totals: Option<StateCounts>,
    /// How long the check took, in milliseconds.
    pub took_ms: u64,
}

impl CheckReport {
    /// Whether nothing is wrong.
    pub fn is_sound(&self) -> bool {
        self.problems.is_empty()
    }
}
