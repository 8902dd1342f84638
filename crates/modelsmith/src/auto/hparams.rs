//! The training hyperparameters each architecture trial samples jointly with its genome, with
//! the study's sampler (TPE by default): optimizer, learning rate, batch size, augmentation.

use serde::{Deserialize, Serialize};

use crate::data::Augment;
use crate::search::{Trial, TrialError};
use crate::train::early_stopping::{EarlyStopping, Monitor};
use crate::train::schedule::LrSchedule;
use crate::train::TrainConfig;

/// One trial's training settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hyper {
    pub optimizer: String,
    pub lr: f32,
    pub batch_size: usize,
    pub augment: bool,
}

/// Optimizers the search chooses among: the seed's SGD with momentum, Adam and AdamW.
pub const SEARCH_OPTIMIZERS: &[&str] = &["sgd", "adam", "adamw"];

impl Hyper {
    /// Samples the settings. Learning rates live on different scales for SGD and the Adam
    /// family, so each has its own (conditional) parameter: `lr_sgd` or `lr_adam`.
    /// Augmentation is only offered for images.
    pub fn sample(trial: &mut Trial, image: bool) -> Result<Hyper, TrialError> {
        let optimizer: &str = trial.suggest_categorical("optimizer", SEARCH_OPTIMIZERS)?;
        let lr = if optimizer == "sgd" {
            trial.suggest_float_log("lr_sgd", 5e-3, 0.2)?
        } else {
            trial.suggest_float_log("lr_adam", 2e-4, 5e-3)?
        };
        let batch_size = trial.suggest_categorical("batch_size", &[32i64, 64, 128])? as usize;
        let augment = image && trial.suggest_bool("augment")?;
        Ok(Hyper {
            optimizer: optimizer.to_string(),
            lr: lr as f32,
            batch_size,
            augment,
        })
    }

    /// The training config of a trial: these settings for `epochs` epochs, a cosine decay of
    /// the rate over the trial (a short run ends annealed, so its accuracy is comparable), early
    /// stopping on validation accuracy, and the best epoch's weights kept. The validation split
    /// and seed are the study's, identical in every trial: a child's validation examples must
    /// be ones its parent never trained on.
    pub fn train_config(
        &self,
        base: &TrainConfig,
        model: String,
        epochs: u32,
        validation_split: f32,
    ) -> TrainConfig {
        TrainConfig {
            model,
            epochs,
            batch_size: self.batch_size,
            optimizer: self.optimizer.clone(),
            lr: self.lr,
            momentum: None,
            nesterov: false,
            decay: 0.0,
            weight_decay: None,
            schedule: LrSchedule::Cosine {
                warmup_epochs: 0,
                min_lr: 0.0,
            },
            early_stopping: EarlyStopping {
                monitor: Monitor::ValAccuracy,
                patience: 3,
                min_delta: 0.0,
                restore_best: true,
            },
            validation_split,
            augment: if self.augment {
                Augment::light()
            } else {
                Augment::default()
            },
            ..base.clone()
        }
    }
}
