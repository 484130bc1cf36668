//! Query parameters the list endpoints share, each checked with an error
//! that names the parameter.

use super::error::ApiError;
use crate::message::validate_event_type;

/// An `event_type` parameter.
pub(super) fn event_type(value: String) -> Result<String, ApiError> {
    validate_event_type(&value).map_err(|e| ApiError::invalid("event_type", e.to_string()))?;
    Ok(value)
}

/// A `limit` parameter: a page size, 1 to 1000.
pub(super) fn page_size(value: &str) -> Result<usize, ApiError> {
    value
        .parse()
        .ok()
        .filter(|n| (1..=1000).contains(n))
        .ok_or_else(|| {
            ApiError::invalid(
                "limit",
                format!("`{value}` is not a page size: use 1 to 1000"),
            )
        })
}

/// A `cursor` parameter of the `what` list ("dead-letter", "message"):
/// opaque to clients, a number to the store.
pub(super) fn cursor(value: String, what: &str) -> Result<String, ApiError> {
    if value.parse::<u64>().is_err() {
        return Err(ApiError::invalid(
            "cursor",
            format!("`{value}` is not a {what} cursor: pass the next_cursor of a previous page"),
        ));
    }
    Ok(value)
}
