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
    /// What training it cost (its `energy` attr), if recorded.
    pub train_joules: Option<f64>,
    /// Estimated joules of one prediction at batch 1, if measured.
    pub joules_per_prediction: Option<f64>,
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
            train_joules: crate::report::trial_joules(t),
            joules_per_prediction: attr(super::objective::PREDICTION_ENERGY_ATTR)
                .and_then(|j| j.as_f64()),
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

/// How close to the best a model must score to count as "as good": half a point of accuracy,
/// or 0.5% of the best value for other metrics (RMSE).
pub const GREEN_MARGIN: f64 = 0.005;

/// The model that predicts on the least energy among those within [`GREEN_MARGIN`] of the
/// best, beside the best.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Greenest {
    pub best: ArchPoint,
    pub greenest: ArchPoint,
    /// `1 - greenest / best` joules per prediction (0 when the best is the greenest).
    pub saving: f64,
}

impl Greenest {
    /// `trial 7 (98.10%, 0.21 J per 1,000 predictions) uses 63% less energy per prediction
    /// than the best, trial 12 (98.50%, 0.57 J)`.
    pub fn sentence(&self, metric: &str) -> String {
        let value = |p: &ArchPoint| {
            if metric.contains("accuracy") {
                format!("{:.2}%", p.value * 100.0)
            } else {
                format!("{metric} {}", crate::task::significant(p.value as f32))
            }
        };
        let per_1000 = |p: &ArchPoint| p.joules_per_prediction.unwrap_or(f64::NAN) * 1000.0;
        if self.best.number == self.greenest.number {
            return format!(
                "The best model, trial {} ({}), is also the greenest within {}: {:.3} J per \
                 1,000 predictions.",
                self.best.number,
                value(&self.best),
                margin_text(metric),
                per_1000(&self.best)
            );
        }
        format!(
            "The greenest model within {} of the best: trial {} ({}, {:.3} J per 1,000 \
             predictions) uses {:.0}% less energy per prediction than the best, trial {} ({}, \
             {:.3} J).",
            margin_text(metric),
            self.greenest.number,
            value(&self.greenest),
            per_1000(&self.greenest),
            100.0 * self.saving,
            self.best.number,
            value(&self.best),
            per_1000(&self.best)
        )
    }
}

fn margin_text(metric: &str) -> &'static str {
    if metric.contains("accuracy") {
        "0.5 points"
    } else {
        "0.5%"
    }
}

/// [`Greenest`] among `points` (`None` until the best has its prediction energy measured).
pub fn greenest_within(
    points: &[ArchPoint],
    direction: Direction,
    metric: &str,
) -> Option<Greenest> {
    let mut ranked = points.to_vec();
    sort_best_first(&mut ranked, direction);
    let best = ranked.first()?.clone();
    let best_energy = best.joules_per_prediction?;
    let margin = if metric.contains("accuracy") {
        GREEN_MARGIN
    } else {
        GREEN_MARGIN * best.value.abs()
    };
    let close = |p: &ArchPoint| match direction {
        Direction::Maximize => p.value >= best.value - margin,
        Direction::Minimize => p.value <= best.value + margin,
    };
    let greenest = ranked
        .iter()
        .filter(|p| close(p) && p.joules_per_prediction.is_some())
        .min_by(|a, b| {
            let (a, b) = (a.joules_per_prediction, b.joules_per_prediction);
            a.unwrap_or(f64::INFINITY)
                .total_cmp(&b.unwrap_or(f64::INFINITY))
        })?
        .clone();
    let saving = match greenest.joules_per_prediction {
        Some(g) if best_energy > 0.0 => (1.0 - g / best_energy).max(0.0),
        _ => 0.0,
    };
    Some(Greenest {
        best,
        greenest,
        saving,
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn point(number: u64, value: f64, joules: Option<f64>) -> ArchPoint {
        ArchPoint {
            number,
            architecture: format!("a{number}"),
            value,
            params: 1000,
            flops: 2000,
            latency_ms: 0.1,
            train_joules: Some(50.0),
            joules_per_prediction: joules,
        }
    }

    #[test]
    fn greenest_within_half_a_point_of_the_best() {
        let points = [
            point(0, 0.985, Some(4e-4)),
            point(1, 0.981, Some(1e-4)), // within 0.5 points, 4x cheaper
            point(2, 0.979, Some(1e-5)), // cheaper still, but 0.6 points behind
            point(3, 0.983, None),       // not measured
        ];
        let g = greenest_within(&points, Direction::Maximize, "val_accuracy").unwrap();
        assert_eq!((g.best.number, g.greenest.number), (0, 1));
        assert!((g.saving - 0.75).abs() < 1e-12, "{g:?}");
        let s = g.sentence("val_accuracy");
        assert!(
            s.contains("trial 1 (98.10%, 0.100 J per 1,000") && s.contains("75% less"),
            "{s}"
        );
        // The best is the greenest: said so, no saving.
        let g = greenest_within(&points[..1], Direction::Maximize, "val_accuracy").unwrap();
        assert_eq!((g.greenest.number, g.saving), (0, 0.0));
        assert!(g.sentence("val_accuracy").contains("is also the greenest"));
        // RMSE: lower is better, 0.5% of the best value.
        let rmse = [
            point(0, 2.0, Some(1.0)),
            point(1, 2.009, Some(0.5)),
            point(2, 2.02, Some(0.1)),
        ];
        let g = greenest_within(&rmse, Direction::Minimize, "val_rmse").unwrap();
        assert_eq!(g.greenest.number, 1);
        // No measured energy on the best: nothing to compare.
        assert!(greenest_within(&points[3..], Direction::Maximize, "val_accuracy").is_none());
    }
}
