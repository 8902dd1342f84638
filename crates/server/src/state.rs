//! What every handler can reach.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use axum::extract::rejection::BytesRejection;
use axum::extract::FromRef;
use axum::http::StatusCode;

use crate::batcher::InferError;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::models::Models;

#[derive(Clone)]
pub struct AppState {
    pub models: Arc<Models>,
    pub metrics: Arc<Metrics>,
    /// The request-size limit, quoted in 413 answers.
    pub max_body_bytes: usize,
    /// Set once shutdown has begun: readiness answers 503 while in-flight work finishes.
    pub draining: Arc<AtomicBool>,
    /// Images decoding at once: one per core.
    pub decode_slots: Arc<tokio::sync::Semaphore>,
    /// Explanations computed at once ([`crate::explain_api::EXPLAIN_SLOTS`]).
    pub explain_slots: Arc<tokio::sync::Semaphore>,
}

impl FromRef<AppState> for Arc<Metrics> {
    fn from_ref(state: &AppState) -> Arc<Metrics> {
        state.metrics.clone()
    }
}

impl AppState {
    /// The JSON error for a body that could not be read (too large, connection cut).
    pub fn body_error(&self, rejection: BytesRejection) -> ApiError {
        let status = rejection.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                status,
                format!(
                    "request body is larger than the server's limit of {} bytes (--max-body-bytes)",
                    self.max_body_bytes
                ),
            )
        } else {
            ApiError::new(status, format!("cannot read the request body: {rejection}"))
        }
    }
}

impl From<InferError> for ApiError {
    fn from(e: InferError) -> ApiError {
        match e {
            InferError::BadInput(message) => ApiError::bad_request(message),
            InferError::Internal(message) => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message)
            }
            InferError::Overloaded(message) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message)
            }
        }
    }
}
