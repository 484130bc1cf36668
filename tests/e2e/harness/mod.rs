//! The end-to-end harness: a real `mailroom` binary in a temporary directory
//! with its own `mailroom.toml`, plugin folder and SQLite store.
//!
//! - [`TestHost`] owns the directory and the `mailroom run` process (started,
//!   stopped with SIGTERM or SIGKILL, restarted), runs the other subcommands
//!   there (`enqueue`, `stats`, `dlq`, `plugins`) and parses their `--json`
//!   output, and waits for conditions by polling them.
//! - [`store`] reads the store file directly, for what no subcommand lists
//!   (the follow-up events waiting in the queue, with their payloads).
//!
//! When a test fails, dropping its [`TestHost`] prints the host's log (its
//! stderr, one JSON object per line) so the failure can be read in context.
//!
//! Nothing here asserts how long anything takes: every wait polls a
//! condition under a generous [`TIMEOUT`], because test machines are slow
//! and shared.

#![allow(dead_code)] // Each test binary uses a different part of the harness.

pub mod once;
pub mod receiver;
pub mod store;

use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long any wait may take before the test fails.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// How often a condition is polled.
const POLL: Duration = Duration::from_millis(50);

/// The binary under test.
pub const MAILROOM: &str = env!("CARGO_BIN_EXE_mailroom");

/// The log line the host writes once it is ready (store open, plugins
/// loaded, folder watched, dispatcher running).
const READY_LINE: &str = "mailroom host running";

/// The settings a test may change in the host's `mailroom.toml`. Defaults
/// keep every delay short (backoff base 20 ms, cap 200 ms, poll 20 ms).
#[derive(Debug, Clone)]
pub struct Settings {
    /// `dispatcher.concurrency`.
    pub concurrency: usize,
    /// `dispatcher.lease`.
    pub lease: &'static str,
    /// `dispatcher.shutdown_grace`.
    pub shutdown_grace: &'static str,
    /// `plugins.timeout` (must stay below `lease`).
    pub plugin_timeout: &'static str,
    /// `retry.max_attempts`.
    pub max_attempts: u32,
    /// `dispatcher.poll_interval`.
    pub poll_interval: &'static str,
    /// `dispatcher.reclaim_interval`.
    pub reclaim_interval: &'static str,
    /// `log.level`.
    pub log_level: &'static str,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            concurrency: 2,
            lease: "30s",
            shutdown_grace: "10s",
            plugin_timeout: "10s",
            max_attempts: 10,
            poll_interval: "20ms",
            reclaim_interval: "200ms",
            log_level: "info",
        }
    }
}

impl Settings {
    /// The `mailroom.toml` these settings make.
    pub fn toml(&self) -> String {
        format!(
            r#"[store]
path = "mailroom.db"

[plugins]
dir = "plugins"
timeout = "{plugin_timeout}"

[dispatcher]
concurrency = {concurrency}
poll_interval = "{poll_interval}"
reclaim_interval = "{reclaim_interval}"
lease = "{lease}"
shutdown_grace = "{shutdown_grace}"

[retry]
max_attempts = {max_attempts}
backoff_base = "20ms"
backoff_cap = "200ms"

[log]
format = "json"
level = "{log_level}"
"#,
            plugin_timeout = self.plugin_timeout,
            concurrency = self.concurrency,
            lease = self.lease,
            shutdown_grace = self.shutdown_grace,
            max_attempts = self.max_attempts,
            poll_interval = self.poll_interval,
            reclaim_interval = self.reclaim_interval,
            log_level = self.log_level,
        )
    }
}

