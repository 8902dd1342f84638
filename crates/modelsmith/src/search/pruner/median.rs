//! Placeholder: never prunes until the real rule lands.

use super::{PruneContext, Pruner};

#[derive(Clone, Debug)]
pub struct MedianPruner {
    pub startup_trials: usize,
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
    fn prune(&self, _ctx: &PruneContext) -> bool {
        false
    }
}
