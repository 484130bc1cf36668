//! Messages in any state and the queues of event types: list and show
//! messages, cancel queued ones (one, or every queued message of a type),
//! pause and resume an event type.
//!
//! Changes go through the producer connection. A resume wakes this host's
//! dispatcher; other hosts notice the commit as they notice any other.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::Serialize;
use utoipa::ToSchema;

use super::ApiState;
use super::dead_letters::DeadLetterDetail;
use super::error::{ApiError, ErrorBody};
use super::query;
use crate::message::{MessageId, validate_event_type};
use crate::state_machine::MessageState;
use crate::store::{Cancelled, MessageFilter, MessagePage};

/// How many queued messages one transaction of a bulk cancel removes.
const CANCEL_BATCH: usize = 1000;

/// Lists messages in any state, in the order they were enqueued.
#[utoipa::path(
    get,
    path = "/v1/messages",
    tag = "messages",
    params(
        ("event_type" = Option<String>, Query, description = "Only this event type"),
        ("state" = Option<String>, Query, description = "Only this state: `queued`, `inflight` or `dead`"),
        ("limit" = Option<usize>, Query, description = "Page size, 1 to 1000 (default 100)"),
        ("cursor" = Option<String>, Query, description = "The `next_cursor` of the previous page"),
    ),
    responses(
        (status = 200, description = "One page; `next_cursor` is null on the last", body = super::openapi::MessagePage),
        (status = 400, description = "An unknown parameter, or a bad value (named in `field`)", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(crate) async fn list(
    State(state): State<ApiState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<MessagePage>, ApiError> {
    let mut filter = MessageFilter::default();
    for (name, value) in params {
        match name.as_str() {
            "event_type" => filter.event_type = Some(query::event_type(value)?),
            "state" => {
                filter.state = Some(value.parse::<MessageState>().map_err(|_| {
                    ApiError::invalid(
                        "state",
                        format!("`{value}` is not a state: use queued, inflight or dead"),
                    )
                })?);
            }
            "limit" => filter.limit = query::page_size(&value)?,
            "cursor" => filter.cursor = Some(query::cursor(value, "message")?),
            other => {
                return Err(ApiError::invalid(
                    other,
                    format!("unknown parameter `{other}`: use event_type, state, limit, cursor"),
                ));
            }
        }
    }
    Ok(Json(state.ingest.messages(filter).await?))
}

fn message_id(id: &str) -> Result<MessageId, ApiError> {
    id.parse()
        .map_err(|e: crate::message::InvalidInput| ApiError::invalid("id", e.to_string()))
}

/// One message in any state, payload included.
#[utoipa::path(
    get,
    path = "/v1/messages/{id}",
    tag = "messages",
    params(("id" = String, Path, description = "The message id (a UUID)")),
    responses(
        (status = 200, description = "The message, with its state, lease and payload", body = super::openapi::DeadLetterDetail),
        (status = 400, description = "`id` is not a UUID", body = ErrorBody),
        (status = 404, description = "No message has this id", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(crate) async fn show(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<DeadLetterDetail>, ApiError> {
    let id = message_id(&id)?;
    Ok(Json(state.ingest.message(id).await?.into()))
}

/// Removes one queued message. A message in flight or dead is not removed:
/// 409, with the reason.
#[utoipa::path(
    delete,
    path = "/v1/messages/{id}",
    tag = "messages",
    params(("id" = String, Path, description = "The message id (a UUID)")),
    responses(
        (status = 200, description = "Cancelled", body = super::openapi::Cancelled),
        (status = 400, description = "`id` is not a UUID", body = ErrorBody),
        (status = 404, description = "No message has this id", body = ErrorBody),
        (status = 409, description = "The message is in flight or dead", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(crate) async fn cancel_one(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<Cancelled>, ApiError> {
    let id = message_id(&id)?;
    let done = state.ingest.cancel_ids(vec![id]).await?;
    if let Some(refused) = done.refused.first() {
        return Err(if refused.reason.starts_with("no message") {
            ApiError::NotFound(format!("no message with id {id}"))
        } else {
            ApiError::WrongState(format!(
                "message {id} was not cancelled: {}",
                refused.reason
            ))
        });
    }
    Ok(Json(done))
}

/// Removes every queued message of an event type, in short transactions;
/// messages in flight are left to finish (`inflight_left` counts them).
#[utoipa::path(
    delete,
    path = "/v1/event-types/{event_type}/messages",
    tag = "messages",
    params(("event_type" = String, Path, description = "The event type")),
    responses(
        (status = 200, description = "How many were cancelled", body = super::openapi::Cancelled),
        (status = 400, description = "A bad event type", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(crate) async fn cancel_queued(
    State(state): State<ApiState>,
    Path(event_type): Path<String>,
) -> Result<Json<Cancelled>, ApiError> {
    validate_event_type(&event_type).map_err(|e| ApiError::invalid("event_type", e.to_string()))?;
    let done = state
        .ingest
        .cancel_all_queued(&event_type, CANCEL_BATCH, |_| {})
        .await?;
    Ok(Json(done))
}

/// Whether an event type is paused, after a pause or resume.
#[derive(Debug, Serialize, ToSchema)]
pub struct PauseState {
    /// The event type.
    pub event_type: String,
    /// Whether it is paused now.
    pub paused: bool,
    /// Whether this request changed it (false: it already was).
    pub changed: bool,
}

/// Pauses an event type: no host on the store claims its messages until it
/// is resumed. Enqueues are still accepted; the pause lasts across restarts.
#[utoipa::path(
    post,
    path = "/v1/event-types/{event_type}/pause",
    tag = "messages",
    params(("event_type" = String, Path, description = "The event type")),
    responses(
        (status = 200, description = "Paused", body = PauseState),
        (status = 400, description = "A bad event type", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(crate) async fn pause(
    State(state): State<ApiState>,
    Path(event_type): Path<String>,
) -> Result<Json<PauseState>, ApiError> {
    set_paused(&state, event_type, true).await
}

/// Resumes a paused event type: hosts claim its due messages again.
#[utoipa::path(
    post,
    path = "/v1/event-types/{event_type}/resume",
    tag = "messages",
    params(("event_type" = String, Path, description = "The event type")),
    responses(
        (status = 200, description = "Resumed", body = PauseState),
        (status = 400, description = "A bad event type", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(crate) async fn resume(
    State(state): State<ApiState>,
    Path(event_type): Path<String>,
) -> Result<Json<PauseState>, ApiError> {
    set_paused(&state, event_type, false).await
}

async fn set_paused(
    state: &ApiState,
    event_type: String,
    paused: bool,
) -> Result<Json<PauseState>, ApiError> {
    validate_event_type(&event_type).map_err(|e| ApiError::invalid("event_type", e.to_string()))?;
    let change = if paused {
        state.ingest.pause(&event_type).await?
    } else {
        state.ingest.resume(&event_type).await?
    };
    if !paused {
        state.wake.notify_one();
    }
    Ok(Json(PauseState {
        event_type,
        paused: change.paused,
        changed: change.changed,
    }))
}
