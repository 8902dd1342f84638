//! In-memory storage: one mutex over all studies. For tests and library use; gone at exit.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::{StartedTrial, Storage, StoreError, StoreResult, StudyRecord, StudySummary};
use crate::record::{best_trial, now_unix, Direction, FrozenTrial, Owner, ParamRecord, TrialState};

#[derive(Default)]
pub struct MemoryStorage {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    studies: Vec<StudyRecord>,
    /// Trials by id (ids are global, 1-based like SQLite's rowids).
    trials: Vec<(i64, FrozenTrial)>,
}

impl MemoryStorage {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic in another thread cannot leave a half-written trial: every change below is
        // a single assignment, so the data behind a poisoned lock is still consistent.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Inner {
    fn trial_mut(&mut self, id: i64) -> StoreResult<&mut FrozenTrial> {
        self.trials
            .get_mut((id - 1) as usize)
            .map(|(_, t)| t)
            .ok_or(StoreError::NoTrial(id))
    }

    fn running_mut(&mut self, id: i64) -> StoreResult<&mut FrozenTrial> {
        let t = self.trial_mut(id)?;
        if t.state != TrialState::Running {
            return Err(StoreError::TrialFinished(id));
        }
        Ok(t)
    }

    fn study_trials(&self, study_id: i64) -> impl Iterator<Item = &FrozenTrial> {
        self.trials
            .iter()
            .filter(move |(s, _)| *s == study_id)
            .map(|(_, t)| t)
    }
}

impl Storage for MemoryStorage {
    fn create_study(
        &self,
        name: &str,
        direction: Direction,
        attrs: serde_json::Value,
    ) -> StoreResult<StudyRecord> {
        let mut inner = self.lock();
        if let Some(s) = inner.studies.iter().find(|s| s.name == name) {
            if s.direction != direction {
                return Err(StoreError::DirectionMismatch {
                    name: name.into(),
                    existing: s.direction.name(),
                    requested: direction.name(),
                });
            }
            return Ok(s.clone());
        }
        // After the largest id, never a deleted study's (its trials keep their slots).
        let study = StudyRecord {
            id: inner.studies.iter().map(|s| s.id).max().unwrap_or(0) + 1,
            name: name.into(),
            direction,
            attrs,
            created_at: now_unix(),
        };
        inner.studies.push(study.clone());
        Ok(study)
    }

    fn get_study(&self, name: &str) -> StoreResult<Option<StudyRecord>> {
        Ok(self.lock().studies.iter().find(|s| s.name == name).cloned())
    }

    fn delete_study(&self, name: &str) -> StoreResult<usize> {
        let mut inner = self.lock();
        let study = inner
            .studies
            .iter()
            .find(|s| s.name == name)
            .cloned()
            .ok_or_else(|| StoreError::NoStudy(name.into()))?;
        let running = inner
            .study_trials(study.id)
            .filter(|t| t.state == TrialState::Running)
            .count();
        if running > 0 {
            return Err(StoreError::StudyBusy {
                name: name.into(),
                running,
            });
        }
        inner.studies.retain(|s| s.id != study.id);
        // Trials stay in their slots (ids index them) but belong to no study (id 0).
        let mut deleted = 0;
        for (owner, _) in inner.trials.iter_mut().filter(|(s, _)| *s == study.id) {
            *owner = 0;
            deleted += 1;
        }
        Ok(deleted)
    }

    fn list_studies(&self) -> StoreResult<Vec<StudySummary>> {
        let inner = self.lock();
        Ok(inner
            .studies
            .iter()
            .map(|s| {
                let trials: Vec<FrozenTrial> = inner.study_trials(s.id).cloned().collect();
                let count = |st| trials.iter().filter(|t| t.state == st).count();
                StudySummary {
                    study: s.clone(),
                    trials: trials.len(),
                    complete: count(TrialState::Complete),
                    pruned: count(TrialState::Pruned),
                    failed: count(TrialState::Failed),
                    running: count(TrialState::Running),
                    best_value: best_trial(&trials, s.direction).and_then(|t| t.value),
                }
            })
            .collect())
    }

