//! The tune config: what to search (`[space]`), how (`[study]`, `[pruner]`), and the fixed
//! training settings every trial starts from (`[train]`, the same fields as `train --config`).

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::search::pruner::PrunerConfig;
use crate::search::sampler::SAMPLERS;
use crate::search::{ParamValue, SearchSpace};
use crate::task::{Metric, Task};
use crate::train::TrainConfig;
use crate::{Error, Result};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TuneConfig {
    pub study: StudySettings,
    pub pruner: PrunerConfig,
    pub train: TrainConfig,
    /// Parameter name (a `[train]` field, dotted for nested ones: `augment.rotation_deg`)
    /// → its range, choices or fixed value. See [`SearchSpace`].
    pub space: toml::Table,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StudySettings {
    /// Defaults to the config file's name.
    pub name: Option<String>,
    /// The validation metric trials are judged on: `val_accuracy` or `val_loss` for classes,
    /// `val_rmse`, `val_mae`, `val_r2` or `val_loss` for values. Unset: the task's default
    /// (`val_accuracy`, `val_rmse`), fixed in the study when it is created.
    pub metric: Option<Metric>,
    /// The study's target number of trials that did not fail (earlier runs count).
    pub trials: u64,
    /// Start no new trial after this long: `90s`, `10m`, `1h30m`.
    pub timeout: Option<String>,
    /// `auto` (TPE), `tpe`, `gp`, `random` or `grid`.
    pub sampler: String,
    /// Values per continuous parameter for the grid sampler.
    pub grid_points: usize,
    pub seed: u64,
    /// Trials run in parallel by one process.
    pub jobs: usize,
    /// At the end, train the best trial's settings on train+validation and test it once.
    pub retrain: bool,
    /// How often a worker refreshes the heartbeat of the trial it runs.
    pub heartbeat: String,
    /// A running trial without a heartbeat for this long belongs to a dead (or cut-off)
    /// worker: another worker marks it failed.
    pub stale_after: String,
    /// Queue a retry (same parameters) of every trial reclaimed from a dead worker.
    pub retry_reclaimed: bool,
    /// A directory (shared, or local to each worker) where each worker copies the model
    /// folder of every trial that is the study's best when it finishes (`trial-NNNNN/`).
    pub artifacts: Option<std::path::PathBuf>,
}

impl Default for StudySettings {
    fn default() -> Self {
        StudySettings {
            name: None,
            metric: None,
            trials: 20,
            timeout: None,
            sampler: "auto".into(),
            grid_points: 5,
            seed: 0,
            jobs: 1,
            retrain: true,
            heartbeat: "10s".into(),
            stale_after: "2m".into(),
            retry_reclaimed: false,
            artifacts: None,
        }
    }
}

impl TuneConfig {
    /// The metric trials of `task` are judged on: `[study] metric`, else the task's default;
    /// one the task does not measure is an error.
    pub fn metric_for(&self, task: &Task) -> Result<Metric> {
        let metric = self.study.metric.unwrap_or(task.default_metric());
        metric
            .check_fits(task)
            .map_err(|m| Error::Config(format!("study.metric: {m}")))?;
        Ok(metric)
    }

    pub fn from_toml_file(path: &Path) -> Result<TuneConfig> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Config(format!("{}: cannot read config: {e}", path.display())))?;
        let mut config: TuneConfig = toml::from_str(&text).map_err(|e| {
            Error::Config(format!(
                "{}: invalid tune config: {}",
                path.display(),
                crate::model::one_line(&e.to_string())
            ))
        })?;
        if config.study.name.is_none() {
            config.study.name = path.file_stem().map(|s| s.to_string_lossy().into_owned());
        }
        Ok(config)
    }

    /// Parses and checks everything a run needs before the first trial: the space, the
    /// sampler and pruner names, and a probe training config built from the space (so a
    /// misspelt parameter or a wrong type fails now, not in every trial).
    pub fn validate(&self) -> Result<SearchSpace> {
        let bad = |m: String| Err(Error::Config(m));
        let space = SearchSpace::from_toml(&self.space).map_err(Error::Config)?;
        if !SAMPLERS.contains(&self.study.sampler.as_str()) {
            return bad(format!(
                "study.sampler: unknown sampler '{}' (expected one of {})",
                self.study.sampler,
                SAMPLERS.join(", ")
            ));
        }
        self.pruner
            .validate()
            .map_err(|m| Error::Config(format!("pruner: {m}")))?;
        if self.study.trials == 0 {
            return bad("study.trials: must be at least 1".into());
        }
        if self.study.jobs == 0 {
            return bad("study.jobs: must be at least 1".into());
        }
        if self.study.grid_points < 2 {
            return bad("study.grid_points: must be at least 2".into());
        }
        if let Some(t) = &self.study.timeout {
            parse_duration(t).map_err(|m| Error::Config(format!("study.timeout: {m}")))?;
        }
        let heartbeat = parse_duration(&self.study.heartbeat)
            .map_err(|m| Error::Config(format!("study.heartbeat: {m}")))?;
        let stale_after = parse_duration(&self.study.stale_after)
            .map_err(|m| Error::Config(format!("study.stale_after: {m}")))?;
        if heartbeat.is_zero() || stale_after < heartbeat * 2 {
            return bad(format!(
                "study.stale_after ({}) must be at least twice study.heartbeat ({}), \
                 or live workers would be taken for dead",
                self.study.stale_after, self.study.heartbeat
            ));
        }
        let probe = apply_params(&self.train, &space.probe_values())?;
        probe.validate()?;
        if probe.validation_split == 0.0 {
            return bad(
                "train.validation_split: a search selects on the validation split; it must be > 0"
                    .into(),
            );
        }
        Ok(space)
    }

    /// `study.heartbeat` and `study.stale_after` (checked by [`TuneConfig::validate`]).
    pub fn liveness(&self) -> (Duration, Duration) {
        let get = |t: &str, default| parse_duration(t).unwrap_or(Duration::from_secs(default));
        (
            get(&self.study.heartbeat, 10),
            get(&self.study.stale_after, 120),
        )
    }

    pub fn timeout(&self) -> Option<Duration> {
        self.study
            .timeout
            .as_deref()
            .and_then(|t| parse_duration(t).ok())
    }
}