/// What a subcommand printed and how it exited.
#[derive(Debug)]
pub struct CliOutput {
    /// The command line, for messages.
    pub command: String,
    /// Exit status.
    pub status: ExitStatus,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl CliOutput {
    fn from_output(command: String, output: Output) -> Self {
        Self {
            command,
            status: output.status,
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Panics, showing everything, unless the command exited 0.
    pub fn success(self) -> Self {
        assert!(self.status.success(), "`{}` failed:\n{self}", self.command);
        self
    }

    /// Standard output parsed as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("`{}` did not print JSON ({e}):\n{self}", self.command))
    }
}

impl std::fmt::Display for CliOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "  status: {}\n  stdout: {}\n  stderr: {}",
            self.status,
            self.stdout.trim_end(),
            self.stderr.trim_end()
        )
    }
}

/// A temporary Mailroom installation and, while started, its host process.
#[derive(Debug)]
pub struct TestHost {
    dir: tempfile::TempDir,
    /// The running `mailroom run`, if any. Behind a mutex so that polling
    /// closures can borrow the host while a wait checks the process.
    child: Mutex<Option<Child>>,
    /// How many times the host was started (each run logs to its own file).
    runs: Mutex<usize>,
    /// Environment variables every command gets (see [`TestHost::set_env`]).
    env: Mutex<Vec<(String, String)>>,
}

impl TestHost {
    /// A new installation with default [`Settings`] and an empty plugin
    /// folder. The host is not started.
    pub fn new() -> Self {
        Self::with_settings(&Settings::default())
    }

    /// A new installation with `settings`. The host is not started.
    pub fn with_settings(settings: &Settings) -> Self {
        Self::with_config_text(&settings.toml())
    }

    /// A new installation whose `mailroom.toml` is `config`, verbatim.
    pub fn with_config_text(config: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("mailroom-e2e-")
            .tempdir()
            .expect("create a temporary directory");
        fs::write(dir.path().join("mailroom.toml"), config).expect("write mailroom.toml");
        fs::create_dir(dir.path().join("plugins")).expect("create the plugin folder");
        Self {
            dir,
            child: Mutex::new(None),
            runs: Mutex::new(0),
            env: Mutex::new(Vec::new()),
        }
    }

    /// Sets `name=value` in the environment of every later command (the
    /// host and the other subcommands), as an operator's shell would.
    pub fn set_env(&self, name: &str, value: &str) {
        self.env
            .lock()
            .expect("env lock")
            .push((name.to_owned(), value.to_owned()));
    }

    /// Replaces the installation's `mailroom.toml` with `config`.
    pub fn write_config(&self, config: &str) {
        fs::write(self.path().join("mailroom.toml"), config).expect("write mailroom.toml");
    }

    /// The installation's directory (the host's working directory).
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The watched plugin folder.
    pub fn plugins_dir(&self) -> PathBuf {
        self.path().join("plugins")
    }

    /// The SQLite store.
    pub fn db(&self) -> PathBuf {
        self.path().join("mailroom.db")
    }

    /// Copies `component` into the plugin folder as an operator should:
    /// written as `<file_name>.tmp`, then renamed.
    pub fn deploy(&self, component: &str, file_name: &str) -> PathBuf {
        mailroom_test_artifacts::deploy(component, &self.plugins_dir(), file_name)
            .unwrap_or_else(|e| panic!("deploy {component} as {file_name}: {e}"))
    }

    /// Writes `bytes` into the plugin folder as `file_name` (through a
    /// temporary file and a rename, so the watcher reads the whole file).
    pub fn drop_file(&self, file_name: &str, bytes: &[u8]) -> PathBuf {
        let target = self.plugins_dir().join(file_name);
        let temporary = self.plugins_dir().join(format!("{file_name}.tmp"));
        fs::write(&temporary, bytes).expect("write a plugin file");
        fs::rename(&temporary, &target).expect("rename a plugin file into place");
        target
    }

    // ----- the host process -------------------------------------------------

    /// Spawns `mailroom run` in the installation's directory with `args`
    /// after `run`, without waiting for it to be ready.
    pub fn spawn(&self, args: &[&str]) {
        let mut child = self.child.lock().expect("child lock");
        assert!(child.is_none(), "the host is already running");
        let run = {
            let mut runs = self.runs.lock().expect("runs lock");
            *runs += 1;
            *runs
        };
        let log = File::create(self.log_path(run)).expect("create the host log");
        let mut command = self.command(&["run"]);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log file"))
            .stderr(log);
        *child = Some(command.spawn().expect("spawn `mailroom run`"));
    }

