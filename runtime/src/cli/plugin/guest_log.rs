//! The plugin's log lines during `mailroom plugin run`: every event the host
//! logs for the guest (`logging.log`, stdout, stderr; target
//! [`GUEST_TARGET`]) is kept, in order, to be shown with the outcome.

use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;

use crate::plugin::GUEST_TARGET;

/// One line the plugin logged or printed.
#[derive(Debug, Clone, Serialize)]
pub(super) struct GuestLine {
    /// `trace`, `debug`, `info`, `warn` or `error`.
    pub(super) level: String,
    /// `log` for `logging.log`, else `stdout` or `stderr`.
    pub(super) stream: String,
    pub(super) message: String,
}

/// A layer that keeps the guest's lines; clones share them.
#[derive(Debug, Clone, Default)]
pub(super) struct GuestLog(Arc<Mutex<Vec<GuestLine>>>);

impl GuestLog {
    /// The lines so far.
    pub(super) fn lines(&self) -> Vec<GuestLine> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

impl<S: Subscriber> Layer<S> for GuestLog {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let metadata = event.metadata();
        if metadata.target() != GUEST_TARGET {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(GuestLine {
                level: metadata.level().as_str().to_ascii_lowercase(),
                stream: fields.stream.unwrap_or_else(|| "log".to_owned()),
                message: fields.message,
            });
    }
}

#[derive(Default)]
struct Fields {
    message: String,
    stream: Option<String>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => value.clone_into(&mut self.message),
            "stream" => self.stream = Some(value.to_owned()),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => self.message = format!("{value:?}"),
            "stream" => self.stream = Some(format!("{value:?}")),
            _ => {}
        }
    }
}
