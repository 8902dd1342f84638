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
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::models::ServedModel;
use crate::state::AppState;
use crate::tensor_json::FlatNumbers;

pub const INPUT_NAME: &str = "input";
/// Every served model has one version, as its metadata says.
pub const MODEL_VERSION: &str = "1";

/// `/v2/models/{name}[/versions/{version}]/...`: the model named, at its one version.
#[derive(Deserialize)]
pub struct ModelPath {
    name: String,
    version: Option<String>,
}

impl ModelPath {
    fn model<'s>(&self, state: &'s AppState) -> Result<&'s std::sync::Arc<ServedModel>, ApiError> {
        let model = state
            .models
            .get(&self.name)
            .ok_or_else(|| state.models.unknown(&self.name))?;
        match self.version.as_deref() {
            None | Some(MODEL_VERSION) => Ok(model),
            Some(other) => Err(ApiError::not_found(format!(
                "model '{}' has no version '{other}'; its only version is {MODEL_VERSION}",
                self.name
            ))),
        }
    }
}
const DATATYPE: &str = "FP32";

/// `GET /v2`: server metadata.
pub async fn server_metadata() -> Json<Value> {
    Json(json!({
        "name": "modelsmith",
        "version": env!("CARGO_PKG_VERSION"),
        "extensions": [],
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
    let mut input_shape = vec![-1];
    input_shape.extend(meta.input_shape.iter().map(|&d| d as i64));
    Ok(Json(json!({
        "name": model.name,
        "versions": [MODEL_VERSION],
        "platform": "modelsmith",
        "inputs": [TensorMetadata { name: INPUT_NAME, datatype: DATATYPE, shape: input_shape }],
        "outputs": [TensorMetadata {
            name: meta.data.task.output_name(),
            datatype: DATATYPE,
            shape: vec![-1, meta.outputs as i64],
        }],
        "parameters": {
            "task": meta.data.task,
            "class_names": meta.data.class_names(),
            "preprocessing": meta.data.preprocessing,
        },
    })))
}

#[derive(Deserialize)]
struct InferRequest {
    #[serde(default)]
    id: Option<Value>,
    inputs: Vec<InferInput>,
    #[serde(default)]
    outputs: Option<Vec<RequestedOutput>>,
}

#[derive(Deserialize)]
struct InferInput {
    name: String,
    shape: Vec<i64>,
    datatype: String,
    data: FlatNumbers,
}

#[derive(Deserialize)]
struct RequestedOutput {
    name: String,
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
    data: Vec<f32>,
}

/// `POST /v2/models/{name}/infer`.
pub async fn infer(
    State(state): State<AppState>,
    Path(path): Path<ModelPath>,
    body: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let model = path.model(&state)?;
    let body = body.map_err(|e| state.body_error(e))?;
    let request: InferRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid inference request JSON: {e}")))?;
    let (inputs, batch) = check_input(model, request.inputs)?;
    let output_name = model.meta.data.task.output_name();
    if let Some(outputs) = &request.outputs {
        if let Some(bad) = outputs.iter().find(|o| o.name != output_name) {
            return Err(ApiError::bad_request(format!(
                "unknown output '{}'; this model's output is '{output_name}'",
                bad.name
            )));
        }
    }
    let outputs = model.batcher.infer(inputs, batch).await?;
    let response = InferResponse {
        model_name: &model.name,
        model_version: MODEL_VERSION,
        id: request.id,
        outputs: [OutputTensor {
            name: model.meta.data.task.output_name(),
            datatype: DATATYPE,
            shape: [batch, model.meta.outputs],
            data: outputs,
        }],
    };
    Ok((StatusCode::OK, Json(response)).into_response())
}

/// The one input's values and batch size, after checking name, datatype, shape and length
/// against the model.
fn check_input(
    model: &ServedModel,
    mut inputs: Vec<InferInput>,
) -> Result<(Vec<f32>, usize), ApiError> {
    if inputs.len() != 1 {
        return Err(ApiError::bad_request(format!(
            "{} inputs given; this model takes exactly one, named '{INPUT_NAME}'",
            inputs.len()
        )));
    }
    let input = inputs.pop().expect("one input");
    let expected = || {
        let dims: Vec<String> = model
            .meta
            .input_shape
            .iter()
            .map(usize::to_string)
            .collect();
        format!("[batch, {}]", dims.join(", "))
    };
    if input.name != INPUT_NAME {
        return Err(ApiError::bad_request(format!(
            "unknown input '{}'; this model's input is '{INPUT_NAME}'",
            input.name
        )));
    }
    if input.datatype != DATATYPE {
        return Err(ApiError::bad_request(format!(
            "input '{INPUT_NAME}' has datatype {}; this model takes {DATATYPE}",
            input.datatype
        )));
    }
    let dims_fit = input.shape.len() == model.meta.input_shape.len() + 1
        && input.shape[1..]
            .iter()
            .zip(&model.meta.input_shape)
            .all(|(&given, &want)| given == want as i64);
    if !dims_fit || input.shape[0] < 1 {
        return Err(ApiError::bad_request(format!(
            "input '{INPUT_NAME}' has shape {:?}; this model takes {} with batch >= 1",
            input.shape,
            expected()
        )));
    }
    let batch = input.shape[0] as usize;
    let values = input.data.0;
    let needed = batch.checked_mul(model.input_len());
    if needed != Some(values.len()) {
        return Err(ApiError::bad_request(format!(
            "input '{INPUT_NAME}' has {} values; shape {:?} needs {}",
            values.len(),
            input.shape,
            needed.map_or("more than can be addressed".to_string(), |n| n.to_string())
        )));
    }
    Ok((values, batch))
}
