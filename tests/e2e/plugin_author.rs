//! The plugin author's loop through the real binary: `mailroom plugin check`
//! and `mailroom plugin run` on the test guests, and `mailroom plugin new`
//! through to a plugin serving in a running host (`cargo test`, a wasm build,
//! `check`, `run`, the compile-time checks of the SDK, and `plugin watch`).

#[path = "../../runtime/tests/cli_support/mod.rs"]
mod cli_support;
#[path = "harness/mod.rs"]
mod harness;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use cli_support::{Run, Workdir};
use std::time::{Duration, Instant};

use harness::{TIMEOUT, TestHost, store};
use mailroom_test_artifacts::{BEHAVIOUR, MANY_PROBLEMS, WEBHOOK, WRONG_WORLD};
use serde_json::{Value, json};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[track_caller]
fn status(run: &Run, code: i32) {
    assert_eq!(run.code, code, "{run:#?}");
}

#[track_caller]
fn json_of(run: &Run) -> Value {
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {run:#?}"))
}

#[test]
fn check_accepts_a_good_plugin_and_lists_every_problem_of_a_bad_one() {
    let work = Workdir::new();

    let ok = work.run(&["plugin", "check", BEHAVIOUR]);
    status(&ok, 0);
    let out = ok.stdout.clone();
    assert!(out.contains("ok, the host would load it"), "{out}");
    assert!(out.contains("name:        behaviour"), "{out}");
    let ok = work.run(&["plugin", "check", BEHAVIOUR, "--json"]);
    status(&ok, 0);
    let report = json_of(&ok);
    assert_eq!(report["ok"], true);
    assert_eq!(report["plugin"]["name"], "behaviour");
    assert_eq!(report["plugin"]["event_types"], json!(["behaviour"]));
    assert!(report["plugin"]["digest"].as_str().is_some_and(|d| d.starts_with("sha256:")));
    assert_eq!(report["problems"], json!([]));

    // An import no host offers, and three broken rules of the info: all four.
    let bad = work.run(&["plugin", "check", MANY_PROBLEMS, "--json"]);
    status(&bad, 1);
    let report = json_of(&bad);
    assert_eq!(report["ok"], false);
    assert_eq!(report["plugin"], Value::Null);
    let problems = report["problems"].as_array().expect("problems");
    let kinds: Vec<&str> = problems.iter().filter_map(|p| p["kind"].as_str()).collect();
    assert_eq!(
        kinds,
        ["wrong-world", "invalid-info", "invalid-info", "invalid-info"],
        "{problems:#?}"
    );
    let messages: Vec<&str> = problems.iter().filter_map(|p| p["message"].as_str()).collect();
    assert!(messages[0].contains("test:many-problems/ledger"), "{}", messages[0]);
    assert!(messages[1].contains("its name has a control character"), "{}", messages[1]);
    assert!(messages[2].contains("`has space`"), "{}", messages[2]);
    assert!(messages[3].contains("event type is empty"), "{}", messages[3]);
    // SDK users write NAME and EVENT_TYPES, not an `info` function.
    assert!(messages[1].contains("Plugin::NAME"), "{}", messages[1]);
    let human = work.run(&["plugin", "check", MANY_PROBLEMS]);
    status(&human, 1);
    let out = human.stdout.clone();
    assert!(out.contains("4 problems, the host would refuse it"), "{out}");
    assert!(out.contains("\n  4. "), "{out}");

    let wrong = work.run(&["plugin", "check", WRONG_WORLD, "--json"]);
    status(&wrong, 1);
    assert_eq!(json_of(&wrong)["problems"][0]["kind"], "wrong-world");

    work.write("notes.wasm", "not wasm");
    let not_wasm = work.run(&["plugin", "check", "notes.wasm"]);
    status(&not_wasm, 1);
    assert!(not_wasm.stdout.contains("not a WebAssembly file"));
}

#[test]
fn run_delivers_one_event_and_exits_by_outcome() {
    let work = Workdir::new();
    let run = |payload: Value, extra: &[&str]| {
        let payload = payload.to_string();
        let mut args = vec!["plugin", "run", BEHAVIOUR, "behaviour", payload.as_str()];
        args.extend_from_slice(extra);
        work.run(&args)
    };

    let ack = run(
        json!({"action": "log", "message": "hello from the guest",
               "then": {"action": "emit", "event_type": "behaviour.done", "payload": {"n": 1}, "key_prefix": "k-"}}),
        &["--json"],
    );
    status(&ack, 0);
    let report = json_of(&ack);
    assert_eq!(report["outcome"], "ack");
    assert_eq!(report["plugin"]["name"], "behaviour");
    assert_eq!(report["emitted"][0]["event_type"], "behaviour.done");
    assert_eq!(report["emitted"][0]["payload"], json!({"n": 1}));
    assert_eq!(report["emitted"][0]["key"], "k-0");
    assert_eq!(report["log"][0]["message"], "hello from the guest");
    assert_eq!(report["log"][0]["level"], "info");
    assert!(report["elapsed_ms"].as_f64().is_some_and(|ms| ms > 0.0));

    let human = run(json!({"action": "log", "message": "hello from the guest"}), &[]);
    status(&human, 0);
    let out = human.stdout.clone();
    assert!(out.contains("behaviour 0.1.0 handled behaviour (attempt 1) in "), "{out}");
    assert!(out.contains(": ack\n"), "{out}");
    assert!(out.contains("info   hello from the guest"), "{out}");

    let retry = run(json!({"action": "retry_after", "ms": 1500, "reason": "later"}), &["--json"]);
    status(&retry, 3);
    let report = json_of(&retry);
    assert_eq!(report["outcome"], "retry");
    assert_eq!(report["retry_after_ms"], 1500);
    assert_eq!(report["reason"], "later");

    let fatal = run(json!({"action": "fatal", "reason": "never"}), &[]);
    status(&fatal, 4);
    assert!(fatal.stdout.contains("fatal (the host would dead-letter it): never"));

    let panic = run(json!({"action": "panic", "message": "boom"}), &["--json"]);
    status(&panic, 3);
    assert_eq!(json_of(&panic)["reason"], "panicked: boom");

    // The delivered event carries the options; the payload comes from stdin.
    let echo = work.run_stdin(&[
            "plugin", "run", BEHAVIOUR, "behaviour", "-", "--attempt", "3", "--key", "k-7",
            "--source", "cli", "--json",
        ], r#"{"action": "echo"}"#);
    status(&echo, 0);
    let seen = &json_of(&echo)["emitted"][0]["payload"];
    assert_eq!(seen["attempt"], 3);
    assert_eq!(seen["key"], "k-7");
    assert_eq!(seen["source"], "cli");
    assert_eq!(seen["payload"], r#"{"action": "echo"}"#);

    // The configured limits are the ones a delivery runs under.
    work.write("mailroom.toml", "[plugins]\ntimeout = \"300ms\"\n");
    let slow = run(json!({"action": "loop"}), &["--json"]);
    status(&slow, 3);
    assert_eq!(json_of(&slow)["reason"], "timed out after 300ms");

    // The host would never route another type to this plugin.
    let other = work.run(&["plugin", "run", BEHAVIOUR, "order.created", "{}"]);
    status(&other, 1);
    assert!(other.stderr.contains("does not handle `order.created`: it handles behaviour"));
    let refused = work.run(&["plugin", "run", MANY_PROBLEMS, "many.problems"]);
    status(&refused, 1);
    assert!(refused.stderr.contains("has 4 problems"), "{refused:#?}");
}

// ----- `mailroom plugin new` and the rest of the loop ----------------------

/// Where generated crates build: one folder under the workspace's target
/// directory, kept between runs, so their dependencies compile once.
#[test]
fn run_gives_the_plugin_its_configuration_and_set_values() {
    let work = Workdir::new();
    let run = |extra: &[&str]| {
        let mut args = vec![
            "plugin",
            "run",
            WEBHOOK,
            "notification.requested",
            r#"{"to":"ada@example.com"}"#,
            "--json",
        ];
        args.extend_from_slice(extra);
        work.run(&args)
    };
    // Without configuration the plugin cannot deliver: fatal, naming the key.
    let bare = run(&[]);
    status(&bare, 4);
    let reason = json_of(&bare)["reason"].as_str().unwrap_or("").to_owned();
    assert!(reason.contains("\"url\""), "{reason}");
    // With both values set, it gets past them to the request, which no
    // allowed origin lets through: the refusal names the origin.
    let set = run(&[
        "--set",
        "url=http://127.0.0.1:9/hooks",
        "--set",
        "secret=s3cret",
    ]);
    let report = json_of(&set);
    let reason = report["reason"].as_str().unwrap_or("").to_owned();
    assert!(!reason.contains("is not set"), "{reason}");
    assert!(reason.contains("127.0.0.1:9"), "{reason}");
    assert!(!set.stdout.contains("s3cret"), "{}", set.stdout);
    let bad = work.run(&["plugin", "run", WEBHOOK, "notification.requested", "{}", "--set", "nokey"]);
    assert_ne!(bad.code, 0, "{}", bad.stderr);
}

fn generated_target_dir() -> PathBuf {
    // <target dir>/<profile>/mailroom
    Path::new(harness::MAILROOM)
        .ancestors()
        .nth(2)
        .expect("the binary is inside a target directory")
        .join("plugin-new")
}

/// `cargo <args>` in `dir`, offline, without the settings of the build that
/// runs the tests (they are meant for the host), into the shared target dir.
fn cargo(dir: &Path, args: &[&str]) -> Output {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command.args(args).arg("--offline").current_dir(dir);
    scrub(&mut command);
    command.output().expect("run cargo")
}

/// Removes the outer build's settings and points cargo at the shared target
/// directory.
fn scrub(command: &mut Command) {
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_BUILD_TARGET_DIR",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_BUILD_RUSTC_WORKSPACE_WRAPPER",
    ] {
        command.env_remove(var);
    }
    command.env("CARGO_TARGET_DIR", generated_target_dir());
    command.env("CARGO_NET_OFFLINE", "true");
}

#[track_caller]
fn succeeded(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what} failed:\nstdout: {}\nstderr: {}",
        text(&output.stdout),
        text(&output.stderr)
    );
}