    fn start_trial(
        &self,
        study_id: i64,
        limit: Option<u64>,
        owner: &Owner,
    ) -> StoreResult<Option<StartedTrial>> {
        let mut inner = self.lock();
        if !inner.studies.iter().any(|s| s.id == study_id) {
            return Err(StoreError::NoStudy(format!("#{study_id}")));
        }
        let now = now_unix();
        let waiting = inner
            .study_trials(study_id)
            .find(|t| t.state == TrialState::Waiting)
            .map(|t| t.id);
        let id = match waiting {
            Some(id) => id,
            None => {
                let active = inner
                    .study_trials(study_id)
                    .filter(|t| t.state != TrialState::Failed)
                    .count() as u64;
                if limit.is_some_and(|l| active >= l) {
                    return Ok(None);
                }
                let number = inner.study_trials(study_id).count() as u64;
                let id = inner.trials.len() as i64 + 1;
                inner.trials.push((study_id, new_trial(id, number)));
                id
            }
        };
        let t = inner.trial_mut(id)?;
        t.state = TrialState::Running;
        t.started_at = Some(now);
        t.heartbeat_at = Some(now);
        t.owner = Some(owner.clone());
        Ok(Some(StartedTrial {
            id,
            number: t.number,
            fixed_params: t.params.clone(),
            attrs: t.attrs.clone(),
        }))
    }

    fn enqueue_trial(
        &self,
        study_id: i64,
        params: &BTreeMap<String, ParamRecord>,
        attrs: &BTreeMap<String, serde_json::Value>,
    ) -> StoreResult<u64> {
        let mut inner = self.lock();
        if !inner.studies.iter().any(|s| s.id == study_id) {
            return Err(StoreError::NoStudy(format!("#{study_id}")));
        }
        let number = inner.study_trials(study_id).count() as u64;
        let id = inner.trials.len() as i64 + 1;
        let mut t = new_trial(id, number);
        t.state = TrialState::Waiting;
        t.params = params.clone();
        t.attrs = attrs.clone();
        inner.trials.push((study_id, t));
        Ok(number)
    }

    fn set_param(&self, trial_id: i64, name: &str, param: &ParamRecord) -> StoreResult<()> {
        let mut inner = self.lock();
        inner
            .running_mut(trial_id)?
            .params
            .insert(name.into(), param.clone());
        Ok(())
    }

    fn report(&self, trial_id: i64, step: u32, value: f64) -> StoreResult<()> {
        let mut inner = self.lock();
        inner
            .running_mut(trial_id)?
            .intermediate
            .insert(step, value);
        Ok(())
    }

    fn set_attr(&self, trial_id: i64, key: &str, value: &serde_json::Value) -> StoreResult<()> {
        let mut inner = self.lock();
        inner
            .running_mut(trial_id)?
            .attrs
            .insert(key.into(), value.clone());
        Ok(())
    }

    fn finish_trial(
        &self,
        trial_id: i64,
        state: TrialState,
        value: Option<f64>,
        error: Option<&str>,
    ) -> StoreResult<()> {
        assert!(state.is_finished(), "finish_trial needs a finished state");
        let mut inner = self.lock();
        let t = inner.running_mut(trial_id)?;
        t.state = state;
        t.value = value;
        t.error = error.map(str::to_string);
        t.finished_at = Some(now_unix());
        Ok(())
    }

    fn heartbeat(&self, trial_ids: &[i64]) -> StoreResult<()> {
        let mut inner = self.lock();
        let now = now_unix();
        for &id in trial_ids {
            if let Ok(t) = inner.running_mut(id) {
                t.heartbeat_at = Some(now);
            }
        }
        Ok(())
    }

    fn trials(&self, study_id: i64) -> StoreResult<Vec<FrozenTrial>> {
        Ok(self.lock().study_trials(study_id).cloned().collect())
    }

    fn trials_from(&self, study_id: i64, first_number: u64) -> StoreResult<Vec<FrozenTrial>> {
        Ok(self
            .lock()
            .study_trials(study_id)
            .filter(|t| t.number >= first_number)
            .cloned()
            .collect())
    }

    fn running_trials(&self, study_id: i64) -> StoreResult<Vec<FrozenTrial>> {
        Ok(self
            .lock()
            .study_trials(study_id)
            .filter(|t| t.state == TrialState::Running)
            .cloned()
            .collect())
    }

    fn trial(&self, trial_id: i64) -> StoreResult<FrozenTrial> {
        self.lock().trial_mut(trial_id).map(|t| t.clone())
    }
}

fn new_trial(id: i64, number: u64) -> FrozenTrial {
    FrozenTrial {
        id,
        number,
        state: TrialState::Running,
        params: BTreeMap::new(),
        value: None,
        intermediate: BTreeMap::new(),
        attrs: BTreeMap::new(),
        started_at: None,
        finished_at: None,
        heartbeat_at: None,
        owner: None,
        error: None,
    }
}
