//! One network node on the GPU: its configuration (from [`Layer::describe`]), the device
//! buffers it keeps between forward and backward, and its forward and backward passes written
//! as kernel, cuBLAS and cuDNN calls.
//!
//! Same contract as the CPU layers: `forward` writes its output, `backward` *accumulates* into
//! input and parameter gradients. Pointers are raw device addresses of buffers the executor
//! (`network.rs`) owns; `n` is the batch size, never above the capacity given to `reserve`.
//!
//! [`Layer::describe`]: crate::Layer::describe

use std::collections::HashMap;

use super::buffer::GpuBuf;
use super::conv::{pad_mode, ConvPlan, PadMode};
use super::device::GpuDevice;
use super::error::Result;
use super::kernels::{act_code, Arg, PoolGeomArg};
use super::reduce::{Partials, Sum};
use super::{blas, Mode};
use crate::backend::{ConvGeom, Padding};
use crate::rng::mix64;
use crate::{Activation, EngineError, LayerDesc};

/// Memory the layers share within one step (the stream runs one thing at a time).
pub struct Scratch {
    /// `dz = dy ⊙ act'` of a conv or dense layer, `[capacity, largest output]`.
    pub dz: GpuBuf<f32>,
    /// The input gradient of an explicitly padded convolution, `[capacity, largest padded input]`.
    pub dpad: GpuBuf<f32>,
    pub partials: Partials,
    /// cuDNN workspace; grows to the largest plan's need.
    pub workspace: GpuBuf<u8>,
}

impl Scratch {
    fn workspace(&self) -> (u64, usize) {
        (self.workspace.ptr(), self.workspace.len())
    }
}

/// Base addresses of the flat parameter and gradient buffers.
#[derive(Clone, Copy)]
pub struct ParamBase {
    pub values: u64,
    pub grads: u64,
}

impl ParamBase {
    fn value(&self, offset: usize) -> u64 {
        self.values + 4 * offset as u64
    }
    fn grad(&self, offset: usize) -> u64 {
        self.grads + 4 * offset as u64
    }
}

pub struct GpuLayer {
    pub name: String,
    kind: Kind,
    /// Per-example shapes of the inputs and the output.
    in_shapes: Vec<Vec<usize>>,
    out_shape: Vec<usize>,
    /// Offsets of this layer's parameters (in `Layer::params` order) in the flat buffer.
    pub param_offsets: Vec<usize>,
}

enum Kind {
    Conv(Box<Conv>),
    Dense(Dense),
    MaxPool {
        geom: PoolGeomArg,
        /// Winner of each output of the last training pass, `[capacity, out]`.
        argmax: GpuBuf<u32>,
    },
    AvgPool {
        geom: PoolGeomArg,
    },
    GlobalAvgPool,
    Flatten,
    BatchNorm(Box<BatchNorm>),
    Dropout(Dropout),
    Activation(Activation),
    Add,
}

struct Conv {
    geom: ConvGeom,
    pad: PadMode,
    has_bias: bool,
    activation: Activation,
    /// Pre-activation (gelu only), `[capacity, out]`.
    pre: Option<GpuBuf<f32>>,
    /// The padded input of the last forward pass (explicit padding only).
    padded: Option<GpuBuf<f32>>,
    plans: HashMap<usize, ConvPlan>,
}

struct Dense {
    inputs: usize,
    outputs: usize,
    has_bias: bool,
    activation: Activation,
    pre: Option<GpuBuf<f32>>,
}

struct BatchNorm {
    channels: usize,
    momentum: f32,
    eps: f32,
    running_mean: GpuBuf<f32>,
    running_var: GpuBuf<f32>,
    mean: GpuBuf<f32>,
    var: GpuBuf<f32>,
    invstd: GpuBuf<f32>,
    sum_dy: GpuBuf<f32>,
    sum_dy_xhat: GpuBuf<f32>,
    xhat: Option<GpuBuf<f32>>,
    used_batch_stats: bool,
}

struct Dropout {
    rate: f32,
    seed: u64,
    step: u64,
    mask: Option<GpuBuf<f32>>,
    /// Whether the last forward pass drew a mask (training with rate > 0).
    masked: bool,
}

