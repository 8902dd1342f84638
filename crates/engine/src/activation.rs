//! `Activation`: the element-wise non-linearities, usable on their own (the `ActivationLayer`) or
//! fused into the epilogue of `Conv2d` and `Dense` (Keras's `activation=` argument).

use serde::{Deserialize, Serialize};

/// An element-wise activation function.
///
/// `Gelu` is the exact form `x * Φ(x)` with the Gaussian CDF computed through `erf` (Keras's
/// default, `approximate=False`), not the tanh approximation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub enum Activation {
    #[default]
    Linear,
    Relu,
    /// `x` for `x > 0`, `alpha * x` otherwise (`alpha` ≥ 0).
    LeakyRelu(f32),
    /// `x` for `x > 0`, `alpha * (exp(x) - 1)` otherwise (`alpha` > 0).
    Elu(f32),
    Gelu,
    Sigmoid,
    Tanh,
}

impl Activation {
    /// Short name for summaries and errors.
    pub fn name(&self) -> &'static str {
        match self {
            Activation::Linear => "linear",
            Activation::Relu => "relu",
            Activation::LeakyRelu(_) => "leaky_relu",
            Activation::Elu(_) => "elu",
            Activation::Gelu => "gelu",
            Activation::Sigmoid => "sigmoid",
            Activation::Tanh => "tanh",
        }
    }

    /// Whether the derivative needs the pre-activation input; every other activation's derivative
    /// is computed from its output alone, so fused layers keep no extra buffer for them.
    pub fn needs_input(&self) -> bool {
        matches!(self, Activation::Gelu)
    }

    /// `f(x)`.
    #[inline(always)]
    pub fn apply(&self, x: f32) -> f32 {
        match *self {
            Activation::Linear => x,
            Activation::Relu => x.max(0.0),
            Activation::LeakyRelu(a) => {
                if x > 0.0 {
                    x
                } else {
                    a * x
                }
            }
            Activation::Elu(a) => {
                if x > 0.0 {
                    x
                } else {
                    a * (x.exp() - 1.0)
                }
            }
            Activation::Gelu => 0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2)),
            Activation::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            Activation::Tanh => x.tanh(),
        }
    }

    /// `f'(x)` given the input `x` (only read by `Gelu`) and the output `y = f(x)`.
    #[inline(always)]
    pub fn derivative(&self, x: f32, y: f32) -> f32 {
        match *self {
            Activation::Linear => 1.0,
            Activation::Relu => {
                if y > 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
            Activation::LeakyRelu(a) => {
                if y > 0.0 {
                    1.0
                } else {
                    a
                }
            }
            Activation::Elu(a) => {
                if y > 0.0 {
                    1.0
                } else {
                    y + a
                }
            }
            Activation::Gelu => {
                let cdf = 0.5 * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2));
                let pdf = (-0.5 * x * x).exp() * 0.398_942_3;
                cdf + x * pdf
            }
            Activation::Sigmoid => y * (1.0 - y),
            Activation::Tanh => 1.0 - y * y,
        }
    }
}

/// The error function via the Chebyshev fit of `erfc` from Numerical Recipes (fractional error
/// below 1.2e-7 everywhere, evaluated in f64), enough for f32.
pub fn erf(x: f32) -> f32 {
    let z = (x as f64).abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87
                                        + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    let v = 1.0 - r;
    (if x >= 0.0 { v } else { -v }) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_values() {
        // erf(0.5) = 0.5204998778, erf(1) = 0.8427007929, erf(2) = 0.9953222650
        assert!((erf(0.5) - 0.520_499_9).abs() < 1e-6);
        assert!((erf(1.0) - 0.842_700_8).abs() < 1e-6);
        assert!((erf(-2.0) + 0.995_322_3).abs() < 1e-6);
        assert!(erf(0.0).abs() < 1e-7);
    }

    #[test]
    fn gelu_known_values() {
        // gelu(1) = 0.8413447, gelu(-1) = -0.1586553
        assert!((Activation::Gelu.apply(1.0) - 0.841_344_7).abs() < 1e-6);
        assert!((Activation::Gelu.apply(-1.0) + 0.158_655_3).abs() < 1e-6);
    }
}
