//! `CudaNetwork`: a whole [`Network`] executed on one GPU stream, with weights, gradients,
//! activations and optimizer state resident on the device.
//!
//! Built from the host network (each node's [`Layer::describe`], its weights and running
//! statistics); a training step is gather → forward → loss → backward → clip → update without a
//! host round trip. The loss and accuracy accumulate on the device and are read when the caller
//! asks ([`CudaNetwork::take_metrics`]). Weights go back to the host network for checkpoints,
//! evaluation on the CPU and export ([`CudaNetwork::copy_to_host`]).
//!
//! [`Layer::describe`]: crate::Layer::describe

use super::buffer::GpuBuf;
use super::data::DeviceDataset;
use super::device::{DeviceInfo, GpuDevice};
use super::error::Result;
use super::kernels::Arg;
use super::layers::{GpuLayer, ParamBase, Scratch};
use super::optim::GpuOptimizer;
use super::reduce::Partials;
use crate::optim::{OptimizerConfig, OptimizerState};
use crate::{EngineError, Mode, Network};

/// Loss and accuracy accumulated on the device since the last read.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StepMetrics {
    /// Σ per-example cross-entropy.
    pub loss_sum: f64,
    pub correct: f64,
    pub seen: f64,
    /// The first step whose mean loss was not finite, with that loss.
    pub diverged: Option<(u64, f32)>,
}

pub struct CudaNetwork {
    dev: GpuDevice,
    layers: Vec<GpuLayer>,
    /// Slots each node reads (0 = input, i + 1 = node i's output).
    node_inputs: Vec<Vec<usize>>,
    /// Per-example length of each slot.
    slot_len: Vec<usize>,
    input_shape: Vec<usize>,
    num_classes: usize,
    capacity: usize,
    acts: Vec<GpuBuf<f32>>,
    /// Gradient of each slot; slot 0 only with `keep_input_grad`.
    grads: Vec<Option<GpuBuf<f32>>>,
    keep_input_grad: bool,
    params: GpuBuf<f32>,
    param_grads: GpuBuf<f32>,
    /// (offset, length) of every parameter in `Network::param_refs_mut` order.
    layout: Vec<(usize, usize)>,
    param_len: usize,
    scratch: Scratch,
    optimizer: GpuOptimizer,
    labels: GpuBuf<u32>,
    row_loss: GpuBuf<f32>,
    row_correct: GpuBuf<f32>,
    /// [Σ loss, Σ correct, seen] since the last `take_metrics`.
    totals: GpuBuf<f64>,
    /// [first non-finite step or -1, its loss].
    bad: GpuBuf<f64>,
    /// The batch size of the last forward pass.
    batch: usize,
}

impl CudaNetwork {
    /// Mirrors `net` on GPU `ordinal` for batches of up to `capacity` (more later reallocates),
    /// with `optimizer` for [`CudaNetwork::step`]. Fails with a clear [`EngineError::Device`]
    /// when no usable GPU is there or a layer has no GPU form.
    pub fn new(
        ordinal: usize,
        net: &Network,
        optimizer: OptimizerConfig,
        capacity: usize,
    ) -> Result<CudaNetwork> {
        let dev = GpuDevice::open(ordinal)?;
        let shapes = net.shapes();
        let mut layers = Vec::new();
        let mut node_inputs = Vec::new();
        let mut layout = Vec::new();
        let mut host_params = Vec::new();
        for (i, node) in net.nodes().iter().enumerate() {
            let in_shapes = node.inputs.iter().map(|&s| shapes[s].clone()).collect();
            let mut layer = GpuLayer::new(
                &dev,
                &node.name,
                &node.layer.describe(),
                in_shapes,
                shapes[i + 1].clone(),
            )?;
            for p in node.layer.params() {
                layer.param_offsets.push(host_params.len());
                layout.push((host_params.len(), p.value.len()));
                host_params.extend_from_slice(&p.value.data);
            }
            layers.push(layer);
            node_inputs.push(node.inputs.clone());
        }
        let param_len = host_params.len();
        let s = &dev.stream;
        let params = GpuBuf::from_host(s, &host_params, "the weights")?;
        let param_grads = GpuBuf::zeros(s, param_len, "the weight gradients")?;
        let max_channels = layers
            .iter()
            .map(|l| l.reduce_channels())
            .max()
            .unwrap_or(1);
        let scratch = Scratch {
            dz: GpuBuf::zeros(s, 1, "scratch")?,
            dpad: GpuBuf::zeros(s, 1, "scratch")?,
            partials: Partials::new(&dev, max_channels.max(1))?,
            workspace: GpuBuf::zeros(s, 1, "cuDNN workspace")?,
        };
        let optimizer = GpuOptimizer::new(&dev, optimizer, param_len)?;
        let num_classes = net.output_shape().iter().product();
        let mut gpu = CudaNetwork {
            labels: GpuBuf::zeros(s, 1, "labels")?,
            row_loss: GpuBuf::zeros(s, 1, "losses")?,
            row_correct: GpuBuf::zeros(s, 1, "losses")?,
            totals: GpuBuf::zeros(s, 3, "metrics")?,
            bad: GpuBuf::from_host(s, &[-1.0, 0.0], "metrics")?,
            dev,
            layers,
            node_inputs,
            slot_len: shapes.iter().map(|s| s.iter().product()).collect(),
            input_shape: net.input_shape().to_vec(),
            num_classes,
            capacity: 0,
            acts: Vec::new(),
            grads: Vec::new(),
            keep_input_grad: false,
            params,
            param_grads,
            layout,
            param_len,
            scratch,
            optimizer,
            batch: 0,
        };
        gpu.copy_buffers_from_host(net)?;
        gpu.reserve(capacity.max(1))?;
        Ok(gpu)
    }

