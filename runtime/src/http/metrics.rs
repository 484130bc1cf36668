//! `GET /metrics`: Prometheus (OpenMetrics) text. Counters come from
//! [`crate::metrics::Metrics`]; the queue gauges are read from the store at
//! scrape time.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::ApiState;
use super::error::{ApiError, ErrorBody};

/// The host's metrics.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses(
        (status = 200, description = "OpenMetrics text", body = String,
         content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8"),
        (status = 503, description = "The store is busy", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(crate) async fn get_metrics(
    State(state): State<ApiState>,
) -> Result<impl IntoResponse, ApiError> {
    let stats = state.ingest.stats().await?;
    let text = state.metrics.render(&stats);
    Ok(([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text))
}