fn pool_geom(k: usize, stride: usize, padding: Padding, s: &[usize]) -> Result<PoolGeomArg> {
    let bad = || EngineError::Shape(format!("pooling window {k} does not fit input {s:?}"));
    let (oh, pad_top) = padding.output_and_pad(s[0], k, stride).ok_or_else(bad)?;
    let (ow, pad_left) = padding.output_and_pad(s[1], k, stride).ok_or_else(bad)?;
    Ok(PoolGeomArg {
        n: 0,
        h: s[0] as i32,
        w: s[1] as i32,
        c: s[2] as i32,
        oh: oh as i32,
        ow: ow as i32,
        k: k as i32,
        stride: stride as i32,
        pad_top: pad_top as i32,
        pad_left: pad_left as i32,
    })
}

impl GpuLayer {
    /// The GPU form of a node described by `desc`, reading `in_shapes` and writing `out_shape`
    /// (per example). Parameters and running statistics are uploaded by the executor.
    pub fn new(
        dev: &GpuDevice,
        name: &str,
        desc: &LayerDesc,
        in_shapes: Vec<Vec<usize>>,
        out_shape: Vec<usize>,
    ) -> Result<GpuLayer> {
        let s = &in_shapes[0];
        let kind = match *desc {
            LayerDesc::Conv2d {
                in_ch,
                out_ch,
                kh,
                kw,
                stride,
                padding,
                bias,
                activation,
            } => {
                let bad = || EngineError::Shape(format!("conv2d '{name}' does not fit {s:?}"));
                let (oh, pad_top) = padding.output_and_pad(s[0], kh, stride).ok_or_else(bad)?;
                let (ow, pad_left) = padding.output_and_pad(s[1], kw, stride).ok_or_else(bad)?;
                let geom = ConvGeom {
                    n: 0,
                    h: s[0],
                    w: s[1],
                    c_in: in_ch,
                    oh,
                    ow,
                    c_out: out_ch,
                    kh,
                    kw,
                    stride,
                    pad_top,
                    pad_left,
                };
                Kind::Conv(Box::new(Conv {
                    pad: pad_mode(&geom),
                    geom,
                    has_bias: bias,
                    activation,
                    pre: None,
                    padded: None,
                    plans: HashMap::new(),
                }))
            }
            LayerDesc::Dense {
                inputs,
                outputs,
                bias,
                activation,
            } => Kind::Dense(Dense {
                inputs,
                outputs,
                has_bias: bias,
                activation,
                pre: None,
            }),
            LayerDesc::MaxPool2d { k, stride, padding } => Kind::MaxPool {
                geom: pool_geom(k, stride, padding, s)?,
                argmax: GpuBuf::zeros(&dev.stream, 1, "max-pool winners")?,
            },
            LayerDesc::AvgPool2d { k, stride, padding } => Kind::AvgPool {
                geom: pool_geom(k, stride, padding, s)?,
            },
            LayerDesc::GlobalAvgPool => Kind::GlobalAvgPool,
            LayerDesc::Flatten => Kind::Flatten,
            LayerDesc::BatchNorm {
                channels,
                momentum,
                eps,
            } => {
                let c = |what| GpuBuf::zeros(&dev.stream, channels, what);
                Kind::BatchNorm(Box::new(BatchNorm {
                    channels,
                    momentum,
                    eps,
                    running_mean: c("batch-norm statistics")?,
                    running_var: c("batch-norm statistics")?,
                    mean: c("batch-norm statistics")?,
                    var: c("batch-norm statistics")?,
                    invstd: c("batch-norm statistics")?,
                    sum_dy: c("batch-norm sums")?,
                    sum_dy_xhat: c("batch-norm sums")?,
                    xhat: None,
                    used_batch_stats: false,
                }))
            }
            LayerDesc::Dropout { rate, seed } => Kind::Dropout(Dropout {
                rate,
                seed,
                step: 0,
                mask: None,
                masked: false,
            }),
            LayerDesc::Activation(a) => Kind::Activation(a),
            LayerDesc::Add => Kind::Add,
            LayerDesc::Other { kind } => {
                return Err(EngineError::Device(format!(
                    "layer '{name}' ({kind}) has no GPU implementation; train it with --device cpu"
                )))
            }
        };
        Ok(GpuLayer {
            name: name.to_string(),
            kind,
            in_shapes,
            out_shape,
            param_offsets: Vec::new(),
        })
    }

