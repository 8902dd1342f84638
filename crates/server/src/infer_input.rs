//! The one input of an inference request, checked against the model the same way whichever
//! protocol carried it (HTTP JSON, HTTP binary tensors, gRPC): its name, datatype, shape and
//! value count, and its values as the model takes them. FP32 values are the model's
//! preprocessed input; UINT8 values are raw pixels of an image model, scaled here as its
//! preprocessing says (a quarter of FP32's bytes on the wire).

use axum::body::Bytes;
use modelsmith::data::Preprocessing;

use crate::binary_tensor;
use crate::error::ApiError;
use crate::models::ServedModel;

pub const INPUT_NAME: &str = "input";
pub const FP32: &str = "FP32";
pub const UINT8: &str = "UINT8";

/// An input tensor as a request gave it.
pub struct TensorIn {
    pub name: String,
    pub datatype: String,
    pub shape: Vec<i64>,
    pub values: InputValues,
}

/// Where an input's values came from.
pub enum InputValues {
    /// Numbers (JSON `data`, or gRPC typed contents).
    Numbers(Vec<f32>),
    /// Little-endian bytes (HTTP binary data, or gRPC `raw_input_contents`).
    Raw(Bytes),
    /// Neither was given.
    Missing,
    /// Both were given.
    Both,
}

/// The single input's values (as the model takes them) and its batch size.
pub fn model_input(
    model: &ServedModel,
    mut inputs: Vec<TensorIn>,
) -> Result<(Vec<f32>, usize), ApiError> {
    if inputs.len() != 1 {
        return Err(ApiError::bad_request(format!(
            "{} inputs given; this model takes exactly one, named '{INPUT_NAME}'",
            inputs.len()
        )));
    }
    let input = inputs.pop().expect("one input");
    if input.name != INPUT_NAME {
        return Err(ApiError::bad_request(format!(
            "unknown input '{}'; this model's input is '{INPUT_NAME}'",
            input.name
        )));
    }
    let pixel_scale = match &model.meta.data.preprocessing {
        Preprocessing::Image { scale, .. } => Some(*scale),
        _ => None,
    };
    match (input.datatype.as_str(), pixel_scale) {
        (FP32, _) | (UINT8, Some(_)) => {}
        (UINT8, None) => {
            return Err(ApiError::bad_request(format!(
                "input '{INPUT_NAME}' has datatype UINT8 (raw image pixels); this table model takes {FP32}"
            )))
        }
        (other, _) => {
            let also = if pixel_scale.is_some() {
                " (or UINT8 pixels)"
            } else {
                ""
            };
            return Err(ApiError::bad_request(format!(
                "input '{INPUT_NAME}' has datatype {other}; this model takes {FP32}{also}"
            )));
        }
    }
    let dims_fit = input.shape.len() == model.meta.input_shape.len() + 1
        && input.shape[1..]
            .iter()
            .zip(&model.meta.input_shape)
            .all(|(&given, &want)| given == want as i64);
    if !dims_fit || input.shape[0] < 1 {
        let dims: Vec<String> = model
            .meta
            .input_shape
            .iter()
            .map(usize::to_string)
            .collect();
        return Err(ApiError::bad_request(format!(
            "input '{INPUT_NAME}' has shape {:?}; this model takes [batch, {}] with batch >= 1",
            input.shape,
            dims.join(", ")
        )));
    }
    let batch = input.shape[0] as usize;
    let needed = batch.checked_mul(model.input_len());
    let count =
        |n: Option<usize>| n.map_or("more than can be addressed".to_string(), |n| n.to_string());
    let values = match input.values {
        InputValues::Both => {
            return Err(ApiError::bad_request(format!(
                "input '{INPUT_NAME}' has both values and binary data; give one"
            )))
        }
        InputValues::Missing => {
            return Err(ApiError::bad_request(format!(
                "input '{INPUT_NAME}' has no values (JSON `data`, binary data, or raw contents)"
            )))
        }
        InputValues::Numbers(values) => values,
        InputValues::Raw(bytes) => {
            let width = binary_tensor::value_size(&input.datatype).expect("a checked datatype");
            let bytes_needed = needed.and_then(|n| n.checked_mul(width));
            if bytes_needed != Some(bytes.len()) {
                return Err(ApiError::bad_request(format!(
                    "input '{INPUT_NAME}' has {} bytes of binary data; shape {:?} of {} needs {}",
                    bytes.len(),
                    input.shape,
                    input.datatype,
                    count(bytes_needed)
                )));
            }
            if input.datatype == UINT8 {
                bytes.iter().map(|&b| b as f32).collect()
            } else {
                let values = binary_tensor::f32_values(&bytes);
                if let Some(i) = values.iter().position(|v| !v.is_finite()) {
                    return Err(ApiError::bad_request(format!(
                        "input '{INPUT_NAME}' holds {} at index {i}; values must be finite",
                        values[i]
                    )));
                }
                values
            }
        }
    };
    if needed != Some(values.len()) {
        return Err(ApiError::bad_request(format!(
            "input '{INPUT_NAME}' has {} values; shape {:?} needs {}",
            values.len(),
            input.shape,
            count(needed)
        )));
    }
    let values = match (input.datatype.as_str(), pixel_scale) {
        (UINT8, Some(scale)) => {
            if let Some(bad) = values
                .iter()
                .find(|v| !(0.0..=255.0).contains(*v) || v.fract() != 0.0)
            {
                return Err(ApiError::bad_request(format!(
                    "input '{INPUT_NAME}' is UINT8 but holds {bad}; pixels are whole numbers 0 to 255"
                )));
            }
            values.into_iter().map(|v| v * scale).collect()
        }
        _ => values,
    };
    Ok((values, batch))
}
