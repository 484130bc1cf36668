//! `order-validator`: checks `order.created` events and accepts the valid ones.
//!
//! Input (`order.created`):
//! `{"order_id": "o-1", "customer": "ada@example.com", "items": [{"sku": "A-1", "qty": 2, "price": 19.99}]}`
//!
//! An order that can never be valid is a fatal error whose reason names the
//! field at fault (`items[1].qty must be > 0, got 0`): a payload that does not
//! parse or lacks a field, an empty `order_id`, `customer` or `sku`, no items,
//! a quantity of 0 or less, or a price that is negative or has more than two
//! decimals.
//!
//! Output (`order.accepted`, key `order.accepted:<order_id>`):
//! `{"order_id": "o-1", "customer": "ada@example.com", "total": 39.98, "total_cents": 3998}`
//!
//! Prices are decimal currency amounts. The total is summed exactly in integer
//! cents (`total_cents`); `total` is the same amount in currency units, which
//! JSON prints with at most two decimals.

use mailroom_sdk::{Emit, Error, Event, Plugin, log};
use serde::{Deserialize, Serialize};

struct OrderValidator;

#[derive(Deserialize)]
struct Order {
    order_id: String,
    customer: String,
    items: Vec<Item>,
}

#[derive(Deserialize)]
struct Item {
    sku: String,
    // Signed, so that a negative quantity gets our message rather than serde's.
    qty: i64,
    price: f64,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Accepted {
    order_id: String,
    customer: String,
    total: f64,
    total_cents: i64,
}

impl Plugin for OrderValidator {
    const NAME: &'static str = "order-validator";
    const EVENT_TYPES: &'static [&'static str] = &["order.created"];

    fn handle(event: Event) -> Result<(), Error> {
        let order: Order = event.json()?;
        let total_cents = validate(&order).map_err(Error::fatal)?;
        log::info!(
            "order {} accepted: {} items",
            order.order_id,
            order.items.len()
        );
        Emit::new("order.accepted")
            .key(format!("order.accepted:{}", order.order_id))
            .json(&Accepted {
                total: total_cents as f64 / 100.0,
                total_cents,
                order_id: order.order_id,
                customer: order.customer,
            })
            .send()?;
        Ok(())
    }
}

mailroom_sdk::export_plugin!(OrderValidator);

/// Checks every field and returns the order's total in cents, or why the
/// order is invalid.
fn validate(order: &Order) -> Result<i64, String> {
    if order.order_id.trim().is_empty() {
        return Err("order_id must not be empty".into());
    }
    if order.customer.trim().is_empty() {
        return Err("customer must not be empty".into());
    }
    if order.items.is_empty() {
        return Err("items must not be empty".into());
    }
    let mut total: i64 = 0;
    for (i, item) in order.items.iter().enumerate() {
        if item.sku.trim().is_empty() {
            return Err(format!("items[{i}].sku must not be empty"));
        }
        if item.qty <= 0 {
            return Err(format!("items[{i}].qty must be > 0, got {}", item.qty));
        }
        let cents = to_cents(item.price).ok_or_else(|| {
            format!(
                "items[{i}].price must be >= 0 with at most 2 decimals, got {}",
                item.price
            )
        })?;
        total = item
            .qty
            .checked_mul(cents)
            .and_then(|line| total.checked_add(line))
            .ok_or_else(|| format!("items[{i}] makes the total overflow"))?;
    }
    Ok(total)
}

/// `19.99` → `1999`; `None` for a negative amount, a fraction of a cent, or
/// a value too large to count in cents.
fn to_cents(price: f64) -> Option<i64> {
    let cents = (price * 100.0).round();
    // JSON numbers are parsed to the nearest f64, so 19.99 arrives as
    // 19.989999...; anything further than that from a whole cent had more
    // than two decimals.
    let exact = (cents - price * 100.0).abs() < 1e-6;
    (price >= 0.0 && exact && cents < 9e15).then_some(cents as i64)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use mailroom_sdk::testing;

    fn order_created(payload: &str) -> Result<(), Error> {
        OrderValidator::handle(Event::new("order.created", payload))
    }

    #[test]
    fn a_valid_order_is_accepted_with_its_total() {
        let payload = r#"{"order_id":"o-1","customer":"ada","items":[
            {"sku":"A","qty":2,"price":19.99},{"sku":"B","qty":1,"price":0.1}]}"#;
        order_created(payload).unwrap();
        let emitted = testing::take_emitted();
        assert_eq!(emitted.len(), 1);
        assert_eq!(emitted[0].event_type, "order.accepted");
        assert_eq!(emitted[0].key.as_deref(), Some("order.accepted:o-1"));
        let accepted: Accepted = emitted[0].json().unwrap();
        assert_eq!(
            accepted,
            Accepted {
                order_id: "o-1".into(),
                customer: "ada".into(),
                total: 40.08,
                total_cents: 4008
            }
        );
    }

    #[test]
    fn invalid_orders_are_fatal_and_name_the_field() {
        let cases = [
            (
                r#"{"order_id":"o","customer":"c","items":[{"sku":"A","qty":1,"price":1},{"sku":"B","qty":0,"price":1}]}"#,
                "items[1].qty must be > 0, got 0",
            ),
            (
                r#"{"order_id":"o","customer":"c","items":[{"sku":"A","qty":1,"price":-1}]}"#,
                "items[0].price must be >= 0",
            ),
            (
                r#"{"order_id":"o","customer":"c","items":[{"sku":"A","qty":1,"price":0.001}]}"#,
                "at most 2 decimals",
            ),
            (
                r#"{"order_id":"o","customer":"c","items":[]}"#,
                "items must not be empty",
            ),
            (
                r#"{"order_id":"","customer":"c","items":[]}"#,
                "order_id must not be empty",
            ),
            (r#"{"order_id":"o","items":[]}"#, "missing field `customer`"),
            (
                r#"{"order_id":"o","customer":"c","items":[{"sku":"A","price":1}]}"#,
                "missing field `qty`",
            ),
            ("not json", "expected ident"),
        ];
        for (payload, expected) in cases {
            let error = order_created(payload).unwrap_err();
            assert!(error.is_fatal(), "{payload}: {error}");
            assert!(error.reason().contains(expected), "{payload}: {error}");
        }
        assert!(testing::take_emitted().is_empty());
    }
}
