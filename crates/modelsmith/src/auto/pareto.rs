//! The trade-off between the study's metric (accuracy, or RMSE for a regression), size and
//! speed: each complete architecture trial as a point, and the Pareto front of those no other
//! trial beats on all three at once.

use serde::Serialize;

use crate::search::{Direction, FrozenTrial, TrialState};

/// One evaluated architecture, from a trial's attrs.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ArchPoint {
    pub number: u64,
    pub architecture: String,
    /// The trial's value: its validation metric.
    pub value: f64,
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
            value: t.value.filter(|v| v.is_finite())?,
            params: attr("params")?.as_u64()?,
            flops: attr("flops")?.as_u64()?,
            latency_ms: attr("latency_ms")?.as_f64()?,
        })
    }

    /// At least as good on the metric (in `direction`), params and latency, and better on one
    /// of them.
    pub fn dominates(&self, other: &ArchPoint, direction: Direction) -> bool {
        let no_worse = !direction.better(other.value, self.value)
            && self.params <= other.params
            && self.latency_ms <= other.latency_ms;
        let better = direction.better(self.value, other.value)
            || self.params < other.params
            || self.latency_ms < other.latency_ms;
        no_worse && better
    }
}

/// Every architecture point among `trials`, in trial order.
pub fn arch_points(trials: &[FrozenTrial]) -> Vec<ArchPoint> {
    trials.iter().filter_map(ArchPoint::of).collect()
}

/// The non-dominated points (the best metric in `direction`, fewest params, lowest latency),
/// best metric first.
pub fn pareto_front(trials: &[FrozenTrial], direction: Direction) -> Vec<ArchPoint> {
    let points = arch_points(trials);
    let mut front: Vec<ArchPoint> = points
        .iter()
        .filter(|p| !points.iter().any(|q| q.dominates(p, direction)))
        .cloned()
        .collect();
    sort_best_first(&mut front, direction);
    front
}

/// Best value first (ties: fewer params, then the earlier trial).
pub fn sort_best_first(points: &mut [ArchPoint], direction: Direction) {
    points.sort_by(|a, b| {
        let (a_key, b_key) = match direction {
            Direction::Maximize => (-a.value, -b.value),
            Direction::Minimize => (a.value, b.value),
        };
        a_key
            .total_cmp(&b_key)
            .then(a.params.cmp(&b.params))
            .then(a.number.cmp(&b.number))
    });
}
