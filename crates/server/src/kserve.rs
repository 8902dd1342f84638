//! The Open Inference Protocol (KServe v2) REST endpoints.
//!
//! Inputs are *preprocessed* tensors, exactly as in the ONNX export
//! (`modelsmith export --format onnx`): one input `input`, FP32, shape `[batch, ...input_shape]`
//! (NHWC images scaled by the model's preprocessing, e.g. pixels / 255 for the digits), and one
//! output `probabilities`, FP32, `[batch, classes]`. So one client works against this server and
//! against the ONNX file behind any KServe v2 runtime. `data` may be flat or nested.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use std::time::Instant;

use axum::http::{header, HeaderMap, HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::binary_tensor::{self, BinaryCursor};
use crate::error::ApiError;
use crate::infer_input::{model_input, InputValues, TensorIn};
use crate::models::ServedModel;
use crate::state::AppState;
use crate::tensor_json::FlatNumbers;

pub use crate::infer_input::INPUT_NAME;
/// Every served model has one version, as its metadata says.
pub const MODEL_VERSION: &str = "1";

/// `/v2/models/{name}[/versions/{version}]/...`: the model named, at its one version.
#[derive(Deserialize)]
pub struct ModelPath {
    name: String,
    version: Option<String>,
}

impl ModelPath {
    pub(crate) fn model<'s>(
        &self,
        state: &'s AppState,
    ) -> Result<&'s std::sync::Arc<ServedModel>, ApiError> {
        state.models.versioned(&self.name, self.version.as_deref())
    }
}
const DATATYPE: &str = "FP32";

/// The protocol extensions this server implements (server metadata, HTTP and gRPC).
pub const SERVER_EXTENSIONS: [&str; 3] =
    ["binary_tensor_data", "model_configuration", "statistics"];

/// `GET /v2`: server metadata.
pub async fn server_metadata() -> Json<Value> {
    Json(json!({
        "name": "modelsmith",
        "version": env!("CARGO_PKG_VERSION"),
        "extensions": SERVER_EXTENSIONS,
    }))
}

/// `GET /v2/health/live`: the process answers.
pub async fn live() -> Json<Value> {
    Json(json!({ "live": true }))
}

/// `GET /v2/health/ready`: every model is loaded (they are before the server listens) and its
/// worker runs; 503 once shutdown has begun, so load balancers stop routing here.
pub async fn ready(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    if state.draining.load(std::sync::atomic::Ordering::SeqCst) {
        return Err(ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "shutting down: finishing in-flight requests",
        ));
    }
    Ok(Json(
        json!({ "ready": true, "models": state.models.names().collect::<Vec<_>>() }),
    ))
}

/// `GET /v2/models/{name}/ready`.
pub async fn model_ready(
    State(state): State<AppState>,
    Path(path): Path<ModelPath>,
) -> Result<Json<Value>, ApiError> {
    let model = path.model(&state)?;
    Ok(Json(json!({ "name": model.name, "ready": true })))
}

#[derive(Serialize)]
struct TensorMetadata {
    name: &'static str,
    datatype: &'static str,
    /// -1 marks the dynamic batch axis.
    shape: Vec<i64>,
}

/// `GET /v2/models/{name}`: inputs and outputs with shapes and datatypes; the class names and
/// preprocessing ride along under `parameters`.
pub async fn model_metadata(
    State(state): State<AppState>,
    Path(path): Path<ModelPath>,
) -> Result<Json<Value>, ApiError> {
    let model = path.model(&state)?;
    let meta = &model.meta;
    let (input_shape, output_shape) = model.tensor_shapes();
    Ok(Json(json!({
        "name": model.name,
        "versions": [MODEL_VERSION],
        "platform": "modelsmith",
        "inputs": [TensorMetadata { name: INPUT_NAME, datatype: DATATYPE, shape: input_shape }],
        "outputs": [TensorMetadata {
            name: meta.data.task.output_name(),
            datatype: DATATYPE,
            shape: output_shape,
        }],
        "parameters": {
            "task": meta.data.task,
            "class_names": meta.data.class_names(),
            "preprocessing": meta.data.preprocessing,
        },
    })))
}

