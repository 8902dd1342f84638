//! The study loop and the define-by-run trial API.
//!
//! ```no_run
//! use std::sync::Arc;
//! use modelsmith::search::{Direction, OptimizeOptions, Study, StudyOptions};
//! use modelsmith::store::MemoryStorage;
//!
//! let study = Study::new(Arc::new(MemoryStorage::new()), "quadratic", Direction::Minimize,
//!     StudyOptions::default()).unwrap();
//! study.optimize(&OptimizeOptions::trials(50), |trial| {
//!     let x = trial.suggest_float("x", -10.0, 10.0)?;
//!     let lr = trial.suggest_float_log("lr", 1e-4, 1e-1)?;
//!     Ok((x - 2.0).powi(2) + lr)
//! }).unwrap();
//! println!("best: {:?}", study.best_trial().unwrap().map(|t| t.value));
//! ```
//!
//! Each worker claims a trial from storage (which numbers it), asks the sampler for values as
//! the objective suggests parameters, records every reported step, asks the pruner, and
//! finishes the trial as complete, pruned or failed — always finished, even when the objective
//! panics. A heartbeat thread keeps the process's running trials alive in storage; trials of
//! workers that died are found by [`Study::fail_stale_trials`] and marked failed.
//!
//! A call with one job runs its trials on the calling thread, and the heartbeat thread lives as
//! long as the `Study` (started by its first `optimize`): calling `optimize` for one trial at
//! a time starts no thread, so a short trial costs no more than the sampler and storage.

use std::collections::{BTreeMap, HashSet};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::owner::{current_owner, owner_is_dead};
use super::pruner::{NopPruner, Pruner};
use super::sampler::{Sampler, TpeSampler};
use super::trial::Trial;
use crate::record::{best_trial, now_unix, Direction, FrozenTrial, Owner, TrialState};
use crate::store::{Storage, StoreError, StudyRecord};

