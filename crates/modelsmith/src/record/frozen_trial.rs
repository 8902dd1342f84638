//! What a study remembers about each trial: the records storages keep and samplers and
//! pruners read. A finished trial (complete, pruned or failed) never changes again.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::distribution::{Distribution, ParamValue};
use super::Direction;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrialState {
    /// Enqueued (e.g. a retry of a failed trial) with fixed parameters; not yet claimed.
    Waiting,
    Running,
    Complete,
    Pruned,
    Failed,
}

impl TrialState {
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            TrialState::Complete | TrialState::Pruned | TrialState::Failed
        )
    }

    pub fn name(self) -> &'static str {
        match self {
            TrialState::Waiting => "waiting",
            TrialState::Running => "running",
            TrialState::Complete => "complete",
            TrialState::Pruned => "pruned",
            TrialState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<TrialState> {
        Some(match s {
            "waiting" => TrialState::Waiting,
            "running" => TrialState::Running,
            "complete" => TrialState::Complete,
            "pruned" => TrialState::Pruned,
            "failed" => TrialState::Failed,
            _ => return None,
        })
    }
}

/// One sampled parameter: where it was drawn from and the internal value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ParamRecord {
    pub distribution: Distribution,
    pub internal: f64,
}

impl ParamRecord {
    pub fn value(&self) -> ParamValue {
        self.distribution.to_external(self.internal)
    }
}

/// The process that runs a trial, so that another process can tell a trial whose worker died
/// (marked failed) from one still running.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    pub host: String,
    pub pid: u32,
    /// The process's start time as the OS reports it (guards against reused pids); 0 if unknown.
    pub start_ticks: u64,
}

/// A trial as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FrozenTrial {
    /// Storage-wide identifier.
    pub id: i64,
    /// 0, 1, 2, … within the study, never reused.
    pub number: u64,
    pub state: TrialState,
    pub params: BTreeMap<String, ParamRecord>,
    /// The objective's value (complete trials; pruned ones keep their last reported value).
    pub value: Option<f64>,
    /// Values reported during the trial by step (epoch).
    pub intermediate: BTreeMap<u32, f64>,
    /// Free-form JSON: the ModelSpec, the seed, the training report, `retry_of`, …
    pub attrs: BTreeMap<String, serde_json::Value>,
    /// Unix seconds.
    pub started_at: Option<f64>,
    pub finished_at: Option<f64>,
    pub heartbeat_at: Option<f64>,
    pub owner: Option<Owner>,
    /// Why a trial failed.
    pub error: Option<String>,
}

impl FrozenTrial {
    /// Parameters as the objective saw them.
    pub fn param_values(&self) -> BTreeMap<String, ParamValue> {
        self.params
            .iter()
            .map(|(k, p)| (k.clone(), p.value()))
            .collect()
    }

    /// The last reported intermediate value and its step.
    pub fn last_intermediate(&self) -> Option<(u32, f64)> {
        self.intermediate.iter().next_back().map(|(s, v)| (*s, *v))
    }

    pub fn duration_seconds(&self) -> Option<f64> {
        Some(self.finished_at? - self.started_at?)
    }
}

/// Seconds since the Unix epoch.
pub fn now_unix() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The best finished trial in a list (complete trials only).
pub fn best_trial(trials: &[FrozenTrial], direction: Direction) -> Option<&FrozenTrial> {
    trials
        .iter()
        .filter(|t| t.state == TrialState::Complete)
        .filter(|t| t.value.is_some_and(f64::is_finite))
        .fold(None, |best: Option<&FrozenTrial>, t| match best {
            Some(b) if !direction.better(t.value.unwrap(), b.value.unwrap()) => Some(b),
            _ => Some(t),
        })
}
