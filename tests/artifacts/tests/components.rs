//! Every constant names a freshly built component of the world it claims.

use std::collections::BTreeSet;

use mailroom_test_artifacts as artifacts;
use wit_parser::WorldKey;
use wit_parser::decoding::{DecodedWasm, decode};

/// The preamble of a binary component: `\0asm`, then version 0x0d and layer 1
/// (a core module has version 1, layer 0).
const COMPONENT_MAGIC: [u8; 8] = [0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00];

/// Naming each constant makes a missing guest a compile error here.
const NAMED: &[&str] = &[
    artifacts::ORDER_VALIDATOR,
    artifacts::NOTIFIER,
    artifacts::FLAKY,
    artifacts::WEBHOOK,
    artifacts::BEHAVIOUR,
    artifacts::INFO_TRAPS,
    artifacts::BAD_INFO,
    artifacts::NO_EVENT_TYPES,
    artifacts::WRONG_WORLD,
    artifacts::VERSIONED_V1,
    artifacts::VERSIONED_V2,
    artifacts::DUPLICATE_ORDER,
    artifacts::FLEET_A,
    artifacts::FLEET_B,
    artifacts::FLEET_C,
    artifacts::FLEET_D,
    artifacts::FLEET_E,
    artifacts::LEGACY_V01,
    artifacts::LEGACY_V012,
    artifacts::OUTBOUND_PROBE,
    artifacts::HOSTILE,
    artifacts::MANY_TYPES,
];

