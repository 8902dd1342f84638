//! Uniform random sampling (log-uniform for log ranges): the control every sampler must beat.

use rand::Rng;

use super::{trial_rng, SampleContext, Sampler};
use crate::record::Distribution;

#[derive(Clone, Copy, Debug, Default)]
pub struct RandomSampler;

impl Sampler for RandomSampler {
    fn name(&self) -> &'static str {
        "random"
    }

    fn sample_independent(&self, ctx: &SampleContext, name: &str, dist: &Distribution) -> f64 {
        sample_uniform(&mut trial_rng(ctx.seed, ctx.number, name), dist)
    }
}

/// One uniform draw from `dist` (log-uniform for log ranges), snapped into it.
pub fn sample_uniform(rng: &mut impl Rng, dist: &Distribution) -> f64 {
    let (lo, hi) = dist.internal_bounds();
    if lo == hi {
        return lo;
    }
    let x = match dist {
        Distribution::Categorical { choices } => rng.gen_range(0..choices.len()) as f64,
        // Ints and stepped floats: widen by half a step so the end values are as likely as
        // the others after rounding.
        Distribution::Int { step, log, .. } => {
            let half = *step as f64 / 2.0;
            if *log {
                let (a, b) = ((lo - 0.5).max(0.5).ln(), (hi + 0.5).ln());
                rng.gen_range(a..b).exp()
            } else {
                rng.gen_range(lo - half..hi + half)
            }
        }
        Distribution::Float { step: Some(s), .. } => rng.gen_range(lo - s / 2.0..hi + s / 2.0),
        Distribution::Float { log: true, .. } => rng.gen_range(lo.ln()..=hi.ln()).exp(),
        Distribution::Float { .. } => rng.gen_range(lo..=hi),
    };
    dist.snap(x)
}
