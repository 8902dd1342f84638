//! Optional bearer token: with `--token` (or `MODELSMITH_TOKEN`) every endpoint except the
//! health probes wants `Authorization: Bearer <token>`.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use crate::error::ApiError;

/// Middleware: 401 with `WWW-Authenticate: Bearer` unless the request carries the token.
pub async fn require_token(
    State(token): State<Arc<str>>,
    request: Request,
    next: Next,
) -> Response {
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match check_bearer(given, &token) {
        Ok(()) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

/// Checks an `Authorization` value (`Bearer <token>`, the scheme in any case) against `token`,
/// for HTTP headers and gRPC metadata alike; the 401 says what was wrong, never the token.
pub fn check_bearer(given: Option<&str>, token: &str) -> Result<(), ApiError> {
    let given = given.and_then(|v| {
        let (scheme, rest) = v.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
    });
    match given {
        // Constant-time comparison: the answer's timing must not reveal a prefix of the token.
        Some(given) if bool::from(given.as_bytes().ct_eq(token.as_bytes())) => Ok(()),
        Some(_) => Err(ApiError::unauthorized("the bearer token is wrong")),
        None => Err(ApiError::unauthorized(
            "missing token: send the header 'Authorization: Bearer <token>'",
        )),
    }
}
