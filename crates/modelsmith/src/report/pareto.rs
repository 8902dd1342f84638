//! The Pareto front when trials have several objectives: the study's value plus the size or
//! speed attributes trials record (`params`, `flops`, `latency_ms`; for tune trials the
//! training report's `params` and `flops_per_example`; for architecture searches the cost of
//! the `genome`). Sizes and latencies are minimized. An attribute counts as an objective only
//! when it varies across the complete trials.

use serde::Serialize;

use super::architectures::genome_cost;
use super::StudyData;
use crate::search::{Direction, FrozenTrial};

#[derive(Clone, Debug, Serialize)]
pub struct ParetoFront {
    /// The study's value first, then the secondary objectives found.
    pub objectives: Vec<Objective>,
    /// Complete trials that have every objective.
    pub points: Vec<ParetoPoint>,
    /// Why there is no front, when there is none.
    pub note: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Objective {
    pub name: String,
    pub direction: Direction,
}

#[derive(Clone, Debug, Serialize)]
pub struct ParetoPoint {
    pub number: u64,
    /// One per objective.
    pub values: Vec<f64>,
    /// True when no other point is at least as good in every objective and better in one.
    pub on_front: bool,
}

/// Secondary objectives: a name and where trials keep it.
const SECONDARY: &[(&str, &[&str])] = &[
    (
        "params",
        &["/params", "/report/params", "/genome_cost/params"],
    ),
    (
        "flops",
        &["/flops", "/report/flops_per_example", "/genome_cost/flops"],
    ),
    ("latency_ms", &["/latency_ms"]),
];

fn secondary_value(data: &StudyData, t: &FrozenTrial, paths: &[&str]) -> Option<f64> {
    let attrs = serde_json::to_value(&t.attrs).ok()?;
    for path in paths {
        if let Some(v) = attrs.pointer(path).and_then(serde_json::Value::as_f64) {
            return Some(v);
        }
        if path.starts_with("/genome_cost/") {
            let cost = genome_cost(data, t)?;
            return Some(if path.ends_with("params") {
                cost.params as f64
            } else {
                cost.flops as f64
            });
        }
    }
    None
}

pub fn pareto_front(data: &StudyData) -> ParetoFront {
    let complete: Vec<&FrozenTrial> = data.complete().collect();
    let mut objectives = vec![Objective {
        name: data.metric(),
        direction: data.direction(),
    }];
    let mut columns: Vec<Vec<Option<f64>>> = vec![complete.iter().map(|t| t.value).collect()];
    for (name, paths) in SECONDARY {
        let column: Vec<Option<f64>> = complete
            .iter()
            .map(|t| secondary_value(data, t, paths))
            .collect();
        let mut distinct: Vec<f64> = column.iter().flatten().copied().collect();
        distinct.sort_by(f64::total_cmp);
        distinct.dedup();
        if distinct.len() >= 2 {
            objectives.push(Objective {
                name: name.to_string(),
                direction: Direction::Minimize,
            });
            columns.push(column);
        }
    }
    if objectives.len() < 2 {
        return ParetoFront {
            objectives,
            points: Vec::new(),
            note: Some(
                "one objective: no trial records a varying params, flops or latency_ms".into(),
            ),
        };
    }
    let mut points: Vec<ParetoPoint> = complete
        .iter()
        .enumerate()
        .filter_map(|(row, t)| {
            let values: Option<Vec<f64>> = columns.iter().map(|c| c[row]).collect();
            Some(ParetoPoint {
                number: t.number,
                values: values?,
                on_front: false,
            })
        })
        .collect();
    let losses: Vec<Vec<f64>> = points
        .iter()
        .map(|p| {
            p.values
                .iter()
                .zip(&objectives)
                .map(|(v, o)| o.direction.as_loss(*v))
                .collect()
        })
        .collect();
    for i in 0..points.len() {
        points[i].on_front = !losses.iter().any(|other| dominates(other, &losses[i]));
    }
    ParetoFront {
        objectives,
        points,
        note: None,
    }
}

/// `a` dominates `b` (both losses): no worse anywhere, better somewhere.
fn dominates(a: &[f64], b: &[f64]) -> bool {
    a.iter().zip(b).all(|(x, y)| x <= y) && a.iter().zip(b).any(|(x, y)| x < y)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::testing::{study, trial};
    use crate::search::TrialState;

    #[test]
    fn the_front_keeps_trials_nothing_beats_on_both_accuracy_and_size() {
        let points = [
            (0.90, 1000.0),
            (0.95, 5000.0),
            (0.85, 3000.0),
            (0.97, 9000.0),
            (0.95, 4000.0),
        ];
        let trials = points
            .iter()
            .enumerate()
            .map(|(n, &(acc, params))| {
                let mut t = trial(n as u64, TrialState::Complete, Some(acc));
                t.attrs.insert("params".into(), serde_json::json!(params));
                t
            })
            .collect();
        let front = pareto_front(&study(Direction::Maximize, trials));
        let names: Vec<&str> = front.objectives.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names, ["val_accuracy", "params"]);
        let on: Vec<u64> = front
            .points
            .iter()
            .filter(|p| p.on_front)
            .map(|p| p.number)
            .collect();
        assert_eq!(on, [0, 3, 4]);
    }

    #[test]
    fn a_constant_size_is_no_objective() {
        let trials = (0..4)
            .map(|n| {
                let mut t = trial(n, TrialState::Complete, Some(n as f64));
                t.attrs
                    .insert("report".into(), serde_json::json!({"params": 1234}));
                t
            })
            .collect();
        let front = pareto_front(&study(Direction::Maximize, trials));
        assert_eq!(front.objectives.len(), 1);
        assert!(front.points.is_empty() && front.note.is_some());
    }
}
