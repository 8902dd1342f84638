//! The optimizer on the GPU: Keras 3's update rules (the same as `optim.rs` on the CPU) as one
//! kernel launch over every parameter at once, since parameters, gradients and each optimizer
//! slot live in one flat buffer apiece. Gradient clipping happens on the device too: the global
//! norm is reduced and applied without the host reading it.

use super::buffer::GpuBuf;
use super::device::GpuDevice;
use super::error::Result;
use super::kernels::Arg;
use crate::optim::{AdamScalars, OptimizerConfig, OptimizerState};
use crate::EngineError;

pub struct GpuOptimizer {
    config: OptimizerConfig,
    iterations: u64,
    /// One flat buffer per slot in `OptimizerConfig::slot_names` order, as long as the parameters.
    slots: Vec<GpuBuf<f32>>,
    /// Per-block partial sums of squares for the global gradient norm.
    norm_parts: GpuBuf<f64>,
    len: usize,
}

/// Initial value of every slot element: only Adagrad's accumulator starts non-zero.
fn slot_init(config: &OptimizerConfig) -> f32 {
    match *config {
        OptimizerConfig::Adagrad {
            initial_accumulator,
            ..
        } => initial_accumulator,
        _ => 0.0,
    }
}

impl GpuOptimizer {
    pub fn new(dev: &GpuDevice, config: OptimizerConfig, len: usize) -> Result<GpuOptimizer> {
        let mut slots = Vec::new();
        for name in config.slot_names() {
            let buf = GpuBuf::zeros(&dev.stream, len, &format!("optimizer slot {name}"))?;
            fill(dev, buf.ptr(), len, slot_init(&config))?;
            slots.push(buf);
        }
        let blocks = dev.kernels.elementwise(len).grid_dim.0 as usize;
        Ok(GpuOptimizer {
            config,
            iterations: 0,
            slots,
            norm_parts: GpuBuf::zeros(&dev.stream, blocks, "gradient norm partials")?,
            len,
        })
    }

    /// Clamps every gradient to `[-clip, clip]` (Keras `clipvalue`).
    pub fn clip_value(&self, dev: &GpuDevice, grads: u64, clip: f32) -> Result<()> {
        if clip.is_nan() {
            return Ok(());
        }
        dev.launch_n(
            "clip_value",
            self.len,
            &[
                Arg::Ptr(grads),
                Arg::I64(self.len as i64),
                Arg::F32(clip.abs()),
            ],
        )
    }

    /// Scales the gradients so their global L2 norm is at most `max_norm` (Keras
    /// `global_clipnorm`); a non-finite norm leaves them untouched.
    pub fn clip_norm(&self, dev: &GpuDevice, grads: u64, max_norm: f32) -> Result<()> {
        let cfg = dev.kernels.elementwise(self.len);
        let parts = cfg.grid_dim.0 as i32;
        dev.kernels.launch(
            &dev.stream,
            "sum_squares",
            cfg,
            &[
                Arg::Ptr(self.norm_parts.ptr()),
                Arg::Ptr(grads),
                Arg::I64(self.len as i64),
            ],
        )?;
        dev.launch_n(
            "clip_by_norm",
            self.len,
            &[
                Arg::Ptr(grads),
                Arg::I64(self.len as i64),
                Arg::Ptr(self.norm_parts.ptr()),
                Arg::I32(parts),
                Arg::F32(max_norm),
            ],
        )
    }

