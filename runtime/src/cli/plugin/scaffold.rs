//! The files `mailroom plugin new` writes, embedded in the binary so a crate
//! can be created anywhere, offline: the template of
//! `examples/plugin-template` (its name, type and event types replaced), and
//! a copy of mailroom-sdk with the WIT it is built on. The copy has a
//! manifest of its own, with the versions of the repository's workspace and
//! nothing inherited, so it builds outside any workspace with crates.io
//! dependencies only.

use std::path::PathBuf;

/// The template crate (`examples/plugin-template`), as written for `greeter`
/// handling `greeting.requested`.
const TEMPLATE_MANIFEST: &str = include_str!("../../../../examples/plugin-template/Cargo.toml");
const TEMPLATE_LIB: &str = include_str!("../../../../examples/plugin-template/src/lib.rs");
const TEMPLATE_README: &str = include_str!("../../../../examples/plugin-template/README.md");

/// The template's names, replaced in what `new` writes.
const TEMPLATE_NAME: &str = "greeter";
const TEMPLATE_TYPE_NAME: &str = "Greeter";
const TEMPLATE_EVENT_TYPE: &str = "greeting.requested";
/// Where the template finds the SDK in the repository, and where `new` puts it.
const TEMPLATE_SDK_PATH: &str = r#"mailroom-sdk = { path = "../../sdk" }"#;
const SDK_DIR: &str = "mailroom-sdk";

/// The SDK's sources (`sdk/`) and the WIT it is generated from (`wit/`).
const SDK_FILES: &[(&str, &str)] = &[
    ("README.md", include_str!("../../../../sdk/README.md")),
    ("src/lib.rs", include_str!("../../../../sdk/src/lib.rs")),
    ("src/checks.rs", include_str!("../../../../sdk/src/checks.rs")),
    ("src/config.rs", include_str!("../../../../sdk/src/config.rs")),
    ("src/emit.rs", include_str!("../../../../sdk/src/emit.rs")),
    ("src/error.rs", include_str!("../../../../sdk/src/error.rs")),
    ("src/event.rs", include_str!("../../../../sdk/src/event.rs")),
    ("src/host.rs", include_str!("../../../../sdk/src/host.rs")),
    ("src/http.rs", include_str!("../../../../sdk/src/http.rs")),
    ("src/in_host.rs", include_str!("../../../../sdk/src/in_host.rs")),
    ("src/log.rs", include_str!("../../../../sdk/src/log.rs")),
    ("src/plugin.rs", include_str!("../../../../sdk/src/plugin.rs")),
    ("src/testing.rs", include_str!("../../../../sdk/src/testing.rs")),
    ("wit/plugin.wit", include_str!("../../../../wit/plugin.wit")),
    ("wit/deps/cli.wit", include_str!("../../../../wit/deps/cli.wit")),
    ("wit/deps/clocks.wit", include_str!("../../../../wit/deps/clocks.wit")),
    ("wit/deps/filesystem.wit", include_str!("../../../../wit/deps/filesystem.wit")),
    ("wit/deps/http.wit", include_str!("../../../../wit/deps/http.wit")),
    ("wit/deps/io.wit", include_str!("../../../../wit/deps/io.wit")),
    ("wit/deps/random.wit", include_str!("../../../../wit/deps/random.wit")),
    ("wit/deps/sockets.wit", include_str!("../../../../wit/deps/sockets.wit")),
];

/// The SDK copy's manifest: the workspace's versions, written out. A test
/// checks them against the root `Cargo.toml`.
const SDK_MANIFEST: &str = r#"# mailroom-sdk, copied by `mailroom plugin new` (the SDK is not on crates.io).
# It matches the `mailroom` binary that wrote it; to update it, run
# `mailroom plugin new` again elsewhere and copy its `mailroom-sdk/` folder here.
[package]
name = "mailroom-sdk"
description = "Write Mailroom event handler plugins in Rust"
version = "@VERSION@"
edition = "2024"
rust-version = "1.95"
license = "Apache-2.0"
publish = false

[dependencies]
httpdate = "1"
serde = { version = "1", features = ["derive"] }
serde_json = { version = "1", features = ["raw_value"] }
wit-bindgen = { version = "0.61", default-features = false, features = ["macros", "realloc"] }
"#;

