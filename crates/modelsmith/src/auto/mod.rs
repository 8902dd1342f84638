//! `modelsmith auto`: architecture and hyperparameter search within a wall-clock budget, then
//! the best network trained on train+validation, tested once, saved and exported.
//!
//! The budget is split: `1 - final_share` (75% by default) for the search, the rest for the
//! final training, testing and ONNX export. The search is a [`Study`] in the given storage
//! (resumable, parallel workers), whose trials each propose a genome with the chosen
//! [`Strategy`], sample training settings with the study's sampler (TPE), start from their
//! parent's weights ([`TrainOptions::initial`](crate::train::TrainOptions)), and report every
//! epoch's validation accuracy to ASHA. Each complete trial records params, FLOPs and its
//! measured batch-1 latency; over `max_latency_ms` it is infeasible (pruned, never a parent
//! or the best). [`pareto_front`] gives the accuracy/params/latency trade-off.

mod artifacts;
mod explain_final;
mod final_ensemble;
mod finalize;
pub mod hparams;
pub mod measure;
mod objective;
pub mod pareto;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

pub use artifacts::{Artifacts, WEIGHTS_ATTR};
pub use explain_final::FinalExplanation;
pub use finalize::FinalModel;
pub use objective::{INFEASIBLE_ATTR, START_ATTR};
pub use pareto::{arch_points, greenest_within, pareto_front, ArchPoint, Greenest, GREEN_MARGIN};

use crate::arch::strategy::starter;
use crate::arch::{SpaceLimits, Strategy, StrategyKind};
use crate::data::LoadedData;
use crate::model::OutputLayer;
use crate::search::pruner::PrunerConfig;
use crate::search::sampler::{make_sampler, trial_rng};
use crate::search::{
    best_trial, FrozenTrial, OptimizeOptions, OptimizeSummary, Study, StudyObserver, StudyOptions,
    TrialState,
};
use crate::store::Storage;
use crate::task::{Metric, Scores, TaskKind};
use crate::train::TrainConfig;
use crate::{Error, Result};

/// Live progress of a search, from the worker threads.
pub trait AutoObserver: Sync {
    fn on_message(&self, _message: &str) {}
    /// `start`: where the network's weights come from (`scratch`, `trial 3, widened ...`).
    fn on_trial_start(&self, _number: u64, _architecture: &str, _start: &str) {}
    /// After each epoch of a trial: its validation figure of the study's metric.
    fn on_epoch(&self, _number: u64, _epoch: u32, _epochs: u32, _value: Option<f32>) {}
    fn on_trial_end(&self, _trial: &FrozenTrial, _best: Option<&FrozenTrial>) {}
    /// After each epoch of the final training: its training scores.
    fn on_final_epoch(&self, _epoch: u32, _epochs: u32, _train: &Scores) {}
}

/// Observes nothing.
pub struct NoAutoObserver;
impl AutoObserver for NoAutoObserver {}

/// Everything a search is run with.
#[derive(Clone, Debug, Serialize)]
pub struct AutoConfig {
    /// Data SPEC and CSV target, as for `train`.
    pub data: String,
    pub target: Option<String>,
    /// As for `train`: unset, chosen from the target column.
    pub task: Option<TaskKind>,
    /// The validation metric trials are ranked by; unset, the task's default (`val_accuracy`,
    /// `val_rmse`). Its direction is the study's.
    pub metric: Option<Metric>,
    pub study: String,
    pub strategy: Strategy,
    /// The sampler of the training hyperparameters (`auto` = TPE).
    pub sampler: String,
    /// Wall clock for the whole run: search, final training, export.
    pub time_budget: Duration,
    /// The share of the budget kept for the final training on train+validation.
    pub final_share: f64,
    /// The most epochs a trial trains (ASHA's largest rung; early stopping may end it sooner).
    pub epochs_per_trial: u32,
    /// The validation share of each trial (with `folds` > 1: one fold's share).
    pub validation_split: f32,
    /// Above 1: each trial trains once per fold of a stratified k-fold partition of the
    /// training data and is ranked by its mean validation metric (small tables); ASHA prunes
    /// on the first fold's epochs, and trials start from scratch (a parent's weights have
    /// seen the other folds' rows).
    pub folds: usize,
    /// With `folds` > 1 (small tables): the final model is this many refits of the best
    /// trial's settings from other seeds, averaged in one network ([`crate::arch::ensemble`]),
    /// as many as the time left allows; 1 trains one. Not with `max_latency_ms` (an ensemble
    /// is slower to answer).
    pub ensemble: usize,
    /// Trials trained at once by this process.
    pub workers: usize,
    pub seed: u64,
    pub max_latency_ms: Option<f64>,
    pub max_final_epochs: u32,
    /// Where trials and the final training run (resolved by the caller; see `train::Device`).
    pub device: crate::train::Device,
    /// How trials' energy is estimated and priced (`--cpu-watts`, `--carbon-intensity`).
    pub energy: crate::energy::EnergySettings,
}

