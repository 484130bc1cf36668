//! The loader over a real plugin host, a real SQLite store and real plugin
//! files: the order of events for one file, and what a file that is gone or
//! is not a file leaves in the plugin registry.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use mailroom::loader::Loader;
use mailroom::plugin::{HostConfig, PluginHost};
use mailroom::routing::Routes;
use mailroom::store::{Location, OpenOptions, PluginRegistry, Store};
use mailroom::watcher::FolderEvent;
use mailroom_test_artifacts as artifacts;

struct Setup {
    _dir: tempfile::TempDir,
    plugins: PathBuf,
    routes: Routes,
    store: Store,
    loader: Loader,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).expect("mkdir");
    let location = Location::Sqlite(dir.path().join("mailroom.db"));
    let store = Store::open(&location, &OpenOptions::default())
        .await
        .expect("store");
    let host = PluginHost::new(HostConfig {
        cache_dir: Some(Path::new(env!("CARGO_TARGET_TMPDIR")).join("loader-cache")),
        ..HostConfig::default()
    })
    .expect("host");
    let routes = Routes::new();
    let loader = Loader::new(
        host,
        routes.clone(),
        store.clone(),
        plugins.clone(),
        Arc::default(),
    );
    Setup {
        _dir: dir,
        plugins,
        routes,
        store,
        loader,
    }
}

async fn registry(store: &Store) -> PluginRegistry {
    store.plugin_registry().await.expect("registry")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_for_one_file_apply_in_order_and_a_replacement_then_a_removal_ends_removed() {
    let s = setup().await;
    let file = artifacts::deploy(artifacts::ORDER_VALIDATOR, &s.plugins, "p.wasm").expect("deploy");
    let other = artifacts::deploy(artifacts::BEHAVIOUR, &s.plugins, "other.wasm").expect("deploy");
    let (events, received) = tokio::sync::mpsc::unbounded_channel();
    for event in [
        FolderEvent::Changed(file.clone()),
        FolderEvent::Changed(other.clone()),
        FolderEvent::Changed(file.clone()),
        FolderEvent::Removed(file.clone()),
    ] {
        events.send(event).expect("send");
    }
    // The file stays: only the order of the events says it ends removed.
    drop(events);
    s.loader.run(received).await;
    assert!(s.routes.at(&file).is_none(), "the removal came last");
    assert!(s.routes.at(&other).is_some());
    let registry = registry(&s.store).await;
    assert!(
        registry.loaded.iter().all(|p| Path::new(&p.path) != file)
            && registry.rejected.is_empty(),
        "{registry:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_gone_before_it_is_read_is_not_listed_but_a_dangling_link_is() {
    let s = setup().await;
    let gone = s.plugins.join("gone.wasm");
    s.loader.apply(FolderEvent::Changed(gone)).await;
    assert!(registry(&s.store).await.rejected.is_empty());

    let dangling = s.plugins.join("dangling.wasm");
    std::os::unix::fs::symlink(s.plugins.join("nowhere.wasm"), &dangling).expect("symlink");
    s.loader.apply(FolderEvent::Changed(dangling.clone())).await;
    let rejected = registry(&s.store).await.rejected;
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert_eq!(Path::new(&rejected[0].path), dangling);
}
