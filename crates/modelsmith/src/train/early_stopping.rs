//! Early stopping with Keras semantics: stop when the monitored metric has not improved by more
//! than `min_delta` for `patience` epochs in a row; remember the best epoch so its weights can be
//! restored.
//!
//! The config ([`EarlyStopping`]) is what users write; the tracker ([`EarlyStopper`]) is what the
//! trainer feeds once per epoch. The tracker is `Serialize`/`Deserialize` so a checkpoint can
//! resume it exactly.
//!
//! Differences from Keras, on purpose:
//! - `patience = 0` disables stopping (Keras would stop at the first epoch without improvement);
//!   the best epoch is still tracked, so `restore_best` keeps working.
//! - A NaN value never improves and never becomes the best (Keras' first value is always "best",
//!   even NaN).

use serde::{Deserialize, Serialize};

use crate::task::Metric;

/// Which epoch metric to watch. Losses and errors improve downwards, accuracy and R² upwards.
/// The validation ones are the search metrics ([`Metric`]) too.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Monitor {
    #[default]
    ValLoss,
    ValAccuracy,
    ValRmse,
    ValMae,
    ValR2,
    Loss,
    Accuracy,
}

impl From<Metric> for Monitor {
    fn from(m: Metric) -> Monitor {
        match m {
            Metric::ValAccuracy => Monitor::ValAccuracy,
            Metric::ValLoss => Monitor::ValLoss,
            Metric::ValRmse => Monitor::ValRmse,
            Metric::ValMae => Monitor::ValMae,
            Metric::ValR2 => Monitor::ValR2,
        }
    }
}

impl Monitor {
    /// The search metric a validation monitor watches (`None` for the training figures).
    pub fn metric(self) -> Option<Metric> {
        match self {
            Monitor::ValLoss => Some(Metric::ValLoss),
            Monitor::ValAccuracy => Some(Metric::ValAccuracy),
            Monitor::ValRmse => Some(Metric::ValRmse),
            Monitor::ValMae => Some(Metric::ValMae),
            Monitor::ValR2 => Some(Metric::ValR2),
            Monitor::Loss | Monitor::Accuracy => None,
        }
    }

    /// The name as written in configs and metrics: `val_loss`, `val_accuracy`, `loss`, `accuracy`.
    pub fn name(self) -> &'static str {
        match self {
            Monitor::ValLoss => "val_loss",
            Monitor::ValAccuracy => "val_accuracy",
            Monitor::ValRmse => "val_rmse",
            Monitor::ValMae => "val_mae",
            Monitor::ValR2 => "val_r2",
            Monitor::Loss => "loss",
            Monitor::Accuracy => "accuracy",
        }
    }

    /// True for accuracies (bigger is better), false for losses.
    pub fn higher_is_better(self) -> bool {
        matches!(
            self,
            Monitor::ValAccuracy | Monitor::Accuracy | Monitor::ValR2
        )
    }

    /// True for the metrics computed on the validation split.
    pub fn needs_validation(self) -> bool {
        self.metric().is_some()
    }

    /// Whether `value` improves on `best` by more than `min_delta` (>= 0) in this monitor's
    /// direction. `None` (nothing seen yet) is beaten by any non-NaN value; NaN never improves.
    pub fn improves(self, value: f32, best: Option<f32>, min_delta: f32) -> bool {
        if value.is_nan() {
            return false;
        }
        match best {
            None => true,
            Some(best) if self.higher_is_better() => value - min_delta > best,
            Some(best) => value + min_delta < best,
        }
    }
}

impl std::fmt::Display for Monitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Early-stopping settings. In TOML:
/// ```toml
/// [early_stopping]
/// monitor = "val_loss"   # val_loss | val_accuracy | loss | accuracy
/// patience = 5           # epochs without improvement before stopping; 0 disables stopping
/// min_delta = 0.0        # an improvement must beat the best by more than this
/// restore_best = false   # true: end training with the best epoch's weights
/// ```
/// The defaults are Keras's `EarlyStopping` (patience aside, which is the seed recipe's 5),
/// including `restore_best_weights=False`: on the seed CNN the epoch with the lowest val_loss
/// comes before the one with the best accuracy, so restoring it costs test accuracy there.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EarlyStopping {
    pub monitor: Monitor,
    pub patience: u32,
    pub min_delta: f32,
    pub restore_best: bool,
}

