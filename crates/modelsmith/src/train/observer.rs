//! Progress callbacks: the trainer reports, the caller (CLI progress bars, a search's pruner)
//! decides what to do with it.

use serde::{Deserialize, Serialize};

use crate::task::Scores;

/// One epoch's figures, as written to `metrics.jsonl`. Which are present follows the task:
/// accuracies for classification; RMSE, MAE and R² (in the target's units) for regression.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    pub epoch: u32,
    pub loss: f32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val_loss: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val_accuracy: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_rmse: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_mae: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_r2: Option<f32>,
    pub lr: f32,
    pub batch_size: usize,
    /// Wall seconds for the epoch's training steps (validation excluded).
    pub seconds: f64,
    pub images_per_second: f64,
    /// Energy of the training so far (this run, from its start), in joules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub joules: Option<f64>,
}

impl EpochMetrics {
    /// Records the validation split's scores.
    pub fn set_val(&mut self, s: &Scores) {
        self.val_loss = Some(s.loss);
        self.val_accuracy = s.accuracy;
        self.val_rmse = s.rmse;
        self.val_mae = s.mae;
        self.val_r2 = s.r2;
    }

    /// The validation split's scores, if it was measured.
    pub fn val_scores(&self) -> Option<Scores> {
        Some(Scores {
            loss: self.val_loss?,
            accuracy: self.val_accuracy,
            rmse: self.val_rmse,
            mae: self.val_mae,
            r2: self.val_r2,
        })
    }
}

/// What the trainer knows before the first step.
#[derive(Clone, Debug)]
pub struct StartInfo {
    pub params: usize,
    pub macs_per_example: u64,
    pub train_examples: usize,
    pub val_examples: usize,
    pub epochs: u32,
    /// First epoch to run (1 unless resuming).
    pub first_epoch: u32,
}

pub trait TrainObserver {
    fn on_start(&mut self, _info: &StartInfo) {}
    fn on_epoch_start(&mut self, _epoch: u32, _epochs: u32, _batches: usize) {}
    /// After each step: running mean loss and (classification) accuracy of the epoch so far.
    fn on_batch(
        &mut self,
        _batch: usize,
        _loss: f32,
        _accuracy: Option<f32>,
        _images_per_second: f64,
    ) {
    }
    fn on_epoch_end(&mut self, _metrics: &EpochMetrics) {}
    /// A notable event (early stop, learning-rate reduction, batch growth, resume).
    fn on_message(&mut self, _message: &str) {}
    /// Asked after each epoch (after `on_epoch_end`): true ends training there.
    fn should_stop(&mut self) -> bool {
        false
    }
    /// Asked after each step: true ends training at once, mid-epoch (a deadline that cannot
    /// wait for a long epoch to finish). The unfinished epoch is not recorded: the report holds
    /// the completed epochs, or the weights as they are when none completed.
    fn interrupt(&mut self) -> bool {
        false
    }
}

/// Polls [`TrainObserver::interrupt`] after step `done` of the epoch's `total`, and says where
/// training stopped when it does (both executors, CPU and GPU, ask this after every step).
pub(super) fn interrupted(
    observer: &mut dyn TrainObserver,
    epoch: u32,
    done: usize,
    total: usize,
) -> bool {
    let stop = observer.interrupt();
    if stop {
        observer.on_message(&format!(
            "interrupted in epoch {epoch} after {done} of {total} steps"
        ));
    }
    stop
}

/// Reports nothing.
pub struct Silent;
impl TrainObserver for Silent {}
