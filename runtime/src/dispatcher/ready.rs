//! Claimed messages waiting for a delivery slot, in claim order, with a
//! count per event type: the types waiting are known without reading the
//! whole batch, so a free slot is filled without a scan of it (`fair`).

use std::collections::{HashMap, VecDeque};

use crate::store::Claimed;

#[derive(Debug, Default)]
pub(crate) struct Ready {
    queue: VecDeque<Claimed>,
    by_type: HashMap<String, usize>,
}

impl Ready {
    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// The messages waiting, in claim order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Claimed> {
        self.queue.iter()
    }

    /// The event types waiting: how many messages of each.
    pub(crate) fn types(&self) -> impl Iterator<Item = (&str, usize)> {
        self.by_type.iter().map(|(t, n)| (t.as_str(), *n))
    }

    /// Adds a claim's messages behind those waiting.
    pub(crate) fn extend(&mut self, claimed: Vec<Claimed>) {
        for c in &claimed {
            // The type's name is copied once per type, not per message.
            match self.by_type.get_mut(&c.event_type) {
                Some(n) => *n += 1,
                None => {
                    self.by_type.insert(c.event_type.clone(), 1);
                }
            }
        }
        self.queue.extend(claimed);
    }

    /// Takes the message at `index` (in claim order).
    pub(crate) fn remove(&mut self, index: usize) -> Option<Claimed> {
        let c = self.queue.remove(index)?;
        if let Some(n) = self.by_type.get_mut(&c.event_type) {
            *n -= 1;
            if *n == 0 {
                self.by_type.remove(&c.event_type);
            }
        }
        Some(c)
    }

    /// Takes every message.
    pub(crate) fn take_all(&mut self) -> VecDeque<Claimed> {
        self.by_type.clear();
        std::mem::take(&mut self.queue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Lease;

    fn claimed(event_type: &str) -> Claimed {
        Claimed {
            lease: Lease {
                id: crate::message::MessageId::new(),
                token: "t".into(),
            },
            event_type: event_type.into(),
            payload: Vec::new(),
            key: None,
            source: None,
            correlation_id: String::new(),
            priority: crate::message::Priority::Normal,
            attempts: 1,
            max_attempts: 3,
            created_at: 0,
            lease_expires_at: 0,
            depth: 0,
        }
    }

    fn counts(ready: &Ready) -> Vec<(String, usize)> {
        let mut c: Vec<(String, usize)> = ready.types().map(|(t, n)| (t.to_owned(), n)).collect();
        c.sort();
        c
    }

    #[test]
    fn counts_follow_what_is_added_and_taken() {
        let mut ready = Ready::default();
        ready.extend(vec![claimed("a"), claimed("b"), claimed("a")]);
        assert_eq!(counts(&ready), [("a".to_owned(), 2), ("b".to_owned(), 1)]);
        let b = ready.remove(1).expect("second");
        assert_eq!(b.event_type, "b");
        assert_eq!(counts(&ready), [("a".to_owned(), 2)]);
        assert!(ready.remove(5).is_none());
        assert_eq!(ready.take_all().len(), 2);
        assert!(ready.is_empty() && counts(&ready).is_empty());
    }
}
