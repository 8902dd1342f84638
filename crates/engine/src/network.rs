//! `Network`: layers wired as a directed acyclic graph, run forward and backward in order.
//!
//! Activation slot 0 holds the network input; node `i` writes slot `i + 1`. A node names the slots
//! it reads, so a residual `Add` reads two. Nodes are pushed in topological order (a node may only
//! read slots written before it), which makes the forward pass a loop and the backward pass the
//! same loop reversed. All activation and gradient buffers live here and are reused every step.

use crate::{EngineError, Layer, Mode, Param, Tensor};
use std::time::{Duration, Instant};

pub struct Node {
    pub name: String,
    pub layer: Box<dyn Layer>,
    /// Activation slots this node reads (0 = network input, i + 1 = output of node i).
    pub inputs: Vec<usize>,
}

pub struct Network {
    input_shape: Vec<usize>,
    nodes: Vec<Node>,
    /// Per-example shape of each activation slot.
    shapes: Vec<Vec<usize>>,
    acts: Vec<Tensor>,
    grads: Vec<Tensor>,
    /// Accumulated (forward, backward) time per node while timing is on.
    timings: Option<Vec<(Duration, Duration)>>,
    /// Whether backward also computes the gradient with respect to the network's input (slot
    /// 0), which training never needs but explaining a prediction does.
    input_gradient: bool,
}

impl Network {
    /// A network reading examples of `input_shape` (no batch dimension; `[h, w, c]` for images).
    pub fn new(input_shape: &[usize]) -> Network {
        Network {
            input_shape: input_shape.to_vec(),
            nodes: Vec::new(),
            shapes: vec![input_shape.to_vec()],
            acts: vec![Tensor::default()],
            grads: vec![Tensor::default()],
            timings: None,
            input_gradient: false,
        }
    }

    /// Appends a node reading `inputs` (slot numbers) and returns the slot it writes. Checks that
    /// the shapes chain, naming the node when they don't.
    pub fn push(
        &mut self,
        name: impl Into<String>,
        layer: Box<dyn Layer>,
        inputs: &[usize],
    ) -> Result<usize, EngineError> {
        let name = name.into();
        let slot = self.shapes.len();
        if inputs.is_empty() {
            return Err(EngineError::Config(format!("layer '{name}' has no inputs")));
        }
        if let Some(bad) = inputs.iter().find(|&&i| i >= slot) {
            return Err(EngineError::Config(format!(
                "layer '{name}' reads slot {bad}, which is not computed before it"
            )));
        }
        if let Some(dup) = inputs
            .iter()
            .enumerate()
            .find(|(k, s)| inputs[..*k].contains(s))
        {
            return Err(EngineError::Config(format!(
                "layer '{name}' reads slot {} twice; add a layer that copies it instead",
                dup.1
            )));
        }
        let in_shapes: Vec<Vec<usize>> = inputs.iter().map(|&i| self.shapes[i].clone()).collect();
        let out_shape = layer
            .output_shape(&in_shapes)
            .map_err(|e| EngineError::Shape(format!("layer '{name}' ({}): {e}", layer.kind())))?;
        self.shapes.push(out_shape);
        self.acts.push(Tensor::default());
        self.grads.push(Tensor::default());
        if let Some(t) = &mut self.timings {
            t.push(Default::default());
        }
        self.nodes.push(Node {
            name,
            layer,
            inputs: inputs.to_vec(),
        });
        Ok(slot)
    }

    /// The slot written by the last node (the logits), or 0 for an empty network.
    pub fn output_slot(&self) -> usize {
        self.nodes.len()
    }

    pub fn input_shape(&self) -> &[usize] {
        &self.input_shape
    }

    pub fn output_shape(&self) -> &[usize] {
        &self.shapes[self.output_slot()]
    }

    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// Per-example shape of every slot (slot 0 = input).
    pub fn shapes(&self) -> &[Vec<usize>] {
        &self.shapes
    }

    /// Runs every node on `x` (`[batch, ..input_shape]`) and returns the output activation.
    pub fn forward(&mut self, x: &Tensor, mode: Mode) -> &Tensor {
        debug_assert_eq!(&x.shape[1..], &self.input_shape[..]);
        self.acts[0].clone_from(x);
        self.run_nodes(mode)
    }

