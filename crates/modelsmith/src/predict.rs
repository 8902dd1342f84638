//! Inference on new inputs: a loaded model plus its preprocessing. `modelsmith predict` and the
//! inference server share this path.

use std::path::Path;

use modelsmith_engine::{softmax, Mode, Network, Tensor};
use serde::Serialize;

use crate::model::{load_model, ModelMeta};
use crate::{Error, Result};

pub struct Predictor {
    pub meta: ModelMeta,
    net: Network,
    logits_buf: Tensor,
}

/// One input's top classes.
#[derive(Clone, Debug, Serialize)]
pub struct Prediction {
    pub input: String,
    pub class: String,
    pub class_index: usize,
    pub probability: f32,
    pub top: Vec<(String, f32)>,
}

impl Predictor {
    pub fn load(dir: &Path) -> Result<Predictor> {
        let (meta, net) = load_model(dir)?;
        Ok(Predictor {
            meta,
            net,
            logits_buf: Tensor::default(),
        })
    }

    /// Values per example the model expects.
    pub fn input_len(&self) -> usize {
        self.meta.input_shape.iter().product()
    }

    /// Class probabilities for each preprocessed input (`input_len()` values each).
    pub fn probabilities(&mut self, inputs: &[&[f32]]) -> Result<Vec<Vec<f32>>> {
        let len = self.input_len();
        if let Some((i, bad)) = inputs.iter().enumerate().find(|(_, v)| v.len() != len) {
            return Err(Error::Config(format!(
                "input {} has {} values, the model expects {len} (shape {:?})",
                i + 1,
                bad.len(),
                self.meta.input_shape
            )));
        }
        let mut shape = vec![inputs.len()];
        shape.extend_from_slice(&self.meta.input_shape);
        let mut values = Vec::with_capacity(inputs.len() * len);
        inputs.iter().for_each(|v| values.extend_from_slice(v));
        let x = Tensor::from_vec(&shape, values).expect("sizes checked");
        let logits = self.net.forward(&x, Mode::Eval);
        softmax(&mut self.logits_buf, logits);
        let classes = self.meta.num_classes;
        Ok(self
            .logits_buf
            .data
            .chunks(classes)
            .map(<[f32]>::to_vec)
            .collect())
    }

    /// Reads files (PNG/JPEG images, or CSV files with one example per row) into model inputs,
    /// each labelled for display (`file` or `file:row`).
    pub fn read_inputs(&self, paths: &[impl AsRef<Path>]) -> Result<Vec<(String, Vec<f32>)>> {
        let mut out = Vec::new();
        for path in paths {
            let path = path.as_ref();
            let ext = path
                .extension()
                .and_then(|e| e.to_str())
                .unwrap_or("")
                .to_ascii_lowercase();
            if ext == "csv" {
                let rows = self.meta.data.preprocessing.csv_rows_to_inputs(path)?;
                for (i, row) in rows.into_iter().enumerate() {
                    out.push((format!("{}:{}", path.display(), i + 1), row));
                }
            } else {
                let input = self.meta.data.preprocessing.load_image_file(path)?;
                out.push((path.display().to_string(), input));
            }
        }
        Ok(out)
    }

    /// Top-`k` predictions for labelled inputs.
    pub fn predict(&mut self, inputs: &[(String, Vec<f32>)], k: usize) -> Result<Vec<Prediction>> {
        let values: Vec<&[f32]> = inputs.iter().map(|(_, v)| v.as_slice()).collect();
        let probs = self.probabilities(&values)?;
        Ok(inputs
            .iter()
            .zip(probs)
            .map(|((label, _), p)| top_k(&self.meta, label, &p, k))
            .collect())
    }
}

/// The `k` most probable classes (at least one) of one input's class probabilities, named by the
/// model's class names. The server ranks probabilities computed in batches with this too.
pub fn top_k(meta: &ModelMeta, label: &str, probabilities: &[f32], k: usize) -> Prediction {
    let p = probabilities;
    let mut order: Vec<usize> = (0..p.len()).collect();
    order.sort_by(|&a, &b| p[b].total_cmp(&p[a]));
    let name = |i: usize| {
        meta.data
            .class_names
            .get(i)
            .cloned()
            .unwrap_or_else(|| i.to_string())
    };
    Prediction {
        input: label.to_string(),
        class: name(order[0]),
        class_index: order[0],
        probability: p[order[0]],
        top: order
            .iter()
            .take(k.max(1))
            .map(|&i| (name(i), p[i]))
            .collect(),
    }
}
