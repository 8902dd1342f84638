//! One architecture trial: propose a genome, sample its training settings, start from the
//! parent's weights (morphed or by name), train with per-epoch reports to the pruner, measure
//! latency, judge feasibility, keep the weights for later children.

use std::time::Instant;

use super::artifacts::{Artifacts, WEIGHTS_ATTR};
use super::hparams::Hyper;
use super::{measure, AutoConfig, AutoObserver};
use crate::arch::evolve::{Proposal, GENOME_ATTR};
use crate::arch::{morph, Genome, StrategyKind};
use crate::data::LoadedData;
use crate::model::{read_weights_file, NamedTensors, OutputLayer};
use crate::search::sampler::trial_rng;
use crate::search::{FrozenTrial, Study, Trial, TrialError};
use crate::task::{Metric, Scores};
use crate::train::early_stopping::Monitor;
use crate::train::{train_with, TrainObserver, TrainOptions, TrainReport};
use crate::tune::{record_report, trial_value, TrialReporter, FOLD_BEST_EPOCHS_ATTR};

/// Trial attrs written here (besides the strategy's `genome`, `parent`, `mutation`).
pub const START_ATTR: &str = "start";
pub const INFEASIBLE_ATTR: &str = "infeasible";
/// The trial's training settings ([`Hyper`]), and where they came from (`sampled`, `lineage
/// default`, `trial N` or `trial N, lr 0.001 -> 0.002`).
pub const HYPER_ATTR: &str = "hyper";
pub const HYPER_SOURCE_ATTR: &str = "hyper_source";
/// Set on a trial the search's deadline stopped: it completes with the epochs it finished, or is
/// pruned when it finished none.
pub const CUT_ATTR: &str = "cut_by_budget";

/// Estimated joules of one prediction (batch 1) of the trial's model (`measure::Latency`).
pub const PREDICTION_ENERGY_ATTR: &str = "joules_per_prediction";

/// A child that starts from its parent's weights continues that training: at the sampled
/// (from-scratch) rate its first epoch would undo much of it. In a Fashion-MNIST pilot a
/// function-preserving widen of a 90.3% parent ended its first full-rate epoch at 88.5%; in
/// the first 30-minute run, children at 0.3x Adam rates of 4e-4 to 7e-4 (1.2e-4 to 2e-4) all
/// improved on their parents, children at 0.3x larger rates lost points. 0.2x puts the
/// lineage default's children (Adam 1e-3) in that band.
pub const INHERITED_LR_SCALE: f32 = 0.2;

/// Everything a trial needs, shared by the workers.
pub(super) struct TrialRunner<'a> {
    pub config: &'a AutoConfig,
    pub data: &'a LoadedData,
    pub artifacts: &'a Artifacts,
    pub input_shape: Vec<usize>,
    /// The task's output layer, ending every genome's model.
    pub output: OutputLayer,
    /// What trials are ranked by (the study's direction is its).
    pub metric: Metric,
    /// The end of the search phase: a trial still training then stops at its next step.
    pub deadline: Instant,
    pub observer: &'a dyn AutoObserver,
}

/// How a trial's network starts, as recorded in its `start` attr.
struct Start {
    weights: Option<NamedTensors>,
    text: String,
}

