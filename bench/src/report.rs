//! Printing figures, each throughput with its ratio to the ceiling of the
//! same run (machines are noisy; ratios hold where absolute numbers drift).

use std::time::Duration;

/// Messages per second.
pub fn rate(messages: usize, took: Duration) -> f64 {
    messages as f64 / took.as_secs_f64().max(1e-9)
}

/// Prints a section heading.
pub fn section(title: &str) {
    println!("\n## {title}");
}

/// Prints a throughput line with its ratio to `ceiling` (msg/s).
pub fn throughput(label: &str, messages: usize, took: Duration, ceiling: f64) {
    let r = rate(messages, took);
    println!(
        "{label:<48} {r:>12.0} msg/s   {:>6.1}% of ceiling   ({messages} in {took:.2?})",
        100.0 * r / ceiling
    );
}

/// Prints any other figure.
pub fn figure(label: &str, value: impl std::fmt::Display) {
    println!("{label:<48} {value}");
}
