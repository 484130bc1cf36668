//! Compiling a plugin within a time and memory budget.
//!
//! Cranelift's time and memory grow with a component's largest function, so
//! a small file can cost a minute and gigabytes to compile. The host
//! therefore compiles in a child process: the `mailroom` binary itself, run
//! with a hidden subcommand (`mailroom compile-plugin`) that caps its own
//! address space (`RLIMIT_AS`, the budget beyond what it maps at start),
//! reads the component on stdin, compiles it
//! with the host's engine settings and writes the compiled artefact on
//! stdout. The parent kills it past `plugins.compile_timeout`, and an
//! allocation past `plugins.compile_memory_mb` ends it; either way the plugin
//! is rejected with the budget named, and the host's own memory never holds
//! more than the file and the artefact. Other plugins keep loading meanwhile
//! (the loader runs several loads at once), and dropping a compilation (the
//! host shutting down) kills the child.
//!
//! A program that embeds the library has no `mailroom` binary to run: it
//! compiles in its own process ([`Compiler::InProcess`]), without a budget.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::AsyncWriteExt;
use wasmtime::Engine;
use wasmtime::component::Component;

use super::error::PluginError;
use super::sandbox::{self, SandboxLimits, format_bytes};

/// The hidden subcommand of the `mailroom` binary that compiles one plugin.
pub const COMPILE_SUBCOMMAND: &str = "compile-plugin";

/// Exit status of the child for a component that does not compile (its
/// stderr says why); anything else unexpected is a crash of the compiler.
pub const COMPILE_EXIT_INVALID: u8 = 3;

/// The most of the compiler's explanation kept in a rejection.
const MAX_COMPILER_MESSAGE_BYTES: usize = 2048;

/// Where plugins are compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compiler {
    /// In a child process running `program` (a `mailroom` binary of the same
    /// build) with [`COMPILE_SUBCOMMAND`], within the time and memory budget
    /// of [`SandboxLimits`].
    Child {
        /// The `mailroom` binary.
        program: PathBuf,
    },
    /// In this process, without a budget: for programs embedding the
    /// library, which have no `mailroom` binary to run.
    InProcess,
}

impl Default for Compiler {
    /// A child process when this process is the `mailroom` binary, else in
    /// this process.
    fn default() -> Self {
        match std::env::current_exe() {
            Ok(exe) if exe.file_stem().is_some_and(|stem| stem == "mailroom") => {
                Compiler::Child { program: exe }
            }
            _ => Compiler::InProcess,
        }
    }
}

/// Compiles `bytes` (already checked to carry a component header) for
/// `engine`.
///
/// # Errors
///
/// [`PluginError::Compile`] when the component is invalid,
/// [`PluginError::CompileBudget`] when compiling went past the time or
/// memory budget (or the compiler process could not run).
pub(crate) async fn compile(
    compiler: &Compiler,
    engine: &Engine,
    limits: &SandboxLimits,
    path: &Path,
    bytes: Vec<u8>,
) -> Result<Component, PluginError> {
    match compiler {
        Compiler::InProcess => {
            let engine = engine.clone();
            let owned = path.to_owned();
            tokio::task::spawn_blocking(move || {
                Component::new(&engine, &bytes).map_err(|e| invalid(&owned, &e))
            })
            .await
            .unwrap_or_else(|join| std::panic::resume_unwind(join.into_panic()))
        }
        Compiler::Child { program } => {
            let artefact = compile_in_child(program, limits, path, &bytes).await?;
            // SAFETY: `deserialize` trusts its input to be an artefact that
            // wasmtime produced, because it maps it as executable code. These
            // bytes come straight from the pipe of a child process running
            // the host's own binary (`program`, this executable), which wrote
            // what `Engine::precompile_component` returned for the plugin and
            // nothing else; the plugin's bytes never reach this call. wasmtime
            // also checks the artefact's header against this engine (version
            // and every setting that changes code) and refuses a mismatch.
            #[allow(unsafe_code)]
            let component = unsafe { Component::deserialize(engine, &artefact) };
            component.map_err(|e| PluginError::CompileBudget {
                path: path.to_owned(),
                reason: format!(
                    "the compiled code from the compiler process was refused ({e:#}); \
                     check that the `mailroom` binary was not replaced while the host ran"
                ),
            })
        }
    }
}

fn invalid(path: &Path, e: &wasmtime::Error) -> PluginError {
    PluginError::Compile {
        path: path.to_owned(),
        reason: format!("{e:#}"),
    }
}

