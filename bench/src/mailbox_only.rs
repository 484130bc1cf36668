//! Mailroom's mailbox API with the native handler: no wasm, no dispatcher.
//! Batched enqueues, then claim batches acked in one transaction each: the
//! same work as the ceiling, through Mailroom's API and schema.

use std::path::Path;
use std::time::{Duration, Instant};

use mailroom::mailbox::{Durability, Mailbox, MailboxError, OpenOptions, Settlement};
use mailroom::message::NewMessage;

use crate::ceiling::Phases;
use crate::workload::{EVENT_TYPE, handle_natively, payload};

/// Runs the mailbox over `messages` messages in `dir`.
pub fn run(
    dir: &Path,
    messages: usize,
    enqueue_batch: usize,
    claim_batch: usize,
) -> Result<Phases, MailboxError> {
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

    // Every message is acked, without follow-ups (the ceiling emits none).
    let ack = Settlement::Ack {
        follow_ups: Vec::new(),
    };
    let started = Instant::now();
    loop {
        let claimed = worker.claim(claim_batch, Duration::from_secs(60), &[EVENT_TYPE])?;
        if claimed.is_empty() {
            break;
        }
        let settlements: Vec<_> = claimed
            .iter()
            .map(|c| {
                std::hint::black_box(handle_natively(&c.payload));
                (c, &ack, None)
            })
            .collect();
        for result in worker.settle(settlements)? {
            result?;
        }
    }
    Ok(Phases {
        enqueue,
        process: started.elapsed(),
    })
}
