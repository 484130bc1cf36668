//! The workload every measurement shares: ~100-byte `order.created` JSON
//! payloads, and the native handler the non-wasm measurements run.

use serde::Deserialize;

/// The event type of the workload.
pub const EVENT_TYPE: &str = "order.created";

/// The `n`th payload: about 100 bytes of JSON, like the order-validator's input.
pub fn payload(n: usize) -> Vec<u8> {
    format!(
        r#"{{"order_id":"o-{n:08}","customer":"ada@example.com","items":[{{"sku":"tea","qty":2,"price":4.5}}]}}"#
    )
    .into_bytes()
}

/// The `n`th payload of the plugin that emits nothing (`fleet-a`): a JSON
/// object of numeric readings, about as large.
pub fn readings(n: usize) -> Vec<u8> {
    format!(r#"{{"speed":{n},"load":3.5,"temperature":21.25,"pressure":1013.2,"humidity":40}}"#)
        .into_bytes()
}

#[derive(Deserialize)]
struct Order {
    order_id: String,
    items: Vec<Item>,
}

#[derive(Deserialize)]
struct Item {
    qty: i64,
    price: f64,
}

/// The native handler: parses the order and totals it, as order-validator
/// does. Returns the follow-up payload.
pub fn handle_natively(payload: &[u8]) -> Vec<u8> {
    let order: Order = serde_json::from_slice(payload).expect("workload payloads parse");
    let total: f64 = order.items.iter().map(|i| i.qty as f64 * i.price).sum();
    format!(r#"{{"order_id":"{}","total":{total}}}"#, order.order_id).into_bytes()
}
