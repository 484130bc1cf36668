//! Reading stored rows back into typed values. Column lists live beside the
//! functions that read them, so a query and its reader cannot drift apart.

use rusqlite::Row;
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};

use crate::message::{MessageId, Priority};
use crate::state_machine::MessageState;

impl ToSql for MessageState {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

impl FromSql for MessageState {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        value
            .as_str()?
            .parse()
            .map_err(|e| FromSqlError::Other(Box::new(e)))
    }
}

impl ToSql for MessageId {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.to_string()))
    }
}

impl FromSql for MessageId {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        value
            .as_str()?
            .parse()
            .map_err(|e| FromSqlError::Other(Box::new(e)))
    }
}

impl ToSql for Priority {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.rank()))
    }
}

impl FromSql for Priority {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let rank = value.as_i64()?;
        Priority::from_rank(rank).ok_or(FromSqlError::OutOfRange(rank))
    }
}

/// The expression that reads a message's correlation id (with the table's
/// alias and a dot, or `""`): stored as the empty text when it is the
/// message's own id (schema version 8), which it gives back.
macro_rules! correlation_column {
    ($table:literal) => {
        concat!("coalesce(nullif(", $table, "correlation_id, ''), ", $table, "id)")
    };
}
pub(crate) use correlation_column;

/// Reads a non-negative counter stored as INTEGER.
pub(crate) fn get_u32(row: &Row<'_>, idx: usize) -> rusqlite::Result<u32> {
    let v: i64 = row.get(idx)?;
    u32::try_from(v).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(idx, v))
}

/// `items` as the JSON array a statement reads through `json_each`: one
/// parameter for a list of any length.
pub(crate) fn json_list<T: serde::Serialize>(items: &[T]) -> String {
    // Numbers and strings always serialize.
    serde_json::to_string(items).unwrap_or_else(|_| "[]".to_owned())
}

/// Fails the transaction when a statement changed `changed` rows where
/// `expected` were certain: the rows it writes were read earlier in the
/// same write transaction, so only SQLite misbehaving gets here, and then
/// none of it may commit.
pub(crate) fn expect_changed(changed: usize, expected: usize) -> rusqlite::Result<()> {
    if changed == expected {
        Ok(())
    } else {
        Err(rusqlite::Error::StatementChangedRows(changed))
    }
}

/// Converts a count to the INTEGER SQLite stores.
pub(crate) fn sql_int(v: impl TryInto<i64>) -> i64 {
    v.try_into().unwrap_or(i64::MAX)
}
