//! The study loop through the public API on in-memory storage: define-by-run trials, trial
//! counts across runs and parallel jobs, pruning, failures, panics, dead workers and retries.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use modelsmith::search::pruner::{AshaPruner, Pruner};
use modelsmith::search::sampler::RandomSampler;
use modelsmith::search::{
    Direction, Distribution, OptimizeOptions, Owner, ParamRecord, SearchError, Study, StudyOptions,
    TrialError, TrialState,
};
use modelsmith::store::{MemoryStorage, Storage};

fn study_with(storage: Arc<dyn Storage>, pruner: Option<Arc<dyn Pruner>>) -> Study {
    let mut options = StudyOptions {
        sampler: Arc::new(RandomSampler),
        seed: 7,
        ..StudyOptions::default()
    };
    if let Some(p) = pruner {
        options.pruner = p;
    }
    Study::new(storage, "s", Direction::Minimize, options).unwrap()
}

fn numbers(study: &Study) -> Vec<u64> {
    study.trials().unwrap().iter().map(|t| t.number).collect()
}

#[test]
fn define_by_run_trials_reach_the_target_and_find_the_minimum_region() {
    let study = study_with(Arc::new(MemoryStorage::new()), None);
    let summary = study
        .optimize(&OptimizeOptions::trials(60), |t| {
            let x = t.suggest_float("x", -10.0, 10.0)?;
            let n = t.suggest_int("n", 1, 4)?;
            let kind = t.suggest_categorical("kind", &["a", "b"])?;
            // Asking again returns the same value.
            assert_eq!(t.suggest_float("x", -10.0, 10.0)?, x);
            Ok((x - 2.0).powi(2) + n as f64 + if kind == "a" { 0.0 } else { 1.0 })
        })
        .unwrap();
    assert_eq!(summary.complete, 60);
    assert_eq!(numbers(&study), (0..60).collect::<Vec<_>>());
    let best = study.best_trial().unwrap().unwrap();
    assert!(best.value.unwrap() < 3.0, "best {:?}", best.value);
    assert_eq!(best.param_values().len(), 3);
}

#[test]
fn a_second_run_continues_the_study_and_parallel_jobs_never_duplicate() {
    let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    let study = study_with(storage.clone(), None);
    let objective = |t: &mut modelsmith::search::Trial| {
        let x = t.suggest_float_log("lr", 1e-4, 1e-1)?;
        std::thread::sleep(std::time::Duration::from_millis(2));
        Ok(x)
    };
    study
        .optimize(&OptimizeOptions::trials(5), objective)
        .unwrap();
    let options = OptimizeOptions {
        trials: Some(40),
        jobs: 4,
        ..OptimizeOptions::default()
    };
    let summary = study.optimize(&options, objective).unwrap();
    assert_eq!(summary.complete, 35);
    assert_eq!(numbers(&study), (0..40).collect::<Vec<_>>());
    // Reopening by name sees the same trials.
    let again = study_with(storage, None);
    assert_eq!(again.trials().unwrap().len(), 40);
}

#[test]
fn pruned_trials_keep_their_curve_and_failures_and_panics_are_recorded() {
    let pruner: Arc<dyn Pruner> = Arc::new(AshaPruner::new(1, 2));
    let study = study_with(Arc::new(MemoryStorage::new()), Some(pruner));
    let calls = AtomicUsize::new(0);
    let summary = study
        .optimize(&OptimizeOptions::trials(6), |t| {
            let call = calls.fetch_add(1, Ordering::SeqCst);
            match call {
                1 => return Err(TrialError::failed("out of memory")),
                2 => panic!("bad kernel"),
                _ => {}
            }
            // Later trials are worse at every step: ASHA prunes them at a rung.
            for step in 1..=4 {
                t.report(step, call as f64 + 1.0 / step as f64)?;
                if t.should_prune()? {
                    return Err(TrialError::Pruned);
                }
            }
            Ok(call as f64)
        })
        .unwrap();
    assert_eq!(summary.failed, 2);
    assert!(summary.pruned >= 1, "{summary:?}");
    let trials = study.trials().unwrap();
    let failed: Vec<_> = trials
        .iter()
        .filter(|t| t.state == TrialState::Failed)
        .collect();
    assert_eq!(failed[0].error.as_deref(), Some("out of memory"));
    assert!(failed[1].error.as_deref().unwrap().contains("bad kernel"));
    let pruned = trials
        .iter()
        .find(|t| t.state == TrialState::Pruned)
        .unwrap();
    assert!(!pruned.intermediate.is_empty());
    assert_eq!(pruned.value, pruned.last_intermediate().map(|(_, v)| v));
    // Failed trials do not count: the study still has 6 good ones.
    assert_eq!(trials.len(), 8);
}

