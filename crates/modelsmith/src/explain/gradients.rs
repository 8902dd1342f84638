//! [`Explainer`]: a trained network that reports an output's value and its gradient with respect
//! to the input, many inputs per engine pass.

use modelsmith_engine::{Mode, Network};

use crate::model::ModelMeta;
use crate::task::Task;
use crate::{Error, Result};

/// Rows per engine pass: large enough to keep both cores busy, small enough that the network's
/// activation buffers stay a few megabytes for a seed-sized CNN.
pub(crate) const ROWS_PER_PASS: usize = 256;

/// Which output an explanation is about: a class (its probability) or a regression target (its
/// value in the target's units).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExplainedOutput(pub usize);

impl ExplainedOutput {
    /// Reads `--target`: a class name, a target name, or an output index. Unknown → one line
    /// listing what the model has.
    pub fn parse(text: &str, task: &Task) -> Result<ExplainedOutput> {
        let names: Vec<&str> = match task {
            Task::Classification { classes } => classes.iter().map(String::as_str).collect(),
            Task::Regression { targets } => targets.iter().map(|t| t.name.as_str()).collect(),
        };
        if let Some(i) = names.iter().position(|n| *n == text) {
            return Ok(ExplainedOutput(i));
        }
        if let Ok(i) = text.parse::<usize>() {
            if i < names.len() {
                return Ok(ExplainedOutput(i));
            }
        }
        let what = if task.is_regression() {
            "target"
        } else {
            "class"
        };
        let mut shown: Vec<&str> = names.iter().copied().take(12).collect();
        if names.len() > shown.len() {
            shown.push("...");
        }
        Err(Error::Config(format!(
            "target '{text}': the model has no {what} of that name or index (it has {})",
            shown.join(", ")
        )))
    }
}

/// A loaded model ready to explain: its network (run in `Mode::Explain`, so max pooling keeps
/// its winners for the backward pass) and what its outputs mean.
pub struct Explainer {
    pub meta: ModelMeta,
    net: Network,
    /// Every output of the inputs [`Explainer::values`] was asked about, reused between calls.
    outputs_buf: Vec<f32>,
    dlogits: modelsmith_engine::Tensor,
}

impl Explainer {
    pub fn new(meta: ModelMeta, mut net: Network) -> Explainer {
        // Only the input's gradient is wanted: no parameter gradients, no im2col for them.
        net.set_input_gradient(true);
        net.set_frozen(true);
        Explainer {
            meta,
            net,
            outputs_buf: Vec::new(),
            dlogits: modelsmith_engine::Tensor::default(),
        }
    }

    pub fn load(dir: &std::path::Path) -> Result<Explainer> {
        let (meta, net) = crate::model::load_model(dir)?;
        Ok(Explainer::new(meta, net))
    }

    pub fn task(&self) -> &Task {
        &self.meta.data.task
    }

    /// Values per input.
    pub fn input_len(&self) -> usize {
        self.meta.input_shape.iter().product()
    }

    pub fn outputs(&self) -> usize {
        self.meta.outputs
    }

    pub(crate) fn network(&self) -> &Network {
        &self.net
    }

    /// The network, e.g. to turn on per-layer timing ([`Network::set_timing`]).
    pub fn network_mut(&mut self) -> &mut Network {
        &mut self.net
    }

    /// Checks that `target` is one of the model's outputs.
    pub fn check_target(&self, target: ExplainedOutput) -> Result<()> {
        if target.0 >= self.outputs() {
            return Err(Error::Config(format!(
                "output {} does not exist: the model has {} outputs",
                target.0,
                self.outputs()
            )));
        }
        Ok(())
    }

    /// The most probable class (classification) or the first target (regression) of each input:
    /// what an explanation is about when the user names no target.
    pub fn default_targets(&mut self, x: &[f32]) -> Vec<ExplainedOutput> {
        match self.task() {
            Task::Regression { .. } => vec![ExplainedOutput(0); x.len() / self.input_len()],
            Task::Classification { .. } => {
                let k = self.outputs();
                let mut probs = Vec::new();
                self.all_outputs(x, &mut probs);
                probs
                    .chunks_exact(k)
                    .map(|row| {
                        let best = (0..k)
                            .max_by(|&a, &b| row[a].total_cmp(&row[b]))
                            .unwrap_or(0);
                        ExplainedOutput(best)
                    })
                    .collect()
            }
        }
    }

