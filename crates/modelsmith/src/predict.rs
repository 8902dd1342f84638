//! Inference on new inputs: a loaded model plus its preprocessing. `modelsmith predict` and the
//! inference server share this path. What an output means is the model's task's: class
//! probabilities, or values in the targets' units ([`crate::task::Task::decode_into`]).

use std::path::Path;

use modelsmith_engine::{Mode, Network};
use serde::Serialize;

use crate::data::Preprocessing;
use crate::model::{load_model, ModelMeta};
use crate::{Error, Result};

pub struct Predictor {
    pub meta: ModelMeta,
    net: Network,
    /// The inputs of [`Predictor::outputs`] laid end to end, reused between calls.
    batch_buf: Vec<f32>,
    /// The GPU copy of the network after [`Predictor::use_device`] chose one.
    #[cfg(feature = "cuda")]
    gpu: Option<GpuPredictor>,
}

/// A network on the GPU with the buffers one inference reuses.
#[cfg(feature = "cuda")]
struct GpuPredictor {
    net: modelsmith_engine::cuda::CudaNetwork,
    labels: Vec<u32>,
    logits: Vec<f32>,
}

/// One input's answer: its top classes, or its predicted values.
#[derive(Clone, Debug, Serialize)]
pub struct Prediction {
    pub input: String,
    #[serde(flatten)]
    pub answer: Answer,
}

/// What a model answers for one input, by task.
#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
pub enum Answer {
    /// The most probable class and the `k` most probable with their probabilities.
    Class {
        class: String,
        class_index: usize,
        probability: f32,
        top: Vec<(String, f32)>,
    },
    /// Each target's predicted value, in its own units, by target name.
    Values { values: Vec<(String, f32)> },
}

impl Predictor {
    pub fn load(dir: &Path) -> Result<Predictor> {
        let (meta, net) = load_model(dir)?;
        Ok(Predictor {
            meta,
            net,
            batch_buf: Vec::new(),
            #[cfg(feature = "cuda")]
            gpu: None,
        })
    }

