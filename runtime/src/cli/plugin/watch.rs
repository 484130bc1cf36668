//! `mailroom plugin watch [CRATE]`: build the plugin crate, check the
//! component as the host would load it, and deploy it into a plugin folder
//! (`name.wasm.tmp`, then a rename); again after every change to the crate's
//! files. A failed build or check is shown and the watch goes on; the host
//! keeps serving the last good build.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Args;
use notify::RecursiveMode;
use notify_debouncer_full::{DebounceEventResult, new_debouncer};
use serde_json::Value;

use crate::config::Config;
use crate::plugin::PluginHost;

/// The target plugins are built for.
const TARGET: &str = "wasm32-wasip2";

/// How long the crate's files must be quiet before a rebuild: an editor's
/// save of several files is one rebuild.
const DEBOUNCE: Duration = Duration::from_millis(300);

/// `mailroom plugin watch`'s arguments.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// The plugin crate (the folder of its Cargo.toml) [default: .]
    #[arg(value_name = "CRATE", default_value = ".")]
    crate_dir: PathBuf,
    /// The plugin folder a host watches, where each good build is deployed
    /// (plugins.dir, as for `mailroom run`) [default: plugins]
    #[arg(long, value_name = "DIR")]
    plugins: Option<PathBuf>,
    /// Build, check and deploy once, then exit (0 when deployed, 1 if not)
    #[arg(long)]
    once: bool,
}

pub(super) fn execute(config: &Config, args: &WatchArgs) -> anyhow::Result<()> {
    let crate_dir = args.crate_dir.clone();
    if !crate_dir.join("Cargo.toml").is_file() {
        bail!(
            "{} has no Cargo.toml: give the plugin crate's folder (the one `mailroom plugin new` created)",
            crate_dir.display()
        );
    }
    let plugins = args
        .plugins
        .clone()
        .unwrap_or_else(|| config.plugins.dir.clone());
    std::fs::create_dir_all(&plugins)
        .with_context(|| format!("cannot create the plugin folder {}", plugins.display()))?;
    let host = super::host(config)?;

    if args.once {
        return if round(&host, &crate_dir, &plugins) {
            Ok(())
        } else {
            Err(super::super::ExitStatus(1).into())
        };
    }

    let (tx, rx) = mpsc::channel();
    let mut debouncer = new_debouncer(DEBOUNCE, None, move |result: DebounceEventResult| {
        // A closed channel means the watch is over.
        let _ = tx.send(result);
    })
    .context("cannot watch the crate's files")?;
    // Events name absolute paths.
    let watched = crate_dir
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", crate_dir.display()))?;
    debouncer
        .watch(&watched, RecursiveMode::Recursive)
        .with_context(|| format!("cannot watch {}", crate_dir.display()))?;
    println!(
        "watching {} (Ctrl-C to stop); deploying to {}",
        crate_dir.display(),
        plugins.display()
    );
    round(&host, &crate_dir, &plugins);
    for result in rx {
        let relevant = match result {
            Ok(events) => events
                .iter()
                .flat_map(|event| event.paths.iter())
                .any(|path| is_source(&watched, path)),
            Err(errors) => {
                for e in errors {
                    eprintln!("watch: {e}");
                }
                true
            }
        };
        if relevant {
            round(&host, &crate_dir, &plugins);
        }
    }
    Ok(())
}

/// Whether a change to `path` calls for a rebuild: not the build output or
/// the lock file a build writes, not a hidden or backup file (editors' swap
/// files, `.git`).
fn is_source(crate_dir: &Path, path: &Path) -> bool {
    let path = path.strip_prefix(crate_dir).unwrap_or(path);
    if path.starts_with("target") || path == Path::new("Cargo.lock") {
        return false;
    }
    !path.components().any(|c| {
        let name = c.as_os_str().to_string_lossy();
        name.starts_with('.') && name != "." && name != ".."
            || name.ends_with('~')
            || name.starts_with('#')
    })
}

