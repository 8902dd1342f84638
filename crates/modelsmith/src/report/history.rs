//! Optimization history: each complete trial's value and the best value so far.

use serde::Serialize;

use super::StudyData;
use crate::search::Direction;

#[derive(Clone, Debug, Serialize)]
pub struct History {
    pub metric: String,
    pub direction: Direction,
    /// Complete trials in trial-number order.
    pub points: Vec<HistoryPoint>,
    /// Pruned trials with the last value they reported (drawn apart; never a best).
    pub pruned: Vec<PrunedPoint>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PrunedPoint {
    pub number: u64,
    pub value: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HistoryPoint {
    pub number: u64,
    pub value: f64,
    /// The best value among this trial and the complete trials numbered before it.
    pub best_so_far: f64,
    /// True when this trial set a new best.
    pub is_best: bool,
}

pub fn optimization_history(data: &StudyData) -> History {
    let direction = data.direction();
    let mut best: Option<f64> = None;
    let points = data
        .complete()
        .map(|t| {
            let value = t.value.expect("complete() keeps trials with a value");
            let is_best = best.is_none_or(|b| direction.better(value, b));
            if is_best {
                best = Some(value);
            }
            HistoryPoint {
                number: t.number,
                value,
                best_so_far: best.expect("set above"),
                is_best,
            }
        })
        .collect();
    let pruned = data
        .trials
        .iter()
        .filter(|t| t.state == crate::search::TrialState::Pruned)
        .filter_map(|t| {
            let value = t.value.or(t.last_intermediate().map(|(_, v)| v))?;
            value.is_finite().then_some(PrunedPoint {
                number: t.number,
                value,
            })
        })
        .collect();
    History {
        metric: data.metric(),
        direction,
        points,
        pruned,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::testing::{study, trial};
    use crate::search::TrialState;

    #[test]
    fn best_so_far_follows_the_direction_and_skips_unfinished_trials() {
        let trials = vec![
            trial(0, TrialState::Complete, Some(0.5)),
            trial(1, TrialState::Pruned, Some(0.9)),
            trial(2, TrialState::Complete, Some(0.7)),
            trial(3, TrialState::Complete, Some(0.6)),
            trial(4, TrialState::Failed, None),
            trial(5, TrialState::Complete, Some(0.8)),
        ];
        let h = optimization_history(&study(Direction::Maximize, trials.clone()));
        let best: Vec<f64> = h.points.iter().map(|p| p.best_so_far).collect();
        assert_eq!(best, [0.5, 0.7, 0.7, 0.8]);
        let numbers: Vec<u64> = h.points.iter().map(|p| p.number).collect();
        assert_eq!(numbers, [0, 2, 3, 5]);
        let h = optimization_history(&study(Direction::Minimize, trials));
        let best: Vec<f64> = h.points.iter().map(|p| p.best_so_far).collect();
        assert_eq!(best, [0.5, 0.5, 0.5, 0.5]);
        assert_eq!(
            h.pruned,
            [PrunedPoint {
                number: 1,
                value: 0.9
            }]
        );
        assert!(h.points[0].is_best && !h.points[1].is_best);
    }
}