    /// Starts `mailroom run` and waits until it logs that it is running.
    pub fn start(&self) {
        self.spawn(&[]);
        let run = self.run_count();
        self.wait_until("the host to log that it is running", || {
            fs::read_to_string(self.log_path(run)).is_ok_and(|log| log.contains(READY_LINE))
        });
    }

    /// The process id of the running host.
    pub fn pid(&self) -> u32 {
        self.child
            .lock()
            .expect("child lock")
            .as_ref()
            .expect("the host is running")
            .id()
    }

    /// Sends SIGTERM to the host (a graceful stop); see [`TestHost::wait_exit`].
    pub fn sigterm(&self) {
        let pid = self.pid().to_string();
        let status = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run `kill -TERM`");
        assert!(status.success(), "`kill -TERM {pid}` failed: {status}");
    }

    /// Sends SIGHUP to the host (reload the `[plugin.<name>]` tables).
    pub fn sighup(&self) {
        let pid = self.pid().to_string();
        let status = Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .expect("run `kill -HUP`");
        assert!(status.success(), "`kill -HUP {pid}` failed: {status}");
    }

    /// Kills the host with SIGKILL and reaps it.
    pub fn sigkill(&self) {
        let mut child = self.child.lock().expect("child lock");
        let mut process = child.take().expect("the host is running");
        process.kill().expect("SIGKILL the host");
        process.wait().expect("reap the killed host");
    }

    /// Waits for the host to exit (after [`TestHost::sigterm`], or a start
    /// that should fail) and returns its exit status.
    pub fn wait_exit(&self) -> ExitStatus {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            {
                let mut child = self.child.lock().expect("child lock");
                let process = child.as_mut().expect("the host was started");
                if let Some(status) = process.try_wait().expect("poll the host process") {
                    *child = None;
                    return status;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the host did not exit within {TIMEOUT:?}\n{}",
                self.log_tail(60)
            );
            std::thread::sleep(POLL);
        }
    }

    /// Stops the host with SIGTERM and asserts it exits 0.
    pub fn stop(&self) {
        self.sigterm();
        let status = self.wait_exit();
        assert!(
            status.success(),
            "the host exited with {status} after SIGTERM"
        );
    }

    /// Panics if the host was started and has exited since.
    fn assert_alive(&self) {
        let mut child = self.child.lock().expect("child lock");
        let exited = child
            .as_mut()
            .and_then(|process| process.try_wait().expect("poll the host process"));
        if let Some(status) = exited {
            *child = None;
            drop(child);
            panic!("the host exited unexpectedly with {status}");
        }
    }

    // ----- waiting ------------------------------------------------------------

