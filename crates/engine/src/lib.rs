//! The Modelsmith engine: f32 tensors, layers with explicit forward and backward passes, the
//! losses (softmax cross-entropy; squared, absolute and Huber) and optimizer update kernels, over CPU kernels built on `gemm` and
//! `rayon`. It knows nothing about data sets, files, searches or HTTP.

mod activation;
pub mod backend;
#[cfg(feature = "cuda")]
pub mod cuda;
mod error;
mod layer;
pub mod layers;
mod loss;
mod network;
pub mod optim;
pub mod rng;
mod tensor;

pub use activation::Activation;
pub use backend::{cpu, Backend, Padding};
pub use layers::{
    ActivationLayer, Add, AvgPool2d, BatchNorm, Conv2d, Dense, Dropout, Flatten, GlobalAvgPool,
    MaxPool2d,
};
pub use loss::{
    argmax_rows, count_correct, regression_loss, softmax, softmax_cross_entropy, softmax_rows,
    RegressionLoss,
};

pub use error::EngineError;
pub use layer::{Layer, LayerDesc, Mode, Param};
pub use network::{Network, Node};
pub use optim::{
    clip_grad_norm, clip_grad_value, grad_norm, Optimizer, OptimizerConfig, OptimizerState,
};
pub use tensor::Tensor;
