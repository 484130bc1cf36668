//! The trait a plugin implements and the macro that exports it.

use crate::wit::mailroom::plugin::types as wit;
use crate::{Error, Event};

/// A Mailroom handler plugin. Implement it on a unit struct and export the
/// struct with [`export_plugin!`](crate::export_plugin).
///
/// The host creates a fresh instance for every delivery, so a plugin keeps no
/// state between events: anything that must survive goes into follow-up
/// events.
pub trait Plugin {
    /// The plugin's name, shown by `mailroom plugins` and in the host log.
    const NAME: &'static str;

    /// The event types this plugin handles: at least one, each non-empty, at
    /// most 255 bytes of `[A-Za-z0-9._:-]`. An event type has one handler
    /// across all loaded plugins: the host refuses a plugin that claims a type
    /// another plugin already owns.
    const EVENT_TYPES: &'static [&'static str];

    /// Handles one delivery of an event of one of [`Plugin::EVENT_TYPES`].
    ///
    /// # Errors
    ///
    /// [`Error::retry`] (or any error converted by `?`, see [`Error`]) to try
    /// again later; [`Error::fatal`] to dead-letter the event at once. Events
    /// emitted during a failed call are discarded. A panic counts as a
    /// retryable failure, and its message reaches the host log.
    fn handle(event: Event) -> Result<(), Error>;
}

/// Exports a [`Plugin`] as the component's `mailroom:plugin/handler` world.
/// Use it once per plugin crate, with the name of a type in scope (not a path).
///
/// The name, the version and the event types are checked against the host's
/// rules while the plugin compiles (a name that is empty or over 255 bytes,
/// an event type with a character outside `[A-Za-z0-9._:-]`, ...): a plugin
/// the host would refuse is a compile error naming the rule and the value.
///
/// The version the host shows is the crate's `version` from `Cargo.toml`,
/// unless given explicitly (a constant expression):
///
/// ```
/// # use mailroom_sdk::{Error, Event, Plugin};
/// # struct Greeter;
/// # impl Plugin for Greeter {
/// #     const NAME: &'static str = "greeter";
/// #     const EVENT_TYPES: &'static [&'static str] = &["greeting.requested"];
/// #     fn handle(_: Event) -> Result<(), Error> { Ok(()) }
/// # }
/// mailroom_sdk::export_plugin!(Greeter, version = "1.2.3");
/// ```
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ident $(,)?) => {
        $crate::export_plugin!($plugin, version = ::core::env!("CARGO_PKG_VERSION"));
    };
    ($plugin:ident, version = $version:expr $(,)?) => {
        // The host's rules for the name, version and event types, checked
        // while compiling: a plugin the host would refuse does not build.
        const _: () = $crate::__private::check_info(
            <$plugin as $crate::Plugin>::NAME,
            $version,
            <$plugin as $crate::Plugin>::EVENT_TYPES,
        );

        // The bindings' export machinery writes `unsafe extern "C"` glue.
        #[allow(unsafe_code)]
        const _: () = {
            impl $crate::wit::exports::mailroom::plugin::plugin::Guest for $plugin {
                fn info() -> $crate::wit::mailroom::plugin::types::PluginInfo {
                    $crate::__private::info::<$plugin>($version)
                }

                fn handle(
                    event: $crate::wit::mailroom::plugin::types::Event,
                ) -> ::core::result::Result<(), $crate::wit::mailroom::plugin::types::HandlerError>
                {
                    $crate::__private::handle::<$plugin>(event)
                }
            }

    $crate::wit::export!($plugin with_types_in $crate::wit);
        };
    };
}

/// What [`export_plugin!`](crate::export_plugin) expands to calls; not part
/// of the API.
#[doc(hidden)]
pub mod __private {
    use super::*;

    pub use crate::checks::plugin_info as check_info;

    pub fn info<P: Plugin>(version: &str) -> wit::PluginInfo {
        wit::PluginInfo {
            name: P::NAME.to_owned(),
            version: version.to_owned(),
            event_types: P::EVENT_TYPES.iter().map(|&t| t.to_owned()).collect(),
        }
    }

    pub fn handle<P: Plugin>(event: wit::Event) -> Result<(), wit::HandlerError> {
        P::handle(Event::from(event)).map_err(Error::into_wit)
    }
}
