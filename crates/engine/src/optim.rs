//! Optimizers: the update rules of SGD (with momentum / Nesterov), Adam, AdamW, RMSprop and
//! Adagrad, matching Keras 3 step for step (checked against the TensorFlow 2.21 / Keras 3 fixture
//! `tests/fixtures/tensorflow_reference.json`, made by `bench/tf_reference.py`), plus gradient
//! clipping and exact checkpoint/resume of their state.
//!
//! Usage, once per training step after the backward pass:
//! ```
//! use modelsmith_engine::{Optimizer, OptimizerConfig, Param, Tensor};
//! let mut w = Param::new("weight", Tensor::from_vec(&[2], vec![1.0, -1.0]).unwrap());
//! w.grad.data.copy_from_slice(&[0.5, 0.5]);
//! let mut opt = Optimizer::new(OptimizerConfig::adam());
//! opt.step(&mut [&mut w], 1e-3).unwrap();
//! assert_eq!(opt.iterations(), 1);
//! ```
//!
//! The learning rate is *not* part of [`OptimizerConfig`]: the trainer owns it (it comes from the
//! LR schedule) and passes it to every [`Optimizer::step`].
//!
//! Weight decay (`weight_decay`, default 0 except AdamW's Keras default 0.004):
//! - `sgd`, `adam`, `rmsprop`, `adagrad`: classic L2 regularisation, coupled to the gradient:
//!   `g += weight_decay * w` before the update (PyTorch's `weight_decay` semantics). Note that
//!   Keras 3 applies its `weight_decay` argument *decoupled* for every optimizer; we keep the
//!   decoupled form for `adamw`, where it is the point of the algorithm.
//! - `adamw`: decoupled, exactly as Keras 3 does it: `w -= lr * weight_decay * w`, applied to the
//!   weights before the Adam update (which uses the unmodified gradient).
//!
//! Per-parameter state ("slots") is allocated lazily on the first `step` and matched to parameters
//! by their index in the slice, so the caller must pass parameters in the same, fixed order every
//! step (`Network::params_mut` guarantees that).

use serde::{Deserialize, Serialize};

use crate::{EngineError, Param};

fn default_beta1() -> f32 {
    0.9
}
fn default_beta2() -> f32 {
    0.999
}
fn default_eps() -> f32 {
    1e-7
}
fn default_rho() -> f32 {
    0.9
}
fn default_initial_accumulator() -> f32 {
    0.1
}
fn default_adamw_weight_decay() -> f32 {
    0.004
}

/// Which optimizer and its hyperparameters (everything but the learning rate).
///
/// Serialised with an internal `kind` tag; omitted fields take the Keras 3 defaults. In TOML:
/// ```toml
/// [optimizer]
/// kind = "sgd"        # "sgd" | "adam" | "adamw" | "rmsprop" | "adagrad"
/// momentum = 0.9
/// nesterov = true
/// weight_decay = 1e-4
/// ```
/// Unknown fields are rejected, so a typo such as `beta_1` fails loudly instead of being ignored.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum OptimizerConfig {
    /// Stochastic gradient descent. Keras defaults: momentum 0, nesterov false.
    Sgd {
        #[serde(default)]
        momentum: f32,
        #[serde(default)]
        nesterov: bool,
        /// L2 coefficient (coupled: `g += wd * w`).
        #[serde(default)]
        weight_decay: f32,
    },
    /// Adam. Keras defaults: beta1 0.9, beta2 0.999, eps 1e-7.
    Adam {
        #[serde(default = "default_beta1")]
        beta1: f32,
        #[serde(default = "default_beta2")]
        beta2: f32,
        #[serde(default = "default_eps")]
        eps: f32,
        /// L2 coefficient (coupled: `g += wd * w`).
        #[serde(default)]
        weight_decay: f32,
    },
    /// AdamW: Adam with decoupled weight decay. Keras defaults: beta1 0.9, beta2 0.999,
    /// eps 1e-7, weight_decay 0.004.
    AdamW {
        #[serde(default = "default_beta1")]
        beta1: f32,
        #[serde(default = "default_beta2")]
        beta2: f32,
        #[serde(default = "default_eps")]
        eps: f32,
        /// Decoupled decay: `w -= lr * wd * w` before the Adam update.
        #[serde(default = "default_adamw_weight_decay")]
        weight_decay: f32,
    },
    /// RMSprop. Keras defaults: rho 0.9, momentum 0, eps 1e-7, centered false.
    RmsProp {
        #[serde(default = "default_rho")]
        rho: f32,
        #[serde(default)]
        momentum: f32,
        #[serde(default = "default_eps")]
        eps: f32,
        #[serde(default)]
        centered: bool,
        /// L2 coefficient (coupled: `g += wd * w`).
        #[serde(default)]
        weight_decay: f32,
    },
    /// Adagrad. Keras defaults: initial_accumulator 0.1, eps 1e-7.
    Adagrad {
        #[serde(default = "default_initial_accumulator")]
        initial_accumulator: f32,
        #[serde(default = "default_eps")]
        eps: f32,
        /// L2 coefficient (coupled: `g += wd * w`).
        #[serde(default)]
        weight_decay: f32,
    },
}

