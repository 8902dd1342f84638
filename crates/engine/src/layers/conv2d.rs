//! `Conv2d`: 2-D convolution over NHWC images with optional bias and a fused activation.
//!
//! Shapes: input `x [n, h, w, in_ch]` → output `y [n, oh, ow, out_ch]`;
//! `weight [out_ch, kh, kw, in_ch]`, `bias [out_ch]`.
//! `y = act(conv(x, weight) + bias)` in one pass (Keras's `Conv2D(activation=...)`).
//! Padding follows TensorFlow: `Valid`, or `Same` with the extra row/column at the bottom/right.
//! Weights are Glorot-uniform from the seed (fan_in = kh·kw·in_ch, fan_out = kh·kw·out_ch),
//! bias zeros.

use super::image_input;
use crate::backend::{cpu, Backend, ConvGeom, Padding, Scratch};
use crate::rng::glorot_uniform;
use crate::{Activation, EngineError, Layer, LayerDesc, Mode, Param, Tensor};

pub struct Conv2d {
    pub in_ch: usize,
    pub out_ch: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: usize,
    pub padding: Padding,
    pub activation: Activation,
    /// `[out_ch, kh, kw, in_ch]`
    weight: Param,
    /// `[out_ch]`
    bias: Option<Param>,
    /// Pre-activation `[n, oh, ow, out_ch]`, kept only when the activation's derivative needs it.
    pre: Tensor,
    scratch: Scratch,
    /// No parameter gradients in backward ([`Layer::set_frozen`]).
    frozen: bool,
    backend: &'static dyn Backend,
}

impl Conv2d {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        in_ch: usize,
        out_ch: usize,
        kh: usize,
        kw: usize,
        stride: usize,
        padding: Padding,
        bias: bool,
        activation: Activation,
        seed: u64,
    ) -> Conv2d {
        let len = out_ch * kh * kw * in_ch;
        let w = glorot_uniform(len, kh * kw * in_ch, kh * kw * out_ch, seed);
        let weight = Param::new(
            "weight",
            Tensor::from_vec(&[out_ch, kh, kw, in_ch], w).expect("length matches"),
        );
        Conv2d {
            in_ch,
            out_ch,
            kh,
            kw,
            stride,
            padding,
            activation,
            weight,
            bias: bias.then(|| Param::new("bias", Tensor::zeros(&[out_ch]))),
            pre: Tensor::default(),
            scratch: Scratch::default(),
            frozen: false,
            backend: cpu(),
        }
    }

    /// Runs this layer's kernels on `backend` instead of the CPU.
    pub fn with_backend(mut self, backend: &'static dyn Backend) -> Conv2d {
        self.backend = backend;
        self
    }

    fn geom(&self, n: usize, h: usize, w: usize) -> Option<ConvGeom> {
        let (oh, pad_top) = self.padding.output_and_pad(h, self.kh, self.stride)?;
        let (ow, pad_left) = self.padding.output_and_pad(w, self.kw, self.stride)?;
        Some(ConvGeom {
            n,
            h,
            w,
            c_in: self.in_ch,
            oh,
            ow,
            c_out: self.out_ch,
            kh: self.kh,
            kw: self.kw,
            stride: self.stride,
            pad_top,
            pad_left,
        })
    }

    fn geom_of(&self, x: &Tensor) -> ConvGeom {
        self.geom(x.shape[0], x.shape[1], x.shape[2])
            .expect("conv2d: shapes were checked when the network was built")
    }
}

impl Layer for Conv2d {
    fn kind(&self) -> &'static str {
        "conv2d"
    }

    fn describe(&self) -> LayerDesc {
        LayerDesc::Conv2d {
            in_ch: self.in_ch,
            out_ch: self.out_ch,
            kh: self.kh,
            kw: self.kw,
            stride: self.stride,
            padding: self.padding,
            bias: self.bias.is_some(),
            activation: self.activation,
        }
    }

    fn output_shape(&self, inputs: &[Vec<usize>]) -> Result<Vec<usize>, EngineError> {
        let (h, w, c) = image_input("conv2d", inputs)?;
        if self.kh == 0 || self.kw == 0 || self.stride == 0 || self.out_ch == 0 {
            return Err(EngineError::Config(format!(
                "conv2d needs a kernel, stride and filter count of at least 1, got kernel {}x{}, \
                 stride {}, {} filters",
                self.kh, self.kw, self.stride, self.out_ch
            )));
        }
        if c != self.in_ch {
            return Err(EngineError::Shape(format!(
                "conv2d expects {} input channels, got input [{h}, {w}, {c}]",
                self.in_ch
            )));
        }
        let g = self.geom(1, h, w).ok_or_else(|| {
            EngineError::Shape(format!(
                "conv2d kernel {}x{} does not fit input [{h}, {w}, {c}] with valid padding",
                self.kh, self.kw
            ))
        })?;
        Ok(vec![g.oh, g.ow, self.out_ch])
    }

    fn forward(&mut self, out: &mut Tensor, inputs: &[&Tensor], _mode: Mode) {
        let x = inputs[0];
        let g = self.geom_of(x);
        out.resize(&[g.n, g.oh, g.ow, g.c_out]);
        let pre = if self.activation.needs_input() {
            self.pre.resize(&out.shape);
            Some(&mut self.pre.data[..])
        } else {
            None
        };
        self.backend.conv2d_forward(
            &mut out.data,
            pre,
            &x.data,
            &self.weight.value.data,
            self.bias.as_ref().map(|b| &b.value.data[..]),
            &g,
            self.activation,
            &mut self.scratch,
        );
    }

    fn backward(
        &mut self,
        dinputs: &mut [Option<&mut Tensor>],
        dout: &Tensor,
        out: &Tensor,
        inputs: &[&Tensor],
    ) {
        let x = inputs[0];
        let g = self.geom_of(x);
        let dx = dinputs[0].as_deref_mut().map(|t| &mut t.data[..]);
        let pre = self.activation.needs_input().then_some(&self.pre.data[..]);
        self.backend.conv2d_backward(
            dx,
            (!self.frozen).then_some(&mut self.weight.grad.data[..]),
            self.bias
                .as_mut()
                .filter(|_| !self.frozen)
                .map(|b| &mut b.grad.data[..]),
            &dout.data,
            &out.data,
            pre,
            &x.data,
            &self.weight.value.data,
            &g,
            self.activation,
            &mut self.scratch,
        );
    }

    fn set_frozen(&mut self, frozen: bool) {
        self.frozen = frozen;
    }

    fn params(&self) -> Vec<&Param> {
        std::iter::once(&self.weight).chain(&self.bias).collect()
    }

    fn params_mut(&mut self) -> Vec<&mut Param> {
        // Whoever borrows the weights mutably may change them: rebuild kernel transforms.
        self.scratch.invalidate();
        std::iter::once(&mut self.weight)
            .chain(&mut self.bias)
            .collect()
    }

    fn macs_per_example(&self, inputs: &[Vec<usize>]) -> u64 {
        match self.output_shape(inputs) {
            Ok(s) => (s[0] * s[1] * s[2] * self.kh * self.kw * self.in_ch) as u64,
            Err(_) => 0,
        }
    }
}
