//! The one error type of the HTTP API and its one JSON shape:
//!
//! ```json
//! {"error": {"code": "invalid_event", "message": "...", "field": "event_type", "index": 2}}
//! ```
//!
//! A 4xx names the field (and, in a batch, the event's index) at fault; a
//! 5xx says little to the client and logs everything for the operator.

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::message::InvalidInput;
use crate::store::StoreError;

/// Why a request failed. Each variant is one status and one `code`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400 `malformed_json`: the body is not JSON (or NDJSON) at all.
    #[error("{message}")]
    MalformedJson {
        /// What is wrong, with the position.
        message: String,
        /// The event's position in a batch, from 0.
        index: Option<usize>,
    },
    /// 400 `invalid`: a field has a value that is not allowed.
    #[error("{message}")]
    Invalid {
        /// The field at fault (`event_type`, `priority`, `limit`, …).
        field: Option<String>,
        /// The event's position in a batch, from 0.
        index: Option<usize>,
        /// What is wrong and what is allowed.
        message: String,
    },
    /// 401 `unauthorized`: the bearer token is missing or wrong.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// 404 `not_found`: no such message, or no such endpoint.
    #[error("{0}")]
    NotFound(String),
    /// 405 `method_not_allowed`: the endpoint exists but not with this method.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// 408 `timeout`: the request took longer than the server allows.
    #[error("the request took longer than {0:?}")]
    Timeout(Duration),
    /// 409 `wrong_state`: the message exists but is not a dead letter.
    #[error("{0}")]
    WrongState(String),
    /// 429 `over_capacity`: an event type's queue is full (`max_queued`);
    /// nothing was stored. Answered with `Retry-After`.
    #[error("{0}")]
    OverCapacity(String),
    /// 413 `too_large`: the body (or one event's payload) is over the limit.
    #[error("{message}")]
    TooLarge {
        /// `payload` when one event's payload is over `store.max_payload_bytes`.
        field: Option<String>,
        /// The event's position in a batch, from 0.
        index: Option<usize>,
        /// The size and the limit.
        message: String,
    },
    /// 415 `unsupported_media_type`: a body of a type the endpoint does not read.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 503 `store_busy`: another process held the store's lock too long.
    #[error("the store is busy (locked by another process); retry shortly")]
    StoreBusy,
    /// 503 `overloaded`: too many requests at once.
    #[error("too many requests at once; retry shortly")]
    Overloaded,
    /// 503 `not_ready`: a readiness check failed.
    #[error("{0}")]
    NotReady(String),
    /// 500 `internal`: anything else. The detail goes to the log only.
    #[error("internal error")]
    Internal(String),
}

/// The JSON body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable, machine-readable code (`invalid`, `malformed_json`,
    /// `not_found`, `method_not_allowed`, `too_large`, `unsupported_media_type`, `unauthorized`,
    /// `wrong_state`, `timeout`, `store_busy`, `overloaded`, `not_ready`,
    /// `internal`).
    pub code: &'static str,
    /// A sentence for a human.
    pub message: String,
    /// The field at fault, when one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// In a batch, the position of the event at fault, from 0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
}

impl ApiError {
    /// A 400 naming `field`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            field: Some(field.into()),
            index: None,
            message: message.into(),
        }
    }

    /// The status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MalformedJson { .. } | Self::Invalid { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::WrongState(_) => StatusCode::CONFLICT,
            Self::OverCapacity(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::StoreBusy | Self::Overloaded | Self::NotReady(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable `code` of the JSON body.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MalformedJson { .. } => "malformed_json",
            Self::Invalid { .. } => "invalid",
            Self::Unauthorized(_) => "unauthorized",
            Self::NotFound(_) => "not_found",
            Self::MethodNotAllowed(_) => "method_not_allowed",
            Self::Timeout(_) => "timeout",
            Self::WrongState(_) => "wrong_state",
            Self::OverCapacity(_) => "over_capacity",
            Self::TooLarge { .. } => "too_large",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::StoreBusy => "store_busy",
            Self::Overloaded => "overloaded",
            Self::NotReady(_) => "not_ready",
            Self::Internal(_) => "internal",
        }
    }

    fn body(&self) -> ErrorBody {
        let (field, index) = match self {
            Self::Invalid { field, index, .. } | Self::TooLarge { field, index, .. } => {
                (field.clone(), *index)
            }
            Self::MalformedJson { index, .. } => (None, *index),
            _ => (None, None),
        };
        let message = match self {
            Self::Internal(_) => "internal error; the host log has the details".to_owned(),
            other => other.to_string(),
        };
        ErrorBody {
            error: ErrorDetail {
                code: self.code(),
                message,
                field,
                index,
            },
        }
    }

    /// An invalid message, from the mailbox's validation; `index` is set for
    /// a batch.
    pub(crate) fn from_invalid(source: &InvalidInput, index: Option<usize>) -> Self {
        let field = match source {
            InvalidInput::EventType(_) => "event_type",
            InvalidInput::PayloadTooLarge { .. } | InvalidInput::Payload(_) => "payload",
            InvalidInput::Priority(_) => "priority",
            InvalidInput::MaxAttempts => "max_attempts",
            InvalidInput::Id(_) => "id",
            InvalidInput::Field { field, .. } => field,
        };
        let message = match index {
            Some(i) => format!("event {i}: {source}"),
            None => source.to_string(),
        };
        match source {
            InvalidInput::PayloadTooLarge { .. } => Self::TooLarge {
                field: Some(field.to_owned()),
                index,
                message,
            },
            _ => Self::Invalid {
                field: Some(field.to_owned()),
                index,
                message,
            },
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Locked { .. } | StoreError::Unreachable { .. } => Self::StoreBusy,
            StoreError::NoSuchMessage { id } => Self::NotFound(format!("no message with id {id}")),
            StoreError::WrongState { id, actual, .. } => {
                Self::WrongState(format!("message {id} is {actual}, not a dead letter"))
            }
            e @ StoreError::OverCapacity { .. } => Self::OverCapacity(e.to_string()),
            StoreError::Invalid(source) => Self::from_invalid(&source, None),
            StoreError::InvalidInBatch { index, source } => {
                Self::from_invalid(&source, Some(index))
            }
            // Says what to run; nothing more is written to it.
            damaged @ StoreError::Corrupt { .. } => Self::NotReady(damaged.to_string()),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        match &self {
            Self::Internal(detail) => {
                tracing::error!(status = status.as_u16(), "HTTP request failed: {detail}")
            }
            Self::StoreBusy | Self::NotReady(_) => {
                tracing::warn!(status = status.as_u16(), "HTTP request failed: {self}");
            }
            _ => tracing::debug!(
                status = status.as_u16(),
                code = self.code(),
                "HTTP request refused: {self}"
            ),
        }
        let mut response = (status, Json(self.body())).into_response();
        let headers = response.headers_mut();
        match self {
            Self::Unauthorized(_) => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            Self::StoreBusy | Self::Overloaded => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            // A queue drains at its handlers' pace: come back a little later.
            Self::OverCapacity(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            _ => {}
        }
        response
    }
}
