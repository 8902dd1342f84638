//! [`Method`]: the attribution methods, their options, and what each returns ([`Attribution`]).

use serde::Serialize;

use super::{Baseline, ExplainedOutput, Explainer};
use crate::{Error, Result};

/// How to attribute one prediction to the input's values (serialized by its CLI name).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Method {
    /// `∂f/∂x`.
    #[serde(rename = "saliency")]
    Saliency,
    /// `(x - baseline) ⊙ ∂f/∂x`.
    #[serde(rename = "input-x-gradient")]
    InputXGradient,
    /// `(x - baseline) ⊙ ∫₀¹ ∂f/∂x(baseline + α(x - baseline)) dα`.
    #[serde(rename = "ig")]
    IntegratedGradients,
    /// The fall of `f` when a window of the input is set to the baseline.
    #[serde(rename = "occlusion")]
    Occlusion,
    /// The last convolution's feature maps weighted by their mean gradient (images only).
    #[serde(rename = "gradcam")]
    GradCam,
}

impl Method {
    pub const NAMES: &'static [&'static str] =
        &["ig", "saliency", "input-x-gradient", "occlusion", "gradcam"];

    pub fn parse(text: &str) -> Result<Method> {
        Ok(match text {
            "ig" | "integrated-gradients" => Method::IntegratedGradients,
            "saliency" => Method::Saliency,
            "input-x-gradient" | "ixg" => Method::InputXGradient,
            "occlusion" => Method::Occlusion,
            "gradcam" | "grad-cam" => Method::GradCam,
            other => {
                return Err(Error::Config(format!(
                "unknown explanation method '{other}' (known: {}; permutation for a table's data)",
                Method::NAMES.join(", ")
            )))
            }
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Method::Saliency => "saliency",
            Method::InputXGradient => "input-x-gradient",
            Method::IntegratedGradients => "ig",
            Method::Occlusion => "occlusion",
            Method::GradCam => "gradcam",
        }
    }
}

/// Settings shared by the methods.
#[derive(Clone, Debug)]
pub struct ExplainOptions {
    pub method: Method,
    pub baseline: Baseline,
    /// Integrated Gradients' path steps (to start with).
    pub steps: usize,
    /// Integrated Gradients: inputs whose completeness error is above this share of
    /// `|f(x) - f(baseline)|` are integrated again with more steps; `None` keeps `steps`.
    pub tolerance: Option<f32>,
    /// Integrated Gradients: refinement doubles the steps while they stay within this.
    pub max_steps: usize,
    /// Occlusion's window side in pixels (tables: one column at a time).
    pub window: Option<usize>,
    /// Seeds the noise baseline.
    pub seed: u64,
}

impl ExplainOptions {
    pub fn new(method: Method, baseline: Baseline) -> ExplainOptions {
        ExplainOptions {
            method,
            baseline,
            steps: super::DEFAULT_STEPS,
            tolerance: Some(super::integrated::DEFAULT_TOLERANCE),
            max_steps: super::integrated::DEFAULT_MAX_STEPS,
            window: None,
            seed: 0,
        }
    }
}

/// One input's explanation: an attribution per model input value, for one output.
#[derive(Clone, Debug, Serialize)]
pub struct Attribution {
    pub target: usize,
    /// The explained output at the input: a probability, or a value in the target's units.
    pub value: f32,
    /// One per model input value, in the input's layout (HWC for images).
    pub values: Vec<f32>,
    /// Integrated Gradients only: how far the attributions' sum is from `f(x) - f(baseline)`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completeness: Option<Completeness>,
}

/// Integrated Gradients' completeness check: `Σ attributions` against `f(x) - f(baseline)`.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Completeness {
    /// The path steps integrated (more than asked for when refinement was needed).
    pub steps: usize,
    pub baseline_value: f32,
    pub sum: f32,
    /// `|sum - (f(x) - f(baseline))|`.
    pub error: f32,
    /// `error / |f(x) - f(baseline)|` (0 when the two are equal).
    pub relative_error: f32,
}

impl Completeness {
    pub fn new(value: f32, baseline_value: f32, sum: f32, steps: usize) -> Completeness {
        let delta = value - baseline_value;
        let error = (sum - delta).abs();
        Completeness {
            steps,
            baseline_value,
            sum,
            error,
            relative_error: if delta != 0.0 {
                error / delta.abs()
            } else {
                0.0
            },
        }
    }
}

impl Explainer {
    /// Explains each input of `x` (inputs end to end) for its output in `targets`.
    pub fn explain(
        &mut self,
        x: &[f32],
        targets: &[ExplainedOutput],
        options: &ExplainOptions,
    ) -> Result<Vec<Attribution>> {
        self.check_request(x, targets, options)?;
        let baselines = options
            .baseline
            .build(x, &self.meta.data.preprocessing, options.seed)?;
        self.explain_from(x, &baselines, targets, options)
    }

    /// [`Explainer::explain`] from baselines the caller already built (one per input, by
    /// `options.baseline`), for callers that score the explanations against them too.
    pub fn explain_from(
        &mut self,
        x: &[f32],
        baselines: &[f32],
        targets: &[ExplainedOutput],
        options: &ExplainOptions,
    ) -> Result<Vec<Attribution>> {
        self.check_request(x, targets, options)?;
        let len = self.input_len();
        if baselines.len() != x.len() {
            return Err(Error::Config(format!(
                "explain: {} baseline values for {} input values",
                baselines.len(),
                x.len()
            )));
        }
        match options.method {
            Method::Saliency | Method::InputXGradient => {
                let (mut values, mut grads) = (Vec::new(), Vec::new());
                self.value_and_gradient(x, targets, &mut values, &mut grads);
                if options.method == Method::InputXGradient {
                    for ((g, xi), bi) in grads.iter_mut().zip(x).zip(baselines) {
                        *g *= xi - bi;
                    }
                }
                Ok(grads
                    .chunks_exact(len)
                    .zip(values)
                    .zip(targets)
                    .map(|((g, value), t)| Attribution {
                        target: t.0,
                        value,
                        values: g.to_vec(),
                        completeness: None,
                    })
                    .collect())
            }
            Method::IntegratedGradients => self.integrated_gradients_refined(
                x,
                baselines,
                targets,
                options.steps,
                options.tolerance,
                options.max_steps,
            ),
            Method::Occlusion => self.occlusion(x, baselines, targets, options.window),
            Method::GradCam => self.grad_cam(x, targets),
        }
    }

    /// Inputs that are whole, one target each and outputs the model has; steps for IG.
    fn check_request(
        &self,
        x: &[f32],
        targets: &[ExplainedOutput],
        options: &ExplainOptions,
    ) -> Result<()> {
        let len = self.input_len();
        if len == 0 || !x.len().is_multiple_of(len) || x.len() / len != targets.len() {
            return Err(Error::Config(format!(
                "explain: {} values are not {} inputs of {len} values (shape {:?})",
                x.len(),
                targets.len(),
                self.meta.input_shape
            )));
        }
        for &t in targets {
            self.check_target(t)?;
        }
        if options.method == Method::IntegratedGradients && options.steps == 0 {
            return Err(Error::Config(
                "Integrated Gradients needs at least one step (--steps)".into(),
            ));
        }
        Ok(())
    }
}
