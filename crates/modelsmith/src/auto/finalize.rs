//! The end of a search: the best trial's network, trained further on train+validation within
//! the time left, tested once, saved as a model folder with `model.onnx` beside it.
//!
//! The final training starts from the best trial's trained weights (its lineage's training is
//! what made it best; starting over would throw that away) and runs as many epochs as the
//! final share of the budget allows, with a cosine decay to zero. Without those weights (the
//! trial's folder is gone) it trains from scratch the same way.
//!
//! A cross-validated search (small tables) refits instead: from scratch on every training row,
//! for as many epochs as the best trial's folds found best (its weights saw four fifths of the
//! rows, and more epochs than its early stopping chose overfit a small table). Both go through
//! tune's [`final_fit`], the one final training of a search.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::artifacts::Artifacts;
use super::{measure, AutoConfig, AutoObserver};
use crate::arch::evolve::GENOME_ATTR;
use crate::arch::{Genome, TableGenome};
use crate::data::LoadedData;
use crate::deploy::{export, ExportFormat};
use crate::model::{load_model, read_weights_file, save_model, OutputLayer};
use crate::search::FrozenTrial;
use crate::task::{Metric, Scores};
use crate::train::{evaluate, EpochMetrics, TrainConfig, TrainObserver};
use crate::tune::{best_epochs, final_fit, FinalLength, REPORT_ATTR};
use crate::{Error, Result};

/// Share of the time left that epochs may fill (the rest: testing, latency, ONNX export).
const EPOCH_SHARE: f64 = 0.85;
/// Share of the time left after which the final training stops even mid-epoch.
const HARD_STOP_SHARE: f64 = 0.95;

#[derive(Clone, Debug, Serialize)]
pub struct FinalModel {
    pub trial: u64,
    pub architecture: String,
    pub params: usize,
    pub flops: u64,
    pub latency_ms: f64,
    /// The trial's validation accuracy (the search's judgement).
    /// The study's metric (`val_accuracy`, `val_rmse`, …) and the best trial's value of it.
    pub metric: &'static str,
    pub val_value: f64,
    /// The final model's test figures (by task: accuracy; RMSE, MAE and R²).
    pub test: Scores,
    pub epochs: u32,
    pub train_seconds: f64,
    /// Trainings averaged in the final network (1: a single training).
    pub members: usize,
    /// `trial N's weights` or `scratch`.
    pub start: String,
    pub out: PathBuf,
    pub onnx: PathBuf,
}

pub(super) struct Finalizer<'a> {
    pub config: &'a AutoConfig,
    pub data: &'a LoadedData,
    pub artifacts: &'a Artifacts,
    pub input_shape: &'a [usize],
    pub output: OutputLayer,
    pub metric: Metric,
    pub observer: &'a dyn AutoObserver,
}

impl Finalizer<'_> {
    pub fn run(&self, best: &FrozenTrial, out: &Path, time_left: Duration) -> Result<FinalModel> {
        let bad = |what: &str| Error::Config(format!("trial {}: no {what} recorded", best.number));
        let genome: Genome = best
            .attrs
            .get(GENOME_ATTR)
            .and_then(|g| serde_json::from_value(g.clone()).ok())
            .ok_or_else(|| bad("genome"))?;
        let trained: TrainConfig = best
            .attrs
            .get("config")
            .and_then(|c| serde_json::from_value(c.clone()).ok())
            .ok_or_else(|| bad("training config"))?;
        let refit = self.config.folds > 1;
        let weights = if refit {
            None
        } else {
            self.artifacts
                .weights_of(best)
                .and_then(|p| read_weights_file(&p).ok())
        };
        let start = match (&weights, refit) {
            (Some(_), _) => format!("trial {}'s weights", best.number),
            (None, true) => "scratch (refit on every training row)".to_string(),
            (None, false) => "scratch".to_string(),
        };

        // Seconds per epoch on all the training data. Two estimates, each too long in its own
        // case, so the shorter is the closer: the trial's own epochs (they validated each
        // epoch and, on the CPU, ran on one share of the cores beside other trials) and a few
        // batch-32 steps timed here on the CPU now (far too long when the final training runs
        // on a GPU).
        let report = best.attrs.get(REPORT_ATTR);
        let field = |k: &str| report.and_then(|r| r.get(k)).and_then(|v| v.as_f64());
        let from_trial = match (field("train_seconds"), field("epochs_run")) {
            (Some(s), Some(e)) if e >= 1.0 => s / e / (1.0 - self.config.validation_split as f64),
            _ => f64::INFINITY,
        };
        let examples = self.data.train.len();
        let timed = measure::epoch_seconds(&genome, &self.data.train, self.output, examples)?;
        let per_epoch = from_trial.min(timed);
        let fit = (time_left.as_secs_f64() * EPOCH_SHARE / per_epoch).floor();
        let most = match best_epochs(best, &trained) {
            Some(epochs) if refit => epochs,
            _ => self.config.max_final_epochs.max(1),
        };
        let epochs = (fit as u32).min(most);

        std::fs::create_dir_all(out)
            .map_err(|e| Error::io(out, format!("cannot create folder: {e}")))?;
        if epochs == 0 {
            // No time left for even one more epoch (the search overran): the best trial's
            // model as it was trained, tested once, rather than blowing the budget.
            if let Some(dir) = self.artifacts.trial_model_dir(best) {
                return self.keep_trial_model(best, &genome, &dir, out);
            }
        }
        let epochs = epochs.max(1);
        let spec_path = self.artifacts.root().join("final-spec.json");
        let spec = genome.to_spec(self.input_shape, self.output);
        std::fs::write(
            &spec_path,
            serde_json::to_string_pretty(&spec).expect("specs serialize"),
        )
        .map_err(|e| Error::io(&spec_path, e))?;
        let mut config = trained;
        config.model = spec_path.display().to_string();
        // A refit keeps the trials' schedule and stops where their folds did best; a
        // continuation of the trial's weights decays to zero over the time left.
        let length = if refit {
            FinalLength::AsTrained { epochs }
        } else {
            FinalLength::Cosine { epochs }
        };
        let hard_stop = Instant::now() + time_left.mul_f64(HARD_STOP_SHARE);
        let members = match &genome {
            Genome::Table(table) if refit && self.config.max_latency_ms.is_none() => {
                let members = self.ensemble_members(table, self.config.ensemble)?;
                if members > 1 {
                    return self
                        .fit_ensemble(best, table, &config, length, members, hard_stop, out);
                }
                members
            }
            _ => 1,
        };
        debug_assert_eq!(members, 1);
        self.observer.on_message(&format!(
            "final: trial {} ({}) on train+validation for {epochs} epoch(s) from {start}",
            best.number, genome
        ));
        let mut progress = FinalProgress {
            observer: self.observer,
            epochs,
            hard_stop,
        };
        let report = final_fit(
            &config,
            length,
            weights.as_ref(),
            self.data,
            out,
            true,
            &mut progress,
        )?;
        let latency_ms = measure::latency(out, self.config.energy.cpu_watts)?.ms;
        let onnx = out.join("model.onnx");
        export(out, ExportFormat::Onnx, &onnx)?;
        Ok(FinalModel {
            trial: best.number,
            architecture: genome.to_string(),
            params: report.params,
            flops: report.flops_per_example,
            latency_ms,
            metric: self.metric.name(),
            val_value: best.value.unwrap_or(f64::NAN),
            test: report.test_scores(),
            epochs: report.epochs_run,
            train_seconds: report.train_seconds,
            members: 1,
            start,
            out: out.to_path_buf(),
            onnx,
        })
    }
}

