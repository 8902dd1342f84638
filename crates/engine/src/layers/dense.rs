//! `Dense`: a fully connected layer with optional bias and a fused activation.
//!
//! Shapes: input `x [n, ..]` (any per-example shape, read as `[n, in]`) → output `y [n, out]`;
//! `weight [in, out]`, `bias [out]`. `y = act(x · weight + bias)`.
//! Weights are Glorot-uniform from the seed, bias zeros.

use super::one_input;
use crate::backend::{cpu, Backend};
use crate::rng::glorot_uniform;
use crate::{Activation, EngineError, Layer, LayerDesc, Mode, Param, Tensor};

pub struct Dense {
    pub inputs: usize,
    pub outputs: usize,
    pub activation: Activation,
    /// `[in, out]`
    weight: Param,
    /// `[out]`
    bias: Option<Param>,
    /// Pre-activation `[n, out]`, kept only when the activation's derivative needs it.
    pre: Tensor,
    /// `dz = dy ⊙ act'` `[n, out]`, reused every step.
    dz: Tensor,
    /// No parameter gradients in backward ([`Layer::set_frozen`]).
    frozen: bool,
    backend: &'static dyn Backend,
}

impl Dense {
    pub fn new(
        inputs: usize,
        outputs: usize,
        bias: bool,
        activation: Activation,
        seed: u64,
    ) -> Dense {
        let w = glorot_uniform(inputs * outputs, inputs, outputs, seed);
        Dense {
            inputs,
            outputs,
            activation,
            weight: Param::new(
                "weight",
                Tensor::from_vec(&[inputs, outputs], w).expect("length matches"),
            ),
            bias: bias.then(|| Param::new("bias", Tensor::zeros(&[outputs]))),
            pre: Tensor::default(),
            dz: Tensor::default(),
            frozen: false,
            backend: cpu(),
        }
    }

    /// Runs this layer's kernels on `backend` instead of the CPU.
    pub fn with_backend(mut self, backend: &'static dyn Backend) -> Dense {
        self.backend = backend;
        self
    }
}

impl Layer for Dense {
    fn kind(&self) -> &'static str {
        "dense"
    }

    fn describe(&self) -> LayerDesc {
        LayerDesc::Dense {
            inputs: self.inputs,
            outputs: self.outputs,
            bias: self.bias.is_some(),
            activation: self.activation,
        }
    }

    fn output_shape(&self, inputs: &[Vec<usize>]) -> Result<Vec<usize>, EngineError> {
        let s = one_input("dense", inputs)?;
        let flat: usize = s.iter().product();
        if flat != self.inputs {
            return Err(EngineError::Shape(format!(
                "dense expects {} input features, got input {s:?} ({flat} features)",
                self.inputs
            )));
        }
        if self.outputs == 0 {
            return Err(EngineError::Config("dense needs at least 1 unit".into()));
        }
        Ok(vec![self.outputs])
    }

    fn forward(&mut self, out: &mut Tensor, inputs: &[&Tensor], _mode: Mode) {
        let x = inputs[0];
        let (n, din, dout) = (x.batch(), self.inputs, self.outputs);
        out.resize(&[n, dout]);
        // y[n, out] = x[n, in] · w[in, out]
        self.backend.gemm(
            n,
            dout,
            din,
            &x.data,
            false,
            &self.weight.value.data,
            false,
            &mut out.data,
            false,
        );
        let pre = if self.activation.needs_input() {
            self.pre.resize(&out.shape);
            Some(&mut self.pre.data[..])
        } else {
            None
        };
        let bias = self.bias.as_ref().map(|b| &b.value.data[..]);
        self.backend
            .bias_activation(&mut out.data, pre, bias, dout, self.activation);
    }

    fn backward(
        &mut self,
        dinputs: &mut [Option<&mut Tensor>],
        dout: &Tensor,
        out: &Tensor,
        inputs: &[&Tensor],
    ) {
        let x = inputs[0];
        let (n, din, dn) = (x.batch(), self.inputs, self.outputs);
        // dz[n, out] = dy ⊙ act'(pre)
        let dz: &[f32] = if self.activation == Activation::Linear {
            &dout.data
        } else {
            self.dz.resize(&dout.shape);
            self.dz.fill(0.0);
            let pre = if self.activation.needs_input() {
                &self.pre.data
            } else {
                &out.data
            };
            self.backend.activation_backward(
                &mut self.dz.data,
                &dout.data,
                pre,
                &out.data,
                self.activation,
            );
            &self.dz.data
        };
        if !self.frozen {
            // db[out] += Σ_n dz
            if let Some(b) = &mut self.bias {
                for row in dz.chunks_exact(dn) {
                    b.grad.data.iter_mut().zip(row).for_each(|(g, d)| *g += d);
                }
            }
            // dw[in, out] += xᵀ · dz
            self.backend.gemm(
                din,
                dn,
                n,
                &x.data,
                true,
                dz,
                false,
                &mut self.weight.grad.data,
                true,
            );
        }
        // dx[n, in] += dz · wᵀ
        if let Some(dx) = dinputs[0].as_deref_mut() {
            self.backend.gemm(
                n,
                din,
                dn,
                dz,
                false,
                &self.weight.value.data,
                true,
                &mut dx.data,
                true,
            );
        }
    }

    fn set_frozen(&mut self, frozen: bool) {
        self.frozen = frozen;
    }

    fn params(&self) -> Vec<&Param> {
        std::iter::once(&self.weight).chain(&self.bias).collect()
    }

    fn params_mut(&mut self) -> Vec<&mut Param> {
        std::iter::once(&mut self.weight)
            .chain(&mut self.bias)
            .collect()
    }

    fn macs_per_example(&self, _inputs: &[Vec<usize>]) -> u64 {
        (self.inputs * self.outputs) as u64
    }
}
