//! What only the PostgreSQL store has: many claimers on one database,
//! wake-ups by LISTEN/NOTIFY that survive dropped connections and a server
//! restart, the outbox inside an application's own transaction, migrations
//! by several hosts at once, and errors that say which of "unreachable",
//! "refused the login" and "lacks a permission" it is.

mod store_support;

use std::collections::HashSet;
use std::time::Duration;

use mailroom::message::NewMessage;
use mailroom::store::{Location, OpenOptions, Store, StoreError};
use store_support::{PrivateCluster, fresh_postgres_database, postgres_server};
use tokio::time::timeout;

/// How long any wait may take before the test fails.
const TIMEOUT: Duration = Duration::from_secs(60);
const LEASE: Duration = Duration::from_secs(300);

async fn open(url: &str) -> Store {
    Store::open(
        &Location::parse_url(url).expect("url"),
        &OpenOptions::default(),
    )
    .await
    .expect("open")
}

async fn client(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_claimers_never_claim_one_message_twice() {
    let url = fresh_postgres_database().await;
    let producer = open(&url).await;
    const MESSAGES: usize = 2_000;
    for chunk in 0..MESSAGES / 200 {
        let batch = (0..200)
            .map(|n| NewMessage::new("t", format!("{}", chunk * 200 + n).into_bytes()))
            .collect();
        producer.enqueue_batch(batch).await.expect("enqueue");
    }
    // Eight claimers, each with a pool of its own (as eight hosts would
    // have), claiming small batches until the queue is empty.
    let mut claimers = Vec::new();
    for _ in 0..8 {
        let store = open(&url).await;
        claimers.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            loop {
                let claimed = store
                    .claim(16, LEASE, &["t".to_owned()])
                    .await
                    .expect("claim");
                if claimed.is_empty() && store.stats().await.expect("stats").totals.queued == 0 {
                    return ids;
                }
                ids.extend(claimed.iter().map(|c| c.id()));
            }
        }));
    }
    let mut all = Vec::new();
    for claimer in claimers {
        all.extend(claimer.await.expect("claimer"));
    }
    let distinct: HashSet<_> = all.iter().collect();
    assert_eq!(distinct.len(), all.len(), "a message was claimed twice");
    assert_eq!(all.len(), MESSAGES, "every message was claimed once");
    let stats = producer.stats().await.expect("stats");
    assert_eq!(stats.totals.inflight, MESSAGES as u64);
}

/// Waits for the signal to fire, failing the test after [`TIMEOUT`].
async fn woken(signal: &mut mailroom::store::CommitSignal, why: &str) {
    timeout(TIMEOUT, signal.changed())
        .await
        .unwrap_or_else(|_| panic!("not woken: {why}"));
}

/// Consumes wake-ups already pending, so the next one proves something.
async fn drain(signal: &mut mailroom::store::CommitSignal) {
    while timeout(Duration::from_millis(300), signal.changed())
        .await
        .is_ok()
    {}
}

