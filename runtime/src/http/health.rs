//! `GET /healthz` (the process answers) and `GET /readyz` (the store
//! answers a cheap query and the plugin folder is watched).

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::ApiState;
use super::error::{ApiError, ErrorBody};

/// A store that does not answer this fast is not ready: a load balancer
/// should not wait on a busy store.
const STORE_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// A health or readiness answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Status {
    /// `ok` or `ready`.
    pub status: &'static str,
    /// `/readyz` only: the event types paused on the store (their messages
    /// wait until resumed). Ready all the same: a pause is deliberate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paused_event_types: Option<Vec<String>>,
}

/// The process is up. Never asks for a token.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    responses((status = 200, description = "The process is up", body = Status)),
)]
pub(crate) async fn healthz() -> Json<Status> {
    Json(Status {
        status: "ok",
        paused_event_types: None,
    })
}

/// The host can take work: the store answers and the plugin folder is watched.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    responses(
        (status = 200, description = "Ready", body = Status),
        (status = 503, description = "Not ready; `message` says which check failed", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(crate) async fn readyz(State(state): State<ApiState>) -> Result<Json<Status>, ApiError> {
    let mut problems = Vec::new();
    let store = tokio::time::timeout(STORE_CHECK_TIMEOUT, async {
        state.ingest.ping().await?;
        state.ingest.paused().await
    })
    .await;
    let mut paused = Vec::new();
    match store {
        Ok(Ok(types)) => paused = types.into_iter().map(|p| p.event_type).collect(),
        Ok(Err(e)) => {
            tracing::warn!("readiness: the store failed a query: {e}");
            problems.push("the store does not answer queries".to_owned());
        }
        Err(_) => problems.push(format!(
            "the store did not answer within {STORE_CHECK_TIMEOUT:?}"
        )),
    }
    if !state.readiness.watching.load(Ordering::Relaxed) {
        problems.push("the plugin folder is no longer watched".to_owned());
    } else if !state.readiness.plugin_dir.is_dir() {
        problems.push(format!(
            "the plugin folder {} is gone",
            state.readiness.plugin_dir.display()
        ));
    }
    if problems.is_empty() {
        Ok(Json(Status {
            status: "ready",
            paused_event_types: Some(paused),
        }))
    } else {
        Err(ApiError::NotReady(format!(
            "not ready: {}",
            problems.join("; ")
        )))
    }
}
