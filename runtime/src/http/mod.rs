//! The HTTP API, served by `mailroom run` when `[http] listen` is set, on the
//! host's own tokio runtime.
//!
//! | file              | serves                                                    |
//! | ----------------- | --------------------------------------------------------- |
//! | `events.rs`       | `POST /v1/events` (object, array or NDJSON; all or nothing) |
//! | `stats.rs`        | `GET /v1/stats`                                           |
//! | `throughput.rs`   | `GET /v1/throughput` (deliveries per minute)              |
//! | `plugins.rs`      | `GET /v1/plugins`                                         |
//! | `messages.rs`     | `/v1/messages…`: list, show, cancel; `/v1/event-types/{t}/…`: cancel queued, pause, resume |
//! | `dead_letters.rs` | `/v1/dead-letters…`: list, show, redrive, purge           |
//! | `health.rs`       | `GET /healthz`, `GET /readyz`                             |
//! | `metrics.rs`      | `GET /metrics` (Prometheus)                               |
//! | `openapi.rs`      | `GET /v1/openapi.json`, generated from the handlers       |
//! | `console.rs`      | the web console at `/ui/` (files in `console/`)           |
//! | `auth.rs`         | the bearer token                                          |
//! | `query.rs`        | query parameters the list endpoints share                 |
//! | `error.rs`        | the one error type and its JSON shape                     |
//!
//! Every request works through the host's producer connection (synced
//! commits), never the dispatcher's, so a flood of API calls waits on its own
//! connection and never holds up claims and acks. A token check, a time limit
//! and a concurrency limit (excess requests get 503 at once rather than
//! queueing) guard everything but `/healthz` and the console's files (which
//! hold no data: the console reads everything through the guarded API).

mod auth;
mod console;
mod dead_letters;
mod error;
mod events;
mod health;
mod messages;
mod metrics;
mod openapi;
mod plugins;
mod query;
mod stats;
mod throughput;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use axum::error_handling::HandleErrorLayer;
use axum::routing::get;
use axum::{BoxError, Json, Router};
use tokio::net::TcpListener;
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;
use tower::ServiceBuilder;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::store::Store;

pub use dead_letters::DeadLetterDetail;
pub use error::{ApiError, ErrorBody, ErrorDetail};

/// The default body limit is this many times `store.max_payload_bytes`
/// (plus [`ENVELOPE_BYTES`]): room for a batch of several full-size events.
pub const BODY_LIMIT_FACTOR: usize = 8;

/// Room for the event objects' other fields around the payloads.
pub const ENVELOPE_BYTES: usize = 64 * 1024;

/// How long one request may take, body upload included, before it is
/// answered 408.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Requests handled at once; more are refused with 503 and `Retry-After`.
pub const MAX_CONCURRENT_REQUESTS: usize = 64;

/// How the API behaves.
#[derive(Clone, PartialEq, Eq)]
pub struct Settings {
    /// The bearer token every request but `/healthz` must carry, if any.
    pub token: Option<String>,
    /// The largest request body accepted (413 beyond).
    pub max_body_bytes: usize,
    /// See [`REQUEST_TIMEOUT`].
    pub request_timeout: Duration,
    /// See [`MAX_CONCURRENT_REQUESTS`].
    pub max_concurrent_requests: usize,
}

// By hand so the token never reaches a log line.
impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("token", &self.token.as_ref().map(|_| "<hidden>"))
            .field("max_body_bytes", &self.max_body_bytes)
            .field("request_timeout", &self.request_timeout)
            .field("max_concurrent_requests", &self.max_concurrent_requests)
            .finish()
    }
}

impl Settings {
    /// The settings `config` asks for: `http.token`, and `http.max_body_bytes`
    /// or, when unset, [`BODY_LIMIT_FACTOR`] × `store.max_payload_bytes` +
    /// [`ENVELOPE_BYTES`].
    pub fn from_config(config: &Config) -> Self {
        Self {
            token: config.http.token.clone(),
            max_body_bytes: config.http.max_body_bytes.unwrap_or_else(|| {
                config
                    .store
                    .max_payload_bytes
                    .saturating_mul(BODY_LIMIT_FACTOR)
                    .saturating_add(ENVELOPE_BYTES)
            }),
            request_timeout: REQUEST_TIMEOUT,
            max_concurrent_requests: MAX_CONCURRENT_REQUESTS,
        }
    }
}

/// What `/readyz` looks at besides the store.
#[derive(Debug, Clone)]
pub struct Readiness {
    /// The watched plugin folder.
    pub plugin_dir: PathBuf,
    /// Whether the folder's events are still being applied.
    pub watching: Arc<AtomicBool>,
}

/// What every handler shares. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ApiState {
    ingest: Store,
    wake: Arc<Notify>,
    metrics: Arc<Metrics>,
    readiness: Readiness,
    settings: Arc<Settings>,
}

impl ApiState {
    /// State over a host's parts: `ingest` is the producer connection (every
    /// request uses it), `wake` the dispatcher's wake-up.
    pub fn new(
        ingest: Store,
        wake: Arc<Notify>,
        metrics: Arc<Metrics>,
        readiness: Readiness,
        settings: Settings,
    ) -> Self {
        Self {
            ingest,
            wake,
            metrics,
            readiness,
            settings: Arc::new(settings),
        }
    }

