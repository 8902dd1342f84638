//! The layer library: one small file per layer, each with its forward and backward side by side.

mod activation;
mod add;
mod batch_norm;
mod conv2d;
mod dense;
mod dropout;
mod flatten;
mod global_avg_pool;
mod pool;

pub use activation::ActivationLayer;
pub use add::Add;
pub use batch_norm::BatchNorm;
pub use conv2d::Conv2d;
pub use dense::Dense;
pub use dropout::Dropout;
pub use flatten::Flatten;
pub use global_avg_pool::GlobalAvgPool;
pub use pool::{AvgPool2d, MaxPool2d};

use crate::EngineError;

/// The single per-example input shape of a one-input layer.
pub(crate) fn one_input<'a>(
    kind: &str,
    inputs: &'a [Vec<usize>],
) -> Result<&'a [usize], EngineError> {
    match inputs {
        [s] => Ok(s),
        _ => Err(EngineError::Shape(format!(
            "{kind} takes exactly one input, got {}",
            inputs.len()
        ))),
    }
}

/// `(h, w, c)` of a one-input layer that needs NHWC images.
pub(crate) fn image_input(
    kind: &str,
    inputs: &[Vec<usize>],
) -> Result<(usize, usize, usize), EngineError> {
    match one_input(kind, inputs)? {
        &[h, w, c] => Ok((h, w, c)),
        s => Err(EngineError::Shape(format!(
            "{kind} expects an image input [height, width, channels], got {s:?}"
        ))),
    }
}
