//! Pruners stop unpromising trials early (multi-fidelity): after each reported step the study
//! asks the pruner whether the trial should go on.
//!
//! A pruner is one method. It keeps no state: rungs, brackets and medians are recomputed from
//! the trials' reported values, which live in storage — so parallel workers and resumed studies
//! agree on every decision without coordination.

mod asha;
mod hyperband;
mod median;

pub use asha::AshaPruner;
pub use hyperband::HyperbandPruner;
pub use median::MedianPruner;

use crate::record::{Direction, FrozenTrial};

/// What a pruner sees after `trial` reported its value at `step`.
pub struct PruneContext<'a> {
    /// Every trial of the study (fresh from storage), including `trial` itself.
    pub trials: &'a [FrozenTrial],
    pub trial: &'a FrozenTrial,
    pub step: u32,
    pub direction: Direction,
}

pub trait Pruner: Send + Sync {
    fn name(&self) -> &'static str;
    /// True when the trial should stop now.
    fn prune(&self, ctx: &PruneContext) -> bool;
}

/// Never prunes.
#[derive(Clone, Copy, Debug, Default)]
pub struct NopPruner;

impl Pruner for NopPruner {
    fn name(&self) -> &'static str {
        "none"
    }
    fn prune(&self, _ctx: &PruneContext) -> bool {
        false
    }
}

/// Settings shared by the pruners, from the tune config's `[pruner]` table.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PrunerConfig {
    /// `none`, `median`, `asha` or `hyperband`.
    pub kind: String,
    /// Steps (epochs) every trial runs before it can be pruned (median: warm-up steps;
    /// ASHA/Hyperband: the smallest resource, r_min).
    pub min_resource: u32,
    /// The largest resource (the trials' epochs) for Hyperband's brackets.
    pub max_resource: u32,
    /// Keep the best 1/`reduction_factor` at each rung (ASHA, Hyperband).
    pub reduction_factor: u32,
    /// Median: completed-or-reporting trials needed before pruning starts.
    pub startup_trials: usize,
}

impl Default for PrunerConfig {
    fn default() -> Self {
        PrunerConfig {
            kind: "none".into(),
            min_resource: 1,
            max_resource: 20,
            reduction_factor: 3,
            startup_trials: 5,
        }
    }
}

pub const PRUNERS: &[&str] = &["none", "median", "asha", "hyperband"];

impl PrunerConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !PRUNERS.contains(&self.kind.as_str()) {
            return Err(format!(
                "unknown pruner '{}' (expected one of {})",
                self.kind,
                PRUNERS.join(", ")
            ));
        }
        if self.min_resource == 0 {
            return Err("min_resource must be at least 1".into());
        }
        if self.reduction_factor < 2 {
            return Err(format!(
                "reduction_factor must be at least 2, got {}",
                self.reduction_factor
            ));
        }
        if self.kind == "hyperband" && self.max_resource < self.min_resource {
            return Err(format!(
                "max_resource {} is below min_resource {}",
                self.max_resource, self.min_resource
            ));
        }
        Ok(())
    }

    pub fn build(&self) -> Result<Box<dyn Pruner>, String> {
        self.validate()?;
        Ok(match self.kind.as_str() {
            "median" => Box::new(MedianPruner::new(self.startup_trials, self.min_resource)),
            "asha" => Box::new(AshaPruner::new(self.min_resource, self.reduction_factor)),
            "hyperband" => Box::new(HyperbandPruner::new(
                self.min_resource,
                self.max_resource,
                self.reduction_factor,
            )),
            _ => Box::new(NopPruner),
        })
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    use std::collections::BTreeMap;

    use super::PruneContext;
    use crate::record::{Direction, FrozenTrial, TrialState};

    /// A trial with the given reported (step, value) pairs.
    pub fn trial(number: u64, state: TrialState, values: &[(u32, f64)]) -> FrozenTrial {
        FrozenTrial {
            id: number as i64 + 1,
            number,
            state,
            params: BTreeMap::new(),
            value: values.last().map(|v| v.1),
            intermediate: values.iter().copied().collect(),
            attrs: BTreeMap::new(),
            started_at: None,
            finished_at: None,
            heartbeat_at: None,
            owner: None,
            error: None,
        }
    }

    /// The context after `me` reported its last step, with `others` in the study.
    pub fn ctx_for<'a>(
        others: &'a [FrozenTrial],
        me: &'a FrozenTrial,
        direction: Direction,
    ) -> PruneContext<'a> {
        PruneContext {
            trials: others,
            trial: me,
            step: me.last_intermediate().map_or(0, |(s, _)| s),
            direction,
        }
    }
}