/// Why a trial did not produce a value. Objectives return it (often through `?`).
#[derive(Debug, thiserror::Error)]
pub enum TrialError {
    /// The pruner stopped the trial; it is recorded as pruned with its curve.
    #[error("pruned")]
    Pruned,
    /// The objective failed; the trial is recorded as failed with this text.
    #[error("{0}")]
    Failed(String),
    /// The search space is invalid (bad input): the study stops.
    #[error("parameter '{name}': {message}")]
    Space { name: String, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl TrialError {
    pub fn failed(message: impl std::fmt::Display) -> Self {
        TrialError::Failed(message.to_string())
    }
}

/// Errors that stop a whole study.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("parameter '{name}': {message}")]
    Space { name: String, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Config(String),
}

impl SearchError {
    pub fn is_bad_input(&self) -> bool {
        match self {
            SearchError::Space { .. } | SearchError::Config(_) => true,
            SearchError::Store(e) => e.is_bad_input(),
        }
    }
}

/// How a study is run (not stored: another run of the same study may choose differently).
pub struct StudyOptions {
    pub sampler: Arc<dyn Sampler>,
    pub pruner: Arc<dyn Pruner>,
    pub seed: u64,
    /// Kept with the study at creation (e.g. the tune config).
    pub attrs: serde_json::Value,
}

impl Default for StudyOptions {
    fn default() -> Self {
        StudyOptions {
            sampler: Arc::new(TpeSampler::default()),
            pruner: Arc::new(NopPruner),
            seed: 0,
            attrs: serde_json::Value::Null,
        }
    }
}

/// Limits of one `optimize` call.
#[derive(Clone, Debug)]
pub struct OptimizeOptions {
    /// The study's target: stop when it has this many trials that did not fail (including
    /// those of earlier runs and other workers). `None`: until the timeout.
    pub trials: Option<u64>,
    /// Start no new trial after this long (running ones finish).
    pub timeout: Option<Duration>,
    /// Trials run in parallel by this process.
    pub jobs: usize,
    /// Before starting, queue a retry (same parameters) of each failed trial not yet retried.
    pub retry_failed: bool,
    /// Queue a retry (same parameters) of each trial this call reclaims from a dead worker.
    pub retry_reclaimed: bool,
    /// Start at most this many trials in this call (a worker's `--max-trials`).
    pub max_trials: Option<u64>,
    /// Stop after this many failed trials in this run (default: the trial target, at least 1),
    /// so an objective that always fails cannot loop forever.
    pub max_failures: Option<u64>,
    /// A running trial whose heartbeat is older than this belongs to a dead worker.
    pub stale_after: Duration,
    pub heartbeat_every: Duration,
}

impl Default for OptimizeOptions {
    fn default() -> Self {
        OptimizeOptions {
            trials: None,
            timeout: None,
            jobs: 1,
            retry_failed: false,
            retry_reclaimed: false,
            max_trials: None,
            max_failures: None,
            stale_after: Duration::from_secs(120),
            heartbeat_every: Duration::from_secs(10),
        }
    }
}

impl OptimizeOptions {
    pub fn trials(n: u64) -> Self {
        OptimizeOptions {
            trials: Some(n),
            ..Default::default()
        }
    }
}

/// Live progress, called from the worker threads.
pub trait StudyObserver: Sync {
    fn on_trial_start(&self, _number: u64) {}
    fn on_trial_end(&self, _trial: &FrozenTrial, _best: Option<&FrozenTrial>) {}
    fn on_message(&self, _message: &str) {}
}

/// Observes nothing.
pub struct NoStudyObserver;
impl StudyObserver for NoStudyObserver {}

/// What one `optimize` call did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct OptimizeSummary {
    pub complete: u64,
    pub pruned: u64,
    pub failed: u64,
    /// Running trials of dead workers marked failed at the start.
    pub recovered_stale: Vec<u64>,
    pub retried: Vec<u64>,
    pub seconds: f64,
}

pub struct Study {
    history: Mutex<HistoryCache>,
    heartbeat: Heartbeat,
    pub(super) storage: Arc<dyn Storage>,
    pub(super) record: StudyRecord,
    pub(super) sampler: Arc<dyn Sampler>,
    pub(super) pruner: Arc<dyn Pruner>,
    pub(super) seed: u64,
    owner: Owner,
}

impl Study {
    /// Opens the study called `name` in `storage`, creating it if needed.
    pub fn new(
        storage: Arc<dyn Storage>,
        name: &str,
        direction: Direction,
        options: StudyOptions,
    ) -> Result<Study, SearchError> {
        if name.trim().is_empty() {
            return Err(SearchError::Config("study name must not be empty".into()));
        }
        let record = storage.create_study(name, direction, options.attrs)?;
        Ok(Study {
            history: Mutex::new(HistoryCache::default()),
            heartbeat: Heartbeat::default(),
            storage,
            record,
            sampler: options.sampler,
            pruner: options.pruner,
            seed: options.seed,
            owner: current_owner(),
        })
    }

    pub fn name(&self) -> &str {
        &self.record.name
    }
    pub fn direction(&self) -> Direction {
        self.record.direction
    }
    pub fn record(&self) -> &StudyRecord {
        &self.record
    }
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }
    pub fn sampler(&self) -> &dyn Sampler {
        &*self.sampler
    }

    pub fn trials(&self) -> Result<Vec<FrozenTrial>, StoreError> {
        self.storage.trials(self.record.id)
    }

    /// Every trial of the study as of now, for samplers. Trials before the first unfinished
    /// one never change, so only the rest is read from storage; while no running trial holds
    /// the previous snapshot it is updated in place (no copy of a long history per trial).
    pub(super) fn history(&self) -> Result<Arc<Vec<FrozenTrial>>, StoreError> {
        let mut cache = self.history.lock().unwrap_or_else(|p| p.into_inner());
        let from = cache.first_unfinished;
        let fresh = self.storage.trials_from(self.record.id, from)?;
        let trials = Arc::make_mut(&mut cache.snapshot);
        trials.truncate(from as usize);
        let dense = trials.len() as u64 == from
            && fresh
                .iter()
                .enumerate()
                .all(|(i, t)| t.number == from + i as u64);
        if dense {
            trials.extend(fresh);
        } else {
            // Numbers are dense by the storage contract; if not, read everything.
            *trials = self.storage.trials(self.record.id)?;
        }
        cache.first_unfinished = trials
            .iter()
            .position(|t| !t.state.is_finished())
            .unwrap_or(trials.len()) as u64;
        Ok(cache.snapshot.clone())
    }