    /// Every output (probabilities or values in target units) of each input in `x`.
    pub fn all_outputs(&mut self, x: &[f32], out: &mut Vec<f32>) {
        let (len, k) = (self.input_len(), self.outputs());
        let n = x.len() / len;
        out.clear();
        out.resize(n * k, 0.0);
        for (xs, os) in x
            .chunks(ROWS_PER_PASS * len)
            .zip(out.chunks_mut(ROWS_PER_PASS * k))
        {
            let logits = self.net.forward_slice(xs, xs.len() / len, Mode::Eval);
            self.meta.data.task.decode_into(os, &logits.data);
        }
    }

    /// The explained output `f` of each input in `x` (`targets[i]` for input `i`), into `values`.
    pub fn values(&mut self, x: &[f32], targets: &[ExplainedOutput], values: &mut Vec<f32>) {
        let (len, k) = (self.input_len(), self.outputs());
        let mut all = std::mem::take(&mut self.outputs_buf);
        self.all_outputs(x, &mut all);
        values.clear();
        values.extend(all.chunks_exact(k).zip(targets).map(|(row, t)| row[t.0]));
        debug_assert_eq!(values.len(), x.len() / len);
        self.outputs_buf = all;
    }

    /// `f` of each input in `x` and its gradient with respect to the input, into `values` (one
    /// per input) and `grads` (as long as `x`). `targets[i]` names input `i`'s output.
    pub fn value_and_gradient(
        &mut self,
        x: &[f32],
        targets: &[ExplainedOutput],
        values: &mut Vec<f32>,
        grads: &mut Vec<f32>,
    ) {
        let len = self.input_len();
        let n = x.len() / len;
        assert_eq!(targets.len(), n, "one target per input");
        values.clear();
        grads.clear();
        grads.reserve(x.len());
        for (chunk, ts) in x
            .chunks(ROWS_PER_PASS * len)
            .zip(targets.chunks(ROWS_PER_PASS))
        {
            self.forward_backward(chunk, ts, values);
            grads.extend_from_slice(&self.net.gradient(0).data);
        }
    }

    /// Runs forward (`Mode::Explain`) and backward for `x` and hands `visit` the network, whose
    /// activations and gradients at every slot are then those of `x` (what Grad-CAM reads).
    pub(crate) fn with_gradients<R>(
        &mut self,
        x: &[f32],
        targets: &[ExplainedOutput],
        visit: impl FnOnce(&Network) -> R,
    ) -> R {
        self.forward_backward(x, targets, &mut Vec::new());
        visit(&self.net)
    }

    /// One engine pass over the inputs in `x`: forward, the explained outputs (appended to
    /// `values`) and their gradient, backward to the input.
    fn forward_backward(&mut self, x: &[f32], targets: &[ExplainedOutput], values: &mut Vec<f32>) {
        let rows = x.len() / self.input_len();
        let k = self.outputs();
        let logits = self.net.forward_slice(x, rows, Mode::Explain);
        self.dlogits.resize(&logits.shape);
        output_gradient(
            &self.meta.data.task,
            &logits.data,
            targets,
            k,
            values,
            &mut self.dlogits.data,
        );
        self.net.backward(&self.dlogits);
    }
}

/// From raw network outputs, the explained value of each row and its gradient with respect to the
/// outputs. A class's probability `p_t = softmax(z)_t` has `∂p_t/∂z_j = p_t (δ_tj - p_j)`; a
/// target's value `mean + std·z_t` has `∂/∂z_j = std δ_tj`.
fn output_gradient(
    task: &Task,
    logits: &[f32],
    targets: &[ExplainedOutput],
    k: usize,
    values: &mut Vec<f32>,
    dlogits: &mut [f32],
) {
    dlogits.fill(0.0);
    for ((z, dz), t) in logits
        .chunks_exact(k)
        .zip(dlogits.chunks_exact_mut(k))
        .zip(targets)
    {
        match task {
            Task::Classification { .. } => {
                let mut p = vec![0f32; k];
                modelsmith_engine::softmax_rows(&mut p, z, k);
                let pt = p[t.0];
                for j in 0..k {
                    dz[j] = -pt * p[j];
                }
                // p_t (1 - p_t) with 1 - p_t summed from the other classes: a confident
                // prediction's 1 - p_t cancels to a few bits in f32.
                let rest: f32 = (0..k).filter(|&j| j != t.0).map(|j| p[j]).sum();
                dz[t.0] = pt * rest;
                values.push(pt);
            }
            Task::Regression { targets: scales } => {
                let s = &scales[t.0];
                dz[t.0] = s.std as f32;
                values.push(s.to_units(z[t.0]));
            }
        }
    }
}
