//! Why the host could not start, or why a plugin file was rejected. Failures
//! of a delivery are not errors: they are [`Outcome`](super::Outcome)s.

use std::path::PathBuf;

use super::sandbox::format_bytes;

/// A host that could not be set up, or a plugin file that was rejected. Each
/// message names the file and what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The wasm engine or the host's linker could not be set up.
    #[error("could not set up the wasm engine: {reason}")]
    Engine {
        /// What wasmtime reported.
        reason: String,
    },
    /// The compiled-code cache directory could not be created.
    #[error(
        "could not create the compiled-code cache directory {}: {source}; make it writable or run without a cache",
        path.display()
    )]
    CacheDir {
        /// The cache directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The plugin file could not be read.
    #[error("could not read plugin {}: {source}", path.display())]
    Read {
        /// The plugin file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The plugin file is not a regular file (a FIFO, a device, a socket, a
    /// folder, or a link to one): it is never read.
    #[error(
        "plugin {} is {kind}, not a regular file: the host reads only regular files; replace it with the built `.wasm` file",
        path.display()
    )]
    NotRegularFile {
        /// The plugin file.
        path: PathBuf,
        /// What it is instead.
        kind: &'static str,
    },
    /// The plugin file is larger than `plugins.max_file_mb`.
    #[error(
        "plugin {} is {}, over the {} limit on plugin files: it was not read; check that it is the right file, or raise plugins.max_file_mb",
        path.display(),
        size.map_or_else(|| "growing while read".to_owned(), format_bytes),
        format_bytes(*max_bytes)
    )]
    TooLarge {
        /// The plugin file.
        path: PathBuf,
        /// Its size, when known (`None`: it grew past the limit while read).
        size: Option<u64>,
        /// The limit.
        max_bytes: u64,
    },
    /// The plugin file is empty.
    #[error(
        "plugin {} is empty: it may still be being written; deploy by writing `name.wasm.tmp` and renaming it into place",
        path.display()
    )]
    Empty {
        /// The plugin file.
        path: PathBuf,
    },
    /// The file does not start with the WebAssembly magic bytes.
    #[error(
        "plugin {} is not a WebAssembly file (no `\\0asm` header): build the plugin with `cargo build --target wasm32-wasip2`",
        path.display()
    )]
    NotWasm {
        /// The plugin file.
        path: PathBuf,
    },
    /// The file is a core wasm module rather than a component.
    #[error(
        "plugin {} is a core wasm module, not a component: build with --target wasm32-wasip2",
        path.display()
    )]
    NotAComponent {
        /// The plugin file.
        path: PathBuf,
    },
    /// The file has a component header but does not compile (truncated or corrupt).
    #[error(
        "plugin {} is not a valid WebAssembly component ({reason}): the file may be truncated or corrupt; rebuild it and deploy it again",
        path.display()
    )]
    Compile {
        /// The plugin file.
        path: PathBuf,
        /// What the compiler reported.
        reason: String,
    },
    /// The component does not fit the `handler` world: an export is missing or
    /// an import is one the host does not offer.
    #[error(
        "plugin {} does not target the `mailroom:plugin/handler` world: {reason}; build it with mailroom-sdk against the host's `wit/`",
        path.display()
    )]
    WrongWorld {
        /// The plugin file.
        path: PathBuf,
        /// The missing export or unsatisfied import.
        reason: String,
    },
    /// Compiling the component went past its time or memory budget
    /// (`plugins.compile_timeout`, `plugins.compile_memory_mb`).
    #[error("plugin {} could not be compiled: {reason}", path.display())]
    CompileBudget {
        /// The plugin file.
        path: PathBuf,
        /// Which budget, and how to change it.
        reason: String,
    },
    /// A linear memory of the component starts larger than the memory cap
    /// (`plugins.memory_limit_mb`): no instance of it could ever be created.
    #[error(
        "plugin {} asks for {} of memory at start (its memory's minimum size), over the {} memory cap of a plugin instance: build it with a smaller initial memory, or raise plugins.memory_limit_mb",
        path.display(),
        format_bytes(*minimum_bytes),
        format_bytes(*cap_bytes)
    )]
    MemoryOverCap {
        /// The plugin file.
        path: PathBuf,
        /// The memory's minimum size.
        minimum_bytes: u64,
        /// The cap.
        cap_bytes: u64,
    },
    /// The component could not be instantiated (for example its initial memory
    /// is larger than the memory cap).
    #[error("plugin {} could not be instantiated: {reason}", path.display())]
    Instantiate {
        /// The plugin file.
        path: PathBuf,
        /// What wasmtime reported.
        reason: String,
    },
    /// The plugin's `info` call trapped, timed out or ran out of memory.
    #[error(
        "plugin {}: its `info` call failed: {reason}; the host calls `info` to learn the plugin's name and event types (with mailroom-sdk, `Plugin::NAME` and `Plugin::EVENT_TYPES`): check what runs when the plugin starts",
        path.display()
    )]
    InfoTrapped {
        /// The plugin file.
        path: PathBuf,
        /// What happened (as for a failed delivery).
        reason: String,
    },
    /// The plugin's `info` describes it wrongly: no name, no event types, or an
    /// invalid event type.
    #[error(
        "plugin {} describes itself wrongly: {reason}; fix `Plugin::NAME`, `Plugin::EVENT_TYPES` or the version given to `export_plugin!` (what the plugin's `info` export returns)",
        path.display()
    )]
    InvalidInfo {
        /// The plugin file.
        path: PathBuf,
        /// The rule broken.
        reason: String,
    },
    /// More than one of the above: every problem found, in the order the
    /// host checks them.
    #[error(
        "plugin {} has {} problems: {}",
        path.display(),
        problems.len(),
        numbered(problems)
    )]
    Several {
        /// The plugin file.
        path: PathBuf,
        /// Each problem (never another `Several`).
        problems: Vec<PluginError>,
    },
}

/// `(1) first; (2) second; ...`
fn numbered(problems: &[PluginError]) -> String {
    problems
        .iter()
        .enumerate()
        .map(|(i, p)| format!("({}) {p}", i + 1))
        .collect::<Vec<_>>()
        .join("; ")
}

impl PluginError {
    /// A short, stable name of the kind of problem, for scripts
    /// (`mailroom plugin check --json`): `read`, `not-a-file`, `too-large`,
    /// `empty`, `not-wasm`,
    /// `not-a-component`, `compile`, `compile-budget`, `memory-over-cap`, `wrong-world`, `instantiate`,
    /// `info-trapped`, `invalid-info`, `several`, `engine`, `cache-dir`.
    pub fn kind(&self) -> &'static str {
        match self {
            PluginError::Engine { .. } => "engine",
            PluginError::CacheDir { .. } => "cache-dir",
            PluginError::Read { .. } => "read",
            PluginError::NotRegularFile { .. } => "not-a-file",
            PluginError::TooLarge { .. } => "too-large",
            PluginError::CompileBudget { .. } => "compile-budget",
            PluginError::MemoryOverCap { .. } => "memory-over-cap",
            PluginError::Empty { .. } => "empty",
            PluginError::NotWasm { .. } => "not-wasm",
            PluginError::NotAComponent { .. } => "not-a-component",
            PluginError::Compile { .. } => "compile",
            PluginError::WrongWorld { .. } => "wrong-world",
            PluginError::Instantiate { .. } => "instantiate",
            PluginError::InfoTrapped { .. } => "info-trapped",
            PluginError::InvalidInfo { .. } => "invalid-info",
            PluginError::Several { .. } => "several",
        }
    }
}