/// `GET /v2/models/{name}/config`: the model's configuration as Triton's model configuration
/// extension shows it (`tritonclient`'s `get_model_config`): tensors with Triton's type names
/// and their per-example dims, and the batching settings.
pub async fn model_config(
    State(state): State<AppState>,
    Path(path): Path<ModelPath>,
) -> Result<Json<Value>, ApiError> {
    let model = path.model(&state)?;
    let meta = &model.meta;
    let batch = model.batcher.config();
    Ok(Json(json!({
        "name": model.name,
        "platform": "modelsmith",
        "backend": "modelsmith",
        "max_batch_size": batch.max_batch,
        "input": [{
            "name": INPUT_NAME,
            "data_type": "TYPE_FP32",
            "dims": meta.input_shape,
        }],
        "output": [{
            "name": meta.data.task.output_name(),
            "data_type": "TYPE_FP32",
            "dims": [meta.outputs],
        }],
        "dynamic_batching": {
            "max_queue_delay_microseconds": batch.max_delay.as_micros() as u64,
        },
    })))
}

/// `GET /v2/models/{name}/stats` (one model) and `GET /v2/models/stats` (all): Triton's
/// statistics extension (`tritonclient`'s `get_inference_statistics`).
pub async fn model_stats(
    State(state): State<AppState>,
    Path(path): Path<ModelPath>,
) -> Result<Json<Value>, ApiError> {
    let model = path.model(&state)?;
    Ok(Json(json!({
        "model_stats": [model.batcher.stats().to_json(&model.name, MODEL_VERSION)],
    })))
}

pub async fn all_stats(State(state): State<AppState>) -> Json<Value> {
    let stats: Vec<Value> = state
        .models
        .names()
        .filter_map(|name| state.models.get(name))
        .map(|m| m.batcher.stats().to_json(&m.name, MODEL_VERSION))
        .collect();
    Json(json!({ "model_stats": stats }))
}

#[derive(Deserialize)]
struct InferRequest {
    #[serde(default)]
    id: Option<Value>,
    inputs: Vec<InferInput>,
    #[serde(default)]
    outputs: Option<Vec<RequestedOutput>>,
    #[serde(default)]
    parameters: RequestParameters,
}

/// The request's own parameters this server reads (others are ignored, as the protocol allows).
#[derive(Deserialize, Default)]
pub(crate) struct RequestParameters {
    /// Every output as binary data (the binary tensor extension).
    #[serde(default)]
    binary_data_output: bool,
    /// `/explain`: the method (`ig`, `saliency`, `input-x-gradient`, `occlusion`, `gradcam`).
    #[serde(default)]
    pub method: Option<String>,
    /// `/explain`: the class or target, by name or index; default: the predicted class.
    #[serde(default)]
    pub target: Option<Value>,
    /// `/explain`: `black`, `blurred`, `noise` (images) or `mean` (tables).
    #[serde(default)]
    pub baseline: Option<String>,
    /// `/explain`: Integrated Gradients' steps.
    #[serde(default)]
    pub steps: Option<usize>,
}

#[derive(Deserialize)]
struct InferInput {
    name: String,
    shape: Vec<i64>,
    datatype: String,
    /// JSON values; absent when the values are binary (`parameters.binary_data_size`).
    #[serde(default)]
    data: Option<FlatNumbers>,
    #[serde(default)]
    parameters: TensorParameters,
}

#[derive(Deserialize, Default)]
struct TensorParameters {
    /// This input's bytes in the body's binary section.
    #[serde(default)]
    binary_data_size: Option<u64>,
    /// On a requested output: return it as binary data.
    #[serde(default)]
    binary_data: Option<bool>,
}

#[derive(Deserialize)]
struct RequestedOutput {
    name: String,
    #[serde(default)]
    parameters: TensorParameters,
}

#[derive(Serialize)]
struct InferResponse<'a> {
    model_name: &'a str,
    model_version: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<Value>,
    outputs: [OutputTensor; 1],
}

#[derive(Serialize)]
struct OutputTensor {
    name: &'static str,
    datatype: &'static str,
    shape: [usize; 2],
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<Vec<f32>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<Value>,
}

