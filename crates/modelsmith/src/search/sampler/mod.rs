//! Samplers propose parameter values from the study's history.
//!
//! Like Optuna's, the interface is small: a sampler may propose several parameters jointly at
//! the start of a trial ([`Sampler::sample_relative`]) and proposes any other parameter on its
//! own when the objective asks for it ([`Sampler::sample_independent`]). Samplers keep no
//! state between calls: everything comes from the trials in the [`SampleContext`], so parallel
//! workers and resumed studies need nothing special. Randomness comes from [`trial_rng`]:
//! the same study seed, trial number and history give the same proposal.

mod gp;
mod grid;
mod random;
mod tpe;

use std::collections::BTreeMap;

pub use gp::GpSampler;
pub use grid::GridSampler;
pub use random::RandomSampler;
pub use tpe::TpeSampler;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::record::Distribution;
use crate::record::{Direction, FrozenTrial, ParamRecord};

/// What a sampler sees when proposing values for trial `number`.
pub struct SampleContext<'a> {
    /// Every trial of the study when this trial started, by number — including running ones
    /// (their parameters are known, their values not: see TPE's constant liar).
    pub trials: &'a [FrozenTrial],
    pub direction: Direction,
    /// The trial being sampled.
    pub number: u64,
    /// The study's seed.
    pub seed: u64,
    /// Parameters this trial already has (earlier suggestions; conditional spaces).
    pub params: &'a BTreeMap<String, ParamRecord>,
}

pub trait Sampler: Send + Sync {
    /// Short name for logs and the study's record (`tpe`, `random`, …).
    fn name(&self) -> &'static str;

    /// Values for parameters the sampler models jointly, proposed once at the start of a trial,
    /// each with the distribution it assumed. The trial uses a value only when the objective
    /// later asks for that name with the same distribution. Default: none.
    fn sample_relative(&self, _ctx: &SampleContext) -> BTreeMap<String, ParamRecord> {
        BTreeMap::new()
    }

    /// An internal value for one parameter (it must satisfy `dist.contains`; use `dist.snap`).
    fn sample_independent(&self, ctx: &SampleContext, name: &str, dist: &Distribution) -> f64;

    /// The number of distinct trials this sampler can produce, when finite (a grid).
    fn max_trials(&self) -> Option<u64> {
        None
    }
}

/// The random generator for one decision: seeded by the study seed, the trial number and a
/// name, so proposals do not depend on the order parameters are asked for.
pub fn trial_rng(seed: u64, number: u64, name: &str) -> ChaCha8Rng {
    // FNV-1a over the name, mixed with the seed and number by SplitMix-style multiplication.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
    }
    let mixed = seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(number.wrapping_mul(0xBF58_476D_1CE4_E5B9))
        ^ h;
    ChaCha8Rng::seed_from_u64(mixed)
}

/// The samplers a config can name.
pub const SAMPLERS: &[&str] = &["auto", "random", "grid", "tpe", "gp"];

/// Builds a sampler by name. `auto` is TPE (mixed and conditional spaces). `grid_points` is
/// the number of values a continuous parameter takes in a grid.
pub fn make_sampler(name: &str, grid_points: usize) -> Result<Box<dyn Sampler>, String> {
    Ok(match name {
        "auto" | "tpe" => Box::new(TpeSampler::default()),
        "random" => Box::new(RandomSampler),
        "grid" => Box::new(GridSampler::new(grid_points)),
        "gp" => Box::new(GpSampler::default()),
        _ => {
            return Err(format!(
                "unknown sampler '{name}' (expected one of {})",
                SAMPLERS.join(", ")
            ))
        }
    })
}

/// `erfcx(x) = exp(x²) erfc(x)` for `x ≥ 0` (Numerical Recipes' Chebyshev fit, relative error
/// below 1.2e-7).
pub(super) fn erfcx_pos(x: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.5 * x);
    let poly = -1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    t * poly.exp()
}
