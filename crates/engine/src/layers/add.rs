//! `Add`: the element-wise sum of two or more inputs of equal shape (residual connections).
//!
//! Shapes: inputs `x_i [n, ..s]` (all the same) → output `y [n, ..s]`; `y = Σ_i x_i`.

use crate::{EngineError, Layer, LayerDesc, Mode, Tensor};

#[derive(Default)]
pub struct Add;

impl Add {
    pub fn new() -> Add {
        Add
    }
}

impl Layer for Add {
    fn kind(&self) -> &'static str {
        "add"
    }

    fn describe(&self) -> LayerDesc {
        LayerDesc::Add
    }

    fn output_shape(&self, inputs: &[Vec<usize>]) -> Result<Vec<usize>, EngineError> {
        let first = inputs
            .first()
            .ok_or_else(|| EngineError::Shape("add needs at least one input".into()))?;
        if let Some(bad) = inputs.iter().find(|s| *s != first) {
            return Err(EngineError::Shape(format!(
                "add needs inputs of equal shape, got {first:?} and {bad:?}"
            )));
        }
        Ok(first.clone())
    }

    fn forward(&mut self, out: &mut Tensor, inputs: &[&Tensor], _mode: Mode) {
        out.resize(&inputs[0].shape);
        out.data.copy_from_slice(&inputs[0].data);
        for x in &inputs[1..] {
            out.data.iter_mut().zip(&x.data).for_each(|(o, v)| *o += v);
        }
    }

    fn backward(
        &mut self,
        dinputs: &mut [Option<&mut Tensor>],
        dout: &Tensor,
        _out: &Tensor,
        _inputs: &[&Tensor],
    ) {
        for dx in dinputs.iter_mut().flatten() {
            dx.data
                .iter_mut()
                .zip(&dout.data)
                .for_each(|(d, g)| *d += g);
        }
    }
}
