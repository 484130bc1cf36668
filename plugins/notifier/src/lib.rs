//! `notifier`: asks for a customer email for every accepted order.
//!
//! Input (`order.accepted`, as emitted by `order-validator`):
//! `{"order_id": "o-1", "customer": "ada@example.com", "total": 39.98}`
//!
//! Output (`notification.requested`, key `notification.requested:<order_id>`):
//! `{"order_id": "o-1", "customer": "ada@example.com", "channel": "email", "message": "..."}`

use mailroom_sdk::{Emit, Error, Event, Plugin, log};
use serde::{Deserialize, Serialize};

struct Notifier;

#[derive(Deserialize)]
struct Accepted {
    order_id: String,
    customer: String,
    total: f64,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Notification {
    order_id: String,
    customer: String,
    channel: String,
    message: String,
}

impl Plugin for Notifier {
    const NAME: &'static str = "notifier";
    const EVENT_TYPES: &'static [&'static str] = &["order.accepted"];

    fn handle(event: Event) -> Result<(), Error> {
        let order: Accepted = event.json()?;
        log::info!(
            "notifying {} about order {}",
            order.customer,
            order.order_id
        );
        let message = format!(
            "Your order {} ({:.2}) has been accepted.",
            order.order_id, order.total
        );
        Emit::new("notification.requested")
            .key(format!("notification.requested:{}", order.order_id))
            .json(&Notification {
                order_id: order.order_id,
                customer: order.customer,
                channel: "email".into(),
                message,
            })
            .send()?;
        Ok(())
    }
}

mailroom_sdk::export_plugin!(Notifier);

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use mailroom_sdk::testing;

    #[test]
    fn an_accepted_order_requests_an_email() {
        let payload = r#"{"order_id":"o-1","customer":"ada","total":39.9,"total_cents":3990}"#;
        Notifier::handle(Event::new("order.accepted", payload)).unwrap();
        let emitted = testing::take_emitted();
        assert_eq!(emitted.len(), 1);
        assert_eq!(emitted[0].event_type, "notification.requested");
        assert_eq!(
            emitted[0].key.as_deref(),
            Some("notification.requested:o-1")
        );
        let notification: Notification = emitted[0].json().unwrap();
        assert_eq!(notification.channel, "email");
        assert_eq!(
            notification.message,
            "Your order o-1 (39.90) has been accepted."
        );
    }
}