/// The handler an author writes in place of the template's.
const HANDLER: &str = r#"    fn handle(event: Event) -> Result<(), Error> {
        let payload: serde_json::Value = event.json()?;
        let Some(name) = payload["name"].as_str() else {
            return Err(Error::fatal("the payload has no name"));
        };
        log::info!("hello, {name}");
        mailroom_sdk::emit("hello.sent", &serde_json::json!({ "to": name, "text": "GREETING" }))?;
        Ok(())
    }
"#;

/// Replaces the template's `handle` in `lib.rs` with [`HANDLER`], its
/// greeting set to `greeting`.
fn write_handler(crate_dir: &Path, greeting: &str) {
    let path = crate_dir.join("src/lib.rs");
    let lib = std::fs::read_to_string(&path).expect("read lib.rs");
    let start = lib.find("    fn handle(").expect("the template has a handler");
    let end = start + lib[start..].find("\n    }\n").expect("the handler ends") + "\n    }\n".len();
    let lib = format!(
        "{}{}{}",
        &lib[..start],
        HANDLER.replace("GREETING", greeting),
        &lib[end..]
    );
    std::fs::write(&path, lib).expect("write lib.rs");
}

fn set_in_lib(crate_dir: &Path, from: &str, to: &str) {
    let path = crate_dir.join("src/lib.rs");
    let lib = std::fs::read_to_string(&path).expect("read lib.rs");
    assert!(lib.contains(from), "{from} not in lib.rs");
    std::fs::write(&path, lib.replace(from, to)).expect("write lib.rs");
}