impl Default for OptimizerConfig {
    /// Adam with Keras defaults.
    fn default() -> Self {
        OptimizerConfig::adam()
    }
}

impl OptimizerConfig {
    /// The kind names accepted in configs, in a fixed order (for optimizer-selection searches).
    pub const KINDS: [&'static str; 5] = ["sgd", "adam", "adamw", "rmsprop", "adagrad"];

    /// Plain SGD (momentum 0), Keras defaults.
    pub fn sgd() -> Self {
        OptimizerConfig::Sgd {
            momentum: 0.0,
            nesterov: false,
            weight_decay: 0.0,
        }
    }

    /// Adam, Keras defaults.
    pub fn adam() -> Self {
        OptimizerConfig::Adam {
            beta1: default_beta1(),
            beta2: default_beta2(),
            eps: default_eps(),
            weight_decay: 0.0,
        }
    }

    /// AdamW, Keras defaults (weight_decay 0.004).
    pub fn adamw() -> Self {
        OptimizerConfig::AdamW {
            beta1: default_beta1(),
            beta2: default_beta2(),
            eps: default_eps(),
            weight_decay: default_adamw_weight_decay(),
        }
    }

    /// RMSprop, Keras defaults.
    pub fn rmsprop() -> Self {
        OptimizerConfig::RmsProp {
            rho: default_rho(),
            momentum: 0.0,
            eps: default_eps(),
            centered: false,
            weight_decay: 0.0,
        }
    }

    /// Adagrad, Keras defaults.
    pub fn adagrad() -> Self {
        OptimizerConfig::Adagrad {
            initial_accumulator: default_initial_accumulator(),
            eps: default_eps(),
            weight_decay: 0.0,
        }
    }

    /// The Keras-default config for a kind name (`"sgd"`, `"adam"`, ...); `None` if unknown.
    pub fn default_for(kind: &str) -> Option<Self> {
        match kind {
            "sgd" => Some(Self::sgd()),
            "adam" => Some(Self::adam()),
            "adamw" => Some(Self::adamw()),
            "rmsprop" => Some(Self::rmsprop()),
            "adagrad" => Some(Self::adagrad()),
            _ => None,
        }
    }

    /// The lowercase kind name, as written in configs.
    pub fn kind(&self) -> &'static str {
        match self {
            OptimizerConfig::Sgd { .. } => "sgd",
            OptimizerConfig::Adam { .. } => "adam",
            OptimizerConfig::AdamW { .. } => "adamw",
            OptimizerConfig::RmsProp { .. } => "rmsprop",
            OptimizerConfig::Adagrad { .. } => "adagrad",
        }
    }

    pub fn weight_decay(&self) -> f32 {
        match *self {
            OptimizerConfig::Sgd { weight_decay, .. }
            | OptimizerConfig::Adam { weight_decay, .. }
            | OptimizerConfig::AdamW { weight_decay, .. }
            | OptimizerConfig::RmsProp { weight_decay, .. }
            | OptimizerConfig::Adagrad { weight_decay, .. } => weight_decay,
        }
    }