/// In the SDK's `lib.rs`: the WIT folder, relative to the SDK's manifest.
const SDK_WIT_PATH: &str = r#"path: "../wit","#;
/// In the SDK's `lib.rs`: the doctest of the repository's README, which a
/// copy does not have.
const SDK_REPOSITORY_README: &str = r#"
/// The repository README's plugin example, compiled as a doctest so it stays true.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct RepositoryReadme;
"#;

const GITIGNORE: &str = "/target\n";

/// What to create.
#[derive(Debug)]
pub(super) struct Plan {
    /// The plugin's name: also the package name.
    pub(super) name: String,
    /// The event types it handles, at least one.
    pub(super) event_types: Vec<String>,
}

/// The template text did not have what is replaced in it: the binary was
/// built from a template or an SDK it does not match.
#[derive(Debug, thiserror::Error)]
#[error("the embedded {file} has no `{missing}` to replace: this mailroom build is inconsistent")]
pub(super) struct ScaffoldError {
    file: &'static str,
    missing: String,
}

/// Every file of the new crate: `(path relative to the crate, contents)`.
pub(super) fn files(plan: &Plan) -> Result<Vec<(PathBuf, String)>, ScaffoldError> {
    let lib_name = plan.name.replace('-', "_");
    let type_name = type_name(&plan.name);
    let first = &plan.event_types[0];
    let list = plan
        .event_types
        .iter()
        .map(|t| format!("{t:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    let shown = plan
        .event_types
        .iter()
        .map(|t| format!("`{t}`"))
        .collect::<Vec<_>>()
        .join(", ");

    let manifest = replace(
        "examples/plugin-template/Cargo.toml",
        TEMPLATE_MANIFEST,
        &[
            (
                format!("name = \"{TEMPLATE_NAME}\""),
                format!("name = \"{}\"", plan.name),
            ),
            (
                TEMPLATE_SDK_PATH.to_owned(),
                format!("mailroom-sdk = {{ path = \"{SDK_DIR}\" }}"),
            ),
        ],
    )?;
    let lib = replace(
        "examples/plugin-template/src/lib.rs",
        TEMPLATE_LIB,
        &[
            (
                format!("&[\"{TEMPLATE_EVENT_TYPE}\"]"),
                format!("&[{list}]"),
            ),
            (format!("`{TEMPLATE_EVENT_TYPE}`"), shown),
            (format!("\"{TEMPLATE_EVENT_TYPE}\""), format!("{first:?}")),
            (TEMPLATE_TYPE_NAME.to_owned(), type_name),
            (format!("\"{TEMPLATE_NAME}\""), format!("{:?}", plan.name)),
            (format!("`{TEMPLATE_NAME}`"), format!("`{}`", plan.name)),
        ],
    )?;
    let readme = replace(
        "examples/plugin-template/README.md",
        TEMPLATE_README,
        &[
            (
                format!("{TEMPLATE_NAME}.wasm"),
                format!("{lib_name}.wasm"),
            ),
            (TEMPLATE_EVENT_TYPE.to_owned(), first.clone()),
            (TEMPLATE_NAME.to_owned(), plan.name.clone()),
        ],
    )?;

    let mut files = vec![
        (PathBuf::from("Cargo.toml"), manifest),
        (PathBuf::from("src/lib.rs"), lib),
        (PathBuf::from("README.md"), readme),
        (PathBuf::from(".gitignore"), GITIGNORE.to_owned()),
    ];
    let sdk = PathBuf::from(SDK_DIR);
    files.push((
        sdk.join("Cargo.toml"),
        SDK_MANIFEST.replace("@VERSION@", env!("CARGO_PKG_VERSION")),
    ));
    for (path, text) in SDK_FILES {
        let text = if *path == "src/lib.rs" {
            replace(
                "sdk/src/lib.rs",
                text,
                &[
                    (SDK_WIT_PATH.to_owned(), r#"path: "wit","#.to_owned()),
                    (SDK_REPOSITORY_README.to_owned(), String::new()),
                ],
            )?
        } else {
            (*text).to_owned()
        };
        files.push((sdk.join(path), text));
    }
    Ok(files)
}

/// Replaces each `(from, to)` in turn; each `from` must occur.
fn replace(
    file: &'static str,
    text: &str,
    replacements: &[(String, String)],
) -> Result<String, ScaffoldError> {
    let mut text = text.to_owned();
    for (from, to) in replacements {
        if !text.contains(from.as_str()) {
            return Err(ScaffoldError {
                file,
                missing: from.clone(),
            });
        }
        text = text.replace(from.as_str(), to);
    }
    Ok(text)
}

/// `order-validator` → `OrderValidator`: the plugin's type in `lib.rs`.
fn type_name(name: &str) -> String {
    name.split(['-', '_'])
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(name: &str, event_types: &[&str]) -> Plan {
        Plan {
            name: name.to_owned(),
            event_types: event_types.iter().map(|t| (*t).to_owned()).collect(),
        }
    }

    fn file<'a>(files: &'a [(PathBuf, String)], path: &str) -> &'a str {
        files
            .iter()
            .find(|(p, _)| p == std::path::Path::new(path))
            .map(|(_, text)| text.as_str())
            .unwrap_or_else(|| panic!("no {path}"))
    }

    #[test]
    fn the_template_becomes_the_named_plugin() {
        let files = files(&plan("order-audit", &["order.placed", "order.paid"])).expect("renders");
        let lib = file(&files, "src/lib.rs");
        assert!(lib.contains("struct OrderAudit;"), "{lib}");
        assert!(lib.contains(r#"const NAME: &'static str = "order-audit";"#), "{lib}");
        assert!(lib.contains(r#"&["order.placed", "order.paid"]"#), "{lib}");
        assert!(lib.contains(r#"Event::new("order.placed""#), "{lib}");
        assert!(!lib.contains("reet"), "{lib}");
        let manifest = file(&files, "Cargo.toml");
        assert!(manifest.contains(r#"name = "order-audit""#), "{manifest}");
        assert!(manifest.contains(r#"mailroom-sdk = { path = "mailroom-sdk" }"#));
        assert!(manifest.contains("\n[workspace]\n"), "{manifest}");
        let readme = file(&files, "README.md");
        assert!(readme.contains("order_audit.wasm"), "{readme}");
        assert!(!readme.contains("greet"), "{readme}");
        let sdk = file(&files, "mailroom-sdk/src/lib.rs");
        assert!(sdk.contains(r#"path: "wit","#), "{sdk}");
        // Nothing outside the copy: the README beside it is all it includes.
        assert!(!sdk.contains("../wit") && !sdk.contains("../../"), "{sdk}");
        let sdk_manifest = file(&files, "mailroom-sdk/Cargo.toml");
        assert!(!sdk_manifest.contains("workspace"), "{sdk_manifest}");
    }

    #[test]
    fn type_names_are_camel_case() {
        assert_eq!(type_name("greeter"), "Greeter");
        assert_eq!(type_name("order-audit_v2"), "OrderAuditV2");
    }

    /// The SDK copy must build with what the repository's SDK builds with.
    #[test]
    fn the_sdk_copy_has_the_workspace_versions() {
        let root: toml::Table =
            toml::from_str(include_str!("../../../../Cargo.toml")).expect("the root manifest");
        let sdk: toml::Table = toml::from_str(include_str!("../../../../sdk/Cargo.toml"))
            .expect("the SDK manifest");
        let copy: toml::Table = toml::from_str(SDK_MANIFEST).expect("the copy's manifest");
        let workspace = &root["workspace"]["dependencies"];
        let deps = sdk["dependencies"].as_table().expect("dependencies");
        let copy_deps = copy["dependencies"].as_table().expect("dependencies");
        assert_eq!(
            deps.keys().collect::<Vec<_>>(),
            copy_deps.keys().collect::<Vec<_>>()
        );
        for name in deps.keys() {
            assert_eq!(copy_deps[name], workspace[name], "{name}");
        }
        let package = &root["workspace"]["package"];
        for field in ["edition", "rust-version", "license"] {
            assert_eq!(copy["package"][field], package[field], "{field}");
        }
        // Every source file of the SDK is copied.
        let listed: Vec<&str> = SDK_FILES.iter().map(|(path, _)| *path).collect();
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk/src");
        for entry in std::fs::read_dir(dir).expect("sdk/src") {
            let name = entry.expect("entry").file_name();
            let path = format!("src/{}", name.to_string_lossy());
            assert!(listed.contains(&path.as_str()), "{path} is not copied");
        }
    }
}
