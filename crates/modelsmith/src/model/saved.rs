//! The saved model folder: `model.json` (spec, input shape, task, preprocessing, metrics and
//! the training configuration) beside `weights.safetensors`. `evaluate`, `predict`, export and the
//! server all start from this folder.

use std::path::Path;

use modelsmith_engine::Network;
use serde::{Deserialize, Serialize};

use super::weights::{load_weights, parse_weights, weights_to_bytes, write_atomic};
use super::{build_network, ModelError, ModelSpec};
use crate::data::DataInfo;
use crate::digest::sha256_hex;

/// Bumped when `model.json` changes incompatibly.
pub const MODEL_FORMAT_VERSION: u32 = 1;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ModelMeta {
    pub format_version: u32,
    pub spec: ModelSpec,
    /// Per-example input shape: `[h, w, c]` for images, `[features]` for tables.
    pub input_shape: Vec<usize>,
    /// The network's output width: classes, or regression targets (`data.task` says which).
    #[serde(alias = "num_classes")]
    pub outputs: usize,
    /// Where the data came from, class names and the preprocessing new inputs need.
    pub data: DataInfo,
    pub params: usize,
    pub macs_per_example: u64,
    /// Final metrics (test accuracy, loss, epochs, ...).
    #[serde(default)]
    pub metrics: serde_json::Value,
    /// The training configuration that produced the weights.
    #[serde(default)]
    pub training: serde_json::Value,
    /// SHA-256 of the `weights.safetensors` saved with this file (set by [`save_model`]; absent
    /// in folders written before it existed). A folder whose weights do not match is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights_sha256: Option<String>,
}

/// Most values one example may hold (a 4096x4096 RGB image is 50M): a bound checked before a
/// `model.json` makes anything allocate, whatever it claims.
pub const MAX_INPUT_VALUES: u64 = 1 << 26;
/// Most outputs (classes) a saved model may have.
pub const MAX_OUTPUTS: usize = 1 << 20;

/// Saves a model folder: the weights first, then `model.json` naming their SHA-256, each written
/// atomically. `model.json` is the commit point: a save cut short between the two, or two runs
/// writing the same folder, leaves a pair [`load_model`] refuses instead of one it mixes.
/// Callers that write a folder over a whole run hold its [`OutputLock`](super::OutputLock).
pub fn save_model(dir: &Path, meta: &ModelMeta, net: &Network) -> Result<(), ModelError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| ModelError::file(dir, format!("cannot create folder: {e}")))?;
    let weights = weights_to_bytes(net, &[]);
    let meta = ModelMeta {
        weights_sha256: Some(sha256_hex(&weights)),
        ..meta.clone()
    };
    write_atomic(&dir.join("weights.safetensors"), &weights)?;
    let json = serde_json::to_vec_pretty(&meta).expect("model metadata serializes");
    write_atomic(&dir.join("model.json"), &json)
}

impl ModelMeta {
    /// Checks what `model.json` claims before anything is built from it: every shape product
    /// checked and bounded, and the preprocessing, classes and input shape agreeing, so a damaged
    /// or hostile file is one error line instead of a panic or a huge allocation later.
    pub fn validate(&self) -> Result<(), String> {
        let shape = &self.input_shape;
        let values = crate::size::checked_product(shape)
            .filter(|_| !shape.is_empty() && shape.iter().all(|&d| d >= 1));
        match values {
            Some(n) if n <= MAX_INPUT_VALUES => {}
            Some(n) => {
                return Err(format!(
                    "input_shape {shape:?} holds {n} values per example, more than the {MAX_INPUT_VALUES} a model may take"
                ))
            }
            None => {
                return Err(format!(
                    "input_shape {shape:?} is not a shape (every size at least 1, product below 2^64)"
                ))
            }
        }
        if self.outputs == 0 || self.outputs > MAX_OUTPUTS {
            return Err(format!(
                "outputs is {}; it must be between 1 and {MAX_OUTPUTS}",
                self.outputs
            ));
        }
        let task = &self.data.task;
        task.validate()?;
        let named = task.outputs();
        if named != 0 && named != self.outputs {
            return Err(format!(
                "data.task is {} ({named} outputs) but outputs is {}",
                task.describe(),
                self.outputs
            ));
        }
        let pre = &self.data.preprocessing;
        pre.validate()?;
        let expected = pre.input_shape();
        if expected != *shape {
            return Err(format!(
                "the preprocessing makes inputs of shape {expected:?} but input_shape is {shape:?}"
            ));
        }
        Ok(())
    }
}

/// Loads a model folder: reads `model.json`, rebuilds the network and loads its weights.
pub fn load_model(dir: &Path) -> Result<(ModelMeta, Network), ModelError> {
    let meta_path = dir.join("model.json");
    if !meta_path.exists() {
        return Err(ModelError::file(
            dir,
            "not a model folder: model.json is missing (train one with `modelsmith train --out DIR`)",
        ));
    }
    let text = std::fs::read_to_string(&meta_path)
        .map_err(|e| ModelError::file(&meta_path, format!("cannot read: {e}")))?;
    let meta: ModelMeta = serde_json::from_str(&text)
        .map_err(|e| ModelError::file(&meta_path, format!("invalid model.json: {e}")))?;
    meta.validate()
        .map_err(|e| ModelError::file(&meta_path, format!("invalid model.json: {e}")))?;
    if meta.format_version > MODEL_FORMAT_VERSION {
        return Err(ModelError::file(
            &meta_path,
            format!(
                "format version {} is newer than this modelsmith understands ({MODEL_FORMAT_VERSION}); upgrade modelsmith",
                meta.format_version
            ),
        ));
    }
    let mut net = build_network(&meta.spec, &meta.input_shape, meta.outputs, 0)
        .map_err(|e| ModelError::file(&meta_path, e.to_string()))?;
    let weights_path = dir.join("weights.safetensors");
    let bytes = std::fs::read(&weights_path)
        .map_err(|e| ModelError::file(&weights_path, format!("cannot read: {e}")))?;
    if let Some(expected) = &meta.weights_sha256 {
        if sha256_hex(&bytes) != *expected {
            return Err(ModelError::file(
                &weights_path,
                "does not match the model.json beside it (its SHA-256 differs: a save was cut short or another run wrote into this folder); train the model again",
            ));
        }
    }
    let tensors = parse_weights(&bytes, &weights_path)?;
    load_weights(&mut net, &tensors, &weights_path)?;
    Ok((meta, net))
}