impl Default for EarlyStopping {
    fn default() -> Self {
        EarlyStopping {
            monitor: Monitor::ValLoss,
            patience: 5,
            min_delta: 0.0,
            restore_best: false,
        }
    }
}

impl EarlyStopping {
    /// Rejects a negative or non-finite `min_delta`.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.min_delta.is_finite() && self.min_delta >= 0.0) {
            return Err(format!("min_delta must be >= 0, got {}", self.min_delta));
        }
        Ok(())
    }

    /// Whether this config can ever stop training (`patience > 0`).
    pub fn enabled(&self) -> bool {
        self.patience > 0
    }
}

/// What the trainer should do after an epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Decision {
    /// This epoch is the new best: snapshot its weights if `restore_best`.
    pub improved: bool,
    /// Patience is exhausted: stop after this epoch.
    pub stop: bool,
}

/// The stateful early-stopping tracker (Keras' `EarlyStopping` callback without the model).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EarlyStopper {
    config: EarlyStopping,
    /// Best value so far; `None` until a non-NaN value is seen.
    best: Option<f32>,
    /// Epoch of `best` (as passed to `update`); 0 if none.
    best_epoch: u32,
    /// Epochs since the last improvement.
    wait: u32,
    /// Number of `update` calls so far.
    epochs_seen: u32,
    /// Epoch at which `stop` was first returned.
    stopped_epoch: Option<u32>,
}

impl EarlyStopper {
    pub fn new(config: EarlyStopping) -> EarlyStopper {
        EarlyStopper {
            config,
            best: None,
            best_epoch: 0,
            wait: 0,
            epochs_seen: 0,
            stopped_epoch: None,
        }
    }

    pub fn config(&self) -> &EarlyStopping {
        &self.config
    }

    /// Records the monitored `value` at the end of `epoch` (the trainer's numbering, 1-based
    /// there) and says whether it improved and whether to stop. Keras semantics: each epoch
    /// without an improvement of more than `min_delta` increments a wait counter, an improvement
    /// resets it, and training stops once it reaches `patience` (never on the first epoch, never
    /// with `patience = 0`).
    pub fn update(&mut self, epoch: u32, value: f32) -> Decision {
        self.epochs_seen += 1;
        self.wait += 1;
        let c = &self.config;
        if c.monitor.improves(value, self.best, c.min_delta) {
            self.best = Some(value);
            self.best_epoch = epoch;
            self.wait = 0;
            return Decision {
                improved: true,
                stop: false,
            };
        }
        let stop = c.patience > 0 && self.wait >= c.patience && self.epochs_seen > 1;
        if stop && self.stopped_epoch.is_none() {
            self.stopped_epoch = Some(epoch);
        }
        Decision {
            improved: false,
            stop,
        }
    }

    /// Best value so far, or NaN before any (non-NaN) value.
    pub fn best_value(&self) -> f32 {
        self.best.unwrap_or(f32::NAN)
    }

    /// Best value so far, if any.
    pub fn best(&self) -> Option<f32> {
        self.best
    }

    /// Epoch of the best value (0 before any).
    pub fn best_epoch(&self) -> u32 {
        self.best_epoch
    }

    /// Epochs since the last improvement.
    pub fn wait(&self) -> u32 {
        self.wait
    }

