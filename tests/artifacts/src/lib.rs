//! The shipped plugins (`plugins/`) and the test-only guests (`tests/guests/`),
//! compiled to `wasm32-wasip2` components by this crate's build script, as
//! absolute path constants for the host's tests.
//!
//! Every member of those two workspaces gets a constant named after its
//! package (`order-validator` → [`ORDER_VALIDATOR`]), documented with the
//! package's description; [`PLUGINS`], [`GUESTS`] and [`ALL`] list them.
//! Building this crate rebuilds the components whenever their sources, the
//! SDK or the WIT change, so tests always run against the current code.
//!
//! The build needs the `wasm32-wasip2` target (`rustup target add
//! wasm32-wasip2`). The components are built under
//! `<target dir>/wasm-guests`, one build shared by every profile.
//!
//! To load a component into a host, copy it into the plugin folder the way
//! an operator should, with [`deploy`].

pub mod hostile;

use std::io;
use std::path::{Path, PathBuf};

include!(concat!(env!("OUT_DIR"), "/components.rs"));

/// Copies `component` (one of the constants) into `plugins_dir` as
/// `<file_name>.tmp`, then renames it to `file_name`, so a watching host
/// never sees a half-written file. Returns the final path.
///
/// # Errors
///
/// The I/O error of the copy or the rename.
pub fn deploy(component: &str, plugins_dir: &Path, file_name: &str) -> io::Result<PathBuf> {
    let target = plugins_dir.join(file_name);
    let temporary = plugins_dir.join(format!("{file_name}.tmp"));
    std::fs::copy(component, &temporary)?;
    std::fs::rename(&temporary, &target)?;
    Ok(target)
}