    pub fn best_trial(&self) -> Result<Option<FrozenTrial>, StoreError> {
        Ok(best_trial(&self.trials()?, self.record.direction).cloned())
    }

    /// Marks failed the running trials whose worker is gone: same host and the process no
    /// longer exists, or no heartbeat for `stale_after`. Returns their numbers.
    pub fn fail_stale_trials(&self, stale_after: Duration) -> Result<Vec<u64>, StoreError> {
        let now = now_unix();
        let me = &self.owner;
        self.storage.fail_stale(
            self.record.id,
            &|t| {
                let silent = t
                    .heartbeat_at
                    .is_none_or(|h| now - h > stale_after.as_secs_f64());
                let dead = t
                    .owner
                    .as_ref()
                    .is_some_and(|o| o != me && owner_is_dead(o));
                silent || dead
            },
            "the worker running this trial stopped (killed or crashed) before it finished",
        )
    }

    /// Queues a retry of each failed trial that has none yet, oldest first, while the study has
    /// fewer than `limit` trials that did not fail (a retry counts as one as soon as it is
    /// queued, so retries never take a study past its target); returns the retried numbers.
    pub fn retry_failed_trials(&self, limit: Option<u64>) -> Result<Vec<u64>, StoreError> {
        self.retry_trials(None, limit)
    }

    /// As [`retry_failed_trials`](Self::retry_failed_trials), for the failed trials numbered in
    /// `only`, if given.
    pub fn retry_trials(
        &self,
        only: Option<&[u64]>,
        limit: Option<u64>,
    ) -> Result<Vec<u64>, StoreError> {
        let trials = self.trials()?;
        let retried: HashSet<u64> = trials
            .iter()
            .filter_map(|t| t.attrs.get("retry_of").and_then(|v| v.as_u64()))
            .collect();
        let mut active = trials
            .iter()
            .filter(|t| t.state != TrialState::Failed)
            .count() as u64;
        let mut out = Vec::new();
        for t in trials.iter().filter(|t| t.state == TrialState::Failed) {
            if retried.contains(&t.number) || only.is_some_and(|o| !o.contains(&t.number)) {
                continue;
            }
            if limit.is_some_and(|l| active >= l) {
                break;
            }
            let attrs = BTreeMap::from([("retry_of".to_string(), t.number.into())]);
            self.storage
                .enqueue_trial(self.record.id, &t.params, &attrs)?;
            active += 1;
            out.push(t.number);
        }
        Ok(out)
    }

    /// Runs trials until the study has `options.trials` non-failed trials, the timeout passes,
    /// or too many trials failed. Each finished trial goes to `observer`.
    pub fn optimize<F>(
        &self,
        options: &OptimizeOptions,
        objective: F,
    ) -> Result<OptimizeSummary, SearchError>
    where
        F: Fn(&mut Trial) -> Result<f64, TrialError> + Sync,
    {
        self.optimize_observed(options, &NoStudyObserver, objective)
    }

