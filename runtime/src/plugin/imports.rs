//! The host's own imports: `logging.log` (and `log-filter.enabled`, which
//! says whether it would keep a line), `emitter.emit` (and its 0.1.2 twin
//! `follow-ups.emit`) and `config.get`.
//!
//! They return `wasmtime::Result<..>`: an `Err` traps the guest, an inner
//! `Err` (the WIT `emit-error`) is handed to the guest to handle. Everything
//! a guest can get wrong by mistake is an `emit-error`; an emitted key the
//! store could never accept traps with [`InvalidEmit`], which fails the
//! delivery as fatal because retrying cannot fix it.

use std::time::Duration;

use crate::message::{self, MAX_LABEL_LEN, Priority};

use super::bindings::mailroom::plugin::{config, emitter, follow_ups, log_filter, logging, types};
use super::bindings::{EmitError, EmitRefusal, Level, OutgoingEvent};
use super::delivery::{Emitted, truncate_reason};
use super::guest_io::GUEST_TARGET;
use super::sandbox::MAX_LINE_BYTES;
use super::store::StoreState;

/// An emitted event the host refuses in a way the WIT `emit-error` cannot
/// express. It traps the call, and the delivery fails as fatal.
#[derive(Debug, thiserror::Error)]
#[error("emitted event #{index} has an invalid key: {reason}")]
pub(crate) struct InvalidEmit {
    index: usize,
    reason: String,
}

impl types::Host for StoreState {}

impl config::Host for StoreState {
    fn get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        Ok(self
            .outbound
            .access()
            .config
            .get(&key)
            .map(|value| value.expose().to_owned()))
    }
}

impl logging::Host for StoreState {
    fn log(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        let call = &mut self.call;
        call.log_lines = call.log_lines.saturating_add(1);
        if call.log_lines > call.max_log_lines {
            if call.log_lines == call.max_log_lines.saturating_add(1) {
                tracing::warn!(
                    target: GUEST_TARGET,
                    plugin = %call.plugin,
                    message_id = %call.id,
                    "more than {} log lines for this call: the rest are dropped",
                    call.max_log_lines,
                );
            }
            return Ok(());
        }
        let message = truncate_reason(message, MAX_LINE_BYTES);
        let (plugin, id) = (&call.plugin, &call.id);
        match level {
            Level::Trace => {
                tracing::trace!(target: GUEST_TARGET, plugin = %plugin, message_id = %id, "{message}");
            }
            Level::Debug => {
                tracing::debug!(target: GUEST_TARGET, plugin = %plugin, message_id = %id, "{message}");
            }
            Level::Info => {
                tracing::info!(target: GUEST_TARGET, plugin = %plugin, message_id = %id, "{message}");
            }
            Level::Warn => {
                tracing::warn!(target: GUEST_TARGET, plugin = %plugin, message_id = %id, "{message}");
            }
            Level::Error => {
                tracing::error!(target: GUEST_TARGET, plugin = %plugin, message_id = %id, "{message}");
            }
        }
        Ok(())
    }
}

impl log_filter::Host for StoreState {
    /// What `log` would do with a line of `level` now, without the line:
    /// whether the host's filter lets the level through for a guest's line,
    /// and whether this call still has lines left. The first line past the
    /// cap still counts as kept, since writing it logs that the rest are
    /// dropped.
    fn enabled(&mut self, level: Level) -> wasmtime::Result<bool> {
        if self.call.log_lines > self.call.max_log_lines {
            return Ok(false);
        }
        Ok(match level {
            Level::Trace => {
                tracing::event_enabled!(target: GUEST_TARGET, tracing::Level::TRACE, plugin, message_id)
            }
            Level::Debug => {
                tracing::event_enabled!(target: GUEST_TARGET, tracing::Level::DEBUG, plugin, message_id)
            }
            Level::Info => {
                tracing::event_enabled!(target: GUEST_TARGET, tracing::Level::INFO, plugin, message_id)
            }
            Level::Warn => {
                tracing::event_enabled!(target: GUEST_TARGET, tracing::Level::WARN, plugin, message_id)
            }
            Level::Error => {
                tracing::event_enabled!(target: GUEST_TARGET, tracing::Level::ERROR, plugin, message_id)
            }
        })
    }
}