    /// Polls `condition` until it holds; fails after [`TIMEOUT`], or as soon
    /// as a started host has died.
    pub fn wait_until(&self, what: &str, mut condition: impl FnMut() -> bool) {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if condition() {
                return;
            }
            self.assert_alive();
            assert!(
                Instant::now() < deadline,
                "timed out after {TIMEOUT:?} waiting for {what}"
            );
            std::thread::sleep(POLL);
        }
    }

    /// Polls `probe` until it returns `Some`, and returns that.
    pub fn wait_for<T>(&self, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
        let mut found = None;
        self.wait_until(what, || {
            found = probe();
            found.is_some()
        });
        found.expect("the condition held")
    }

    // ----- the other subcommands ----------------------------------------------

    /// `mailroom <args>` in the installation's directory.
    pub fn mailroom(&self, args: &[&str]) -> CliOutput {
        self.mailroom_with_stdin(args, None)
    }

    /// `mailroom <args>` with `stdin` piped in.
    pub fn mailroom_with_stdin(&self, args: &[&str], stdin: Option<&[u8]>) -> CliOutput {
        let mut command = self.command(args);
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        command.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        let mut child = command.spawn().expect("spawn mailroom");
        if let Some(bytes) = stdin {
            let mut pipe = child.stdin.take().expect("stdin is piped");
            pipe.write_all(bytes).expect("write to mailroom's stdin");
        }
        let output = child.wait_with_output().expect("wait for mailroom");
        CliOutput::from_output(format!("mailroom {}", args.join(" ")), output)
    }

    /// `mailroom <args>`, which must succeed and print JSON.
    pub fn json(&self, args: &[&str]) -> Value {
        self.mailroom(args).success().json()
    }

    /// Enqueues `events` (objects with at least `event_type` and `payload`)
    /// through `mailroom enqueue --ndjson` and returns their ids in order.
    pub fn enqueue(&self, events: &[Value]) -> Vec<String> {
        let mut ndjson = String::new();
        for event in events {
            writeln!(ndjson, "{event}").expect("write to a string");
        }
        let output = self
            .mailroom_with_stdin(&["enqueue", "--ndjson", "--json"], Some(ndjson.as_bytes()))
            .success();
        let ids: Vec<String> = output.json()["ids"]
            .as_array()
            .unwrap_or_else(|| panic!("no `ids` array in the enqueue output:\n{output}"))
            .iter()
            .map(|id| id.as_str().expect("ids are strings").to_owned())
            .collect();
        assert_eq!(
            ids.len(),
            events.len(),
            "one id per enqueued event:\n{output}"
        );
        ids
    }

    /// Enqueues one event.
    pub fn enqueue_one(&self, event_type: &str, payload: Value) -> String {
        self.enqueue(&[event(event_type, payload)]).remove(0)
    }

    /// `mailroom stats --json`.
    pub fn stats(&self) -> Stats {
        Stats(self.json(&["stats", "--json"]))
    }

    /// `mailroom plugins --json`.
    pub fn plugins(&self) -> Value {
        self.json(&["plugins", "--json"])
    }

    /// The version of plugin `name` that `mailroom plugins --json` shows
    /// loaded, if any.
    pub fn loaded_version(&self, name: &str) -> Option<String> {
        let plugins = self.plugins();
        plugins["loaded"]
            .as_array()?
            .iter()
            .find(|p| p["name"] == name)
            .and_then(|p| p["version"].as_str().map(str::to_owned))
    }

    /// Waits until `mailroom plugins --json` shows plugin `name` loaded.
    pub fn wait_loaded(&self, name: &str) {
        self.wait_until(&format!("plugin `{name}` to be loaded"), || {
            self.loaded_version(name).is_some()
        });
    }

    /// The reason `mailroom plugins --json` gives for rejecting the file
    /// `file_name`, if it does.
    pub fn rejection(&self, file_name: &str) -> Option<String> {
        let plugins = self.plugins();
        plugins["rejected"].as_array()?.iter().find_map(|r| {
            let path = r["path"].as_str()?;
            (Path::new(path).file_name()? == file_name)
                .then(|| r["reason"].as_str().unwrap_or_default().to_owned())
        })
    }

    /// Waits until `mailroom plugins --json` lists `file_name` as rejected,
    /// and returns the reason.
    pub fn wait_rejected(&self, file_name: &str) -> String {
        self.wait_for(&format!("`{file_name}` to be rejected"), || {
            self.rejection(file_name)
        })
    }

    /// `mailroom dlq list --json`.
    pub fn dead_letters(&self) -> Vec<Value> {
        let list = self.json(&["dlq", "list", "--json"]);
        match list {
            Value::Array(items) => items,
            other => panic!("`dlq list --json` did not print an array: {other}"),
        }
    }

    /// Waits until every message of `event_type` has left the queue (acked,
    /// or dead when `dead_allowed`), per `mailroom stats --json`.
    pub fn wait_drained(&self, event_type: &str) {
        self.wait_until(
            &format!("every `{event_type}` message to be handled"),
            || {
                let counts = self.stats().of(event_type);
                counts.queued == 0 && counts.inflight == 0
            },
        );
    }

    // ----- logs ---------------------------------------------------------------

    fn run_count(&self) -> usize {
        *self.runs.lock().expect("runs lock")
    }

    fn log_path(&self, run: usize) -> PathBuf {
        self.path().join(format!("host-run-{run}.log"))
    }

    /// Everything every run of the host wrote to stderr.
    pub fn log(&self) -> String {
        (1..=self.run_count())
            .map(|run| fs::read_to_string(self.log_path(run)).unwrap_or_default())
            .collect()
    }

    /// The log lines that parse as JSON objects.
    pub fn log_events(&self) -> Vec<Value> {
        self.log()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The log lines about deliveries of message `id` (the ones that carry
    /// an `outcome`: acked, retry, dead).
    pub fn delivery_lines(&self, id: &str) -> Vec<Value> {
        self.log_events()
            .into_iter()
            .filter(|line| line.get("outcome").is_some() && message_id(line) == Some(id))
            .collect()
    }

    /// The last `n` lines of each run's log, headed by its path.
    pub fn log_tail(&self, n: usize) -> String {
        let mut out = String::new();
        for run in 1..=self.run_count() {
            let path = self.log_path(run);
            let text = fs::read_to_string(&path).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let skipped = lines.len().saturating_sub(n);
            let _ = writeln!(
                out,
                "----- {} ({} lines, last {}) -----",
                path.display(),
                lines.len(),
                lines.len() - skipped
            );
            for line in &lines[skipped..] {
                let _ = writeln!(out, "{line}");
            }
        }
        out
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(MAILROOM);
        command.args(args).current_dir(self.path());
        // Only this installation's mailroom.toml configures the host.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("MAILROOM_") {
                command.env_remove(name);
            }
        }
        for (name, value) in self.env.lock().expect("env lock").iter() {
            command.env(name, value);
        }
        command
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        let child = self.child.get_mut().map(Option::take).unwrap_or(None);
        if let Some(mut process) = child {
            let _ = process.kill();
            let _ = process.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "\n===== mailroom host log ({}) =====\n{}",
                self.path().display(),
                self.log_tail(200)
            );
        }
    }
}

