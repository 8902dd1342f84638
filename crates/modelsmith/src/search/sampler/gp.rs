//! Gaussian-process sampler (placeholder: samples at random until it lands).

use super::random::RandomSampler;
use super::{SampleContext, Sampler};
use crate::search::space::Distribution;

#[derive(Clone, Debug, Default)]
pub struct GpSampler;

impl Sampler for GpSampler {
    fn name(&self) -> &'static str {
        "gp"
    }
    fn sample_independent(&self, ctx: &SampleContext, name: &str, dist: &Distribution) -> f64 {
        RandomSampler.sample_independent(ctx, name, dist)
    }
}
