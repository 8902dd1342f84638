//! The CUDA executor (feature `cuda`): a whole [`crate::Network`] trained on one NVIDIA GPU with
//! its data, weights, gradients, activations and optimizer state resident on the device.
//!
//! Why not a second [`crate::Backend`]: that trait works on host slices, so a GPU behind it
//! would copy every activation in and out around each kernel. Instead [`CudaNetwork`] is built
//! from a host `Network` (each layer describes itself as data, [`crate::LayerDesc`]) and runs the
//! same forward, backward and update as the CPU, copying weights back when the caller needs
//! them (checkpoints, export).
//!
//! What runs where: cuDNN for convolutions (NHWC, forward and both gradients); cuBLAS for dense
//! layers; NVRTC-compiled kernels (`kernels.cu`) for activations, bias, dropout, pooling, batch
//! norm, residual sums, the loss, gradient clipping and the optimizer updates. Pooling and batch
//! norm are our kernels rather than cuDNN's because cuDNN cannot express TensorFlow's asymmetric
//! "same" padding and valid-count averages, and its batch norm keeps an unbiased running variance
//! where Keras keeps the biased one.
//!
//! cudarc loads the CUDA libraries at run time, so this builds without CUDA installed; opening a
//! device first checks that the driver, NVRTC 13, cuBLAS 13 and cuDNN 9 can be loaded and
//! otherwise returns [`crate::EngineError::Device`] with one line saying what is missing.

mod blas;
mod buffer;
mod conv;
mod data;
mod device;
mod error;
pub mod kernels;
mod layers;
mod network;
mod optim;
mod reduce;

pub use data::DeviceDataset;
pub use device::{check_libraries, device_count, probe, DeviceInfo};
pub use network::{CudaNetwork, StepMetrics};

use crate::Mode;