    fn out_len(&self) -> usize {
        self.out_shape.iter().product()
    }

    fn in_len(&self) -> usize {
        self.in_shapes[0].iter().product()
    }

    /// Channels this layer reduces over (for sizing the shared partial sums).
    pub fn reduce_channels(&self) -> usize {
        match &self.kind {
            Kind::Conv(c) => c.geom.c_out,
            Kind::Dense(d) => d.outputs,
            Kind::BatchNorm(b) => b.channels,
            _ => 0,
        }
    }

    /// Largest per-example size this layer needs in the shared `dz` and `dpad` scratch.
    pub fn scratch_per_example(&self) -> (usize, usize) {
        match &self.kind {
            Kind::Conv(c) => {
                let padded = match c.pad {
                    PadMode::Padded { hp, wp } => hp * wp * c.geom.c_in,
                    PadMode::Symmetric { .. } => 0,
                };
                (self.out_len(), padded)
            }
            Kind::Dense(_) => (self.out_len(), 0),
            _ => (0, 0),
        }
    }

    /// The running statistics buffers (batch norm), in `Layer::buffers` order.
    pub fn buffers(&self) -> Vec<&GpuBuf<f32>> {
        match &self.kind {
            Kind::BatchNorm(b) => vec![&b.running_mean, &b.running_var],
            _ => Vec::new(),
        }
    }

    pub fn buffers_mut(&mut self) -> Vec<&mut GpuBuf<f32>> {
        match &mut self.kind {
            Kind::BatchNorm(b) => vec![&mut b.running_mean, &mut b.running_var],
            _ => Vec::new(),
        }
    }

    /// The optimizer step the next training pass belongs to (dropout's mask depends on it).
    pub fn set_training_step(&mut self, step: u64) {
        if let Kind::Dropout(d) = &mut self.kind {
            d.step = step;
        }
    }

    /// (Re)allocates the per-batch buffers this layer keeps for batches of up to `capacity`.
    pub fn reserve(&mut self, dev: &GpuDevice, capacity: usize) -> Result<()> {
        let out = capacity * self.out_len();
        let what = self.name.clone();
        let buf = |len: usize| GpuBuf::<f32>::zeros(&dev.stream, len, &what);
        match &mut self.kind {
            Kind::Conv(c) => {
                c.pre = if c.activation.needs_input() {
                    Some(buf(out)?)
                } else {
                    None
                };
                c.padded = match c.pad {
                    PadMode::Padded { hp, wp } => Some(buf(capacity * hp * wp * c.geom.c_in)?),
                    PadMode::Symmetric { .. } => None,
                };
            }
            Kind::Dense(d) => {
                d.pre = if d.activation.needs_input() {
                    Some(buf(out)?)
                } else {
                    None
                };
            }
            Kind::MaxPool { argmax, .. } => *argmax = GpuBuf::zeros(&dev.stream, out, &what)?,
            Kind::BatchNorm(b) => b.xhat = Some(buf(out)?),
            Kind::Dropout(d) => d.mask = Some(buf(out)?),
            _ => {}
        }
        Ok(())
    }

    /// The cuDNN plan of a convolution for batch `n`, built on first use; returns its
    /// workspace need so the executor can grow the shared workspace before running it.
    pub fn prepare(&mut self, dev: &GpuDevice, n: usize) -> Result<usize> {
        if let Kind::Conv(c) = &mut self.kind {
            if !c.plans.contains_key(&n) {
                let g = ConvGeom { n, ..c.geom };
                c.plans.insert(n, ConvPlan::new(dev, &g, c.pad)?);
            }
            return Ok(c.plans[&n].workspace);
        }
        Ok(0)
    }

