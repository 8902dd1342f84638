//! A regression study's best trial seen through its errors: its validation predictions beside
//! the truth (recorded by the trial as [`crate::tune::PREDICTIONS_ATTR`]), for the
//! predicted-vs-true and residual plots.

use serde::Serialize;

use super::StudyData;
use crate::search::best_trial;
use crate::task::PredictionSample;
use crate::tune::PREDICTIONS_ATTR;

#[derive(Clone, Debug, Serialize)]
pub struct Residuals {
    /// The best trial's number.
    pub number: u64,
    pub target: String,
    /// `(true, predicted)` per validation example, in the target's units.
    pub points: Vec<(f64, f64)>,
}

/// The best trial's predictions, if it is a regression trial that recorded them.
pub fn best_residuals(data: &StudyData) -> Option<Residuals> {
    let best = best_trial(&data.trials, data.direction())?;
    let sample: PredictionSample =
        serde_json::from_value(best.attrs.get(PREDICTIONS_ATTR)?.clone()).ok()?;
    let points: Vec<(f64, f64)> = sample
        .truth
        .iter()
        .zip(&sample.predicted)
        .map(|(&t, &p)| (t as f64, p as f64))
        .filter(|(t, p)| t.is_finite() && p.is_finite())
        .collect();
    (!points.is_empty()).then_some(Residuals {
        number: best.number,
        target: sample.target,
        points,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::testing::{study, trial};
    use crate::search::{Direction, TrialState};

    #[test]
    fn the_best_trials_sample_or_nothing() {
        let mut good = trial(1, TrialState::Complete, Some(10.0));
        let sample = PredictionSample {
            target: "price".into(),
            truth: vec![1.0, 2.0],
            predicted: vec![1.5, 2.5],
        };
        good.attrs.insert(
            PREDICTIONS_ATTR.into(),
            serde_json::to_value(&sample).unwrap(),
        );
        let worse = trial(0, TrialState::Complete, Some(20.0));
        let r = best_residuals(&study(Direction::Minimize, vec![worse.clone(), good])).unwrap();
        assert_eq!((r.number, r.target.as_str()), (1, "price"));
        assert_eq!(r.points, vec![(1.0, 1.5), (2.0, 2.5)]);
        // A classification study records none.
        assert!(best_residuals(&study(Direction::Minimize, vec![worse])).is_none());
    }
}
