//! Learning curves: the value each trial reported per epoch, pruned trials marked.

use serde::Serialize;

use super::StudyData;
use crate::search::TrialState;

#[derive(Clone, Debug, Serialize)]
pub struct LearningCurves {
    pub metric: String,
    pub curves: Vec<LearningCurve>,
}

#[derive(Clone, Debug, Serialize)]
pub struct LearningCurve {
    pub number: u64,
    pub state: TrialState,
    /// True when the pruner stopped this trial: its curve ends early on purpose.
    pub pruned: bool,
    /// `(step, value)` in step order.
    pub points: Vec<(u32, f64)>,
}

pub fn learning_curves(data: &StudyData) -> LearningCurves {
    LearningCurves {
        metric: data.metric(),
        curves: data
            .trials
            .iter()
            .filter(|t| !t.intermediate.is_empty())
            .map(|t| LearningCurve {
                number: t.number,
                state: t.state,
                pruned: t.state == TrialState::Pruned,
                points: t
                    .intermediate
                    .iter()
                    .filter(|(_, v)| v.is_finite())
                    .map(|(s, v)| (*s, *v))
                    .collect(),
            })
            .collect(),
    }
}