/// Fewest optimizer steps a table's trial may train (at batch 32), however small the table.
pub const MIN_TRIAL_STEPS: usize = 600;

/// Refits averaged into a cross-validated table's final model ([`AutoConfig::ensemble`]).
pub const DEFAULT_ENSEMBLE: usize = 5;

/// Tables up to this many training rows rank trials by 5-fold cross-validation.
pub const CROSS_VALIDATE_ROWS: usize = 2000;

/// A table's validation share, epochs per trial and folds for `examples` training rows: see
/// [`AutoConfig::defaults_for`].
fn table_sizing(examples: usize) -> (f32, u32, usize) {
    let n = examples.max(1) as f32;
    let folds = if examples <= CROSS_VALIDATE_ROWS {
        5
    } else {
        1
    };
    let validation_split = if folds > 1 { 1.0 / folds as f32 } else { 0.1 };
    let steps_per_epoch = (n * (1.0 - validation_split) / 32.0).ceil().max(1.0);
    let epochs = (MIN_TRIAL_STEPS as f32 / steps_per_epoch)
        .ceil()
        .clamp(20.0, 300.0);
    (validation_split, epochs as u32, folds)
}

/// The demo budget when none is given: about two minutes.
pub const DEMO_BUDGET: Duration = Duration::from_secs(120);

impl AutoConfig {
    /// Defaults for a data set with examples of `input_shape` (`[h, w, c]`: images, else a
    /// table). They are sized for a 2-core machine:
    /// - images: up to 8 blocks of at most 96 filters and 20 MFLOPs per example (a two-conv
    ///   CNN that reaches ~92% on Fashion-MNIST costs ~8 MFLOPs; at 20 one epoch of 54k images
    ///   still takes about a minute here), 4 epochs per trial (a hill-climb child inherits its
    ///   parent's training, so a few epochs per step suffice), evolution's population 10;
    /// - tables: MLPs up to 3 hidden layers of 256, each trial trained for at least
    ///   [`MIN_TRIAL_STEPS`] steps (20 epochs of a large table; a 150-row table's 3 batches
    ///   per epoch would stop a trial after 60 steps, long before an MLP converges); a table of
    ///   at most [`CROSS_VALIDATE_ROWS`] rows ranks trials by 5-fold cross-validation (a tenth
    ///   of 150 rows is 15 validation rows, one of which is 7 points of accuracy), a larger one
    ///   on a tenth of its rows.
    ///
    /// `examples`: the training rows (before the validation split).
    pub fn defaults_for(data: &str, input_shape: &[usize], examples: usize) -> AutoConfig {
        let image = input_shape.len() == 3;
        let limits = if image {
            SpaceLimits {
                max_blocks: 8,
                max_filters: 96,
                max_hidden: 2,
                min_units: 32,
                max_units: 256,
                max_params: 1_000_000,
                max_flops: 20_000_000,
                ..SpaceLimits::default()
            }
        } else {
            SpaceLimits {
                max_hidden: 3,
                min_units: 8,
                max_units: 256,
                max_params: 200_000,
                max_flops: 2_000_000,
                ..SpaceLimits::default()
            }
        };
        let (validation_split, epochs_per_trial, folds) = if image {
            (0.1, 4, 1)
        } else {
            table_sizing(examples)
        };
        let mut strategy = Strategy::default();
        strategy.evolution.population = 10;
        strategy.evolution.tournament = 3;
        strategy.evolution.limits = limits;
        AutoConfig {
            data: data.to_string(),
            target: None,
            task: None,
            metric: None,
            study: "auto".into(),
            strategy,
            sampler: "auto".into(),
            time_budget: DEMO_BUDGET,
            final_share: 0.25,
            epochs_per_trial,
            validation_split,
            folds,
            ensemble: if folds > 1 { DEFAULT_ENSEMBLE } else { 1 },
            workers: 1,
            seed: 0,
            max_latency_ms: None,
            max_final_epochs: epochs_per_trial.max(15),
            device: crate::train::Device::Cpu,
            energy: Default::default(),
        }
    }

