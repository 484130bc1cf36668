//! Builds the shipped plugins (`plugins/`) and the test guests
//! (`tests/guests/`) for `wasm32-wasip2`, and writes a constant per component
//! into `$OUT_DIR/components.rs`.
//!
//! Modelled on wasmtime's `crates/test-programs/artifacts/build.rs`: the
//! guests are built by a nested `cargo` with its own target directory and
//! without the outer build's flags, so a host build never compiles them
//! natively and they never pick up host-only flags.

use std::collections::BTreeMap;
use std::env;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

const TARGET: &str = "wasm32-wasip2";

/// Outer-build settings the nested build must not inherit: they are meant
/// for the host target (flags, a `--target`, coverage instrumentation, a
/// clippy driver) or would point it at the outer target directory.
const SCRUBBED_ENV: &[&str] = &[
    "CARGO_ENCODED_RUSTFLAGS",
    "RUSTFLAGS",
    "CARGO_BUILD_RUSTFLAGS",
    "CARGO_BUILD_TARGET",
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET_DIR",
    "CARGO_BUILD_BUILD_DIR",
    "RUSTC_WORKSPACE_WRAPPER",
    "CARGO_BUILD_RUSTC_WORKSPACE_WRAPPER",
];

/// One cargo workspace of components and the constants it yields.
struct Workspace {
    /// Relative to the repository root.
    dir: &'static str,
}

const WORKSPACES: &[Workspace] = &[
    Workspace { dir: "plugins" },
    Workspace {
        dir: "tests/guests",
    },
];

/// A built component.
struct Component {
    package: String,
    description: String,
    workspace: &'static str,
    source_dir: PathBuf,
    wasm: PathBuf,
}

fn main() {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest_dir
        .join("../..")
        .canonicalize()
        .expect("the repository root exists");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));

    rerun_if_sources_change(&root);
    check_target_installed();

    let target_dir = guest_target_dir(&out_dir);
    let mut components = Vec::new();
    for workspace in WORKSPACES {
        components.extend(build(&root, workspace, &target_dir));
    }
    let wasm_dir = target_dir.join(TARGET).join("release");
    let code = constants(&root, &components, &wasm_dir);
    fs::write(out_dir.join("components.rs"), code).expect("writing components.rs");
}

/// Every input of the nested builds. Directories are listed member by member
/// rather than as a whole, so a `target/` inside them never triggers a rerun.
fn rerun_if_sources_change(root: &Path) {
    println!("cargo:rerun-if-changed=build.rs");
    // The SDK inherits dependency versions from the root manifest.
    for path in [
        "Cargo.toml",
        "wit",
        "sdk/Cargo.toml",
        "sdk/README.md",
        "sdk/src",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(path).display());
    }
    for workspace in WORKSPACES {
        let dir = root.join(workspace.dir);
        let entries =
            fs::read_dir(&dir).unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()));
        for entry in entries {
            let entry = entry.expect("reading a directory entry");
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name == "target" || name.starts_with('.') {
                continue;
            }
            println!("cargo:rerun-if-changed={}", entry.path().display());
        }
    }
}

fn check_target_installed() {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| OsString::from("rustc"));
    let output = Command::new(&rustc)
        .args(["--print", "target-libdir", "--target", TARGET])
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", rustc.to_string_lossy()));
    let libdir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    let has_std = fs::read_dir(&libdir)
        .map(|entries| {
            entries
                .flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("libstd-"))
        })
        .unwrap_or(false);
    if !output.status.success() || !has_std {
        panic!("the {TARGET} target is missing: run `rustup target add {TARGET}`");
    }
}

/// `<outer target dir>/wasm-guests`: shared by both nested builds (so their
/// common dependencies compile once) and by every outer profile, and kept
/// out of the source tree.
///
/// The outer target directory is derived from `OUT_DIR`, which cargo lays out
/// as `<target dir>[/<triple>]/<profile>/build/<package>-<hash>/out`; this
/// holds whatever `CARGO_TARGET_DIR` or `--target-dir` said. If the layout
/// is ever different, the guests go under `OUT_DIR` instead: slower, never wrong.
fn guest_target_dir(out_dir: &Path) -> PathBuf {
    let derived = out_dir.ancestors().nth(4).map(|dir| {
        let triple = env::var("TARGET").unwrap_or_default();
        match dir.file_name() {
            Some(name) if name.to_string_lossy() == triple => dir.parent().unwrap_or(dir),
            _ => dir,
        }
    });
    match derived {
        // Cargo tags the root of every target directory.
        Some(dir) if dir.join("CACHEDIR.TAG").is_file() => dir.join("wasm-guests"),
        _ => out_dir.join("wasm-guests"),
    }
}

