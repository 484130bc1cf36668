//! The exactly-once check of the crash tests: every input handled once.

use std::collections::{BTreeMap, BTreeSet};

/// Asserts that every enqueued input has exactly one follow-up, and every
/// follow-up an input. `follow_ups` are the follow-ups' correlation ids
/// (each the id of the input whose handler emitted it).
pub fn assert_each_once<'a>(enqueued: &[String], follow_ups: impl IntoIterator<Item = &'a str>) {
    let mut per_input: BTreeMap<&str, usize> = BTreeMap::new();
    let mut total = 0;
    for f in follow_ups {
        *per_input.entry(f).or_default() += 1;
        total += 1;
    }
    let inputs: BTreeSet<&str> = enqueued.iter().map(String::as_str).collect();
    assert_eq!(inputs.len(), enqueued.len(), "enqueue printed distinct ids");
    let missing: Vec<_> = inputs
        .iter()
        .filter(|id| !per_input.contains_key(**id))
        .collect();
    let repeated: Vec<_> = per_input.iter().filter(|(_, n)| **n > 1).collect();
    let unknown: Vec<_> = per_input
        .keys()
        .filter(|id| !inputs.contains(**id))
        .collect();
    assert!(
        missing.is_empty() && repeated.is_empty() && unknown.is_empty(),
        "of {} inputs: {} have no follow-up (e.g. {:?}), {} have several (e.g. {:?}), \
         {} follow-ups belong to no input (e.g. {:?})",
        inputs.len(),
        missing.len(),
        &missing[..missing.len().min(5)],
        repeated.len(),
        &repeated[..repeated.len().min(5)],
        unknown.len(),
        &unknown[..unknown.len().min(5)],
    );
    assert_eq!(total, inputs.len());
}