/// One build, check and deploy; says how it went. Returns whether a build
/// was deployed.
fn round(host: &PluginHost, crate_dir: &Path, plugins: &Path) -> bool {
    let started = Instant::now();
    println!("building {} ...", crate_dir.display());
    let wasm = match build(crate_dir) {
        Ok(wasm) => wasm,
        Err(e) => {
            println!("build failed: {e:#}; fix it and save, the watch goes on");
            return false;
        }
    };
    let plugin = match host.check(&wasm) {
        Ok(plugin) => plugin,
        Err(problems) => {
            println!(
                "{} was built but the host would refuse it; not deployed:",
                wasm.display()
            );
            for (i, problem) in problems.iter().enumerate() {
                println!("  {}. {problem}", i + 1);
            }
            return false;
        }
    };
    let Some(file_name) = wasm.file_name() else {
        println!("{} has no file name; not deployed", wasm.display());
        return false;
    };
    match deploy(&wasm, plugins, Path::new(file_name)) {
        Ok(deployed) => {
            println!(
                "deployed {} {} ({}) to {} in {:.1} s",
                plugin.name(),
                plugin.version(),
                plugin.digest(),
                deployed.display(),
                started.elapsed().as_secs_f64()
            );
            true
        }
        Err(e) => {
            println!("deploying failed: {e:#}");
            false
        }
    }
}

/// `cargo build --release --target wasm32-wasip2` in the crate; returns the
/// component. Compiler errors go to the terminal as cargo prints them.
fn build(crate_dir: &Path) -> anyhow::Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(crate_dir)
        .args(["build", "--release", "--target", TARGET])
        .arg("--message-format=json-render-diagnostics")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .output()
        .context("cannot run cargo: is the Rust toolchain installed (rustup)?")?;
    if !output.status.success() {
        bail!("cargo build failed (the errors are above)");
    }
    let wasm = output
        .stdout
        .split(|&b| b == b'\n')
        .filter_map(|line| serde_json::from_slice::<Value>(line).ok())
        .filter(|message| message["reason"] == "compiler-artifact")
        .filter(|message| {
            message["target"]["kind"]
                .as_array()
                .is_some_and(|kinds| kinds.iter().any(|k| k == "cdylib"))
        })
        .filter_map(|message| {
            message["filenames"]
                .as_array()?
                .iter()
                .filter_map(Value::as_str)
                .find(|f| f.ends_with(".wasm"))
                .map(PathBuf::from)
        })
        .next_back();
    wasm.context(
        "the build made no .wasm: is the crate a cdylib (crate-type = [\"cdylib\"] under [lib])?",
    )
}

/// Copies `wasm` to `plugins/<name>.tmp`, then renames it to
/// `plugins/<name>`: a watching host never reads a half-written file.
fn deploy(wasm: &Path, plugins: &Path, name: &Path) -> anyhow::Result<PathBuf> {
    let target = plugins.join(name);
    let mut temporary = target.clone().into_os_string();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    std::fs::copy(wasm, &temporary)
        .with_context(|| format!("cannot write {}", temporary.display()))?;
    std::fs::rename(&temporary, &target)
        .with_context(|| format!("cannot rename {} into place", temporary.display()))?;
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_output_and_hidden_files_do_not_trigger_a_rebuild() {
        let dir = Path::new("/p");
        assert!(is_source(dir, Path::new("/p/src/lib.rs")));
        assert!(is_source(dir, Path::new("/p/Cargo.toml")));
        assert!(!is_source(dir, Path::new("/p/target/release/x.wasm")));
        assert!(!is_source(dir, Path::new("/p/src/.lib.rs.swp")));
        assert!(!is_source(dir, Path::new("/p/.git/index")));
        assert!(!is_source(dir, Path::new("/p/src/lib.rs~")));
        assert!(!is_source(dir, Path::new("/p/Cargo.lock")));
    }
}

