//! Mapping CUDA's failures onto [`EngineError::Device`] with one line that says what failed and
//! what to do. Nothing here panics: a missing library is found out before cudarc would load it.

use cudarc::cublas::result::CublasError;
use cudarc::cudnn::result::CudnnError;
use cudarc::driver::{sys::CUresult, DriverError};

use crate::EngineError;

pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// A CUDA driver call failed while doing `what`. Out of memory gets its own advice.
pub fn driver(what: &str, e: DriverError) -> EngineError {
    if e.0 == CUresult::CUDA_ERROR_OUT_OF_MEMORY {
        return EngineError::Device(format!(
            "out of GPU memory while {what}: lower the batch size or run fewer trials per GPU"
        ));
    }
    EngineError::Device(format!("CUDA error while {what}: {}", describe_driver(&e)))
}

/// The driver error's name without cudarc's debug wrapping.
fn describe_driver(e: &DriverError) -> String {
    match e.error_string() {
        Ok(s) => format!("{:?} ({})", e.0, s.to_string_lossy()),
        Err(_) => format!("{:?}", e.0),
    }
}

pub fn cublas(what: &str, e: CublasError) -> EngineError {
    EngineError::Device(format!("cuBLAS error while {what}: {:?}", e.0))
}

pub fn cudnn(what: &str, e: CudnnError) -> EngineError {
    let status = format!("{:?}", e.0);
    if status.contains("ALLOC_FAILED") {
        return EngineError::Device(format!(
            "out of GPU memory in cuDNN while {what}: lower the batch size or run fewer trials per GPU"
        ));
    }
    EngineError::Device(format!("cuDNN error while {what}: {status}"))
}
