//! The task: what a model predicts, and everything that follows from it.
//!
//! A [`Task`] is chosen once, when a training table's target column is read ([`choose`]), and
//! saved with the model (`model.json`'s `data.task`). From then on every part of the pipeline
//! asks it instead of assuming classes:
//! - the data: how target values are encoded (class indices; or standardized values, each target
//!   with its [`TargetScale`]);
//! - the model: its output width and head ([`Task::outputs`], [`Task::head`]);
//! - training: the loss ([`Loss`]), the figures measured on a split ([`Scores`]), the default
//!   objective of a search and its direction ([`Metric`]);
//! - inference: how raw outputs become answers ([`Task::decode_into`]: probabilities, or values
//!   in the target's own units) for `predict`, the server and ONNX.
//!
//! Invariants: the engine never sees a task (it gets a loss and numbers); a regression model's
//! outputs are standardized targets inside the network and target units everywhere outside it;
//! a metric that does not fit the task is refused before training starts.

mod choose;
mod loss;
mod metric;

pub use choose::{choose, Choice};
pub use loss::Loss;
pub use loss::LOSSES;
pub use metric::{
    significant, Metric, PredictionSample, ScoreSums, Scores, METRICS, PREDICTION_SAMPLE,
};

use serde::{Deserialize, Serialize};

use crate::model::{ActivationSpec, OutputLayer};

/// What a model predicts: one of its classes, or one or more continuous values.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Task {
    /// One class out of `classes` (two: binary classification).
    Classification { classes: Vec<String> },
    /// One continuous value per target column, in the order given by `--target a,b`.
    Regression { targets: Vec<TargetScale> },
}

/// The task a user asks for (`--task`, `[train] task`); `None` lets [`choose`] decide.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    Classification,
    Regression,
}

impl TaskKind {
    pub fn name(self) -> &'static str {
        match self {
            TaskKind::Classification => "classification",
            TaskKind::Regression => "regression",
        }
    }
}

impl std::str::FromStr for TaskKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "classification" | "classify" => Ok(TaskKind::Classification),
            "regression" | "regress" => Ok(TaskKind::Regression),
            other => Err(format!(
                "unknown task '{other}' (expected classification or regression)"
            )),
        }
    }
}

/// A regression target column: its name and the train rows' mean and standard deviation. The
/// network learns `(value - mean) / std`; answers are mapped back with `mean + std * output`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TargetScale {
    pub name: String,
    pub mean: f64,
    pub std: f64,
}

impl TargetScale {
    /// Fits the scale on `values` (finite, at least one). A constant column gets std 1.
    pub fn fit(name: &str, values: impl Iterator<Item = f64> + Clone) -> TargetScale {
        let (n, sum) = values
            .clone()
            .fold((0usize, 0f64), |(n, s), v| (n + 1, s + v));
        let mean = sum / n.max(1) as f64;
        let var = values.map(|v| (v - mean) * (v - mean)).sum::<f64>() / n.max(1) as f64;
        let std = var.sqrt();
        TargetScale {
            name: name.to_string(),
            mean,
            std: if std > 1e-12 { std } else { 1.0 },
        }
    }

    pub fn standardize(&self, value: f64) -> f32 {
        ((value - self.mean) / self.std) as f32
    }

    pub fn to_units(&self, output: f32) -> f32 {
        (self.mean + self.std * output as f64) as f32
    }
}

impl Task {
    pub fn kind(&self) -> TaskKind {
        match self {
            Task::Classification { .. } => TaskKind::Classification,
            Task::Regression { .. } => TaskKind::Regression,
        }
    }

    pub fn is_regression(&self) -> bool {
        matches!(self, Task::Regression { .. })
    }

    /// The model's output width: one logit per class, or one value per target.
    pub fn outputs(&self) -> usize {
        match self {
            Task::Classification { classes } => classes.len(),
            Task::Regression { targets } => targets.len(),
        }
    }

    /// The activation of the model's last layer: softmax over classes (applied by the loss in
    /// training and by [`Task::decode_into`] at inference), linear for values.
    pub fn head(&self) -> ActivationSpec {
        match self {
            Task::Classification { .. } => ActivationSpec::Softmax,
            Task::Regression { .. } => ActivationSpec::Linear,
        }
    }

