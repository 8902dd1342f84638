//! `POST /predict`: the convenience endpoint. The body is a PNG/JPEG image (preprocessed exactly
//! as `modelsmith predict` treats an image file) or JSON model inputs (one example as an array
//! of numbers, a batch as an array of arrays; values already preprocessed, as in `/v2` infer).
//! The answer names the top-k classes with their probabilities.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap};
use axum::Json;
use serde::{Deserialize, Serialize};

use modelsmith::predict::Answer;

use crate::error::ApiError;
use crate::models::ServedModel;
use crate::state::AppState;
use crate::tensor_json::Examples;

#[derive(Deserialize)]
pub struct PredictQuery {
    top_k: Option<usize>,
    model: Option<String>,
}

/// The answer: one prediction per example, in order.
#[derive(Serialize)]
pub struct PredictResponse {
    pub model: String,
    pub predictions: Vec<PredictionJson>,
}

/// One example's answer, by the model's task.
#[derive(Serialize)]
#[serde(untagged)]
pub enum PredictionJson {
    Class {
        class: String,
        class_index: usize,
        probability: f32,
        /// The `top_k` most probable classes, most probable first.
        top: Vec<ClassProbability>,
    },
    /// A regression: each target's value in its own units, in the model's target order.
    Values { values: Vec<TargetValue> },
}

#[derive(Serialize)]
pub struct TargetValue {
    pub target: String,
    pub value: f32,
}

#[derive(Serialize)]
pub struct ClassProbability {
    pub class: String,
    pub probability: f32,
}

/// What the body holds, from its `Content-Type`.
enum BodyKind {
    Image,
    Json,
}

fn body_kind(headers: &HeaderMap) -> Result<BodyKind, ApiError> {
    const ACCEPTED: &str = "image/png, image/jpeg or application/json";
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Err(ApiError::unsupported_media_type(format!(
            "no Content-Type; send {ACCEPTED}"
        )));
    };
    let essence = value
        .to_str()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "image/png" | "image/jpeg" | "image/jpg" => Ok(BodyKind::Image),
        "application/json" => Ok(BodyKind::Json),
        other => Err(ApiError::unsupported_media_type(format!(
            "Content-Type '{other}' is not supported; send {ACCEPTED}"
        ))),
    }
}

pub async fn predict(
    State(state): State<AppState>,
    query: Result<Query<PredictQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<PredictResponse>, ApiError> {
    let Query(query) = query.map_err(|e| {
        ApiError::bad_request(format!(
            "bad query: {}; use ?top_k=K (K >= 1) and ?model=NAME",
            e.body_text()
        ))
    })?;
    let top_k = query.top_k.unwrap_or(1);
    if top_k == 0 {
        return Err(ApiError::bad_request("top_k must be at least 1"));
    }
    let model = state.models.pick(query.model.as_deref())?.clone();
    let kind = body_kind(&headers)?;
    let body = body.map_err(|e| state.body_error(e))?;
    let examples = match kind {
        BodyKind::Image => vec![decode_image(&state, &model, body).await?],
        BodyKind::Json => json_examples(&model, &body)?,
    };
    let count = examples.len();
    let outputs = model.batcher.infer(examples.concat(), count).await?;
    let width = model.meta.outputs;
    let predictions = outputs
        .chunks_exact(width)
        .map(
            |o| match modelsmith::predict::answer(&model.meta, o, top_k) {
                Answer::Class {
                    class,
                    class_index,
                    probability,
                    top,
                } => PredictionJson::Class {
                    class,
                    class_index,
                    probability,
                    top: top
                        .into_iter()
                        .map(|(class, probability)| ClassProbability { class, probability })
                        .collect(),
                },
                Answer::Values { values } => PredictionJson::Values {
                    values: values
                        .into_iter()
                        .map(|(target, value)| TargetValue { target, value })
                        .collect(),
                },
            },
        )
        .collect();
    Ok(Json(PredictResponse {
        model: model.name.clone(),
        predictions,
    }))
}

/// The image body as one model input, preprocessed like `modelsmith predict` does for a file.
/// Decoding runs on the blocking pool, never on the threads answering HTTP, and at most one
/// image per core decodes at a time, each refused before decoding past what the model can use
/// (`Preprocessing::max_decoded_pixels`).
async fn decode_image(
    state: &AppState,
    model: &std::sync::Arc<ServedModel>,
    body: Bytes,
) -> Result<Vec<f32>, ApiError> {
    let internal = || {
        ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "image decoding failed",
        )
    };
    let _slot = state
        .decode_slots
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| internal())?;
    let model = model.clone();
    tokio::task::spawn_blocking(move || {
        model
            .meta
            .data
            .preprocessing
            .image_bytes_to_input(&body, "request body")
            .map_err(|e| ApiError::bad_request(e.to_string()))
    })
    .await
    .map_err(|_| internal())?
}

/// JSON examples, each checked against the model's input size.
fn json_examples(model: &ServedModel, body: &[u8]) -> Result<Vec<Vec<f32>>, ApiError> {
    let parsed: Examples = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
    if parsed.examples.is_empty() {
        return Err(ApiError::bad_request(
            "the JSON array is empty; send one example (an array of numbers) or a batch",
        ));
    }
    let len = model.input_len();
    if let Some((i, bad)) = parsed
        .examples
        .iter()
        .enumerate()
        .find(|(_, e)| e.len() != len)
    {
        let which = if parsed.batch {
            format!("example {}", i + 1)
        } else {
            "the example".to_string()
        };
        return Err(ApiError::bad_request(format!(
            "{which} has {} values; model '{}' takes {len} per example (shape {:?}), already preprocessed",
            bad.len(),
            model.name,
            model.meta.input_shape
        )));
    }
    Ok(parsed.examples)
}
