//! Where the messages this connection claimed are stored: the `seq` of
//! each until it is settled or released, so an ack removes its rows by the
//! table's own key in one statement, instead of first finding them through
//! the id index (a benchmark-driven choice: see docs/BENCHMARKS.md).
//!
//! Only a hint. The statement that uses one still checks the state and the
//! lease token, and a hint that finds fewer rows held than it names (a lease
//! lost meanwhile) sends the settle back to reading each claim first.

use std::collections::HashMap;

use crate::message::MessageId;

/// Hints kept at most: past it they are all dropped, so a caller that claims
/// and never settles cannot grow them without bound (its acks then read
/// their rows first, as without hints).
const MAX_HINTS: usize = 1 << 16;

/// The `seq` of each message this connection claimed and has not settled.
#[derive(Debug, Default)]
pub(super) struct ClaimedRows {
    seqs: HashMap<MessageId, i64>,
}

impl ClaimedRows {
    /// Remembers that `id` was claimed at row `seq`.
    pub(super) fn insert(&mut self, id: MessageId, seq: i64) {
        if self.seqs.len() >= MAX_HINTS {
            self.seqs.clear();
        }
        self.seqs.insert(id, seq);
    }

    /// The row `id` was claimed at, forgotten as it is answered.
    pub(super) fn remove(&mut self, id: &MessageId) -> Option<i64> {
        self.seqs.remove(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hint_is_answered_once_and_the_hints_stay_bounded() {
        let mut rows = ClaimedRows::default();
        let first = MessageId::new();
        rows.insert(first, 7);
        assert_eq!(rows.remove(&first), Some(7));
        assert_eq!(rows.remove(&first), None);
        for seq in 0..=i64::try_from(MAX_HINTS).expect("fits") {
            rows.insert(MessageId::new(), seq);
        }
        assert!(rows.seqs.len() <= MAX_HINTS);
    }
}
