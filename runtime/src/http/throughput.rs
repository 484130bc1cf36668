//! `GET /v1/throughput`: handled and failed deliveries per minute over the
//! last minutes, by event type (what the web console charts).

use axum::Json;
use axum::extract::State;

use super::ApiState;
use super::error::ErrorBody;
use crate::throughput::ThroughputReport;

/// Deliveries of this host per minute, by event type and outcome.
#[utoipa::path(
    get,
    path = "/v1/throughput",
    tag = "operations",
    responses(
        (status = 200, description = "The last minutes, oldest first", body = super::openapi::Throughput),
        (status = 401, description = "The bearer token is missing or wrong", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(crate) async fn get_throughput(State(state): State<ApiState>) -> Json<ThroughputReport> {
    Json(state.metrics.throughput())
}
