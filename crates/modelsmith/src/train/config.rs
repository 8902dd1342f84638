//! `TrainConfig`: every training setting, as TOML (`--config FILE`) or flags. The defaults are
//! the Keras seed recipe: SGD lr 0.01, momentum 0.9, decay 1e-6, batch 32, 20 epochs, early
//! stopping on val_loss with patience 5.

use std::path::Path;

use modelsmith_engine::optim::OptimizerConfig;
use serde::{Deserialize, Serialize};

use super::batch_schedule::BatchSchedule;
use super::device::Device;
use super::early_stopping::{EarlyStopping, Monitor};
use super::schedule::LrSchedule;
use crate::data::{Augment, LoadOptions, MissingPolicy};
use crate::energy::EnergySettings;
use crate::task::{Loss, Task, TaskKind};
use crate::{Error, Result};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Data SPEC: `digits`, `fashion-mnist`, `idx:DIR`, `csv:FILE`, `images:DIR`.
    pub data: String,
    /// Target column for `csv:` data (`a,b`: several, a regression on each).
    pub target: Option<String>,
    /// `classification` or `regression`; unset: chosen from the target column
    /// ([`crate::task::choose`]).
    pub task: Option<TaskKind>,
    /// `cross_entropy` (classification), `mse`, `mae` or `huber` (regression); unset: the
    /// task's default (cross-entropy, MSE).
    pub loss: Option<Loss>,
    /// Missing CSV values: `impute` (train mean / most frequent value) or `reject`.
    pub missing: MissingPolicy,
    /// A user's own test data (a SPEC), scored once at the end with the preprocessing fitted on
    /// `data`, which then trains on all its examples instead of carving a test part out.
    pub test_data: Option<String>,
    /// One-hot encode CSV string columns with very many distinct values instead of refusing.
    pub allow_high_cardinality: bool,
    /// `auto` (the default: `seed-cnn` for images, `mlp` for tables), `seed-cnn`, `mlp` or a
    /// model spec file (JSON or TOML).
    pub model: String,
    pub epochs: u32,
    pub batch_size: usize,
    /// `sgd`, `adam`, `adamw`, `rmsprop` or `adagrad`.
    pub optimizer: String,
    pub lr: f32,
    /// Momentum for `sgd` (default 0.9, the seed recipe) and `rmsprop` (default 0).
    pub momentum: Option<f32>,
    pub nesterov: bool,
    /// Keras's legacy per-step decay: lr_t = lr / (1 + decay * t). Shorthand for
    /// `schedule = { kind = "inverse_time", decay = ... }`.
    pub decay: f32,
    /// L2 penalty (decoupled for `adamw`, whose default is Keras's 0.004; others default to 0).
    pub weight_decay: Option<f32>,
    pub schedule: LrSchedule,
    pub early_stopping: EarlyStopping,
    /// Fraction of the training set held out for validation (early stopping, plateaus); the
    /// test set never drives a decision.
    pub validation_split: f32,
    pub augment: Augment,
    pub batch_schedule: BatchSchedule,
    /// Clip the global gradient L2 norm to this value.
    pub clip_norm: Option<f32>,
    /// Clip each gradient element to [-v, v].
    pub clip_value: Option<f32>,
    pub seed: u64,
    /// Where to train: `cpu` (default), `cuda`, `cuda:N` or `auto` (see [`Device`]).
    pub device: Device,
    /// How the training's energy is estimated and priced (`[energy]`).
    #[serde(skip_serializing_if = "EnergySettings::is_default")]
    pub energy: EnergySettings,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            data: "digits".into(),
            target: None,
            task: None,
            loss: None,
            missing: MissingPolicy::Impute,
            test_data: None,
            allow_high_cardinality: false,
            model: "auto".into(),
            epochs: 20,
            batch_size: 32,
            optimizer: "sgd".into(),
            lr: 0.01,
            momentum: None,
            nesterov: false,
            decay: 1e-6,
            weight_decay: None,
            schedule: LrSchedule::Constant,
            early_stopping: EarlyStopping::default(),
            validation_split: 0.1,
            augment: Augment::default(),
            batch_schedule: BatchSchedule::Fixed,
            clip_norm: None,
            clip_value: None,
            seed: 42,
            device: Device::Cpu,
            energy: EnergySettings::default(),
        }
    }
}

pub const OPTIMIZERS: &[&str] = &["sgd", "adam", "adamw", "rmsprop", "adagrad"];

impl TrainConfig {
    /// How to load this config's data: its CSV target, missing-value policy, seed (of the
    /// train/test split), test data and high-cardinality choice.
    pub fn load_options(&self) -> LoadOptions {
        LoadOptions {
            target: self.target.clone(),
            task: self.task,
            missing: self.missing,
            seed: self.seed,
            allow_high_cardinality: self.allow_high_cardinality,
            test_data: self.test_data.clone(),
            ..LoadOptions::default()
        }
    }

