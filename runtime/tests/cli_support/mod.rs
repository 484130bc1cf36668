//! Running the real `mailroom` binary in a temporary working directory.

#![allow(dead_code)] // Each test crate uses a different part of this.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use mailroom::message::MessageId;
use mailroom::store::sqlite::Mailbox;
use tempfile::TempDir;

/// A temporary working directory to run `mailroom` in.
pub struct Workdir {
    pub dir: TempDir,
}

/// What a run printed and how it ended.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Asserts exit 0 and returns stdout.
    #[track_caller]
    pub fn ok(&self) -> &str {
        assert_eq!(self.code, 0, "expected success, got {self:#?}");
        &self.stdout
    }

    /// Asserts a failure with exit `code` whose stderr contains every one of
    /// `needles`; returns stderr.
    #[track_caller]
    pub fn fails(&self, code: i32, needles: &[&str]) -> &str {
        assert_eq!(self.code, code, "expected exit {code}, got {self:#?}");
        for needle in needles {
            assert!(
                self.stderr.contains(needle),
                "stderr lacks {needle:?}: {self:#?}"
            );
        }
        &self.stderr
    }

    /// Asserts a one-line `error: …` reason (exit 1) containing `needles`.
    #[track_caller]
    pub fn error(&self, needles: &[&str]) -> &str {
        self.error_status(1, needles)
    }

    /// Asserts input refused (exit 2) with a one-line reason containing `needles`.
    #[track_caller]
    pub fn bad_input(&self, needles: &[&str]) -> &str {
        self.error_status(2, needles)
    }

    /// Asserts the store unavailable (exit 5) with a one-line reason
    /// containing `needles`.
    #[track_caller]
    pub fn unavailable(&self, needles: &[&str]) -> &str {
        self.error_status(5, needles)
    }

    /// Asserts a one-line `error: …` reason with exit `code` containing `needles`.
    #[track_caller]
    pub fn error_status(&self, code: i32, needles: &[&str]) -> &str {
        let stderr = self.fails(code, needles);
        assert!(stderr.starts_with("error: "), "{self:#?}");
        assert_eq!(
            stderr.trim_end().lines().count(),
            1,
            "one line expected: {self:#?}"
        );
        stderr
    }

    /// Stdout as JSON.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.ok())
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:#?}"))
    }

    /// The ids printed one per line.
    #[track_caller]
    pub fn ids(&self) -> Vec<MessageId> {
        self.ok()
            .lines()
            .map(|l| {
                let id = l.split_whitespace().next().unwrap_or_default();
                id.parse()
                    .unwrap_or_else(|e| panic!("{l:?} does not start with an id: {e}"))
            })
            .collect()
    }
}

impl Workdir {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The default store in this directory.
    pub fn db(&self) -> PathBuf {
        self.path().join("mailroom.db")
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path().join(name);
        std::fs::write(&path, text).expect("write file");
        path
    }

    /// `mailroom` with this directory as working directory and no
    /// `MAILROOM_*` variable from the test's own environment.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mailroom"));
        cmd.args(args).current_dir(self.path());
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("MAILROOM_") {
                cmd.env_remove(name);
            }
        }
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Run {
        self.run_with(args, &[], None)
    }

    pub fn run_stdin(&self, args: &[&str], stdin: &str) -> Run {
        self.run_with(args, &[], Some(stdin))
    }

    pub fn run_with(&self, args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Run {
        let mut cmd = self.command(args);
        cmd.envs(env.iter().copied())
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn mailroom");
        // Written from a thread so a large input cannot deadlock against a
        // full stdout pipe.
        let writer = stdin.map(|input| {
            let mut pipe = child.stdin.take().expect("stdin");
            let input = input.to_owned();
            std::thread::spawn(move || {
                // The binary may stop reading early (a bad line): ignore EPIPE.
                let _ = pipe.write_all(input.as_bytes());
            })
        });
        let out = child.wait_with_output().expect("wait for mailroom");
        if let Some(writer) = writer {
            writer.join().expect("stdin writer");
        }
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Opens the default store from the test.
    pub fn mailbox(&self) -> Mailbox {
        Mailbox::open(self.db()).expect("open store")
    }
}
