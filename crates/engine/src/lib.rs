//! The Modelsmith engine: f32 tensors, layers with explicit forward and backward passes, the
//! softmax cross-entropy loss and optimizer update kernels, over CPU kernels built on `gemm` and
//! `rayon`. It knows nothing about data sets, files, searches or HTTP.

mod error;
mod layer;
mod network;
mod tensor;

pub use error::EngineError;
pub use layer::{Layer, Mode, Param};
pub use network::{Network, Node};
pub use tensor::Tensor;
