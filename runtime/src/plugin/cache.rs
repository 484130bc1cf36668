//! Compiled plugins cached on disk, so a restart does not recompile.
//!
//! One file per plugin build and engine: `<dir>/<sha256 of the .wasm>-<engine
//! hash>.cwasm`, where the engine hash covers wasmtime's version, the target
//! and every setting that changes compiled code. A changed plugin or a
//! changed engine simply misses. Files are written to a temporary name and
//! renamed, so a reader never sees half a file. A file that fails to load is
//! recompiled and overwritten: the cache can only cost time, never a plugin.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use wasmtime::Engine;
use wasmtime::component::Component;

/// The cache directory and this engine's compatibility hash.
#[derive(Debug)]
pub(crate) struct CodeCache {
    dir: PathBuf,
    engine_hash: String,
}

impl CodeCache {
    /// A cache in `dir`, which must exist.
    pub(crate) fn new(dir: PathBuf, engine: &Engine) -> Self {
        // `DefaultHasher::new()` has fixed keys, so the hash is stable across
        // runs of one build; a different toolchain may hash differently, which
        // only costs a recompile (and wasmtime checks the artifact's header).
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Self {
            dir,
            engine_hash: format!("{:016x}", hasher.finish()),
        }
    }

    fn file_for(&self, sha256_hex: &str) -> PathBuf {
        self.dir
            .join(format!("{sha256_hex}-{}.cwasm", self.engine_hash))
    }

    /// The cached compilation of the plugin whose bytes hash to `sha256_hex`,
    /// if there is a usable one.
    pub(crate) fn get(&self, engine: &Engine, sha256_hex: &str) -> Option<Component> {
        let file = self.file_for(sha256_hex);
        if !file.is_file() {
            return None;
        }
        // SAFETY: `deserialize_file` trusts the file to be an artifact that
        // wasmtime produced, because it maps it as executable code. This file
        // is only ever written by `put` below, by this host, under its own
        // cache directory, through a temporary file renamed into place (so it
        // is never modified in place while mapped); its name carries the
        // content hash of the plugin and this engine's compatibility hash; and
        // wasmtime itself checks the artifact's header against the engine
        // (version and settings) and rejects a mismatch. The cache directory
        // must not be writable by anyone the host does not trust, as is said
        // where it is configured.
        #[allow(unsafe_code)]
        let loaded = unsafe { Component::deserialize_file(engine, &file) };
        match loaded {
            Ok(component) => Some(component),
            Err(e) => {
                tracing::warn!(
                    file = %file.display(),
                    "ignoring an unusable compiled-code cache entry, recompiling: {e}"
                );
                None
            }
        }
    }

    /// Stores the compilation of the plugin whose bytes hash to `sha256_hex`.
    /// Failure is logged, not returned: the plugin loads either way.
    pub(crate) fn put(&self, component: &Component, sha256_hex: &str) {
        let file = self.file_for(sha256_hex);
        if let Err(e) = self.write(component, &file) {
            tracing::warn!(
                file = %file.display(),
                "could not write the compiled-code cache (the plugin still loads; the next start recompiles it): {e}"
            );
        }
    }

    fn write(&self, component: &Component, file: &Path) -> std::io::Result<()> {
        let bytes = component
            .serialize()
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let mut tmp = tempfile_in(&self.dir)?;
        tmp.1.write_all(&bytes)?;
        tmp.1.sync_all()?;
        drop(tmp.1);
        std::fs::rename(&tmp.0, file).inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp.0);
        })
    }
}

/// A new file in `dir` with a name no other writer uses (process id and a
/// counter), for writing before an atomic rename.
fn tempfile_in(dir: &Path) -> std::io::Result<(PathBuf, std::fs::File)> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let path = dir.join(format!(".tmp-{}-{n}.cwasm", std::process::id()));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)?;
    Ok((path, file))
}