    /// Trials trained at once when the user does not say: on the CPU one per core (of the
    /// global pool), at most 8, each then training on one thread; a single network this small
    /// gains little from a second core (see `Study::optimize`), two trials gain twice. On a
    /// GPU one: the device, not the cores, is what trials share.
    pub fn default_workers(device: crate::train::Device) -> usize {
        match device {
            crate::train::Device::Cpu => rayon::current_num_threads().clamp(1, 8),
            _ => 1,
        }
    }

    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(m));
        self.strategy
            .validate()
            .map_err(|e| Error::Config(e.to_string()))?;
        make_sampler(&self.sampler, 5).map_err(Error::Config)?;
        if self.study.trim().is_empty() {
            return bad("study name must not be empty".into());
        }
        if !(0.0..0.9).contains(&self.final_share) {
            return bad(format!(
                "final share must be in [0, 0.9), got {}",
                self.final_share
            ));
        }
        if self.epochs_per_trial == 0 {
            return bad("epochs per trial must be at least 1".into());
        }
        if !(self.validation_split > 0.0 && self.validation_split < 0.9) {
            return bad(format!(
                "validation split must be in (0, 0.9): trials are judged on it, got {}",
                self.validation_split
            ));
        }
        if self.workers == 0 {
            return bad("workers must be at least 1".into());
        }
        if !(1..=20).contains(&self.folds) {
            return bad(format!(
                "folds must be between 1 and 20, got {}",
                self.folds
            ));
        }
        if let Some(l) = self.max_latency_ms {
            if !(l.is_finite() && l > 0.0) {
                return bad(format!(
                    "max latency must be a positive number of ms, got {l}"
                ));
            }
        }
        Ok(())
    }

    /// The fields every trial's training config shares.
    fn train_base(&self) -> TrainConfig {
        TrainConfig {
            data: self.data.clone(),
            target: self.target.clone(),
            task: self.task,
            seed: self.seed,
            device: self.device,
            energy: self.energy.clone(),
            ..TrainConfig::default()
        }
    }
}

/// What `auto` returns (and `--json` prints).
#[derive(Clone, Debug, Serialize)]
pub struct AutoReport {
    pub study: String,
    pub strategy: StrategyKind,
    pub budget_seconds: f64,
    /// The search phase's share and what it used.
    pub search_budget_seconds: f64,
    pub search_seconds: f64,
    pub total_seconds: f64,
    pub trials: usize,
    pub complete: usize,
    pub pruned: usize,
    pub failed: usize,
    pub run: OptimizeSummary,
    /// The validation metric trials were ranked by (`val_accuracy`, `val_rmse`, …).
    pub metric: &'static str,
    /// The best complete trials, best first.
    pub leaderboard: Vec<ArchPoint>,
    pub pareto_front: Vec<ArchPoint>,
    /// The model that predicts on the least energy within half a point of the best.
    pub greenest: Option<Greenest>,
    /// What the search's trials cost together.
    pub search_energy: Option<crate::report::StudyEnergy>,
    pub final_model: FinalModel,
    /// What the final model looks at (absent if explaining it failed; the search's result
    /// stands either way).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explanation: Option<FinalExplanation>,
}