    /// Also computes the gradient of the network's input (tests compare it with the CPU's).
    pub fn keep_input_grad(&mut self) -> Result<()> {
        self.keep_input_grad = true;
        let cap = self.capacity;
        self.capacity = 0;
        self.reserve(cap)
    }

    pub fn device(&self) -> &DeviceInfo {
        self.dev.info()
    }

    pub fn input_shape(&self) -> &[usize] {
        &self.input_shape
    }

    /// Allocates every per-batch buffer for batches of up to `capacity` (no-op when they fit).
    pub fn reserve(&mut self, capacity: usize) -> Result<()> {
        if capacity <= self.capacity {
            return Ok(());
        }
        let s = self.dev.stream.clone();
        self.acts = (0..self.slot_len.len())
            .map(|i| GpuBuf::zeros(&s, capacity * self.slot_len[i], "activations"))
            .collect::<Result<_>>()?;
        self.grads = (0..self.slot_len.len())
            .map(|i| {
                (i > 0 || self.keep_input_grad)
                    .then(|| GpuBuf::zeros(&s, capacity * self.slot_len[i], "gradients"))
                    .transpose()
            })
            .collect::<Result<_>>()?;
        let (mut dz, mut dpad) = (1, 1);
        for layer in &mut self.layers {
            layer.reserve(&self.dev, capacity)?;
            let (a, b) = layer.scratch_per_example();
            dz = dz.max(a);
            dpad = dpad.max(b);
        }
        self.scratch.dz = GpuBuf::zeros(&s, capacity * dz, "scratch")?;
        self.scratch.dpad = GpuBuf::zeros(&s, capacity * dpad, "scratch")?;
        self.labels = GpuBuf::zeros(&s, capacity, "labels")?;
        self.row_loss = GpuBuf::zeros(&s, capacity, "losses")?;
        self.row_correct = GpuBuf::zeros(&s, capacity, "losses")?;
        self.capacity = capacity;
        Ok(())
    }

    /// Builds the cuDNN plans for batch `n` and grows the shared workspace to fit them.
    fn prepare(&mut self, n: usize) -> Result<()> {
        self.reserve(n)?;
        let mut need = 0;
        for layer in &mut self.layers {
            need = need.max(layer.prepare(&self.dev, n)?);
        }
        if need > self.scratch.workspace.len() {
            self.scratch.workspace = GpuBuf::zeros(&self.dev.stream, need, "cuDNN workspace")?;
        }
        Ok(())
    }

    fn param_base(&self) -> ParamBase {
        ParamBase {
            values: self.params.ptr(),
            grads: self.param_grads.ptr(),
        }
    }

