//! Placeholder: never prunes until the real rule lands.

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
}

impl Pruner for HyperbandPruner {
    fn name(&self) -> &'static str {
        "hyperband"
    }
    fn prune(&self, _ctx: &PruneContext) -> bool {
        false
    }
}
