//! The dead-letter queue: list (by conditions, a page at a time, in order
//! of death), show one with its payload, redrive and purge one or many.
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
use crate::store::{
    DeadLetterFilter, DeadLetterMatch, DeadLetterPage, Selection, StoredMessage, parse_cursor,
};
use crate::message::{MessageId, validate_event_type};

/// Lists dead letters in order of death, oldest first, a page at a time.
#[utoipa::path(
    get,
    path = "/v1/dead-letters",
    tag = "dead letters",
    params(
        ("event_type" = Option<String>, Query, description = "Only this event type"),
        ("error_contains" = Option<String>, Query, description = "Only those whose last error contains this text (case-sensitive)"),
        ("died_after" = Option<i64>, Query, description = "Only those that died at or after this time (ms since the Unix epoch)"),
        ("died_before" = Option<i64>, Query, description = "Only those that died before this time (ms since the Unix epoch)"),
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
            "error_contains" => filter.error_contains = Some(value),
            "died_after" => filter.died_after = Some(time_param("died_after", &value)?),
            "died_before" => filter.died_before = Some(time_param("died_before", &value)?),
            "cursor" => {
                if parse_cursor(&value).is_none() {
                    return Err(ApiError::invalid(
                        "cursor",
                        format!(
                            "`{value}` is not a dead-letter cursor: pass the next_cursor of a previous page"
                        ),
                    ));
                }
                filter.cursor = Some(value);
            }
            other => {
                return Err(ApiError::invalid(
                    other,
                    format!(
                        "unknown parameter `{other}`: use event_type, error_contains, died_after, died_before, limit, cursor"
                    ),
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

/// A time parameter: ms since the Unix epoch.
fn time_param(name: &str, value: &str) -> Result<i64, ApiError> {
    value.parse().map_err(|_| {
        ApiError::invalid(
            name,
            format!("`{value}` is not a time: give milliseconds since the Unix epoch"),
        )
    })
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

/// Which dead letters to redrive or purge: `{"all": true}`, or one or more
/// conditions, all of which must hold.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterSelection {
    /// Only this event type.
    #[serde(default)]
    pub event_type: Option<String>,
    /// Only those whose last error contains this text (case-sensitive).
    #[serde(default)]
    pub error_contains: Option<String>,
    /// Only those that died at or after this time (ms since the Unix epoch).
    #[serde(default)]
    pub died_after: Option<i64>,
    /// Only those that died before this time (ms since the Unix epoch).
    #[serde(default)]
    pub died_before: Option<i64>,
    /// `true`: every dead letter (no condition may be given with it).
    #[serde(default)]
    pub all: Option<bool>,
}

impl DeadLetterSelection {
    fn into_selection(self, verb: &str) -> Result<Selection, ApiError> {
        let matching = DeadLetterMatch {
            event_type: self.event_type,
            error_contains: self.error_contains,
            died_after: self.died_after,
            died_before: self.died_before,
        };
        if let Some(t) = &matching.event_type {
            validate_event_type(t).map_err(|e| ApiError::invalid("event_type", e.to_string()))?;
        }
        let conditions = matching != DeadLetterMatch::default();
        match (conditions, self.all.unwrap_or(false)) {
            (true, false) => Ok(Selection::Matching {
                matching,
                limit: None,
            }),
            (false, true) => Ok(Selection::All),
            (true, true) => Err(ApiError::invalid(
                "all",
                "give either conditions or all, not both",
            )),
            (false, false) => Err(ApiError::invalid(
                "event_type",
                format!(
                    "say which dead letters to {verb}: {{\"event_type\": \"...\"}} (or error_contains, died_after, died_before) or {{\"all\": true}}"
                ),
            )),
        }
    }
}

/// Reads a [`DeadLetterSelection`] body.
async fn read_selection(
    headers: &axum::http::HeaderMap,
    body: axum::body::Body,
    verb: &str,
) -> Result<Selection, ApiError> {
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
    // A selection is a few bytes; anything much larger is a mistake.
    let body = axum::body::to_bytes(body, 64 * 1024)
        .await
        .map_err(|_| ApiError::TooLarge {
            field: None,
            index: None,
            message: "a dead-letter selection is at most 64 KiB".into(),
        })?;
    let selection: DeadLetterSelection = {
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
    selection.into_selection(verb)
}

/// Puts many dead letters back in the queue: those meeting every condition
/// given, or all.
#[utoipa::path(
    post,
    path = "/v1/dead-letters/redrive",
    tag = "dead letters",
    request_body(content = DeadLetterSelection, content_type = "application/json",
                 description = "`{\"event_type\": \"...\", \"error_contains\": \"...\", \"died_after\": ms, \"died_before\": ms}` (any of them) or `{\"all\": true}`"),
    responses(
        (status = 200, description = "How many were redriven", body = Redriven),
        (status = 400, description = "No condition and no `all`, both, or a bad value", body = ErrorBody),
        (status = 415, description = "Not `application/json`", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(crate) async fn redrive_many(
    State(state): State<ApiState>,
    headers: axum::http::HeaderMap,
    body: axum::body::Body,
) -> Result<Json<Redriven>, ApiError> {
    let selection = read_selection(&headers, body, "redrive").await?;
    let redriven = state.ingest.redrive(selection).await?;
    state.wake.notify_one();
    Ok(Json(Redriven { redriven }))
}

/// Deletes many dead letters for good: those meeting every condition given,
/// or all.
#[utoipa::path(
    post,
    path = "/v1/dead-letters/purge",
    tag = "dead letters",
    request_body(content = DeadLetterSelection, content_type = "application/json",
                 description = "`{\"event_type\": \"...\", \"error_contains\": \"...\", \"died_after\": ms, \"died_before\": ms}` (any of them) or `{\"all\": true}`"),
    responses(
        (status = 200, description = "How many were purged", body = Purged),
        (status = 400, description = "No condition and no `all`, both, or a bad value", body = ErrorBody),
        (status = 415, description = "Not `application/json`", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(crate) async fn purge_many(
    State(state): State<ApiState>,
    headers: axum::http::HeaderMap,
    body: axum::body::Body,
) -> Result<Json<Purged>, ApiError> {
    let selection = read_selection(&headers, body, "purge").await?;
    let purged = state.ingest.purge(selection).await?;
    Ok(Json(Purged { purged }))
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