    /// Copies a host batch (`n` examples of the input shape) and its labels to the device.
    pub fn load_batch(&mut self, x: &[f32], labels: &[u32]) -> Result<()> {
        let n = labels.len();
        if x.len() != n * self.slot_len[0] {
            return Err(EngineError::Shape(format!(
                "batch of {n} labels needs {} input values, got {}",
                n * self.slot_len[0],
                x.len()
            )));
        }
        self.reserve(n)?;
        self.acts[0].upload(&self.dev.stream, x, "the batch")?;
        self.labels.upload(&self.dev.stream, labels, "the labels")?;
        self.batch = n;
        Ok(())
    }

    /// Gathers batch `n` examples from `data` at positions `offset..offset + n` of its current
    /// order (see [`DeviceDataset::set_order`]) into the input slot, on the device.
    pub fn gather_batch(&mut self, data: &DeviceDataset, offset: usize, n: usize) -> Result<()> {
        if data.per_example() != self.slot_len[0] || offset + n > data.len() {
            return Err(EngineError::Shape(format!(
                "gather: {n} examples at {offset} of a data set of {} x {} values for an input of {}",
                data.len(),
                data.per_example(),
                self.slot_len[0]
            )));
        }
        self.reserve(n)?;
        data.gather(&self.dev, self.acts[0].ptr(), self.labels.ptr(), offset, n)?;
        self.batch = n;
        Ok(())
    }

    /// Uploads a data set to this network's device for [`CudaNetwork::gather_batch`] and
    /// [`CudaNetwork::evaluate`].
    pub fn upload_dataset(&self, x: &[f32], labels: &[u32]) -> Result<DeviceDataset> {
        DeviceDataset::new(&self.dev, x, labels, self.slot_len[0])
    }

    pub fn set_training_step(&mut self, step: u64) {
        for layer in &mut self.layers {
            layer.set_training_step(step);
        }
    }

    /// Runs every node on the loaded batch.
    pub fn forward(&mut self, mode: Mode) -> Result<()> {
        let n = self.batch;
        self.prepare(n)?;
        let p = self.param_base();
        for i in 0..self.layers.len() {
            let inputs: Vec<u64> = self.node_inputs[i]
                .iter()
                .map(|&s| self.acts[s].ptr())
                .collect();
            let out = self.acts[i + 1].ptr();
            self.layers[i].forward(&self.dev, &self.scratch, p, out, &inputs, n, mode)?;
        }
        Ok(())
    }