    /// The same config with `weight_decay` replaced.
    pub fn with_weight_decay(mut self, wd: f32) -> Self {
        match &mut self {
            OptimizerConfig::Sgd { weight_decay, .. }
            | OptimizerConfig::Adam { weight_decay, .. }
            | OptimizerConfig::AdamW { weight_decay, .. }
            | OptimizerConfig::RmsProp { weight_decay, .. }
            | OptimizerConfig::Adagrad { weight_decay, .. } => *weight_decay = wd,
        }
        self
    }

    /// Rejects nonsense hyperparameters with a message naming the field and the valid range.
    /// (The learning rate is checked by whoever owns it.)
    pub fn validate(&self) -> Result<(), String> {
        let kind = self.kind();
        let wd = self.weight_decay();
        if !(wd.is_finite() && wd >= 0.0) {
            return Err(format!(
                "optimizer {kind}: weight_decay must be >= 0, got {wd}"
            ));
        }
        let unit = |name: &str, v: f32| -> Result<(), String> {
            if (0.0..1.0).contains(&v) {
                Ok(())
            } else {
                Err(format!(
                    "optimizer {kind}: {name} must be in [0, 1), got {v}"
                ))
            }
        };
        let positive = |name: &str, v: f32| -> Result<(), String> {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(format!("optimizer {kind}: {name} must be > 0, got {v}"))
            }
        };
        match *self {
            OptimizerConfig::Sgd {
                momentum, nesterov, ..
            } => {
                unit("momentum", momentum)?;
                if nesterov && momentum == 0.0 {
                    return Err(format!(
                        "optimizer {kind}: nesterov = true needs momentum > 0"
                    ));
                }
            }
            OptimizerConfig::Adam {
                beta1, beta2, eps, ..
            }
            | OptimizerConfig::AdamW {
                beta1, beta2, eps, ..
            } => {
                unit("beta1", beta1)?;
                unit("beta2", beta2)?;
                positive("eps", eps)?;
            }
            OptimizerConfig::RmsProp {
                rho, momentum, eps, ..
            } => {
                unit("rho", rho)?;
                unit("momentum", momentum)?;
                positive("eps", eps)?;
            }
            OptimizerConfig::Adagrad {
                initial_accumulator,
                eps,
                ..
            } => {
                if !(initial_accumulator.is_finite() && initial_accumulator >= 0.0) {
                    return Err(format!(
                        "optimizer {kind}: initial_accumulator must be >= 0, got {initial_accumulator}"
                    ));
                }
                positive("eps", eps)?;
            }
        }
        Ok(())
    }

    /// Names of the per-parameter state tensors this config keeps, in storage order.
    /// Keras' names: `momentum`, `velocity`, `average_gradient`, `accumulator`.
    pub fn slot_names(&self) -> &'static [&'static str] {
        match *self {
            OptimizerConfig::Sgd { momentum, .. } if momentum != 0.0 => &["momentum"],
            OptimizerConfig::Sgd { .. } => &[],
            OptimizerConfig::Adam { .. } | OptimizerConfig::AdamW { .. } => {
                &["momentum", "velocity"]
            }
            OptimizerConfig::RmsProp {
                momentum, centered, ..
            } => match (momentum > 0.0, centered) {
                (false, false) => &["velocity"],
                (true, false) => &["velocity", "momentum"],
                (false, true) => &["velocity", "average_gradient"],
                (true, true) => &["velocity", "momentum", "average_gradient"],
            },
            OptimizerConfig::Adagrad { .. } => &["accumulator"],
        }
    }

    /// Initial value of every slot element (only Adagrad's accumulator starts non-zero).
    fn slot_init(&self) -> f32 {
        match *self {
            OptimizerConfig::Adagrad {
                initial_accumulator,
                ..
            } => initial_accumulator,
            _ => 0.0,
        }
    }
}

