//! Outbound HTTP, through `wasi:http/outgoing-handler`, with failures already
//! sorted into "try again" and "give up" the way a handler wants them.
//!
//! ```no_run
//! use mailroom_sdk::{Error, http};
//!
//! # fn run() -> Result<(), Error> {
//! let response = http::post_json(
//!     "https://hooks.example.com/orders",
//!     &[("Authorization", "Bearer t0ken")],
//!     &serde_json::json!({"order_id": "o-1"}),
//! )?;
//! assert!(response.is_success());
//! # Ok(())
//! # }
//! ```
//!
//! A request reaches only the origins the operator lists for this plugin
//! (`allowed_outbound_hosts` under `[plugin.<name>]` in the host's
//! configuration); any other is refused by the host.
//!
//! [`Request::send`] maps every outcome onto [`Error`]:
//!
//! | outcome | becomes |
//! | --- | --- |
//! | a 2xx response | `Ok(response)` |
//! | connect error, DNS failure, timeout, connection reset, 5xx | retry |
//! | 429 | retry, after its `Retry-After` when it has one |
//! | 3xx | fatal: redirects are **not followed** (say where to in `url`) |
//! | any other 4xx | fatal, with the status and the start of the body |
//! | refused by the host (origin not allowed), response over the host's cap | fatal |
//!
//! [`Request::send_raw`] returns any response as is, for handlers that want
//! to decide by themselves.
//!
//! Outside a host (`cargo test`), requests go to the responder set with
//! [`testing::set_http_responder`](crate::testing::set_http_responder).

use std::time::Duration;

use serde::Serialize;

use crate::Error;

/// How much of a response body an error reason quotes.
const BODY_EXCERPT_BYTES: usize = 200;

