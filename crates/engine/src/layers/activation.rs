//! `ActivationLayer`: an element-wise [`Activation`] as a layer of its own.
//!
//! Shapes: input `x [n, ..s]` → output `y [n, ..s]`; `y = f(x)`, `dx += dy · f'(x)`.

use super::one_input;
use crate::backend::{cpu, Backend};
use crate::{Activation, EngineError, Layer, LayerDesc, Mode, Tensor};

pub struct ActivationLayer {
    pub activation: Activation,
    backend: &'static dyn Backend,
}

impl ActivationLayer {
    pub fn new(activation: Activation) -> ActivationLayer {
        ActivationLayer {
            activation,
            backend: cpu(),
        }
    }
}

impl Layer for ActivationLayer {
    fn kind(&self) -> &'static str {
        "activation"
    }

    fn describe(&self) -> LayerDesc {
        LayerDesc::Activation(self.activation)
    }

    fn output_shape(&self, inputs: &[Vec<usize>]) -> Result<Vec<usize>, EngineError> {
        Ok(one_input("activation", inputs)?.to_vec())
    }

    fn forward(&mut self, out: &mut Tensor, inputs: &[&Tensor], _mode: Mode) {
        let x = inputs[0];
        out.resize(&x.shape);
        self.backend
            .activation_forward(&mut out.data, &x.data, self.activation);
    }

    fn backward(
        &mut self,
        dinputs: &mut [Option<&mut Tensor>],
        dout: &Tensor,
        out: &Tensor,
        inputs: &[&Tensor],
    ) {
        if let Some(dx) = dinputs[0].as_deref_mut() {
            self.backend.activation_backward(
                &mut dx.data,
                &dout.data,
                &inputs[0].data,
                &out.data,
                self.activation,
            );
        }
    }
}