/// Runs `cargo build --release --target wasm32-wasip2` in one workspace and
/// returns its components.
fn build(root: &Path, workspace: &'static Workspace, target_dir: &Path) -> Vec<Component> {
    let dir = root.join(workspace.dir);
    let packages = packages(&dir);

    let mut cmd = cargo(&dir);
    cmd.args(["build", "--release", "--workspace", "--target", TARGET]);
    cmd.arg("--message-format=json-render-diagnostics");
    cmd.arg("--target-dir").arg(target_dir);
    // Diagnostics go to stderr, which cargo shows when this script fails.
    cmd.stdout(Stdio::piped()).stderr(Stdio::inherit());

    let output = cmd
        .spawn()
        .and_then(|child| child.wait_with_output())
        .unwrap_or_else(|e| panic!("running cargo in {}: {e}", dir.display()));
    if !output.status.success() {
        panic!(
            "building the {TARGET} components in {} failed (see the errors above)",
            dir.display()
        );
    }

    let mut wasm_by_id = BTreeMap::new();
    for line in output
        .stdout
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
    {
        let Ok(message) = serde_json::from_slice::<Value>(line) else {
            continue;
        };
        if message["reason"] != "compiler-artifact" {
            continue;
        }
        let is_cdylib = message["target"]["kind"]
            .as_array()
            .is_some_and(|k| k.iter().any(|k| k == "cdylib"));
        let wasm = message["filenames"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .find(|f| f.ends_with(".wasm"));
        if let (true, Some(wasm), Some(id)) = (is_cdylib, wasm, message["package_id"].as_str()) {
            wasm_by_id.insert(id.to_owned(), PathBuf::from(wasm));
        }
    }

    packages
        .into_iter()
        .map(|(id, package, description, source_dir)| {
            let wasm = wasm_by_id.remove(&id).unwrap_or_else(|| {
                panic!(
                    "{}: package {package} produced no .wasm (is it a cdylib?)",
                    workspace.dir
                )
            });
            Component {
                package,
                description,
                workspace: workspace.dir,
                source_dir,
                wasm,
            }
        })
        .collect()
}

/// The workspace's members: `(id, name, description, directory)`.
fn packages(dir: &Path) -> Vec<(String, String, String, PathBuf)> {
    let output = cargo(dir)
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("running cargo metadata in {}: {e}", dir.display()));
    assert!(
        output.status.success(),
        "cargo metadata failed in {}",
        dir.display()
    );
    let metadata: Value =
        serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON");
    let members: Vec<&Value> = metadata["workspace_members"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| members.contains(&&p["id"]))
        .map(|p| {
            let manifest = PathBuf::from(p["manifest_path"].as_str().unwrap_or_default());
            (
                p["id"].as_str().unwrap_or_default().to_owned(),
                p["name"].as_str().unwrap_or_default().to_owned(),
                p["description"].as_str().unwrap_or_default().to_owned(),
                manifest.parent().map(Path::to_path_buf).unwrap_or_default(),
            )
        })
        .collect()
}

/// A `cargo` command run from `dir`, with the outer build's settings removed.
fn cargo(dir: &Path) -> Command {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut cmd = Command::new(cargo);
    // From `dir`, so the nested build sees that workspace's `.cargo/config.toml`.
    cmd.current_dir(dir);
    for var in SCRUBBED_ENV {
        cmd.env_remove(var);
    }
    // CARGO_MAKEFLAGS stays: the nested cargo then draws its jobs from the
    // outer build's jobserver instead of adding `-j` of its own.
    cmd
}

fn constants(root: &Path, components: &[Component], wasm_dir: &Path) -> String {
    let mut code = String::new();
    let mut plugins = Vec::new();
    let mut guests = Vec::new();
    let mut all = Vec::new();
    for c in components {
        let name = c.package.to_uppercase().replace('-', "_");
        let source = c.source_dir.strip_prefix(root).unwrap_or(&c.source_dir);
        for line in c.description.lines() {
            writeln!(code, "/// {line}").ok();
        }
        writeln!(
            code,
            "///\n/// Built from `{}` (package `{}`).",
            source.display(),
            c.package
        )
        .ok();
        writeln!(
            code,
            "pub const {name}: &str = {:?};\n",
            c.wasm.display().to_string()
        )
        .ok();
        if c.workspace == "plugins" {
            plugins.push(name.clone())
        } else {
            guests.push(name.clone())
        }
        all.push(format!("({:?}, {name})", c.package));
    }
    writeln!(code, "/// The plugins shipped in `plugins/`.").ok();
    writeln!(
        code,
        "pub const PLUGINS: &[&str] = &[{}];\n",
        plugins.join(", ")
    )
    .ok();
    writeln!(code, "/// The test-only guests of `tests/guests/`.").ok();
    writeln!(
        code,
        "pub const GUESTS: &[&str] = &[{}];\n",
        guests.join(", ")
    )
    .ok();
    writeln!(code, "/// Every component, as `(package name, path)`.").ok();
    writeln!(
        code,
        "pub const ALL: &[(&str, &str)] = &[{}];\n",
        all.join(", ")
    )
    .ok();
    writeln!(
        code,
        "/// The directory every component was built into (it also holds build by-products)."
    )
    .ok();
    writeln!(
        code,
        "pub const WASM_DIR: &str = {:?};",
        wasm_dir.display().to_string()
    )
    .ok();
    code
}