    /// State over a running host.
    pub fn for_host(host: &crate::host::Host, settings: Settings) -> Self {
        Self::new(
            host.ingest().clone(),
            host.wake_handle(),
            host.metrics().clone(),
            host.readiness(),
            settings,
        )
    }
}

/// The API's routes with their OpenAPI description.
fn api() -> OpenApiRouter<ApiState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(events::post_events))
        .routes(routes!(stats::get_stats))
        .routes(routes!(throughput::get_throughput))
        .routes(routes!(plugins::get_plugins))
        .routes(routes!(messages::list))
        .routes(routes!(messages::show, messages::cancel_one))
        .routes(routes!(messages::cancel_queued))
        .routes(routes!(messages::pause))
        .routes(routes!(messages::resume))
        .routes(routes!(dead_letters::list))
        .routes(routes!(dead_letters::show, dead_letters::purge_one))
        .routes(routes!(dead_letters::redrive_one))
        .routes(routes!(dead_letters::redrive_many))
        .routes(routes!(dead_letters::purge_many))
        .routes(routes!(health::readyz))
        .routes(routes!(metrics::get_metrics))
}

/// The OpenAPI document of the whole API (what `/v1/openapi.json` serves).
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = api().routes(routes!(health::healthz)).into_openapi();
    doc.paths.paths.insert(
        "/v1/openapi.json".to_owned(),
        utoipa::openapi::PathItem::new(
            utoipa::openapi::HttpMethod::Get,
            utoipa::openapi::path::OperationBuilder::new()
                .tag("operations")
                .summary(Some("This document"))
                .response(
                    "200",
                    utoipa::openapi::Response::new("The OpenAPI document"),
                ),
        ),
    );
    doc
}

/// The whole API as a router, ready to serve.
pub fn router(state: ApiState) -> Router {
    let settings = state.settings.clone();
    let document = Arc::new(openapi());
    let (guarded, _) = api().split_for_parts();
    let guarded = guarded
        .route(
            "/v1/openapi.json",
            get(move || async move { Json(document.as_ref().clone()) }),
        )
        // Innermost first: the time limit and the concurrency limit apply to
        // the handlers; the token check runs before either, so requests
        // without the token never take a slot.
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(move |e: BoxError| {
                    let timeout = settings.request_timeout;
                    async move { overloaded(e, timeout) }
                }))
                .load_shed()
                .concurrency_limit(state.settings.max_concurrent_requests)
                .timeout(state.settings.request_timeout),
        )
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    Router::new()
        .route("/healthz", get(health::healthz))
        .merge(console::routes())
        .merge(guarded)
        .fallback(|| async { ApiError::NotFound("no such endpoint: see /v1/openapi.json".into()) })
        .layer(axum::middleware::from_fn(method_not_allowed))
        .with_state(state)
}

/// Gives the router's bare 405 (a known path, another method) the JSON
/// error shape of every other error. The router adds the `Allow` header
/// afterwards, so the message points at it.
async fn method_not_allowed(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let method = request.method().clone();
    let response = next.run(request).await;
    if response.status() != axum::http::StatusCode::METHOD_NOT_ALLOWED {
        return response;
    }
    let mut json = ApiError::MethodNotAllowed(format!(
        "this endpoint does not take {method}: the Allow header lists the methods it takes (see /v1/openapi.json)"
    ))
    .into_response();
    if let Some(allow) = response.headers().get(axum::http::header::ALLOW) {
        json.headers_mut()
            .insert(axum::http::header::ALLOW, allow.clone());
    }
    json
}

fn overloaded(e: BoxError, timeout: Duration) -> ApiError {
    if e.is::<tower::timeout::error::Elapsed>() {
        ApiError::Timeout(timeout)
    } else if e.is::<tower::load_shed::error::Overloaded>() {
        ApiError::Overloaded
    } else {
        ApiError::Internal(format!("the HTTP stack failed: {e}"))
    }
}

/// Serves `state`'s API on `listener` until `shutdown` completes, then
/// finishes the requests in progress and returns.
///
/// # Errors
///
/// An I/O error of the listener.
pub async fn serve(
    listener: TcpListener,
    state: ApiState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

/// A server running in the background (see [`Server::start`]).
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

/// How long [`Server::stop`] lets requests in progress finish.
const STOP_GRACE: Duration = Duration::from_secs(10);

impl Server {
    /// Serves `state`'s API on `listener` in a new task.
    ///
    /// # Errors
    ///
    /// The listener's address cannot be read.
    pub fn start(listener: TcpListener, state: ApiState) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, state, async move {
            let _ = stopped.await;
        }));
        tracing::info!(%addr, console = %format_args!("http://{addr}/ui/"), "HTTP API listening");
        Ok(Self { addr, stop, task })
    }

    /// The address served (with the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting connections and lets requests in progress finish
    /// (for a while: a stuck client does not hold up shutdown).
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let mut task = self.task;
        match tokio::time::timeout(STOP_GRACE, &mut task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::error!("the HTTP server failed: {e}"),
            Ok(Err(e)) => tracing::error!("the HTTP server stopped abnormally: {e}"),
            Err(_) => {
                tracing::warn!("HTTP requests still running after {STOP_GRACE:?}; closing them");
                task.abort();
            }
        }
    }
}
