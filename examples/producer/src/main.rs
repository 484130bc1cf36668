//! A producer: enqueues `order.created` events straight into the store a
//! `mailroom run` host is working on, through Mailroom's library API. The
//! enqueue is durable when `enqueue_batch` returns; the host (another
//! process) notices it at once.
//!
//! ```sh
//! cargo run -p mailroom-example-producer -- target/demo/mailroom.db 100
//! cargo run -p mailroom-example-producer -- postgres://app:secret@localhost/shop 100
//! ```

use anyhow::Context as _;
use mailroom::message::NewMessage;
use mailroom::store::{Location, OpenOptions, Store};

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let store = args.next().unwrap_or_else(|| "mailroom.db".to_owned());
    let count: usize = match args.next() {
        Some(n) => n
            .parse()
            .with_context(|| format!("`{n}` is not a number of orders"))?,
        None => 10,
    };
    // A URL names a PostgreSQL store (or `sqlite:PATH`); anything else is a file.
    let location = if store.contains("://") || store.starts_with("sqlite:") {
        Location::parse_url(&store)?
    } else {
        Location::Sqlite(store.into())
    };

    let store = Store::open(&location, &OpenOptions::default()).await?;
    let orders = (1..=count)
        .map(|n| {
            let payload = format!(
                r#"{{"order_id":"p-{n}","customer":"ada@example.com","items":[{{"sku":"tea","qty":{n},"price":4.5}}]}}"#
            );
            // The key makes a re-run idempotent: an order already stored is not stored twice.
            NewMessage::new("order.created", payload.into_bytes()).with_key(format!("order-p-{n}"))
        })
        .collect();
    let enqueued = store.enqueue_batch(orders).await?;
    let new = enqueued.iter().filter(|e| !e.duplicate).count();
    println!(
        "enqueued {new} new orders ({} already stored) into {location}",
        enqueued.len() - new
    );
    Ok(())
}
