//! `GlobalAvgPool`: the mean over all spatial positions of NHWC images.
//!
//! Shapes: input `x [n, h, w, c]` → output `y [n, c]`; `y[n, c] = mean_{h,w} x[n, h, w, c]`.

use super::image_input;
use crate::{EngineError, Layer, LayerDesc, Mode, Tensor};

#[derive(Default)]
pub struct GlobalAvgPool;

impl GlobalAvgPool {
    pub fn new() -> GlobalAvgPool {
        GlobalAvgPool
    }
}

impl Layer for GlobalAvgPool {
    fn kind(&self) -> &'static str {
        "global_avg_pool"
    }

    fn describe(&self) -> LayerDesc {
        LayerDesc::GlobalAvgPool
    }

    fn output_shape(&self, inputs: &[Vec<usize>]) -> Result<Vec<usize>, EngineError> {
        let (h, w, c) = image_input("global_avg_pool", inputs)?;
        if h * w == 0 {
            return Err(EngineError::Shape(format!(
                "global_avg_pool needs a non-empty image, got [{h}, {w}, {c}]"
            )));
        }
        Ok(vec![c])
    }

    fn forward(&mut self, out: &mut Tensor, inputs: &[&Tensor], _mode: Mode) {
        let x = inputs[0];
        let (n, c) = (x.shape[0], x.shape[3]);
        let hw = x.shape[1] * x.shape[2];
        out.resize(&[n, c]);
        let inv = 1.0 / hw as f32;
        for (y, img) in out
            .data
            .chunks_exact_mut(c)
            .zip(x.data.chunks_exact(hw * c))
        {
            y.fill(0.0);
            for px in img.chunks_exact(c) {
                y.iter_mut().zip(px).for_each(|(a, v)| *a += v);
            }
            y.iter_mut().for_each(|a| *a *= inv);
        }
    }

    fn backward(
        &mut self,
        dinputs: &mut [Option<&mut Tensor>],
        dout: &Tensor,
        _out: &Tensor,
        inputs: &[&Tensor],
    ) {
        let x = inputs[0];
        let c = x.shape[3];
        let hw = x.shape[1] * x.shape[2];
        let inv = 1.0 / hw as f32;
        if let Some(dx) = dinputs[0].as_deref_mut() {
            for (dy, dimg) in dout
                .data
                .chunks_exact(c)
                .zip(dx.data.chunks_exact_mut(hw * c))
            {
                for px in dimg.chunks_exact_mut(c) {
                    px.iter_mut().zip(dy).for_each(|(d, g)| *d += g * inv);
                }
            }
        }
    }
}