/// Waits until a session of this database is listening again.
async fn wait_listening(admin: &tokio_postgres::Client, database: &str) {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let n: i64 = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity
                  WHERE datname = $1 AND query = 'LISTEN mailroom'",
                &[&database],
            )
            .await
            .expect("pg_stat_activity")
            .get(0);
        if n > 0 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the listener never reconnected"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn database_of(url: &str) -> String {
    url.rsplit('/').next().expect("database").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_wakes_on_commit_and_survives_a_terminated_connection() {
    let url = fresh_postgres_database().await;
    let host = open(&url).await;
    let producer = open(&url).await;
    let mut signal = host.commit_signal().await;
    woken(&mut signal, "the first connect wakes once").await;
    let admin = client(&postgres_server()).await;
    wait_listening(&admin, &database_of(&url)).await;
    drain(&mut signal).await;

    producer
        .enqueue(NewMessage::new("t", b"{}".to_vec()))
        .await
        .expect("enqueue");
    woken(&mut signal, "an enqueue's commit").await;

    // Cut every connection the store has, the listener's included.
    admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
              WHERE datname = $1 AND pid != pg_backend_pid()",
            &[&database_of(&url)],
        )
        .await
        .expect("terminate");
    woken(&mut signal, "a reconnect wakes once").await;
    wait_listening(&admin, &database_of(&url)).await;
    drain(&mut signal).await;
    // The pool replaces its dead connections; the producer's enqueue may
    // meet one that was cut, and then succeeds on retry.
    let mut tries = 0;
    while producer
        .enqueue(NewMessage::new("t", b"{}".to_vec()))
        .await
        .is_err()
    {
        tries += 1;
        assert!(tries < 10, "the pool never recovered");
    }
    woken(&mut signal, "an enqueue after the reconnect").await;
    assert_eq!(host.stats().await.expect("stats").totals.queued, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_and_the_pool_survive_a_server_restart() {
    let cluster = PrivateCluster::start();
    let url = cluster.url.clone();
    let host = open(&url).await;
    let mut signal = host.commit_signal().await;
    woken(&mut signal, "the first connect").await;
    let admin = client(&url).await;
    wait_listening(&admin, "postgres").await;
    drop(admin);

    cluster.restart();
    woken(&mut signal, "the reconnect after the restart").await;
    let admin = client(&url).await;
    wait_listening(&admin, "postgres").await;
    drain(&mut signal).await;

    // The first use of a pooled connection cut by the restart fails; the
    // store then hands out new ones.
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while host
        .enqueue(NewMessage::new("t", b"{}".to_vec()))
        .await
        .is_err()
    {
        assert!(tokio::time::Instant::now() < deadline, "never recovered");
    }
    woken(&mut signal, "an enqueue after the restart").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outbox_commits_and_rolls_back_with_the_callers_transaction() {
    let url = fresh_postgres_database().await;
    let host = open(&url).await; // creates the schema
    let mut signal = host.commit_signal().await;
    woken(&mut signal, "the first connect").await;
    let mut app = client(&url).await;
    app.batch_execute("CREATE TABLE orders (id text PRIMARY KEY)")
        .await
        .expect("app table");

    // Rolled back: neither the order nor its event.
    let tx = app.transaction().await.expect("begin");
    tx.execute("INSERT INTO orders VALUES ('o-1')", &[])
        .await
        .expect("order");
    tx.query_one(
        "SELECT mailroom.enqueue(event_type => 'order.created', payload => '{\"order_id\":\"o-1\"}'::jsonb)",
        &[],
    )
    .await
    .expect("enqueue in SQL");
    tx.rollback().await.expect("rollback");
    let orders: i64 = app
        .query_one("SELECT count(*) FROM orders", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(orders, 0);
    assert_eq!(host.stats().await.expect("stats").totals.total(), 0);

    // Committed: both, and the host wakes at the commit.
    drain(&mut signal).await;
    let tx = app.transaction().await.expect("begin");
    tx.execute("INSERT INTO orders VALUES ('o-2')", &[])
        .await
        .expect("order");
    let row = tx
        .query_one(
            "SELECT mailroom.enqueue(event_type => 'order.created',
                 payload => '{\"order_id\":\"o-2\"}'::jsonb, key => 'order-o-2',
                 priority => 'high', delay => '0 seconds', max_attempts => 4,
                 source => 'shop', correlation_id => 'c-2')",
            &[],
        )
        .await
        .expect("enqueue in SQL");
    let id = mailroom::message::MessageId(row.get(0));
    let rust_id = mailroom::store::postgres::outbox::enqueue(
        &tx,
        &NewMessage::new("order.created", br#"{"order_id":"o-3"}"#.to_vec()).with_key("order-o-3"),
    )
    .await
    .expect("enqueue from Rust");
    tx.commit().await.expect("commit");
    woken(&mut signal, "the outbox commit").await;

    let stored = host.message(id).await.expect("stored");
    assert_eq!(stored.summary.event_type, "order.created");
    assert_eq!(stored.summary.key.as_deref(), Some("order-o-2"));
    assert_eq!(stored.summary.priority, mailroom::message::Priority::High);
    assert_eq!(stored.summary.max_attempts, 4);
    assert_eq!(stored.summary.source.as_deref(), Some("shop"));
    assert_eq!(stored.summary.correlation_id, "c-2");
    let payload: serde_json::Value = serde_json::from_slice(&stored.payload).expect("json");
    assert_eq!(payload["order_id"], "o-2");
    assert!(host.message(rust_id).await.is_ok());

    // A key already stored returns the stored id, and stores nothing.
    let again: uuid::Uuid = app
        .query_one(
            "SELECT mailroom.enqueue(event_type => 'order.created', payload => '{}'::jsonb, key => 'order-o-2')",
            &[],
        )
        .await
        .expect("dedupe")
        .get(0);
    assert_eq!(again, id.0);
    assert_eq!(host.stats().await.expect("stats").totals.queued, 2);

    // Bad input names the rule.
    let err = app
        .query_one(
            "SELECT mailroom.enqueue(event_type => 'no spaces', payload => '{}'::jsonb)",
            &[],
        )
        .await
        .expect_err("refused");
    assert!(
        err.as_db_error()
            .is_some_and(|e| e.message().contains("invalid event type")),
        "{err:?}"
    );
    // The claimed message's budget comes from the host's policy when the
    // SQL call named none.
    let claimed = host
        .claim(10, LEASE, &["order.created".to_owned()])
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 2);
    let rust = claimed.iter().find(|c| c.id() == rust_id).expect("claimed");
    assert_eq!(rust.max_attempts, 10, "the default policy");
    assert!(
        claimed.iter().all(|c| c.depth == 0),
        "an application's events start their chains"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_starting_at_once_migrate_once_and_a_newer_schema_is_refused() {
    let url = fresh_postgres_database().await;
    let opens: Vec<_> = (0..6)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { open(&url).await })
        })
        .collect();
    for open in opens {
        open.await.expect("every host opens");
    }
    let admin = client(&url).await;
    let row = admin
        .query_one(
            "SELECT count(*), max(version)::bigint FROM mailroom.schema_version",
            &[],
        )
        .await
        .expect("versions");
    let (applied, latest): (i64, i64) = (row.get(0), row.get(1));
    assert!(latest >= 1, "migrated");
    assert_eq!(applied, latest, "each migration applied once");

    admin
        .execute("INSERT INTO mailroom.schema_version (version) VALUES (99)", &[])
        .await
        .expect("bump");
    let err = Store::open(
        &Location::parse_url(&url).expect("url"),
        &OpenOptions::default(),
    )
    .await
    .expect_err("refused");
    assert!(
        matches!(err, StoreError::SchemaTooNew { found: 99, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("upgrade mailroom"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_errors_say_which_it_is_and_never_show_the_password() {
    let server = postgres_server();
    let url = fresh_postgres_database().await;
    open(&url).await; // the schema exists
    let (_, rest) = url.split_once("@").expect("url");
    let options = OpenOptions::default();

    let wrong = format!("postgres://mailroom:not-the-password@{rest}");
    let err = Store::open(&Location::parse_url(&wrong).expect("url"), &options)
        .await
        .expect_err("refused");
    assert!(matches!(err, StoreError::LoginRefused { .. }), "{err}");
    assert!(!err.to_string().contains("not-the-password"), "{err}");

    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let nowhere = format!("postgres://mailroom:secret-pw@127.0.0.1:{port}/x");
    let err = Store::open(&Location::parse_url(&nowhere).expect("url"), &options)
        .await
        .expect_err("unreachable");
    assert!(matches!(err, StoreError::Unreachable { .. }), "{err}");
    assert!(!err.to_string().contains("secret-pw"), "{err}");

    let admin = client(&server).await;
    let role = format!("reader_{}", uuid::Uuid::now_v7().simple());
    admin
        .batch_execute(&format!("CREATE ROLE {role} LOGIN PASSWORD 'reader-pw'"))
        .await
        .expect("role");
    let reader = format!("postgres://{role}:reader-pw@{rest}");
    let err = Store::open(&Location::parse_url(&reader).expect("url"), &options)
        .await
        .expect_err("no permission");
    assert!(matches!(err, StoreError::PermissionDenied { .. }), "{err}");
    assert!(!err.to_string().contains("reader-pw"), "{err}");

    let err = Store::open(
        &Location::parse_url(&fresh_postgres_database().await).expect("url"),
        &OpenOptions {
            create: false,
            ..OpenOptions::default()
        },
    )
    .await
    .expect_err("no schema, not to be created");
    assert!(matches!(err, StoreError::NoSchema { .. }), "{err}");
}

/// A read-only open (`stats`, `dlq list`, `plugins`, `check`) never
/// creates or migrates the schema.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_open_never_creates_or_migrates_the_schema() {
    let url = fresh_postgres_database().await;
    let location = Location::parse_url(&url).expect("url");
    let read_only = OpenOptions {
        read_only: true,
        ..OpenOptions::default()
    };
    let err = Store::open(&location, &read_only).await.unwrap_err();
    assert!(matches!(err, StoreError::NoSchema { .. }), "{err}");
    let admin = client(&url).await;
    let schemas = admin
        .query("SELECT 1 FROM pg_namespace WHERE nspname = 'mailroom'", &[])
        .await
        .expect("query");
    assert!(schemas.is_empty(), "no schema was created");

    let store = open(&url).await;
    store
        .enqueue(NewMessage::new("t", b"{}".to_vec()))
        .await
        .expect("enqueue");
    let reader = Store::open(&location, &read_only).await.expect("opens read-only");
    assert_eq!(reader.stats().await.expect("stats").totals.queued, 1);
    let report = reader
        .check(mailroom::store::CheckDepth::Quick)
        .await
        .expect("check");
    assert!(report.is_sound(), "{report:?}");

    // An older schema is refused, not migrated.
    admin
        .batch_execute("DELETE FROM mailroom.schema_version")
        .await
        .expect("forget the version");
    let err = Store::open(&location, &read_only).await.unwrap_err();
    assert!(matches!(err, StoreError::SchemaTooOld { .. }), "{err}");
    let versions = admin
        .query("SELECT 1 FROM mailroom.schema_version", &[])
        .await
        .expect("query");
    assert!(versions.is_empty(), "nothing was migrated");
}

/// A keyed message deleted by any statement keeps its key remembered, for
/// the SQL outbox function as for the Rust API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_deleted_by_any_statement_is_remembered() {
    let url = fresh_postgres_database().await;
    let host = open(&url).await;
    let first = host
        .enqueue(NewMessage::new("a", b"{}".to_vec()).with_key("k"))
        .await
        .expect("enqueue");
    let app = client(&url).await;
    app.execute("DELETE FROM mailroom.messages WHERE key = 'k'", &[])
        .await
        .expect("delete");
    let again: uuid::Uuid = app
        .query_one(
            "SELECT mailroom.enqueue(event_type => 'a', payload => '{}'::jsonb, key => 'k')",
            &[],
        )
        .await
        .expect("enqueue in SQL")
        .get(0);
    assert_eq!(again, first.id.0);
    let from_rust = host
        .enqueue(NewMessage::new("a", b"{}".to_vec()).with_key("k"))
        .await
        .expect("enqueue");
    assert_eq!((from_rust.id, from_rust.duplicate), (first.id, true));
    assert_eq!(host.stats().await.expect("stats").totals.total(), 0);
}
