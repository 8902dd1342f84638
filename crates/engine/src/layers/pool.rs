//! `MaxPool2d` and `AvgPool2d`: square pooling windows over NHWC images.
//!
//! Shapes: input `x [n, h, w, c]` → output `y [n, oh, ow, c]`, with `oh, ow` from the padding
//! rule (TensorFlow semantics; padded positions never win a max, and "same" average pooling
//! divides by the number of valid elements in each window).
//! Max pooling stores the argmax of every output so its backward pass is a scatter.

use super::image_input;
use crate::backend::{cpu, Backend, Padding, PoolGeom};
use crate::{EngineError, Layer, LayerDesc, Mode, Tensor};

fn pool_geom(
    kind: &str,
    k: usize,
    stride: usize,
    padding: Padding,
    n: usize,
    (h, w, c): (usize, usize, usize),
) -> Result<PoolGeom, EngineError> {
    if k == 0 || stride == 0 {
        return Err(EngineError::Config(format!(
            "{kind} needs a window and stride of at least 1, got window {k}, stride {stride}"
        )));
    }
    let fit = |len| {
        padding.output_and_pad(len, k, stride).ok_or_else(|| {
            EngineError::Shape(format!(
                "{kind} window {k} does not fit input [{h}, {w}, {c}] with valid padding"
            ))
        })
    };
    let (oh, pad_top) = fit(h)?;
    let (ow, pad_left) = fit(w)?;
    Ok(PoolGeom {
        n,
        h,
        w,
        c,
        oh,
        ow,
        k,
        stride,
        pad_top,
        pad_left,
    })
}

fn geom_of(kind: &str, k: usize, stride: usize, padding: Padding, x: &Tensor) -> PoolGeom {
    pool_geom(
        kind,
        k,
        stride,
        padding,
        x.shape[0],
        (x.shape[1], x.shape[2], x.shape[3]),
    )
    .expect("pooling: shapes were checked when the network was built")
}

/// Max pooling with a `k`×`k` window.
pub struct MaxPool2d {
    pub k: usize,
    pub stride: usize,
    pub padding: Padding,
    /// For each output `[n, oh, ow, c]`, the index of the winning input within its example.
    argmax: Vec<u32>,
    backend: &'static dyn Backend,
}

impl MaxPool2d {
    pub fn new(k: usize, stride: usize, padding: Padding) -> MaxPool2d {
        MaxPool2d {
            k,
            stride,
            padding,
            argmax: Vec::new(),
            backend: cpu(),
        }
    }
}

impl Layer for MaxPool2d {
    fn kind(&self) -> &'static str {
        "max_pool2d"
    }

    fn describe(&self) -> LayerDesc {
        LayerDesc::MaxPool2d {
            k: self.k,
            stride: self.stride,
            padding: self.padding,
        }
    }

    fn output_shape(&self, inputs: &[Vec<usize>]) -> Result<Vec<usize>, EngineError> {
        let hwc = image_input("max_pool2d", inputs)?;
        let g = pool_geom("max_pool2d", self.k, self.stride, self.padding, 1, hwc)?;
        Ok(vec![g.oh, g.ow, g.c])
    }

    fn forward(&mut self, out: &mut Tensor, inputs: &[&Tensor], mode: Mode) {
        let x = inputs[0];
        let g = geom_of("max_pool2d", self.k, self.stride, self.padding, x);
        out.resize(&[g.n, g.oh, g.ow, g.c]);
        // Only training needs the winners' positions (for the backward pass).
        let argmax = if mode.keeps_backward_state() {
            self.argmax.resize(out.len(), 0);
            Some(&mut self.argmax[..])
        } else {
            self.argmax.clear();
            None
        };
        self.backend
            .max_pool_forward(&mut out.data, argmax, &x.data, &g);
    }

    fn backward(
        &mut self,
        dinputs: &mut [Option<&mut Tensor>],
        dout: &Tensor,
        _out: &Tensor,
        inputs: &[&Tensor],
    ) {
        let g = geom_of("max_pool2d", self.k, self.stride, self.padding, inputs[0]);
        assert_eq!(
            self.argmax.len(),
            dout.len(),
            "max_pool2d: backward needs a forward pass in Train or Explain mode"
        );
        if let Some(dx) = dinputs[0].as_deref_mut() {
            self.backend
                .max_pool_backward(&mut dx.data, &dout.data, &self.argmax, &g);
        }
    }
}

/// Average pooling with a `k`×`k` window.
pub struct AvgPool2d {
    pub k: usize,
    pub stride: usize,
    pub padding: Padding,
    backend: &'static dyn Backend,
}

impl AvgPool2d {
    pub fn new(k: usize, stride: usize, padding: Padding) -> AvgPool2d {
        AvgPool2d {
            k,
            stride,
            padding,
            backend: cpu(),
        }
    }
}

impl Layer for AvgPool2d {
    fn kind(&self) -> &'static str {
        "avg_pool2d"
    }

    fn describe(&self) -> LayerDesc {
        LayerDesc::AvgPool2d {
            k: self.k,
            stride: self.stride,
            padding: self.padding,
        }
    }

    fn output_shape(&self, inputs: &[Vec<usize>]) -> Result<Vec<usize>, EngineError> {
        let hwc = image_input("avg_pool2d", inputs)?;
        let g = pool_geom("avg_pool2d", self.k, self.stride, self.padding, 1, hwc)?;
        Ok(vec![g.oh, g.ow, g.c])
    }

    fn forward(&mut self, out: &mut Tensor, inputs: &[&Tensor], _mode: Mode) {
        let x = inputs[0];
        let g = geom_of("avg_pool2d", self.k, self.stride, self.padding, x);
        out.resize(&[g.n, g.oh, g.ow, g.c]);
        self.backend.avg_pool_forward(&mut out.data, &x.data, &g);
    }

    fn backward(
        &mut self,
        dinputs: &mut [Option<&mut Tensor>],
        dout: &Tensor,
        _out: &Tensor,
        inputs: &[&Tensor],
    ) {
        let g = geom_of("avg_pool2d", self.k, self.stride, self.padding, inputs[0]);
        if let Some(dx) = dinputs[0].as_deref_mut() {
            self.backend.avg_pool_backward(&mut dx.data, &dout.data, &g);
        }
    }
}
