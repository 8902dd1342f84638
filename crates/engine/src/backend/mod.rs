//! The `Backend` trait: the heavy kernels behind the layers.
//!
//! Layers own their parameters and buffers and express their forward and backward passes as
//! calls on a `&'static dyn Backend` (today always [`cpu()`]). Every kernel takes plain row-major
//! `f32` slices plus a small geometry struct, so the contract is the math, not a memory layout
//! trick:
//!
//! * [`Backend::gemm`] — `C (+)= op(A) · op(B)`, the workhorse of dense layers.
//! * [`Backend::conv2d_forward`] / [`Backend::conv2d_backward`] — a whole NHWC convolution with
//!   its bias and fused activation, so a backend can pick its own algorithm (im2col + GEMM with
//!   per-thread batch splits on the CPU; cuDNN on a GPU).
//! * pooling, element-wise activation and per-channel reductions for batch norm.
//!
//! Kernels that need temporary memory get a [`Scratch`] owned by the calling layer, so a training
//! loop at a fixed batch size allocates nothing after its first step.
//!
//! ## GPUs
//! The GPU does not sit behind this trait: its data must stay on the device across steps, and
//! these signatures take host slices. `crate::cuda::CudaNetwork` (feature `cuda`) runs a whole
//! network instead, from each layer's `Layer::describe`.

mod bands;
mod cpu;
mod direct;
mod panel_gemm;
pub(crate) mod simd;
mod sparse_grad;
mod winograd;

pub use cpu::Cpu;

use crate::Activation;

/// How a convolution or pooling window treats the border (TensorFlow semantics).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Padding {
    /// No padding: `out = (in - k) / stride + 1`.
    Valid,
    /// `out = ceil(in / stride)`; the total padding `max((out - 1) * stride + k - in, 0)` is split
    /// with the smaller half before (top/left) and the extra element after (bottom/right).
    Same,
}

impl Padding {
    /// Output length and padding before, for one spatial axis. `None` if the window does not fit.
    pub fn output_and_pad(self, input: usize, k: usize, stride: usize) -> Option<(usize, usize)> {
        match self {
            Padding::Valid => {
                if input < k {
                    None
                } else {
                    Some(((input - k) / stride + 1, 0))
                }
            }
            Padding::Same => {
                let out = input.div_ceil(stride);
                let total = ((out - 1) * stride + k).saturating_sub(input);
                Some((out, total / 2))
            }
        }
    }
}

/// Geometry of a 2-D convolution over NHWC input `[n, h, w, c_in]` producing `[n, oh, ow,
/// c_out]` with a kernel stored `[c_out, kh, kw, c_in]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeom {
    pub n: usize,
    pub h: usize,
    pub w: usize,
    pub c_in: usize,
    pub oh: usize,
    pub ow: usize,
    pub c_out: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: usize,
    pub pad_top: usize,
    pub pad_left: usize,
}

impl ConvGeom {
    /// Length of one im2col row (one output pixel's receptive field): `kh * kw * c_in`.
    pub fn patch(&self) -> usize {
        self.kh * self.kw * self.c_in
    }
}

/// Geometry of a 2-D pooling window over NHWC `[n, h, w, c]` producing `[n, oh, ow, c]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolGeom {
    pub n: usize,
    pub h: usize,
    pub w: usize,
    pub c: usize,
    pub oh: usize,
    pub ow: usize,
    pub k: usize,
    pub stride: usize,
    pub pad_top: usize,
    pub pad_left: usize,
}

/// Temporary memory a kernel may keep between calls (per-thread im2col columns, partial weight
/// gradients). Owned by the layer, opaque to it; a device backend may leave it empty.
///
/// It also caches the forward pass's transformed kernel (transposed for the direct kernels,
/// Winograd's `U`), which at batch 1 costs as much to build as the convolution itself. The layer
/// calls [`Scratch::invalidate`] whenever its weights may change (whenever it lends them out
/// mutably), so a stale transform is never used.
#[derive(Default, Debug)]
pub struct Scratch {
    pub(crate) bufs: Vec<Vec<f32>>,
    pub(crate) kernel: Vec<f32>,
    /// What `kernel` was built for (a backend-defined tag), or `None` when it must be rebuilt.
    pub(crate) kernel_key: Option<[usize; 4]>,
}

impl Scratch {
    /// Drops the cached kernel transform: the weights may have changed.
    pub fn invalidate(&mut self) {
        self.kernel_key = None;
    }
}

