//! Parallel coordinates: one vertical axis per parameter plus the objective, one line per
//! complete trial.

use std::collections::BTreeMap;

use serde::Serialize;

use super::StudyData;
use crate::search::{Direction, Distribution, ParamValue};

#[derive(Clone, Debug, Serialize)]
pub struct ParallelCoordinates {
    /// Parameters in name order, then the objective (last).
    pub axes: Vec<Axis>,
    pub lines: Vec<ParallelLine>,
    pub direction: Direction,
}

#[derive(Clone, Debug, Serialize)]
pub struct Axis {
    pub name: String,
    #[serde(flatten)]
    pub kind: AxisKind,
}

#[derive(Clone, Debug, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AxisKind {
    /// Values are the numbers themselves; `log` axes are drawn in log scale.
    Numeric { low: f64, high: f64, log: bool },
    /// Values are indexes into `choices`.
    Categorical { choices: Vec<String> },
}

#[derive(Clone, Debug, Serialize)]
pub struct ParallelLine {
    pub number: u64,
    /// One per axis; `None` where a conditional parameter was not drawn.
    pub values: Vec<Option<f64>>,
    pub objective: f64,
}

pub fn parallel_coordinates(data: &StudyData) -> ParallelCoordinates {
    let complete: Vec<_> = data.complete().collect();
    // The latest distribution of each parameter decides its axis kind.
    let mut dists: BTreeMap<&str, &Distribution> = BTreeMap::new();
    for t in &complete {
        for (name, p) in &t.params {
            dists.insert(name, &p.distribution);
        }
    }
    let mut axes = Vec::new();
    let mut columns: Vec<Vec<Option<f64>>> = Vec::new();
    for (name, dist) in &dists {
        let raw: Vec<Option<ParamValue>> = complete
            .iter()
            .map(|t| t.params.get(*name).map(|p| p.value()))
            .collect();
        let (kind, column) = if let Distribution::Categorical { choices } = dist {
            // The declared order, then anything an older distribution had.
            let mut choices: Vec<String> = choices.iter().map(ToString::to_string).collect();
            let column = raw
                .iter()
                .map(|v| {
                    let label = v.as_ref()?.to_string();
                    let index = match choices.iter().position(|c| *c == label) {
                        Some(i) => i,
                        None => {
                            choices.push(label);
                            choices.len() - 1
                        }
                    };
                    Some(index as f64)
                })
                .collect();
            (AxisKind::Categorical { choices }, column)
        } else {
            let column: Vec<Option<f64>> = raw
                .iter()
                .map(|v| v.as_ref().and_then(|v| v.as_f64()))
                .collect();
            let (low, high) = bounds(column.iter().flatten().copied());
            let log = dist.is_log() && low > 0.0;
            (AxisKind::Numeric { low, high, log }, column)
        };
        axes.push(Axis {
            name: name.to_string(),
            kind,
        });
        columns.push(column);
    }
    let objectives: Vec<f64> = complete.iter().filter_map(|t| t.value).collect();
    let (low, high) = bounds(objectives.iter().copied());
    axes.push(Axis {
        name: data.metric(),
        kind: AxisKind::Numeric {
            low,
            high,
            log: false,
        },
    });
    let lines = complete
        .iter()
        .enumerate()
        .map(|(row, t)| {
            let objective = t.value.expect("complete trials have values");
            let mut values: Vec<Option<f64>> = columns.iter().map(|c| c[row]).collect();
            values.push(Some(objective));
            ParallelLine {
                number: t.number,
                values,
                objective,
            }
        })
        .collect();
    ParallelCoordinates {
        axes,
        lines,
        direction: data.direction(),
    }
}

/// Min and max of `values`, or `(0, 1)` when there are none.
fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    values
        .filter(|v| v.is_finite())
        .fold(None, |acc: Option<(f64, f64)>, v| match acc {
            None => Some((v, v)),
            Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
        })
        .unwrap_or((0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::testing::{study, trial, with_param};
    use crate::search::{Direction, TrialState};

    #[test]
    fn categorical_and_conditional_parameters_get_axes() {
        let opt = Distribution::categorical(vec!["sgd".into(), "adam".into()]);
        let t0 = with_param(
            trial(0, TrialState::Complete, Some(0.9)),
            "opt",
            opt.clone(),
            1.0,
        );
        let t0 = with_param(t0, "lr", Distribution::float_log(1e-4, 1e-1), 1e-3);
        let t1 = with_param(
            trial(1, TrialState::Complete, Some(0.8)),
            "opt",
            opt.clone(),
            0.0,
        );
        let t1 = with_param(t1, "lr", Distribution::float_log(1e-4, 1e-1), 1e-2);
        let t1 = with_param(t1, "momentum", Distribution::float(0.5, 0.99), 0.9);
        let t2 = with_param(trial(2, TrialState::Pruned, Some(0.1)), "opt", opt, 0.0);
        let p = parallel_coordinates(&study(Direction::Maximize, vec![t0, t1, t2]));
        let names: Vec<&str> = p.axes.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["lr", "momentum", "opt", "val_accuracy"]);
        assert_eq!(p.lines.len(), 2, "pruned trials have no final objective");
        assert!(
            matches!(&p.axes[2].kind, AxisKind::Categorical { choices } if choices == &["sgd", "adam"])
        );
        assert!(matches!(
            p.axes[0].kind,
            AxisKind::Numeric { log: true, .. }
        ));
        assert_eq!(p.lines[0].values, [Some(1e-3), None, Some(1.0), Some(0.9)]);
        assert_eq!(
            p.lines[1].values,
            [Some(1e-2), Some(0.9), Some(0.0), Some(0.8)]
        );
    }
}