    /// One update of every parameter from its gradient with learning rate `lr`.
    pub fn step(&mut self, dev: &GpuDevice, params: u64, grads: u64, lr: f32) -> Result<()> {
        self.iterations += 1;
        let t = self.iterations;
        let n = Arg::I64(self.len as i64);
        let slot = |i: usize| Arg::Ptr(self.slots[i].ptr());
        let (w, g) = (Arg::Ptr(params), Arg::Ptr(grads));
        match self.config {
            OptimizerConfig::Sgd {
                momentum,
                nesterov,
                weight_decay,
            } => {
                if momentum == 0.0 {
                    dev.launch_n(
                        "sgd_update",
                        self.len,
                        &[w, g, n, Arg::F32(lr), Arg::F32(weight_decay)],
                    )
                } else {
                    dev.launch_n(
                        "sgd_momentum_update",
                        self.len,
                        &[
                            w,
                            g,
                            slot(0),
                            n,
                            Arg::F32(lr),
                            Arg::F32(momentum),
                            Arg::F32(weight_decay),
                            Arg::I32(nesterov as i32),
                        ],
                    )
                }
            }
            OptimizerConfig::Adam {
                beta1,
                beta2,
                eps,
                weight_decay,
            }
            | OptimizerConfig::AdamW {
                beta1,
                beta2,
                eps,
                weight_decay,
            } => {
                let decoupled = matches!(self.config, OptimizerConfig::AdamW { .. });
                let AdamScalars { alpha, l2, decay } =
                    AdamScalars::at(decoupled, beta1, beta2, weight_decay, lr, t);
                dev.launch_n(
                    "adam_update",
                    self.len,
                    &[
                        w,
                        g,
                        slot(0),
                        slot(1),
                        n,
                        Arg::F32(alpha),
                        Arg::F32(beta1),
                        Arg::F32(beta2),
                        Arg::F32(eps),
                        Arg::F32(l2),
                        Arg::F32(decay),
                    ],
                )
            }
            OptimizerConfig::RmsProp {
                rho,
                momentum,
                eps,
                centered,
                weight_decay,
            } => {
                // Slots: velocity, then momentum (if > 0), then average_gradient (if centered).
                let mom = if momentum > 0.0 { slot(1) } else { Arg::Ptr(0) };
                let avg = match (momentum > 0.0, centered) {
                    (true, true) => slot(2),
                    (false, true) => slot(1),
                    _ => Arg::Ptr(0),
                };
                dev.launch_n(
                    "rmsprop_update",
                    self.len,
                    &[
                        w,
                        g,
                        slot(0),
                        mom,
                        avg,
                        n,
                        Arg::F32(lr),
                        Arg::F32(rho),
                        Arg::F32(momentum),
                        Arg::F32(eps),
                        Arg::F32(weight_decay),
                    ],
                )
            }
            OptimizerConfig::Adagrad {
                eps, weight_decay, ..
            } => dev.launch_n(
                "adagrad_update",
                self.len,
                &[
                    w,
                    g,
                    slot(0),
                    n,
                    Arg::F32(lr),
                    Arg::F32(eps),
                    Arg::F32(weight_decay),
                ],
            ),
        }
    }

    /// The state in the CPU optimizer's form (`"<param>.<slot>"` tensors), split by `layout`
    /// (each parameter's offset and length in the flat buffers). Before the first step there
    /// are no tensors, as on the CPU.
    pub fn state(&self, dev: &GpuDevice, layout: &[(usize, usize)]) -> Result<OptimizerState> {
        let mut tensors = Vec::new();
        if self.iterations > 0 {
            let names = self.config.slot_names();
            let flat: Vec<Vec<f32>> = self
                .slots
                .iter()
                .map(|s| s.to_vec(&dev.stream, self.len, "optimizer state"))
                .collect::<Result<_>>()?;
            for (i, &(offset, len)) in layout.iter().enumerate() {
                for (name, slot) in names.iter().zip(&flat) {
                    tensors.push((format!("{i}.{name}"), slot[offset..offset + len].to_vec()));
                }
            }
        }
        Ok(OptimizerState {
            kind: self.config.kind().to_string(),
            iterations: self.iterations,
            tensors,
        })
    }

    /// Restores a state saved by the CPU optimizer or [`GpuOptimizer::state`].
    pub fn load_state(
        &mut self,
        dev: &GpuDevice,
        state: &OptimizerState,
        layout: &[(usize, usize)],
    ) -> Result<()> {
        if state.kind != self.config.kind() {
            return Err(EngineError::Config(format!(
                "optimizer state is for `{}` but the optimizer is `{}`",
                state.kind,
                self.config.kind()
            )));
        }
        let names = self.config.slot_names();
        let init = slot_init(&self.config);
        let mut flat = vec![vec![init; self.len]; names.len()];
        for (name, data) in &state.tensors {
            let parsed = name.split_once('.').and_then(|(i, s)| {
                let i: usize = i.parse().ok()?;
                Some((i, names.iter().position(|n| *n == s)?))
            });
            let Some((i, j)) = parsed.filter(|&(i, _)| i < layout.len()) else {
                return Err(EngineError::Config(format!(
                    "optimizer state: unexpected tensor `{name}`"
                )));
            };
            let (offset, len) = layout[i];
            if data.len() != len {
                return Err(EngineError::Shape(format!(
                    "optimizer state: `{name}` has {} values, the parameter has {len}",
                    data.len()
                )));
            }
            flat[j][offset..offset + len].copy_from_slice(data);
        }
        for (slot, host) in self.slots.iter_mut().zip(&flat) {
            slot.upload(&dev.stream, host, "optimizer state")?;
        }
        self.iterations = state.iterations;
        Ok(())
    }
}

fn fill(dev: &GpuDevice, ptr: u64, len: usize, value: f32) -> Result<()> {
    dev.launch_n(
        "fill",
        len,
        &[Arg::Ptr(ptr), Arg::I64(len as i64), Arg::F32(value)],
    )
}
