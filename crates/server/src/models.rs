//! The models a server holds: each loaded once, named, with its own batching worker.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use modelsmith::model::ModelMeta;
use modelsmith::predict::Predictor;

use crate::batcher::{BatchConfig, Batcher};
use crate::error::ServeError;
use crate::metrics::Metrics;

/// A model folder to serve and the name clients use for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelSource {
    pub name: String,
    pub dir: PathBuf,
}

impl ModelSource {
    /// Named after the folder's last path component (`runs/digits` → `digits`).
    pub fn from_dir(dir: &Path) -> ModelSource {
        let name = dir
            .canonicalize()
            .unwrap_or_else(|_| dir.to_path_buf())
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model".to_string());
        ModelSource {
            name,
            dir: dir.to_path_buf(),
        }
    }

    /// Every subfolder of `repo` holding a `model.json` (a model repository, as in Triton),
    /// sorted by name.
    pub fn scan_repository(repo: &Path) -> Result<Vec<ModelSource>, ServeError> {
        let repo_error = |message: String| ServeError::Repository {
            dir: repo.to_path_buf(),
            message,
        };
        let entries = std::fs::read_dir(repo).map_err(|e| repo_error(e.to_string()))?;
        let mut sources = Vec::new();
        for entry in entries {
            let path = entry.map_err(|e| repo_error(e.to_string()))?.path();
            if path.join("model.json").is_file() {
                sources.push(ModelSource::from_dir(&path));
            }
        }
        if sources.is_empty() {
            return Err(repo_error(
                "no subfolder holds a model.json; put one model folder per subfolder".into(),
            ));
        }
        sources.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(sources)
    }
}

/// One served model: its metadata (read by handlers) and its batching worker.
pub struct ServedModel {
    pub name: String,
    pub meta: ModelMeta,
    pub batcher: Batcher,
    /// The model folder, from which `/explain` loads its own copy of the network.
    pub dir: std::path::PathBuf,
    /// That copy, loaded on the first explanation (a served model that is never explained
    /// costs no second network).
    pub explainer: std::sync::Mutex<Option<modelsmith::explain::Explainer>>,
}

impl ServedModel {
    /// Values per example.
    pub fn input_len(&self) -> usize {
        self.meta.input_shape.iter().product()
    }

    /// The input's and the output's shapes as the protocol's metadata gives them, -1 marking
    /// the dynamic batch axis (HTTP and gRPC alike).
    pub fn tensor_shapes(&self) -> (Vec<i64>, Vec<i64>) {
        let mut input = vec![-1];
        input.extend(self.meta.input_shape.iter().map(|&d| d as i64));
        (input, vec![-1, self.meta.outputs as i64])
    }
}

/// The served models by name.
pub struct Models {
    by_name: BTreeMap<String, Arc<ServedModel>>,
}

impl Models {
    /// Loads every source and starts its batching worker. Names must be unique.
    pub fn load(
        sources: &[ModelSource],
        batch: BatchConfig,
        device: modelsmith::train::Device,
        metrics: &Metrics,
    ) -> Result<Models, ServeError> {
        if sources.is_empty() {
            return Err(ServeError::Config("no model to serve".into()));
        }
        if batch.max_batch == 0 {
            return Err(ServeError::Config("--max-batch must be at least 1".into()));
        }
        let mut by_name = BTreeMap::new();
        let mut dirs: BTreeMap<&str, &Path> = BTreeMap::new();
        for source in sources {
            if let Some(first) = dirs.insert(&source.name, &source.dir) {
                return Err(ServeError::DuplicateName {
                    name: source.name.clone(),
                    first: first.to_path_buf(),
                    second: source.dir.clone(),
                });
            }
            let predictor = Predictor::load(&source.dir)
                .and_then(|mut p| p.use_device(device).map(|()| p))
                .map_err(|e| ServeError::Model {
                    name: source.name.clone(),
                    dir: source.dir.clone(),
                    error: Box::new(e),
                })?;
            let meta = predictor.meta.clone();
            let batcher = Batcher::start(
                predictor,
                batch,
                metrics.for_model(&source.name),
                format!("batch-{}", source.name),
            )?;
            let model = ServedModel {
                name: source.name.clone(),
                meta,
                batcher,
                dir: source.dir.clone(),
                explainer: std::sync::Mutex::new(None),
            };
            by_name.insert(source.name.clone(), Arc::new(model));
        }
        Ok(Models { by_name })
    }

    pub fn get(&self, name: &str) -> Option<&Arc<ServedModel>> {
        self.by_name.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// The model `/predict` uses: the one named, or the only one served.
    pub fn pick(&self, name: Option<&str>) -> Result<&Arc<ServedModel>, crate::error::ApiError> {
        match name {
            Some(name) => self.get(name).ok_or_else(|| self.unknown(name)),
            None if self.by_name.len() == 1 => Ok(self.by_name.values().next().expect("one model")),
            None => Err(crate::error::ApiError::bad_request(format!(
                "several models are served ({}); name one with ?model=NAME",
                self.names().collect::<Vec<_>>().join(", ")
            ))),
        }
    }

    /// The model `name` at `version` (`None` or empty: its one version,
    /// [`crate::kserve::MODEL_VERSION`]), or the 404 naming what is missing.
    pub fn versioned(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> Result<&Arc<ServedModel>, crate::error::ApiError> {
        let model = self.get(name).ok_or_else(|| self.unknown(name))?;
        match version {
            None | Some("") | Some(crate::kserve::MODEL_VERSION) => Ok(model),
            Some(other) => Err(crate::error::ApiError::not_found(format!(
                "model '{name}' has no version '{other}'; its only version is {}",
                crate::kserve::MODEL_VERSION
            ))),
        }
    }

    /// The 404 for a name no model has.
    pub fn unknown(&self, name: &str) -> crate::error::ApiError {
        crate::error::ApiError::not_found(format!(
            "unknown model '{name}'; this server has: {}",
            self.names().collect::<Vec<_>>().join(", ")
        ))
    }
}
