//! The `probe` action: tries what the sandbox must forbid and reports what
//! happened, so the host's tests assert on observations rather than on the
//! guest's guesses.

use serde_json::{Value, json};

pub fn run() -> Value {
    json!({
        "passwd": passwd(),
        "root_listing": root_listing(),
        "env": std::env::vars().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
        "args": std::env::args().collect::<Vec<_>>(),
        "socket": socket(),
    })
}

fn passwd() -> Value {
    match std::fs::read("/etc/passwd") {
        Ok(bytes) => json!({ "ok": true, "error": null, "bytes": bytes.len() }),
        Err(error) => json!({ "ok": false, "error": error.to_string(), "bytes": null }),
    }
}

fn root_listing() -> Value {
    match std::fs::read_dir("/") {
        Ok(entries) => {
            let names: Vec<String> = entries
                .filter_map(Result::ok)
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .collect();
            json!({ "ok": true, "error": null, "entries": names })
        }
        Err(error) => json!({ "ok": false, "error": error.to_string(), "entries": [] }),
    }
}

fn socket() -> Value {
    match std::net::TcpStream::connect("127.0.0.1:80") {
        Ok(_) => json!({ "ok": true, "error": null }),
        Err(error) => json!({ "ok": false, "error": error.to_string() }),
    }
}