    /// Runs inference on `device` from now on (`auto` is resolved here, quietly). A GPU that is
    /// not usable is an [`Error::Config`] naming what is missing.
    pub fn use_device(&mut self, device: crate::train::Device) -> Result<()> {
        let (device, _) = device.resolve()?;
        match device {
            #[cfg(feature = "cuda")]
            crate::train::Device::Cuda(n) => {
                let optimizer = modelsmith_engine::optim::OptimizerConfig::sgd();
                let net = modelsmith_engine::cuda::CudaNetwork::new(n, &self.net, optimizer, 32)
                    .map_err(|e| Error::Config(format!("GPU: {e}")))?;
                self.gpu = Some(GpuPredictor {
                    net,
                    labels: Vec::new(),
                    logits: Vec::new(),
                });
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// The network itself, e.g. to turn on per-layer timing ([`Network::set_timing`]).
    pub fn network_mut(&mut self) -> &mut Network {
        &mut self.net
    }

    /// Values per example the model expects.
    pub fn input_len(&self) -> usize {
        self.meta.input_shape.iter().product()
    }

    /// Values per answer: classes, or regression targets.
    pub fn output_len(&self) -> usize {
        self.meta.outputs
    }

    /// The answer for each preprocessed input (`input_len()` values each): class probabilities,
    /// or values in the targets' units.
    pub fn outputs(&mut self, inputs: &[&[f32]]) -> Result<Vec<Vec<f32>>> {
        let len = self.input_len();
        if let Some((i, bad)) = inputs.iter().enumerate().find(|(_, v)| v.len() != len) {
            return Err(Error::Config(format!(
                "input {} has {} values, the model expects {len} (shape {:?})",
                i + 1,
                bad.len(),
                self.meta.input_shape
            )));
        }
        let mut batch = std::mem::take(&mut self.batch_buf);
        batch.clear();
        inputs.iter().for_each(|v| batch.extend_from_slice(v));
        let classes = self.output_len();
        let mut out = vec![0f32; inputs.len() * classes];
        let result = self.outputs_into(&batch, &mut out);
        self.batch_buf = batch;
        result?;
        Ok(out.chunks(classes).map(<[f32]>::to_vec).collect())
    }

    /// The answers for a batch of preprocessed inputs laid end to end (`batch.len()` a multiple
    /// of `input_len()`), written to `out` (`output_len()` values per input). Allocates nothing
    /// once the network has seen a batch this large: the path for servers and loops.
    pub fn outputs_into(&mut self, batch: &[f32], out: &mut [f32]) -> Result<()> {
        let (len, classes) = (self.input_len(), self.output_len());
        if len == 0 || !batch.len().is_multiple_of(len) {
            return Err(Error::Config(format!(
                "a batch of {} values is not a whole number of inputs of {len} values (shape {:?})",
                batch.len(),
                self.meta.input_shape
            )));
        }
        let n = batch.len() / len;
        if out.len() != n * classes {
            return Err(Error::Config(format!(
                "output buffer holds {} values, {n} inputs of {classes} outputs need {}",
                out.len(),
                n * classes
            )));
        }
        // Each kernel splits the batch across the pool (work-stealing, so a busy core's share is
        // picked up by the other) or, for one input, stays on this thread. Measured against
        // running the batch in halves on two network copies: 2.5x more images/s at batch 32
        // with the machine loaded, where waiting for one particular thread is what costs.
        #[cfg(feature = "cuda")]
        if let Some(gpu) = &mut self.gpu {
            gpu.labels.resize(n, 0);
            gpu.logits.resize(n * classes, 0.0);
            let net = &mut gpu.net;
            net.load_batch(batch, &gpu.labels)
                .and_then(|()| net.forward(Mode::Eval))
                .and_then(|()| net.output_into(&mut gpu.logits))
                .map_err(|e| Error::Config(format!("GPU inference: {e}")))?;
            self.meta.data.task.decode_into(out, &gpu.logits);
            return Ok(());
        }
        let logits = self.net.forward_slice(batch, n, Mode::Eval);
        self.meta.data.task.decode_into(out, &logits.data);
        Ok(())
    }

    /// Reads files into model inputs: see [`read_inputs`].
    pub fn read_inputs(&self, paths: &[impl AsRef<Path>]) -> Result<Vec<(String, Vec<f32>)>> {
        read_inputs(&self.meta.data.preprocessing, paths)
    }

    /// Predictions for labelled inputs (the top `k` classes, or the values).
    pub fn predict(&mut self, inputs: &[(String, Vec<f32>)], k: usize) -> Result<Vec<Prediction>> {
        let values: Vec<&[f32]> = inputs.iter().map(|(_, v)| v.as_slice()).collect();
        let outputs = self.outputs(&values)?;
        Ok(inputs
            .iter()
            .zip(outputs)
            .map(|((label, _), o)| Prediction {
                input: label.clone(),
                answer: answer(&self.meta, &o, k),
            })
            .collect())
    }
}

/// Reads files (PNG/JPEG images, or CSV files with one example per row) into model inputs with
/// a model's preprocessing, each labelled for display (`file` or `file:row`).
pub fn read_inputs(
    preprocessing: &Preprocessing,
    paths: &[impl AsRef<Path>],
) -> Result<Vec<(String, Vec<f32>)>> {
    let mut out = Vec::new();
    for path in paths {
        let path = path.as_ref();
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        if ext == "csv" {
            let rows = preprocessing.csv_rows_to_inputs(path)?;
            for (i, row) in rows.into_iter().enumerate() {
                out.push((format!("{}:{}", path.display(), i + 1), row));
            }
        } else {
            let input = preprocessing.load_image_file(path)?;
            out.push((path.display().to_string(), input));
        }
    }
    Ok(out)
}

/// One input's answer from its outputs: the `k` most probable classes (at least one), named by
/// the model's class names; or each target's value. The server answers through this too.
pub fn answer(meta: &ModelMeta, outputs: &[f32], k: usize) -> Answer {
    let task = &meta.data.task;
    if task.is_regression() {
        return Answer::Values {
            values: task
                .targets()
                .iter()
                .zip(outputs)
                .map(|(t, &v)| (t.name.clone(), v))
                .collect(),
        };
    }
    let p = outputs;
    let mut order: Vec<usize> = (0..p.len()).collect();
    order.sort_by(|&a, &b| p[b].total_cmp(&p[a]));
    let name = |i: usize| {
        task.class_names()
            .get(i)
            .cloned()
            .unwrap_or_else(|| i.to_string())
    };
    Answer::Class {
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
