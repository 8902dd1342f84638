//! Errors: [`ApiError`] is what a client sees (a status and `{"error": "..."}`); [`ServeError`]
//! is what stops the server from starting.

use std::path::PathBuf;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

/// A request that cannot be answered: the HTTP status and one line saying why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    /// 400: the request is malformed or does not fit the model.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    pub fn unsupported_media_type(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, message)
    }

    /// 401 with `WWW-Authenticate: Bearer` (see [`IntoResponse`]).
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, message)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.status, self.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(serde_json::json!({ "error": self.message })),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"modelsmith\""),
            );
        }
        if matches!(
            self.status,
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS
        ) {
            // Overloaded, busy or shutting down: worth another try in a moment.
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A model folder could not be loaded.
    #[error("model {name} ({dir}): {error}")]
    Model {
        name: String,
        dir: PathBuf,
        error: Box<modelsmith::Error>,
    },
    /// A `--model-repo` folder could not be read or holds no model.
    #[error("model repository {dir}: {message}")]
    Repository { dir: PathBuf, message: String },
    /// Two models would be served under one name.
    #[error("two models are named '{name}' ({first} and {second}); give one another --name")]
    DuplicateName {
        name: String,
        first: PathBuf,
        second: PathBuf,
    },
    /// Settings that cannot work together (no model, `--max-batch 0`, ...).
    #[error("{0}")]
    Config(String),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {message}")]
    Bind { addr: String, message: String },
    #[error("server failed: {0}")]
    Io(#[from] std::io::Error),
}

impl ServeError {
    /// True when the fix is in what the user gave (model folders, flags, the address), so the
    /// CLI exits with code 2.
    pub fn is_bad_input(&self) -> bool {
        match self {
            ServeError::Model { error, .. } => error.is_bad_input(),
            ServeError::Io(_) => false,
            _ => true,
        }
    }
}