fn read(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The interfaces a component's world imports and exports, as
/// `package/interface@version` names.
fn world(path: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let decoded = decode(&read(path)).unwrap_or_else(|e| panic!("{path}: {e:#}"));
    let DecodedWasm::Component(resolve, world) = decoded else {
        panic!("{path} is a WIT package, not a component");
    };
    let names = |items: &mut dyn Iterator<Item = &WorldKey>| -> BTreeSet<String> {
        items.map(|key| resolve.name_world_key(key)).collect()
    };
    let world = &resolve.worlds[world];
    (
        names(&mut world.imports.keys()),
        names(&mut world.exports.keys()),
    )
}

#[test]
fn every_constant_is_listed_and_every_listed_path_is_a_component() {
    let listed: BTreeSet<&str> = artifacts::ALL.iter().map(|&(_, path)| path).collect();
    for path in NAMED {
        assert!(listed.contains(path), "{path} is missing from ALL");
    }
    assert_eq!(
        listed.len(),
        artifacts::ALL.len(),
        "two packages share a path"
    );
    for &(package, path) in artifacts::ALL {
        assert!(
            std::path::Path::new(path).is_absolute(),
            "{package}: {path} is not absolute"
        );
        let bytes = read(path);
        assert!(
            bytes.starts_with(&COMPONENT_MAGIC),
            "{package}: {path} is not a component (starts with {:02x?})",
            &bytes[..bytes.len().min(8)]
        );
    }
}

#[test]
fn plugins_and_guests_partition_all() {
    let plugins: BTreeSet<&str> = artifacts::PLUGINS.iter().copied().collect();
    assert_eq!(
        plugins,
        BTreeSet::from([
            artifacts::ORDER_VALIDATOR,
            artifacts::NOTIFIER,
            artifacts::FLAKY,
            artifacts::WEBHOOK
        ])
    );
    assert_eq!(
        artifacts::PLUGINS.len() + artifacts::GUESTS.len(),
        artifacts::ALL.len()
    );
    for &(package, path) in artifacts::ALL {
        assert!(
            artifacts::PLUGINS.contains(&path) != artifacts::GUESTS.contains(&path),
            "{package} must be in exactly one of PLUGINS and GUESTS"
        );
    }
}

const PLUGIN_EXPORT: &str = "mailroom:plugin/plugin@0.1.3";

/// What `legacy-v01`, built from the 0.1.0 WIT as published, exports.
const PLUGIN_EXPORT_0_1_0: &str = "mailroom:plugin/plugin@0.1.0";

/// What `legacy-v012`, built from the 0.1.2 WIT as published, exports.
const PLUGIN_EXPORT_0_1_2: &str = "mailroom:plugin/plugin@0.1.2";

#[test]
fn handlers_export_the_plugin_interface_and_import_nothing_unexpected() {
    for &(package, path) in artifacts::ALL {
        if path == artifacts::WRONG_WORLD {
            continue;
        }
        let (imports, exports) = world(path);
        let export = match path {
            p if p == artifacts::LEGACY_V01 => PLUGIN_EXPORT_0_1_0,
            p if p == artifacts::LEGACY_V012 => PLUGIN_EXPORT_0_1_2,
            _ => PLUGIN_EXPORT,
        };
        assert_eq!(
            exports,
            BTreeSet::from([export.to_owned()]),
            "{package} exports"
        );
        for import in &imports {
            // many-problems imports an interface no host offers, on purpose.
            let expected = import.starts_with("wasi:")
                || import.starts_with("mailroom:plugin/")
                || (path == artifacts::MANY_PROBLEMS && import == "test:many-problems/ledger");
            assert!(expected, "{package} imports {import}");
        }
    }
}

#[test]
fn the_wrong_world_guest_is_a_component_of_another_world() {
    let (_, exports) = world(artifacts::WRONG_WORLD);
    assert!(!exports.contains(PLUGIN_EXPORT), "{exports:?}");
    assert!(exports.contains("greet"), "{exports:?}");
}

#[test]
fn plugins_use_the_host_imports() {
    let (imports, _) = world(artifacts::ORDER_VALIDATOR);
    assert!(
        imports.contains("mailroom:plugin/follow-ups@0.1.3"),
        "{imports:?}"
    );
    assert!(
        !imports.iter().any(|i| i.starts_with("mailroom:plugin/emitter@")),
        "the SDK emits through follow-ups, whose error names every refusal: {imports:?}"
    );
    assert!(
        imports.contains("mailroom:plugin/logging@0.1.3"),
        "{imports:?}"
    );
    assert!(
        imports.contains("mailroom:plugin/log-filter@0.1.3"),
        "the SDK's log macros ask whether the host keeps a line before building it: {imports:?}"
    );
    assert!(
        !imports.iter().any(|i| i.starts_with("wasi:http/")),
        "a plugin that makes no requests does not import wasi:http: {imports:?}"
    );
}

#[test]
fn the_webhook_plugin_imports_outbound_http_and_config() {
    let (imports, _) = world(artifacts::WEBHOOK);
    assert!(
        imports.contains("wasi:http/outgoing-handler@0.2.12"),
        "{imports:?}"
    );
    assert!(
        imports.contains("mailroom:plugin/config@0.1.3"),
        "{imports:?}"
    );
}

#[test]
fn the_legacy_guest_is_a_0_1_0_plugin() {
    let (imports, _) = world(artifacts::LEGACY_V01);
    assert!(
        imports.contains("mailroom:plugin/emitter@0.1.0"),
        "{imports:?}"
    );
}

#[test]
fn the_0_1_2_legacy_guest_imports_what_sdk_plugins_did_before_0_1_3() {
    let (imports, _) = world(artifacts::LEGACY_V012);
    assert!(
        imports.contains("mailroom:plugin/follow-ups@0.1.2")
            && imports.contains("mailroom:plugin/logging@0.1.2"),
        "{imports:?}"
    );
    assert!(
        !imports.iter().any(|i| i.starts_with("mailroom:plugin/log-filter@")),
        "{imports:?}"
    );
}

#[test]
fn deploy_renames_into_place() {
    let dir =
        std::env::temp_dir().join(format!("mailroom-artifacts-deploy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let path = artifacts::deploy(artifacts::FLAKY, &dir, "flaky.wasm")
        .unwrap_or_else(|e| panic!("deploy: {e}"));
    assert_eq!(path, dir.join("flaky.wasm"));
    assert_eq!(
        read(artifacts::FLAKY),
        std::fs::read(&path).unwrap_or_default()
    );
    assert!(!dir.join("flaky.wasm.tmp").exists());
    std::fs::remove_dir_all(&dir).ok();
}
