//! Gathering raw values from the config file, the environment and the flags
//! into one layered table, each value tagged with where it came from. Nothing
//! here knows the keys' types: that is `decode.rs`.

use std::collections::BTreeMap;
use std::path::Path;

use toml::Value;

use super::error::{Problem, Source};
use super::{ENV_PREFIX, Overrides};

/// The sections of the config file, in the order they are documented.
pub(super) const SECTIONS: [&str; 8] = [
    "store",
    "plugins",
    "dispatcher",
    "retry",
    "event_types",
    "log",
    "http",
    "plugin",
];

/// One raw value and where it came from.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    pub(super) value: Value,
    pub(super) source: Source,
}

/// Every raw value, a later layer replacing an earlier one key by key.
#[derive(Debug, Default)]
pub(super) struct Layers {
    /// Section name → key → value. Unknown sections are kept so they can be
    /// reported with their source.
    pub(super) sections: BTreeMap<String, BTreeMap<String, Entry>>,
    /// Top-level keys of the file that are not sections (`concurrency = 4`
    /// outside any table) or sections written as plain values.
    pub(super) stray: Vec<(String, Entry)>,
}

impl Layers {
    /// Adds the config file's values. A file that is missing, unreadable or
    /// not TOML is one problem; its values are then simply absent.
    pub(super) fn add_file(&mut self, path: &Path, problems: &mut Vec<Problem>) {
        let source = Source::File(path.to_owned());
        let mut problem = |message: String| {
            problems.push(Problem {
                key: String::new(),
                source: source.clone(),
                message,
            });
        };
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                problem("the config file does not exist: check the path given to --config (or MAILROOM_CONFIG)".to_owned());
                return;
            }
            Err(e) => {
                problem(format!("cannot read the config file: {e}"));
                return;
            }
        };
        let table = match text.parse::<toml::Table>() {
            Ok(table) => table,
            Err(e) => {
                problem(format!(
                    "not valid TOML: {}",
                    describe_parse_error(&text, &e)
                ));
                return;
            }
        };
        for (name, value) in table {
            match value {
                Value::Table(keys) => {
                    let section = self.sections.entry(name).or_default();
                    for (key, value) in keys {
                        section.insert(
                            key,
                            Entry {
                                value,
                                source: source.clone(),
                            },
                        );
                    }
                }
                value => self.stray.push((
                    name,
                    Entry {
                        value,
                        source: source.clone(),
                    },
                )),
            }
        }
    }

    /// Adds `MAILROOM_<SECTION>_<KEY>` variables as text values; `decode.rs`
    /// reads text as the key's type. Variables that are not config keys by
    /// the rule of [`ENV_PREFIX`] are skipped.
    pub(super) fn add_env(&mut self, env: impl IntoIterator<Item = (String, String)>) {
        let mut vars: Vec<(String, String)> = env.into_iter().collect();
        // Report in a stable order whatever order the environment has.
        vars.sort();
        for (name, value) in vars {
            let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            if rest.starts_with("TEST_") {
                continue;
            }
            // Section names have no underscore, so the first one splits.
            let Some((section, key)) = rest.split_once('_') else {
                continue;
            };
            self.sections
                .entry(section.to_ascii_lowercase())
                .or_default()
                .insert(
                    key.to_ascii_lowercase(),
                    Entry {
                        value: Value::String(value),
                        source: Source::Env(name.clone()),
                    },
                );
        }
    }

    /// Adds the command-line flags that were given.
    pub(super) fn add_overrides(&mut self, overrides: &Overrides, problems: &mut Vec<Problem>) {
        let path = |p: &Path| Value::String(p.to_string_lossy().into_owned());
        if let Some(p) = &overrides.store_path {
            self.set("store", "path", path(p), "--db");
            // A file named on the command line wins over a URL from the
            // file or the environment.
            if let Some(store) = self.sections.get_mut("store") {
                store.remove("url");
            }
        }
        if let Some(url) = &overrides.store_url {
            self.set("store", "url", Value::String(url.clone()), "--store");
        }
        if let Some(p) = &overrides.plugins_dir {
            self.set("plugins", "dir", path(p), "--plugins");
        }
        if let Some(n) = overrides.concurrency {
            match i64::try_from(n) {
                Ok(n) => self.set(
                    "dispatcher",
                    "concurrency",
                    Value::Integer(n),
                    "--concurrency",
                ),
                Err(_) => problems.push(Problem {
                    key: "dispatcher.concurrency".into(),
                    source: Source::Flag("--concurrency"),
                    message: format!("{n} is too large"),
                }),
            }
        }
        if let Some(format) = overrides.log_format {
            self.set(
                "log",
                "format",
                Value::String(format.as_str().into()),
                "--log-format",
            );
        }
        if let Some(addr) = overrides.http_listen {
            self.set(
                "http",
                "listen",
                Value::String(addr.to_string()),
                "--http-listen",
            );
        }
    }

    fn set(&mut self, section: &str, key: &str, value: Value, flag: &'static str) {
        self.sections.entry(section.to_owned()).or_default().insert(
            key.to_owned(),
            Entry {
                value,
                source: Source::Flag(flag),
            },
        );
    }
}

/// A TOML syntax error on one line: "line 3, column 7: <what>".
fn describe_parse_error(text: &str, error: &toml::de::Error) -> String {
    let what = error.message().trim_end().replace('\n', " ");
    match error.span() {
        Some(span) => {
            let before = text.get(..span.start).unwrap_or(text);
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("line {line}, column {column}: {what}")
        }
        None => what,
    }
}
