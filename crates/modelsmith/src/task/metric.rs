//! What a task measures on a split ([`Scores`], summed batch by batch in [`ScoreSums`]) and
//! which of those figures a search optimizes ([`Metric`]).

use serde::{Deserialize, Serialize};

use super::Task;
use crate::search::Direction;

/// The figures measured on a set of examples: the loss (in the network's units), accuracy for
/// classification; RMSE, MAE (both in the targets' own units, averaged over targets) and R²
/// (averaged over targets) for regression.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    pub loss: f32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rmse: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mae: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r2: Option<f32>,
}

impl Scores {
    /// Every figure NaN-free "nothing measured" (an empty split).
    pub fn nan(task: &Task) -> Scores {
        let nan = Some(f32::NAN);
        if task.is_regression() {
            Scores {
                loss: f32::NAN,
                rmse: nan,
                mae: nan,
                r2: nan,
                ..Scores::default()
            }
        } else {
            Scores {
                loss: f32::NAN,
                accuracy: nan,
                ..Scores::default()
            }
        }
    }

    /// The mean of each figure over `all` (a cross-validation's folds); a figure missing from
    /// any is missing from the mean.
    pub fn mean(all: &[Scores]) -> Scores {
        let n = all.len().max(1) as f32;
        let mean_of = |f: fn(&Scores) -> Option<f32>| -> Option<f32> {
            all.iter()
                .map(f)
                .sum::<Option<f32>>()
                .map(|total| total / n)
        };
        Scores {
            loss: all.iter().map(|s| s.loss).sum::<f32>() / n,
            accuracy: mean_of(|s| s.accuracy),
            rmse: mean_of(|s| s.rmse),
            mae: mean_of(|s| s.mae),
            r2: mean_of(|s| s.r2),
        }
    }

    /// The headline figure for a progress line: `acc 97.50%` or `rmse 531.2  r2 0.982`.
    pub fn headline(&self) -> String {
        match (self.accuracy, self.rmse, self.r2) {
            (Some(a), _, _) => format!("acc {:.2}%", a * 100.0),
            (_, Some(rmse), Some(r2)) => format!("rmse {} r2 {r2:.4}", significant(rmse)),
            _ => format!("loss {:.4}", self.loss),
        }
    }
}

/// Four significant digits, without an exponent for everyday magnitudes.
pub fn significant(v: f32) -> String {
    if !v.is_finite() || v == 0.0 {
        return format!("{v}");
    }
    let digits = (3 - v.abs().log10().floor() as i32).clamp(0, 6) as usize;
    format!("{v:.digits$}")
}

/// A regression model's predictions beside the truth on some validation examples (the first
/// target's, in its units): what the residual plots of a study's best trial draw.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PredictionSample {
    pub target: String,
    pub truth: Vec<f32>,
    pub predicted: Vec<f32>,
}

/// Most examples a [`PredictionSample`] keeps: enough to see a pattern, small in storage.
pub const PREDICTION_SAMPLE: usize = 300;

/// Running sums over batches, turned into [`Scores`] at the end. Regression sums are kept per
/// target in the target's own units, in f64.
#[derive(Clone, Debug)]
pub struct ScoreSums {
    examples: usize,
    loss: f64,
    correct: usize,
    /// Per target: Σy, Σy², Σ(ŷ-y)², Σ|ŷ-y|, in target units.
    targets: Vec<[f64; 4]>,
}

impl ScoreSums {
    pub fn new(task: &Task) -> ScoreSums {
        ScoreSums {
            examples: 0,
            loss: 0.0,
            correct: 0,
            targets: vec![[0.0; 4]; task.targets().len()],
        }
    }

    /// Adds a batch: its mean loss, raw outputs (`[n, outputs]`), class labels (classification)
    /// or standardized target values (regression).
    pub fn add(
        &mut self,
        task: &Task,
        mean_loss: f32,
        logits: &modelsmith_engine::Tensor,
        labels: &[u32],
        values: &[f32],
    ) {
        let n = logits.batch();
        self.examples += n;
        self.loss += mean_loss as f64 * n as f64;
        match task {
            Task::Classification { .. } => {
                self.correct += modelsmith_engine::count_correct(logits, labels);
            }
            Task::Regression { targets } => {
                let k = targets.len();
                for (z_row, t_row) in logits.data.chunks_exact(k).zip(values.chunks_exact(k)) {
                    for (j, scale) in targets.iter().enumerate() {
                        let y = scale.to_units(t_row[j]) as f64;
                        let r = scale.std * (z_row[j] as f64 - t_row[j] as f64);
                        let s = &mut self.targets[j];
                        s[0] += y;
                        s[1] += y * y;
                        s[2] += r * r;
                        s[3] += r.abs();
                    }
                }
            }
        }
    }

    pub fn examples(&self) -> usize {
        self.examples
    }

    pub fn finish(&self, task: &Task) -> Scores {
        if self.examples == 0 {
            return Scores::nan(task);
        }
        let n = self.examples as f64;
        let loss = (self.loss / n) as f32;
        if !task.is_regression() {
            return Scores {
                loss,
                accuracy: Some((self.correct as f64 / n) as f32),
                ..Scores::default()
            };
        }
        let k = self.targets.len().max(1) as f64;
        let (mut rmse, mut mae, mut r2) = (0.0, 0.0, 0.0);
        for [sy, sy2, sse, sae] in &self.targets {
            rmse += (sse / n).sqrt();
            mae += sae / n;
            let total = sy2 - sy * sy / n;
            // A split whose target does not vary explains nothing: R² is undefined there.
            r2 += if total > 1e-12 * sy2.max(1.0) {
                1.0 - sse / total
            } else {
                f64::NAN
            };
        }
        Scores {
            loss,
            rmse: Some((rmse / k) as f32),
            mae: Some((mae / k) as f32),
            r2: Some((r2 / k) as f32),
            ..Scores::default()
        }
    }
}

