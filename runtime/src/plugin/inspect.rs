//! What the host checks in a plugin file before it serves: the file is a
//! component, it compiles (or is in the cache), its imports are ones the host
//! offers, it exports the `handler` world, it instantiates within the limits,
//! and its info (name, version, event types) follows the rules.
//!
//! Every problem is collected rather than the first: [`inspect`] goes on as
//! far as it can. A file that is not a component, or does not compile, stops
//! there; otherwise imports the host does not offer are stubbed (with
//! functions that trap) so the exports and the info can still be checked.
//! The host loads a file only when nothing is wrong; `mailroom plugin check`
//! shows the whole list.

use std::path::Path;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use wasmtime::component::types::{self, ComponentItem};
use wasmtime::component::{Component, Linker, ResourceType, Val};

use crate::message::validate_event_type;

use super::bindings::{HandlerPre, PluginInfo};
use super::compile;
use super::error::PluginError;
use super::host::HostInner;
use super::invoke::{self, Instance};
use super::loaded::{Checked, Plugin};
use super::plugin_file;
use super::sandbox::MAX_INFO_FIELD_BYTES;
use super::store::{self, StoreState};

/// Checks the plugin at `path` and returns it loaded, or every problem found;
/// see [`PluginHost::check`](super::PluginHost::check). Blocking.
pub(crate) fn inspect(host: &Arc<HostInner>, path: &Path) -> Result<Plugin, Vec<PluginError>> {
    let span = tracing::info_span!("plugin.load", path = %path.display());
    let _entered = span.enter();
    let read = prepare(host, path)?;
    let compiled = match read.cached {
        Some(component) => (component, true),
        None => {
            let bytes = read.bytes;
            let component = wasmtime_wasi::runtime::in_tokio(compile::compile(
                &host.compiler,
                &host.engine,
                &host.limits,
                path,
                bytes,
            ))
            .map_err(|e| vec![e])?;
            (component, false)
        }
    };
    finish(host, path, &read.sha256_hex, compiled)
}

/// As [`inspect`], without blocking the async runtime: the file is read and
/// the plugin checked on blocking threads, and compiled in a child process
/// (see `compile`), so dropping the future kills the compilation.
pub(crate) async fn inspect_async(
    host: &Arc<HostInner>,
    path: &Path,
) -> Result<Plugin, Vec<PluginError>> {
    let read = {
        let (host, path) = (host.clone(), path.to_owned());
        tokio::task::spawn_blocking(move || prepare(&host, &path))
            .await
            .unwrap_or_else(|join| std::panic::resume_unwind(join.into_panic()))?
    };
    let compiled = match read.cached {
        Some(component) => (component, true),
        None => {
            let component =
                compile::compile(&host.compiler, &host.engine, &host.limits, path, read.bytes)
                    .await
                    .map_err(|e| vec![e])?;
            (component, false)
        }
    };
    let (host, path, sha256_hex) = (host.clone(), path.to_owned(), read.sha256_hex);
    tokio::task::spawn_blocking(move || {
        let span = tracing::info_span!("plugin.load", path = %path.display());
        let _entered = span.enter();
        finish(&host, &path, &sha256_hex, compiled)
    })
    .await
    .unwrap_or_else(|join| std::panic::resume_unwind(join.into_panic()))
}

/// A plugin file read and checked up to compilation.
struct Read {
    bytes: Vec<u8>,
    sha256_hex: String,
    /// Its compiled code, when the cache has it.
    cached: Option<Component>,
}

/// Reads the file (only a regular file, within the size cap), checks its
/// header and memory declarations, and looks it up in the cache.
fn prepare(host: &HostInner, path: &Path) -> Result<Read, Vec<PluginError>> {
    let bytes = plugin_file::read(path, host.limits.max_file_bytes).map_err(|e| vec![e])?;
    check_header(path, &bytes).map_err(|e| vec![e])?;
    check_memories(path, &bytes, host.limits.memory_bytes).map_err(|e| vec![e])?;
    let sha256_hex = hex(&Sha256::digest(&bytes));
    let cached = host
        .cache
        .as_ref()
        .and_then(|cache| cache.get(&host.engine, &sha256_hex));
    Ok(Read {
        bytes,
        sha256_hex,
        cached,
    })
}

