//! `GET /v1/plugins`: the same JSON as `mailroom plugins --json`: what the
//! running hosts of this store have loaded, and which files they refused.

use axum::Json;
use axum::extract::State;

use super::ApiState;
use super::error::{ApiError, ErrorBody};
use crate::store::PluginRegistry;

/// Loaded plugins and rejected files, as recorded by the running hosts.
#[utoipa::path(
    get,
    path = "/v1/plugins",
    tag = "operations",
    responses(
        (status = 200, description = "The plugin registry", body = super::openapi::PluginRegistry),
        (status = 503, description = "The store is busy", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(crate) async fn get_plugins(
    State(state): State<ApiState>,
) -> Result<Json<PluginRegistry>, ApiError> {
    Ok(Json(state.ingest.plugin_registry().await?))
}