    pub fn optimize_observed<F>(
        &self,
        options: &OptimizeOptions,
        observer: &dyn StudyObserver,
        objective: F,
    ) -> Result<OptimizeSummary, SearchError>
    where
        F: Fn(&mut Trial) -> Result<f64, TrialError> + Sync,
    {
        if options.jobs == 0 {
            return Err(SearchError::Config("jobs must be at least 1".into()));
        }
        let started = Instant::now();
        let mut summary = OptimizeSummary {
            recovered_stale: self.fail_stale_trials(options.stale_after)?,
            ..Default::default()
        };
        if !summary.recovered_stale.is_empty() {
            observer.on_message(&format!(
                "marked failed {} trial(s) whose worker had stopped: {:?}",
                summary.recovered_stale.len(),
                summary.recovered_stale
            ));
        }
        if options.retry_failed {
            summary.retried = self.retry_failed_trials(options.trials)?;
        } else if options.retry_reclaimed && !summary.recovered_stale.is_empty() {
            // Only this caller failed these trials (the storage re-checks each), so each is
            // queued once however many workers look for dead ones.
            summary.retried = self.retry_trials(Some(&summary.recovered_stale), options.trials)?;
        }
        let max_failures = options
            .max_failures
            .unwrap_or(options.trials.unwrap_or(u64::MAX).max(1));
        let run = RunState {
            stop: AtomicBool::new(false),
            started: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            counts: Mutex::new([0; 3]),
            error: Mutex::new(None),
            best: Mutex::new(None),
        };
        self.heartbeat
            .ensure_running(&self.storage, options.heartbeat_every);
        let work = || self.worker_loop(&run, options, max_failures, started, observer, &objective);
        if options.jobs == 1 {
            // On this thread: a thread start and join would cost more than a short trial.
            // A panic outside the objective (which is caught per trial) stops the run, as a
            // worker thread's would.
            if std::panic::catch_unwind(AssertUnwindSafe(work)).is_err() {
                run.stop.store(true, Ordering::SeqCst);
            }
        } else {
            // Each job trains in its own share of the cores. Training one small network does
            // not scale across cores (a 20k-parameter CNN at batch 32 runs 4,600 img/s on 2
            // threads, 5,000 on 1), while two jobs of one thread each run at full speed side
            // by side; jobs sharing the global pool would also queue behind each other.
            let threads = (rayon::current_num_threads() / options.jobs).max(1);
            let work_in_pool = || match rayon::ThreadPoolBuilder::new().num_threads(threads).build()
            {
                Ok(pool) => pool.install(work),
                Err(_) => work(),
            };
            std::thread::scope(|scope| {
                let workers: Vec<_> = (0..options.jobs)
                    .map(|_| scope.spawn(work_in_pool))
                    .collect();
                for w in workers {
                    if w.join().is_err() {
                        run.stop.store(true, Ordering::SeqCst);
                    }
                }
            });
        }
        if let Some(e) = run.error.into_inner().unwrap_or_else(|p| p.into_inner()) {
            return Err(e);
        }
        let [complete, pruned, failed] = run.counts.into_inner().unwrap_or_else(|p| p.into_inner());
        summary.complete = complete;
        summary.pruned = pruned;
        summary.failed = failed;
        summary.seconds = started.elapsed().as_secs_f64();
        Ok(summary)
    }

    fn worker_loop(
        &self,
        run: &RunState,
        options: &OptimizeOptions,
        max_failures: u64,
        started: Instant,
        observer: &dyn StudyObserver,
        objective: &(dyn Fn(&mut Trial) -> Result<f64, TrialError> + Sync),
    ) {
        loop {
            if run.stop.load(Ordering::SeqCst)
                || options.timeout.is_some_and(|t| started.elapsed() >= t)
                || run.failures.load(Ordering::SeqCst) >= max_failures
            {
                return;
            }
            if let Some(max) = options.max_trials {
                if run.started.fetch_add(1, Ordering::SeqCst) >= max {
                    return;
                }
            }
            match self.run_one(run, options.trials, observer, objective) {
                Ok(true) => {}
                Ok(false) => return,
                Err(e) => {
                    run.stop.store(true, Ordering::SeqCst);
                    let mut slot = run.error.lock().unwrap_or_else(|p| p.into_inner());
                    slot.get_or_insert(e);
                    return;
                }
            }
        }
    }

