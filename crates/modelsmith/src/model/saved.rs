//! The saved model folder: `model.json` (spec, input shape, classes, preprocessing, metrics and
//! the training configuration) beside `weights.safetensors`. `evaluate`, `predict`, export and the
//! server all start from this folder.

use std::path::Path;

use modelsmith_engine::Network;
use serde::{Deserialize, Serialize};

use super::weights::{load_weights, read_weights_file, write_atomic, write_weights_file};
use super::{build_network, ModelError, ModelSpec};
use crate::data::DataInfo;

/// Bumped when `model.json` changes incompatibly.
pub const MODEL_FORMAT_VERSION: u32 = 1;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ModelMeta {
    pub format_version: u32,
    pub spec: ModelSpec,
    /// Per-example input shape: `[h, w, c]` for images, `[features]` for tables.
    pub input_shape: Vec<usize>,
    pub num_classes: usize,
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
}

pub fn save_model(dir: &Path, meta: &ModelMeta, net: &Network) -> Result<(), ModelError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| ModelError::file(dir, format!("cannot create folder: {e}")))?;
    let json = serde_json::to_vec_pretty(meta).expect("model metadata serializes");
    write_atomic(&dir.join("model.json"), &json)?;
    write_weights_file(&dir.join("weights.safetensors"), net, &[])
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
    if meta.format_version > MODEL_FORMAT_VERSION {
        return Err(ModelError::file(
            &meta_path,
            format!(
                "format version {} is newer than this modelsmith understands ({MODEL_FORMAT_VERSION}); upgrade modelsmith",
                meta.format_version
            ),
        ));
    }
    let mut net = build_network(&meta.spec, &meta.input_shape, meta.num_classes, 0)
        .map_err(|e| ModelError::file(&meta_path, e.to_string()))?;
    let weights_path = dir.join("weights.safetensors");
    let tensors = read_weights_file(&weights_path)?;
    load_weights(&mut net, &tensors, &weights_path)?;
    Ok((meta, net))
}