    /// Computes the output `out` from `inputs` for a batch of `n`.
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &mut self,
        dev: &GpuDevice,
        scratch: &Scratch,
        p: ParamBase,
        out: u64,
        inputs: &[u64],
        n: usize,
        mode: Mode,
    ) -> Result<()> {
        let x = inputs[0];
        let out_len = n * self.out_len();
        let in_len = n * self.in_len();
        let offsets = &self.param_offsets;
        match &mut self.kind {
            Kind::Conv(c) => {
                let g = c.geom;
                let x_used = match (&c.pad, &c.padded) {
                    (PadMode::Padded { hp, wp }, Some(padded)) => {
                        dev.launch_n(
                            "pad_nhwc",
                            n * hp * wp * g.c_in,
                            &[
                                Arg::Ptr(padded.ptr()),
                                Arg::Ptr(x),
                                Arg::I32(n as i32),
                                Arg::I32(g.h as i32),
                                Arg::I32(g.w as i32),
                                Arg::I32(g.c_in as i32),
                                Arg::I32(*hp as i32),
                                Arg::I32(*wp as i32),
                                Arg::I32(g.pad_top as i32),
                                Arg::I32(g.pad_left as i32),
                            ],
                        )?;
                        padded.ptr()
                    }
                    _ => x,
                };
                let plan = &c.plans[&n];
                plan.forward(dev, out, x_used, p.value(offsets[0]), scratch.workspace())?;
                let bias = c.has_bias.then(|| p.value(offsets[1]));
                bias_activation(
                    dev,
                    out,
                    c.pre.as_ref(),
                    bias,
                    out_len,
                    g.c_out,
                    c.activation,
                )
            }
            Kind::Dense(d) => {
                // y[n, out] = x[n, in] · w[in, out]
                let w = p.value(offsets[0]);
                blas::gemm(dev, n, d.outputs, d.inputs, x, false, w, false, out, false)?;
                let bias = d.has_bias.then(|| p.value(offsets[1]));
                bias_activation(
                    dev,
                    out,
                    d.pre.as_ref(),
                    bias,
                    out_len,
                    d.outputs,
                    d.activation,
                )
            }
            Kind::MaxPool { geom, argmax } => {
                let g = PoolGeomArg {
                    n: n as i32,
                    ..*geom
                };
                let am = if mode.keeps_backward_state() {
                    argmax.ptr()
                } else {
                    0
                };
                dev.launch_n(
                    "max_pool_forward",
                    out_len,
                    &[Arg::Ptr(out), Arg::Ptr(am), Arg::Ptr(x), Arg::Pool(g)],
                )
            }
            Kind::AvgPool { geom } => {
                let g = PoolGeomArg {
                    n: n as i32,
                    ..*geom
                };
                dev.launch_n(
                    "avg_pool_forward",
                    out_len,
                    &[Arg::Ptr(out), Arg::Ptr(x), Arg::Pool(g)],
                )
            }
            Kind::GlobalAvgPool => {
                let s = &self.in_shapes[0];
                dev.launch_n(
                    "global_avg_pool_forward",
                    out_len,
                    &[
                        Arg::Ptr(out),
                        Arg::Ptr(x),
                        Arg::I32(n as i32),
                        Arg::I32((s[0] * s[1]) as i32),
                        Arg::I32(s[2] as i32),
                    ],
                )
            }
            Kind::Flatten => copy(dev, out, x, in_len),
            Kind::BatchNorm(b) => b.forward(dev, scratch, p, offsets, out, x, out_len, mode),
            Kind::Dropout(d) => {
                if !mode.is_training() || d.rate == 0.0 {
                    d.masked = false;
                    return copy(dev, out, x, in_len);
                }
                let keep = 1.0 - d.rate;
                let threshold = (d.rate as f64 * (1u64 << 24) as f64) as u64;
                let base = mix64(mix64(d.seed ^ 0xD1B5_4A32_D192_ED03).wrapping_add(d.step));
                let mask = d.mask.as_ref().expect("reserved");
                dev.launch_n(
                    "dropout_forward",
                    in_len,
                    &[
                        Arg::Ptr(out),
                        Arg::Ptr(mask.ptr()),
                        Arg::Ptr(x),
                        Arg::I64(in_len as i64),
                        Arg::U64(base),
                        Arg::U64(threshold),
                        Arg::F32(1.0 / keep),
                    ],
                )?;
                d.masked = true;
                d.step += 1;
                Ok(())
            }
            Kind::Activation(a) => {
                let (code, alpha) = act_code(*a);
                dev.launch_n(
                    "act_forward",
                    in_len,
                    &[
                        Arg::Ptr(out),
                        Arg::Ptr(x),
                        Arg::I64(in_len as i64),
                        Arg::I32(code),
                        Arg::F32(alpha),
                    ],
                )
            }
            Kind::Add => {
                copy(dev, out, x, in_len)?;
                for &other in &inputs[1..] {
                    add_into(dev, out, other, in_len)?;
                }
                Ok(())
            }
        }
    }

    /// Accumulates into `dinputs` (`None`: nobody needs that gradient) and into this layer's
    /// parameter gradients, from `dout` and the forward pass's `out` and `inputs`.
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        &mut self,
        dev: &GpuDevice,
        scratch: &Scratch,
        p: ParamBase,
        dinputs: &[Option<u64>],
        dout: u64,
        out: u64,
        inputs: &[u64],
        n: usize,
    ) -> Result<()> {
        let x = inputs[0];
        let dx = dinputs[0];
        let out_len = n * self.out_len();
        let in_len = n * self.in_len();
        let offsets = &self.param_offsets;
        match &mut self.kind {
            Kind::Conv(c) => {
                let g = c.geom;
                let dz = activation_grad(
                    dev,
                    scratch,
                    dout,
                    out,
                    c.pre.as_ref(),
                    out_len,
                    c.activation,
                )?;
                if c.has_bias {
                    let db = p.grad(offsets[1]);
                    let rows = n * g.oh * g.ow;
                    scratch.partials.channel_sums(
                        dev,
                        db,
                        None,
                        dz,
                        Sum::Plain,
                        rows,
                        g.c_out,
                        1.0,
                        true,
                    )?;
                }
                let plan = &c.plans[&n];
                let ws = scratch.workspace();
                let x_used = c.padded.as_ref().map_or(x, |b| b.ptr());
                plan.backward_filter(dev, p.grad(offsets[0]), x_used, dz, ws)?;
                let Some(dx) = dx else { return Ok(()) };
                match c.pad {
                    PadMode::Symmetric { .. } => {
                        plan.backward_data(dev, dx, dz, p.value(offsets[0]), ws, true)
                    }
                    PadMode::Padded { hp, wp } => {
                        let dpad = scratch.dpad.ptr();
                        plan.backward_data(dev, dpad, dz, p.value(offsets[0]), ws, false)?;
                        dev.launch_n(
                            "crop_add_nhwc",
                            in_len,
                            &[
                                Arg::Ptr(dx),
                                Arg::Ptr(dpad),
                                Arg::I32(n as i32),
                                Arg::I32(g.h as i32),
                                Arg::I32(g.w as i32),
                                Arg::I32(g.c_in as i32),
                                Arg::I32(hp as i32),
                                Arg::I32(wp as i32),
                                Arg::I32(g.pad_top as i32),
                                Arg::I32(g.pad_left as i32),
                            ],
                        )
                    }
                }
            }
            Kind::Dense(d) => {
                let (din, dn) = (d.inputs, d.outputs);
                let dz = activation_grad(
                    dev,
                    scratch,
                    dout,
                    out,
                    d.pre.as_ref(),
                    out_len,
                    d.activation,
                )?;
                if d.has_bias {
                    let db = p.grad(offsets[1]);
                    scratch.partials.channel_sums(
                        dev,
                        db,
                        None,
                        dz,
                        Sum::Plain,
                        n,
                        dn,
                        1.0,
                        true,
                    )?;
                }
                // dw[in, out] += xᵀ · dz
                blas::gemm(
                    dev,
                    din,
                    dn,
                    n,
                    x,
                    true,
                    dz,
                    false,
                    p.grad(offsets[0]),
                    true,
                )?;
                // dx[n, in] += dz · wᵀ
                if let Some(dx) = dx {
                    blas::gemm(
                        dev,
                        n,
                        din,
                        dn,
                        dz,
                        false,
                        p.value(offsets[0]),
                        true,
                        dx,
                        true,
                    )?;
                }
                Ok(())
            }
            Kind::MaxPool { geom, argmax } => {
                let Some(dx) = dx else { return Ok(()) };
                let g = PoolGeomArg {
                    n: n as i32,
                    ..*geom
                };
                dev.launch_n(
                    "max_pool_backward",
                    in_len,
                    &[
                        Arg::Ptr(dx),
                        Arg::Ptr(dout),
                        Arg::Ptr(argmax.ptr()),
                        Arg::Pool(g),
                    ],
                )
            }
            Kind::AvgPool { geom } => {
                let Some(dx) = dx else { return Ok(()) };
                let g = PoolGeomArg {
                    n: n as i32,
                    ..*geom
                };
                dev.launch_n(
                    "avg_pool_backward",
                    in_len,
                    &[Arg::Ptr(dx), Arg::Ptr(dout), Arg::Pool(g)],
                )
            }
            Kind::GlobalAvgPool => {
                let Some(dx) = dx else { return Ok(()) };
                let s = &self.in_shapes[0];
                dev.launch_n(
                    "global_avg_pool_backward",
                    in_len,
                    &[
                        Arg::Ptr(dx),
                        Arg::Ptr(dout),
                        Arg::I32(n as i32),
                        Arg::I32((s[0] * s[1]) as i32),
                        Arg::I32(s[2] as i32),
                    ],
                )
            }
            Kind::Flatten => match dx {
                Some(dx) => add_into(dev, dx, dout, in_len),
                None => Ok(()),
            },
            Kind::BatchNorm(b) => b.backward(dev, scratch, p, offsets, dx, dout, out_len),
            Kind::Dropout(d) => {
                let Some(dx) = dx else { return Ok(()) };
                if !d.masked {
                    return add_into(dev, dx, dout, in_len);
                }
                let mask = d.mask.as_ref().expect("reserved").ptr();
                dev.launch_n(
                    "dropout_backward",
                    in_len,
                    &[
                        Arg::Ptr(dx),
                        Arg::Ptr(dout),
                        Arg::Ptr(mask),
                        Arg::I64(in_len as i64),
                    ],
                )
            }
            Kind::Activation(a) => {
                let Some(dx) = dx else { return Ok(()) };
                let (code, alpha) = act_code(*a);
                dev.launch_n(
                    "act_backward",
                    in_len,
                    &[
                        Arg::Ptr(dx),
                        Arg::Ptr(dout),
                        Arg::Ptr(x),
                        Arg::Ptr(out),
                        Arg::I64(in_len as i64),
                        Arg::I32(code),
                        Arg::F32(alpha),
                        Arg::I32(1),
                    ],
                )
            }
            Kind::Add => {
                // A node reading the same slot twice gets that gradient once (as on the CPU).
                let mut seen = Vec::new();
                for dx in dinputs.iter().flatten() {
                    if !seen.contains(dx) {
                        seen.push(*dx);
                        add_into(dev, *dx, dout, in_len)?;
                    }
                }
                Ok(())
            }
        }
    }
}