    /// Claims, runs and finishes one trial. `Ok(false)` when the study has enough trials.
    fn run_one(
        &self,
        run: &RunState,
        limit: Option<u64>,
        observer: &dyn StudyObserver,
        objective: &(dyn Fn(&mut Trial) -> Result<f64, TrialError> + Sync),
    ) -> Result<bool, SearchError> {
        let Some(started) = self
            .storage
            .start_trial(self.record.id, limit, &self.owner)?
        else {
            return Ok(false);
        };
        self.heartbeat.add(started.id);
        observer.on_trial_start(started.number);
        let history = self.history()?;
        let mut trial = Trial {
            study: self,
            id: started.id,
            number: started.number,
            params: BTreeMap::new(),
            fixed: started.fixed_params,
            relative: BTreeMap::new(),
            history,
        };
        trial.relative = self.sampler.sample_relative(&trial.sample_context());
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| objective(&mut trial)));
        self.heartbeat.remove(started.id);
        let (state, value, error, stop_with) = match outcome {
            Ok(Ok(v)) if v.is_finite() => (TrialState::Complete, Some(v), None, None),
            Ok(Ok(v)) => (
                TrialState::Failed,
                None,
                Some(format!("the objective returned {v}")),
                None,
            ),
            Ok(Err(TrialError::Pruned)) => {
                let t = self.storage.trial(started.id)?;
                let last = t.last_intermediate().map(|(_, v)| v);
                (TrialState::Pruned, last, None, None)
            }
            Ok(Err(TrialError::Failed(msg))) => (TrialState::Failed, None, Some(msg), None),
            Ok(Err(TrialError::Space { name, message })) => (
                TrialState::Failed,
                None,
                Some(format!("parameter '{name}': {message}")),
                Some(SearchError::Space { name, message }),
            ),
            Ok(Err(TrialError::Store(e))) => (
                TrialState::Failed,
                None,
                Some(e.to_string()),
                Some(e.into()),
            ),
            Err(panic) => (
                TrialState::Failed,
                None,
                Some(format!("the objective panicked: {}", panic_text(&*panic))),
                None,
            ),
        };
        match self
            .storage
            .finish_trial(started.id, state, value, error.as_deref())
        {
            Ok(()) => {}
            // Another process judged this trial's worker dead (a very long stall) and already
            // marked it failed: its record stands.
            Err(StoreError::TrialFinished(_)) => {}
            Err(e) => return Err(e.into()),
        }
        {
            let mut counts = run.counts.lock().unwrap_or_else(|p| p.into_inner());
            match state {
                TrialState::Complete => counts[0] += 1,
                TrialState::Pruned => counts[1] += 1,
                _ => {
                    counts[2] += 1;
                    run.failures.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
        // Best so far for the observer: the best of the history this trial started from, the
        // trial itself, and what this call's other jobs reported (trials other processes
        // finished meanwhile show up at the next trial; reading the whole study again here
        // would double the loop's cost on large studies).
        let finished = self.storage.trial(started.id)?;
        let direction = self.record.direction;
        let mut shared = run.best.lock().unwrap_or_else(|p| p.into_inner());
        let candidates: Vec<FrozenTrial> = [
            best_trial(&trial.history, direction).cloned(),
            shared.take(),
            Some(finished.clone()),
        ]
        .into_iter()
        .flatten()
        .collect();
        *shared = best_trial(&candidates, direction).cloned();
        observer.on_trial_end(&finished, shared.as_ref());
        drop(shared);
        match stop_with {
            Some(e) => Err(e),
            None => Ok(true),
        }
    }
}

/// The study's trials as last read, and the number of the first one not yet finished.
#[derive(Default)]
struct HistoryCache {
    snapshot: Arc<Vec<FrozenTrial>>,
    first_unfinished: u64,
}

struct RunState {
    stop: AtomicBool,
    /// Trials this call has claimed (or is about to).
    started: AtomicU64,
    failures: AtomicU64,
    /// complete, pruned, failed in this run.
    counts: Mutex<[u64; 3]>,
    error: Mutex<Option<SearchError>>,
    /// The best trial any job of this call has reported to the observer.
    best: Mutex<Option<FrozenTrial>>,
}

/// Refreshes the heartbeat of this process's running trials every `every` while any runs.
/// One thread per [`Study`], started on first use and stopped when the study is dropped.
#[derive(Default)]
struct Heartbeat {
    shared: Arc<HeartbeatShared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Default)]
