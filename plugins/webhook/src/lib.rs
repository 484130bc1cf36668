//! `webhook`: delivers each `notification.requested` event to a webhook
//! receiver, signed the way Stripe and GitHub sign theirs.
//!
//! Input (`notification.requested`, as emitted by `notifier`): any JSON; it
//! is POSTed as is.
//!
//! Configuration (`[plugin.webhook]` in the host's configuration):
//!
//! ```toml
//! [plugin.webhook]
//! allowed_outbound_hosts = ["http://127.0.0.1:9000"]
//!
//! [plugin.webhook.config]
//! url = "http://127.0.0.1:9000/hooks"
//! secret = "${WEBHOOK_SECRET}"
//! ```
//!
//! The request: `POST <url>` with the payload as the body and
//!
//! - `Content-Type: application/json`
//! - `Idempotency-Key: <message id>`: the same on every attempt, so a
//!   receiver can drop a redelivery;
//! - `X-Mailroom-Timestamp: <unix seconds>`;
//! - `X-Mailroom-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>"
//!   keyed with the secret>`.
//!
//! A receiver recomputes the signature over the timestamp and the raw body,
//! compares in constant time, and rejects old timestamps (replays); see
//! `plugins/README.md`. Failures follow the SDK's rules: connect errors,
//! timeouts, 5xx and 429 retry (429's `Retry-After` sets the delay); any
//! other 4xx dead-letters the event with the status and the start of the body.

use hmac::{Hmac, Mac};
use mailroom_sdk::{Error, Event, Plugin, config, http, log};
use sha2::Sha256;

struct Webhook;

impl Plugin for Webhook {
    const NAME: &'static str = "webhook";
    const EVENT_TYPES: &'static [&'static str] = &["notification.requested"];

    fn handle(event: Event) -> Result<(), Error> {
        let url = config::require("url")?;
        let secret = config::require("secret")?;
        let body = event.payload();
        let timestamp = unix_seconds();
        let request = http::Request::post(url.as_str())
            .header("Content-Type", "application/json")
            .header("Idempotency-Key", event.id())
            .header("X-Mailroom-Timestamp", timestamp.to_string())
            .header("X-Mailroom-Signature", signature(&secret, timestamp, body))
            .body(body);
        let response = request.send()?;
        log::info!(
            "delivered {} to {url}: HTTP {}",
            event.id(),
            response.status()
        );
        Ok(())
    }
}

/// `sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">`.
fn signature(secret: &str, timestamp: u64, body: &[u8]) -> String {
    // HMAC takes a key of any length: this cannot fail.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        unreachable!("HMAC accepts keys of any length")
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut out = String::with_capacity(7 + digest.len() * 2);
    out.push_str("sha256=");
    for byte in digest {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

mailroom_sdk::export_plugin!(Webhook);

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use mailroom_sdk::testing;

    #[test]
    fn the_signature_is_the_documented_hmac() {
        // Computed with: printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac s3cret
        assert_eq!(
            signature("s3cret", 1_700_000_000, br#"{"a":1}"#),
            "sha256=1698a50bc74d1ff1db85c4e0a5297c2ad9fdba245d5737cdb789e4cc6e098940"
        );
    }

    #[test]
    fn posts_the_signed_payload() {
        testing::set_config("url", Some("http://127.0.0.1:9000/hooks"));
        testing::set_config("secret", Some("s3cret"));
        testing::set_http_responder(Some(Box::new(|request: &http::Request| {
            assert_eq!(request.url(), "http://127.0.0.1:9000/hooks");
            assert_eq!(request.body_bytes(), br#"{"order_id":"o-1"}"#);
            let timestamp: u64 = request
                .header_value("X-Mailroom-Timestamp")
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(
                request.header_value("X-Mailroom-Signature").unwrap(),
                signature("s3cret", timestamp, request.body_bytes())
            );
            assert!(request.header_value("Idempotency-Key").is_some());
            Ok(http::Response::new(204, Vec::new(), ""))
        })));
        Webhook::handle(Event::new(
            "notification.requested",
            r#"{"order_id":"o-1"}"#,
        ))
        .unwrap();
    }

    #[test]
    fn a_missing_url_is_fatal() {
        testing::set_config("url", None);
        let error = Webhook::handle(Event::new("notification.requested", "{}")).unwrap_err();
        assert!(error.is_fatal());
        assert!(error.reason().contains("\"url\""), "{}", error.reason());
    }
}
