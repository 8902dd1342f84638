//! Per-epoch checkpoints for `--resume`, and `metrics.jsonl`.
//!
//! A checkpoint is `checkpoint/state.json` (epoch, step, scheduler, early stopping and batch-size
//! state, the epoch history, and the name of its weights file) plus
//! `checkpoint/weights-<epoch>.safetensors` (current weights, the best epoch's weights under
//! `best.`, the optimizer's slots under `optimizer.`). The new weights file is written first, then
//! `state.json` is replaced atomically to point at it, and only then is the previous weights file
//! removed: a crash at any point leaves a state file and the weights it names.

use std::io::Write;
use std::path::Path;

use modelsmith_engine::optim::{Optimizer, OptimizerState};
use modelsmith_engine::Network;
use serde::{Deserialize, Serialize};

use super::batch_schedule::BatchSizer;
use super::early_stopping::EarlyStopper;
use super::observer::EpochMetrics;
use super::schedule::LrScheduler;
use super::TrainConfig;
use crate::model::{load_weights, read_weights_file, write_weights_file, WeightSnapshot};
use crate::{Error, Result};

const STATE_FILE: &str = "state.json";
const CHECKPOINT_VERSION: u32 = 1;

/// Training state besides tensors.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Checkpoint {
    pub epoch: u32,
    pub step: u64,
    pub stopped_early: bool,
    pub scheduler: LrScheduler,
    pub stopper: EarlyStopper,
    pub batch_sizer: BatchSizer,
    pub history: Vec<EpochMetrics>,
}

#[derive(Serialize, Deserialize)]
struct StateFile {
    version: u32,
    config: TrainConfig,
    optimizer_kind: String,
    optimizer_iterations: u64,
    has_best: bool,
    /// The weights file of this checkpoint, beside `state.json`.
    weights_file: String,
    checkpoint: Checkpoint,
}

impl Checkpoint {
    pub fn save(
        &self,
        out: &Path,
        config: &TrainConfig,
        net: &Network,
        optimizer: &Optimizer,
        best: &WeightSnapshot,
    ) -> Result<()> {
        let dir = out.join("checkpoint");
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let opt = optimizer.state();
        let mut extra: Vec<(String, Vec<usize>, &[f32])> = opt
            .tensors
            .iter()
            .map(|(name, v)| (format!("optimizer.{name}"), vec![v.len()], v.as_slice()))
            .collect();
        let best_values = best.named(net);
        extra.extend(
            best_values
                .iter()
                .map(|(name, v)| (format!("best.{name}"), vec![v.len()], *v)),
        );
        let weights_file = format!("weights-{}.safetensors", self.epoch);
        write_weights_file(&dir.join(&weights_file), net, &extra)?;
        let state = StateFile {
            version: CHECKPOINT_VERSION,
            config: config.clone(),
            optimizer_kind: opt.kind,
            optimizer_iterations: opt.iterations,
            has_best: !best.is_empty(),
            weights_file: weights_file.clone(),
            checkpoint: self.clone(),
        };
        let json = serde_json::to_vec_pretty(&state).expect("checkpoint state serializes");
        crate::model::write_atomic_file(&dir.join(STATE_FILE), &json)?;
        // Older weights are no longer referenced; failing to remove one only wastes disk.
        let entries = std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))?;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with("weights-")
                && name.ends_with(".safetensors")
                && name != weights_file
            {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(())
    }

    /// Loads the checkpoint in `out` into `net`, `optimizer` and `best`. The stored config must
    /// match `config` except for `epochs` (which may be raised to train longer) and `device`.
    pub fn load(
        out: &Path,
        config: &TrainConfig,
        net: &mut Network,
        optimizer: &mut Optimizer,
        best: &mut WeightSnapshot,
    ) -> Result<Checkpoint> {
        let dir = out.join("checkpoint");
        let state_path = dir.join(STATE_FILE);
        let text = std::fs::read_to_string(&state_path).map_err(|_| {
            Error::Config(format!(
                "--resume: no checkpoint at {} (train without --resume first)",
                state_path.display()
            ))
        })?;
        let state: StateFile = serde_json::from_str(&text).map_err(|e| {
            Error::Config(format!("{}: corrupt checkpoint: {e}", state_path.display()))
        })?;
        let mut stored = state.config.clone();
        stored.epochs = config.epochs;
        // The device changes where training runs, not what it computes.
        stored.device = config.device;
        if stored != *config {
            return Err(Error::Config(format!(
                "--resume: the settings differ from the checkpoint's in {}; only epochs may change",
                state_path.display()
            )));
        }
        let weights_path = dir.join(&state.weights_file);
        let tensors = read_weights_file(&weights_path)?;
        load_weights(net, &tensors, &weights_path)?;
        let prefix = |p: &str| {
            tensors
                .iter()
                .filter_map(|(name, (_, v))| {
                    name.strip_prefix(p)
                        .map(|rest| (rest.to_string(), v.clone()))
                })
                .collect::<Vec<_>>()
        };
        optimizer
            .load_state(OptimizerState {
                kind: state.optimizer_kind,
                iterations: state.optimizer_iterations,
                tensors: prefix("optimizer."),
            })
            .map_err(|e| Error::Config(format!("{}: {e}", weights_path.display())))?;
        if state.has_best {
            let best_tensors = prefix("best.");
            *best = WeightSnapshot::from_named(net, &best_tensors)
                .map_err(|e| Error::Config(format!("{}: {e}", weights_path.display())))?;
        }
        Ok(state.checkpoint)
    }
}

/// Rewrites `metrics.jsonl` with `history` (one JSON object per line).
pub fn write_metrics(path: &Path, history: &[EpochMetrics]) -> Result<()> {
    let mut text = String::new();
    for m in history {
        text.push_str(&serde_json::to_string(m).expect("metrics serialize"));
        text.push('\n');
    }
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}

pub fn append_metrics(path: &Path, m: &EpochMetrics) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    writeln!(
        f,
        "{}",
        serde_json::to_string(m).expect("metrics serialize")
    )
    .map_err(|e| Error::io(path, e))
}