    /// The epoch at which stopping was first requested, if it was.
    pub fn stopped_epoch(&self) -> Option<u32> {
        self.stopped_epoch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stopper(monitor: Monitor, patience: u32, min_delta: f32) -> EarlyStopper {
        EarlyStopper::new(EarlyStopping {
            monitor,
            patience,
            min_delta,
            restore_best: true,
        })
    }

    #[test]
    fn serde_names_and_defaults() {
        let c: EarlyStopping = toml::from_str("").unwrap();
        assert_eq!(c, EarlyStopping::default());
        assert_eq!(c.monitor, Monitor::ValLoss);
        assert_eq!(c.patience, 5);
        assert_eq!(c.min_delta, 0.0);
        assert!(!c.restore_best);
        for m in [
            Monitor::ValLoss,
            Monitor::ValAccuracy,
            Monitor::Loss,
            Monitor::Accuracy,
        ] {
            let c: EarlyStopping = toml::from_str(&format!("monitor = \"{}\"", m.name())).unwrap();
            assert_eq!(c.monitor, m);
            assert_eq!(serde_json::to_string(&m).unwrap(), format!("\"{m}\""));
        }
        assert!(toml::from_str::<EarlyStopping>("monitor = \"val_acc\"").is_err());
        assert!(toml::from_str::<EarlyStopping>("patiense = 3").is_err());
    }

    #[test]
    fn validation() {
        assert!(EarlyStopping::default().validate().is_ok());
        let bad = EarlyStopping {
            min_delta: -0.1,
            ..EarlyStopping::default()
        };
        assert!(bad.validate().unwrap_err().contains("min_delta"));
    }

    #[test]
    fn stops_after_patience_epochs_without_improvement() {
        let mut s = stopper(Monitor::ValLoss, 2, 0.0);
        let d = |improved, stop| Decision { improved, stop };
        assert_eq!(s.update(1, 1.0), d(true, false));
        assert_eq!(s.update(2, 0.8), d(true, false));
        assert_eq!(s.update(3, 0.9), d(false, false));
        assert_eq!(s.update(4, 0.7), d(true, false)); // resets the wait
        assert_eq!(s.update(5, 0.7), d(false, false)); // equal is not better
        assert_eq!(s.update(6, 0.75), d(false, true));
        assert_eq!(s.best_value(), 0.7);
        assert_eq!(s.best_epoch(), 4);
        assert_eq!(s.stopped_epoch(), Some(6));
    }

    #[test]
    fn min_delta_and_direction() {
        // Accuracy: higher is better, must beat the best by more than min_delta.
        let mut s = stopper(Monitor::ValAccuracy, 1, 0.01);
        assert!(s.update(1, 0.90).improved);
        let d = s.update(2, 0.905);
        assert!(!d.improved && d.stop);
        let mut s = stopper(Monitor::Accuracy, 3, 0.01);
        s.update(1, 0.90);
        assert!(s.update(2, 0.915).improved);
        assert!(!s.update(3, 0.80).improved);
        // Loss: lower is better.
        let mut s = stopper(Monitor::Loss, 3, 0.1);
        s.update(1, 1.0);
        assert!(!s.update(2, 0.95).improved);
        assert!(s.update(3, 0.85).improved);
        assert_eq!(s.best_epoch(), 3);
    }

    #[test]
    fn nan_never_improves_and_patience_zero_never_stops() {
        let mut s = stopper(Monitor::ValLoss, 1, 0.0);
        let d = s.update(1, f32::NAN);
        assert!(!d.improved && !d.stop, "never stops on the first epoch");
        assert!(s.best_value().is_nan());
        assert_eq!(s.best_epoch(), 0);
        assert!(s.update(2, 3.0).improved);
        assert!(s.update(3, f32::NAN).stop);

        let mut s = stopper(Monitor::ValLoss, 0, 0.0);
        assert!(!s.config().enabled());
        s.update(1, 1.0);
        for e in 2..50 {
            assert_eq!(
                s.update(e, 2.0),
                Decision {
                    improved: false,
                    stop: false
                }
            );
        }
        assert_eq!(s.best_epoch(), 1);
    }

    #[test]
    fn state_round_trip_resumes_identically() {
        let values = [1.0, 0.9, 0.95, 0.97, 0.85, 0.9, 0.9, 0.91];
        let mut full = stopper(Monitor::ValLoss, 3, 0.0);
        let expected: Vec<Decision> = values
            .iter()
            .enumerate()
            .map(|(i, &v)| full.update(i as u32 + 1, v))
            .collect();
        let mut first = stopper(Monitor::ValLoss, 3, 0.0);
        for (i, &v) in values[..4].iter().enumerate() {
            first.update(i as u32 + 1, v);
        }
        let json = serde_json::to_string(&first).unwrap();
        let mut resumed: EarlyStopper = serde_json::from_str(&json).unwrap();
        assert_eq!(resumed, first);
        for (i, &v) in values.iter().enumerate().skip(4) {
            assert_eq!(resumed.update(i as u32 + 1, v), expected[i]);
        }
        assert_eq!(resumed, full);
        assert!(expected.last().unwrap().stop);
    }
}
