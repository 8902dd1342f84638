//! Placeholder: never prunes until the real rule lands.

use super::{PruneContext, Pruner};

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
}

impl Pruner for AshaPruner {
    fn name(&self) -> &'static str {
        "asha"
    }
    fn prune(&self, _ctx: &PruneContext) -> bool {
        false
    }
}