    /// [`Network::forward`] on `batch` examples laid end to end in `x`, copied straight into the
    /// input slot: no tensor to build and no allocation once buffers have grown to the batch.
    pub fn forward_slice(&mut self, x: &[f32], batch: usize, mode: Mode) -> &Tensor {
        let per: usize = self.input_shape.iter().product();
        assert_eq!(x.len(), batch * per, "forward_slice: input length");
        let input = &mut self.acts[0];
        input.shape.clear();
        input.shape.push(batch);
        input.shape.extend_from_slice(&self.input_shape);
        input.data.clear();
        input.data.extend_from_slice(x);
        self.run_nodes(mode)
    }

    fn run_nodes(&mut self, mode: Mode) -> &Tensor {
        for (i, node) in self.nodes.iter_mut().enumerate() {
            // The output slot i + 1 is always after every input slot, so split there.
            let (before, after) = self.acts.split_at_mut(i + 1);
            let start = self.timings.is_some().then(Instant::now);
            if let [s] = node.inputs[..] {
                // The usual single input: no Vec to allocate per layer and call.
                node.layer.forward(&mut after[0], &[&before[s]], mode);
            } else {
                let inputs: Vec<&Tensor> = node.inputs.iter().map(|&s| &before[s]).collect();
                node.layer.forward(&mut after[0], &inputs, mode);
            }
            if let (Some(t), Some(start)) = (&mut self.timings, start) {
                t[i].0 += start.elapsed();
            }
        }
        &self.acts[self.output_slot()]
    }

    /// Back-propagates `dout` (gradient of the loss with respect to the output of the last
    /// forward pass) through every node, accumulating into parameter gradients. Call
    /// [`Network::zero_grads`] first unless accumulating over several batches is intended.
    pub fn backward(&mut self, dout: &Tensor) {
        let last = self.output_slot();
        let first = if self.input_gradient { 0 } else { 1 };
        for s in first..last {
            self.grads[s].resize(&self.acts[s].shape);
            self.grads[s].fill(0.0);
        }
        self.grads[last].clone_from(dout);
        for i in (0..self.nodes.len()).rev() {
            let node = &mut self.nodes[i];
            // Take the node's output gradient out so the input gradients can be borrowed mutably.
            let dout = std::mem::take(&mut self.grads[i + 1]);
            let (before, after) = self.acts.split_at(i + 1);
            let inputs: Vec<&Tensor> = node.inputs.iter().map(|&s| &before[s]).collect();
            let mut dinputs = borrow_grads(&mut self.grads, &node.inputs, self.input_gradient);
            let start = self.timings.is_some().then(Instant::now);
            node.layer.backward(&mut dinputs, &dout, &after[0], &inputs);
            if let (Some(t), Some(start)) = (&mut self.timings, start) {
                t[i].1 += start.elapsed();
            }
            drop(dinputs);
            self.grads[i + 1] = dout;
        }
    }

    /// Makes [`Network::backward`] also compute the gradient with respect to the input (read it
    /// with [`Network::gradient`]`(0)`). Off by default: training has no use for it.
    pub fn set_input_gradient(&mut self, on: bool) {
        self.input_gradient = on;
    }

    /// The activation in `slot` from the last forward pass (0 = the input, i + 1 = node i's
    /// output), batch first.
    pub fn activation(&self, slot: usize) -> &Tensor {
        &self.acts[slot]
    }

    /// The gradient with respect to `slot` from the last backward pass. Slot 0 is filled only
    /// while [`Network::set_input_gradient`] is on.
    pub fn gradient(&self, slot: usize) -> &Tensor {
        &self.grads[slot]
    }

    /// Turns per-node timing on (resetting the totals) or off. Costs two clock reads per node.
    pub fn set_timing(&mut self, on: bool) {
        self.timings = on.then(|| vec![Default::default(); self.nodes.len()]);
    }

    /// Accumulated `(node name, forward time, backward time)` since timing was turned on.
    pub fn timings(&self) -> Vec<(&str, Duration, Duration)> {
        match &self.timings {
            Some(t) => self
                .nodes
                .iter()
                .zip(t)
                .map(|(n, &(f, b))| (n.name.as_str(), f, b))
                .collect(),
            None => Vec::new(),
        }
    }

