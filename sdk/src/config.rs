//! The plugin's configuration: string values its operator sets per plugin.
//!
//! ```toml
//! # the host's mailroom.toml
//! [plugin.webhook.config]
//! url = "https://hooks.example.com/orders"
//! secret = "${WEBHOOK_SECRET}"   # taken from the host's environment, never shown
//! ```
//!
//! ```
//! let url = mailroom_sdk::config::get("url");
//! # let _ = url;
//! ```
//!
//! Read values where they are used (once per delivery is cheap): an operator
//! may change them while the host runs, and the next delivery sees the change.
//! Outside a host, values come from [`testing::set_config`](crate::testing::set_config).

/// The value of `key` in this plugin's configuration, or `None` when the
/// operator did not set it.
pub fn get(key: &str) -> Option<String> {
    crate::host::config_get(key)
}

/// The value of `key`, or a fatal [`Error`](crate::Error) naming the missing
/// key: for values a plugin cannot work without.
///
/// # Errors
///
/// A fatal error when the operator did not set `key`.
pub fn require(key: &str) -> Result<String, crate::Error> {
    get(key).ok_or_else(|| {
        crate::Error::fatal(format!(
            "the configuration value {key:?} is not set: the operator sets it under [plugin.<name>.config] in the host's configuration"
        ))
    })
}
