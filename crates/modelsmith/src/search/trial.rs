//! The live trial an objective works with: define-by-run suggestions, reported steps, the
//! pruning question and attributes, each written through to storage as it happens.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::pruner::PruneContext;
use super::sampler::SampleContext;
use super::study::{Study, TrialError};
use crate::record::{best_trial, Direction, Distribution, FrozenTrial, ParamRecord, ParamValue};
use crate::store::StoreError;

/// One running trial, handed to the objective: suggest parameters, report progress.
pub struct Trial<'s> {
    pub(super) study: &'s Study,
    pub(super) id: i64,
    pub(super) number: u64,
    pub(super) params: BTreeMap<String, ParamRecord>,
    /// Values fixed in advance (a retried trial).
    pub(super) fixed: BTreeMap<String, ParamRecord>,
    /// The sampler's joint proposal at the start of the trial.
    pub(super) relative: BTreeMap<String, ParamRecord>,
    /// The study's trials when this one started (what the sampler learns from).
    pub(super) history: Arc<Vec<FrozenTrial>>,
}

impl Trial<'_> {
    pub fn number(&self) -> u64 {
        self.number
    }

    pub fn id(&self) -> i64 {
        self.id
    }

    /// A seed for the objective's own randomness (weights, shuffling), distinct per trial
    /// and reproducible given the study seed.
    pub fn seed(&self) -> u64 {
        self.study
            .seed
            .wrapping_add(self.number.wrapping_mul(0x9E37_79B9_7F4A_7C15))
            % (1 << 53)
    }

    pub fn direction(&self) -> Direction {
        self.study.record.direction
    }

    /// The best value of the study's trials that were complete when this one started.
    pub fn best_value_before(&self) -> Option<f64> {
        best_trial(&self.history, self.study.record.direction).and_then(|t| t.value)
    }

    /// The parameters suggested so far.
    pub fn params(&self) -> BTreeMap<String, ParamValue> {
        self.params
            .iter()
            .map(|(k, p)| (k.clone(), p.value()))
            .collect()
    }

    pub(super) fn sample_context(&self) -> SampleContext<'_> {
        SampleContext {
            trials: &self.history,
            direction: self.study.record.direction,
            number: self.number,
            seed: self.study.seed,
            params: &self.params,
        }
    }

    /// A value for `name` from `dist`: the same as before if `name` was already suggested
    /// with the same distribution; otherwise fixed (retry), jointly proposed, or sampled.
    pub fn suggest(&mut self, name: &str, dist: Distribution) -> Result<ParamValue, TrialError> {
        let space_error = |message: String| TrialError::Space {
            name: name.into(),
            message,
        };
        dist.validate().map_err(space_error)?;
        if let Some(p) = self.params.get(name) {
            if p.distribution != dist {
                return Err(space_error(format!(
                    "suggested twice with different ranges ({:?} and {:?})",
                    p.distribution, dist
                )));
            }
            return Ok(p.value());
        }
        let fixed = self
            .fixed
            .get(name)
            .and_then(|p| dist.to_internal(&p.value()));
        let relative = self
            .relative
            .get(name)
            .filter(|p| p.distribution == dist && dist.contains(p.internal))
            .map(|p| p.internal);
        let internal = match fixed.or(relative) {
            Some(v) => v,
            None if dist.is_single() => dist.internal_bounds().0,
            None => {
                let v = self
                    .study
                    .sampler
                    .sample_independent(&self.sample_context(), name, &dist);
                dist.snap(v)
            }
        };
        let record = ParamRecord {
            distribution: dist,
            internal,
        };
        self.study.storage.set_param(self.id, name, &record)?;
        let value = record.value();
        self.params.insert(name.into(), record);
        Ok(value)
    }

    pub fn suggest_float(&mut self, name: &str, low: f64, high: f64) -> Result<f64, TrialError> {
        self.suggest_f64(name, Distribution::float(low, high))
    }

    pub fn suggest_float_log(
        &mut self,
        name: &str,
        low: f64,
        high: f64,
    ) -> Result<f64, TrialError> {
        self.suggest_f64(name, Distribution::float_log(low, high))
    }

    pub fn suggest_float_step(
        &mut self,
        name: &str,
        low: f64,
        high: f64,
        step: f64,
    ) -> Result<f64, TrialError> {
        let dist = Distribution::Float {
            low,
            high,
            log: false,
            step: Some(step),
        };
        self.suggest_f64(name, dist)
    }

    pub fn suggest_int(&mut self, name: &str, low: i64, high: i64) -> Result<i64, TrialError> {
        self.suggest_i64(name, Distribution::int(low, high))
    }

    pub fn suggest_int_log(&mut self, name: &str, low: i64, high: i64) -> Result<i64, TrialError> {
        let dist = Distribution::Int {
            low,
            high,
            log: true,
            step: 1,
        };
        self.suggest_i64(name, dist)
    }

    pub fn suggest_int_step(
        &mut self,
        name: &str,
        low: i64,
        high: i64,
        step: i64,
    ) -> Result<i64, TrialError> {
        let dist = Distribution::Int {
            low,
            high,
            log: false,
            step,
        };
        self.suggest_i64(name, dist)
    }

    /// One of `choices`.
    pub fn suggest_categorical<T>(&mut self, name: &str, choices: &[T]) -> Result<T, TrialError>
    where
        T: Clone + Into<ParamValue>,
    {
        let values: Vec<ParamValue> = choices.iter().cloned().map(Into::into).collect();
        let dist = Distribution::categorical(values);
        let value = self.suggest(name, dist.clone())?;
        let index = dist.to_internal(&value).expect("suggested from dist") as usize;
        Ok(choices[index].clone())
    }

    pub fn suggest_bool(&mut self, name: &str) -> Result<bool, TrialError> {
        self.suggest_categorical(name, &[false, true])
    }

    fn suggest_f64(&mut self, name: &str, dist: Distribution) -> Result<f64, TrialError> {
        Ok(self
            .suggest(name, dist)?
            .as_f64()
            .expect("float distribution"))
    }

    fn suggest_i64(&mut self, name: &str, dist: Distribution) -> Result<i64, TrialError> {
        match self.suggest(name, dist)? {
            ParamValue::Int(i) => Ok(i),
            other => unreachable!("int distribution gave {other:?}"),
        }
    }

    /// Records the objective's value at `step` (an epoch) for pruners and curves.
    pub fn report(&mut self, step: u32, value: f64) -> Result<(), TrialError> {
        self.study.storage.report(self.id, step, value)?;
        Ok(())
    }

    /// Asks the pruner whether this trial should stop, given everything reported so far.
    pub fn should_prune(&self) -> Result<bool, TrialError> {
        // The incremental history: only trials from the first unfinished one are re-read.
        let trials = self.study.history()?;
        let Some(me) = trials.iter().find(|t| t.id == self.id) else {
            return Err(StoreError::NoTrial(self.id).into());
        };
        let Some((step, _)) = me.last_intermediate() else {
            return Ok(false);
        };
        Ok(self.study.pruner.prune(&PruneContext {
            trials: &trials,
            trial: me,
            step,
            direction: self.study.record.direction,
        }))
    }

    /// Keeps a JSON value with the trial (e.g. the ModelSpec, the training report).
    pub fn set_attr(&mut self, key: &str, value: impl serde::Serialize) -> Result<(), TrialError> {
        let value = serde_json::to_value(value).map_err(TrialError::failed)?;
        self.study.storage.set_attr(self.id, key, &value)?;
        Ok(())
    }
}
