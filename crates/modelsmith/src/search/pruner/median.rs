//! Median stopping (Golovin et al. 2017, "Google Vizier"): stop a trial whose best value so far
//! is worse than the median of the completed trials' values at the same step.

use super::{PruneContext, Pruner};
use crate::record::TrialState;

#[derive(Clone, Debug)]
pub struct MedianPruner {
    /// Completed trials with a value at the step needed before anything is pruned.
    pub startup_trials: usize,
    /// No trial is pruned before this step.
    pub warmup_steps: u32,
}

impl MedianPruner {
    pub fn new(startup_trials: usize, warmup_steps: u32) -> Self {
        MedianPruner {
            startup_trials,
            warmup_steps,
        }
    }
}

impl Pruner for MedianPruner {
    fn name(&self) -> &'static str {
        "median"
    }

    fn prune(&self, ctx: &PruneContext) -> bool {
        if ctx.step < self.warmup_steps {
            return false;
        }
        let loss = |v: f64| ctx.direction.as_loss(v);
        // The trial's best value up to this step: a single noisy epoch does not condemn it.
        let Some(mine) = ctx
            .trial
            .intermediate
            .range(..=ctx.step)
            .map(|(_, &v)| loss(v))
            .filter(|v| !v.is_nan())
            .reduce(f64::min)
        else {
            // Only NaN so far: as bad as it gets.
            return ctx.trial.intermediate.contains_key(&ctx.step);
        };
        let mut others: Vec<f64> = ctx
            .trials
            .iter()
            .filter(|t| t.state == TrialState::Complete && t.id != ctx.trial.id)
            .filter_map(|t| t.intermediate.get(&ctx.step))
            .map(|&v| loss(v))
            .filter(|v| !v.is_nan())
            .collect();
        if others.len() < self.startup_trials.max(1) {
            return false;
        }
        others.sort_by(f64::total_cmp);
        let n = others.len();
        let median = if n % 2 == 1 {
            others[n / 2]
        } else {
            (others[n / 2 - 1] + others[n / 2]) / 2.0
        };
        mine > median
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{ctx_for, trial};
    use super::*;
    use crate::record::{Direction, TrialState};

    #[test]
    fn prunes_below_the_median_of_completed_trials_only_after_startup_and_warmup() {
        let done: Vec<_> = (0..5)
            .map(|i| trial(i, TrialState::Complete, &[(1, 0.5 + 0.1 * i as f64)]))
            .collect();
        let pruner = MedianPruner::new(5, 1);
        // Maximizing accuracy: the median at step 1 is 0.7.
        let weak = trial(9, TrialState::Running, &[(1, 0.6)]);
        let strong = trial(10, TrialState::Running, &[(1, 0.75)]);
        assert!(pruner.prune(&ctx_for(&done, &weak, Direction::Maximize)));
        assert!(!pruner.prune(&ctx_for(&done, &strong, Direction::Maximize)));
        // The same figures as losses: 0.6 is better than the median.
        assert!(!pruner.prune(&ctx_for(&done, &weak, Direction::Minimize)));
        // Too few completed trials, or still warming up.
        assert!(!MedianPruner::new(6, 1).prune(&ctx_for(&done, &weak, Direction::Maximize)));
        assert!(!MedianPruner::new(5, 2).prune(&ctx_for(&done, &weak, Direction::Maximize)));
    }
}