/// Checks a compiled component against the world and its info against the
/// rules: every problem found.
fn finish(
    host: &Arc<HostInner>,
    path: &Path,
    sha256_hex: &str,
    (component, from_cache): (Component, bool),
) -> Result<Plugin, Vec<PluginError>> {
    if !from_cache && let Some(cache) = &host.cache {
        cache.put(&component, sha256_hex);
    }
    let (mut problems, stubbed) = check_imports(host, path, &component).map_err(|e| vec![e])?;
    let linker = match &stubbed {
        _ if problems.is_empty() => &host.linker,
        Some(stubbed) => stubbed,
        // An import problem stubbing cannot get past: nothing more to check.
        None => return Err(problems),
    };
    let pre = match pre_instantiate(linker, path, &component) {
        Ok(pre) => pre,
        Err(e) => {
            problems.push(e);
            return Err(problems);
        }
    };
    let info = match wasmtime_wasi::runtime::in_tokio(call_info(host, &pre, path)) {
        Ok(info) => info,
        Err(e) => {
            problems.push(e);
            return Err(problems);
        }
    };
    let valid = validate_info(path, info, host.limits.max_event_types);
    let (name, version, event_types) = match valid {
        Ok(valid) if problems.is_empty() => valid,
        Ok(_) => return Err(problems),
        Err(info_problems) => {
            problems.extend(info_problems);
            return Err(problems);
        }
    };
    // The loader logs, at info, whether the plugin was routed.
    tracing::debug!(
        plugin = %name,
        version = %version,
        event_types = ?event_types,
        from_cache,
        "plugin loaded"
    );
    Ok(Plugin::new(
        host,
        path,
        Checked {
            pre,
            name,
            version,
            event_types,
            digest: digest_label(sha256_hex),
            from_cache,
        },
    ))
}

/// Refuses a component one of whose linear memories starts larger than the
/// memory cap: no instance of it could ever be created. Checked before
/// compiling, so the refusal names the real cause (the engine would refuse
/// it too, in words that read like a corrupt file). A file that does not
/// parse is left to the compiler, which says where it is broken.
fn check_memories(path: &Path, bytes: &[u8], cap_bytes: u64) -> Result<(), PluginError> {
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        let Ok(payload) = payload else {
            return Ok(());
        };
        let wasmparser::Payload::MemorySection(memories) = payload else {
            continue;
        };
        for memory in memories {
            let Ok(memory) = memory else {
                return Ok(());
            };
            let page = 1u64 << memory.page_size_log2.unwrap_or(16);
            let minimum_bytes = memory.initial.saturating_mul(page);
            if minimum_bytes > cap_bytes {
                return Err(PluginError::MemoryOverCap {
                    path: path.to_owned(),
                    minimum_bytes,
                    cap_bytes,
                });
            }
        }
    }
    Ok(())
}

/// Rejects what is plainly not a component before the compiler sees it, so
/// the commonest mistakes get the clearest messages.
fn check_header(path: &Path, bytes: &[u8]) -> Result<(), PluginError> {
    const MAGIC: &[u8] = b"\0asm";
    // The version field of a core module; a component has 0x0d 0x00 0x01 0x00.
    const CORE_MODULE_VERSION: &[u8] = &[1, 0, 0, 0];
    if bytes.is_empty() {
        return Err(PluginError::Empty {
            path: path.to_owned(),
        });
    }
    if !bytes.starts_with(MAGIC) {
        return Err(PluginError::NotWasm {
            path: path.to_owned(),
        });
    }
    if bytes.get(4..8) == Some(CORE_MODULE_VERSION) {
        return Err(PluginError::NotAComponent {
            path: path.to_owned(),
        });
    }
    Ok(())
}

