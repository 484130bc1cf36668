//! `mailroom run` refuses a bad configuration, naming every problem, and
//! creates a missing plugin folder.

#[path = "harness/mod.rs"]
mod harness;

use harness::{TestHost, store};
use mailroom_test_artifacts::BEHAVIOUR;
use serde_json::json;

#[test]
fn run_with_a_bad_config_exits_non_zero_listing_every_problem() {
    let host = TestHost::with_config_text(
        r#"[dispatcher]
concurrency = 0
poll_intervall = "20ms"
"#,
    );
    host.spawn(&[]);
    let status = host.wait_exit();
    let log = host.log();
    assert!(
        !status.success(),
        "a bad config is refused, got {status}:\n{log}"
    );
    assert!(
        log.contains("dispatcher.concurrency"),
        "the invalid value is named:\n{log}"
    );
    assert!(
        log.contains("poll_intervall"),
        "the unknown key is named:\n{log}"
    );
    assert!(
        !host.db().exists(),
        "nothing was started, not even the store"
    );
}

#[test]
fn run_creates_a_missing_plugin_folder_whose_parent_exists_and_watches_it() {
    let host = TestHost::with_config_text(
        r#"[plugins]
dir = "deploy/plugins"

[dispatcher]
poll_interval = "20ms"

[log]
format = "json"
"#,
    );
    let folder = host.path().join("deploy/plugins");
    // A missing parent is taken for a typo and refused (see cli_config);
    // only the last step is created.
    std::fs::create_dir(host.path().join("deploy")).expect("parent");
    assert!(!folder.exists());
    host.start();
    assert!(folder.is_dir(), "the host created its plugin folder");

    mailroom_test_artifacts::deploy(BEHAVIOUR, &folder, "behaviour.wasm").expect("deploy");
    host.wait_loaded("behaviour");
    let id = host.enqueue_one("behaviour", json!({ "action": "echo" }));
    host.wait_until("the event to be handled", || {
        store::messages(&host.db(), "behaviour.echo")
            .iter()
            .any(|e| e.correlation_id == id)
    });
    host.stop();
}
