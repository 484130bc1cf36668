//! One delivery: a claimed message handed to its plugin, and the outcome
//! turned into a settlement for the mailbox.

use std::time::{Duration, Instant};

use crate::store::{Claimed, SettleEntry, Settlement};
use crate::message::NewMessage;
use crate::plugin::{Delivery, Emitted, Outcome, Plugin};
use crate::state_machine::Failure;

/// A finished delivery, waiting to be committed.
pub(crate) struct Finished {
    pub(crate) claimed: Claimed,
    pub(crate) settlement: Settlement,
    /// The plugin version that ran it (its name and digest go into the
    /// metrics, the log and the attempt's record): a handle, not copies of
    /// its strings per delivery.
    pub(crate) plugin: Plugin,
    pub(crate) took: Duration,
    /// The share of the dispatcher's follow-up budget this outcome holds
    /// until it is committed (see `Dispatcher::run`).
    pub(crate) held: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl Finished {
    /// The payload bytes of the follow-ups it would commit.
    pub(crate) fn follow_up_bytes(&self) -> usize {
        match &self.settlement {
            Settlement::Ack { follow_ups } => follow_ups.iter().map(|m| m.payload.len()).sum(),
            Settlement::Fail(_) => 0,
        }
    }
}

impl SettleEntry for Finished {
    fn claimed(&self) -> &Claimed {
        &self.claimed
    }
    fn settlement(&self) -> &Settlement {
        &self.settlement
    }
    fn digest(&self) -> Option<&str> {
        Some(self.plugin.digest())
    }
}

/// Runs one delivery on `plugin`. Never fails: every failure is a settlement.
pub(crate) async fn deliver(plugin: Plugin, mut claimed: Claimed) -> Finished {
    let started = Instant::now();
    let delivery = Delivery {
        id: claimed.id(),
        event_type: claimed.event_type.clone(),
        key: claimed.key.clone(),
        source: claimed.source.clone(),
        correlation_id: claimed.correlation_id.clone(),
        // Settling needs the lease, not the payload: hand the bytes over.
        payload: std::mem::take(&mut claimed.payload),
        attempt: claimed.attempts,
        max_attempts: claimed.max_attempts,
        created_at_ms: claimed.created_at,
        depth: claimed.depth,
    };
    // `Plugin::handle` runs in a span naming the plugin, message, type and
    // attempt. Boxed, so the task spawned per delivery moves a few hundred
    // bytes rather than the whole call's state (a copy the profile showed).
    let outcome = Box::pin(plugin.handle(delivery)).await;
    let settlement = match outcome {
        Outcome::Success { emitted } => Settlement::Ack {
            follow_ups: emitted
                .into_iter()
                .map(|e| follow_up(e, plugin.name()))
                .collect(),
        },
        Outcome::Retry { reason, after } => Settlement::Fail(Failure::Retry { reason, after }),
        Outcome::Fatal { reason } => Settlement::Fail(Failure::Fatal { reason }),
    };
    Finished {
        claimed,
        settlement,
        plugin,
        took: started.elapsed(),
        held: None,
    }
}

/// An emitted event as a message: its correlation id is inherited from the
/// message being handled (when the mailbox commits it), its source names
/// the plugin.
fn follow_up(emitted: Emitted, plugin: &str) -> NewMessage {
    NewMessage {
        event_type: emitted.event_type,
        payload: emitted.payload,
        key: emitted.key,
        source: Some(format!("plugin:{plugin}")),
        correlation_id: None,
        priority: emitted.priority,
        delay: emitted.delay,
        max_attempts: None,
    }
}