/// Rows in the report's leaderboard.
pub const LEADERBOARD_ROWS: usize = 5;

/// Runs (or continues) the search described by `config` on `data` within its budget, keeping
/// trial weights under `artifacts`, and saves the final model folder to `out`.
pub fn run_auto(
    config: &AutoConfig,
    storage: Arc<dyn Storage>,
    data: &LoadedData,
    artifacts: &Artifacts,
    out: &Path,
    observer: &dyn AutoObserver,
) -> Result<AutoReport> {
    let started = Instant::now();
    config.validate()?;
    let task = &data.info.task;
    let classes_seen = data.train.num_classes.max(data.test.num_classes);
    if !task.is_regression() && task.outputs().min(classes_seen) < 2 {
        return Err(Error::Config(format!(
            "data '{}': the target has a single class; a classifier needs at least two",
            data.info.spec
        )));
    }
    let metric = config.metric.unwrap_or(task.default_metric());
    metric
        .check_fits(task)
        .map_err(|m| Error::Config(format!("--metric: {m}")))?;
    let direction = metric.direction();
    let output = task.model_head();
    let input_shape = data.train.shape.clone();
    check_budget(config, data, &input_shape, output)?;
    // Taken once the input is known good (bad input writes nothing) and before the search, so a
    // second run into the same folder fails now, not at the end.
    let _lock = crate::model::OutputLock::acquire(out)?;

    let budget = config.time_budget.as_secs_f64();
    let search_budget = Duration::from_secs_f64(budget * (1.0 - config.final_share));
    let deadline = started + search_budget;
    let pruner = PrunerConfig {
        kind: "asha".into(),
        min_resource: 1,
        max_resource: config.epochs_per_trial,
        reduction_factor: 3,
        startup_trials: 0,
    }
    .build()
    .map_err(Error::Config)?;
    let sampler = make_sampler(&config.sampler, 5).map_err(Error::Config)?;
    let study = Study::new(
        storage,
        &config.study,
        direction,
        StudyOptions {
            sampler: Arc::from(sampler),
            pruner: Arc::from(pruner),
            seed: config.seed,
            attrs: serde_json::json!({
                "kind": "architecture",
                "auto": config,
                "study": { "metric": metric.name() },
            }),
        },
    )
    .map_err(search_error)?;
    let runner = objective::TrialRunner {
        config,
        data,
        artifacts,
        input_shape: input_shape.clone(),
        output,
        metric,
        deadline,
        observer,
    };
    let options = OptimizeOptions {
        trials: None,
        timeout: Some(deadline.saturating_duration_since(Instant::now())),
        jobs: config.workers,
        // Every trial may fail only on a broken setup; stop then instead of looping.
        max_failures: Some(20),
        ..OptimizeOptions::default()
    };
    let summary = study
        .optimize_observed(&options, &Forward(observer), |trial| {
            runner.run(&study, trial)
        })
        .map_err(search_error)?;
    let search_seconds = started.elapsed().as_secs_f64();

    let trials = study.trials().map_err(|e| search_error(e.into()))?;
    let best = best_trial(&trials, direction).ok_or_else(|| {
        let failed: Vec<&str> = trials.iter().filter_map(|t| t.error.as_deref()).collect();
        Error::Io {
            path: format!("study '{}'", config.study),
            message: format!(
                "no trial completed within the search's {:.0}s{}",
                search_budget.as_secs_f64(),
                failed
                    .last()
                    .map(|e| format!(" (last error: {e})"))
                    .unwrap_or_default()
            ),
        }
    })?;
    let time_left = config.time_budget.saturating_sub(started.elapsed());
    let final_model = finalize::Finalizer {
        config,
        data,
        artifacts,
        input_shape: &input_shape,
        output,
        metric,
        observer,
    }
    .run(best, out, time_left)?;
    let explanation = match explain_final::explain_final(out, &data.test) {
        Ok(e) => Some(e),
        Err(e) => {
            observer.on_message(&format!("explaining the final model failed: {e}"));
            None
        }
    };

    let greenest = greenest_within(&arch_points(&trials), direction, metric.name());
    let search_energy = crate::report::trials_energy(&trials);
    let mut leaderboard = arch_points(&trials);
    pareto::sort_best_first(&mut leaderboard, direction);
    leaderboard.truncate(LEADERBOARD_ROWS);
    let count = |s| trials.iter().filter(|t| t.state == s).count();
    Ok(AutoReport {
        study: config.study.clone(),
        strategy: config.strategy.kind,
        budget_seconds: budget,
        search_budget_seconds: search_budget.as_secs_f64(),
        search_seconds,
        total_seconds: started.elapsed().as_secs_f64(),
        trials: trials.len(),
        complete: count(TrialState::Complete),
        pruned: count(TrialState::Pruned),
        failed: count(TrialState::Failed),
        run: summary,
        leaderboard,
        metric: metric.name(),
        pareto_front: pareto_front(&trials, direction),
        greenest,
        search_energy,
        final_model,
        explanation,
    })
}