/// Everything needed to resume an optimizer exactly: the step count and every slot tensor.
///
/// Tensors are named `"<param index>.<slot>"`, e.g. `"0.momentum"`, `"3.velocity"`, in parameter
/// order then slot order ([`OptimizerConfig::slot_names`]). Before the first step there are none.
/// The caller may map indices to parameter names for its checkpoint format; [`Optimizer::load_state`]
/// only needs the names back in this form.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct OptimizerState {
    /// Kind name of the optimizer that produced the state (checked on load).
    pub kind: String,
    /// Number of updates applied so far (Keras' `iterations`).
    pub iterations: u64,
    pub tensors: Vec<(String, Vec<f32>)>,
}

/// An optimizer: its config plus per-parameter state. See the module docs.
#[derive(Clone, Debug)]
pub struct Optimizer {
    config: OptimizerConfig,
    iterations: u64,
    /// `slots[param][slot]`, each the same length as the parameter; empty until the first step.
    slots: Vec<Vec<Vec<f32>>>,
}

impl Optimizer {
    pub fn new(config: OptimizerConfig) -> Optimizer {
        Optimizer {
            config,
            iterations: 0,
            slots: Vec::new(),
        }
    }

    pub fn config(&self) -> &OptimizerConfig {
        &self.config
    }

    /// Number of updates applied so far.
    pub fn iterations(&self) -> u64 {
        self.iterations
    }

    /// Forgets all state (step count and slots).
    pub fn reset(&mut self) {
        self.iterations = 0;
        self.slots.clear();
    }

    /// Applies one update to every parameter from its `grad`, with learning rate `lr`.
    ///
    /// Gradients are read, never modified. Errors (leaving parameters and state untouched) if a
    /// gradient's length differs from its value's, or if the parameters do not match the state
    /// allocated on an earlier step or loaded from a checkpoint.
    pub fn step(&mut self, params: &mut [&mut Param], lr: f32) -> Result<(), EngineError> {
        for p in params.iter() {
            if p.grad.len() != p.value.len() {
                return Err(EngineError::Shape(format!(
                    "optimizer: parameter `{}` has {} values but its gradient has {}",
                    p.name,
                    p.value.len(),
                    p.grad.len()
                )));
            }
        }
        let n_slots = self.config.slot_names().len();
        if self.slots.is_empty() && !params.is_empty() {
            let init = self.config.slot_init();
            self.slots = params
                .iter()
                .map(|p| vec![vec![init; p.value.len()]; n_slots])
                .collect();
        } else {
            self.check_slots(params)?;
        }

        self.iterations += 1;
        let t = self.iterations;
        for (p, slots) in params.iter_mut().zip(self.slots.iter_mut()) {
            let Param { value, grad, .. } = &mut **p;
            update(&self.config, t, lr, &mut value.data, &grad.data, slots);
        }
        Ok(())
    }

    fn check_slots(&self, params: &[&mut Param]) -> Result<(), EngineError> {
        if self.slots.len() != params.len() {
            return Err(EngineError::Shape(format!(
                "optimizer: state holds {} parameters but {} were passed",
                self.slots.len(),
                params.len()
            )));
        }
        for (i, (p, slots)) in params.iter().zip(&self.slots).enumerate() {
            if let Some(s) = slots.iter().find(|s| s.len() != p.value.len()) {
                return Err(EngineError::Shape(format!(
                    "optimizer: state of parameter {i} (`{}`) has {} values, the parameter has {}",
                    p.name,
                    s.len(),
                    p.value.len()
                )));
            }
        }
        Ok(())
    }

    /// A copy of the state for checkpointing.
    pub fn state(&self) -> OptimizerState {
        let names = self.config.slot_names();
        let mut tensors = Vec::with_capacity(self.slots.len() * names.len());
        for (i, slots) in self.slots.iter().enumerate() {
            for (name, s) in names.iter().zip(slots) {
                tensors.push((format!("{i}.{name}"), s.clone()));
            }
        }
        OptimizerState {
            kind: self.config.kind().to_string(),
            iterations: self.iterations,
            tensors,
        }
    }

