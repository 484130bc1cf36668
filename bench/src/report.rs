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

/// Prints the CPU time per message of the line above (its thread's, see
/// `thread_cpu`), with its ratio to the ceiling's: the ceiling's CPU time
/// over this one, so that, like a throughput's, a higher ratio is better.
/// Nothing when either is unknown.
pub fn cpu_per_message(messages: usize, cpu: Option<Duration>, ceiling: Option<Duration>) {
    let (Some(cpu), Some(ceiling)) = (cpu, ceiling) else {
        return;
    };
    let per_message = |d: Duration| d.as_secs_f64() * 1e6 / messages.max(1) as f64;
    println!(
        "{:<48} {:>9.2} µs/msg   {:>6.1}% of ceiling   (CPU time of its thread)",
        "  CPU per message",
        per_message(cpu),
        100.0 * ceiling.as_secs_f64() / cpu.as_secs_f64().max(1e-9)
    );
}

/// Prints any other figure.
pub fn figure(label: &str, value: impl std::fmt::Display) {
    println!("{label:<48} {value}");
}
