//! The `Layer` trait: every layer has a readable forward and backward side by side.
//!
//! Conventions (as in llm.c): arguments are ordered outputs, inputs; `backward` *accumulates* into
//! input gradients and parameter gradients (so fan-out in residual graphs just works), and zeroing
//! gradients is its own step ([`crate::Network::zero_grads`]). Layers keep whatever they need from
//! the forward pass (e.g. max-pool argmax, batch-norm statistics) in their own buffers.

use crate::backend::Padding;
use crate::{Activation, EngineError, Tensor};

/// Training or inference: decides dropout and which batch-norm statistics are used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Train,
    Eval,
    /// Inference arithmetic (no dropout, batch norm's running statistics) that also keeps what
    /// a backward pass needs (max-pool winners): gradients of a prediction with respect to its
    /// input, for explaining it.
    Explain,
}

impl Mode {
    /// Whether layers behave as in training (dropout drops, batch norm uses batch statistics).
    pub fn is_training(self) -> bool {
        self == Mode::Train
    }

    /// Whether a backward pass will follow, so the forward pass keeps what it needs.
    pub fn keeps_backward_state(self) -> bool {
        self != Mode::Eval
    }
}

/// A learnable parameter with its gradient. `name` is the fixed short name (`weight`, `bias`,
/// `gamma`, `beta`) so checkpoints, safetensors and ONNX names line up as `<layer>.<name>`.
#[derive(Clone, Debug)]
pub struct Param {
    pub name: &'static str,
    pub value: Tensor,
    pub grad: Tensor,
}

impl Param {
    pub fn new(name: &'static str, value: Tensor) -> Param {
        let grad = Tensor::zeros(&value.shape);
        Param { name, value, grad }
    }
}

/// A layer's configuration as plain data: what another executor (the CUDA one) needs to run
/// the same layer with its own kernels. Weights are not part of it; they come from
/// [`Layer::params`] and [`Layer::buffers`] in their fixed order.
#[derive(Clone, Debug, PartialEq)]
pub enum LayerDesc {
    Conv2d {
        in_ch: usize,
        out_ch: usize,
        kh: usize,
        kw: usize,
        stride: usize,
        padding: Padding,
        bias: bool,
        activation: Activation,
    },
    Dense {
        inputs: usize,
        outputs: usize,
        bias: bool,
        activation: Activation,
    },
    MaxPool2d {
        k: usize,
        stride: usize,
        padding: Padding,
    },
    AvgPool2d {
        k: usize,
        stride: usize,
        padding: Padding,
    },
    GlobalAvgPool,
    Flatten,
    BatchNorm {
        channels: usize,
        momentum: f32,
        eps: f32,
    },
    /// `seed` and the per-step mask rule are the layer's (see `layers::Dropout`).
    Dropout {
        rate: f32,
        seed: u64,
    },
    Activation(Activation),
    Add,
    /// A layer outside the engine's library: only the CPU can run it.
    Other {
        kind: &'static str,
    },
}

pub trait Layer: Send {
    /// Short kind name used in errors and summaries, e.g. `conv2d`.
    fn kind(&self) -> &'static str;

    /// This layer's configuration as data. Every layer of the library describes itself; a layer
    /// defined elsewhere is [`LayerDesc::Other`], which device executors reject by name.
    fn describe(&self) -> LayerDesc {
        LayerDesc::Other { kind: self.kind() }
    }

    /// Per-example output shape (no batch dimension) for the given per-example input shapes.
    /// Errors say which layer and what was expected.
    fn output_shape(&self, inputs: &[Vec<usize>]) -> Result<Vec<usize>, EngineError>;

    /// Computes `out` (resized here to `[batch, ..output_shape]`) from `inputs`.
    fn forward(&mut self, out: &mut Tensor, inputs: &[&Tensor], mode: Mode);

    /// Given the forward's `inputs`, its `out` and the upstream gradient `dout`, accumulates into
    /// `dinputs` (same shapes as `inputs`) and into this layer's parameter gradients. A `None`
    /// entry means nobody needs that input's gradient (e.g. the network's input): skip it.
    fn backward(
        &mut self,
        dinputs: &mut [Option<&mut Tensor>],
        dout: &Tensor,
        out: &Tensor,
        inputs: &[&Tensor],
    );

    /// Learnable parameters, in a fixed order.
    fn params(&self) -> Vec<&Param> {
        Vec::new()
    }
    fn params_mut(&mut self) -> Vec<&mut Param> {
        Vec::new()
    }

    /// Non-learned state saved with the model (e.g. batch-norm running mean and variance), by
    /// fixed name.
    fn buffers(&self) -> Vec<(&'static str, &Tensor)> {
        Vec::new()
    }
    fn buffers_mut(&mut self) -> Vec<(&'static str, &mut Tensor)> {
        Vec::new()
    }

    /// Freezes (or thaws) the layer's parameters: a frozen layer's backward pass computes no
    /// parameter gradients (they stay as they are) but still passes the input gradient on.
    /// What explaining a prediction needs, where only the input gradient matters.
    fn set_frozen(&mut self, _frozen: bool) {}

    /// Tells stochastic layers (dropout) which optimizer step the next training pass belongs to,
    /// so their random draws depend on the step alone and a resumed run repeats them exactly.
    fn set_training_step(&mut self, _step: u64) {}

    /// Multiply-accumulates per example for the forward pass, for FLOP reports.
    fn macs_per_example(&self, _inputs: &[Vec<usize>]) -> u64 {
        0
    }
}