    /// Softmax cross-entropy of the last forward pass against the loaded labels: writes the
    /// output gradient and adds the batch's loss and hits to the device totals (`step` names the
    /// batch if its loss is not finite).
    pub fn loss(&mut self, step: u64) -> Result<()> {
        let n = self.batch;
        let last = self.layers.len();
        let dlogits = self.grads[last].as_ref().expect("output gradient").ptr();
        self.dev.launch_n(
            "softmax_xent",
            n,
            &[
                Arg::Ptr(dlogits),
                Arg::Ptr(self.row_loss.ptr()),
                Arg::Ptr(self.row_correct.ptr()),
                Arg::Ptr(self.acts[last].ptr()),
                Arg::Ptr(self.labels.ptr()),
                Arg::I32(n as i32),
                Arg::I32(self.num_classes as i32),
                Arg::F32(1.0 / n as f32),
            ],
        )?;
        let one_block = cudarc::driver::LaunchConfig {
            grid_dim: (1, 1, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        self.dev.kernels.launch(
            &self.dev.stream,
            "accumulate_metrics",
            one_block,
            &[
                Arg::Ptr(self.totals.ptr()),
                Arg::Ptr(self.bad.ptr()),
                Arg::Ptr(self.row_loss.ptr()),
                Arg::Ptr(self.row_correct.ptr()),
                Arg::I32(n as i32),
                Arg::I64(step as i64),
            ],
        )
    }

    /// Back-propagates the output gradient (from [`CudaNetwork::loss`] or
    /// [`CudaNetwork::set_output_grad`]) through every node into freshly zeroed gradients.
    pub fn backward(&mut self) -> Result<()> {
        let n = self.batch;
        let last = self.layers.len();
        let s = self.dev.stream.clone();
        self.param_grads.zero(&s, self.param_len)?;
        for (slot, g) in self.grads.iter_mut().enumerate() {
            if let (true, Some(g)) = (slot < last, g) {
                g.zero(&s, n * self.slot_len[slot])?;
            }
        }
        let p = self.param_base();
        for i in (0..self.layers.len()).rev() {
            let inputs: Vec<u64> = self.node_inputs[i]
                .iter()
                .map(|&s| self.acts[s].ptr())
                .collect();
            let dinputs: Vec<Option<u64>> = self.node_inputs[i]
                .iter()
                .map(|&s| self.grads[s].as_ref().map(|g| g.ptr()))
                .collect();
            let dout = self.grads[i + 1].as_ref().expect("node gradient").ptr();
            let out = self.acts[i + 1].ptr();
            self.layers[i].backward(
                &self.dev,
                &self.scratch,
                p,
                &dinputs,
                dout,
                out,
                &inputs,
                n,
            )?;
        }
        Ok(())
    }

    /// Clips (value, then global norm, as the CPU trainer does) and applies one optimizer
    /// update with learning rate `lr`.
    pub fn update(
        &mut self,
        lr: f32,
        clip_value: Option<f32>,
        clip_norm: Option<f32>,
    ) -> Result<()> {
        let (w, g) = (self.params.ptr(), self.param_grads.ptr());
        if let Some(v) = clip_value {
            self.optimizer.clip_value(&self.dev, g, v)?;
        }
        if let Some(max) = clip_norm {
            self.optimizer.clip_norm(&self.dev, g, max)?;
        }
        self.optimizer.step(&self.dev, w, g, lr)
    }

    /// One whole training step on the loaded batch: forward, loss, backward, clip, update.
    pub fn train_step(
        &mut self,
        step: u64,
        lr: f32,
        clip_value: Option<f32>,
        clip_norm: Option<f32>,
    ) -> Result<()> {
        self.set_training_step(step);
        self.forward(Mode::Train)?;
        self.loss(step)?;
        self.backward()?;
        self.update(lr, clip_value, clip_norm)
    }

    /// Reads and resets the loss/accuracy totals (waits for the stream).
    pub fn take_metrics(&mut self) -> Result<StepMetrics> {
        let s = self.dev.stream.clone();
        let t = self.totals.to_vec(&s, 3, "the training loss")?;
        let bad = self.bad.to_vec(&s, 2, "the training loss")?;
        self.totals.upload(&s, &[0.0; 3], "metrics")?;
        Ok(StepMetrics {
            loss_sum: t[0],
            correct: t[1],
            seen: t[2],
            diverged: (bad[0] >= 0.0).then(|| (bad[0] as u64, bad[1] as f32)),
        })
    }

    /// Mean loss and accuracy on `data` in inference mode, in batches of up to `batch`.
    pub fn evaluate(&mut self, data: &mut DeviceDataset, batch: usize) -> Result<(f32, f32)> {
        if data.is_empty() {
            return Ok((f32::NAN, f32::NAN));
        }
        // Training totals must not mix with these.
        let pending = self.take_metrics()?;
        data.use_identity_order(&self.dev)?;
        let mut offset = 0;
        while offset < data.len() {
            let n = batch.min(data.len() - offset);
            self.gather_batch(data, offset, n)?;
            self.forward(Mode::Eval)?;
            self.loss(0)?;
            offset += n;
        }
        let m = self.take_metrics()?;
        // Put the training totals back.
        let s = self.dev.stream.clone();
        self.totals.upload(
            &s,
            &[pending.loss_sum, pending.correct, pending.seen],
            "metrics",
        )?;
        Ok(((m.loss_sum / m.seen) as f32, (m.correct / m.seen) as f32))
    }

    /// The output of the last forward pass, `[batch, classes]`.
    pub fn output(&self) -> Result<Vec<f32>> {
        let last = self.layers.len();
        self.acts[last].to_vec(
            &self.dev.stream,
            self.batch * self.slot_len[last],
            "the output",
        )
    }

    /// The output of the last forward pass into `out` (`[batch, classes]`; waits for the GPU).
    pub fn output_into(&self, out: &mut [f32]) -> Result<()> {
        let last = self.layers.len();
        if out.len() != self.batch * self.slot_len[last] {
            return Err(EngineError::Shape(format!(
                "output buffer holds {} values, the batch has {}",
                out.len(),
                self.batch * self.slot_len[last]
            )));
        }
        self.acts[last].download(&self.dev.stream, out, "the output")
    }

    /// Sets the output gradient directly (instead of [`CudaNetwork::loss`]).
    pub fn set_output_grad(&mut self, dout: &[f32]) -> Result<()> {
        let last = self.layers.len();
        let s = self.dev.stream.clone();
        self.grads[last]
            .as_mut()
            .expect("output gradient")
            .upload(&s, dout, "the output gradient")
    }

    /// The input gradient of the last backward pass (after [`CudaNetwork::keep_input_grad`]).
    pub fn input_grad(&self) -> Result<Vec<f32>> {
        let g = self.grads[0].as_ref().ok_or_else(|| {
            EngineError::Config("input gradient not kept: call keep_input_grad first".into())
        })?;
        g.to_vec(
            &self.dev.stream,
            self.batch * self.slot_len[0],
            "the input gradient",
        )
    }

    /// Every parameter's gradient of the last backward pass, in `Network::params` order.
    pub fn param_grads(&self) -> Result<Vec<Vec<f32>>> {
        self.split(&self.param_grads)
    }

    /// Every parameter's value, in `Network::params` order.
    pub fn param_values(&self) -> Result<Vec<Vec<f32>>> {
        self.split(&self.params)
    }

    fn split(&self, flat: &GpuBuf<f32>) -> Result<Vec<Vec<f32>>> {
        let all = flat.to_vec(&self.dev.stream, self.param_len, "the weights")?;
        Ok(self
            .layout
            .iter()
            .map(|&(o, l)| all[o..o + l].to_vec())
            .collect())
    }

    /// Writes the device weights and running statistics into `net` (built from the same spec).
    pub fn copy_to_host(&self, net: &mut Network) -> Result<()> {
        let values = self.param_values()?;
        let mut params = net.param_refs_mut();
        if params.len() != values.len() {
            return Err(EngineError::Shape(
                "copy_to_host: a different network".into(),
            ));
        }
        for (p, v) in params.iter_mut().zip(values) {
            p.value.data.copy_from_slice(&v);
        }
        drop(params);
        // Buffers come node by node in the same order on both sides.
        let device = self.layers.iter().flat_map(|l| l.buffers());
        for ((_, host), dev) in net.buffers_mut().into_iter().zip(device) {
            dev.download(&self.dev.stream, &mut host.data, "running statistics")?;
        }
        Ok(())
    }

    /// Replaces the device weights and running statistics with `net`'s (e.g. restored best
    /// weights).
    pub fn copy_from_host(&mut self, net: &Network) -> Result<()> {
        let mut flat = Vec::with_capacity(self.param_len);
        for (_, p) in net.params() {
            flat.extend_from_slice(&p.value.data);
        }
        if flat.len() != self.param_len {
            return Err(EngineError::Shape(
                "copy_from_host: a different network".into(),
            ));
        }
        self.params.upload(&self.dev.stream, &flat, "the weights")?;
        self.copy_buffers_from_host(net)
    }

    fn copy_buffers_from_host(&mut self, net: &Network) -> Result<()> {
        let s = self.dev.stream.clone();
        let device = self.layers.iter_mut().flat_map(|l| l.buffers_mut());
        for ((_, host), dev) in net.buffers().into_iter().zip(device) {
            dev.upload(&s, &host.data, "running statistics")?;
        }
        Ok(())
    }

    /// The optimizer's state in the CPU optimizer's form (for checkpoints).
    pub fn optimizer_state(&self) -> Result<OptimizerState> {
        self.optimizer.state(&self.dev, &self.layout)
    }

    /// Restores optimizer state saved by the CPU optimizer or [`CudaNetwork::optimizer_state`].
    pub fn load_optimizer_state(&mut self, state: &OptimizerState) -> Result<()> {
        self.optimizer.load_state(&self.dev, state, &self.layout)
    }

    /// Waits for the GPU and reports any asynchronous failure.
    pub fn synchronize(&self) -> Result<()> {
        self.dev.synchronize()
    }
}

impl Drop for CudaNetwork {
    fn drop(&mut self) {
        // Buffers are freed below; nothing queued may still use them.
        let _ = self.dev.synchronize();
    }
}

impl CudaNetwork {
    /// Copies an epoch order into a data set's order buffer on this network's stream.
    pub(crate) fn upload_order(&self, buf: &mut GpuBuf<u32>, order: &[u32]) -> Result<()> {
        buf.upload(&self.dev.stream, order, "the epoch order")
    }
}