async fn compile_in_child(
    program: &Path,
    limits: &SandboxLimits,
    path: &Path,
    bytes: &[u8],
) -> Result<Vec<u8>, PluginError> {
    let budget = |reason: String| PluginError::CompileBudget {
        path: path.to_owned(),
        reason,
    };
    let mut child = tokio::process::Command::new(program)
        .arg(COMPILE_SUBCOMMAND)
        .arg("--memory-bytes")
        .arg(limits.compile_memory_bytes.to_string())
        // Only a label, so a process listing shows which plugin compiles:
        // the bytes come on stdin (the file may have changed since).
        .arg("--plugin")
        .arg(path)
        .env_clear()
        // The allocator reserves address space in small steps: each
        // reservation counts against the cap without holding memory, and
        // mimalloc's first one (1 GiB by default, taken before the cap is
        // set) would leave the compiler that much beyond its budget.
        .env("MIMALLOC_ARENA_RESERVE", "32MiB")
        // Few arenas for what still allocates through the C library.
        .env("MALLOC_ARENA_MAX", "2")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Dropping the compilation (a timeout, the host shutting down)
        // kills the child.
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            budget(format!(
                "the compiler process ({} {COMPILE_SUBCOMMAND}) could not start: {e}",
                program.display()
            ))
        })?;
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let run = async move {
        // The child reads all of stdin before it writes anything, so writing
        // first cannot deadlock; a child that died early shows in its status.
        let _ = stdin.write_all(bytes).await;
        drop(stdin);
        child.wait_with_output().await
    };
    let output = match tokio::time::timeout(limits.compile_timeout, run).await {
        Ok(output) => output.map_err(|e| budget(format!("the compiler process failed: {e}")))?,
        Err(_) => {
            return Err(budget(format!(
                "compiling took longer than {} (plugins.compile_timeout): a function in it is too large or complex; split it, or raise plugins.compile_timeout",
                humantime::format_duration(limits.compile_timeout)
            )));
        }
    };
    if output.status.success() {
        return Ok(output.stdout);
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stderr = stderr.trim();
    if stderr.contains("overflowed its stack") {
        return Err(budget(
            "compiling overflowed the compiler's stack: a function in it is nested too deeply; simplify it"
                .to_owned(),
        ));
    }
    if ran_out_of_memory(&output.status, stderr) {
        return Err(budget(format!(
            "compiling needed more than {} of memory (plugins.compile_memory_mb): a function in it is too large or complex; split it, or raise plugins.compile_memory_mb",
            format_bytes(limits.compile_memory_bytes)
        )));
    }
    if output.status.code() == Some(i32::from(COMPILE_EXIT_INVALID)) {
        return Err(PluginError::Compile {
            path: path.to_owned(),
            reason: crate::state_machine::truncate_text(stderr, MAX_COMPILER_MESSAGE_BYTES),
        });
    }
    Err(budget(format!(
        "the compiler process failed ({}): {}",
        output.status,
        last_line(stderr)
    )))
}

/// Whether the child died for want of memory: an allocation failure (Rust
/// aborts with "memory allocation of … failed"), a thread or mapping the
/// kernel refused, or the kernel's OOM killer.
fn ran_out_of_memory(status: &std::process::ExitStatus, stderr: &str) -> bool {
    use std::os::unix::process::ExitStatusExt;
    let words = [
        "memory allocation",
        "Cannot allocate memory",
        "out of memory",
        "failed to spawn thread",
        "Resource temporarily unavailable",
    ];
    // SIGKILL: the OOM killer (the host kills a compiler only by dropping it).
    words.iter().any(|w| stderr.contains(w)) || status.signal() == Some(9)
}

/// The address space this process has mapped (`VmSize`), if procfs says.
fn mapped_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib = status.lines().find_map(|line| line.strip_prefix("VmSize:"))?;
    let kib: u64 = kib.trim().strip_suffix("kB")?.trim().parse().ok()?;
    Some(kib.saturating_mul(1024))
}

fn last_line(text: &str) -> &str {
    let line = text.lines().last().unwrap_or("no output");
    &line[..line.floor_char_boundary(line.len().min(500))]
}

/// The child's side: caps this process's address space at `memory_bytes`
/// beyond what it has mapped at start, asks to be killed when its parent
/// dies,
/// reads a component from stdin, compiles it with the host's engine settings
/// and writes the artefact to stdout. Returns `false` (with the reason on
/// stderr) if the component does not compile: the process then exits with
/// [`COMPILE_EXIT_INVALID`].
///
/// # Errors
///
/// When the cap cannot be set, or stdin or stdout fail.
#[doc(hidden)]
pub fn run_compile_child(memory_bytes: u64) -> std::io::Result<bool> {
    use std::io::{Read, Write};
    // The budget is what compiling adds: the binary's own mappings, and the
    // address space the allocator reserved at start without using it, are
    // not the plugin's doing (mimalloc's come to about 70 MiB, more than a
    // small budget).
    let cap = mapped_bytes().unwrap_or(0).saturating_add(memory_bytes);
    let limit = rustix::process::Rlimit {
        current: Some(cap),
        maximum: Some(cap),
    };
    rustix::process::setrlimit(rustix::process::Resource::As, limit)?;
    // Dies with the host: a host killed mid-compile (no time to kill its
    // children) leaves no compiler running. Had the host died before this
    // line, stdin ends early and the compile fails at once.
    rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))?;
    let mut bytes = Vec::new();
    std::io::stdin().lock().read_to_end(&mut bytes)?;
    // Pooling only sizes the host's instance slots; compiled code is the same
    // either way, and the pool's reservation would not fit the cap.
    let engine = Engine::new(&sandbox::engine_config(&SandboxLimits::default(), false))
        .map_err(|e| std::io::Error::other(format!("{e:#}")))?;
    match engine.precompile_component(&bytes) {
        Ok(artefact) => {
            drop(bytes);
            let mut out = std::io::stdout().lock();
            out.write_all(&artefact)?;
            out.flush()?;
            Ok(true)
        }
        Err(e) => {
            eprintln!("{e:#}");
            Ok(false)
        }
    }
}
