//! Models as data: [`ModelSpec`] (architecture), building an engine network from it, weights in
//! safetensors, and the saved model folder (`model.json` + `weights.safetensors`).

pub mod activation;
mod build;
mod inherit;
mod output_lock;
mod saved;
pub mod spec;
mod weights;

use std::path::Path;

pub use activation::ActivationSpec;
pub use build::build_network;
pub use inherit::{inherit, network_tensors, Inherited};
pub use output_lock::{OutputLock, LOCK_FILE};
pub use saved::{load_model, save_model, ModelMeta, MAX_INPUT_VALUES, MODEL_FORMAT_VERSION};
pub use spec::{LayerKind, LayerSpec, ModelSpec, OutputLayer, PaddingSpec, BUILTIN_MODELS};
pub use weights::{
    load_weights, read_weights_file, weights_to_bytes, write_atomic as write_atomic_file,
    write_weights_file, NamedTensors, WeightSnapshot,
};

/// Errors about model specs, saved models and weights.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("invalid model: {0}")]
    Invalid(String),
    #[error("{path}: {message}")]
    File { path: String, message: String },
}

impl ModelError {
    pub(crate) fn file(path: &Path, message: impl Into<String>) -> ModelError {
        ModelError::File {
            path: path.display().to_string(),
            message: message.into(),
        }
    }
}

impl ModelSpec {
    /// Reads a spec from a `.json` or `.toml` file.
    pub fn from_file(path: &Path) -> Result<ModelSpec, ModelError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ModelError::file(path, format!("cannot read model spec: {e}")))?;
        let is_toml = path.extension().is_some_and(|e| e == "toml");
        if is_toml {
            toml::from_str(&text).map_err(|e| {
                ModelError::file(
                    path,
                    format!("invalid model spec: {}", one_line(&e.to_string())),
                )
            })
        } else {
            serde_json::from_str(&text)
                .map_err(|e| ModelError::file(path, format!("invalid model spec: {e}")))
        }
    }

    /// `--model` argument: a built-in name (`auto`, `seed-cnn`, `mlp`) for examples of
    /// `input_shape` ending in `head`, or a spec file (whose last layer must then match the
    /// head: checked when the network is built).
    pub fn resolve(
        arg: &str,
        head: OutputLayer,
        input_shape: &[usize],
    ) -> Result<ModelSpec, ModelError> {
        if let Some(spec) = ModelSpec::builtin(arg, head, input_shape) {
            return Ok(spec);
        }
        let path = Path::new(arg);
        if !path.exists() {
            return Err(ModelError::Invalid(format!(
                "'{arg}' is neither a built-in model ({}) nor an existing spec file",
                BUILTIN_MODELS.join(", ")
            )));
        }
        ModelSpec::from_file(path)
    }
}

/// TOML errors span several lines with a caret diagram; keep the first line plus the message.
pub(crate) fn one_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| {
            !l.is_empty() && !l.starts_with('|') && !l.chars().all(|c| c == '^' || c == ' ')
        })
        .collect::<Vec<_>>()
        .join(" ")
}
