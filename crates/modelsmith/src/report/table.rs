//! The trials table: one row per trial, parameters as columns.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::StudyData;
use crate::search::TrialState;

#[derive(Clone, Debug, Serialize)]
pub struct TrialsTable {
    /// Every parameter name any trial has (the columns), sorted.
    pub params: Vec<String>,
    pub rows: Vec<TrialRow>,
}

#[derive(Clone, Debug, Serialize)]
pub struct TrialRow {
    pub number: u64,
    pub state: TrialState,
    pub value: Option<f64>,
    /// Parameter values as the objective saw them (absent: a conditional parameter not drawn).
    pub params: BTreeMap<String, serde_json::Value>,
    /// Epochs reported so far.
    pub steps: usize,
    pub duration_seconds: Option<f64>,
    pub started_at: Option<f64>,
    pub error: Option<String>,
    /// Architecture searches: the mutation that made this trial's genome.
    pub mutation: Option<String>,
    /// The energy its training used (measured or estimated, as the study's overview says).
    pub energy_joules: Option<f64>,
}

pub fn trials_table(data: &StudyData) -> TrialsTable {
    let params: BTreeSet<String> = data
        .trials
        .iter()
        .flat_map(|t| t.params.keys().cloned())
        .collect();
    let rows = data
        .trials
        .iter()
        .map(|t| TrialRow {
            number: t.number,
            state: t.state,
            value: t.value.filter(|v| v.is_finite()),
            params: t
                .param_values()
                .into_iter()
                .map(|(k, v)| (k, v.to_json()))
                .collect(),
            steps: t.intermediate.len(),
            duration_seconds: t.duration_seconds(),
            started_at: t.started_at,
            error: t.error.clone(),
            mutation: t.attrs.get("mutation").map(|m| match m {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            }),
            energy_joules: super::trial_joules(t),
        })
        .collect();
    TrialsTable {
        params: params.into_iter().collect(),
        rows,
    }
}
