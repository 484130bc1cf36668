//! Mailroom's mailbox API with the native handler: no wasm, no dispatcher.
//! Batched enqueues, then claim batches acked in one transaction each: the
//! same work as the ceiling, through Mailroom's API and schema. Or, as the
//! host does on SQLite, each batch's last ack transaction claims the next.

use std::path::Path;
use std::time::{Duration, Instant};

use mailroom::store::sqlite::Mailbox;
use mailroom::store::{Durability, OpenOptions, Settlement, StoreError, TypeCaps};
use mailroom::message::NewMessage;

use crate::ceiling::Phases;
use crate::workload::{EVENT_TYPE, handle_natively, payload};

/// How acks are committed.
#[derive(Debug, Clone, Copy)]
pub struct AckShape {
    /// Outcomes per settle transaction.
    pub group: usize,
    /// Whether each ack commits a follow-up message, as the order-validator's do.
    pub follow_up: bool,
    /// Whether the next batch is claimed in the transaction of the last
    /// group of acks (`settle_and_claim`), as the host does on SQLite.
    pub claim_in_commit: bool,
}

/// Runs the mailbox over `messages` messages in `dir`, acking as `shape` says.
pub fn run(
    dir: &Path,
    messages: usize,
    enqueue_batch: usize,
    claim_batch: usize,
    shape: AckShape,
) -> Result<Phases, StoreError> {
    let path = dir.join("mailbox.db");
    let mut ingest = Mailbox::open(&path)?;
    let options = OpenOptions {
        durability: Durability::Fast,
        ..OpenOptions::default()
    };
    let mut worker = Mailbox::open_with(&path, &options)?;

    let started = Instant::now();
    let mut n = 0;
    while n < messages {
        let batch: Vec<NewMessage> = (n..(n + enqueue_batch).min(messages))
            .map(|i| NewMessage::new(EVENT_TYPE, payload(i)))
            .collect();
        n += batch.len();
        ingest.enqueue_batch(batch)?;
    }
    let enqueue = started.elapsed();

    let ack = Settlement::Ack {
        follow_ups: if shape.follow_up {
            vec![NewMessage::new("order.accepted", payload(0))]
        } else {
            Vec::new()
        },
    };
    let started = Instant::now();
    let cpu = crate::thread_cpu::now();
    let lease = Duration::from_secs(60);
    let mut claimed = worker.claim(claim_batch, lease, &[EVENT_TYPE])?;
    while !claimed.is_empty() {
        let settlements: Vec<_> = claimed
            .iter()
            .map(|c| {
                std::hint::black_box(handle_natively(&c.payload));
                (c, &ack, None)
            })
            .collect();
        let groups: Vec<_> = settlements.chunks(shape.group.max(1)).collect();
        let mut next = None;
        for (i, group) in groups.iter().enumerate() {
            let results = if shape.claim_in_commit && i + 1 == groups.len() {
                let (results, more) =
                    worker.settle_and_claim(group, claim_batch, lease, &[EVENT_TYPE], &TypeCaps::new())?;
                next = Some(more);
                results
            } else {
                worker.settle(group)?
            };
            for result in results {
                result?;
            }
        }
        claimed = match next {
            Some(more) => more,
            None => worker.claim(claim_batch, lease, &[EVENT_TYPE])?,
        };
    }
    Ok(Phases {
        enqueue,
        process: started.elapsed(),
        process_cpu: crate::thread_cpu::since(cpu),
    })
}