/// Why the host refused an emitted event: one decision, reported to a
/// guest through whichever `emit` it imports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    InvalidEventType(String),
    PayloadTooLarge(u64),
    TooManyEvents(u32),
    TooManyBytes(u64),
    ChainTooDeep(u32),
}

impl From<Refusal> for EmitRefusal {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::InvalidEventType(reason) => EmitRefusal::InvalidEventType(reason),
            Refusal::PayloadTooLarge(limit) => EmitRefusal::PayloadTooLarge(limit),
            Refusal::TooManyEvents(limit) => EmitRefusal::TooManyEvents(limit),
            Refusal::TooManyBytes(limit) => EmitRefusal::TooManyBytes(limit),
            Refusal::ChainTooDeep(depth) => EmitRefusal::ChainTooDeep(depth),
        }
    }
}

/// A plugin built before 0.1.2 knows only the 0.1.0 cases: the newer
/// refusals are reported as the nearest of them (and stay fatal through the
/// SDK's `?`, as the newer ones are).
impl From<Refusal> for EmitError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::InvalidEventType(reason) => EmitError::InvalidEventType(reason),
            Refusal::PayloadTooLarge(limit) | Refusal::TooManyBytes(limit) => {
                EmitError::PayloadTooLarge(limit)
            }
            Refusal::TooManyEvents(limit) => EmitError::TooManyEvents(limit),
            Refusal::ChainTooDeep(_) => EmitError::TooManyEvents(0),
        }
    }
}

impl StoreState {
    /// Checks `event` against the delivery's limits and buffers it.
    ///
    /// The cheap counts come first, so a guest past a limit learns it
    /// without the host looking at (or keeping) another payload: what one
    /// delivery can make the host hold is `max_emit_bytes` of payloads plus
    /// `max_emits` small records.
    fn emit_checked(&mut self, event: OutgoingEvent) -> wasmtime::Result<Result<(), Refusal>> {
        let call = &mut self.call;
        if call.depth >= call.max_chain_depth {
            call.chain_refused = true;
            return Ok(Err(Refusal::ChainTooDeep(call.depth)));
        }
        let max_emits = call.max_emits;
        if call.emitted.len() >= usize::try_from(max_emits).unwrap_or(usize::MAX) {
            return Ok(Err(Refusal::TooManyEvents(max_emits)));
        }
        if let Err(e) = message::validate_event_type(&event.event_type) {
            return Ok(Err(Refusal::InvalidEventType(e.to_string())));
        }
        if event.payload.len() > call.max_payload_bytes {
            let limit = u64::try_from(call.max_payload_bytes).unwrap_or(u64::MAX);
            return Ok(Err(Refusal::PayloadTooLarge(limit)));
        }
        let bytes = call.emitted_bytes.saturating_add(event.payload.len());
        if bytes > call.max_emit_bytes {
            let limit = u64::try_from(call.max_emit_bytes).unwrap_or(u64::MAX);
            return Ok(Err(Refusal::TooManyBytes(limit)));
        }
        if let Some(key) = &event.key
            && (key.is_empty() || key.len() > MAX_LABEL_LEN)
        {
            return Err(wasmtime::Error::new(InvalidEmit {
                index: call.emitted.len() + 1,
                reason: format!(
                    "a key must be 1 to {MAX_LABEL_LEN} bytes long, this one is {} bytes",
                    key.len()
                ),
            }));
        }
        call.emitted_bytes = bytes;
        call.emitted.push(Emitted {
            event_type: event.event_type,
            payload: event.payload,
            key: event.key,
            priority: match event.priority {
                types::Priority::Low => Priority::Low,
                types::Priority::Normal => Priority::Normal,
                types::Priority::High => Priority::High,
            },
            delay: Duration::from_millis(event.delay_ms),
        });
        Ok(Ok(()))
    }
}

impl emitter::Host for StoreState {
    fn emit(&mut self, event: OutgoingEvent) -> wasmtime::Result<Result<(), EmitError>> {
        Ok(self.emit_checked(event)?.map_err(EmitError::from))
    }
}

impl follow_ups::Host for StoreState {
    fn emit(&mut self, event: OutgoingEvent) -> wasmtime::Result<Result<(), EmitRefusal>> {
        Ok(self.emit_checked(event)?.map_err(EmitRefusal::from))
    }
}
