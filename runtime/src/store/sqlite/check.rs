//! Verifying the file: SQLite's own consistency check, then the counts.

use std::time::Instant;

use super::Mailbox;
use super::schema::LATEST_VERSION;
use crate::store::check::{CheckDepth, CheckReport, MAX_PROBLEMS};
use crate::store::StoreError;

impl Mailbox {
    /// Runs SQLite's consistency check (`quick_check` or `integrity_check`)
    /// and counts the messages. Reads only.
    ///
    /// # Errors
    ///
    /// A store failure that kept the check from running at all; damage the
    /// check finds is reported in [`CheckReport::problems`].
    pub fn check(&self, depth: CheckDepth) -> Result<CheckReport, StoreError> {
        let started = Instant::now();
        let pragma = match depth {
            CheckDepth::Quick => "quick_check",
            CheckDepth::Full => "integrity_check",
        };
        let found = self
            .conn
            .prepare(&format!("PRAGMA {pragma}({MAX_PROBLEMS})"))
            .and_then(|mut stmt| {
                stmt.query_map([], |row| row.get::<_, String>(0))?
                    .collect::<Result<Vec<_>, _>>()
            });
        let mut problems = match found {
            Ok(lines) if lines == ["ok"] => Vec::new(),
            // A problem may span lines; one line each reads better.
            Ok(lines) => lines.iter().map(|l| l.replace('\n', " ")).collect(),
            Err(e) => match self.ctx.err(e) {
                StoreError::Corrupt { reason, .. } => vec![reason],
                other => return Err(other),
            },
        };
        let schema_version: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(|e| self.ctx.err(e))?;
        if schema_version != LATEST_VERSION {
            problems.push(format!(
                "schema version {schema_version}, this mailroom writes {LATEST_VERSION}"
            ));
        }
        let totals = if problems.is_empty() {
            match self.stats() {
                Ok(stats) => Some(stats.totals),
                Err(e) => {
                    problems.push(e.to_string());
                    None
                }
            }
        } else {
            None
        };
        let bytes = [self.ctx.path.clone(), super::connection::wal_path(&self.ctx.path)]
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum();
        problems.truncate(MAX_PROBLEMS);
        Ok(CheckReport {
            store: self.ctx.name(),
            backend: "sqlite",
            schema_version,
            checked: format!("SQLite {pragma} over every page"),
            problems,
            bytes: Some(bytes),
            totals,
            took_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        })
    }
}
