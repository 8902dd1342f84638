//! `BatchNorm`: batch normalization over the last axis (channels of NHWC images, features of
//! `[n, f]`).
//!
//! Shapes: input `x [n, .., c]` → output `y` of the same shape; `gamma, beta, running_mean,
//! running_var [c]`. Statistics are taken over all leading positions (`m = n·h·w` rows).
//!
//! Training: `y = gamma · (x - mean) / sqrt(var + eps) + beta` with the batch mean and the
//! biased batch variance (as TensorFlow), and `running = momentum · running + (1 - momentum) ·
//! batch` (Keras's update, with the same biased variance). Eval uses the running statistics.
//! Defaults follow Keras: momentum 0.99, eps 1e-3.

use super::one_input;
use crate::backend::{cpu, Backend};
use crate::{EngineError, Layer, LayerDesc, Mode, Param, Tensor};

pub struct BatchNorm {
    pub channels: usize,
    pub momentum: f32,
    pub eps: f32,
    /// `[c]`
    gamma: Param,
    /// `[c]`
    beta: Param,
    /// `[c]`
    running_mean: Tensor,
    /// `[c]`
    running_var: Tensor,
    /// Normalized input of the last forward pass, `x̂ [m, c]`.
    xhat: Tensor,
    /// `1 / sqrt(var + eps)` of the statistics the last forward pass used, `[c]`.
    invstd: Vec<f32>,
    /// Whether the last forward pass used batch statistics (training) or running ones.
    used_batch_stats: bool,
    mean: Vec<f32>,
    var: Vec<f32>,
    sum_dy: Vec<f32>,
    sum_dy_xhat: Vec<f32>,
    /// No parameter gradients in backward ([`Layer::set_frozen`]).
    frozen: bool,
    backend: &'static dyn Backend,
}

impl BatchNorm {
    /// Keras defaults: momentum 0.99, eps 1e-3.
    pub fn new(channels: usize) -> BatchNorm {
        BatchNorm {
            channels,
            momentum: 0.99,
            eps: 1e-3,
            gamma: Param::new(
                "gamma",
                Tensor::from_vec(&[channels], vec![1.0; channels]).expect("len"),
            ),
            beta: Param::new("beta", Tensor::zeros(&[channels])),
            running_mean: Tensor::zeros(&[channels]),
            running_var: Tensor::from_vec(&[channels], vec![1.0; channels]).expect("len"),
            xhat: Tensor::default(),
            invstd: vec![0.0; channels],
            used_batch_stats: false,
            mean: vec![0.0; channels],
            var: vec![0.0; channels],
            sum_dy: vec![0.0; channels],
            sum_dy_xhat: vec![0.0; channels],
            frozen: false,
            backend: cpu(),
        }
    }

    pub fn with_eps(mut self, eps: f32) -> BatchNorm {
        self.eps = eps;
        self
    }

    pub fn with_momentum(mut self, momentum: f32) -> BatchNorm {
        self.momentum = momentum;
        self
    }
}

