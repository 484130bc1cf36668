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

/// A plugin to run end to end: its component, file name, event type, and
/// the payload of the `n`th message.
pub struct Plugin {
    pub component: &'static str,
    pub file_name: &'static str,
    pub event_type: &'static str,
    pub input: fn(usize) -> Vec<u8>,
}

/// The peers' shape: a plugin that parses the JSON payload, checks it and
/// emits nothing (`fleet-a`).
pub const NO_EMIT: Plugin = Plugin {
    component: mailroom_test_artifacts::FLEET_A,
    file_name: "fleet-a.wasm",
    event_type: "fleet-a.recorded",
    input: readings,
};

/// The order-validator: parses and totals the order, and emits one
/// `order.accepted` follow-up that each ack commits.
pub const ORDER_VALIDATOR: Plugin = Plugin {
    component: mailroom_test_artifacts::ORDER_VALIDATOR,
    file_name: "order-validator.wasm",
    event_type: EVENT_TYPE,
    input: payload,
};

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
