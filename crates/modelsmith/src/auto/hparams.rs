//! The training hyperparameters of an architecture trial: optimizer, learning rate, batch size,
//! augmentation (images) or weight decay (tables). A trial trained from scratch samples them jointly with its genome, with the
//! study's sampler (TPE by default); a child that starts from its parent's weights continues
//! its parent's training, so it takes the parent's settings, now and then with one of them
//! changed by a small step (the explore step of population-based training).

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::data::Augment;
use crate::search::{Trial, TrialError};
use crate::task::Metric;
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
    /// L2 penalty (decoupled for AdamW); searched for tables, whose small MLPs overfit more
    /// easily than they underfit. `None`: the optimizer's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_decay: Option<f32>,
}

/// Optimizers the search chooses among: the seed's SGD with momentum, Adam and AdamW.
pub const SEARCH_OPTIMIZERS: &[&str] = &["sgd", "adam", "adamw"];
/// The learning-rate ranges, per optimizer family.
const LR_SGD: (f64, f64) = (5e-3, 0.2);
const LR_ADAM: (f64, f64) = (2e-4, 5e-3);
const BATCH_SIZES: [i64; 3] = [32, 64, 128];
const WEIGHT_DECAY: (f64, f64) = (1e-6, 1e-2);

/// The share of children whose inherited settings get one small change. Switching a trained
/// network's settings costs accuracy in the child's first epochs (in a Fashion-MNIST run,
/// children that turned augmentation on or restarted at a large SGD rate lost 2-17 points
/// in their first epoch and were pruned), so most children keep them.
pub const TWEAK_SHARE: f64 = 0.25;

impl Hyper {
    /// Samples the settings. Learning rates live on different scales for SGD and the Adam
    /// family, so each has its own (conditional) parameter: `lr_sgd` or `lr_adam`.
    /// Augmentation is only offered for images, weight decay only for tables.
    pub fn sample(trial: &mut Trial, image: bool) -> Result<Hyper, TrialError> {
        let optimizer: &str = trial.suggest_categorical("optimizer", SEARCH_OPTIMIZERS)?;
        let lr = if optimizer == "sgd" {
            trial.suggest_float_log("lr_sgd", LR_SGD.0, LR_SGD.1)?
        } else {
            trial.suggest_float_log("lr_adam", LR_ADAM.0, LR_ADAM.1)?
        };
        let batch_size = trial.suggest_categorical("batch_size", &BATCH_SIZES)? as usize;
        let augment = image && trial.suggest_bool("augment")?;
        let weight_decay = if image {
            None
        } else {
            Some(trial.suggest_float_log("weight_decay", WEIGHT_DECAY.0, WEIGHT_DECAY.1)? as f32)
        };
        Ok(Hyper {
            optimizer: optimizer.to_string(),
            lr: lr as f32,
            batch_size,
            augment,
            weight_decay,
        })
    }

    /// The settings of a lineage's first network, when no trial has taught the sampler anything
    /// yet and every later child will inherit them (as AutoKeras starts from its space's
    /// defaults): Adam at 1e-3, batch 32, no augmentation; children then train at a fifth of
    /// that rate. In the first 30-minute Fashion-MNIST hill-climb every child trained with Adam or
    /// AdamW at 1.2e-4 to 2e-4 without augmentation improved on its parent (6 of 6), while the
    /// children that restarted SGD at 0.04 or turned augmentation on lost 2-17 points.
    pub fn lineage_default() -> Hyper {
        Hyper {
            optimizer: "adam".into(),
            lr: 1e-3,
            batch_size: 32,
            augment: false,
            weight_decay: None,
        }
    }

    /// A child's settings: `parent`'s, and with probability [`TWEAK_SHARE`] one of them
    /// changed: the rate doubled or halved (within its range), the neighbouring batch size, or
    /// (images) augmentation switched. Returns the change, if any, in words.
    pub fn inherit(parent: &Hyper, image: bool, rng: &mut impl Rng) -> (Hyper, Option<String>) {
        let mut child = parent.clone();
        if !rng.gen_bool(TWEAK_SHARE) {
            return (child, None);
        }
        let choices = if image { 4 } else { 3 };
        let change = match rng.gen_range(0..choices) {
            0 | 1 => {
                let (lo, hi) = if child.optimizer == "sgd" {
                    LR_SGD
                } else {
                    LR_ADAM
                };
                let factor = if rng.gen_bool(0.5) { 2.0 } else { 0.5 };
                child.lr = (child.lr as f64 * factor).clamp(lo, hi) as f32;
                format!("lr {} -> {}", parent.lr, child.lr)
            }
            2 => {
                let at = BATCH_SIZES
                    .iter()
                    .position(|&b| b as usize == child.batch_size)
                    .unwrap_or(1);
                let next = if at == 0 || (at + 1 < BATCH_SIZES.len() && rng.gen_bool(0.5)) {
                    at + 1
                } else {
                    at - 1
                };
                child.batch_size = BATCH_SIZES[next] as usize;
                format!("batch {} -> {}", parent.batch_size, child.batch_size)
            }
            _ => {
                child.augment = !child.augment;
                format!("augment {} -> {}", parent.augment, child.augment)
            }
        };
        (child, Some(change))
    }

    /// The training config of a trial: these settings for `epochs` epochs, a cosine decay of
    /// the rate over the trial (a short run ends annealed, so its accuracy is comparable), early
    /// stopping on the study's validation metric, and the best epoch's weights kept. The validation split
    /// and seed are the study's, identical in every trial: a child's validation examples must
    /// be ones its parent never trained on.
    pub fn train_config(
        &self,
        base: &TrainConfig,
        model: String,
        epochs: u32,
        validation_split: f32,
        metric: Metric,
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
            weight_decay: self.weight_decay,
            schedule: LrSchedule::Cosine {
                warmup_epochs: 0,
                min_lr: 0.0,
            },
            early_stopping: EarlyStopping {
                monitor: Monitor::from(metric),
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

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn children_mostly_keep_their_parents_settings_and_changes_stay_in_range() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let parents = [
            Hyper::lineage_default(),
            Hyper {
                optimizer: "sgd".into(),
                lr: 0.19,
                batch_size: 128,
                augment: true,
                weight_decay: Some(1e-4),
            },
        ];
        for parent in &parents {
            for image in [true, false] {
                let mut changed = 0;
                for _ in 0..400 {
                    let (child, change) = Hyper::inherit(parent, image, &mut rng);
                    assert_eq!(child.optimizer, parent.optimizer);
                    let (lo, hi) = if child.optimizer == "sgd" {
                        LR_SGD
                    } else {
                        LR_ADAM
                    };
                    assert!((lo as f32..=hi as f32).contains(&child.lr), "{child:?}");
                    assert!(BATCH_SIZES.contains(&(child.batch_size as i64)));
                    if !image {
                        assert_eq!(child.augment, parent.augment, "tables never switch it");
                    }
                    match change {
                        None => assert_eq!(&child, parent),
                        Some(text) => {
                            changed += 1;
                            assert!(text.contains("->"), "{text}");
                        }
                    }
                }
                // TWEAK_SHARE of 400 is 100; a binomial draw stays well within 60..140.
                assert!((60..140).contains(&changed), "{changed} changed");
            }
        }
    }
}
