//! `Flatten`: reshapes each example to a vector.
//!
//! Shapes: input `x [n, d1, d2, ..]` → output `y [n, d1·d2·..]` (row-major, so an NHWC image
//! flattens in (h, w, c) order, as Keras's `Flatten` does on channels-last data).

use super::one_input;
use crate::{EngineError, Layer, LayerDesc, Mode, Tensor};

#[derive(Default)]
pub struct Flatten;

impl Flatten {
    pub fn new() -> Flatten {
        Flatten
    }
}

impl Layer for Flatten {
    fn kind(&self) -> &'static str {
        "flatten"
    }

    fn describe(&self) -> LayerDesc {
        LayerDesc::Flatten
    }

    fn output_shape(&self, inputs: &[Vec<usize>]) -> Result<Vec<usize>, EngineError> {
        Ok(vec![one_input("flatten", inputs)?.iter().product()])
    }

    fn forward(&mut self, out: &mut Tensor, inputs: &[&Tensor], _mode: Mode) {
        let x = inputs[0];
        out.resize(&[x.batch(), x.per_example()]);
        out.data.copy_from_slice(&x.data);
    }

    fn backward(
        &mut self,
        dinputs: &mut [Option<&mut Tensor>],
        dout: &Tensor,
        _out: &Tensor,
        _inputs: &[&Tensor],
    ) {
        if let Some(dx) = dinputs[0].as_deref_mut() {
            dx.data
                .iter_mut()
                .zip(&dout.data)
                .for_each(|(d, g)| *d += g);
        }
    }
}
