//! A worker: one of any number of processes, on any hosts, that share a study through its
//! storage. The study's attrs hold its tune config (data spec, space, budget), so a worker
//! needs only the storage URL and the study's name.
//!
//! A worker runs trials until the study's budget is spent: its trial count (trials that did
//! not fail, whoever ran them) or its deadline (`study.timeout`, counted from the study's
//! creation). Before each round of trials (one per job) it looks for trials of dead workers:
//! a running trial whose worker has not heartbeaten for `study.stale_after`, or whose process
//! is gone from this host, is marked failed — with a retry queued when
//! `study.retry_reclaimed` says so — and no longer counts. When the count is reached but other
//! workers' trials still run, it waits and keeps looking, so a trial whose worker died is
//! replaced and the study still reaches its count.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{create_artifacts_dir, objective, open_study, search_error, TuneConfig};
use crate::data::LoadedData;
use crate::search::{now_unix, OptimizeOptions, StudyObserver, TrialState};
use crate::store::{Storage, StoreError, StudyRecord};
use crate::{Error, Result};

/// Choices of one worker (flags), on top of the study's own settings.
#[derive(Clone, Debug, Default)]
pub struct WorkerOptions {
    /// Run at most this many trials, then stop.
    pub max_trials: Option<u64>,
    /// Trials run in parallel by this worker (default: the study's `jobs`).
    pub jobs: Option<usize>,
}

/// What one worker did (`modelsmith worker --json`).
#[derive(Clone, Debug, Default, Serialize)]
pub struct WorkerReport {
    pub study: String,
    pub complete: u64,
    pub pruned: u64,
    pub failed: u64,
    /// Trials of dead workers this worker marked failed.
    pub reclaimed: Vec<u64>,
    /// Retries it queued for them (`study.retry_reclaimed`).
    pub retried: Vec<u64>,
    /// Why it stopped: `budget` (the study has its trials), `deadline`, `max_trials` or
    /// `failures` (as many failed trials as the study's target).
    pub stopped: &'static str,
    pub seconds: f64,
    /// The study when this worker stopped.
    pub study_trials: usize,
    pub study_complete: usize,
}

/// The study called `name` and the tune config it was created with.
pub fn joined_study(storage: &dyn Storage, name: &str) -> Result<(StudyRecord, TuneConfig)> {
    let record = storage
        .get_study(name)
        .map_err(|e| search_error(e.into()))?
        .ok_or_else(|| search_error(StoreError::NoStudy(name.into()).into()))?;
    let config: TuneConfig = serde_json::from_value(record.attrs.clone()).map_err(|e| {
        Error::Config(format!(
            "study '{name}' holds no tune config a worker can run \
             (was it created by `modelsmith tune`?): {e}"
        ))
    })?;
    Ok((record, config))
}

/// Runs trials of the study `config` describes (see the module doc) until its budget is spent,
/// `options.max_trials` are done, or as many trials failed as the study's target.
pub fn run_worker(
    config: &TuneConfig,
    storage: Arc<dyn Storage>,
    data: &LoadedData,
    options: &WorkerOptions,
    observer: &dyn StudyObserver,
) -> Result<WorkerReport> {
    let metric = config.metric_for(&data.info.task)?;
    let (study, space, target) = open_study(config, metric, storage, observer)?;
    if let Some(dir) = &config.study.artifacts {
        create_artifacts_dir(dir)?;
    }
    let (heartbeat_every, stale_after) = config.liveness();
    let deadline = config
        .timeout()
        .map(|t| study.record().created_at + t.as_secs_f64());
    // While others finish the last trials: look again this often.
    let poll = heartbeat_every.min(Duration::from_secs(1));
    let started = Instant::now();
    let mut report = WorkerReport {
        study: study.name().to_string(),
        ..WorkerReport::default()
    };
    let id = study.record().id;
    report.stopped = loop {
        let remaining = deadline.map(|d| d - now_unix());
        if remaining.is_some_and(|r| r <= 0.0) {
            break "deadline";
        }
        let ran = report.complete + report.pruned + report.failed;
        let left = options.max_trials.map(|m| m.saturating_sub(ran));
        if left == Some(0) {
            break "max_trials";
        }
        let jobs = options.jobs.unwrap_or(config.study.jobs);
        // One round (a trial per job) per call: each call first reclaims dead workers' trials.
        let round = left.map_or(jobs as u64, |l| l.min(jobs as u64));
        if report.failed >= target {
            break "failures";
        }
        let run = OptimizeOptions {
            trials: Some(target),
            timeout: remaining.map(Duration::from_secs_f64),
            jobs,
            retry_reclaimed: config.study.retry_reclaimed,
            max_trials: Some(round),
            max_failures: Some(target - report.failed),
            heartbeat_every,
            stale_after,
            ..OptimizeOptions::default()
        };
        let s = study
            .optimize_observed(&run, observer, |trial| {
                objective(trial, &space, config, metric, data)
            })
            .map_err(search_error)?;
        report.complete += s.complete;
        report.pruned += s.pruned;
        report.failed += s.failed;
        report.reclaimed.extend(&s.recovered_stale);
        report.retried.extend(&s.retried);
        if s.complete + s.pruned + s.failed >= round {
            continue; // a full round: the budget is not spent yet
        }
        // `optimize` stops when the study has its trials, counting those still running
        // elsewhere: done once none runs and the count holds.
        let running = study
            .storage()
            .running_trials(id)
            .map_err(|e| search_error(e.into()))?;
        if running.is_empty() {
            let trials = study.trials().map_err(|e| search_error(e.into()))?;
            let counted = trials
                .iter()
                .filter(|t| t.state != TrialState::Failed)
                .count() as u64;
            if counted >= target {
                break "budget";
            }
        }
        std::thread::sleep(poll);
    };
    let trials = study.trials().map_err(|e| search_error(e.into()))?;
    report.study_trials = trials.len();
    report.study_complete = trials
        .iter()
        .filter(|t| t.state == TrialState::Complete)
        .count();
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}
