//! Weights carried over by name: a network built from one spec takes every tensor another
//! network (or a weights file) holds under the same name and shape. An architecture search's
//! child starts this way from its parent; training only asks for it ([`crate::train::TrainOptions::initial`]).

use std::collections::BTreeSet;

use modelsmith_engine::Network;

use super::NamedTensors;

/// Which of a child's tensors came from the parent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Inherited {
    pub copied: BTreeSet<String>,
    /// Tensors the parent lacks or has in another shape: they keep their fresh values.
    pub fresh: BTreeSet<String>,
}

/// Copies into `net` every parameter and buffer whose name and shape match one of `parent`'s.
pub fn inherit(net: &mut Network, parent: &NamedTensors) -> Inherited {
    let mut report = Inherited::default();
    let mut take = |name: String, target: &mut modelsmith_engine::Tensor| match parent.get(&name) {
        Some((shape, values)) if *shape == target.shape => {
            target.data.copy_from_slice(values);
            report.copied.insert(name);
        }
        _ => {
            report.fresh.insert(name);
        }
    };
    for (name, p) in net.params_mut() {
        take(name, &mut p.value);
    }
    for (name, t) in net.buffers_mut() {
        take(name, t);
    }
    report
}

/// Every parameter and buffer of `net` by name (what a weights file holds).
pub fn network_tensors(net: &Network) -> NamedTensors {
    let params = net
        .params()
        .into_iter()
        .map(|(n, p)| (n, (p.value.shape.clone(), p.value.data.clone())));
    let buffers = net
        .buffers()
        .into_iter()
        .map(|(n, t)| (n, (t.shape.clone(), t.data.clone())));
    params.chain(buffers).collect()
}