/// One problem per import the host does not offer (an interface of a newer
/// or another world) or offers with another type, and a copy of the host's
/// linker in which each of those is stubbed by functions that trap, so the
/// exports and the info can be checked as well (`None` when stubbing could
/// not get past a problem).
///
/// wasmtime's type check stops at the first import it cannot satisfy: each
/// one it names is stubbed in turn and the check runs again.
fn check_imports(
    host: &HostInner,
    path: &Path,
    component: &Component,
) -> Result<(Vec<PluginError>, Option<Linker<StoreState>>), PluginError> {
    let mut linker = host.linker.clone();
    linker.allow_shadowing(true);
    let ty = component.component_type();
    let mut problems = Vec::new();
    let mut stubbed: Vec<String> = Vec::new();
    // Each round stubs one more import, so this ends.
    for _ in 0..=ty.imports(&host.engine).len() {
        let Err(e) = linker.instantiate_pre(component) else {
            return Ok((problems, Some(linker)));
        };
        let name = failed_import(&e);
        problems.push(PluginError::WrongWorld {
            path: path.to_owned(),
            reason: format!("{e:#}"),
        });
        match name {
            Some(name) if !stubbed.contains(&name) => {
                stub_import(&mut linker, &host.engine, &ty, &name).map_err(engine_error)?;
                stubbed.push(name);
            }
            // Not an import problem, or one stubbing does not fix: the exports
            // cannot be checked beyond it.
            _ => break,
        }
    }
    Ok((problems, None))
}

/// The import named by wasmtime's type-check error: "component imports
/// instance `wasi:http/types@0.2.0`, but a matching implementation was not
/// found in the linker".
fn failed_import(error: &wasmtime::Error) -> Option<String> {
    let text = error.to_string();
    let rest = text.strip_prefix("component imports ")?;
    let (_, rest) = rest.split_once('`')?;
    let (name, _) = rest.split_once('`')?;
    Some(name.to_owned())
}

/// Defines the import `name` of a component of type `ty` in `linker` with
/// functions that trap when called.
fn stub_import(
    linker: &mut Linker<StoreState>,
    engine: &wasmtime::Engine,
    ty: &types::Component,
    name: &str,
) -> wasmtime::Result<()> {
    fn trap(
        name: String,
    ) -> impl Fn(
        wasmtime::StoreContextMut<'_, StoreState>,
        types::ComponentFunc,
        &[Val],
        &mut [Val],
    ) -> wasmtime::Result<()>
    + Send
    + Sync
    + 'static {
        move |_, _, _, _| wasmtime::bail!("`{name}` is not offered by this host")
    }
    match ty.get_import(engine, name).map(|import| import.ty) {
        Some(ComponentItem::ComponentFunc(_)) => {
            linker.root().func_new(name, trap(name.to_owned()))?;
        }
        Some(ComponentItem::ComponentInstance(instance)) => {
            let mut stub = linker.instance(name)?;
            for (export, item) in instance.exports(engine) {
                match item.ty {
                    ComponentItem::ComponentFunc(_) => {
                        stub.func_new(export, trap(format!("{name}#{export}")))?;
                    }
                    ComponentItem::Resource(_) => {
                        stub.resource(export, ResourceType::host::<()>(), |_, _| Ok(()))?;
                    }
                    _ => {}
                }
            }
        }
        Some(ComponentItem::Resource(_)) => {
            linker
                .root()
                .resource(name, ResourceType::host::<()>(), |_, _| Ok(()))?;
        }
        _ => wasmtime::bail!("the import `{name}` cannot be stubbed"),
    }
    Ok(())
}

/// Resolves the imports with `linker` and checks the exports.
fn pre_instantiate(
    linker: &Linker<StoreState>,
    path: &Path,
    component: &Component,
) -> Result<HandlerPre<StoreState>, PluginError> {
    let wrong_world = |e: wasmtime::Error| PluginError::WrongWorld {
        path: path.to_owned(),
        reason: format!("{e:#}"),
    };
    let instance_pre = linker.instantiate_pre(component).map_err(wrong_world)?;
    HandlerPre::new(instance_pre).map_err(wrong_world)
}