/// An outgoing request. Build it, then [`send`](Request::send) it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    /// A request with `method` (`"GET"`, `"POST"`, ...) to `url`, an absolute
    /// `http://` or `https://` URL.
    pub fn new(method: impl Into<String>, url: impl Into<String>) -> Self {
        Self {
            method: method.into(),
            url: url.into(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A `GET` request.
    pub fn get(url: impl Into<String>) -> Self {
        Self::new("GET", url)
    }

    /// A `POST` request.
    pub fn post(url: impl Into<String>) -> Self {
        Self::new("POST", url)
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Sets `value` as a JSON body, with `Content-Type: application/json`.
    ///
    /// # Errors
    ///
    /// A fatal error if `value` does not serialize.
    pub fn json<T: Serialize + ?Sized>(self, value: &T) -> Result<Self, Error> {
        let body = serde_json::to_vec(value)?;
        Ok(self.header("Content-Type", "application/json").body(body))
    }

    /// The method.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The headers, in the order they were added.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// The value of the first header called `name` (case-insensitive).
    pub fn header_value(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body.
    pub fn body_bytes(&self) -> &[u8] {
        &self.body
    }

    /// Sends the request and returns a 2xx response; anything else is an
    /// [`Error`] sorted into retry or fatal (see the module docs).
    ///
    /// # Errors
    ///
    /// As in the table of the module docs.
    pub fn send(self) -> Result<Response, Error> {
        check_status(self.send_raw()?)
    }

    /// Sends the request and returns whatever response came back. Only
    /// failures to get a response are errors (retry, or fatal when the host
    /// refused the request or the response was over its cap).
    ///
    /// # Errors
    ///
    /// As above.
    pub fn send_raw(self) -> Result<Response, Error> {
        crate::host::http_send(self)
    }
}

/// A response, its body read whole (up to the host's cap).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    status: u16,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

impl Response {
    /// A response; for native tests' responders.
    pub fn new(status: u16, headers: Vec<(String, Vec<u8>)>, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            headers,
            body: body.into(),
        }
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The first value of the header `name` (case-insensitive), if it is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }

    /// The body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// Parses the body as JSON.
    ///
    /// # Errors
    ///
    /// A fatal error if the body does not parse as a `T`.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, Error> {
        Ok(serde_json::from_slice(&self.body)?)
    }
}

/// POSTs `body` as JSON to `url` with `headers`, and returns a 2xx response
/// or an [`Error`] sorted as in the module docs.
///
/// # Errors
///
/// As in the table of the module docs.
pub fn post_json<T: Serialize + ?Sized>(
    url: &str,
    headers: &[(&str, &str)],
    body: &T,
) -> Result<Response, Error> {
    let mut request = Request::post(url).json(body)?;
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send()
}

/// `response` if it is 2xx, else the [`Error`] its status calls for: 5xx and
/// 429 retry (after `Retry-After` when given), 3xx and other 4xx are fatal.
///
/// # Errors
///
/// As above.
pub fn check_status(response: Response) -> Result<Response, Error> {
    let status = response.status;
    if response.is_success() {
        return Ok(response);
    }
    let reason = format!("HTTP {status}{}", excerpt(&response.body));
    match status {
        429 | 500..=599 => match response.header("Retry-After").and_then(retry_after) {
            Some(delay) => Err(Error::retry_after(delay, reason)),
            None => Err(Error::retry(reason)),
        },
        300..=399 => Err(Error::fatal(format!(
            "HTTP {status}: redirects are not followed (Location: {})",
            response.header("Location").unwrap_or("none")
        ))),
        _ => Err(Error::fatal(reason)),
    }
}

/// `: <the start of the body>`, or nothing for an empty body.
fn excerpt(body: &[u8]) -> String {
    if body.is_empty() {
        return String::new();
    }
    let text = String::from_utf8_lossy(&body[..body.len().min(BODY_EXCERPT_BYTES)]);
    let text = text.trim();
    let more = if body.len() > BODY_EXCERPT_BYTES {
        "…"
    } else {
        ""
    };
    format!(": {text}{more}")
}

/// A `Retry-After` value: a number of seconds, or an HTTP date.
fn retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// An absolute URL split the way `wasi:http` wants it.
#[derive(Debug)]
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
pub(crate) struct Target<'a> {
    pub(crate) https: bool,
    pub(crate) authority: &'a str,
    pub(crate) path_with_query: &'a str,
}

#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
pub(crate) fn split_url(url: &str) -> Result<Target<'_>, Error> {
    let bad = || {
        Error::fatal(format!(
            "{url:?} is not an absolute http:// or https:// URL"
        ))
    };
    let (scheme, rest) = url.split_once("://").ok_or_else(bad)?;
    let https = match scheme.to_ascii_lowercase().as_str() {
        "https" => true,
        "http" => false,
        _ => return Err(bad()),
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    if authority.is_empty() {
        return Err(bad());
    }
    let path_with_query = if path.is_empty() { "/" } else { path };
    Ok(Target {
        https,
        authority,
        path_with_query,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn response(status: u16, headers: &[(&str, &str)], body: &str) -> Response {
        Response::new(
            status,
            headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
                .collect(),
            body,
        )
    }

    #[test]
    fn statuses_map_to_retry_and_fatal() {
        assert!(check_status(response(204, &[], "")).is_ok());
        let e = check_status(response(503, &[], "busy")).unwrap_err();
        assert!(!e.is_fatal());
        assert_eq!(e.reason(), "HTTP 503: busy");
        let e = check_status(response(429, &[("retry-after", "2")], "")).unwrap_err();
        assert!(!e.is_fatal());
        assert_eq!(e.delay(), Some(Duration::from_secs(2)));
        let e = check_status(response(410, &[], "gone for good")).unwrap_err();
        assert!(e.is_fatal());
        assert_eq!(e.reason(), "HTTP 410: gone for good");
        let e = check_status(response(302, &[("Location", "https://elsewhere")], "")).unwrap_err();
        assert!(e.is_fatal());
        assert!(e.reason().contains("https://elsewhere"), "{}", e.reason());
    }

    #[test]
    fn long_bodies_are_cut() {
        let body = "x".repeat(1000);
        let e = check_status(response(400, &[], &body)).unwrap_err();
        assert!(e.reason().len() < 250, "{}", e.reason());
        assert!(e.reason().ends_with('…'));
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after("soon"), None);
    }

    #[test]
    fn urls_split() {
        let t = split_url("https://hooks.example.com:8443/a/b?c=d").unwrap();
        assert!(t.https);
        assert_eq!(t.authority, "hooks.example.com:8443");
        assert_eq!(t.path_with_query, "/a/b?c=d");
        let t = split_url("http://127.0.0.1:9000").unwrap();
        assert!(!t.https);
        assert_eq!(t.path_with_query, "/");
        assert!(split_url("ftp://x").unwrap_err().is_fatal());
        assert!(split_url("hooks.example.com").is_err());
    }
}
