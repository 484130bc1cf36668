//! A bad configuration, reported whole: every problem with its key, where the
//! value came from, what is wrong and what is allowed.

use std::fmt;
use std::path::PathBuf;

/// Where a configuration value came from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    /// The embedded default.
    Default,
    /// The config file at this path.
    File(PathBuf),
    /// This environment variable.
    Env(String),
    /// This command-line flag (`--db`).
    Flag(&'static str),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Default => f.write_str("default"),
            Self::File(path) => write!(f, "{}", path.display()),
            Self::Env(name) => write!(f, "environment variable {name}"),
            Self::Flag(flag) => write!(f, "flag {flag}"),
        }
    }
}

/// One thing wrong with the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The dotted key at fault (`dispatcher.concurrency`); empty when the
    /// problem is with a whole source (a config file that does not parse).
    pub key: String,
    /// Where the faulty value came from.
    pub source: Source,
    /// What is wrong, and what is allowed.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.source, self.message)
        } else {
            write!(f, "{} (from {}): {}", self.key, self.source, self.message)
        }
    }
}

/// Every problem found while loading the configuration. Its `Display` is a
/// header naming the sources, then one line per problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The config file that was read, if any.
    pub file: Option<PathBuf>,
    /// Every problem, in the order found: file, environment, flags, then
    /// checks across keys.
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        let sources = match &self.file {
            Some(path) => format!("{}, MAILROOM_* variables and flags", path.display()),
            None => "MAILROOM_* variables and flags (no config file)".to_owned(),
        };
        write!(
            f,
            "invalid configuration ({n} problem{} in {sources}):",
            if n == 1 { "" } else { "s" }
        )?;
        for problem in &self.problems {
            write!(f, "\n  - {problem}")?;
        }
        Ok(())
    }
}
