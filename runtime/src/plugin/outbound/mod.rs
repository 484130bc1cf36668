//! Outbound HTTP for plugins (`wasi:http/outgoing-handler`), denied by
//! default and opened per plugin by the operator.
//!
//! wasmtime-wasi-http implements the interface; every request it would send
//! comes through [`Outbound::send_request`], the one place that decides:
//!
//! 1. the request's origin (scheme, host, port) must be in the plugin's
//!    `allowed_outbound_hosts` (`allow.rs`), else it is refused with
//!    `http-request-denied` and the host logs the plugin, the origin and the
//!    key to change;
//! 2. at most [`SandboxLimits::http_max_concurrent_requests`] requests of a
//!    delivery are open at once;
//! 3. the host resolves the name itself and connects only to an address it
//!    checked: a non-public address (loopback, private, link-local) only when
//!    the operator wrote that address (or `localhost`), so DNS cannot route
//!    an allowed name into the host's own network (`send.rs`);
//! 4. connecting is bounded by the connect timeout, the whole request by the
//!    delivery's deadline (the delivery's own time limit cancels it, and
//!    dropping the delivery's store aborts its connections), and the
//!    response body by [`SandboxLimits::http_max_response_bytes`].
//!
//! Redirects are never followed by the host: the plugin sees the 3xx.

mod allow;
mod body;
mod send;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::Instant;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

pub use allow::{AllowedOrigin, InvalidOrigin};

use super::access::PluginAccess;
use super::sandbox::SandboxLimits;
use allow::{Origin, Scheme};

/// Where outbound requests are counted: the host's metrics implement it.
pub trait OutboundObserver: Send + Sync + std::fmt::Debug {
    /// A request got a response with `status` after `latency` (to its headers).
    fn responded(&self, plugin: &str, origin: &str, status: u16, latency: Duration);
    /// A request failed without a response (connect error, timeout, ...).
    fn failed(&self, plugin: &str, origin: &str, latency: Duration);
    /// A request was refused: its origin is not allowed, or its name
    /// resolved to an address the operator did not allow.
    fn refused(&self, plugin: &str, origin: &str);
}

/// The outbound HTTP policy of one store, refreshed for each call.
pub(crate) struct Outbound {
    plugin: Arc<str>,
    /// The message id of the current call, for the log lines of its
    /// requests.
    call: Arc<str>,
    access: Arc<PluginAccess>,
    deadline: Instant,
    /// Requests of the current call that may be open at once.
    requests: Arc<Semaphore>,
    max_requests: u32,
    connect_timeout: Duration,
    max_response_bytes: u64,
    observer: Option<Arc<dyn OutboundObserver>>,
}

impl Outbound {
    pub(crate) fn new(
        plugin: Arc<str>,
        limits: &SandboxLimits,
        observer: Option<Arc<dyn OutboundObserver>>,
    ) -> Self {
        Self {
            plugin,
            // Empty until the first call (no allocation).
            call: Arc::default(),
            access: Arc::default(),
            deadline: Instant::now() + limits.timeout,
            requests: Arc::new(Semaphore::new(limits.http_max_concurrent_requests as usize)),
            max_requests: limits.http_max_concurrent_requests,
            connect_timeout: limits.http_connect_timeout,
            max_response_bytes: limits.http_max_response_bytes,
            observer,
        }
    }

    /// Starts the call handling message `id`: the plugin's current access,
    /// the call's deadline and a fresh budget of open requests.
    pub(crate) fn begin_call(&mut self, id: Arc<str>, access: Arc<PluginAccess>, timeout: Duration) {
        self.call = id;
        self.access = access;
        self.deadline = Instant::now() + timeout;
        self.requests = Arc::new(Semaphore::new(self.max_requests as usize));
    }

    /// The access of the current call.
    pub(crate) fn access(&self) -> &PluginAccess {
        &self.access
    }

    fn refuse(&self, origin: &str, why: &str) -> HttpError {
        tracing::warn!(
            plugin = %self.plugin,
            message_id = %self.call,
            origin = %origin,
            "outbound request refused: {why}; to allow it, add the origin to allowed_outbound_hosts under [plugin.{}] in the host's configuration",
            toml_key(&self.plugin),
        );
        if let Some(observer) = &self.observer {
            observer.refused(&self.plugin, origin);
        }
        HttpError::HttpRequestDenied
    }
}

/// `name` as a TOML key: bare when it can be, quoted otherwise.
fn toml_key(name: &str) -> String {
    if !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        name.to_owned()
    } else {
        format!("{name:?}")
    }
}

type SendFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), HttpError>> + Send>,
                ),
                HttpError,
            >,
        > + Send,
>;

impl WasiHttpHooks for Outbound {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> SendFuture {
        drop(fut);
        let uri = request.uri();
        let origin = uri
            .scheme_str()
            .and_then(Scheme::parse)
            .zip(uri.authority())
            .and_then(|(scheme, authority)| Origin::new(scheme, authority.as_str()));
        let Some(origin) = origin else {
            return Box::new(std::future::ready(Err(HttpError::HttpRequestUriInvalid)));
        };
        let label = origin.to_string();
        let Some(entry) = allow::find(&self.access.allowed_outbound_hosts, &origin).cloned() else {
            let error = self.refuse(&label, "the origin is not allowed for this plugin");
            return Box::new(std::future::ready(Err(error)));
        };
        let Ok(permit) = self.requests.clone().try_acquire_owned() else {
            tracing::warn!(
                plugin = %self.plugin,
                message_id = %self.call,
                origin = %label,
                "outbound request refused: {} requests of this delivery are already open (plugins.http_max_concurrent_requests)",
                self.max_requests,
            );
            return Box::new(std::future::ready(Err(HttpError::ConnectionLimitReached)));
        };
        let connect_timeout = options
            .and_then(|o| o.connect_timeout)
            .map_or(self.connect_timeout, |t| t.min(self.connect_timeout));
        let plan = send::Plan {
            plugin: self.plugin.clone(),
            call: self.call.clone(),
            origin,
            label,
            entry,
            deadline: self.deadline,
            connect_timeout,
            max_response_bytes: self.max_response_bytes,
            observer: self.observer.clone(),
            permit,
        };
        Box::new(send::send(plan, request))
    }
}
