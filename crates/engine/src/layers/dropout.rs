//! `Dropout`: inverted dropout. In training each element is zeroed with probability `rate` and
//! the survivors are scaled by `1 / (1 - rate)`; in eval it is the identity.
//!
//! Shapes: input `x [n, ..s]` → output `y [n, ..s]`. The mask is a pure function of
//! `(seed, step, element index)` — counter-based, so it is the same for any thread count — and
//! `step` advances by one after every training forward pass ([`Dropout::set_step`] rewinds it).

use super::one_input;
use crate::rng::mix64;
use crate::{EngineError, Layer, LayerDesc, Mode, Tensor};

pub struct Dropout {
    pub rate: f32,
    seed: u64,
    step: u64,
    /// Per-element scale of the last forward pass: `0` or `1 / (1 - rate)`; empty after eval.
    mask: Vec<f32>,
}

impl Dropout {
    pub fn new(rate: f32, seed: u64) -> Dropout {
        Dropout {
            rate,
            seed,
            step: 0,
            mask: Vec::new(),
        }
    }

    /// The step the next training forward pass will draw its mask for.
    pub fn step(&self) -> u64 {
        self.step
    }

    pub fn set_step(&mut self, step: u64) {
        self.step = step;
    }
}

impl Layer for Dropout {
    fn kind(&self) -> &'static str {
        "dropout"
    }

    fn describe(&self) -> LayerDesc {
        LayerDesc::Dropout {
            rate: self.rate,
            seed: self.seed,
        }
    }

    fn set_training_step(&mut self, step: u64) {
        self.step = step;
    }

    fn output_shape(&self, inputs: &[Vec<usize>]) -> Result<Vec<usize>, EngineError> {
        if !(0.0..1.0).contains(&self.rate) {
            return Err(EngineError::Config(format!(
                "dropout rate must be in [0, 1), got {}",
                self.rate
            )));
        }
        Ok(one_input("dropout", inputs)?.to_vec())
    }

    fn forward(&mut self, out: &mut Tensor, inputs: &[&Tensor], mode: Mode) {
        let x = inputs[0];
        out.resize(&x.shape);
        if !mode.is_training() || self.rate == 0.0 {
            self.mask.clear();
            out.data.copy_from_slice(&x.data);
            return;
        }
        let keep = 1.0 - self.rate;
        let scale = 1.0 / keep;
        // Keep an element when its 24-bit uniform draw is at least `rate`.
        let threshold = (self.rate as f64 * (1u64 << 24) as f64) as u64;
        let base = mix64(mix64(self.seed ^ 0xD1B5_4A32_D192_ED03).wrapping_add(self.step));
        self.mask.resize(x.len(), 0.0);
        for (i, m) in self.mask.iter_mut().enumerate() {
            let u = mix64(base.wrapping_add(i as u64)) >> 40;
            *m = if u >= threshold { scale } else { 0.0 };
        }
        for ((o, &v), &m) in out.data.iter_mut().zip(&x.data).zip(&self.mask) {
            *o = v * m;
        }
        self.step += 1;
    }

    fn backward(
        &mut self,
        dinputs: &mut [Option<&mut Tensor>],
        dout: &Tensor,
        _out: &Tensor,
        _inputs: &[&Tensor],
    ) {
        let Some(dx) = dinputs[0].as_deref_mut() else {
            return;
        };
        if self.mask.is_empty() {
            dx.data
                .iter_mut()
                .zip(&dout.data)
                .for_each(|(d, g)| *d += g);
        } else {
            for ((d, &g), &m) in dx.data.iter_mut().zip(&dout.data).zip(&self.mask) {
                *d += g * m;
            }
        }
    }
}
