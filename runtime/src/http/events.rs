//! `POST /v1/events`: one event object, a JSON array of them, or NDJSON (one
//! object per line), stored in one durable transaction: all or nothing.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use serde::Serialize;
use utoipa::ToSchema;

use super::ApiState;
use super::error::{ApiError, ErrorBody};
use crate::ingest::{EventDefaults, EventObject};
use crate::message::{MessageId, NewMessage};

/// The answer to an enqueue: one id per event, in order. A duplicate key
/// gives the id of the message stored, or handled within
/// `store.key_retention`, with it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Ids {
    /// The message ids.
    #[schema(value_type = Vec<String>, format = Uuid)]
    pub ids: Vec<MessageId>,
}

/// How the body was sent: a single object answers errors without an index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    One,
    Batch,
}

/// Enqueues events.
#[utoipa::path(
    post,
    path = "/v1/events",
    tag = "events",
    request_body(
        description = "One event object, a JSON array of event objects (`application/json`), \
                       or one event object per line (`application/x-ndjson`).",
        content(
            (super::openapi::EventObject = "application/json"),
            (Vec<super::openapi::EventObject> = "application/json"),
            (String = "application/x-ndjson"),
        ),
    ),
    responses(
        (status = 202, description = "Stored durably; one id per event, in order", body = Ids),
        (status = 400, description = "Malformed JSON, or an invalid field (named, with the index in a batch)", body = ErrorBody),
        (status = 413, description = "The body is over `http.max_body_bytes`, or a payload over `store.max_payload_bytes`", body = ErrorBody),
        (status = 415, description = "Not `application/json` nor `application/x-ndjson`", body = ErrorBody),
        (status = 429, description = "An event type's queue is full (its `max_queued`): nothing was stored; retry after `Retry-After` seconds", body = ErrorBody),
        (status = 503, description = "The store is busy", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(crate) async fn post_events(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Ids>), ApiError> {
    // The type and the declared length are checked before any of the body is read.
    let ndjson = match content_type(&headers).as_deref() {
        Some("application/json") => false,
        Some("application/x-ndjson" | "application/jsonl") => true,
        Some(other) => {
            return Err(ApiError::UnsupportedMediaType(format!(
                "Content-Type {other} is not accepted: send application/json (one event or an array) or application/x-ndjson"
            )));
        }
        None => {
            return Err(ApiError::UnsupportedMediaType(
                "no Content-Type: send application/json (one event or an array) or application/x-ndjson".into(),
            ));
        }
    };
    let limit = state.settings.max_body_bytes;
    let too_large = || ApiError::TooLarge {
        field: None,
        index: None,
        message: format!(
            "the body is over the {limit}-byte limit (http.max_body_bytes): send fewer events per request"
        ),
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    // Reads at most `limit` bytes: a chunked body is cut off there.
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|e| {
        if std::error::Error::source(&e).is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
        {
            too_large()
        } else {
            ApiError::MalformedJson {
                message: format!("could not read the body: {e}"),
                index: None,
            }
        }
    })?;

    let (shape, events) = if ndjson {
        (Shape::Batch, parse_ndjson(&bytes)?)
    } else {
        parse_json(&bytes)?
    };
    if events.is_empty() {
        return Err(ApiError::invalid("events", "the body holds no events"));
    }
    let messages: Vec<NewMessage> = events
        .into_iter()
        .map(|e| e.into_message(&EventDefaults::default()))
        .collect();
    let batch = messages.clone();
    let enqueued = state
        .ingest
        .enqueue_batch(batch)
        .await
        .map_err(|e| match (e, shape) {
            // The mailbox reports a one-message batch without an index; a
            // JSON array or NDJSON body still deserves one.
            (crate::store::StoreError::Invalid(source), Shape::Batch) => {
                ApiError::from_invalid(&source, Some(0))
            }
            (e, _) => ApiError::from(e),
        })?;
    state.metrics.enqueued(&messages, &enqueued);
    state.wake.notify_one();
    Ok((
        StatusCode::ACCEPTED,
        Json(Ids {
            ids: enqueued.into_iter().map(|e| e.id).collect(),
        }),
    ))
}

/// The media type without parameters, lower-cased.
fn content_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    Some(essence)
}

/// One object or an array of objects.
fn parse_json(bytes: &[u8]) -> Result<(Shape, Vec<EventObject>), ApiError> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'[') {
        Ok((Shape::Batch, from_json::<Vec<EventObject>>(bytes, None)?))
    } else {
        Ok((Shape::One, vec![from_json::<EventObject>(bytes, None)?]))
    }
}

/// One object per non-blank line.
fn parse_ndjson(bytes: &[u8]) -> Result<Vec<EventObject>, ApiError> {
    let mut events = Vec::new();
    for (line_no, line) in bytes.split(|b| *b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let index = events.len();
        let event = from_json::<EventObject>(line, Some((index, line_no + 1)))?;
        events.push(event);
    }
    Ok(events)
}

/// Deserializes `bytes`, turning a failure into a 400 that names the field
/// (from the path to the error) and the event's index. `ndjson` is the index
/// and 1-based line of an NDJSON line.
fn from_json<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    ndjson: Option<(usize, usize)>,
) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let e = match serde_path_to_error::deserialize(&mut de) {
        // Trailing text after the value is malformed too.
        Ok(value) => match de.end() {
            Ok(()) => return Ok(value),
            Err(e) => {
                let (line, column) = (e.line(), e.column());
                let position = ndjson.map_or(format!("line {line}, column {column}"), |(_, l)| {
                    format!("line {l}, column {column}")
                });
                return Err(ApiError::MalformedJson {
                    message: format!("{position}: unexpected text after the JSON value"),
                    index: ndjson.map(|(i, _)| i),
                });
            }
        },
        Err(e) => e,
    };
    let mut index = ndjson.map(|(i, _)| i);
    let mut field = Vec::new();
    for segment in e.path().iter() {
        match segment {
            serde_path_to_error::Segment::Seq { index: i }
                if index.is_none() && field.is_empty() =>
            {
                index = Some(*i);
            }
            serde_path_to_error::Segment::Seq { index: i } => field.push(format!("[{i}]")),
            serde_path_to_error::Segment::Map { key } => field.push(key.clone()),
            serde_path_to_error::Segment::Enum { variant } => field.push(variant.clone()),
            serde_path_to_error::Segment::Unknown => {}
        }
    }
    let inner = e.inner();
    let position = match ndjson {
        Some((_, line)) => format!("line {line}, column {}", inner.column()),
        None => format!("line {}, column {}", inner.line(), inner.column()),
    };
    let text = inner.to_string();
    let suffix = format!(" at line {} column {}", inner.line(), inner.column());
    let reason = text.strip_suffix(&suffix).unwrap_or(&text);
    let prefix = match index {
        Some(i) => format!("event {i} ({position})"),
        None => position,
    };
    if inner.is_data() {
        // "missing field `payload`" is reported at the object, not the field.
        let named = field.join(".");
        let field = if named.is_empty() {
            backquoted(reason)
        } else {
            Some(named)
        };
        Err(ApiError::Invalid {
            field,
            index,
            message: format!("{prefix}: {reason}"),
        })
    } else {
        Err(ApiError::MalformedJson {
            message: format!("{prefix}: {reason}"),
            index,
        })
    }
}

/// The name in "missing field `payload`" / "unknown field `prio`, expected …".
fn backquoted(reason: &str) -> Option<String> {
    let rest = reason
        .strip_prefix("missing field `")
        .or_else(|| reason.strip_prefix("unknown field `"))?;
    rest.split('`').next().map(str::to_owned)
}
