//! Hyperband (Li et al. 2017) over ASHA: trials are spread over brackets that start pruning at
//! different resources — bracket 0 at `min_resource`, bracket b at `min_resource * eta^b` — so
//! the study hedges between aggressive and patient early stopping. A trial is compared only
//! with trials of its own bracket. The bracket is a function of the trial number, weighted as
//! in the paper (more trials where pruning starts early), so every worker agrees on it.

use super::asha::AshaPruner;
use super::{PruneContext, Pruner};

#[derive(Clone, Debug)]
pub struct HyperbandPruner {
    pub min_resource: u32,
    pub max_resource: u32,
    pub reduction_factor: u32,
}

impl HyperbandPruner {
    pub fn new(min_resource: u32, max_resource: u32, reduction_factor: u32) -> Self {
        HyperbandPruner {
            min_resource,
            max_resource,
            reduction_factor,
        }
    }

    /// `s_max + 1` in the paper's notation.
    fn bracket_count(&self) -> u32 {
        let eta = self.reduction_factor.max(2) as u64;
        let (mut r, mut n) = (self.min_resource.max(1) as u64, 1);
        while r * eta <= self.max_resource.max(1) as u64 {
            r *= eta;
            n += 1;
        }
        n
    }

    /// The trial's bracket: bracket b gets a share proportional to the paper's
    /// `ceil((s_max + 1) / (s + 1) * eta^s)` with `s = s_max - b`.
    pub fn bracket_of(&self, number: u64) -> u32 {
        let count = self.bracket_count();
        let eta = self.reduction_factor.max(2) as f64;
        let weights: Vec<u64> = (0..count)
            .map(|b| {
                let s = (count - 1 - b) as f64;
                (count as f64 / (s + 1.0) * eta.powf(s)).ceil() as u64
            })
            .collect();
        let total: u64 = weights.iter().sum();
        // Spread consecutive numbers over the brackets (a multiplicative hash), so that the
        // first few trials already cover several brackets.
        let mut slot = number.wrapping_mul(0x9E37_79B9_7F4A_7C15) % total;
        for (b, w) in weights.iter().enumerate() {
            if slot < *w {
                return b as u32;
            }
            slot -= w;
        }
        count - 1
    }

    fn ladder(&self, bracket: u32) -> AshaPruner {
        let eta = self.reduction_factor.max(2);
        AshaPruner::new(self.min_resource.max(1) * eta.pow(bracket), eta)
    }
}

impl Pruner for HyperbandPruner {
    fn name(&self) -> &'static str {
        "hyperband"
    }

    fn prune(&self, ctx: &PruneContext) -> bool {
        let bracket = self.bracket_of(ctx.trial.number);
        let same_bracket = ctx
            .trials
            .iter()
            .filter(|t| self.bracket_of(t.number) == bracket);
        self.ladder(bracket).prune_among(ctx, same_bracket)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{ctx_for, trial};
    use super::*;
    use crate::record::{Direction, TrialState};

    #[test]
    fn brackets_follow_the_paper_weights() {
        // min 1, max 27, eta 3: four brackets with weights 27, 12, 6, 4 (ceil of 4/(s+1)*3^s).
        let hb = HyperbandPruner::new(1, 27, 3);
        assert_eq!(hb.bracket_count(), 4);
        let mut counts = [0usize; 4];
        for n in 0..4900 {
            counts[hb.bracket_of(n) as usize] += 1;
        }
        let share = |b: usize| counts[b] as f64 / 4900.0;
        assert!((share(0) - 27.0 / 49.0).abs() < 0.03, "{counts:?}");
        assert!((share(3) - 4.0 / 49.0).abs() < 0.03, "{counts:?}");
        assert!((0..8)
            .map(|n| hb.bracket_of(n))
            .any(|b| b != hb.bracket_of(0)));
    }

    #[test]
    fn compares_only_within_a_bracket() {
        let hb = HyperbandPruner::new(1, 9, 3);
        let b0: Vec<u64> = (0..200).filter(|&n| hb.bracket_of(n) == 0).collect();
        let b1: Vec<u64> = (0..200).filter(|&n| hb.bracket_of(n) == 1).collect();
        // Trials of bracket 1 are much better at step 3 — they must not count against bracket 0.
        let mut others: Vec<_> = b1[..6]
            .iter()
            .map(|&n| trial(n, TrialState::Complete, &[(1, 0.0), (3, 0.0)]))
            .collect();
        others.extend(
            b0[..2]
                .iter()
                .map(|&n| trial(n, TrialState::Complete, &[(1, 0.5), (3, 0.5)])),
        );
        let mine = trial(b0[2], TrialState::Running, &[(1, 0.4)]);
        assert!(!hb.prune(&ctx_for(&others, &mine, Direction::Minimize)));
        let worse = trial(b0[2], TrialState::Running, &[(1, 0.6)]);
        assert!(hb.prune(&ctx_for(&others, &worse, Direction::Minimize)));
    }
}
