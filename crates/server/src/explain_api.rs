//! `POST /v2/models/{name}/explain`: attributions for the inputs of an inference request, by
//! [`modelsmith::explain`] — the same input as `/infer` (JSON or binary tensors, FP32 or UINT8
//! pixels), the method and its settings under the request's `parameters`:
//!
//! ```json
//! {"inputs": [{"name": "input", "shape": [1, 28, 28, 1], "datatype": "FP32", "data": [...]}],
//!  "parameters": {"method": "ig", "target": "7", "baseline": "black", "steps": 50}}
//! ```
//!
//! The answer holds one `attributions` tensor shaped like the input and, per input, the
//! explained output, its value and (Integrated Gradients) the completeness check. An
//! explanation costs tens of forward and backward passes, so it has its own limits: at most
//! [`MAX_EXPLAIN_INPUTS`] inputs and [`MAX_EXPLAIN_STEPS`] steps per input (refinement included), and
//! [`EXPLAIN_SLOTS`] explanation at a time across the server — another request meanwhile gets
//! 429 with `Retry-After`, so explanations cannot starve inference of cores.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use modelsmith::explain::{
    output_names, Baseline, ExplainOptions, ExplainedOutput, Explainer, Method,
};
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::kserve::{parse_request, ModelPath, MODEL_VERSION};
use crate::state::AppState;

/// Most inputs one explanation request may carry.
pub const MAX_EXPLAIN_INPUTS: usize = 16;
/// Most Integrated Gradients steps a request may ask for, and the most refinement may reach:
/// one input costs at most this many passes.
pub const MAX_EXPLAIN_STEPS: usize = 1024;
/// Explanations computed at once, server-wide.
pub const EXPLAIN_SLOTS: usize = 1;

pub async fn explain(
    State(state): State<AppState>,
    Path(path): Path<ModelPath>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let model = path.model(&state)?.clone();
    let request = parse_request(&state, &model, &headers, body)?;
    if request.batch > MAX_EXPLAIN_INPUTS {
        return Err(ApiError::bad_request(format!(
            "{} inputs to explain; at most {MAX_EXPLAIN_INPUTS} per request",
            request.batch
        )));
    }
    let p = &request.parameters;
    let method = match p.method.as_deref() {
        Some(m) => Method::parse(m).map_err(bad)?,
        None => Method::IntegratedGradients,
    };
    let baseline = match p.baseline.as_deref() {
        Some(b) => Baseline::parse(b).map_err(bad)?,
        None => Baseline::default_for(&model.meta.data.preprocessing),
    };
    let mut options = ExplainOptions::new(method, baseline);
    options.max_steps = MAX_EXPLAIN_STEPS;
    if let Some(steps) = p.steps {
        if steps == 0 || steps > MAX_EXPLAIN_STEPS {
            return Err(ApiError::bad_request(format!(
                "steps {steps}: give 1 to {MAX_EXPLAIN_STEPS}"
            )));
        }
        options.steps = steps;
    }
    let target = match &p.target {
        None => None,
        Some(Value::String(t)) => Some(t.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "target {other}: give a class or target name, or an output index"
            )))
        }
    };
    let target = target
        .map(|t| ExplainedOutput::parse(&t, &model.meta.data.task).map_err(bad))
        .transpose()?;
    let Ok(_slot) = state.explain_slots.clone().try_acquire_owned() else {
        return Err(busy());
    };
    let (batch, id) = (request.batch, request.id);
    let inputs = request.inputs;
    let worker_model = model.clone();
    let answer = tokio::task::spawn_blocking(move || {
        let mut guard = worker_model
            .explainer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if guard.is_none() {
            *guard = Some(Explainer::load(&worker_model.dir).map_err(|e| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("cannot load the model for explanations: {e}"),
                )
            })?);
        }
        let explainer = guard.as_mut().expect("loaded above");
        let targets = match target {
            Some(t) => vec![t; batch],
            None => explainer.default_targets(&inputs),
        };
        explainer.explain(&inputs, &targets, &options).map_err(bad)
    })
    .await
    .map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the explanation failed: {e}"),
        )
    })??;
    let names = output_names(&model.meta.data.task);
    let mut shape = vec![batch];
    shape.extend(&model.meta.input_shape);
    let data: Vec<f32> = answer
        .iter()
        .flat_map(|a| a.values.iter().copied())
        .collect();
    let explanations: Vec<Value> = answer
        .iter()
        .map(|a| {
            json!({
                "target": a.target,
                "output": names[a.target],
                "value": a.value,
                "completeness": a.completeness,
            })
        })
        .collect();
    Ok(Json(json!({
        "model_name": model.name,
        "model_version": MODEL_VERSION,
        "id": id,
        "method": method.name(),
        "baseline": baseline.name(),
        "outputs": [{"name": "attributions", "datatype": "FP32", "shape": shape, "data": data}],
        "explanations": explanations,
    }))
    .into_response())
}

fn bad(e: modelsmith::Error) -> ApiError {
    ApiError::bad_request(e.to_string())
}

fn busy() -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "another explanation is being computed; retry in a moment",
    )
}
