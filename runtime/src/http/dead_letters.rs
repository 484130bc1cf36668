//! The dead-letter queue: list (by event type, a page at a time), show one
//! with its payload, redrive one or many, purge one.
//!
//! Every change goes through the producer connection and wakes the
//! dispatcher, so a redriven message is claimed at once.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::ToSchema;

use super::ApiState;
use super::error::{ApiError, ErrorBody};
use crate::store::{DeadLetterFilter, DeadLetterPage, Selection, StoredMessage};
use crate::message::{MessageId, validate_event_type};

/// Lists dead letters oldest first, a page at a time.
#[utoipa::path(
    get,
    path = "/v1/dead-letters",
    tag = "dead letters",
    params(
        ("event_type" = Option<String>, Query, description = "Only this event type"),
        ("limit" = Option<usize>, Query, description = "Page size, 1 to 1000 (default 100)"),
        ("cursor" = Option<String>, Query, description = "The `next_cursor` of the previous page"),
    ),
    responses(
        (status = 200, description = "One page; `next_cursor` is null on the last", body = super::openapi::DeadLetterPage),
        (status = 400, description = "An unknown parameter, or a bad value (named in `field`)", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(crate) async fn list(
    State(state): State<ApiState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<DeadLetterPage>, ApiError> {
    let mut filter = DeadLetterFilter::default();
    for (name, value) in params {
        match name.as_str() {
            "event_type" => filter.event_type = Some(super::query::event_type(value)?),
            "limit" => filter.limit = super::query::page_size(&value)?,
            "cursor" => filter.cursor = Some(super::query::cursor(value, "dead-letter")?),
            other => {
                return Err(ApiError::invalid(
                    other,
                    format!("unknown parameter `{other}`: use event_type, limit, cursor"),
                ));
            }
        }
    }
    Ok(Json(
        state
            .ingest
            .dead_letters(filter)
            .await?,
    ))
}

/// A dead letter with its payload.
///
/// `payload` is the stored payload as JSON when it parses as JSON
/// (`payload_encoding` = `json`), else as a string: the text when it is
/// UTF-8 (`utf8`), else its standard base64 (`base64`).
#[derive(Debug, Serialize)]
pub struct DeadLetterDetail {
    #[serde(flatten)]
    message: StoredMessage,
    payload: Payload,
    payload_encoding: &'static str,
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Payload {
    Json(Box<RawValue>),
    Text(String),
}

impl From<StoredMessage> for DeadLetterDetail {
    fn from(message: StoredMessage) -> Self {
        let bytes = &message.payload;
        let (payload, payload_encoding) =
            if let Ok(raw) = serde_json::from_slice::<Box<RawValue>>(bytes) {
                (Payload::Json(raw), "json")
            } else if let Ok(text) = std::str::from_utf8(bytes) {
                (Payload::Text(text.to_owned()), "utf8")
            } else {
                (
                    Payload::Text(base64::engine::general_purpose::STANDARD.encode(bytes)),
                    "base64",
                )
            };
        Self {
            message,
            payload,
            payload_encoding,
        }
    }
}

fn message_id(id: &str) -> Result<MessageId, ApiError> {
    id.parse()
        .map_err(|e: crate::message::InvalidInput| ApiError::invalid("id", e.to_string()))
}

/// One dead letter, payload included.
#[utoipa::path(
    get,
    path = "/v1/dead-letters/{id}",
    tag = "dead letters",
    params(("id" = String, Path, description = "The message id (a UUID)")),
    responses(
        (status = 200, description = "The dead letter", body = super::openapi::DeadLetterDetail),
        (status = 400, description = "`id` is not a UUID", body = ErrorBody),
        (status = 404, description = "No message has this id", body = ErrorBody),
        (status = 409, description = "The message is not dead", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(crate) async fn show(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<DeadLetterDetail>, ApiError> {
    let id = message_id(&id)?;
    let message = state.ingest.dead_letter(id).await?;
    Ok(Json(message.into()))
}

/// How many dead letters were redriven.
#[derive(Debug, Serialize, ToSchema)]
pub struct Redriven {
    /// Messages put back in the queue.
    pub redriven: usize,
}

/// How many dead letters were purged.
#[derive(Debug, Serialize, ToSchema)]
pub struct Purged {
    /// Messages deleted.
    pub purged: usize,
}

/// Puts one dead letter back in the queue, due now, attempts reset.
#[utoipa::path(
    post,
    path = "/v1/dead-letters/{id}/redrive",
    tag = "dead letters",
    params(("id" = String, Path, description = "The message id (a UUID)")),
    responses(
        (status = 200, description = "Redriven", body = Redriven),
        (status = 400, description = "`id` is not a UUID", body = ErrorBody),
        (status = 404, description = "No message has this id", body = ErrorBody),
        (status = 409, description = "The message is not dead", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(crate) async fn redrive_one(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<Redriven>, ApiError> {
    let id = message_id(&id)?;
    let redriven = state
        .ingest
        .redrive(Selection::One(id))
        .await?;
    state.wake.notify_one();
    Ok(Json(Redriven { redriven }))
}

/// Which dead letters to redrive: exactly one of the two.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedriveFilter {
    /// Every dead letter of this event type.
    #[serde(default)]
    pub event_type: Option<String>,
    /// `true`: every dead letter.
    #[serde(default)]
    pub all: Option<bool>,
}

/// Puts many dead letters back in the queue: those of one event type, or all.
#[utoipa::path(
    post,
    path = "/v1/dead-letters/redrive",
    tag = "dead letters",
    request_body(content = RedriveFilter, content_type = "application/json",
                 description = "`{\"event_type\": \"...\"}` or `{\"all\": true}`"),
    responses(
        (status = 200, description = "How many were redriven", body = Redriven),
        (status = 400, description = "Neither or both of `event_type` and `all`, or a bad event type", body = ErrorBody),
        (status = 415, description = "Not `application/json`", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(crate) async fn redrive_many(
    State(state): State<ApiState>,
    headers: axum::http::HeaderMap,
    body: axum::body::Body,
) -> Result<Json<Redriven>, ApiError> {
    let essence = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    if essence.as_deref() != Some("application/json") {
        return Err(ApiError::UnsupportedMediaType(
            "send application/json: {\"event_type\": \"...\"} or {\"all\": true}".into(),
        ));
    }
    // A filter is a few bytes; anything much larger is a mistake.
    let body = axum::body::to_bytes(body, 64 * 1024)
        .await
        .map_err(|_| ApiError::TooLarge {
            field: None,
            index: None,
            message: "a redrive filter is at most 64 KiB".into(),
        })?;
    let filter: RedriveFilter = {
        let mut de = serde_json::Deserializer::from_slice(&body);
        serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let field = e.path().to_string();
            let inner = e.into_inner();
            if inner.is_data() {
                ApiError::Invalid {
                    field: (field != ".").then_some(field),
                    index: None,
                    message: inner.to_string(),
                }
            } else {
                ApiError::MalformedJson {
                    message: inner.to_string(),
                    index: None,
                }
            }
        })?
    };
    let selection = match (filter.event_type, filter.all) {
        (Some(t), None | Some(false)) => {
            validate_event_type(&t).map_err(|e| ApiError::invalid("event_type", e.to_string()))?;
            Selection::EventType(t)
        }
        (None, Some(true)) => Selection::All,
        (Some(_), Some(true)) => {
            return Err(ApiError::invalid(
                "all",
                "give either event_type or all, not both",
            ));
        }
        (None, _) => {
            return Err(ApiError::invalid(
                "event_type",
                "say which dead letters to redrive: {\"event_type\": \"...\"} or {\"all\": true}",
            ));
        }
    };
    let redriven = state.ingest.redrive(selection).await?;
    state.wake.notify_one();
    Ok(Json(Redriven { redriven }))
}

/// Deletes one dead letter for good.
#[utoipa::path(
    delete,
    path = "/v1/dead-letters/{id}",
    tag = "dead letters",
    params(("id" = String, Path, description = "The message id (a UUID)")),
    responses(
        (status = 200, description = "Purged", body = Purged),
        (status = 400, description = "`id` is not a UUID", body = ErrorBody),
        (status = 404, description = "No message has this id", body = ErrorBody),
        (status = 409, description = "The message is not dead", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(crate) async fn purge_one(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<Purged>, ApiError> {
    let id = message_id(&id)?;
    let purged = state
        .ingest
        .purge(Selection::One(id))
        .await?;
    Ok(Json(Purged { purged }))
}
