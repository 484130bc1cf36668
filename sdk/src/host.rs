//! The host imports, and what stands in for them outside a host.
//!
//! On `wasm32` these call the Mailroom host. Natively (unit tests, doctests)
//! there is no host: log lines go to stderr and emitted events are kept per
//! thread for [`crate::testing::take_emitted`], so handler code can be tested
//! with a plain `cargo test`.

use crate::wit::mailroom::plugin::logging::Level;
use crate::wit::mailroom::plugin::follow_ups::EmitRefusal;
use crate::wit::mailroom::plugin::types::OutgoingEvent;

#[cfg(target_arch = "wasm32")]
pub(crate) fn emit(event: OutgoingEvent) -> Result<(), EmitRefusal> {
    crate::wit::mailroom::plugin::follow_ups::emit(&event)
}

#[cfg(target_arch = "wasm32")]
pub(crate) fn log(level: Level, message: &str) {
    crate::wit::mailroom::plugin::logging::log(level, message);
}

#[cfg(target_arch = "wasm32")]
pub(crate) fn log_enabled(level: Level) -> bool {
    crate::wit::mailroom::plugin::log_filter::enabled(level)
}

#[cfg(target_arch = "wasm32")]
pub(crate) fn config_get(key: &str) -> Option<String> {
    crate::wit::mailroom::plugin::config::get(key)
}

#[cfg(not(target_arch = "wasm32"))]
std::thread_local! {
    static CONFIG: std::cell::RefCell<std::collections::BTreeMap<String, String>> =
        const { std::cell::RefCell::new(std::collections::BTreeMap::new()) };
}

#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn config_get(key: &str) -> Option<String> {
    CONFIG.with_borrow(|config| config.get(key).cloned())
}

#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn set_config(key: &str, value: Option<&str>) {
    CONFIG.with_borrow_mut(|config| match value {
        Some(value) => config.insert(key.to_owned(), value.to_owned()),
        None => config.remove(key),
    });
}

#[cfg(not(target_arch = "wasm32"))]
std::thread_local! {
    static EMITTED: std::cell::RefCell<Vec<OutgoingEvent>> = const { std::cell::RefCell::new(Vec::new()) };
}

#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn emit(event: OutgoingEvent) -> Result<(), EmitRefusal> {
    EMITTED.with_borrow_mut(|emitted| emitted.push(event));
    Ok(())
}

#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn take_emitted() -> Vec<OutgoingEvent> {
    EMITTED.with_borrow_mut(std::mem::take)
}

#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn log(level: Level, message: &str) {
    std::eprintln!("[{level:?}] {message}");
}

/// Natively every line is written to stderr.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn log_enabled(_: Level) -> bool {
    true
}

#[cfg(target_arch = "wasm32")]
pub(crate) use wasi_http::send as http_send;

/// Outside a host, requests go to the responder set by
/// [`crate::testing::set_http_responder`].
#[cfg(not(target_arch = "wasm32"))]
pub(crate) type Responder =
    Box<dyn FnMut(&crate::http::Request) -> Result<crate::http::Response, crate::Error>>;

#[cfg(not(target_arch = "wasm32"))]
std::thread_local! {
    static RESPONDER: std::cell::RefCell<Option<Responder>> = const { std::cell::RefCell::new(None) };
}

#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn set_responder(responder: Option<Responder>) {
    RESPONDER.with_borrow_mut(|r| *r = responder);
}

#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn http_send(
    request: crate::http::Request,
) -> Result<crate::http::Response, crate::Error> {
    RESPONDER.with_borrow_mut(|responder| match responder {
        Some(respond) => respond(&request),
        None => Err(crate::Error::fatal(
            "no HTTP outside a host: set a responder with mailroom_sdk::testing::set_http_responder",
        )),
    })
}

/// `wasi:http/outgoing-handler`, used the blocking way a handler runs.
#[cfg(target_arch = "wasm32")]
mod wasi_http {
    use crate::Error;
    use crate::http::{Request, Response, split_url};
    use crate::wit::wasi::http::outgoing_handler;
    use crate::wit::wasi::http::types::{
        ErrorCode, Fields, IncomingBody, Method, OutgoingBody, OutgoingRequest, Scheme,
        http_error_code,
    };
    use crate::wit::wasi::io::streams::StreamError;

    /// The bytes handed to one stream write (wasi-http accepts at least 4 KiB).
    const WRITE_CHUNK: usize = 4096;
    const READ_CHUNK: u64 = 64 * 1024;

