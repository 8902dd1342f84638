//! The model folder a trial left behind, wherever the command that ran it keeps them: what the
//! dashboard explains for a study's best trial.

use std::path::PathBuf;

use super::StudyData;
use crate::auto::{Artifacts, WEIGHTS_ATTR};
use crate::search::{best_trial, FrozenTrial};

/// `modelsmith tune --artifacts DIR` records each new best trial's folder (absolute) in this
/// trial attr.
pub const ARTIFACT_ATTR: &str = "artifact";

/// The saved model folder of `trial` of a study in the storage at `storage_url`, if it still
/// holds a model: `tune --artifacts` names it in the trial's `artifact` attr; `auto` keeps
/// `trial-N/` (its `weights` attr) under `<storage file>.artifacts/<study>/`.
pub fn trial_model_dir(trial: &FrozenTrial, storage_url: &str, study: &str) -> Option<PathBuf> {
    let dir = match trial.attrs.get(ARTIFACT_ATTR).and_then(|a| a.as_str()) {
        Some(dir) => PathBuf::from(dir),
        None => {
            let folder = trial.attrs.get(WEIGHTS_ATTR)?.as_str()?;
            Artifacts::dir_for_storage(storage_url, study)?.join(folder)
        }
    };
    dir.join("model.json").is_file().then_some(dir)
}

/// The study's best trial and its model folder, or why there is none to show (one line).
pub fn best_trial_model(data: &StudyData, storage_url: &str) -> Result<(u64, PathBuf), String> {
    let name = &data.study.name;
    let best = best_trial(&data.trials, data.direction())
        .ok_or_else(|| format!("study '{name}' has no complete trial yet"))?;
    trial_model_dir(best, storage_url, name)
        .map(|dir| (best.number, dir))
        .ok_or_else(|| {
            format!(
                "the best trial ({}) of study '{name}' kept no model folder here (`modelsmith \
                 tune` keeps its best trials' models with --artifacts DIR; `modelsmith auto` \
                 beside a SQLite storage)",
                best.number
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::testing::{study, trial};
    use crate::search::{Direction, TrialState};

    #[test]
    fn finds_the_folders_tune_and_auto_keep() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("s.db");
        let url = format!("sqlite:{}", db.display());
        // auto: trial-N/ under <file>.artifacts/<study>/, named by the `weights` attr.
        let auto_dir = dir.path().join("s.db.artifacts/s/trial-1");
        // tune --artifacts: an absolute folder in the `artifact` attr.
        let tune_dir = dir.path().join("arts/trial-00002");
        for d in [&auto_dir, &tune_dir] {
            std::fs::create_dir_all(d).unwrap();
            std::fs::write(d.join("model.json"), "{}").unwrap();
        }
        let mut a = trial(1, TrialState::Complete, Some(0.9));
        a.attrs.insert(WEIGHTS_ATTR.into(), "trial-1".into());
        let mut t = trial(2, TrialState::Complete, Some(0.95));
        t.attrs
            .insert(ARTIFACT_ATTR.into(), tune_dir.display().to_string().into());
        let none = trial(3, TrialState::Complete, Some(0.97));
        assert_eq!(trial_model_dir(&a, &url, "s"), Some(auto_dir.clone()));
        assert_eq!(trial_model_dir(&t, &url, "s"), Some(tune_dir.clone()));
        assert_eq!(trial_model_dir(&none, &url, "s"), None);
        // Not beside a file (PostgreSQL): only an absolute folder can be found.
        assert_eq!(trial_model_dir(&a, "postgresql://h/db", "s"), None);

        let data = study(Direction::Maximize, vec![a.clone(), t.clone()]);
        assert_eq!(best_trial_model(&data, &url), Ok((2, tune_dir.clone())));
        let data = study(Direction::Minimize, vec![a, t, none]);
        assert_eq!(best_trial_model(&data, &url), Ok((1, auto_dir)));
        let data = study(Direction::Maximize, data.trials);
        let why = best_trial_model(&data, &url).unwrap_err();
        assert!(
            why.contains("best trial (3)") && why.contains("--artifacts"),
            "{why}"
        );
        // A folder removed since: nothing to show.
        std::fs::remove_dir_all(&tune_dir).unwrap();
        let data = study(Direction::Maximize, data.trials[..2].to_vec());
        assert!(best_trial_model(&data, &url).is_err());
        let empty = study(Direction::Maximize, vec![]);
        assert!(best_trial_model(&empty, &url)
            .unwrap_err()
            .contains("no complete trial"));
    }
}