/// The base training config with `params` set (dotted names reach nested tables). Unknown
/// names and wrong types are errors naming the parameter.
pub fn apply_params(
    base: &TrainConfig,
    params: &std::collections::BTreeMap<String, ParamValue>,
) -> Result<TrainConfig> {
    let mut json = serde_json::to_value(base).expect("configs serialize");
    for (name, value) in params {
        let mut node = &mut json;
        let parts: Vec<&str> = name.split('.').collect();
        for (i, part) in parts.iter().enumerate() {
            let serde_json::Value::Object(map) = node else {
                return Err(Error::Config(format!(
                    "space.{name}: '{}' is not a table of train settings",
                    parts[..i].join(".")
                )));
            };
            if i + 1 == parts.len() {
                map.insert(part.to_string(), value.to_json());
                break;
            }
            node = map
                .entry(part.to_string())
                .or_insert_with(|| serde_json::Value::Object(Default::default()));
        }
    }
    serde_json::from_value(json).map_err(|e| {
        let names: Vec<&str> = params.keys().map(String::as_str).collect();
        Error::Config(format!(
            "space: parameters [{}] do not fit the train settings: {e}",
            names.join(", ")
        ))
    })
}

/// `90`, `90s`, `10m`, `1h`, `1h30m`, `2.5h`.
pub fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let bad =
        || format!("cannot read duration '{text}' (examples: 90s, 10m, 10min, 1h30m, 2 hours)");
    let t = text.trim();
    if t.is_empty() {
        return Err(bad());
    }
    if let Ok(secs) = t.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).map_err(|_| bad());
    }
    // Pairs of a number and a unit word, spaces allowed between and around them.
    let mut total = 0.0f64;
    let mut rest = t;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(bad());
        }
        let number: f64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = rest[digits..].trim_start();
        let letters = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let unit = match rest[..letters].to_ascii_lowercase().as_str() {
            "s" | "sec" | "secs" | "second" | "seconds" => 1.0,
            "m" | "min" | "mins" | "minute" | "minutes" => 60.0,
            "h" | "hr" | "hrs" | "hour" | "hours" => 3600.0,
            "d" | "day" | "days" => 86400.0,
            _ => return Err(bad()),
        };
        total += number * unit;
        rest = rest[letters..].trim_start();
    }
    Duration::try_from_secs_f64(total).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        for (text, secs) in [
            ("10min", 600),
            ("10 minutes", 600),
            ("1h 30m", 5400),
            ("2 hours", 7200),
            ("45sec", 45),
            ("1d", 86400),
            ("1.5h", 5400),
        ] {
            assert_eq!(
                parse_duration(text).unwrap(),
                Duration::from_secs(secs),
                "{text}"
            );
        }
        for bad in ["m", "-5", "10 fortnights", "10m5", "h1", "", "1e999h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn params_reach_nested_fields_and_typos_are_errors() {
        let base = TrainConfig::default();
        let params = [
            ("lr".to_string(), ParamValue::Float(0.003)),
            ("augment.rotation_deg".to_string(), ParamValue::Float(8.0)),
            ("batch_size".to_string(), ParamValue::Int(64)),
            ("optimizer".to_string(), ParamValue::Str("adam".into())),
        ]
        .into_iter()
        .collect();
        let c = apply_params(&base, &params).unwrap();
        assert_eq!(
            (c.lr, c.augment.rotation_deg, c.batch_size),
            (0.003, 8.0, 64)
        );
        assert_eq!(c.optimizer, "adam");
        let typo = [("learning_rate".to_string(), ParamValue::Float(0.1))]
            .into_iter()
            .collect();
        let err = apply_params(&base, &typo).unwrap_err().to_string();
        assert!(err.contains("learning_rate"), "{err}");
        let wrong_type = [("batch_size".to_string(), ParamValue::Float(0.5))]
            .into_iter()
            .collect();
        assert!(apply_params(&base, &wrong_type).is_err());
    }

    #[test]
    fn a_whole_config_validates() {
        let c: TuneConfig = toml::from_str(
            r#"
            [study]
            trials = 3
            sampler = "tpe"
            [pruner]
            kind = "asha"
            [train]
            model = "mlp"
            epochs = 2
            [space]
            lr = { low = 1e-4, high = 0.1, log = true }
            optimizer = { choices = ["sgd", "adam"] }
            momentum = { low = 0.5, high = 0.95, when = { optimizer = "sgd" } }
            "#,
        )
        .unwrap();
        let space = c.validate().unwrap();
        assert_eq!(space.params.len(), 3);
        let mut bad = c.clone();
        bad.study.sampler = "annealing".into();
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .contains("unknown sampler"));
        let mut bad = c.clone();
        bad.pruner.kind = "sometimes".into();
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .contains("unknown pruner"));
        let mut bad = c;
        bad.space.insert("lr".into(), toml::Value::Float(-1.0));
        assert!(bad.validate().unwrap_err().to_string().contains("lr"));
    }
}
