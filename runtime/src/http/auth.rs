//! The bearer token: when `http.token` is set, every request but
//! `GET /healthz` must carry `Authorization: Bearer <token>`.

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;

use super::ApiState;
use super::error::ApiError;

/// Refuses a request without the right token (401), before it takes any of
/// the server's concurrency.
pub(crate) async fn require_token(
    State(state): State<ApiState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if let Some(expected) = &state.settings.token {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .ok_or(ApiError::Unauthorized(
                "missing Authorization header: send `Authorization: Bearer <token>`",
            ))?
            .as_bytes();
        let token = given
            .strip_prefix(b"Bearer ")
            .or_else(|| given.strip_prefix(b"bearer "))
            .ok_or(ApiError::Unauthorized(
                "the Authorization header is not `Bearer <token>`",
            ))?;
        if !constant_time_eq(token, expected.as_bytes()) {
            return Err(ApiError::Unauthorized("wrong bearer token"));
        }
    }
    Ok(next.run(request).await)
}

/// Compares without stopping at the first difference, so response timing
/// does not reveal how much of a guessed token was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn compares_whole_tokens() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
    }
}
