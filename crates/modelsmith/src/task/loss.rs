//! The training loss, as a setting (`[train] loss`, `--loss`): cross-entropy for classes;
//! squared, absolute or Huber error for values. The engine computes each; this says which
//! fits which task.

use modelsmith_engine::{regression_loss, softmax_cross_entropy, RegressionLoss, Tensor};
use serde::{Deserialize, Serialize};

use super::Task;

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Loss {
    /// Softmax cross-entropy (classification).
    CrossEntropy,
    /// Mean squared error on the standardized targets.
    Mse,
    /// Mean absolute error on the standardized targets.
    Mae,
    /// Huber with delta 1 (one standard deviation of the target): squared near, absolute far.
    Huber,
}

pub const LOSSES: &[&str] = &["cross_entropy", "mse", "mae", "huber"];

impl Loss {
    pub fn name(self) -> &'static str {
        match self {
            Loss::CrossEntropy => "cross_entropy",
            Loss::Mse => "mse",
            Loss::Mae => "mae",
            Loss::Huber => "huber",
        }
    }

    /// Refuses a loss of the other task (cross-entropy on values, squared error on classes).
    pub fn check_fits(self, task: &Task) -> Result<(), String> {
        let fits = (self == Loss::CrossEntropy) != task.is_regression();
        if fits {
            Ok(())
        } else {
            Err(format!(
                "loss `{}` does not fit {}; use {}",
                self.name(),
                task.describe(),
                if task.is_regression() {
                    "mse, mae or huber"
                } else {
                    "cross_entropy"
                }
            ))
        }
    }

    /// The batch's mean loss; writes `dlogits`. `labels` are class indices (classification),
    /// `values` the standardized targets, `outputs` per example (regression).
    pub fn compute(
        self,
        dlogits: &mut Tensor,
        logits: &Tensor,
        labels: &[u32],
        values: &[f32],
    ) -> f32 {
        match self {
            Loss::CrossEntropy => softmax_cross_entropy(dlogits, logits, labels),
            Loss::Mse => regression_loss(RegressionLoss::Squared, dlogits, logits, values),
            Loss::Mae => regression_loss(RegressionLoss::Absolute, dlogits, logits, values),
            Loss::Huber => regression_loss(
                RegressionLoss::Huber { delta: 1.0 },
                dlogits,
                logits,
                values,
            ),
        }
    }
}

impl std::str::FromStr for Loss {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "cross_entropy" | "crossentropy" => Ok(Loss::CrossEntropy),
            "mse" | "squared" => Ok(Loss::Mse),
            "mae" | "absolute" => Ok(Loss::Mae),
            "huber" => Ok(Loss::Huber),
            other => Err(format!(
                "unknown loss '{other}' (expected one of {})",
                LOSSES.join(", ")
            )),
        }
    }
}
