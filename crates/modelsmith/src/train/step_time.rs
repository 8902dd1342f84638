//! How long a training step of a model takes on this machine: a few timed steps after a
//! warm-up one. An architecture search sizes its budget and its final training by it.

use std::time::Instant;

use modelsmith_engine::{Mode, Network, Optimizer, OptimizerConfig, Tensor};

use crate::data::Dataset;
use crate::model::{build_network, ModelSpec};
use crate::Result;

/// Examples per timed step.
const BATCH: usize = 32;
/// Timed steps after the warm-up step.
const TIMED: usize = 8;

/// Seconds per training example of `spec` (ending in `outputs` values) on examples of `data`
/// at batch 32 with Adam, measured over a few steps after a warm-up one.
pub fn seconds_per_example(spec: &ModelSpec, data: &Dataset, outputs: usize) -> Result<f64> {
    let mut net = build_network(spec, &data.shape, outputs, 0)?;
    let mut optimizer = Optimizer::new(OptimizerConfig::adam());
    let n = data.len().min(BATCH);
    let indices: Vec<usize> = (0..n).collect();
    let (mut x, mut labels) = (Vec::new(), Vec::new());
    data.gather(&indices, &mut x, &mut labels);
    let mut shape = vec![n];
    shape.extend_from_slice(&data.shape);
    let x = Tensor::from_vec(&shape, x).map_err(|e| crate::Error::Config(e.to_string()))?;
    let mut dlogits = Tensor::default();
    let mut step = |net: &mut Network| {
        net.zero_grads();
        let logits = net.forward(&x, Mode::Train);
        // Any output gradient costs the same backward pass, whatever the task's loss.
        dlogits.resize(&logits.shape);
        dlogits.data.fill(1e-3);
        net.backward(&dlogits);
        let _ = optimizer.step(&mut net.param_refs_mut(), 1e-3);
    };
    step(&mut net);
    let start = Instant::now();
    for _ in 0..TIMED {
        step(&mut net);
    }
    Ok(start.elapsed().as_secs_f64() / (TIMED * n.max(1)) as f64)
}
