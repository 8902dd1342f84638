//! `ModelSpec`: a network architecture as data (serde; JSON and TOML).
//!
//! A spec is a list of layers applied in order. Each layer reads the previous layer's output,
//! or the output of an earlier *named* layer given by `input`; `add` sums the flow with a named
//! earlier layer's output (a residual connection). That keeps simple models a plain list while
//! still describing the DAGs architecture search needs.
//!
//! ```toml
//! [[layers]]
//! type = "conv2d"
//! filters = 32
//! kernel = 3
//! activation = "relu"
//! ```

use serde::{Deserialize, Serialize};

use super::activation::ActivationSpec;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub layers: Vec<LayerSpec>,
}

/// One layer: common fields plus its kind.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerSpec {
    /// Unique name; parameters are saved as `<name>.weight`. Defaults to `<type>_<n>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Read this named layer's output instead of the previous layer's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    #[serde(flatten)]
    pub kind: LayerKind,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PaddingSpec {
    #[default]
    Valid,
    Same,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LayerKind {
    Conv2d {
        filters: usize,
        kernel: usize,
        #[serde(default = "one")]
        stride: usize,
        #[serde(default)]
        padding: PaddingSpec,
        #[serde(default = "yes")]
        bias: bool,
        #[serde(default)]
        activation: ActivationSpec,
    },
    Dense {
        units: usize,
        #[serde(default = "yes")]
        bias: bool,
        #[serde(default)]
        activation: ActivationSpec,
    },
    MaxPool2d {
        #[serde(default = "two")]
        pool: usize,
        /// Defaults to `pool`, as in Keras.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stride: Option<usize>,
        #[serde(default)]
        padding: PaddingSpec,
    },
    AvgPool2d {
        #[serde(default = "two")]
        pool: usize,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stride: Option<usize>,
        #[serde(default)]
        padding: PaddingSpec,
    },
    GlobalAvgPool,
    Flatten,
    BatchNorm {
        #[serde(default = "bn_momentum")]
        momentum: f32,
        #[serde(default = "bn_eps")]
        eps: f32,
    },
    Dropout {
        rate: f32,
    },
    Activation {
        activation: ActivationSpec,
    },
    /// Residual connection: the flow plus the output of the named layer `with`.
    Add {
        with: String,
    },
}

fn one() -> usize {
    1
}
fn two() -> usize {
    2
}
fn yes() -> bool {
    true
}
fn bn_momentum() -> f32 {
    0.99
}
fn bn_eps() -> f32 {
    1e-3
}

impl LayerKind {
    /// The `type` name as written in specs.
    pub fn type_name(&self) -> &'static str {
        match self {
            LayerKind::Conv2d { .. } => "conv2d",
            LayerKind::Dense { .. } => "dense",
            LayerKind::MaxPool2d { .. } => "max_pool2d",
            LayerKind::AvgPool2d { .. } => "avg_pool2d",
            LayerKind::GlobalAvgPool => "global_avg_pool",
            LayerKind::Flatten => "flatten",
            LayerKind::BatchNorm { .. } => "batch_norm",
            LayerKind::Dropout { .. } => "dropout",
            LayerKind::Activation { .. } => "activation",
            LayerKind::Add { .. } => "add",
        }
    }
}

impl LayerSpec {
    pub fn new(kind: LayerKind) -> LayerSpec {
        LayerSpec {
            name: None,
            input: None,
            kind,
        }
    }

    pub fn named(mut self, name: &str) -> LayerSpec {
        self.name = Some(name.to_string());
        self
    }
}

/// What a model's last layer must be: `outputs` units with `activation` (softmax over classes,
/// linear for values). The task decides it ([`crate::task::Task::model_head`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OutputLayer {
    pub outputs: usize,
    pub activation: ActivationSpec,
}

impl OutputLayer {
    /// A classifier's head: `classes` logits under a softmax.
    pub fn classes(classes: usize) -> OutputLayer {
        OutputLayer {
            outputs: classes,
            activation: ActivationSpec::Softmax,
        }
    }
}

/// Names of the built-in models accepted by `--model`.
pub const BUILTIN_MODELS: &[&str] = &["auto", "seed-cnn", "mlp"];

impl ModelSpec {
    /// A built-in model for examples of `input_shape` ending in `head`, or `None` for an
    /// unknown name. `auto` is `seed-cnn` for images (`[h, w, c]`) and `mlp` for tables.
    pub fn builtin(name: &str, head: OutputLayer, input_shape: &[usize]) -> Option<ModelSpec> {
        let name = match name {
            "auto" if input_shape.len() == 3 => "seed-cnn",
            "auto" => "mlp",
            other => other,
        };
        use ActivationSpec::*;
        let conv = |filters| {
            LayerSpec::new(LayerKind::Conv2d {
                filters,
                kernel: 3,
                stride: 1,
                padding: PaddingSpec::Valid,
                bias: true,
                activation: Relu,
            })
        };
        let pool = || {
            LayerSpec::new(LayerKind::MaxPool2d {
                pool: 2,
                stride: None,
                padding: PaddingSpec::Valid,
            })
        };
        let dense = |units, activation| {
            LayerSpec::new(LayerKind::Dense {
                units,
                bias: true,
                activation,
            })
        };
        let layers = match name {
            // The Keras example this project starts from.
            "seed-cnn" => vec![
                conv(32),
                pool(),
                conv(64),
                pool(),
                LayerSpec::new(LayerKind::Flatten),
                dense(64, Relu),
                dense(head.outputs, head.activation),
            ],
            "mlp" => vec![
                LayerSpec::new(LayerKind::Flatten),
                dense(128, Relu),
                LayerSpec::new(LayerKind::Dropout { rate: 0.2 }),
                dense(64, Relu),
                dense(head.outputs, head.activation),
            ],
            _ => return None,
        };
        Some(ModelSpec {
            name: Some(name.to_string()),
            layers,
        })
    }
}
