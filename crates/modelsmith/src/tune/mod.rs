//! `modelsmith tune`: hyperparameter search over training settings.
//!
//! Each trial samples the `[space]`, applies the values to the `[train]` settings, trains with
//! validation only (the test split is never looked at), reports every epoch's validation
//! metric to the pruner and records the outcome in the study's storage. At the end the best
//! trial's settings are trained once more on train+validation and tested once.

mod config;
mod final_fit;
mod trial_run;
mod worker;

use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;

pub use config::{apply_params, parse_duration, StudySettings, TuneConfig};
pub use worker::{joined_study, run_worker, WorkerOptions, WorkerReport};

use crate::data::LoadedData;
use crate::model::ModelSpec;
use crate::search::sampler::{make_sampler, GridSampler};
use crate::search::{
    OptimizeOptions, OptimizeSummary, ParamValue, SearchError, SearchSpace, Study, StudyObserver,
    StudyOptions, Trial, TrialError, TrialState,
};
use crate::store::{Storage, StudyRecord};
use crate::task::{Metric, Scores, Task};
use crate::train::{train_with, TrainConfig, TrainOptions};
use crate::{Error, Result};
pub use final_fit::{best_epochs, final_fit, FinalLength, FOLD_BEST_EPOCHS_ATTR};
pub use trial_run::{
    record_report, trial_value, TrialReporter, ENERGY_ATTR, PREDICTIONS_ATTR, REPORT_ATTR,
};

/// Choices of one run that are not part of the study (flags).
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Queue a retry of every failed trial before starting.
    pub retry_failed: bool,
    /// Where the final model (best settings, trained on train+validation) is saved.
    pub out: Option<PathBuf>,
}

/// What `tune` returns (and `--json` prints).
#[derive(Clone, Debug, Serialize)]
pub struct TuneReport {
    pub study: String,
    pub metric: &'static str,
    pub direction: &'static str,
    pub trials: usize,
    pub complete: usize,
    pub pruned: usize,
    pub failed: usize,
    /// What this run did.
    pub run: OptimizeSummary,
    pub best: Option<BestTrial>,
    /// The best settings trained on train+validation, tested once.
    pub final_model: Option<FinalModel>,
}

#[derive(Clone, Debug, Serialize)]
pub struct BestTrial {
    pub number: u64,
    pub value: f64,
    pub params: std::collections::BTreeMap<String, ParamValue>,
}

#[derive(Clone, Debug, Serialize)]
pub struct FinalModel {
    /// By task: test accuracy; RMSE, MAE and R².
    pub test: Scores,
    pub epochs: u32,
    pub train_seconds: f64,
    pub out: PathBuf,
}

/// Runs (or continues) the study described by `config` on `data`.
pub fn run_tune(
    config: &TuneConfig,
    storage: Arc<dyn Storage>,
    data: &LoadedData,
    run: &RunOptions,
    observer: &dyn StudyObserver,
) -> Result<TuneReport> {
    let settings = &config.study;
    let metric = config.metric_for(&data.info.task)?;
    let (study, space, target) = open_study(config, metric, storage, observer)?;
    let name = study.name().to_string();
    let (heartbeat_every, stale_after) = config.liveness();
    let options = OptimizeOptions {
        trials: Some(target),
        timeout: config.timeout(),
        jobs: settings.jobs,
        retry_failed: run.retry_failed,
        retry_reclaimed: settings.retry_reclaimed,
        heartbeat_every,
        stale_after,
        ..OptimizeOptions::default()
    };
    if let Some(dir) = &settings.artifacts {
        create_artifacts_dir(dir)?;
    }
    let summary = study
        .optimize_observed(&options, observer, |trial| {
            objective(trial, &space, config, metric, data)
        })
        .map_err(search_error)?;

    let trials = study.trials().map_err(|e| search_error(e.into()))?;
    let count = |s| trials.iter().filter(|t| t.state == s).count();
    let best = crate::search::best_trial(&trials, study.direction());
    let mut report = TuneReport {
        study: name.clone(),
        metric: metric.name(),
        direction: study.direction().name(),
        trials: trials.len(),
        complete: count(TrialState::Complete),
        pruned: count(TrialState::Pruned),
        failed: count(TrialState::Failed),
        run: summary,
        best: best.map(|t| BestTrial {
            number: t.number,
            value: t.value.unwrap_or(f64::NAN),
            params: t.param_values(),
        }),
        final_model: None,
    };
    if let (true, Some(best)) = (settings.retrain, best) {
        let config_json = best.attrs.get("config").cloned().ok_or_else(|| {
            Error::Config(format!("trial {} has no training config", best.number))
        })?;
        let trained: TrainConfig = serde_json::from_value(config_json)
            .map_err(|e| Error::Config(format!("trial {}: config: {e}", best.number)))?;
        let length = FinalLength::AsTrained {
            epochs: best_epochs(best, &trained).unwrap_or(trained.epochs),
        };
        let out = run
            .out
            .clone()
            .unwrap_or_else(|| PathBuf::from("runs").join(&name).join("best"));
        observer.on_message(&format!(
            "training the best settings (trial {}) on train+validation for {} epochs",
            best.number,
            length.epochs()
        ));
        let final_report = final_fit(
            &trained,
            length,
            None,
            data,
            &out,
            true,
            &mut crate::train::Silent,
        )?;
        report.final_model = Some(FinalModel {
            test: final_report.test_scores(),
            epochs: final_report.epochs_run,
            train_seconds: final_report.train_seconds,
            out,
        });
    }
    Ok(report)
}

