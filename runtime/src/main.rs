//! The `mailroom` binary: hands the command line to
//! [`mailroom::cli::run_command_line`], which runs it and prints why it
//! failed, if it did; the exit status says what kind of failure it was (see
//! `mailroom --help`).

/// mimalloc rather than the system allocator: a message's buffers are
/// allocated on one thread and freed on another (claimed by the store,
/// handled by a delivery task, committed by the settler), which the system
/// allocator serves through locked arenas and periodic consolidation. It
/// holds freed memory for a second before returning it to the OS
/// (`MIMALLOC_PURGE_DELAY`, in ms, changes that); see docs/BENCHMARKS.md,
/// tenth round.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    mailroom::cli::run_command_line()
}