/// Instantiates the plugin and calls its `info`, under the delivery limits.
async fn call_info(
    host: &HostInner,
    pre: &HandlerPre<StoreState>,
    path: &Path,
) -> Result<PluginInfo, PluginError> {
    let limits = &host.limits;
    let Ok(_permit) = host.running.clone().acquire_owned().await else {
        return Err(PluginError::Engine {
            reason: "the plugin host is shutting down".into(),
        });
    };
    let _ticking = host.ticker.call();
    // The plugin has no name yet: its output during `info` is tagged with
    // the file name.
    let label: Arc<str> = path
        .file_name()
        .map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        )
        .into();
    let mut instance = Instance::new(store::new_store(&host.engine, label, limits, None));
    // Nothing is opened to the `info` call: the plugin has no name yet.
    store::begin_call(&mut instance.store, "info", limits, Default::default());
    let result = invoke::run(pre, &mut instance, limits, |handler, store| {
        Box::pin(async move { handler.mailroom_plugin_plugin().call_info(store).await })
    })
    .await;
    instance.store.data().output.finish();
    result.map_err(|failure| match failure {
        invoke::Failure::Instantiate(reason) => PluginError::Instantiate {
            path: path.to_owned(),
            reason,
        },
        other => PluginError::InfoTrapped {
            path: path.to_owned(),
            reason: other.reason(limits),
        },
    })
}

