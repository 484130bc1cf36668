//! `mailroom compile-plugin` (hidden): the child process a host compiles
//! each plugin in, within its time and memory budget (see the plugin
//! module's `compile`). Not for people: it reads a component on stdin and
//! writes compiled code on stdout.

use clap::Args;

use crate::plugin::{COMPILE_EXIT_INVALID, run_compile_child};

use super::ExitStatus;

/// `mailroom compile-plugin`'s flags.
#[derive(Debug, Args)]
pub struct CompilePluginArgs {
    /// The address space this process may use, in bytes.
    #[arg(long, value_name = "BYTES")]
    pub memory_bytes: u64,
    /// The plugin file being compiled, for process listings only: the
    /// component's bytes come on stdin.
    #[arg(long, value_name = "PATH")]
    pub plugin: Option<std::path::PathBuf>,
}

/// Compiles stdin to stdout; a component that does not compile exits with
/// [`COMPILE_EXIT_INVALID`], the reason on stderr.
///
/// # Errors
///
/// When the memory cap cannot be set or the pipes fail.
pub fn execute(args: &CompilePluginArgs) -> anyhow::Result<()> {
    if run_compile_child(args.memory_bytes)? {
        Ok(())
    } else {
        Err(ExitStatus(COMPILE_EXIT_INVALID).into())
    }
}