impl TrialRunner<'_> {
    pub fn run(&self, study: &Study, trial: &mut Trial) -> Result<f64, TrialError> {
        let number = trial.number();
        let trials = study.trials()?;
        let strategy = &self.config.strategy;
        let proposal = strategy.propose(
            &trials,
            study.direction(),
            self.config.seed,
            number,
            &self.input_shape,
            self.output,
        )?;
        proposal.record(trial)?;
        let cost = strategy
            .limits()
            .admit(&proposal.genome, &self.input_shape, self.output)
            .map_err(TrialError::failed)?;
        let architecture = proposal.genome.to_string();
        trial.set_attr("architecture", &architecture)?;
        trial.set_attr("params", cost.params)?;
        trial.set_attr("flops", cost.flops)?;
        let start = self.start(&trials, &proposal, number);
        trial.set_attr(START_ATTR, &start.text)?;
        let (hyper, source) = self.hyper(trial, &trials, &proposal, &start)?;
        trial.set_attr(HYPER_ATTR, &hyper)?;
        trial.set_attr(HYPER_SOURCE_ATTR, &source)?;
        self.observer
            .on_trial_start(number, &architecture, &start.text);

        let dir = self.artifacts.trial_dir(number);
        std::fs::create_dir_all(&dir).map_err(TrialError::failed)?;
        let spec_path = dir.join("spec.json");
        let spec = proposal.genome.to_spec(&self.input_shape, self.output);
        std::fs::write(
            &spec_path,
            serde_json::to_string_pretty(&spec).expect("specs serialize"),
        )
        .map_err(TrialError::failed)?;
        let mut train_config = hyper.train_config(
            &self.config.train_base(),
            spec_path.display().to_string(),
            self.config.epochs_per_trial,
            self.config.validation_split,
            self.metric,
        );
        if start.weights.is_some() {
            train_config.lr *= INHERITED_LR_SCALE;
        }
        if self.config.folds > 1 {
            // A fold of a small table validates on a few dozen rows, where accuracy reaches its
            // top within a few epochs and stays there; the loss keeps telling the epochs apart,
            // and the refit trains for the epochs chosen here.
            train_config.early_stopping.monitor = Monitor::ValLoss;
        }
        trial.set_attr("config", &train_config)?;

        let epochs = train_config.epochs;
        let observer = self.observer;
        let tell =
            move |epoch: u32, value: Option<f32>| observer.on_epoch(number, epoch, epochs, value);
        let mut reporter = TrialReporter::new(trial, self.metric, epochs)
            .until(self.deadline)
            .telling(&tell);
        let folds = self.config.folds;
        let options = TrainOptions {
            out: Some(&dir),
            resume: false,
            checkpoints: false,
            evaluate_test: false,
            initial: start.weights.as_ref(),
            validation_fold: (folds > 1).then_some((0, folds)),
        };
        let result = train_with(&train_config, self.data, &options, &mut reporter);
        let (pruned, mut cut, error) = (reporter.pruned, reporter.cut, reporter.error.take());
        let result = match result {
            Ok(first) if folds > 1 && !pruned && !cut && error.is_none() => {
                match self.cross_validate(trial, first, &train_config) {
                    Ok(Some(report)) => Ok(report),
                    Ok(None) => {
                        cut = true;
                        Err(crate::Error::Config("cut by the deadline".into()))
                    }
                    Err(e) => Err(e),
                }
            }
            other => other,
        };
        let outcome = if folds > 1 && cut && error.is_none() {
            // The deadline came before every fold was trained: no value comparable with the
            // other trials' means.
            trial.set_attr(CUT_ATTR, true).and(Err(TrialError::Pruned))
        } else {
            self.judge(trial, result, pruned, cut, error, &dir)
        };
        if outcome.is_err() {
            self.artifacts.remove(number);
        }
        // Older trials' weights that no strategy move will read again go now; this trial's
        // stay until a later trial makes them unnecessary.
        if let Ok(trials) = study.trials() {
            let mut keep = strategy.weights_to_keep(&trials, study.direction());
            keep.insert(number);
            self.artifacts.prune(&trials, &keep);
        }
        outcome
    }

    /// Trains the remaining folds of a cross-validated trial (the first, trained with the
    /// pruner watching, is `first`) and returns `first` with its validation scores replaced by
    /// the mean over the folds; each fold's value goes into the `fold_values` attr. `None`
    /// when the search's deadline came first.
    fn cross_validate(
        &self,
        trial: &mut Trial,
        first: TrainReport,
        config: &crate::train::TrainConfig,
    ) -> Result<Option<TrainReport>, crate::Error> {
        let folds = self.config.folds;
        let mut scores = vec![first.val_scores().unwrap_or_default()];
        let mut best_epochs = vec![first.best_epoch];
        let mut footprint = first.footprint.clone();
        for fold in 1..folds {
            let options = TrainOptions {
                out: None,
                resume: false,
                checkpoints: false,
                evaluate_test: false,
                initial: None,
                validation_fold: Some((fold, folds)),
            };
            let mut until = Deadline(self.deadline);
            let report = train_with(config, self.data, &options, &mut until)?;
            if Instant::now() >= self.deadline {
                return Ok(None);
            }
            scores.push(report.val_scores().unwrap_or_default());
            best_epochs.push(report.best_epoch);
            footprint.absorb(&report.footprint);
        }
        let values: Vec<Option<f32>> = scores.iter().map(|s| self.metric.of(s)).collect();
        let _ = trial.set_attr(FOLD_VALUES_ATTR, &values);
        let _ = trial.set_attr(FOLD_BEST_EPOCHS_ATTR, &best_epochs);
        let mean = Scores::mean(&scores);
        Ok(Some(TrainReport {
            val_loss: Some(mean.loss),
            val_accuracy: mean.accuracy,
            val_rmse: mean.rmse,
            val_mae: mean.mae,
            val_r2: mean.r2,
            footprint,
            ..first
        }))
    }

    /// The trial's value, or why it has none: pruned (by the pruner, or infeasible), failed.
    fn judge(
        &self,
        trial: &mut Trial,
        result: crate::Result<TrainReport>,
        pruned: bool,
        cut: bool,
        error: Option<TrialError>,
        dir: &std::path::Path,
    ) -> Result<f64, TrialError> {
        if let Some(e) = error {
            return Err(e);
        }
        let report = result.map_err(TrialError::failed)?;
        record_report(trial, &report)?;
        if pruned {
            return Err(TrialError::Pruned);
        }
        if cut {
            trial.set_attr(CUT_ATTR, true)?;
            if report.epochs_run == 0 {
                // Nothing of it was trained: its validation accuracy is its starting point's (a
                // parent's, for a function-preserving child), which this trial did not earn.
                return Err(TrialError::Pruned);
            }
        }
        let measured =
            measure::latency(dir, self.config.energy.cpu_watts).map_err(TrialError::failed)?;
        let latency = measured.ms;
        trial.set_attr("latency_ms", latency)?;
        trial.set_attr(PREDICTION_ENERGY_ATTR, measured.joules_per_prediction)?;
        if let Some(max) = self.config.max_latency_ms {
            if latency > max {
                // Never a parent nor the best: pruned, with the reason.
                trial.set_attr(
                    INFEASIBLE_ATTR,
                    format!("latency {latency:.3} ms exceeds --max-latency-ms {max}"),
                )?;
                return Err(TrialError::Pruned);
            }
        }
        trial.set_attr(
            WEIGHTS_ATTR,
            Artifacts::folder_name(trial.number()).as_str(),
        )?;
        trial_value(&report, self.metric)
    }

    /// The training settings: a child that starts from its parent's weights continues with the
    /// parent's (sometimes one changed, see [`Hyper::inherit`]); a hill-climb's starter takes
    /// [`Hyper::lineage_default`]; every other trial samples them with the study's sampler.
    fn hyper(
        &self,
        trial: &mut Trial,
        trials: &[FrozenTrial],
        proposal: &Proposal,
        start: &Start,
    ) -> Result<(Hyper, String), TrialError> {
        let image = self.input_shape.len() == 3;
        let parent_hyper = proposal
            .parent
            .filter(|_| start.weights.is_some())
            .and_then(|p| trials.iter().find(|t| t.number == p))
            .and_then(|t| t.attrs.get(HYPER_ATTR))
            .and_then(|h| serde_json::from_value::<Hyper>(h.clone()).ok());
        if let (Some(parent), Some(parent_hyper)) = (proposal.parent, parent_hyper) {
            let mut rng = trial_rng(self.config.seed, trial.number(), "auto.hyper");
            let (hyper, change) = Hyper::inherit(&parent_hyper, image, &mut rng);
            let source = match change {
                Some(c) => format!("trial {parent}, {c}"),
                None => format!("trial {parent}"),
            };
            return Ok((hyper, source));
        }
        if self.config.strategy.kind == StrategyKind::Hillclimb && proposal.parent.is_none() {
            return Ok((Hyper::lineage_default(), "lineage default".into()));
        }
        Ok((Hyper::sample(trial, image)?, "sampled".into()))
    }

    /// The parent's trained weights, morphed when the mutation is function-preserving, else
    /// inherited by name; from scratch for the random strategy, for trials without a parent,
    /// and when the parent's weights are gone (pruned away, or another machine's disk).
    fn start(&self, trials: &[FrozenTrial], proposal: &Proposal, number: u64) -> Start {
        let scratch = |text: String| Start {
            weights: None,
            text,
        };
        if self.config.folds > 1 {
            // A parent's weights trained on the rows its child validates on in other folds.
            return scratch("scratch (cross-validated)".into());
        }
        let Some(parent) = proposal.parent.filter(|_| self.config.strategy.inherits()) else {
            return scratch("scratch".into());
        };
        let parent_trial = trials.iter().find(|t| t.number == parent);
        let Some(path) = parent_trial.and_then(|t| self.artifacts.weights_of(t)) else {
            return scratch(format!("scratch (trial {parent} kept no weights)"));
        };
        let weights = match read_weights_file(&path) {
            Ok(w) => w,
            Err(_) => {
                return scratch(format!(
                    "scratch (trial {parent}'s weights are gone: {})",
                    path.display()
                ))
            }
        };
        let morph = proposal.change.as_ref().and_then(|c| c.morph);
        let parent_genome: Option<Genome> = parent_trial
            .and_then(|t| t.attrs.get(GENOME_ATTR))
            .and_then(|g| serde_json::from_value(g.clone()).ok());
        if let (Some(m), Some(parent_genome)) = (morph, parent_genome) {
            let mut rng = trial_rng(self.config.seed, number, "arch.morph");
            if let Ok(morphed) =
                morph::apply(&parent_genome, &weights, m, &self.input_shape, &mut rng)
            {
                if morphed.genome == proposal.genome {
                    let op = match m {
                        morph::Morph::Widen { .. } => "widened",
                        morph::Morph::Deepen { .. } => "deepened",
                    };
                    return Start {
                        weights: Some(morphed.weights),
                        text: format!("trial {parent}, {op} (function-preserving)"),
                    };
                }
            }
        }
        Start {
            weights: Some(weights),
            text: format!("trial {parent}, weights by name"),
        }
    }
}