impl BatchNorm {
    #[allow(clippy::too_many_arguments)]
    fn forward(
        &mut self,
        dev: &GpuDevice,
        scratch: &Scratch,
        p: ParamBase,
        offsets: &[usize],
        out: u64,
        x: u64,
        len: usize,
        mode: Mode,
    ) -> Result<()> {
        let c = self.channels;
        let rows = len / c.max(1);
        self.used_batch_stats = mode.is_training();
        if self.used_batch_stats {
            let inv_rows = 1.0 / rows.max(1) as f64;
            let sums = &scratch.partials;
            sums.channel_sums(
                dev,
                self.mean.ptr(),
                None,
                x,
                Sum::Plain,
                rows,
                c,
                inv_rows,
                false,
            )?;
            let dev_sq = Sum::SquaredDeviation {
                mean: self.mean.ptr(),
            };
            sums.channel_sums(
                dev,
                self.var.ptr(),
                None,
                x,
                dev_sq,
                rows,
                c,
                inv_rows,
                false,
            )?;
        }
        dev.launch_n(
            "bn_statistics",
            c,
            &[
                Arg::Ptr(self.mean.ptr()),
                Arg::Ptr(self.invstd.ptr()),
                Arg::Ptr(self.running_mean.ptr()),
                Arg::Ptr(self.running_var.ptr()),
                Arg::Ptr(self.var.ptr()),
                Arg::I32(c as i32),
                Arg::F32(self.momentum),
                Arg::F32(self.eps),
                Arg::I32(self.used_batch_stats as i32),
            ],
        )?;
        let xhat = self.xhat.as_ref().expect("reserved").ptr();
        dev.launch_n(
            "bn_apply",
            len,
            &[
                Arg::Ptr(out),
                Arg::Ptr(xhat),
                Arg::Ptr(x),
                Arg::Ptr(self.mean.ptr()),
                Arg::Ptr(self.invstd.ptr()),
                Arg::Ptr(p.value(offsets[0])),
                Arg::Ptr(p.value(offsets[1])),
                Arg::I64(len as i64),
                Arg::I32(c as i32),
            ],
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn backward(
        &mut self,
        dev: &GpuDevice,
        scratch: &Scratch,
        p: ParamBase,
        offsets: &[usize],
        dx: Option<u64>,
        dout: u64,
        len: usize,
    ) -> Result<()> {
        let c = self.channels;
        let rows = len / c.max(1);
        let xhat = self.xhat.as_ref().expect("reserved").ptr();
        let (sum_dy, sum_dy_xhat) = (self.sum_dy.ptr(), self.sum_dy_xhat.ptr());
        let with_xhat = Sum::WithProduct { b: xhat };
        scratch.partials.channel_sums(
            dev,
            sum_dy,
            Some(sum_dy_xhat),
            dout,
            with_xhat,
            rows,
            c,
            1.0,
            false,
        )?;
        // dbeta += Σ dy, dgamma += Σ dy·x̂
        add_into(dev, p.grad(offsets[1]), sum_dy, c)?;
        add_into(dev, p.grad(offsets[0]), sum_dy_xhat, c)?;
        let Some(dx) = dx else { return Ok(()) };
        dev.launch_n(
            "bn_backward",
            len,
            &[
                Arg::Ptr(dx),
                Arg::Ptr(dout),
                Arg::Ptr(xhat),
                Arg::Ptr(p.value(offsets[0])),
                Arg::Ptr(self.invstd.ptr()),
                Arg::Ptr(sum_dy),
                Arg::Ptr(sum_dy_xhat),
                Arg::I64(len as i64),
                Arg::I32(c as i32),
                Arg::F32(rows as f32),
                Arg::I32(self.used_batch_stats as i32),
            ],
        )
    }
}

/// In place on `y` (rows of `c`): `y = act(y + bias)`, keeping `y + bias` in `pre` when given.
fn bias_activation(
    dev: &GpuDevice,
    y: u64,
    pre: Option<&GpuBuf<f32>>,
    bias: Option<u64>,
    len: usize,
    c: usize,
    act: Activation,
) -> Result<()> {
    if bias.is_none() && act == Activation::Linear {
        return Ok(());
    }
    let (code, alpha) = act_code(act);
    dev.launch_n(
        "bias_act_forward",
        len,
        &[
            Arg::Ptr(y),
            Arg::Ptr(pre.map_or(0, |b| b.ptr())),
            Arg::Ptr(bias.unwrap_or(0)),
            Arg::I64(len as i64),
            Arg::I32(c as i32),
            Arg::I32(code),
            Arg::F32(alpha),
        ],
    )
}

/// `dz = dy ⊙ act'` in the shared scratch (or `dy` itself for a linear activation).
fn activation_grad(
    dev: &GpuDevice,
    scratch: &Scratch,
    dy: u64,
    y: u64,
    pre: Option<&GpuBuf<f32>>,
    len: usize,
    act: Activation,
) -> Result<u64> {
    if act == Activation::Linear {
        return Ok(dy);
    }
    let dz = scratch.dz.ptr();
    let (code, alpha) = act_code(act);
    dev.launch_n(
        "act_backward",
        len,
        &[
            Arg::Ptr(dz),
            Arg::Ptr(dy),
            Arg::Ptr(pre.map_or(0, |b| b.ptr())),
            Arg::Ptr(y),
            Arg::I64(len as i64),
            Arg::I32(code),
            Arg::F32(alpha),
            Arg::I32(0),
        ],
    )?;
    Ok(dz)
}

/// `y += x` over `len` floats.
pub fn add_into(dev: &GpuDevice, y: u64, x: u64, len: usize) -> Result<()> {
    dev.launch_n(
        "add_into",
        len,
        &[Arg::Ptr(y), Arg::Ptr(x), Arg::I64(len as i64)],
    )
}

/// `y = x` over `len` floats.
pub fn copy(dev: &GpuDevice, y: u64, x: u64, len: usize) -> Result<()> {
    dev.launch_n(
        "scale_into",
        len,
        &[
            Arg::Ptr(y),
            Arg::Ptr(x),
            Arg::I64(len as i64),
            Arg::F32(1.0),
        ],
    )
}