/// Checks what `info` returned: a name, a version, and at least one valid
/// event type (duplicates are dropped), at most `max_event_types` of them. Every broken rule is a problem.
/// mailroom-sdk checks the same rules when a plugin compiles
/// (`sdk/src/checks.rs`): keep the two in step.
fn validate_info(
    path: &Path,
    info: PluginInfo,
    max_event_types: u32,
) -> Result<(String, String, Vec<String>), Vec<PluginError>> {
    let invalid = |reason: String| PluginError::InvalidInfo {
        path: path.to_owned(),
        reason,
    };
    let mut problems = Vec::new();
    let name = info.name.trim();
    if name.is_empty() {
        problems.push(invalid("its name is empty".into()));
    }
    for (field, value) in [("name", name), ("version", info.version.as_str())] {
        if value.len() > MAX_INFO_FIELD_BYTES {
            problems.push(invalid(format!(
                "its {field} is {} bytes long, over the {MAX_INFO_FIELD_BYTES}-byte limit",
                value.len()
            )));
        }
        if value.chars().any(char::is_control) {
            problems.push(invalid(format!("its {field} has a control character")));
        }
    }
    if info.event_types.is_empty() {
        problems.push(invalid(
            "it names no event types: it must handle at least one".into(),
        ));
    }
    if info.event_types.len() > usize::try_from(max_event_types).unwrap_or(usize::MAX) {
        // Each would be checked, routed and claimed by: refused whole.
        problems.push(invalid(format!(
            "it names {} event types, over the limit of {max_event_types} per plugin \
             (plugins.max_event_types): split it into several plugins",
            info.event_types.len()
        )));
        return Err(problems);
    }
    let mut event_types: Vec<String> = Vec::with_capacity(info.event_types.len());
    for event_type in info.event_types {
        match validate_event_type(&event_type) {
            Err(e) => problems.push(invalid(format!("invalid event type: {e}"))),
            Ok(()) if !event_types.contains(&event_type) => event_types.push(event_type),
            Ok(()) => {}
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok((name.to_owned(), info.version, event_types))
}

fn engine_error(e: wasmtime::Error) -> PluginError {
    PluginError::Engine {
        reason: format!("{e:#}"),
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// The digest of a plugin file's bytes as it is shown and stored:
/// `sha256:<hex>`. The same file always has the same digest.
pub fn file_digest(bytes: &[u8]) -> String {
    digest_label(&hex(&Sha256::digest(bytes)))
}

fn digest_label(sha256_hex: &str) -> String {
    format!("sha256:{sha256_hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(name: &str, event_types: &[&str]) -> PluginInfo {
        PluginInfo {
            name: name.into(),
            version: "1.0.0".into(),
            event_types: event_types.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn info_rules() {
        let path = Path::new("p.wasm");
        let (name, _, types) =
            validate_info(path, info(" shop ", &["a.b", "a.b", "c"]), 1000).expect("valid");
        assert_eq!(name, "shop");
        assert_eq!(types, ["a.b", "c"]);
        for (bad, words) in [
            (info("", &["a"]), "name is empty"),
            (info("x", &[]), "no event types"),
            (info("x", &["ok", "not ok"]), "invalid event type"),
        ] {
            let problems = validate_info(path, bad, 1000).expect_err("invalid");
            assert_eq!(problems.len(), 1, "{problems:?}");
            let err = problems[0].to_string();
            assert!(err.contains(words), "{err}");
            assert!(err.contains("p.wasm"), "{err}");
        }
    }

    #[test]
    fn every_broken_info_rule_is_reported() {
        let problems = validate_info(
            Path::new("p.wasm"),
            PluginInfo {
                name: "a\nb".into(),
                version: "x".repeat(300),
                event_types: vec!["has space".into(), String::new(), "ok".into()],
            },
            1000,
        )
        .expect_err("invalid");
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(text.len(), 4, "{text:#?}");
        assert!(text[0].contains("its name has a control character"));
        assert!(text[1].contains("its version is 300 bytes long"));
        assert!(text[2].contains("`has space`"));
        assert!(text[3].contains("event type is empty"));
    }

    #[test]
    fn event_types_past_the_limit_are_one_problem() {
        let many: Vec<String> = (0..5).map(|i| format!("t{i}")).collect();
        let refs: Vec<&str> = many.iter().map(String::as_str).collect();
        assert!(validate_info(Path::new("p.wasm"), info("x", &refs), 5).is_ok());
        let problems =
            validate_info(Path::new("p.wasm"), info("x", &refs), 4).expect_err("over the limit");
        assert_eq!(problems.len(), 1, "{problems:?}");
        let text = problems[0].to_string();
        assert!(text.contains("names 5 event types, over the limit of 4"), "{text}");
        assert!(text.contains("plugins.max_event_types"), "{text}");
    }

    #[test]
    fn a_memory_minimum_over_the_cap_is_named() {
        let mut module = wasm_encoder::Module::new();
        let mut memories = wasm_encoder::MemorySection::new();
        memories.memory(wasm_encoder::MemoryType {
            minimum: 2048, // 128 MiB
            maximum: None,
            memory64: false,
            shared: false,
            page_size_log2: None,
        });
        module.section(&memories);
        let mut component = wasm_encoder::Component::new();
        component.section(&wasm_encoder::ModuleSection(&module));
        let bytes = component.finish();
        let path = Path::new("p.wasm");
        assert!(check_memories(path, &bytes, 128 << 20).is_ok());
        let err = check_memories(path, &bytes, 64 << 20).expect_err("over the cap");
        let text = err.to_string();
        assert!(
            text.contains("asks for 128 MiB of memory at start") && text.contains("64 MiB"),
            "{text}"
        );
        assert!(!text.contains("truncated"), "{text}");
    }

    #[test]
    fn headers() {
        let path = Path::new("p.wasm");
        assert!(matches!(
            check_header(path, b""),
            Err(PluginError::Empty { .. })
        ));
        assert!(matches!(
            check_header(path, b"hello"),
            Err(PluginError::NotWasm { .. })
        ));
        assert!(matches!(
            check_header(path, b"\0asm\x01\0\0\0"),
            Err(PluginError::NotAComponent { .. })
        ));
        assert!(check_header(path, b"\0asm\x0d\0\x01\0").is_ok());
    }

    #[test]
    fn hex_is_lowercase_and_padded() {
        assert_eq!(hex(&[0, 15, 255]), "000fff");
    }
}