/// A cross-validated trial's value of the study's metric on each fold.
pub const FOLD_VALUES_ATTR: &str = "fold_values";
/// Stops a training at the search's deadline (the later folds of a cross-validated trial).
struct Deadline(Instant);

impl TrainObserver for Deadline {
    fn interrupt(&mut self) -> bool {
        Instant::now() >= self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auto::NoAutoObserver;
    use crate::data::{load, LoadOptions};
    use crate::search::{Direction, OptimizeOptions, StudyOptions, TrialState};
    use crate::store::MemoryStorage;
    use std::sync::Arc;

    #[test]
    fn a_trial_cut_by_the_deadline_before_its_first_epoch_is_pruned_not_complete() {
        let all = load("digits", &LoadOptions::default()).unwrap();
        let data = LoadedData {
            train: all.train.subset(&(0..400).collect::<Vec<_>>()),
            test: all.test.subset(&(0..100).collect::<Vec<_>>()),
            info: all.info,
            task_choice: None,
        };
        let dir = tempfile::tempdir().unwrap();
        let artifacts = Artifacts::new(dir.path().join("a")).unwrap();
        let config = AutoConfig::defaults_for("digits", &[28, 28, 1], 8000);
        let runner = TrialRunner {
            config: &config,
            data: &data,
            artifacts: &artifacts,
            input_shape: vec![28, 28, 1],
            output: OutputLayer::classes(10),
            metric: Metric::ValAccuracy,
            // Already passed: the first step's interrupt poll stops the training.
            deadline: Instant::now(),
            observer: &NoAutoObserver,
        };
        let study = Study::new(
            Arc::new(MemoryStorage::new()),
            "cut",
            Direction::Maximize,
            StudyOptions::default(),
        )
        .unwrap();
        study
            .optimize(&OptimizeOptions::trials(1), |trial| {
                runner.run(&study, trial)
            })
            .unwrap();
        let trials = study.trials().unwrap();
        assert_eq!(trials.len(), 1);
        let t = &trials[0];
        assert_eq!(t.attrs["report"]["epochs_run"], 0, "{:?}", t.attrs);
        assert_eq!(t.attrs[CUT_ATTR], true);
        assert_eq!(t.state, TrialState::Pruned, "{t:?}");
        assert_eq!(t.value, None);
    }
}
