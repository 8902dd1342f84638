//! Where a search keeps each trial's trained model, so that any worker (another thread,
//! another process on the same storage) can start a child from its parent's weights.
//!
//! Each trial that completes leaves a model folder `trial-N/` (`model.json`,
//! `weights.safetensors`, `metrics.jsonl`, `spec.json`) under the study's artifact directory:
//! `<storage file>.artifacts/<study>/` for SQLite storage. Folders of trials the strategy will
//! never use again are deleted after every trial, so the disk holds a handful of models.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::search::FrozenTrial;
use crate::{Error, Result};

/// The trial attr naming a trial's model folder (relative to the artifact directory).
pub const WEIGHTS_ATTR: &str = "weights";

#[derive(Clone, Debug)]
pub struct Artifacts {
    root: PathBuf,
}

impl Artifacts {
    pub fn new(root: PathBuf) -> Result<Artifacts> {
        std::fs::create_dir_all(&root)
            .map_err(|e| Error::io(&root, format!("cannot create artifact folder: {e}")))?;
        Ok(Artifacts { root })
    }

    /// `<file>.artifacts/<study>` for `sqlite:FILE` (or a bare `.db` path); `None` for storages
    /// without a file (the caller picks a temporary folder).
    pub fn dir_for_storage(url: &str, study: &str) -> Option<PathBuf> {
        let file = url
            .strip_prefix("sqlite:")
            .map(|p| p.strip_prefix("//").unwrap_or(p))
            .or_else(|| (url.ends_with(".db") && !url.contains("://")).then_some(url))?;
        let mut dir = PathBuf::from(file).into_os_string();
        dir.push(".artifacts");
        Some(PathBuf::from(dir).join(study))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn folder_name(number: u64) -> String {
        format!("trial-{number}")
    }

    pub fn trial_dir(&self, number: u64) -> PathBuf {
        self.root.join(Self::folder_name(number))
    }

    /// The trial's weights file, named by its attr (so a later layout change still finds old
    /// trials); `None` when the trial kept no weights.
    pub fn weights_of(&self, trial: &FrozenTrial) -> Option<PathBuf> {
        let folder = trial.attrs.get(WEIGHTS_ATTR)?.as_str()?;
        Some(self.root.join(folder).join("weights.safetensors"))
    }

    /// The trial's model folder, when it still holds a saved model.
    pub fn trial_model_dir(&self, trial: &FrozenTrial) -> Option<PathBuf> {
        let folder = trial.attrs.get(WEIGHTS_ATTR)?.as_str()?;
        let dir = self.root.join(folder);
        dir.join("model.json").exists().then_some(dir)
    }

    /// Removes a trial's folder (a pruned or failed trial, or one no longer needed).
    pub fn remove(&self, number: u64) {
        let _ = std::fs::remove_dir_all(self.trial_dir(number));
    }

    /// Deletes the folder of every finished trial not in `keep`. Running trials (another
    /// worker's, still training) are left alone.
    pub fn prune(&self, trials: &[FrozenTrial], keep: &BTreeSet<u64>) {
        for t in trials {
            if t.state.is_finished() && !keep.contains(&t.number) {
                let dir = self.trial_dir(t.number);
                if dir.exists() {
                    self.remove(t.number);
                }
            }
        }
    }
}
