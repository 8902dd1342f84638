//! Tree-structured Parzen estimator (placeholder: samples at random until TPE lands).

use super::random::RandomSampler;
use super::{SampleContext, Sampler};
use crate::search::space::Distribution;

#[derive(Clone, Debug, Default)]
pub struct TpeSampler;

impl Sampler for TpeSampler {
    fn name(&self) -> &'static str {
        "tpe"
    }
    fn sample_independent(&self, ctx: &SampleContext, name: &str, dist: &Distribution) -> f64 {
        RandomSampler.sample_independent(ctx, name, dist)
    }
}