    /// The last layer a model for this task ends with.
    pub fn model_head(&self) -> OutputLayer {
        OutputLayer {
            outputs: self.outputs(),
            activation: self.head(),
        }
    }

    /// The class names (empty for regression).
    pub fn class_names(&self) -> &[String] {
        match self {
            Task::Classification { classes } => classes,
            Task::Regression { .. } => &[],
        }
    }

    /// The regression targets (empty for classification).
    pub fn targets(&self) -> &[TargetScale] {
        match self {
            Task::Classification { .. } => &[],
            Task::Regression { targets } => targets,
        }
    }

    /// What a search optimizes unless told otherwise.
    pub fn default_metric(&self) -> Metric {
        match self {
            Task::Classification { .. } => Metric::ValAccuracy,
            Task::Regression { .. } => Metric::ValRmse,
        }
    }

    /// The loss training uses unless told otherwise.
    pub fn default_loss(&self) -> Loss {
        match self {
            Task::Classification { .. } => Loss::CrossEntropy,
            Task::Regression { .. } => Loss::Mse,
        }
    }

    /// One line for logs and reports: `classification (10 classes)`, `regression of price`.
    pub fn describe(&self) -> String {
        match self {
            Task::Classification { classes } if classes.len() == 2 => {
                "binary classification".to_string()
            }
            Task::Classification { classes } => {
                format!("classification ({} classes)", classes.len())
            }
            Task::Regression { targets } => format!(
                "regression of {}",
                targets
                    .iter()
                    .map(|t| t.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }

    /// The name of the output tensor in ONNX and the inference protocol.
    pub fn output_name(&self) -> &'static str {
        match self {
            Task::Classification { .. } => "probabilities",
            Task::Regression { .. } => "values",
        }
    }

    /// Turns raw network outputs (`[n, outputs]`) into answers in `out`: class probabilities
    /// (softmax), or values in the targets' units.
    pub fn decode_into(&self, out: &mut [f32], logits: &[f32]) {
        match self {
            Task::Classification { classes } => {
                modelsmith_engine::softmax_rows(out, logits, classes.len())
            }
            Task::Regression { targets } => {
                let k = targets.len().max(1);
                for (o_row, z_row) in out.chunks_exact_mut(k).zip(logits.chunks_exact(k)) {
                    for ((o, &z), t) in o_row.iter_mut().zip(z_row).zip(targets) {
                        *o = t.to_units(z);
                    }
                }
            }
        }
    }

    /// Checks what `model.json` says of the task.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            // Folders from before tasks may name no classes (outputs are then shown by index).
            Task::Classification { .. } => Ok(()),
            Task::Regression { targets } if targets.is_empty() => {
                Err("a regression task needs at least one target".to_string())
            }
            Task::Regression { targets } => {
                for t in targets {
                    if !(t.mean.is_finite() && t.std.is_finite() && t.std > 0.0) {
                        return Err(format!(
                            "target `{}` has mean {} and std {}; both must be finite and std > 0",
                            t.name, t.mean, t.std
                        ));
                    }
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_round_trips_and_constant_gets_unit_std() {
        let t = TargetScale::fit("y", [1.0, 2.0, 3.0, 4.0].into_iter());
        assert!((t.mean - 2.5).abs() < 1e-12);
        assert!((t.to_units(t.standardize(3.5)) - 3.5).abs() < 1e-6);
        assert_eq!(TargetScale::fit("c", [7.0, 7.0].into_iter()).std, 1.0);
    }

    #[test]
    fn decode_maps_values_back_to_units() {
        let task = Task::Regression {
            targets: vec![
                TargetScale {
                    name: "a".into(),
                    mean: 10.0,
                    std: 2.0,
                },
                TargetScale {
                    name: "b".into(),
                    mean: -1.0,
                    std: 0.5,
                },
            ],
        };
        let mut out = [0f32; 4];
        task.decode_into(&mut out, &[0.0, 0.0, 1.0, -2.0]);
        assert_eq!(out, [10.0, -1.0, 12.0, -2.0]);
    }

    #[test]
    fn task_kind_parses() {
        assert_eq!("Regression".parse::<TaskKind>(), Ok(TaskKind::Regression));
        assert!("clustering"
            .parse::<TaskKind>()
            .unwrap_err()
            .contains("expected"));
    }
}