    /// Restores a state saved by [`Optimizer::state`] from an optimizer with the same config, so
    /// that the next `step` continues exactly where the saved one left off. Tensor order does not
    /// matter; names must be complete. Parameter sizes are checked on the next `step`.
    pub fn load_state(&mut self, state: OptimizerState) -> Result<(), EngineError> {
        let kind = self.config.kind();
        if state.kind != kind {
            return Err(EngineError::Config(format!(
                "optimizer state is for `{}` but the optimizer is `{kind}`",
                state.kind
            )));
        }
        let names = self.config.slot_names();
        let mut slots: Vec<Vec<Option<Vec<f32>>>> = Vec::new();
        for (name, data) in state.tensors {
            let parsed = name.split_once('.').and_then(|(i, s)| {
                let i: usize = i.parse().ok()?;
                let j = names.iter().position(|n| *n == s)?;
                Some((i, j))
            });
            let Some((i, j)) = parsed else {
                return Err(EngineError::Config(format!(
                    "optimizer state: unexpected tensor `{name}` for `{kind}` (expected \
                     `<param index>.<slot>` with slot one of {names:?})"
                )));
            };
            if slots.len() <= i {
                slots.resize_with(i + 1, || vec![None; names.len()]);
            }
            if slots[i][j].replace(data).is_some() {
                return Err(EngineError::Config(format!(
                    "optimizer state: tensor `{name}` appears twice"
                )));
            }
        }
        let mut complete = Vec::with_capacity(slots.len());
        for (i, param_slots) in slots.into_iter().enumerate() {
            let mut v = Vec::with_capacity(names.len());
            for (j, s) in param_slots.into_iter().enumerate() {
                match s {
                    Some(s) => v.push(s),
                    None => {
                        return Err(EngineError::Config(format!(
                            "optimizer state: tensor `{i}.{}` is missing",
                            names[j]
                        )))
                    }
                }
            }
            complete.push(v);
        }
        self.slots = complete;
        self.iterations = state.iterations;
        Ok(())
    }
}

/// The Adam family's scalars for step `t` (1-based), computed once per step for every
/// parameter. The CPU loop and the GPU kernel both take them from here, so they round alike.
pub(crate) struct AdamScalars {
    /// Keras 3: `lr * sqrt(1 - beta2^t) / (1 - beta1^t)`.
    pub alpha: f32,
    /// Coupled (L2) weight decay, added to the gradient: Adam's.
    pub l2: f32,
    /// Decoupled decay `lr * weight_decay`, applied to the weight first: AdamW's.
    pub decay: f32,
}

impl AdamScalars {
    pub(crate) fn at(
        decoupled: bool,
        beta1: f32,
        beta2: f32,
        weight_decay: f32,
        lr: f32,
        t: u64,
    ) -> AdamScalars {
        let (l2, decay) = if decoupled {
            (0.0, lr * weight_decay)
        } else {
            (weight_decay, 0.0)
        };
        let tf = t as f32;
        let alpha = lr * (1.0 - beta2.powf(tf)).sqrt() / (1.0 - beta1.powf(tf));
        AdamScalars { alpha, l2, decay }
    }
}