/// The least budget whatever the data: loading the model back, latency runs, the ONNX export
/// and the final test take a few seconds beyond any training.
pub const MIN_BUDGET: Duration = Duration::from_secs(5);

/// Refuses a budget that cannot train even the starter network for one epoch (estimated from
/// a few timed steps on this machine), or that is under [`MIN_BUDGET`].
fn check_budget(
    config: &AutoConfig,
    data: &LoadedData,
    input_shape: &[usize],
    output: OutputLayer,
) -> Result<()> {
    let mut rng = trial_rng(config.seed, 0, "auto.budget");
    let genome = starter(config.strategy.limits(), input_shape, output, &mut rng)?;
    let epoch = measure::epoch_seconds(&genome, &data.train, output, data.train.len())?;
    let needed = epoch.max(MIN_BUDGET.as_secs_f64());
    let budget = config.time_budget.as_secs_f64();
    if budget < needed {
        return Err(Error::Config(format!(
            "time budget {budget:.0}s is too short: one training epoch of the smallest starting network takes about {epoch:.1}s here (and a run needs at least {}s); give at least {:.0}s",
            MIN_BUDGET.as_secs(),
            needed.ceil()
        )));
    }
    Ok(())
}

/// Passes the study's trial events to the auto observer.
struct Forward<'o>(&'o dyn AutoObserver);

impl StudyObserver for Forward<'_> {
    fn on_trial_end(&self, trial: &FrozenTrial, best: Option<&FrozenTrial>) {
        self.0.on_trial_end(trial, best);
    }
    fn on_message(&self, message: &str) {
        self.0.on_message(message);
    }
}

fn search_error(e: crate::search::SearchError) -> Error {
    if e.is_bad_input() {
        Error::Config(e.to_string())
    } else {
        Error::Io {
            path: "study".into(),
            message: e.to_string(),
        }
    }
}

/// Is this study an architecture search (written by `auto`)?
pub fn is_architecture_study(attrs: &serde_json::Value) -> bool {
    attrs.get("kind").and_then(|k| k.as_str()) == Some("architecture")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_tables_get_steps_and_folds_large_ones_keep_the_defaults() {
        // Iris's 112 training rows: 5 folds of 22-23 rows; a fold's 90 training rows are 3
        // batches, so 200 epochs reach the 600 steps.
        assert_eq!(table_sizing(112), (0.2, 200, 5));
        // 3,000 rows: no folds; 300 rows (a tenth) validate; 85 batches an epoch.
        assert_eq!(table_sizing(3_000), (0.1, 20, 1));
        // Diamonds' 43,152: the old defaults.
        assert_eq!(table_sizing(43_152), (0.1, 20, 1));
        let config = AutoConfig::defaults_for("csv:t.csv", &[30], 112);
        assert_eq!((config.epochs_per_trial, config.folds), (200, 5));
        assert_eq!(config.max_final_epochs, 200);
        let images = AutoConfig::defaults_for("digits", &[28, 28, 1], 8000);
        assert_eq!(
            (
                images.epochs_per_trial,
                images.validation_split,
                images.folds
            ),
            (4, 0.1, 1)
        );
    }
}