/// The kernels layers run on. Implementations must be deterministic for a fixed thread count.
pub trait Backend: Send + Sync {
    /// Short name, e.g. `cpu`.
    fn name(&self) -> &'static str;

    /// `c[m, n] = op(a)[m, k] · op(b)[k, n]`, or `+=` when `accumulate`. All row-major; `a` is
    /// stored `[m, k]` (or `[k, m]` when `trans_a`), `b` is `[k, n]` (or `[n, k]` when `trans_b`).
    #[allow(clippy::too_many_arguments)]
    fn gemm(
        &self,
        m: usize,
        n: usize,
        k: usize,
        a: &[f32],
        trans_a: bool,
        b: &[f32],
        trans_b: bool,
        c: &mut [f32],
        accumulate: bool,
    );

    /// In place on rows of `channels` values: `y = act(y + bias)`. When `pre` is given (the
    /// activation needs its input for the backward pass) it receives `y + bias`.
    fn bias_activation(
        &self,
        y: &mut [f32],
        pre: Option<&mut [f32]>,
        bias: Option<&[f32]>,
        channels: usize,
        act: Activation,
    );

    /// `y = act(x)`.
    fn activation_forward(&self, y: &mut [f32], x: &[f32], act: Activation);

    /// `dx += dy * act'(x)` where `y = act(x)` (`x` is only read for activations that need it).
    fn activation_backward(
        &self,
        dx: &mut [f32],
        dy: &[f32],
        x: &[f32],
        y: &[f32],
        act: Activation,
    );

    /// `y = act(conv(x, w) + bias)`; `y: [n, oh, ow, c_out]`, `x: [n, h, w, c_in]`,
    /// `w: [c_out, kh, kw, c_in]`, `bias: [c_out]`. `pre`, when given, receives the
    /// pre-activation values (same shape as `y`).
    #[allow(clippy::too_many_arguments)]
    fn conv2d_forward(
        &self,
        y: &mut [f32],
        pre: Option<&mut [f32]>,
        x: &[f32],
        w: &[f32],
        bias: Option<&[f32]>,
        g: &ConvGeom,
        act: Activation,
        scratch: &mut Scratch,
    );

    /// Backward of [`Backend::conv2d_forward`]: given the upstream `dy` and the forward's `y`
    /// (and `pre` when the activation needs it), accumulates `dw += ∂L/∂w`, `db += ∂L/∂b` and,
    /// when `dx` is given, `dx += ∂L/∂x`.
    #[allow(clippy::too_many_arguments)]
    fn conv2d_backward(
        &self,
        dx: Option<&mut [f32]>,
        dw: Option<&mut [f32]>,
        db: Option<&mut [f32]>,
        dy: &[f32],
        y: &[f32],
        pre: Option<&[f32]>,
        x: &[f32],
        w: &[f32],
        g: &ConvGeom,
        act: Activation,
        scratch: &mut Scratch,
    );

    /// Max pooling; `argmax[i]`, when given, receives for output `i` the index of the chosen
    /// input element within its example (so the backward pass is a scatter). Inference passes
    /// `None` and skips that bookkeeping.
    fn max_pool_forward(&self, y: &mut [f32], argmax: Option<&mut [u32]>, x: &[f32], g: &PoolGeom);

    /// `dx[argmax[i]] += dy[i]` per example.
    fn max_pool_backward(&self, dx: &mut [f32], dy: &[f32], argmax: &[u32], g: &PoolGeom);

    /// Average pooling dividing by the number of valid (unpadded) elements in each window.
    fn avg_pool_forward(&self, y: &mut [f32], x: &[f32], g: &PoolGeom);

    /// Backward of [`Backend::avg_pool_forward`], accumulating into `dx`.
    fn avg_pool_backward(&self, dx: &mut [f32], dy: &[f32], g: &PoolGeom);

    /// Per-channel mean and biased variance of `x` viewed as rows of `channels` values.
    fn channel_moments(&self, mean: &mut [f32], var: &mut [f32], x: &[f32], channels: usize);

    /// Per-channel `sum_a[c] = Σ a` and `sum_ab[c] = Σ a·b` over rows of `channels` values
    /// (batch-norm backward's two reductions).
    fn channel_sums(
        &self,
        sum_a: &mut [f32],
        sum_ab: &mut [f32],
        a: &[f32],
        b: &[f32],
        channels: usize,
    );
}

static CPU: Cpu = Cpu;

/// The process-wide CPU backend.
pub fn cpu() -> &'static dyn Backend {
    &CPU
}