/// `POST /v2/models/{name}/infer`: JSON tensors, or binary ones after a JSON header
/// ([`binary_tensor`]); FP32 preprocessed values, or UINT8 raw pixels of an image model.
pub async fn infer(
    State(state): State<AppState>,
    Path(path): Path<ModelPath>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let model = path.model(&state)?;
    let answer = infer_model(&state, model, &headers, body).await;
    let examples = answer.as_ref().map(|(_, n)| *n).map_err(|_| ());
    model.batcher.stats().request(examples, started.elapsed());
    answer.map(|(response, _)| response)
}

/// An inference request's inputs, checked against the model, with what else it asked for.
pub(crate) struct ParsedRequest {
    pub id: Option<Value>,
    /// The model inputs laid end to end.
    pub inputs: Vec<f32>,
    pub batch: usize,
    outputs: Option<Vec<RequestedOutput>>,
    pub parameters: RequestParameters,
}

/// Reads an inference request body (JSON, or JSON then binary tensors) for `model`: what
/// `/infer` and `/explain` both take.
pub(crate) fn parse_request(
    state: &AppState,
    model: &ServedModel,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<ParsedRequest, ApiError> {
    let body = body.map_err(|e| state.body_error(e))?;
    let body = binary_tensor::split(headers, body)?;
    let request: InferRequest = serde_json::from_slice(&body.json)
        .map_err(|e| ApiError::bad_request(format!("invalid inference request JSON: {e}")))?;
    let mut cursor = BinaryCursor::new(body.binary);
    let mut inputs = Vec::with_capacity(request.inputs.len());
    for input in request.inputs {
        let values = match (input.data, input.parameters.binary_data_size) {
            (Some(_), Some(_)) => InputValues::Both,
            (Some(data), None) => InputValues::Numbers(data.0),
            (None, Some(size)) => InputValues::Raw(cursor.take(&input.name, size)?),
            (None, None) => InputValues::Missing,
        };
        inputs.push(TensorIn {
            name: input.name,
            datatype: input.datatype,
            shape: input.shape,
            values,
        });
    }
    cursor.finish()?;
    let (inputs, batch) = model_input(model, inputs)?;
    Ok(ParsedRequest {
        id: request.id,
        inputs,
        batch,
        outputs: request.outputs,
        parameters: request.parameters,
    })
}

async fn infer_model(
    state: &AppState,
    model: &ServedModel,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(Response, usize), ApiError> {
    let ParsedRequest {
        id,
        inputs,
        batch,
        outputs: requested,
        parameters,
    } = parse_request(state, model, headers, body)?;
    let output_name = model.meta.data.task.output_name();
    let mut binary_output = parameters.binary_data_output;
    if let Some(outputs) = &requested {
        if let Some(bad) = outputs.iter().find(|o| o.name != output_name) {
            return Err(ApiError::bad_request(format!(
                "unknown output '{}'; this model's output is '{output_name}'",
                bad.name
            )));
        }
        if let Some(asked) = outputs.iter().find_map(|o| o.parameters.binary_data) {
            binary_output = asked;
        }
    }
    let outputs = model.batcher.infer(inputs, batch).await?;
    let (data, parameters, binary) = if binary_output {
        let bytes: Vec<u8> = outputs.iter().flat_map(|v| v.to_le_bytes()).collect();
        (
            None,
            Some(json!({ "binary_data_size": bytes.len() })),
            bytes,
        )
    } else {
        (Some(outputs), None, Vec::new())
    };
    let response = InferResponse {
        model_name: &model.name,
        model_version: MODEL_VERSION,
        id,
        outputs: [OutputTensor {
            name: output_name,
            datatype: DATATYPE,
            shape: [batch, model.meta.outputs],
            data,
            parameters,
        }],
    };
    if !binary_output {
        return Ok(((StatusCode::OK, Json(response)).into_response(), batch));
    }
    let json = serde_json::to_vec(&response).expect("responses serialize");
    let (header_length, body) = binary_tensor::response_body(json, &binary);
    let response = (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (
                HeaderName::from_static(binary_tensor::HEADER_LENGTH),
                header_length.to_string(),
            ),
        ],
        body,
    )
        .into_response();
    Ok((response, batch))
}