impl Layer for BatchNorm {
    fn kind(&self) -> &'static str {
        "batch_norm"
    }

    fn describe(&self) -> LayerDesc {
        LayerDesc::BatchNorm {
            channels: self.channels,
            momentum: self.momentum,
            eps: self.eps,
        }
    }

    fn output_shape(&self, inputs: &[Vec<usize>]) -> Result<Vec<usize>, EngineError> {
        let s = one_input("batch_norm", inputs)?;
        if s.last() != Some(&self.channels) {
            return Err(EngineError::Shape(format!(
                "batch_norm expects {} channels on the last axis, got input {s:?}",
                self.channels
            )));
        }
        Ok(s.to_vec())
    }

    fn forward(&mut self, out: &mut Tensor, inputs: &[&Tensor], mode: Mode) {
        let x = inputs[0];
        let c = self.channels;
        out.resize(&x.shape);
        self.xhat.resize(&x.shape);
        self.used_batch_stats = mode.is_training();
        if self.used_batch_stats {
            self.backend
                .channel_moments(&mut self.mean, &mut self.var, &x.data, c);
            let m = self.momentum;
            for ch in 0..c {
                self.invstd[ch] = 1.0 / (self.var[ch] + self.eps).sqrt();
                let rm = &mut self.running_mean.data[ch];
                *rm = m * *rm + (1.0 - m) * self.mean[ch];
                let rv = &mut self.running_var.data[ch];
                *rv = m * *rv + (1.0 - m) * self.var[ch];
            }
        } else {
            self.mean.copy_from_slice(&self.running_mean.data);
            for ch in 0..c {
                self.invstd[ch] = 1.0 / (self.running_var.data[ch] + self.eps).sqrt();
            }
        }
        // x̂ = (x - mean) · invstd;  y = gamma · x̂ + beta
        let (g, b) = (&self.gamma.value.data, &self.beta.value.data);
        for ((y, xh), xr) in out
            .data
            .chunks_exact_mut(c)
            .zip(self.xhat.data.chunks_exact_mut(c))
            .zip(x.data.chunks_exact(c))
        {
            for ch in 0..c {
                xh[ch] = (xr[ch] - self.mean[ch]) * self.invstd[ch];
                y[ch] = g[ch] * xh[ch] + b[ch];
            }
        }
    }

    fn backward(
        &mut self,
        dinputs: &mut [Option<&mut Tensor>],
        dout: &Tensor,
        _out: &Tensor,
        _inputs: &[&Tensor],
    ) {
        let c = self.channels;
        // Σ dy and Σ dy·x̂ per channel
        self.backend.channel_sums(
            &mut self.sum_dy,
            &mut self.sum_dy_xhat,
            &dout.data,
            &self.xhat.data,
            c,
        );
        if !self.frozen {
            for ch in 0..c {
                self.beta.grad.data[ch] += self.sum_dy[ch];
                self.gamma.grad.data[ch] += self.sum_dy_xhat[ch];
            }
        }
        let Some(dx) = dinputs[0].as_deref_mut() else {
            return;
        };
        let g = &self.gamma.value.data;
        if self.used_batch_stats {
            // dx = gamma · invstd / m · (m · dy - Σdy - x̂ · Σ(dy·x̂))
            let m = (dout.len() / c.max(1)) as f32;
            for ((d, dy), xh) in dx
                .data
                .chunks_exact_mut(c)
                .zip(dout.data.chunks_exact(c))
                .zip(self.xhat.data.chunks_exact(c))
            {
                for ch in 0..c {
                    let k = g[ch] * self.invstd[ch] / m;
                    d[ch] += k * (m * dy[ch] - self.sum_dy[ch] - xh[ch] * self.sum_dy_xhat[ch]);
                }
            }
        } else {
            // Fixed statistics: an affine map, dx = gamma · invstd · dy.
            for (d, dy) in dx.data.chunks_exact_mut(c).zip(dout.data.chunks_exact(c)) {
                for ch in 0..c {
                    d[ch] += g[ch] * self.invstd[ch] * dy[ch];
                }
            }
        }
    }

    fn set_frozen(&mut self, frozen: bool) {
        self.frozen = frozen;
    }

    fn params(&self) -> Vec<&Param> {
        vec![&self.gamma, &self.beta]
    }

    fn params_mut(&mut self) -> Vec<&mut Param> {
        vec![&mut self.gamma, &mut self.beta]
    }

    fn buffers(&self) -> Vec<(&'static str, &Tensor)> {
        vec![
            ("running_mean", &self.running_mean),
            ("running_var", &self.running_var),
        ]
    }

    fn buffers_mut(&mut self) -> Vec<(&'static str, &mut Tensor)> {
        vec![
            ("running_mean", &mut self.running_mean),
            ("running_var", &mut self.running_var),
        ]
    }

    fn macs_per_example(&self, inputs: &[Vec<usize>]) -> u64 {
        inputs
            .first()
            .map_or(0, |s| s.iter().product::<usize>() as u64)
    }
}
