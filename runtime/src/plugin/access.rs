//! What an operator opened to one plugin, by its name (`[plugin.<name>]`):
//! the origins it may send HTTP requests to and the configuration values it
//! may read. A plugin without an entry gets neither: every request is
//! refused and every `config.get` answers `none`.
//!
//! Each delivery reads the entry current when it starts, so a new entry
//! ([`PluginHost::set_access`](super::PluginHost::set_access)) applies from
//! the next delivery on, without reloading the plugin.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use super::outbound::AllowedOrigin;

/// The capabilities opened to one plugin.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PluginAccess {
    /// The origins its outbound HTTP requests may reach; empty refuses all.
    pub allowed_outbound_hosts: Vec<AllowedOrigin>,
    /// What `config.get(key)` answers.
    pub config: BTreeMap<String, ConfigValue>,
}

/// Every plugin's [`PluginAccess`], by plugin name.
pub type AccessByPlugin = BTreeMap<String, PluginAccess>;

/// One configuration value. A value taken from the environment
/// (`"${WEBHOOK_SECRET}"`) is a secret: its `Debug` and `Display` print
/// `<secret>`, so it cannot reach a log line, an error or a listing by
/// accident.
#[derive(Clone, PartialEq, Eq)]
pub struct ConfigValue {
    value: String,
    secret: bool,
}

impl ConfigValue {
    /// A value written in the configuration as is.
    pub fn plain(value: impl Into<String>) -> Self {
        Self {
            value: value.into(),
            secret: false,
        }
    }

    /// A value that must never be shown.
    pub fn secret(value: impl Into<String>) -> Self {
        Self {
            value: value.into(),
            secret: true,
        }
    }

    /// The value itself, for the plugin that reads it.
    pub fn expose(&self) -> &str {
        &self.value
    }

    /// Whether the value is a secret.
    pub fn is_secret(&self) -> bool {
        self.secret
    }
}

impl fmt::Debug for ConfigValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.secret {
            f.write_str("<secret>")
        } else {
            fmt::Debug::fmt(&self.value, f)
        }
    }
}

impl fmt::Display for ConfigValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.secret {
            f.write_str("<secret>")
        } else {
            f.write_str(&self.value)
        }
    }
}

/// The entries of a host, swapped whole when the operator changes them.
#[derive(Debug, Default)]
pub(crate) struct AccessTable {
    entries: std::sync::RwLock<BTreeMap<String, Arc<PluginAccess>>>,
    /// What a plugin without an entry gets: nothing.
    none: Arc<PluginAccess>,
}

impl AccessTable {
    pub(crate) fn new(entries: AccessByPlugin) -> Self {
        let table = Self::default();
        table.replace(entries);
        table
    }

    pub(crate) fn replace(&self, entries: AccessByPlugin) {
        let entries = entries
            .into_iter()
            .map(|(name, access)| (name, Arc::new(access)))
            .collect();
        *self
            .entries
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = entries;
    }

    /// The entry of `plugin` now (empty when it has none).
    pub(crate) fn get(&self, plugin: &str) -> Arc<PluginAccess> {
        self.entries
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(plugin)
            .unwrap_or(&self.none)
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let secret = ConfigValue::secret("hunter2");
        assert_eq!(format!("{secret} {secret:?}"), "<secret> <secret>");
        let access = PluginAccess {
            allowed_outbound_hosts: Vec::new(),
            config: BTreeMap::from([("secret".to_owned(), secret.clone())]),
        };
        assert!(!format!("{access:?}").contains("hunter2"));
        assert_eq!(secret.expose(), "hunter2");
        assert_eq!(format!("{:?}", ConfigValue::plain("url")), "\"url\"");
    }
}
