use thiserror::Error;

/// Errors the engine reports. Messages name the layer and give expected versus actual shapes.
#[derive(Debug, Error)]
pub enum EngineError {
    #[error("shape error: {0}")]
    Shape(String),
    #[error("invalid layer configuration: {0}")]
    Config(String),
    /// A GPU could not be used or failed: no driver, a missing CUDA library, out of device
    /// memory, a failed kernel. The message says which and what to do.
    #[error("{0}")]
    Device(String),
}