    /// Freezes (or thaws) every layer's parameters ([`Layer::set_frozen`]): backward then
    /// computes activation and input gradients only.
    pub fn set_frozen(&mut self, frozen: bool) {
        for node in &mut self.nodes {
            node.layer.set_frozen(frozen);
        }
    }

    /// Sets the optimizer step for stochastic layers (see [`Layer::set_training_step`]).
    pub fn set_training_step(&mut self, step: u64) {
        for node in &mut self.nodes {
            node.layer.set_training_step(step);
        }
    }

    /// Sets every parameter gradient to zero.
    pub fn zero_grads(&mut self) {
        for node in &mut self.nodes {
            for p in node.layer.params_mut() {
                p.grad.fill(0.0);
            }
        }
    }

    /// Parameters with their full names (`<node>.<param>`), in a fixed order.
    pub fn params(&self) -> Vec<(String, &Param)> {
        let mut out = Vec::new();
        for node in &self.nodes {
            for p in node.layer.params() {
                out.push((format!("{}.{}", node.name, p.name), p));
            }
        }
        out
    }

    /// The parameters without their names, in the same order: what an optimizer step needs,
    /// without formatting a name per parameter on every step.
    pub fn param_refs_mut(&mut self) -> Vec<&mut Param> {
        self.nodes
            .iter_mut()
            .flat_map(|node| node.layer.params_mut())
            .collect()
    }

    pub fn params_mut(&mut self) -> Vec<(String, &mut Param)> {
        let mut out = Vec::new();
        for node in &mut self.nodes {
            let name = &node.name;
            for p in node.layer.params_mut() {
                out.push((format!("{}.{}", name, p.name), p));
            }
        }
        out
    }

    /// Non-learned state (batch-norm running statistics) with full names.
    pub fn buffers(&self) -> Vec<(String, &Tensor)> {
        let mut out = Vec::new();
        for node in &self.nodes {
            for (n, t) in node.layer.buffers() {
                out.push((format!("{}.{}", node.name, n), t));
            }
        }
        out
    }

    pub fn buffers_mut(&mut self) -> Vec<(String, &mut Tensor)> {
        let mut out = Vec::new();
        for node in &mut self.nodes {
            let name = &node.name;
            for (n, t) in node.layer.buffers_mut() {
                out.push((format!("{}.{}", name, n), t));
            }
        }
        out
    }

    /// Number of learnable scalars.
    pub fn param_count(&self) -> usize {
        self.params().iter().map(|(_, p)| p.value.len()).sum()
    }

    /// Multiply-accumulates per example of one forward pass.
    pub fn macs_per_example(&self) -> u64 {
        self.nodes
            .iter()
            .map(|n| {
                let shapes: Vec<Vec<usize>> =
                    n.inputs.iter().map(|&s| self.shapes[s].clone()).collect();
                n.layer.macs_per_example(&shapes)
            })
            .sum()
    }
}

/// Mutable borrows of the gradient slots a node reads; slot 0 (the network input) gets `None`
/// unless `input` asks for its gradient. A node reading the same slot twice gets it once.
fn borrow_grads<'a>(
    grads: &'a mut [Tensor],
    slots: &[usize],
    input: bool,
) -> Vec<Option<&'a mut Tensor>> {
    let mut out: Vec<Option<&'a mut Tensor>> = slots.iter().map(|_| None).collect();
    let mut rest: &'a mut [Tensor] = grads;
    let mut offset = 0;
    // Hand out borrows in increasing slot order so each comes from a disjoint split.
    let mut order: Vec<usize> = (0..slots.len()).collect();
    order.sort_by_key(|&k| slots[k]);
    let mut last = None;
    for k in order {
        let s = slots[k];
        if (s == 0 && !input) || last == Some(s) {
            continue;
        }
        let (_, tail) = std::mem::take(&mut rest).split_at_mut(s - offset);
        let (head, tail) = tail.split_first_mut().expect("slot exists");
        out[k] = Some(head);
        rest = tail;
        offset = s + 1;
        last = Some(s);
    }
    out
}
