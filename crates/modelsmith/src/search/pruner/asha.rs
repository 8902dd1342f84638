//! Asynchronous successive halving (ASHA, Li et al. 2018).
//!
//! Rungs sit at steps `min_resource * reduction_factor^k`. When a trial reaches a rung, it
//! goes on only if its value there is among the best `1 / reduction_factor` of all values any
//! trial has reported at that rung so far (itself included; while a rung has fewer than
//! `reduction_factor` values, only the best one goes on — the rule of Optuna's
//! `SuccessiveHalvingPruner`). Asynchronous: nobody waits for a rung to fill.

use super::{PruneContext, Pruner};
use crate::record::{FrozenTrial, TrialState};

#[derive(Clone, Debug)]
pub struct AshaPruner {
    pub min_resource: u32,
    pub reduction_factor: u32,
}

impl AshaPruner {
    pub fn new(min_resource: u32, reduction_factor: u32) -> Self {
        AshaPruner {
            min_resource,
            reduction_factor,
        }
    }

    /// True when `step` is a rung of this ladder.
    pub(super) fn is_rung(&self, step: u32) -> bool {
        let mut r = self.min_resource.max(1) as u64;
        while r < step as u64 {
            r *= self.reduction_factor.max(2) as u64;
        }
        r == step as u64
    }

    /// The rule at one rung, among `competitors` (trials that may be compared with this one).
    pub(super) fn prune_among<'a>(
        &self,
        ctx: &PruneContext,
        competitors: impl Iterator<Item = &'a FrozenTrial>,
    ) -> bool {
        if !self.is_rung(ctx.step) {
            return false;
        }
        let loss = |v: f64| {
            let l = ctx.direction.as_loss(v);
            if l.is_nan() {
                f64::INFINITY
            } else {
                l
            }
        };
        let Some(&mine) = ctx.trial.intermediate.get(&ctx.step) else {
            return false;
        };
        let mine = loss(mine);
        let mut values: Vec<f64> = competitors
            .filter(|t| t.state != TrialState::Failed && t.id != ctx.trial.id)
            .filter_map(|t| t.intermediate.get(&ctx.step))
            .map(|&v| loss(v))
            .collect();
        values.push(mine);
        values.sort_by(f64::total_cmp);
        let keep = (values.len() / self.reduction_factor.max(2) as usize).max(1);
        mine > values[keep - 1]
    }
}

impl Pruner for AshaPruner {
    fn name(&self) -> &'static str {
        "asha"
    }

    fn prune(&self, ctx: &PruneContext) -> bool {
        self.prune_among(ctx, ctx.trials.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{ctx_for, trial};
    use super::*;
    use crate::record::Direction;

    #[test]
    fn rungs_are_geometric() {
        let p = AshaPruner::new(1, 3);
        let rungs: Vec<u32> = (1..=30).filter(|&s| p.is_rung(s)).collect();
        assert_eq!(rungs, vec![1, 3, 9, 27]);
        let p = AshaPruner::new(2, 2);
        let rungs: Vec<u32> = (1..=20).filter(|&s| p.is_rung(s)).collect();
        assert_eq!(rungs, vec![2, 4, 8, 16]);
    }

    #[test]
    fn keeps_the_top_third_at_a_rung() {
        let p = AshaPruner::new(1, 3);
        // Five earlier trials reached step 1 with losses 0.1 .. 0.5.
        let others: Vec<_> = (0..5)
            .map(|i| trial(i, TrialState::Complete, &[(1, 0.1 * (i + 1) as f64)]))
            .collect();
        // With this one, six values: keep the best two (0.1 and the better of 0.2 / mine).
        let good = trial(9, TrialState::Running, &[(1, 0.15)]);
        let bad = trial(9, TrialState::Running, &[(1, 0.25)]);
        assert!(!p.prune(&ctx_for(&others, &good, Direction::Minimize)));
        assert!(p.prune(&ctx_for(&others, &bad, Direction::Minimize)));
        // Not a rung: never pruned there.
        let between = trial(9, TrialState::Running, &[(1, 0.15), (2, 9.0)]);
        let mut ctx = ctx_for(&others, &between, Direction::Minimize);
        ctx.step = 2;
        assert!(!p.prune(&ctx));
    }

    #[test]
    fn the_first_trial_at_a_rung_goes_on() {
        let p = AshaPruner::new(1, 3);
        let only = trial(0, TrialState::Running, &[(1, 0.9)]);
        assert!(!p.prune(&ctx_for(&[], &only, Direction::Minimize)));
    }
}
