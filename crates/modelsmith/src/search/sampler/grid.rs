//! Grid search (placeholder: samples at random until it lands).

use super::random::RandomSampler;
use super::{SampleContext, Sampler};
use crate::search::space::Distribution;

#[derive(Clone, Debug)]
pub struct GridSampler {
    pub points: usize,
}

impl GridSampler {
    pub fn new(points: usize) -> Self {
        GridSampler { points }
    }
}

impl Sampler for GridSampler {
    fn name(&self) -> &'static str {
        "grid"
    }
    fn sample_independent(&self, ctx: &SampleContext, name: &str, dist: &Distribution) -> f64 {
        RandomSampler.sample_independent(ctx, name, dist)
    }
}