struct HeartbeatShared {
    state: Mutex<HeartbeatState>,
    wake: Condvar,
}

#[derive(Default)]
struct HeartbeatState {
    running: HashSet<i64>,
    every: Duration,
    stop: bool,
}

impl HeartbeatShared {
    fn lock(&self) -> std::sync::MutexGuard<'_, HeartbeatState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Heartbeat {
    /// Sets the interval (the latest `optimize` call's) and starts the thread if needed.
    fn ensure_running(&self, storage: &Arc<dyn Storage>, every: Duration) {
        self.shared.lock().every = every;
        self.shared.wake.notify_all();
        let mut thread = self.thread.lock().unwrap_or_else(|p| p.into_inner());
        if thread.is_none() {
            let (shared, storage) = (self.shared.clone(), storage.clone());
            *thread = Some(std::thread::spawn(move || {
                heartbeat_loop(&shared, &*storage)
            }));
        }
    }

    fn add(&self, id: i64) {
        let mut state = self.shared.lock();
        state.running.insert(id);
        if state.running.len() == 1 {
            self.shared.wake.notify_all(); // idle until now: start the clock
        }
    }

    fn remove(&self, id: i64) {
        self.shared.lock().running.remove(&id);
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.wake.notify_all();
        if let Some(thread) = self
            .thread
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            let _ = thread.join();
        }
    }
}

