//! Stores for tests, on either backend: a fresh SQLite file in a temporary
//! folder, or a fresh database on the PostgreSQL server `scripts/test`
//! starts (its URL in `MAILROOM_TEST_POSTGRES_URL`).
#![allow(dead_code)]

use std::sync::Arc;

use mailroom::clock::{Clock, ManualClock, SharedClock};
use mailroom::message::{MessageId, NewMessage};
use mailroom::state_machine::Policies;
use mailroom::store::{Claimed, Location, OpenOptions, Store};
use tempfile::TempDir;

/// Where the store tests' manual clocks start.
pub const T0: i64 = 1_700_000_000_000;

/// The lease store tests claim with.
pub const LEASE: std::time::Duration = std::time::Duration::from_secs(30);

/// The store tests' retry policy: 3 attempts, backoff from 1 s up to 60 s.
pub fn policies() -> Policies {
    Policies {
        default: mailroom::state_machine::RetryPolicy {
            max_attempts: 3,
            backoff_base: std::time::Duration::from_secs(1),
            backoff_cap: std::time::Duration::from_secs(60),
        },
        ..Policies::default()
    }
}

/// Which backend a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The PostgreSQL server's URL. Never skipped silently: without a server
/// the test fails, saying how to get one.
pub fn postgres_server() -> String {
    std::env::var("MAILROOM_TEST_POSTGRES_URL").unwrap_or_else(|_| {
        panic!(
            "this test needs PostgreSQL: run it through scripts/test (or scripts/with-postgres), \
             which start a throwaway server, or set MAILROOM_TEST_POSTGRES_URL"
        )
    })
}

/// A new, empty database on the test server; returns its URL.
pub async fn fresh_postgres_database() -> String {
    let server = postgres_server();
    let (client, connection) = tokio_postgres::connect(&server, tokio_postgres::NoTls)
        .await
        .expect("connect to the test server");
    tokio::spawn(connection);
    let name = format!("mailroom_test_{}", uuid::Uuid::now_v7().simple());
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create a test database");
    let (base, _) = server.rsplit_once('/').expect("a URL with a database");
    format!("{base}/{name}")
}

/// Where a test's store lives; keeps the temporary folder of an SQLite one.
pub struct TestLocation {
    pub location: Location,
    pub backend: Backend,
    _dir: Option<TempDir>,
}

impl TestLocation {
    pub async fn new(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("tempdir");
                Self {
                    location: Location::Sqlite(dir.path().join("mailroom.db")),
                    backend,
                    _dir: Some(dir),
                }
            }
            Backend::Postgres => Self {
                location: Location::parse_url(&fresh_postgres_database().await)
                    .expect("a test URL"),
                backend,
                _dir: None,
            },
        }
    }

    /// Opens a store here with `clock` and `policies`.
    pub async fn open(&self, clock: &ManualClock, policies: &Policies) -> Store {
        self.open_with(OpenOptions {
            clock: Arc::new(clock.clone()) as SharedClock,
            policies: policies.clone(),
            ..OpenOptions::default()
        })
        .await
    }

    pub async fn open_with(&self, options: OpenOptions) -> Store {
        Store::open(&self.location, &options)
            .await
            .expect("open the test store")
    }
}

/// A store on a fresh location, with a manual clock at [`T0`] and the test
/// [`policies`].
pub struct Fixture {
    pub at: TestLocation,
    pub clock: ManualClock,
    pub store: Store,
}

pub async fn fixture(backend: Backend) -> Fixture {
    let at = TestLocation::new(backend).await;
    let clock = ManualClock::new(T0);
    let store = at.open(&clock, &policies()).await;
    Fixture { at, clock, store }
}

impl Fixture {
    /// Another store on the same location: another host.
    pub async fn open_another(&self) -> Store {
        self.at.open(&self.clock, &policies()).await
    }

    pub fn now(&self) -> i64 {
        self.clock.now_ms()
    }
}

/// Enqueues a small JSON message of `event_type`; returns its id.
pub async fn enqueue(store: &Store, event_type: &str) -> MessageId {
    store
        .enqueue(NewMessage::new(event_type, br#"{"n":1}"#.to_vec()))
        .await
        .expect("enqueue")
        .id
}

/// Claims up to `limit` messages of the types `names` under [`LEASE`].
pub async fn claim(store: &Store, limit: usize, names: &[&str]) -> Vec<Claimed> {
    let names: Vec<String> = names.iter().map(|&n| n.to_owned()).collect();
    store.claim(limit, LEASE, &names).await.expect("claim")
}

/// Generates, for each named `async fn NAME(backend: Backend)`, one test
/// per backend: `sqlite::NAME` and `postgres::NAME`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::store_support::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::store_support::Backend::Postgres).await
                }
            )*
        }
    };
}

/// A PostgreSQL cluster of a test's own (so it may restart the server
/// without disturbing other tests), stopped and removed when dropped.
pub struct PrivateCluster {
    pub url: String,
    restart: String,
    stop: String,
}

impl PrivateCluster {
    pub fn start() -> Self {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/lib/postgres.sh");
        let out = std::process::Command::new("bash")
            .args([script, "start"])
            .output()
            .expect("run scripts/lib/postgres.sh");
        assert!(
            out.status.success(),
            "cannot start a private PostgreSQL cluster: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{name}=")))
                .unwrap_or_else(|| panic!("no {name}= in {text}"))
                .to_owned()
        };
        Self {
            url: field("url"),
            restart: field("restart"),
            stop: field("stop"),
        }
    }

    /// Restarts the server (fast shutdown: every connection is cut).
    pub fn restart(&self) {
        let status = std::process::Command::new("bash")
            .args(["-c", &self.restart])
            .stdout(std::process::Stdio::null())
            .status()
            .expect("restart the server");
        assert!(status.success(), "the server did not restart");
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let _ = std::process::Command::new("bash")
            .args(["-c", &self.stop])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}