    pub(crate) fn send(request: Request) -> Result<Response, Error> {
        let target = split_url(request.url())?;
        let origin = format!(
            "{}://{}",
            if target.https { "https" } else { "http" },
            target.authority
        );
        let mut entries: Vec<(String, Vec<u8>)> = request
            .headers()
            .iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), v.as_bytes().to_vec()))
            .collect();
        // A body of known length is sent with its length rather than
        // chunked: some receivers (and proxies) do not read chunked bodies.
        let sends_body = !request.body_bytes().is_empty()
            || matches!(
                request.method().to_ascii_uppercase().as_str(),
                "POST" | "PUT" | "PATCH"
            );
        if sends_body && !entries.iter().any(|(n, _)| n == "content-length") {
            entries.push((
                "content-length".to_owned(),
                request.body_bytes().len().to_string().into_bytes(),
            ));
        }
        let headers = Fields::from_list(&entries)
            .map_err(|e| Error::fatal(format!("request to {origin}: invalid header: {e:?}")))?;
        let outgoing = OutgoingRequest::new(headers);
        let method = match request.method().to_ascii_uppercase().as_str() {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "PATCH" => Method::Patch,
            "OPTIONS" => Method::Options,
            other => Method::Other(other.to_owned()),
        };
        let invalid = |what: &str| Error::fatal(format!("request to {origin}: invalid {what}"));
        outgoing
            .set_method(&method)
            .map_err(|()| invalid("method"))?;
        let scheme = if target.https {
            Scheme::Https
        } else {
            Scheme::Http
        };
        outgoing
            .set_scheme(Some(&scheme))
            .map_err(|()| invalid("scheme"))?;
        outgoing
            .set_authority(Some(target.authority))
            .map_err(|()| invalid("authority"))?;
        outgoing
            .set_path_with_query(Some(target.path_with_query))
            .map_err(|()| invalid("path"))?;
        let body = outgoing
            .body()
            .map_err(|()| Error::fatal("the request body was already taken"))?;
        let future =
            outgoing_handler::handle(outgoing, None).map_err(|code| failure(&origin, &code))?;
        let wait = || loop {
            match future.get() {
                Some(Ok(Ok(response))) => break Ok(response),
                Some(Ok(Err(code))) => break Err(failure(&origin, &code)),
                Some(Err(())) => break Err(Error::retry("the response was already taken")),
                None => future.subscribe().block(),
            }
        };
        let sent = (|| {
            let stream = body
                .write()
                .map_err(|()| Error::fatal("the request body stream was already taken"))?;
            for chunk in request.body_bytes().chunks(WRITE_CHUNK) {
                stream
                    .blocking_write_and_flush(chunk)
                    .map_err(|e| stream_failure(&origin, "sending the body", e))?;
            }
            drop(stream);
            OutgoingBody::finish(body, None).map_err(|code| failure(&origin, &code))
        })();
        // A request the host refused (or could not send) closes its body
        // stream: the response future says why, which is the better reason.
        let incoming = match sent {
            Ok(()) => wait()?,
            Err(error) => match wait() {
                Err(reason) => return Err(reason),
                Ok(_) => return Err(error),
            },
        };
        let status = incoming.status();
        let headers = incoming.headers().entries();
        let body = incoming
            .consume()
            .map_err(|()| Error::retry("the response body was already taken"))?;
        let mut bytes = Vec::new();
        {
            let stream = body
                .stream()
                .map_err(|()| Error::retry("the response body stream was already taken"))?;
            loop {
                match stream.blocking_read(READ_CHUNK) {
                    Ok(chunk) => bytes.extend_from_slice(&chunk),
                    Err(StreamError::Closed) => break,
                    Err(e) => return Err(stream_failure(&origin, "reading the response", e)),
                }
            }
        }
        drop(IncomingBody::finish(body));
        Ok(Response::new(status, headers, bytes))
    }

    fn stream_failure(origin: &str, doing: &str, error: StreamError) -> Error {
        match error {
            StreamError::LastOperationFailed(e) => match http_error_code(&e) {
                Some(code) => failure(origin, &code),
                None => Error::retry(format!("{doing} of {origin}: {}", e.to_debug_string())),
            },
            StreamError::Closed => {
                Error::retry(format!("{doing} of {origin}: the connection closed"))
            }
        }
    }

    /// The host's reason a request got no response, sorted into retry and fatal.
    fn failure(origin: &str, code: &ErrorCode) -> Error {
        match code {
            ErrorCode::HttpRequestDenied => Error::fatal(format!(
                "request to {origin} refused by the host: the origin is not in this plugin's allowed_outbound_hosts"
            )),
            ErrorCode::DestinationIpProhibited => Error::fatal(format!(
                "request to {origin} refused by the host: the name resolves to a private address the operator did not allow"
            )),
            ErrorCode::HttpResponseBodySize(limit) => Error::fatal(format!(
                "the response of {origin} is larger than the host allows ({} bytes)",
                limit.map_or_else(|| "?".to_owned(), |l| l.to_string())
            )),
            ErrorCode::HttpRequestUriInvalid | ErrorCode::HttpRequestMethodInvalid => {
                Error::fatal(format!("request to {origin}: {code:?}"))
            }
            other => Error::retry(format!("request to {origin} failed: {}", describe(other))),
        }
    }

    fn describe(code: &ErrorCode) -> String {
        match code {
            ErrorCode::ConnectionRefused => "connection refused".into(),
            ErrorCode::ConnectionTimeout => "connect timed out".into(),
            ErrorCode::ConnectionReadTimeout => {
                "no response before the delivery's time limit".into()
            }
            ErrorCode::ConnectionTerminated => "connection closed".into(),
            ErrorCode::ConnectionLimitReached => "too many open requests in this delivery".into(),
            ErrorCode::DnsTimeout => "DNS lookup timed out".into(),
            ErrorCode::DnsError(_) => "DNS lookup failed".into(),
            other => format!("{other:?}"),
        }
    }
}