#[test]
fn a_new_plugin_builds_alone_checks_runs_and_serves() {
    // Outside the repository: the crate must not lean on its workspace.
    let work = Workdir::new();
    let here = work.path();
    let created = work.run(&["plugin", "new", "hello-world", "--event-type", "greeting.requested"]);
    created.ok();
    let crate_dir = here.join("hello-world");
    assert!(created.stdout.contains("cargo build --release --target wasm32-wasip2"));
    for file in ["Cargo.toml", "README.md", "src/lib.rs", "mailroom-sdk/Cargo.toml", "mailroom-sdk/wit/plugin.wit"] {
        assert!(crate_dir.join(file).is_file(), "{file} missing");
    }
    let again = work.run(&["plugin", "new", "hello-world"]);
    status(&again, 1);
    assert!(again.stderr.contains("exists and is not empty"));

    // The template's tests pass as generated: natively, and in the host.
    let mut test = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    test.args(["test", "--offline", "--", "--include-ignored"])
        .current_dir(&crate_dir)
        .env("MAILROOM_BIN", harness::MAILROOM);
    scrub(&mut test);
    let tested = test.output().expect("run cargo test");
    succeeded(&tested, "cargo test in the new crate");
    assert!(text(&tested.stdout).contains("the_host_acknowledges_an_event ... ok"), "{}", text(&tested.stdout));

    // An author's handler, built for the host.
    write_handler(&crate_dir, "Hello");
    let wasm = generated_target_dir().join("wasm32-wasip2/release/hello_world.wasm");
    let build = || cargo(&crate_dir, &["build", "--release", "--target", "wasm32-wasip2"]);
    succeeded(&build(), "the wasm build");
    let wasm_arg = wasm.to_str().expect("a UTF-8 path");

    let checked = work.run(&["plugin", "check", wasm_arg, "--json"]);
    status(&checked, 0);
    assert_eq!(json_of(&checked)["plugin"]["name"], "hello-world");
    assert_eq!(json_of(&checked)["plugin"]["event_types"], json!(["greeting.requested"]));
    let ran = work.run(&["plugin", "run", wasm_arg, "greeting.requested", r#"{"name": "Ada"}"#, "--json"]);
    status(&ran, 0);
    let report = json_of(&ran);
    assert_eq!(report["emitted"][0]["event_type"], "hello.sent");
    assert_eq!(report["emitted"][0]["payload"], json!({"to": "Ada", "text": "Hello"}));
    assert_eq!(report["log"][0]["message"], "hello, Ada");
    let fatal = work.run(&["plugin", "run", wasm_arg, "greeting.requested", "{}"]);
    status(&fatal, 4);

    // What the host would refuse does not compile, and the error names it.
    for (from, to, rule) in [
        (r#"NAME: &'static str = "hello-world""#, r#"NAME: &'static str = " ""#, "Plugin::NAME is empty"),
        (r#"&["greeting.requested"]"#, r#"&["greeting requested"]"#, "outside [A-Za-z0-9._:-]: `greeting requested`"),
    ] {
        set_in_lib(&crate_dir, from, to);
        let refused = build();
        assert!(!refused.status.success(), "{to} compiled");
        let stderr = text(&refused.stderr);
        assert!(stderr.contains(rule), "{stderr}");
        set_in_lib(&crate_dir, to, from);
    }

    // Deployed by the watch into a running host, and serving.
    let host = TestHost::new();
    host.start();
    let mut watch = Watch::start(&crate_dir, &host.plugins_dir());
    watch.wait_for_line("deployed hello-world 0.1.0");
    host.wait_loaded("hello-world");
    let id = host.enqueue_one("greeting.requested", json!({"name": "Ada"}));
    host.wait_drained("greeting.requested");
    let follow_up = host.wait_for("the follow-up event", || {
        store::messages(&host.db(), "hello.sent").into_iter().next()
    });
    assert_eq!(follow_up.payload, json!({"to": "Ada", "text": "Hello"}));
    assert_eq!(follow_up.correlation_id, id);

    // A broken edit is reported and the watch goes on; the fix is deployed.
    set_in_lib(&crate_dir, "Ok(())\n    }\n}", "Ok(())\n    }\n}\nthis does not compile");
    watch.wait_for_line("build failed");
    write_handler(&crate_dir, "Bonjour");
    set_in_lib(&crate_dir, "\nthis does not compile", "");
    watch.wait_for_line_after("deployed hello-world 0.1.0", "build failed");
    host.wait_until("the new build to be loaded", || {
        let plugins = host.plugins();
        plugins["loaded"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| p["name"] == "hello-world" && p["digest"] != checked_digest(&json_of(&checked)))
    });
    host.enqueue_one("greeting.requested", json!({"name": "Bo"}));
    host.wait_for("the new build's follow-up", || {
        store::messages(&host.db(), "hello.sent")
            .into_iter()
            .find(|m| m.payload == json!({"to": "Bo", "text": "Bonjour"}))
    });
    watch.stop();
}

fn checked_digest(report: &Value) -> Value {
    report["plugin"]["digest"].clone()
}

/// A `mailroom plugin watch` process, its output in a file.
struct Watch {
    child: Child,
    log: tempfile::NamedTempFile,
}

impl Watch {
    fn start(crate_dir: &Path, plugins: &Path) -> Self {
        let log = tempfile::NamedTempFile::new().expect("log file");
        let mut command = Command::new(harness::MAILROOM);
        command
            .args(["plugin", "watch"])
            .arg(crate_dir)
            .arg("--plugins")
            .arg(plugins)
            .current_dir(crate_dir)
            .stdin(Stdio::null())
            .stdout(log.reopen().expect("log"))
            .stderr(log.reopen().expect("log"));
        scrub(&mut command);
        let child = command.spawn().expect("spawn the watch");
        Self { child, log }
    }

    fn output(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// Waits until the output has a line containing `needle`.
    fn wait_for_line(&mut self, needle: &str) {
        self.wait_for_line_after(needle, "");
    }

    /// Waits until a line containing `needle` follows the last line
    /// containing `after`.
    fn wait_for_line_after(&mut self, needle: &str, after: &str) {
        let deadline = Instant::now() + TIMEOUT * 3;
        loop {
            let output = self.output();
            let tail = match output.rfind(after) {
                Some(at) if !after.is_empty() => &output[at..],
                _ => output.as_str(),
            };
            if tail.contains(needle) {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the watch exited ({status}):\n{output}");
            }
            assert!(Instant::now() < deadline, "no {needle:?} from the watch:\n{output}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