#[test]
fn an_objective_that_always_fails_stops_after_max_failures() {
    let study = study_with(Arc::new(MemoryStorage::new()), None);
    let summary = study
        .optimize(&OptimizeOptions::trials(3), |_| {
            Err(TrialError::failed("no"))
        })
        .unwrap();
    assert_eq!(summary.failed, 3);
    assert_eq!(summary.complete, 0);
}

#[test]
fn an_invalid_space_stops_the_study_with_a_clear_error() {
    let study = study_with(Arc::new(MemoryStorage::new()), None);
    let err = study
        .optimize(&OptimizeOptions::trials(5), |t| {
            t.suggest_float("lr", 0.1, 0.01)?;
            Ok(0.0)
        })
        .unwrap_err();
    assert!(matches!(err, SearchError::Space { .. }));
    assert!(err.is_bad_input());
    assert!(err.to_string().contains("lr"), "{err}");
    assert_eq!(study.trials().unwrap().len(), 1);
    let err = study
        .optimize(&OptimizeOptions::trials(5), |t| {
            t.suggest_float("x", 0.0, 1.0)?;
            t.suggest_int("x", 0, 1)?;
            Ok(0.0)
        })
        .unwrap_err();
    assert!(err.to_string().contains("suggested twice"), "{err}");
}

#[test]
fn trials_of_dead_workers_are_failed_then_retried_with_their_parameters() {
    let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    let study = study_with(storage.clone(), None);
    // A worker on this host that no longer exists left trial 0 running.
    let ghost = Owner {
        host: modelsmith::search::current_owner().host,
        pid: u32::MAX - 3,
        start_ticks: 1,
    };
    let started = storage
        .start_trial(study.record().id, None, &ghost)
        .unwrap()
        .unwrap();
    let lr = ParamRecord {
        distribution: Distribution::float_log(1e-4, 1e-1),
        internal: 0.0123,
    };
    storage.set_param(started.id, "lr", &lr).unwrap();
    let options = OptimizeOptions {
        trials: Some(3),
        retry_failed: true,
        ..OptimizeOptions::default()
    };
    let seen = std::sync::Mutex::new(Vec::new());
    let summary = study
        .optimize(&options, |t| {
            let v = t.suggest_float_log("lr", 1e-4, 1e-1)?;
            seen.lock().unwrap().push((t.number(), v));
            Ok(v)
        })
        .unwrap();
    assert_eq!(summary.recovered_stale, vec![0]);
    assert_eq!(summary.retried, vec![0]);
    let trials = study.trials().unwrap();
    assert_eq!(trials[0].state, TrialState::Failed);
    assert!(trials[0].error.as_deref().unwrap().contains("stopped"));
    // The retry (trial 1) ran first, with the dead trial's parameters.
    assert_eq!(seen.lock().unwrap()[0], (1, 0.0123));
    assert_eq!(trials[1].attrs["retry_of"], 0);
    let states: BTreeMap<u64, TrialState> = trials.iter().map(|t| (t.number, t.state)).collect();
    assert_eq!(
        states
            .values()
            .filter(|s| **s == TrialState::Complete)
            .count(),
        3
    );
    // A second run retries nothing more: trial 0 already has its retry.
    let again = study
        .optimize(&options, |t| t.suggest_float_log("lr", 1e-4, 1e-1))
        .unwrap();
    assert!(again.retried.is_empty());
}

#[test]
fn retrying_failed_trials_never_takes_a_study_past_its_target() {
    let study = study_with(Arc::new(MemoryStorage::new()), None);
    // Four trials asked: two fail, so the study runs six to have four that did not fail.
    let first = OptimizeOptions::trials(4);
    study
        .optimize(&first, |t| {
            let x = t.suggest_float("x", 0.0, 1.0)?;
            if t.number() < 2 {
                return Err(TrialError::failed("boom"));
            }
            Ok(x)
        })
        .unwrap();
    let done = |s: &Study| {
        s.trials()
            .unwrap()
            .iter()
            .filter(|t| t.state == TrialState::Complete)
            .count()
    };
    assert_eq!(done(&study), 4);
    // At its target, --retry-failed has no room left: nothing is queued, nothing more runs.
    let retry = OptimizeOptions {
        retry_failed: true,
        ..OptimizeOptions::trials(4)
    };
    let summary = study
        .optimize(&retry, |t| t.suggest_float("x", 0.0, 1.0))
        .unwrap();
    assert!(summary.retried.is_empty(), "{:?}", summary.retried);
    assert_eq!(done(&study), 4);
    // A larger target makes room for one retry (the oldest failed trial), and no more.
    let summary = study
        .optimize(
            &OptimizeOptions {
                retry_failed: true,
                ..OptimizeOptions::trials(5)
            },
            |t| t.suggest_float("x", 0.0, 1.0),
        )
        .unwrap();
    assert_eq!(summary.retried, vec![0]);
    assert_eq!(done(&study), 5);
}
