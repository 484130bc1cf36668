//! The curl examples of `docs/HTTP.md`, run as written (in order, with
//! `curl`) against a real `mailroom run` with the shipped plugins, each
//! checked against the status the document says it answers (`# → 202`).

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mailroom_test_artifacts as artifacts;
use serde_json::Value;

const TOKEN: &str = "doc-token";
/// The address the document uses, replaced by the real one.
const DOC_BASE: &str = "http://127.0.0.1:8080";

/// One example: the shell command and the status the document promises.
#[derive(Debug)]
struct Example {
    command: String,
    status: u16,
}

/// Every `sh` block line (continuations joined) that runs curl, with the
/// `# → NNN` line that follows it.
fn examples(markdown: &str) -> Vec<Example> {
    let mut examples = Vec::new();
    let mut in_sh = false;
    let mut pending: Option<String> = None;
    let mut logical = String::new();
    for line in markdown.lines() {
        if line.starts_with("```") {
            in_sh = !in_sh && line.trim() == "```sh";
            continue;
        }
        if !in_sh {
            continue;
        }
        if let Some(status) = line.trim().strip_prefix("# → ") {
            let command = pending
                .take()
                .unwrap_or_else(|| panic!("`{line}` follows no curl command"));
            examples.push(Example {
                command,
                status: status.trim().parse().expect("a status"),
            });
            continue;
        }
        // A command goes on after a trailing backslash, and inside a quoted
        // argument (a JSON body written over several lines).
        match line.strip_suffix('\\') {
            Some(start) => {
                logical.push_str(start);
                logical.push(' ');
                continue;
            }
            None => {
                logical.push_str(line);
                logical.push('\n');
            }
        }
        if logical.matches('\'').count() % 2 == 1 {
            continue;
        }
        let command = std::mem::take(&mut logical);
        if command.contains("curl ") {
            assert!(
                pending.is_none(),
                "a curl command without `# → status`: {pending:?}"
            );
            pending = Some(command.trim().to_owned());
        }
    }
    assert!(
        pending.is_none(),
        "a curl command without `# → status`: {pending:?}"
    );
    examples
}

/// `mailroom run`, killed if the test fails before it stops it.
struct Running {
    child: Child,
    base: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(dir: &Path) -> Running {
    let plugins = dir.join("plugins");
    std::fs::create_dir_all(&plugins).expect("plugin dir");
    artifacts::deploy(artifacts::ORDER_VALIDATOR, &plugins, "order-validator.wasm")
        .expect("deploy");
    artifacts::deploy(artifacts::NOTIFIER, &plugins, "notifier.wasm").expect("deploy");
    let mut command = Command::new(env!("CARGO_BIN_EXE_mailroom"));
    // Only this test's configuration: none from the environment it runs in.
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("MAILROOM_") {
            command.env_remove(name);
        }
    }
    let mut child = command
        .current_dir(dir)
        .args(["run", "--db", "mailroom.db", "--plugins", "plugins"])
        .args(["--http-listen", "127.0.0.1:0", "--log-format", "json"])
        .env("MAILROOM_HTTP_TOKEN", TOKEN)
        .env("MAILROOM_PLUGINS_CACHE_DIR", shared_cache())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mailroom run starts");
    // The real port is in the "HTTP API listening" log line.
    let stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let mut lines = stderr.lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("mailroom run logged its address")
            .expect("a log line");
        let Ok(entry) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        // Fields are at the top level or under "fields", depending on the
        // log layer's settings.
        let fields = if entry["fields"].is_object() {
            &entry["fields"]
        } else {
            &entry
        };
        if fields["message"] == "HTTP API listening" {
            break fields["addr"].as_str().expect("addr").to_owned();
        }
    };
    // Keep draining the log so the host never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Running {
        child,
        base: format!("http://{addr}"),
    }
}

fn shared_cache() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("http-plugin-cache")
}

/// Runs `command` with `sh`, curl printing only the status code.
fn status_of(command: &str, base: &str, id: Option<&str>) -> (u16, String) {
    let command = command.replace(DOC_BASE, base);
    let output = Command::new("sh")
        .arg("-c")
        .arg(format!("{command} -o /dev/null -w '%{{http_code}}'"))
        .env("MAILROOM_HTTP_TOKEN", TOKEN)
        .env("ID", id.unwrap_or(""))
        .output()
        .expect("sh runs");
    let text = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let status = text.parse().unwrap_or_else(|_| {
        panic!(
            "{command}: no status ({text}; {})",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (status, text)
}

/// curl's JSON answer to a GET.
fn get_json(base: &str, path: &str) -> Value {
    let output = Command::new("curl")
        .args([
            "-s",
            "-H",
            &format!("Authorization: Bearer {TOKEN}"),
            &format!("{base}{path}"),
        ])
        .output()
        .expect("curl runs");
    serde_json::from_slice(&output.stdout).unwrap_or(Value::Null)
}

/// The oldest dead letter's id, once there is one.
fn a_dead_letter(base: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let page = get_json(base, "/v1/dead-letters?limit=1");
        if let Some(id) = page["items"][0]["id"].as_str() {
            return id.to_owned();
        }
        assert!(Instant::now() < deadline, "no dead letter appeared: {page}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_documented_curl_examples_answer_as_documented() {
    let curl = Command::new("curl").arg("--version").output();
    assert!(
        curl.is_ok_and(|o| o.status.success()),
        "these tests need curl on the PATH"
    );
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/HTTP.md"))
            .expect("docs/HTTP.md");
    let examples = examples(&doc);
    assert!(examples.len() >= 15, "{examples:#?}");

    let dir = tempfile::tempdir().expect("temp dir");
    let host = start(dir.path());
    let deadline = Instant::now() + Duration::from_secs(30);
    while get_json(&host.base, "/readyz")["status"] != "ready" {
        assert!(Instant::now() < deadline, "the host never became ready");
        std::thread::sleep(Duration::from_millis(50));
    }

    let mut failures = Vec::new();
    for example in &examples {
        let id = example
            .command
            .contains("$ID")
            .then(|| a_dead_letter(&host.base));
        let (status, _) = status_of(&example.command, &host.base, id.as_deref());
        if status != example.status {
            failures.push(format!(
                "answered {status}, the doc says {}:\n{}",
                example.status, example.command
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));

    // The documented events were handled: the orders' follow-ups are there.
    let stats = get_json(&host.base, "/v1/stats");
    assert!(
        stats["by_event_type"]["notification.requested"]["queued"].as_u64() >= Some(1),
        "{stats}"
    );

    // SIGTERM: a clean stop, exit status 0.
    let mut host = host;
    let killed = Command::new("kill")
        .args(["-TERM", &host.child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = host.child.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "mailroom run did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
}
