//! The trade-off between accuracy, size and speed: each complete architecture trial as a
//! point, and the Pareto front of those no other trial beats on all three at once.

use serde::Serialize;

use crate::search::{FrozenTrial, TrialState};

/// One evaluated architecture, from a trial's attrs.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ArchPoint {
    pub number: u64,
    pub architecture: String,
    pub val_accuracy: f64,
    pub params: u64,
    pub flops: u64,
    pub latency_ms: f64,
}

impl ArchPoint {
    /// The point of a complete trial that recorded its architecture, params, FLOPs and latency.
    pub fn of(t: &FrozenTrial) -> Option<ArchPoint> {
        if t.state != TrialState::Complete {
            return None;
        }
        let attr = |k: &str| t.attrs.get(k);
        Some(ArchPoint {
            number: t.number,
            architecture: attr("architecture")?.as_str()?.to_string(),
            val_accuracy: t.value.filter(|v| v.is_finite())?,
            params: attr("params")?.as_u64()?,
            flops: attr("flops")?.as_u64()?,
            latency_ms: attr("latency_ms")?.as_f64()?,
        })
    }

    /// At least as good on accuracy, params and latency, and better on one of them.
    pub fn dominates(&self, other: &ArchPoint) -> bool {
        let no_worse = self.val_accuracy >= other.val_accuracy
            && self.params <= other.params
            && self.latency_ms <= other.latency_ms;
        let better = self.val_accuracy > other.val_accuracy
            || self.params < other.params
            || self.latency_ms < other.latency_ms;
        no_worse && better
    }
}

/// Every architecture point among `trials`, in trial order.
pub fn arch_points(trials: &[FrozenTrial]) -> Vec<ArchPoint> {
    trials.iter().filter_map(ArchPoint::of).collect()
}

/// The non-dominated points (maximize validation accuracy, minimize params and latency),
/// best accuracy first.
pub fn pareto_front(trials: &[FrozenTrial]) -> Vec<ArchPoint> {
    let points = arch_points(trials);
    let mut front: Vec<ArchPoint> = points
        .iter()
        .filter(|p| !points.iter().any(|q| q.dominates(p)))
        .cloned()
        .collect();
    front.sort_by(|a, b| {
        b.val_accuracy
            .total_cmp(&a.val_accuracy)
            .then(a.params.cmp(&b.params))
    });
    front
}
