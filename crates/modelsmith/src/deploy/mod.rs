//! Deployment: exporting a saved model folder as standalone files.
//!
//! - [`ExportFormat::Onnx`]: an ONNX model (opset 13) that computes the same class
//!   probabilities as [`crate::predict::Predictor`]; see [`onnx`] for the mapping.
//! - [`ExportFormat::Safetensors`]: the weights as saved by training, every tensor under its
//!   engine name `<layer>.<param>` (`weight`, `bias`, `gamma`, `beta`, `running_mean`,
//!   `running_var`), conv kernels `[out, kh, kw, in]`, dense `[in, out]`, f32 little-endian.

pub mod bundle;
pub mod launch;
pub mod onnx;
#[allow(clippy::all, missing_docs, rustdoc::all)]
pub mod onnx_pb;

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde::Serialize;

use crate::model::{load_model, read_weights_file, write_atomic_file};
use crate::{Error, Result};

/// The formats `modelsmith export --format` accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    Onnx,
    Safetensors,
}

impl FromStr for ExportFormat {
    type Err = Error;

    fn from_str(s: &str) -> Result<ExportFormat> {
        match s.trim().to_ascii_lowercase().as_str() {
            "onnx" => Ok(ExportFormat::Onnx),
            "safetensors" => Ok(ExportFormat::Safetensors),
            other => Err(Error::Config(format!(
                "unknown export format '{other}': use onnx or safetensors"
            ))),
        }
    }
}

impl fmt::Display for ExportFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ExportFormat::Onnx => "onnx",
            ExportFormat::Safetensors => "safetensors",
        })
    }
}

/// What an export wrote.
#[derive(Clone, Debug, Serialize)]
pub struct ExportSummary {
    pub format: ExportFormat,
    pub path: String,
    pub bytes: u64,
    /// Number of tensors (ONNX initializers or safetensors entries).
    pub tensors: usize,
    /// ONNX only: the graph's node count.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nodes: Option<usize>,
}

/// Exports the model folder `model_dir` to the file `out` (written atomically).
pub fn export(model_dir: &Path, format: ExportFormat, out: &Path) -> Result<ExportSummary> {
    let (meta, net) = load_model(model_dir)?;
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !parent.is_dir() {
            return Err(Error::Config(format!(
                "{}: the output folder does not exist",
                parent.display()
            )));
        }
    }
    let (bytes, tensors, nodes) = match format {
        ExportFormat::Onnx => {
            let model = onnx::to_onnx(&meta, &net)?;
            let graph = model.graph.as_ref().expect("to_onnx sets the graph");
            let (tensors, nodes) = (graph.initializer.len(), graph.node.len());
            (onnx::encode(&model), tensors, Some(nodes))
        }
        ExportFormat::Safetensors => {
            let path = model_dir.join("weights.safetensors");
            let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
            // load_model already checked that the file parses and matches model.json.
            let tensors = read_weights_file(&path)?.len();
            (bytes, tensors, None)
        }
    };
    write_atomic_file(out, &bytes)?;
    Ok(ExportSummary {
        format,
        path: out.display().to_string(),
        bytes: bytes.len() as u64,
        tensors,
        nodes,
    })
}