/// Beats `every` after the running set became non-empty and every `every` while it stays so;
/// sleeps without a timeout while no trial runs (a trial's start counts as its first beat).
fn heartbeat_loop(shared: &HeartbeatShared, storage: &dyn Storage) {
    let mut state = shared.lock();
    let mut next_beat: Option<Instant> = None;
    while !state.stop {
        if state.running.is_empty() {
            next_beat = None;
            state = shared.wake.wait(state).unwrap_or_else(|p| p.into_inner());
            continue;
        }
        let now = Instant::now();
        let due = *next_beat.get_or_insert(now + state.every);
        if now >= due {
            let ids: Vec<i64> = state.running.iter().copied().collect();
            drop(state);
            // A missed heartbeat is harmless unless it repeats for `stale_after`.
            let _ = storage.heartbeat(&ids);
            state = shared.lock();
            next_beat = Some(Instant::now() + state.every);
            continue;
        }
        state = shared
            .wake
            .wait_timeout(state, due - now)
            .unwrap_or_else(|p| p.into_inner())
            .0;
    }
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::sampler::RandomSampler;
    use crate::store::MemoryStorage;

    /// Waits (at most 5 s) until trial `id`'s heartbeat is later than `after`.
    fn wait_for_beat(storage: &MemoryStorage, id: i64, after: f64) -> f64 {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let beat = storage.trial(id).unwrap().heartbeat_at.unwrap();
            if beat > after {
                return beat;
            }
            assert!(
                Instant::now() < deadline,
                "no heartbeat for trial {id} in 5 s"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Records (trial, best so far) at each trial's end.
    #[derive(Default)]
    struct Ends(Mutex<Vec<(u64, Option<u64>)>>);

    impl StudyObserver for Ends {
        fn on_trial_end(&self, trial: &FrozenTrial, best: Option<&FrozenTrial>) {
            let mut ends = self.0.lock().unwrap();
            ends.push((trial.number, best.map(|b| b.number)));
        }
    }

    #[test]
    fn the_best_so_far_includes_trials_other_jobs_finished_meanwhile() {
        let study = Study::new(
            Arc::new(MemoryStorage::new()),
            "best",
            Direction::Minimize,
            StudyOptions::default(),
        )
        .unwrap();
        let ends = Ends::default();
        let second_started = AtomicBool::new(false);
        let wait_until = |done: &dyn Fn() -> bool| {
            let deadline = Instant::now() + Duration::from_secs(5);
            while !done() {
                assert!(Instant::now() < deadline, "timed out");
                std::thread::sleep(Duration::from_millis(2));
            }
        };
        let options = OptimizeOptions {
            jobs: 2,
            ..OptimizeOptions::trials(2)
        };
        // Trial 1 starts while trial 0 runs (so 0 is not in its history), and ends, worse,
        // after 0 has ended.
        study
            .optimize_observed(&options, &ends, |t: &mut Trial| {
                if t.number() == 0 {
                    wait_until(&|| second_started.load(Ordering::SeqCst));
                    Ok(0.0)
                } else {
                    second_started.store(true, Ordering::SeqCst);
                    wait_until(&|| ends.0.lock().unwrap().iter().any(|e| e.0 == 0));
                    Ok(5.0)
                }
            })
            .unwrap();
        let ends = ends.0.into_inner().unwrap();
        assert_eq!(ends, vec![(0, Some(0)), (1, Some(0))]);
    }

    #[test]
    fn parallel_jobs_each_train_in_their_share_of_the_threads() {
        // A global-sized pool of 4 stands in for a 4-core machine; jobs run inside it as
        // `auto`'s and `tune`'s do when called from the CLI.
        let global = rayon::ThreadPoolBuilder::new()
            .num_threads(4)
            .build()
            .unwrap();
        for (jobs, expected) in [(1, 4), (2, 2), (3, 1), (8, 1)] {
            let study = Study::new(
                Arc::new(MemoryStorage::new()),
                "threads",
                Direction::Minimize,
                StudyOptions::default(),
            )
            .unwrap();
            let seen = Mutex::new(Vec::new());
            let options = OptimizeOptions {
                jobs,
                ..OptimizeOptions::trials(2 * jobs as u64)
            };
            global
                .install(|| {
                    study.optimize(&options, |t: &mut Trial| {
                        seen.lock().unwrap().push(rayon::current_num_threads());
                        // Long enough that every job takes a trial.
                        std::thread::sleep(Duration::from_millis(20));
                        t.suggest_float("x", 0.0, 1.0)
                    })
                })
                .unwrap();
            let seen = seen.into_inner().unwrap();
            assert_eq!(seen.len(), 2 * jobs, "jobs {jobs}");
            assert!(
                seen.iter().all(|&n| n == expected),
                "jobs {jobs}: threads seen {seen:?}, expected {expected} each"
            );
        }
    }

    #[test]
    fn heartbeats_refresh_running_trials_in_one_and_many_jobs() {
        let storage = Arc::new(MemoryStorage::new());
        let options = StudyOptions {
            sampler: Arc::new(RandomSampler),
            ..Default::default()
        };
        let study = Study::new(storage.clone(), "hb", Direction::Minimize, options).unwrap();
        let objective = |t: &mut Trial| {
            let x = t.suggest_float("x", 0.0, 1.0)?;
            let started = storage.trial(t.id()).unwrap().heartbeat_at.unwrap();
            let first = wait_for_beat(&storage, t.id(), started);
            wait_for_beat(&storage, t.id(), first); // and again: it keeps beating
            Ok(x)
        };
        for jobs in [1, 1, 3] {
            let done = study.trials().unwrap().len() as u64;
            let options = OptimizeOptions {
                jobs,
                heartbeat_every: Duration::from_millis(20),
                ..OptimizeOptions::trials(done + jobs as u64)
            };
            let summary = study.optimize(&options, objective).unwrap();
            assert_eq!(summary.complete, jobs as u64, "{summary:?}");
        }
        // Finished trials are no longer beaten: their heartbeats stay put.
        let beats = || -> Vec<f64> {
            let trials = study.trials().unwrap();
            assert_eq!(trials.len(), 5);
            trials.iter().map(|t| t.heartbeat_at.unwrap()).collect()
        };
        let before = beats();
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(beats(), before);
        drop(study); // stops and joins the heartbeat thread
    }
}