/// One parameter's update. `w`, `g` and every slot have the same length; `t` is the 1-based step.
fn update(
    config: &OptimizerConfig,
    t: u64,
    lr: f32,
    w: &mut [f32],
    g: &[f32],
    slots: &mut [Vec<f32>],
) {
    match *config {
        OptimizerConfig::Sgd {
            momentum,
            nesterov,
            weight_decay: wd,
        } => {
            if momentum == 0.0 {
                // w -= lr * g
                for (w, &g) in w.iter_mut().zip(g) {
                    let g = g + wd * *w;
                    *w -= lr * g;
                }
            } else {
                // v = m * v - lr * g;  w += v  (Nesterov: w += m * v - lr * g)
                let v = &mut slots[0];
                for ((w, &g), v) in w.iter_mut().zip(g).zip(v.iter_mut()) {
                    let g = g + wd * *w;
                    *v = -g * lr + *v * momentum;
                    if nesterov {
                        *w += -g * lr + *v * momentum;
                    } else {
                        *w += *v;
                    }
                }
            }
        }
        OptimizerConfig::Adam {
            beta1,
            beta2,
            eps,
            weight_decay,
        }
        | OptimizerConfig::AdamW {
            beta1,
            beta2,
            eps,
            weight_decay,
        } => {
            let decoupled = matches!(config, OptimizerConfig::AdamW { .. });
            let AdamScalars { alpha, l2, decay } =
                AdamScalars::at(decoupled, beta1, beta2, weight_decay, lr, t);
            let (m, v) = slots.split_at_mut(1);
            let (m, v) = (&mut m[0], &mut v[0]);
            for (((w, &g), m), v) in w.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
                if decoupled {
                    // AdamW: w -= w * wd * lr, before the Adam step.
                    *w -= *w * decay;
                }
                let g = g + l2 * *w;
                *m += (g - *m) * (1.0 - beta1);
                *v += (g * g - *v) * (1.0 - beta2);
                *w -= alpha * *m / (v.sqrt() + eps);
            }
        }
        OptimizerConfig::RmsProp {
            rho,
            momentum,
            eps,
            centered,
            weight_decay: wd,
        } => {
            // Keras 3: v = rho v + (1 - rho) g^2;  centered: a = rho a + (1 - rho) g,
            // denom = v - a^2 + eps, else v + eps;  inc = lr g / sqrt(denom);
            // momentum: mom = momentum * mom + inc, w -= mom; else w -= inc.
            let (vel, rest) = slots.split_at_mut(1);
            let vel = &mut vel[0];
            let (mut mom, mut avg) = match (momentum > 0.0, centered) {
                (true, true) => {
                    let (a, b) = rest.split_at_mut(1);
                    (Some(&mut a[0]), Some(&mut b[0]))
                }
                (true, false) => (Some(&mut rest[0]), None),
                (false, true) => (None, Some(&mut rest[0])),
                (false, false) => (None, None),
            };
            for i in 0..w.len() {
                let g = g[i] + wd * w[i];
                vel[i] = rho * vel[i] + (1.0 - rho) * (g * g);
                let denom = match avg.as_deref_mut() {
                    Some(a) => {
                        a[i] = rho * a[i] + (1.0 - rho) * g;
                        vel[i] - a[i] * a[i] + eps
                    }
                    None => vel[i] + eps,
                };
                let inc = lr * g / denom.sqrt();
                match mom.as_deref_mut() {
                    Some(m) => {
                        m[i] = momentum * m[i] + inc;
                        w[i] -= m[i];
                    }
                    None => w[i] -= inc,
                }
            }
        }
        OptimizerConfig::Adagrad {
            eps,
            weight_decay: wd,
            ..
        } => {
            // Keras 3: acc += g^2;  w -= lr g / sqrt(acc + eps)
            let acc = &mut slots[0];
            for ((w, &g), a) in w.iter_mut().zip(g).zip(acc.iter_mut()) {
                let g = g + wd * *w;
                *a += g * g;
                *w -= lr * g / (*a + eps).sqrt();
            }
        }
    }
}

/// Global L2 norm of all gradients (accumulated in f64).
pub fn grad_norm(params: &[&mut Param]) -> f32 {
    let sum: f64 = params
        .iter()
        .flat_map(|p| p.grad.data.iter())
        .map(|&g| (g as f64) * (g as f64))
        .sum();
    sum.sqrt() as f32
}

/// Scales all gradients so that their global L2 norm is at most `max_norm` (Keras
/// `global_clipnorm`: `g *= max_norm / max(norm, max_norm)`). Returns the norm before clipping.
/// A non-finite norm is returned as is and the gradients are left untouched, so the caller can
/// detect and skip the step.
pub fn clip_grad_norm(params: &mut [&mut Param], max_norm: f32) -> f32 {
    let norm = grad_norm(params);
    if norm.is_finite() && norm > max_norm {
        let scale = max_norm / norm;
        for p in params.iter_mut() {
            p.grad.data.iter_mut().for_each(|g| *g *= scale);
        }
    }
    norm
}

/// Clamps every gradient element to `[-clip, clip]` (Keras `clipvalue`). A NaN `clip` does
/// nothing.
pub fn clip_grad_value(params: &mut [&mut Param], clip: f32) {
    if clip.is_nan() {
        return;
    }
    let clip = clip.abs();
    for p in params.iter_mut() {
        p.grad
            .data
            .iter_mut()
            .for_each(|g| *g = g.clamp(-clip, clip));
    }
}
