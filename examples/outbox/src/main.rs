//! The transactional outbox: an application writes its business row and
//! the event about it in one transaction on its own PostgreSQL database. The
//! event exists if and only if the transaction commits, and the hosts
//! serving the store wake at that commit.
//!
//! ```sh
//! cargo run -p mailroom-example-outbox -- postgres://app:secret@localhost/shop
//! ```
//!
//! It places one order and rolls it back (neither the order nor its event
//! remains), then places another and commits (both do). Run `mailroom run`
//! on the same URL to see the committed `order.created` handled.

use anyhow::Context as _;
use mailroom::message::NewMessage;
use mailroom::store::postgres::outbox;
use mailroom::store::{Location, OpenOptions, Store};

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let url = std::env::args()
        .nth(1)
        .context("usage: outbox postgres://USER:PASSWORD@HOST:PORT/DATABASE")?;
    // Opening the store creates its schema (`mailroom`) when it is new.
    let store = Store::open(&Location::parse_url(&url)?, &OpenOptions::default()).await?;

    let (mut db, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .context("cannot connect to the application's database")?;
    tokio::spawn(connection);
    db.batch_execute(
        "CREATE TABLE IF NOT EXISTS shop_orders (id text PRIMARY KEY, customer text NOT NULL)",
    )
    .await?;

    let order_id = format!("o-{}", std::process::id());
    for commit in [false, true] {
        let tx = db.transaction().await?;
        tx.execute(
            "INSERT INTO shop_orders (id, customer) VALUES ($1, 'ada@example.com')
             ON CONFLICT (id) DO NOTHING",
            &[&order_id],
        )
        .await?;
        let payload = format!(
            r#"{{"order_id":"{order_id}","customer":"ada@example.com","items":[{{"sku":"tea","qty":1,"price":4.5}}]}}"#
        );
        // The same call in SQL, from any language:
        //   SELECT mailroom.enqueue(event_type => 'order.created', payload => '{...}'::jsonb)
        let id = outbox::enqueue(
            &tx,
            &NewMessage::new("order.created", payload.into_bytes())
                .with_key(format!("order-{order_id}")),
        )
        .await?;
        if commit {
            tx.commit().await?;
        } else {
            tx.rollback().await?;
        }
        let orders: i64 = db
            .query_one("SELECT count(*) FROM shop_orders WHERE id = $1", &[&order_id])
            .await?
            .get(0);
        let event = store.message(id).await.is_ok();
        println!(
            "{}: order {order_id} stored: {}, event {id} stored: {}",
            if commit { "committed" } else { "rolled back" },
            orders == 1,
            event
        );
    }
    Ok(())
}