impl Finalizer<'_> {
    /// The most members, up to `wanted`, whose learned parameters together stay within
    /// `max_params`. The ensemble network's zeros (its off-diagonal blocks) are not counted,
    /// nor its FLOPs against `max_flops`: both bound the search's architectures, and a table's
    /// MLP answers in microseconds either way (`--max-latency-ms` turns the ensemble off).
    fn ensemble_members(&self, table: &TableGenome, wanted: usize) -> Result<usize> {
        let limits = &self.config.strategy.evolution.limits;
        let member = Genome::Table(table.clone()).cost(self.input_shape, self.output)?;
        Ok(wanted.min(limits.max_params / member.params.max(1)).max(1))
    }

    /// Saves the trial's own model folder to `out` with its test figures, tests it once,
    /// measures it and exports it.
    fn keep_trial_model(
        &self,
        best: &FrozenTrial,
        genome: &Genome,
        trial_dir: &Path,
        out: &Path,
    ) -> Result<FinalModel> {
        self.observer.on_message(&format!(
            "final: no time left for another epoch: trial {}'s model as trained, tested once",
            best.number
        ));
        let (mut meta, mut net) = load_model(trial_dir)?;
        let task = &self.data.info.task;
        let trained: Option<TrainConfig> = best
            .attrs
            .get("config")
            .and_then(|c| serde_json::from_value(c.clone()).ok());
        let loss = trained
            .unwrap_or_default()
            .loss
            .unwrap_or(task.default_loss());
        let test = evaluate(&mut net, &self.data.test, task, loss);
        record_test_figures(&mut meta, &test);
        save_model(out, &meta, &net)?;
        let latency_ms = measure::latency(out, self.config.energy.cpu_watts)?.ms;
        let onnx = out.join("model.onnx");
        export(out, ExportFormat::Onnx, &onnx)?;
        Ok(FinalModel {
            trial: best.number,
            architecture: genome.to_string(),
            params: meta.params,
            flops: 2 * meta.macs_per_example,
            latency_ms,
            metric: self.metric.name(),
            val_value: best.value.unwrap_or(f64::NAN),
            test,
            epochs: 0,
            train_seconds: 0.0,
            members: 1,
            start: format!(
                "trial {}'s model as trained (no time for more)",
                best.number
            ),
            out: out.to_path_buf(),
            onnx,
        })
    }
}

/// Adds the task's test figures to a saved model's metrics, named as a training report names
/// them (`test_accuracy`, `test_rmse`, …).
pub(super) fn record_test_figures(meta: &mut crate::model::ModelMeta, test: &Scores) {
    let figures = serde_json::to_value(test).expect("scores serialize");
    if let (Some(m), Some(figures)) = (meta.metrics.as_object_mut(), figures.as_object()) {
        for (key, value) in figures {
            m.insert(format!("test_{key}"), value.clone());
        }
    }
}

pub(super) struct FinalProgress<'o> {
    pub observer: &'o dyn AutoObserver,
    pub epochs: u32,
    /// The epoch count comes from the trial's epoch times; if this machine slows down (another
    /// job starts), training stops here rather than blow the budget.
    pub hard_stop: Instant,
}

impl TrainObserver for FinalProgress<'_> {
    fn on_epoch_end(&mut self, m: &EpochMetrics) {
        let train = Scores {
            loss: m.loss,
            accuracy: m.accuracy,
            ..Scores::default()
        };
        self.observer.on_final_epoch(m.epoch, self.epochs, &train);
    }

    fn on_message(&mut self, message: &str) {
        self.observer.on_message(&format!("final: {message}"));
    }

    fn interrupt(&mut self) -> bool {
        Instant::now() >= self.hard_stop
    }
}