/// Creates (or opens) the study `config` describes, with the config in its attrs so that
/// workers can join it. Returns the study record.
/// `task` is the data's (the study's metric defaults to the task's).
pub fn create_study(
    config: &TuneConfig,
    task: &Task,
    storage: Arc<dyn Storage>,
) -> Result<StudyRecord> {
    let metric = config.metric_for(task)?;
    let (study, _, _) = open_study(config, metric, storage, &crate::search::NoStudyObserver)?;
    if let Some(dir) = &config.study.artifacts {
        create_artifacts_dir(dir)?;
    }
    Ok(study.record().clone())
}

/// The study of `config` with its sampler and pruner, its search space, and its target number
/// of trials (a grid may cap it). `metric` is the resolved one ([`TuneConfig::metric_for`]):
/// the study's attrs hold it, so workers that join judge by the same.
pub(crate) fn open_study(
    config: &TuneConfig,
    metric: Metric,
    storage: Arc<dyn Storage>,
    observer: &dyn StudyObserver,
) -> Result<(Study, SearchSpace, u64)> {
    let space = config.validate()?;
    let settings = &config.study;
    let name = settings.name.clone().unwrap_or_else(|| "default".into());
    let sampler: Box<dyn crate::search::sampler::Sampler> = if settings.sampler == "grid" {
        Box::new(GridSampler::with_space(
            settings.grid_points,
            space.distributions(),
        ))
    } else {
        make_sampler(&settings.sampler, settings.grid_points).map_err(Error::Config)?
    };
    // A grid has a finite number of points: more trials would only repeat them.
    let target = match sampler.max_trials() {
        Some(grid) if grid < settings.trials => {
            observer.on_message(&format!(
                "the grid has {grid} points: the study stops there (not at {})",
                settings.trials
            ));
            grid
        }
        _ => settings.trials,
    };
    let pruner = config.pruner.build().map_err(Error::Config)?;
    let study = Study::new(
        storage,
        &name,
        metric.direction(),
        StudyOptions {
            sampler: Arc::from(sampler),
            pruner: Arc::from(pruner),
            seed: settings.seed,
            attrs: serde_json::to_value(TuneConfig {
                study: StudySettings {
                    metric: Some(metric),
                    ..settings.clone()
                },
                ..config.clone()
            })
            .expect("configs serialize"),
        },
    )
    .map_err(search_error)?;
    Ok((study, space, target))
}

pub(crate) fn create_artifacts_dir(dir: &std::path::Path) -> Result<()> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(dir, format!("cannot create the artifact directory: {e}")))
}

/// One trial: sample, configure, train on the training split, judge on validation.
pub(crate) fn objective(
    trial: &mut Trial,
    space: &SearchSpace,
    config: &TuneConfig,
    metric: Metric,
    data: &LoadedData,
) -> std::result::Result<f64, TrialError> {
    let values = space.sample(trial)?;
    let train_config = apply_params(&config.train, &values).map_err(TrialError::failed)?;
    train_config.validate().map_err(TrialError::failed)?;
    trial.set_attr("config", &train_config)?;
    trial.set_attr("seed", train_config.seed)?;
    if let Ok(spec) = ModelSpec::resolve(
        &train_config.model,
        data.info.task.model_head(),
        &data.train.shape,
    ) {
        trial.set_attr("model_spec", &spec)?;
    }
    // With an artifact directory the model is saved next to it, and kept if it is the best.
    let staging = config.study.artifacts.as_ref().map(|dir| {
        dir.join(format!(
            ".partial-{}-{}",
            trial.number(),
            std::process::id()
        ))
    });
    let mut reporter = TrialReporter::new(trial, metric, train_config.epochs);
    let options = TrainOptions {
        out: staging.as_deref(),
        resume: false,
        checkpoints: false,
        evaluate_test: false,
        initial: None,
        validation_fold: None,
    };
    let result = train_with(&train_config, data, &options, &mut reporter);
    let (pruned, error) = (reporter.pruned, reporter.error.take());
    let outcome = (|| {
        if let Some(e) = error {
            return Err(e);
        }
        let report = result.map_err(TrialError::failed)?;
        record_report(trial, &report)?;
        if pruned {
            return Err(TrialError::Pruned);
        }
        trial_value(&report, metric)
    })();
    if let Some(staging) = staging {
        keep_if_best(trial, &outcome, &staging)?;
    }
    outcome
}

/// Moves the trial's saved model from `staging` to `ARTIFACTS/trial-NNNNN` when it beats every
/// trial finished before it started (and records the path as the trial's `artifact` attr);
/// removes it otherwise. Only paths go into the storage, never the model itself.
fn keep_if_best(
    trial: &mut Trial,
    outcome: &std::result::Result<f64, TrialError>,
    staging: &std::path::Path,
) -> std::result::Result<(), TrialError> {
    let best = match outcome {
        Ok(value) => trial
            .best_value_before()
            .is_none_or(|b| trial.direction().better(*value, b)),
        Err(_) => false,
    };
    if best && staging.join("model.json").is_file() {
        let dir = staging.parent().unwrap_or(std::path::Path::new("."));
        let target = dir.join(format!("trial-{:05}", trial.number()));
        let _ = std::fs::remove_dir_all(&target); // a rerun of the same number
        std::fs::rename(staging, &target).map_err(|e| {
            TrialError::failed(format!(
                "cannot move the model to {}: {e}",
                target.display()
            ))
        })?;
        trial.set_attr(crate::report::ARTIFACT_ATTR, target.display().to_string())?;
    } else {
        let _ = std::fs::remove_dir_all(staging);
    }
    Ok(())
}

pub(crate) fn search_error(e: SearchError) -> Error {
    if e.is_bad_input() {
        Error::Config(e.to_string())
    } else {
        Error::Io {
            path: "study".into(),
            message: e.to_string(),
        }
    }
}
