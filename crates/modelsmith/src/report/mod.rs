//! What a study looks like: every plot's data computed from the trials in storage, as serde
//! structures (the dashboard's JSON), and the same plots drawn as SVG ([`plots`]) and written
//! to a folder ([`write`]). Nothing here knows HTTP; `crates/dashboard` serves it.
//!
//! One renderer: the SVG the report writes is the SVG the dashboard page shows, so the two
//! never disagree.

mod architectures;
mod cost;
mod curves;
mod history;
mod importance;
mod parallel;
mod pareto;
pub mod plots;
mod residuals;
mod svg;
mod table;
mod trial_model;
pub mod write;

use serde::Serialize;

pub use architectures::{best_architectures, Architecture, ArchitectureLayer};
pub use cost::{trial_joules, trials_energy, StudyEnergy};
pub use curves::{learning_curves, LearningCurve, LearningCurves};
pub use history::{optimization_history, History, HistoryPoint, PrunedPoint};
pub use importance::{
    param_importance, permutation_importance, Forest, ForestOptions, Importance, ParamImportance,
};
pub use parallel::{parallel_coordinates, Axis, AxisKind, ParallelCoordinates, ParallelLine};
pub use pareto::{pareto_front, Objective, ParetoFront, ParetoPoint};
pub use residuals::{best_residuals, Residuals};
pub use table::{trials_table, TrialRow, TrialsTable};
pub use trial_model::{best_trial_model, trial_model_dir, ARTIFACT_ATTR};

use crate::search::{best_trial, Direction, FrozenTrial, TrialState};
use crate::store::{Storage, StoreError, StudyRecord};

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("no study named '{0}' (see `modelsmith studies list`)")]
    UnknownStudy(String),
    #[error("study '{0}' has no trials yet (start it with `modelsmith tune`)")]
    EmptyStudy(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{path}: {message}")]
    Io { path: String, message: String },
}

impl ReportError {
    /// True when the user named something that isn't there (exit code 2, HTTP 404).
    pub fn is_bad_input(&self) -> bool {
        match self {
            ReportError::UnknownStudy(_) | ReportError::EmptyStudy(_) => true,
            ReportError::Store(e) => e.is_bad_input(),
            ReportError::Io { .. } => false,
        }
    }
}

/// A study and its trials, read once (one consistent snapshot per storage call).
#[derive(Clone, Debug)]
pub struct StudyData {
    pub study: StudyRecord,
    pub trials: Vec<FrozenTrial>,
}

impl StudyData {
    /// Reads the study `name`; an unknown name is [`ReportError::UnknownStudy`]. An empty study
    /// loads (the dashboard shows it as such); [`StudyData::require_trials`] refuses it.
    pub fn load(storage: &dyn Storage, name: &str) -> Result<StudyData, ReportError> {
        let study = storage
            .get_study(name)?
            .ok_or_else(|| ReportError::UnknownStudy(name.to_string()))?;
        let trials = storage.trials(study.id)?;
        Ok(StudyData { study, trials })
    }

    pub fn require_trials(&self) -> Result<(), ReportError> {
        if self.trials.is_empty() {
            return Err(ReportError::EmptyStudy(self.study.name.clone()));
        }
        Ok(())
    }

    pub fn direction(&self) -> Direction {
        self.study.direction
    }

    /// The objective's name: the tune config's metric when the study has one.
    pub fn metric(&self) -> String {
        self.study
            .attrs
            .pointer("/study/metric")
            .and_then(|m| m.as_str())
            .unwrap_or("value")
            .to_string()
    }

    pub fn complete(&self) -> impl Iterator<Item = &FrozenTrial> {
        self.trials
            .iter()
            .filter(|t| t.state == TrialState::Complete && t.value.is_some_and(f64::is_finite))
    }
}