/// The validation figure a search ranks trials by (`[study] metric`, `--metric`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    ValAccuracy,
    ValLoss,
    ValRmse,
    ValMae,
    ValR2,
}

pub const METRICS: &[&str] = &["val_accuracy", "val_loss", "val_rmse", "val_mae", "val_r2"];

impl Metric {
    pub fn direction(self) -> Direction {
        match self {
            Metric::ValAccuracy | Metric::ValR2 => Direction::Maximize,
            Metric::ValLoss | Metric::ValRmse | Metric::ValMae => Direction::Minimize,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Metric::ValAccuracy => "val_accuracy",
            Metric::ValLoss => "val_loss",
            Metric::ValRmse => "val_rmse",
            Metric::ValMae => "val_mae",
            Metric::ValR2 => "val_r2",
        }
    }

    /// This metric's value in validation scores (`None` when the task does not measure it).
    pub fn of(self, scores: &Scores) -> Option<f32> {
        match self {
            Metric::ValAccuracy => scores.accuracy,
            Metric::ValLoss => Some(scores.loss),
            Metric::ValRmse => scores.rmse,
            Metric::ValMae => scores.mae,
            Metric::ValR2 => scores.r2,
        }
    }

    /// Refuses a metric the task does not measure, naming the ones it does.
    pub fn check_fits(self, task: &Task) -> Result<(), String> {
        let fits = match self {
            Metric::ValLoss => true,
            Metric::ValAccuracy => !task.is_regression(),
            Metric::ValRmse | Metric::ValMae | Metric::ValR2 => task.is_regression(),
        };
        if fits {
            return Ok(());
        }
        Err(format!(
            "metric `{}` does not fit {}; use {}",
            self.name(),
            task.describe(),
            if task.is_regression() {
                "val_rmse, val_mae, val_r2 or val_loss"
            } else {
                "val_accuracy or val_loss"
            }
        ))
    }
}

impl std::str::FromStr for Metric {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "val_accuracy" => Ok(Metric::ValAccuracy),
            "val_loss" => Ok(Metric::ValLoss),
            "val_rmse" => Ok(Metric::ValRmse),
            "val_mae" => Ok(Metric::ValMae),
            "val_r2" => Ok(Metric::ValR2),
            other => Err(format!(
                "unknown metric '{other}' (expected one of {})",
                METRICS.join(", ")
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::TargetScale;
    use modelsmith_engine::Tensor;

    #[test]
    fn regression_scores_in_target_units() {
        let task = Task::Regression {
            targets: vec![TargetScale {
                name: "y".into(),
                mean: 100.0,
                std: 10.0,
            }],
        };
        // Standardized targets 0, 1, -1 → 100, 110, 90; outputs 0.5, 1, -1 → 105, 110, 90.
        let logits = Tensor::from_vec(&[3, 1], vec![0.5, 1.0, -1.0]).unwrap();
        let mut sums = ScoreSums::new(&task);
        sums.add(&task, 0.0, &logits, &[], &[0.0, 1.0, -1.0]);
        let s = sums.finish(&task);
        let rmse = (25.0f64 / 3.0).sqrt() as f32;
        assert!((s.rmse.unwrap() - rmse).abs() < 1e-4, "{s:?}");
        assert!((s.mae.unwrap() - 5.0 / 3.0).abs() < 1e-5);
        // SST = 0 + 100 + 100 around the mean 100.
        assert!((s.r2.unwrap() - (1.0 - 25.0 / 200.0)).abs() < 1e-5);
        assert!(s.accuracy.is_none());
    }

    #[test]
    fn the_mean_of_fold_scores() {
        let a = Scores {
            loss: 1.0,
            accuracy: Some(0.5),
            ..Scores::default()
        };
        let b = Scores {
            loss: 3.0,
            accuracy: Some(1.0),
            rmse: Some(2.0),
            ..Scores::default()
        };
        let m = Scores::mean(&[a, b]);
        assert_eq!((m.loss, m.accuracy), (2.0, Some(0.75)));
        assert_eq!(m.rmse, None, "missing from one fold: missing from the mean");
    }

    #[test]
    fn metrics_fit_their_task() {
        let reg = Task::Regression {
            targets: vec![TargetScale {
                name: "y".into(),
                mean: 0.0,
                std: 1.0,
            }],
        };
        let cls = Task::Classification {
            classes: vec!["a".into(), "b".into()],
        };
        assert!(Metric::ValRmse.check_fits(&reg).is_ok());
        assert!(Metric::ValLoss.check_fits(&cls).is_ok());
        let e = Metric::ValAccuracy.check_fits(&reg).unwrap_err();
        assert!(e.contains("val_rmse"), "{e}");
        assert!(Metric::ValR2.check_fits(&cls).is_err());
        assert_eq!(Metric::ValR2.direction(), Direction::Maximize);
        assert_eq!("val_mae".parse::<Metric>(), Ok(Metric::ValMae));
    }
}
