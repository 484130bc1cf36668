//! `GET /v1/stats`: the same JSON as `mailroom stats --json`.

use axum::Json;
use axum::extract::State;

use super::ApiState;
use super::error::{ApiError, ErrorBody};
use crate::store::Stats;

/// Counts of the store's messages by state, event type and priority.
#[utoipa::path(
    get,
    path = "/v1/stats",
    tag = "operations",
    responses(
        (status = 200, description = "A snapshot of the store", body = super::openapi::Stats),
        (status = 503, description = "The store is busy", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(crate) async fn get_stats(State(state): State<ApiState>) -> Result<Json<Stats>, ApiError> {
    Ok(Json(state.ingest.stats().await?))
}