/// The header of a study page.
#[derive(Clone, Debug, Serialize)]
pub struct StudyOverview {
    pub name: String,
    pub direction: Direction,
    pub metric: String,
    pub created_at: f64,
    pub trials: usize,
    pub complete: usize,
    pub pruned: usize,
    pub failed: usize,
    pub running: usize,
    pub waiting: usize,
    pub best: Option<BestTrial>,
    /// What the trials' training cost together (`None` until one recorded it).
    pub energy: Option<StudyEnergy>,
    /// An architecture search: the model that predicts on the least energy within half a point
    /// of the best (`None` until the best has its prediction energy measured).
    pub greenest: Option<crate::auto::Greenest>,
    /// True when trials carry a `genome` (an architecture search).
    pub architecture_search: bool,
    /// Changes whenever anything a plot shows changes (a new trial, a state, a reported
    /// epoch): the page redraws only then.
    pub revision: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct BestTrial {
    pub number: u64,
    pub value: f64,
    pub params: std::collections::BTreeMap<String, serde_json::Value>,
}

pub fn overview(data: &StudyData) -> StudyOverview {
    let count = |s: TrialState| data.trials.iter().filter(|t| t.state == s).count();
    let best = best_trial(&data.trials, data.direction()).map(|t| BestTrial {
        number: t.number,
        value: t.value.unwrap_or(f64::NAN),
        params: t
            .param_values()
            .into_iter()
            .map(|(k, v)| (k, v.to_json()))
            .collect(),
    });
    let steps: usize = data.trials.iter().map(|t| t.intermediate.len()).sum();
    let states: String = data
        .trials
        .iter()
        .map(|t| &t.state.name()[..1])
        .collect::<String>();
    StudyOverview {
        name: data.study.name.clone(),
        direction: data.direction(),
        metric: data.metric(),
        created_at: data.study.created_at,
        trials: data.trials.len(),
        complete: count(TrialState::Complete),
        pruned: count(TrialState::Pruned),
        failed: count(TrialState::Failed),
        running: count(TrialState::Running),
        waiting: count(TrialState::Waiting),
        best,
        energy: trials_energy(&data.trials),
        greenest: crate::auto::greenest_within(
            &crate::auto::arch_points(&data.trials),
            data.direction(),
            &data.metric(),
        ),
        architecture_search: data.trials.iter().any(|t| t.attrs.contains_key("genome")),
        revision: format!("{}-{steps}-{:x}", data.trials.len(), fingerprint(&states)),
    }
}

/// FNV-1a: a short, stable digest of the trials' states for [`StudyOverview::revision`].
fn fingerprint(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Everything a study page or report shows.
#[derive(Clone, Debug, Serialize)]
pub struct StudyReport {
    pub overview: StudyOverview,
    pub history: History,
    pub trials: TrialsTable,
    pub curves: LearningCurves,
    pub parallel: ParallelCoordinates,
    pub importance: Importance,
    pub pareto: ParetoFront,
    pub architectures: Vec<Architecture>,
    /// A regression study's best trial: validation predictions beside the truth.
    pub residuals: Option<Residuals>,
}

impl StudyReport {
    pub fn build(data: &StudyData) -> StudyReport {
        StudyReport {
            overview: overview(data),
            history: optimization_history(data),
            trials: trials_table(data),
            curves: learning_curves(data),
            parallel: parallel_coordinates(data),
            importance: param_importance(data),
            pareto: pareto_front(data),
            architectures: best_architectures(data, 3),
            residuals: best_residuals(data),
        }
    }
}

/// Numbers for axes and tables: short and readable (0.0123, 1.2e-5, 12,345).
pub(crate) fn short_number(x: f64) -> String {
    if x.is_finite() && x.fract() == 0.0 && x.abs() < 1e15 {
        return thousands(x as i64);
    }
    crate::record::format_float(x)
}

pub(crate) fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! Synthetic trials for the unit tests of every part.
    use std::collections::BTreeMap;

    use crate::search::{Direction, Distribution, FrozenTrial, ParamRecord, TrialState};
    use crate::store::StudyRecord;

    use super::StudyData;

    pub fn trial(number: u64, state: TrialState, value: Option<f64>) -> FrozenTrial {
        FrozenTrial {
            id: number as i64 + 1,
            number,
            state,
            params: BTreeMap::new(),
            value,
            intermediate: BTreeMap::new(),
            attrs: BTreeMap::new(),
            started_at: Some(100.0 + number as f64),
            finished_at: state.is_finished().then_some(101.5 + number as f64),
            heartbeat_at: None,
            owner: None,
            error: None,
        }
    }

    pub fn with_param(
        mut t: FrozenTrial,
        name: &str,
        d: Distribution,
        internal: f64,
    ) -> FrozenTrial {
        t.params.insert(
            name.into(),
            ParamRecord {
                distribution: d,
                internal,
            },
        );
        t
    }

    pub fn study(direction: Direction, trials: Vec<FrozenTrial>) -> StudyData {
        StudyData {
            study: StudyRecord {
                id: 1,
                name: "s".into(),
                direction,
                attrs: serde_json::json!({"study": {"metric": "val_accuracy"}}),
                created_at: 0.0,
            },
            trials,
        }
    }
}