    /// Reads a TOML config; unknown fields are errors (they are usually typos).
    pub fn from_toml_file(path: &Path) -> Result<TrainConfig> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Config(format!("{}: cannot read config: {e}", path.display())))?;
        toml::from_str(&text).map_err(|e| {
            Error::Config(format!(
                "{}: invalid config: {}",
                path.display(),
                crate::model::one_line(&e.to_string())
            ))
        })
    }

    /// Checks every field; the message names the field and the accepted range.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &str, msg: String| Err(Error::Config(format!("{field}: {msg}")));
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return bad("lr", format!("must be > 0, got {}", self.lr));
        }
        if self.epochs == 0 {
            return bad("epochs", "must be at least 1".into());
        }
        self.energy.validate()?;
        if self.batch_size == 0 {
            return bad("batch_size", "must be at least 1".into());
        }
        if !OPTIMIZERS.contains(&self.optimizer.as_str()) {
            return bad(
                "optimizer",
                format!(
                    "unknown '{}' (expected one of {})",
                    self.optimizer,
                    OPTIMIZERS.join(", ")
                ),
            );
        }
        if let Some(m) = self.momentum {
            if !(0.0..1.0).contains(&m) {
                return bad("momentum", format!("must be in [0, 1), got {m}"));
            }
        }
        if self.decay.is_nan() || self.decay < 0.0 {
            return bad("decay", format!("must be >= 0, got {}", self.decay));
        }
        if self.decay > 0.0 && self.schedule != LrSchedule::Constant {
            return bad(
                "decay",
                "is shorthand for the inverse_time schedule; set decay = 0 when a schedule is given"
                    .into(),
            );
        }
        self.optimizer_config()
            .validate()
            .or_else(|m| bad("optimizer", m))?;
        if !(0.0..0.9).contains(&self.validation_split) {
            return bad(
                "validation_split",
                format!("must be in [0, 0.9), got {}", self.validation_split),
            );
        }
        if let Some(c) = self.clip_norm {
            if c.is_nan() || c <= 0.0 {
                return bad("clip_norm", format!("must be > 0, got {c}"));
            }
        }
        if let Some(c) = self.clip_value {
            if c.is_nan() || c <= 0.0 {
                return bad("clip_value", format!("must be > 0, got {c}"));
            }
        }
        self.augment.validate().or_else(|m| bad("augment", m))?;
        self.schedule
            .validate_with_lr(self.lr)
            .or_else(|m| bad("schedule", m))?;
        self.early_stopping
            .validate()
            .or_else(|m| bad("early_stopping", m))?;
        self.batch_schedule
            .validate_with_batch_size(self.batch_size)
            .or_else(|m| bad("batch_schedule", m))?;
        let monitors_validation = self.early_stopping.monitor.needs_validation();
        if self.validation_split == 0.0 && monitors_validation && self.early_stopping.patience > 0 {
            return bad(
                "early_stopping.monitor",
                "monitors a validation metric but validation_split is 0".into(),
            );
        }
        Ok(())
    }

    /// The loss to train `task` with: `loss`, else the task's default; one that does not fit
    /// the task (or an early-stopping monitor it does not measure) is an error.
    pub fn effective_loss(&self, task: &Task) -> Result<Loss> {
        let loss = self.loss.unwrap_or(task.default_loss());
        loss.check_fits(task)
            .map_err(|m| Error::Config(format!("loss: {m}")))?;
        let monitor = self.early_stopping.monitor;
        // A validation monitor is a search metric: the task says which it measures.
        let measured = match monitor.metric() {
            Some(metric) => metric.check_fits(task).is_ok(),
            None => monitor == Monitor::Loss || !task.is_regression(),
        };
        if !measured {
            return Err(Error::Config(format!(
                "early_stopping.monitor: {} does not measure {monitor}; monitor {}",
                task.describe(),
                if task.is_regression() {
                    "val_loss, val_rmse, val_mae, val_r2 or loss"
                } else {
                    "val_loss, val_accuracy, loss or accuracy"
                }
            )));
        }
        Ok(loss)
    }

    /// The engine optimizer these settings describe (call after checking `optimizer` is known).
    pub fn optimizer_config(&self) -> OptimizerConfig {
        let mut config = OptimizerConfig::default_for(&self.optimizer).unwrap_or_default();
        match &mut config {
            OptimizerConfig::Sgd {
                momentum, nesterov, ..
            } => {
                *momentum = self.momentum.unwrap_or(0.9);
                *nesterov = self.nesterov;
            }
            OptimizerConfig::RmsProp { momentum, .. } => *momentum = self.momentum.unwrap_or(0.0),
            _ => {}
        }
        match self.weight_decay {
            Some(wd) => config.with_weight_decay(wd),
            None => config,
        }
    }

    /// The learning-rate schedule in force: `decay` > 0 means Keras's inverse-time decay.
    pub fn effective_schedule(&self) -> LrSchedule {
        if self.decay > 0.0 {
            LrSchedule::InverseTime { decay: self.decay }
        } else {
            self.schedule.clone()
        }
    }
}
