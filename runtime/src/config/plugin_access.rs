//! `[plugin.<name>]` tables: what the operator opens to one plugin, by the
//! name `mailroom plugins` shows. Decoded apart from the other sections
//! because their keys are plugin names, not fixed keys.
//!
//! ```toml
//! [plugin.webhook]
//! allowed_outbound_hosts = ["https://hooks.example.com", "http://127.0.0.1:9000"]
//!
//! [plugin.webhook.config]
//! url = "http://127.0.0.1:9000/hooks"
//! secret = "${WEBHOOK_SECRET}"   # from the host's environment: a secret
//! ```
//!
//! A value with `${NAME}` in it takes the environment variable `NAME` in its
//! place and is a secret from then on: it is never logged or shown. A
//! variable that is not set is a configuration problem naming it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use toml::Value;

use super::decode::quote_key;
use super::error::{Problem, Source};
use super::sources::Entry;
use crate::plugin::{AccessByPlugin, AllowedOrigin, ConfigValue, PluginAccess};

/// `[plugin.<name>]`: one plugin's outbound origins and configuration, as
/// written (references to environment variables not yet replaced, so this
/// holds no secret).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PluginEntry {
    /// The origins the plugin's HTTP requests may reach, e.g.
    /// `"https://hooks.example.com"`, `"https://*.example.com"`,
    /// `"http://127.0.0.1:9000"`. Empty (the default) refuses every request.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allowed_outbound_hosts: Vec<String>,
    /// `[plugin.<name>.config]`: what the plugin reads with `config.get`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,
}

/// Reads the environment variables that `${NAME}` references name.
pub(super) type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Decodes every `[plugin.<name>]` table, recording problems.
pub(super) fn decode(
    entries: BTreeMap<String, Entry>,
    env: EnvLookup<'_>,
    problems: &mut Vec<Problem>,
) -> BTreeMap<String, PluginEntry> {
    let mut out = BTreeMap::new();
    for (name, entry) in entries {
        let path = format!("plugin.{}", quote_key(&name));
        let mut problem = |key: String, message: String| {
            problems.push(Problem {
                key,
                source: entry.source.clone(),
                message,
            });
        };
        if matches!(entry.source, Source::Env(_)) {
            problem(
                path,
                "has no environment form: open capabilities to plugins in the config file, under [plugin.<name>]".into(),
            );
            continue;
        }
        let Value::Table(mut fields) = entry.value.clone() else {
            problem(
                path,
                "expected a table per plugin, e.g. [plugin.webhook] with allowed_outbound_hosts and [plugin.webhook.config]".into(),
            );
            continue;
        };
        let mut plugin = PluginEntry::default();
        match fields.remove("allowed_outbound_hosts") {
            None => {}
            Some(Value::Array(hosts)) => {
                for host in hosts {
                    let key = format!("{path}.allowed_outbound_hosts");
                    match host {
                        Value::String(host) => match host.parse::<AllowedOrigin>() {
                            Ok(_) => plugin.allowed_outbound_hosts.push(host),
                            Err(e) => problem(key, e.to_string()),
                        },
                        other => problem(
                            key,
                            format!(
                                "{other} is not valid: expected text such as \"https://hooks.example.com\""
                            ),
                        ),
                    }
                }
            }
            Some(_) => problem(
                format!("{path}.allowed_outbound_hosts"),
                "expected a list of origins, e.g. [\"https://hooks.example.com\"]".into(),
            ),
        }
        match fields.remove("config") {
            None => {}
            Some(Value::Table(values)) => {
                for (key, value) in values {
                    let dotted = format!("{path}.config.{}", quote_key(&key));
                    let Value::String(text) = value else {
                        problem(
                            dotted,
                            "is not valid: expected text (every configuration value is a string)"
                                .into(),
                        );
                        continue;
                    };
                    match substitute(&text, env) {
                        Ok(_) => {
                            plugin.config.insert(key, text);
                        }
                        Err(e) => problem(dotted, e),
                    }
                }
            }
            Some(_) => problem(
                format!("{path}.config"),
                "expected a table of string values, e.g. [plugin.webhook.config] url = \"…\""
                    .into(),
            ),
        }
        for key in fields.keys() {
            problem(
                format!("{path}.{}", quote_key(key)),
                format!("unknown key: [{path}] accepts allowed_outbound_hosts, config"),
            );
        }
        out.insert(name, plugin);
    }
    out
}

/// Every plugin's access: origins parsed, `${NAME}` references replaced by
/// their variables' values (secrets from then on). The entries were checked
/// when the configuration was loaded; an entry or value that no longer
/// checks (a variable unset since) is left out and logged.
pub(super) fn resolve(
    entries: &BTreeMap<String, PluginEntry>,
    env: EnvLookup<'_>,
) -> AccessByPlugin {
    let mut out = AccessByPlugin::new();
    for (name, entry) in entries {
        let mut access = PluginAccess::default();
        for host in &entry.allowed_outbound_hosts {
            match host.parse() {
                Ok(origin) => access.allowed_outbound_hosts.push(origin),
                Err(e) => tracing::error!(plugin = %name, "allowed_outbound_hosts: {e}"),
            }
        }
        for (key, text) in &entry.config {
            match substitute(text, env) {
                Ok((value, true)) => {
                    access
                        .config
                        .insert(key.clone(), ConfigValue::secret(value));
                }
                Ok((value, false)) => {
                    access.config.insert(key.clone(), ConfigValue::plain(value));
                }
                Err(e) => tracing::error!(plugin = %name, "config.{key} {e}"),
            }
        }
        out.insert(name.clone(), access);
    }
    out
}

/// `text` with each `${NAME}` replaced by the variable `NAME`, and whether
/// any was (which makes the value a secret).
fn substitute(text: &str, env: EnvLookup<'_>) -> Result<(String, bool), String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut secret = false;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err("has \"${\" without a closing \"}\": write ${NAME} to take the environment variable NAME".into());
        };
        let name = &after[..end];
        let valid = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(format!(
                "references ${{{name}}}, which is not an environment variable name (letters, digits and _)"
            ));
        }
        match env(name) {
            Some(value) => out.push_str(&value),
            None => {
                return Err(format!(
                    "references the environment variable {name}, which is not set: set it in the host's environment"
                ));
            }
        }
        secret = true;
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok((out, secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "WEBHOOK_SECRET").then(|| "s3cret".to_owned())
    }

    #[test]
    fn references_are_replaced_and_make_a_secret() {
        assert_eq!(substitute("plain", &env), Ok(("plain".into(), false)));
        assert_eq!(
            substitute("Bearer ${WEBHOOK_SECRET}!", &env),
            Ok(("Bearer s3cret!".into(), true))
        );
        let missing = substitute("${NOT_SET}", &env).expect_err("unset");
        assert!(missing.contains("NOT_SET"), "{missing}");
        assert!(substitute("${OPEN", &env).is_err());
        assert!(substitute("${1X}", &env).is_err());
    }
}