/// The message id a log line is about.
pub fn message_id(line: &Value) -> Option<&str> {
    line.get("message_id")
        .or_else(|| line.get("id"))
        .and_then(Value::as_str)
}

/// An event object for `mailroom enqueue --ndjson`.
pub fn event(event_type: &str, payload: Value) -> Value {
    serde_json::json!({ "event_type": event_type, "payload": payload })
}

/// `mailroom stats --json`, with typed access to the counts.
#[derive(Debug, Clone)]
pub struct Stats(pub Value);

/// Queued, in-flight and dead counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// `queued`.
    pub queued: u64,
    /// `inflight`.
    pub inflight: u64,
    /// `dead`.
    pub dead: u64,
}

impl Counts {
    fn from(value: &Value) -> Self {
        let n = |field: &str| value.get(field).and_then(Value::as_u64).unwrap_or(0);
        Self {
            queued: n("queued"),
            inflight: n("inflight"),
            dead: n("dead"),
        }
    }
}

impl Stats {
    /// The totals.
    pub fn totals(&self) -> Counts {
        Counts::from(&self.0)
    }

    /// The counts of one event type (zeros when none is stored).
    pub fn of(&self, event_type: &str) -> Counts {
        self.0
            .get("by_event_type")
            .and_then(|types| types.get(event_type))
            .map(Counts::from)
            .unwrap_or_default()
    }

    /// `waiting_for_handler`, if the output has it.
    pub fn waiting_for_handler(&self) -> Option<u64> {
        self.0.get("waiting_for_handler").and_then(Value::as_u64)
    }
}

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}
