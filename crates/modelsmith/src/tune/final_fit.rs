//! The one way a search's chosen trial becomes the final model, for `tune` and `auto` alike:
//! the trial's training settings on every training row (no validation split, so no early
//! stopping), tested once, saved to a model folder.
//!
//! How long it trains is the caller's choice ([`FinalLength`]): the epochs the trial found best
//! under the trial's own learning-rate schedule (a refit: the epoch-by-epoch rates the trial
//! was judged with), or a fresh cosine decay sized to the time left (auto, continuing from the
//! best trial's trained weights).

use std::path::Path;

use crate::data::LoadedData;
use crate::model::NamedTensors;
use crate::search::FrozenTrial;
use crate::train::schedule::LrSchedule;
use crate::train::{
    train_with, EpochMetrics, StartInfo, TrainConfig, TrainObserver, TrainOptions, TrainReport,
};
use crate::Result;

use super::REPORT_ATTR;

/// The best epochs of each fold of a cross-validated trial (auto's small tables).
pub const FOLD_BEST_EPOCHS_ATTR: &str = "fold_best_epochs";

/// How long the final training runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinalLength {
    /// The trial's schedule, stopped after `epochs` ([`best_epochs`]).
    AsTrained { epochs: u32 },
    /// A cosine decay to zero over `epochs`, without the trial's step decay.
    Cosine { epochs: u32 },
}

impl FinalLength {
    pub fn epochs(self) -> u32 {
        match self {
            FinalLength::AsTrained { epochs } | FinalLength::Cosine { epochs } => epochs.max(1),
        }
    }
}

/// Trains `trained` (a trial's settings) on all of `data`'s training rows for `length`, from
/// `initial` weights when given, and saves to `out`; with `test`, tests once. `observer` sees
/// the epochs (and may stop or interrupt training as any observer can).
pub fn final_fit(
    trained: &TrainConfig,
    length: FinalLength,
    initial: Option<&NamedTensors>,
    data: &LoadedData,
    out: &Path,
    test: bool,
    observer: &mut dyn TrainObserver,
) -> Result<TrainReport> {
    let mut config = trained.clone();
    config.validation_split = 0.0;
    config.early_stopping.patience = 0;
    config.early_stopping.restore_best = false;
    let stop_after = match length {
        FinalLength::AsTrained { epochs } => {
            config.epochs = config.epochs.max(epochs.max(1));
            Some(epochs.max(1))
        }
        FinalLength::Cosine { epochs } => {
            config.epochs = epochs.max(1);
            config.decay = 0.0;
            config.schedule = LrSchedule::Cosine {
                warmup_epochs: 0,
                min_lr: 0.0,
            };
            None
        }
    };
    let options = TrainOptions {
        out: Some(out),
        resume: false,
        checkpoints: false,
        evaluate_test: test,
        initial,
        validation_fold: None,
    };
    let mut stopping = StopAfter {
        inner: observer,
        epochs: stop_after,
        done: 0,
    };
    train_with(&config, data, &options, &mut stopping)
}

/// The epochs `trial` found best: the mean (rounded up) of its folds' best epochs when it was
/// cross-validated; else its best epoch when its early stopping kept that epoch's weights;
/// else the epochs it ran. `None` when the trial recorded no report.
pub fn best_epochs(trial: &FrozenTrial, trained: &TrainConfig) -> Option<u32> {
    let folds: Option<Vec<u32>> = trial
        .attrs
        .get(FOLD_BEST_EPOCHS_ATTR)
        .and_then(|v| serde_json::from_value(v.clone()).ok());
    if let Some(f) = folds.filter(|f| !f.is_empty()) {
        return Some(f.iter().sum::<u32>().div_ceil(f.len() as u32).max(1));
    }
    let report = trial.attrs.get(REPORT_ATTR)?;
    let field = |k: &str| report.get(k).and_then(|v| v.as_u64()).map(|v| v as u32);
    let best = field("best_epoch").filter(|&e| e > 0);
    let epochs = match best {
        Some(best) if trained.early_stopping.restore_best => best,
        _ => field("epochs_run")?,
    };
    Some(epochs.max(1))
}

/// Passes everything to `inner`, and stops training after `epochs` when set.
struct StopAfter<'o> {
    inner: &'o mut dyn TrainObserver,
    epochs: Option<u32>,
    done: u32,
}

impl TrainObserver for StopAfter<'_> {
    fn on_start(&mut self, info: &StartInfo) {
        self.inner.on_start(info);
    }
    fn on_epoch_start(&mut self, epoch: u32, epochs: u32, batches: usize) {
        // The observer is told the epochs this training will run, not the schedule's length.
        let shown = self.epochs.map_or(epochs, |n| n.min(epochs));
        self.inner.on_epoch_start(epoch, shown, batches);
    }
    fn on_batch(&mut self, batch: usize, loss: f32, accuracy: Option<f32>, speed: f64) {
        self.inner.on_batch(batch, loss, accuracy, speed);
    }
    fn on_epoch_end(&mut self, m: &EpochMetrics) {
        self.done = m.epoch;
        self.inner.on_epoch_end(m);
    }
    fn on_message(&mut self, message: &str) {
        self.inner.on_message(message);
    }
    fn should_stop(&mut self) -> bool {
        self.epochs.is_some_and(|n| self.done >= n) || self.inner.should_stop()
    }
    fn interrupt(&mut self) -> bool {
        self.inner.interrupt()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::TrialState;

    fn trial(attrs: serde_json::Value) -> FrozenTrial {
        FrozenTrial {
            id: 1,
            number: 0,
            state: TrialState::Complete,
            params: Default::default(),
            value: Some(0.5),
            intermediate: Default::default(),
            attrs: serde_json::from_value(attrs).unwrap(),
            started_at: None,
            finished_at: None,
            heartbeat_at: None,
            owner: None,
            error: None,
        }
    }

    #[test]
    fn best_epochs_follow_what_the_trial_kept() {
        let report = serde_json::json!({"report": {"epochs_run": 12, "best_epoch": 7}});
        let mut config = TrainConfig::default();
        config.early_stopping.restore_best = false;
        // Without restored weights the trial's value is its last epoch's.
        assert_eq!(best_epochs(&trial(report.clone()), &config), Some(12));
        config.early_stopping.restore_best = true;
        assert_eq!(best_epochs(&trial(report), &config), Some(7));
        // Folds: their mean, rounded up, whatever the report says.
        let folds = serde_json::json!({
            "report": {"epochs_run": 12, "best_epoch": 7},
            FOLD_BEST_EPOCHS_ATTR: [3, 4, 4],
        });
        assert_eq!(best_epochs(&trial(folds), &config), Some(4));
        assert_eq!(best_epochs(&trial(serde_json::json!({})), &config), None);
        // A report with no completed epoch still trains one.
        let none = serde_json::json!({"report": {"epochs_run": 0, "best_epoch": 0}});
        assert_eq!(best_epochs(&trial(none), &config), Some(1));
    }

    #[test]
    fn final_length_always_trains_an_epoch() {
        assert_eq!(FinalLength::AsTrained { epochs: 0 }.epochs(), 1);
        assert_eq!(FinalLength::Cosine { epochs: 9 }.epochs(), 9);
    }
}
