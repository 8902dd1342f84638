//! `GET /api/studies/NAME/explanation`: what the study's best trial's model looks at — the
//! section the report and the model card show (`modelsmith::explain::looks_at` on the model's
//! held-out data), as HTML with the class maps inlined as PNG data URIs.
//!
//! Explaining takes a second or two of CPU on the machine the dashboard runs on (often the one
//! training), so each best trial's model is explained once and kept, and one explanation is
//! computed at a time however many pages ask.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine as _;
use modelsmith::explain::looks_at;
use modelsmith::report::{self, write::looks_at_html, StudyData};
use serde::Serialize;

use crate::api::{json, read, ApiError};
use crate::AppState;

/// The explanations made so far, by model folder and best trial, and the lock that makes them
/// one at a time.
#[derive(Default)]
pub struct Explanations {
    /// Where the storage the dashboard reads lives (`sqlite:PATH`): `auto` keeps trial models
    /// beside that file.
    storage_url: String,
    done: Mutex<HashMap<(PathBuf, u64), Arc<Explained>>>,
    computing: Mutex<()>,
}

impl Explanations {
    pub fn new(storage_url: &str) -> Explanations {
        Explanations {
            storage_url: storage_url.to_string(),
            ..Default::default()
        }
    }

    fn cached(&self, key: &(PathBuf, u64)) -> Option<Arc<Explained>> {
        let done = self.done.lock().unwrap_or_else(|p| p.into_inner());
        done.get(key).cloned()
    }

    /// The explanation of the model in `dir` (trial `trial`), made now unless it was before.
    fn explain(&self, dir: PathBuf, trial: u64) -> Arc<Explained> {
        let key = (dir, trial);
        if let Some(found) = self.cached(&key) {
            return found;
        }
        let _one_at_a_time = self.computing.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(found) = self.cached(&key) {
            return found;
        }
        let made = Arc::new(match explain_model(&key.0) {
            Ok(html) => Explained::Html(html),
            Err(e) => Explained::Failed(format!(
                "explaining the best trial's model ({}) failed: {e}",
                key.0.display()
            )),
        });
        let mut done = self.done.lock().unwrap_or_else(|p| p.into_inner());
        done.insert(key, Arc::clone(&made));
        made
    }
}

enum Explained {
    Html(String),
    Failed(String),
}

#[derive(Serialize)]
struct Body<'a> {
    /// The best trial's number.
    trial: u64,
    /// Its model folder.
    model: String,
    /// The "What the model looks at" section.
    html: &'a str,
}

/// The study's best trial's model, explained; 404 when the study or the model is not there.
pub async fn best_model(
    State(state): State<AppState>,
    UrlPath(name): UrlPath<String>,
) -> Result<Response, ApiError> {
    let data = read(&state.storage, move |s| StudyData::load(s, &name)).await?;
    let explanations = Arc::clone(&state.explanations);
    let (trial, dir) =
        report::best_trial_model(&data, &explanations.storage_url).map_err(ApiError::not_found)?;
    let model = dir.display().to_string();
    let explained = tokio::task::spawn_blocking(move || explanations.explain(dir, trial))
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("explaining the model failed: {e}"),
            )
        })?;
    match explained.as_ref() {
        Explained::Html(html) => Ok(json(&Body { trial, model, html })),
        // The model folder is there but cannot be explained here (its data is missing on this
        // machine, a corrupt file): the page shows why.
        Explained::Failed(message) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            message.clone(),
        )),
    }
}

/// The model's "What the model looks at" section, class maps inlined.
fn explain_model(dir: &Path) -> Result<String, String> {
    let doc = tempfile::tempdir().map_err(|e| format!("cannot make a temporary folder: {e}"))?;
    let mut found = looks_at(dir, doc.path()).map_err(|e| e.to_string())?;
    for map in &mut found.maps {
        let path = doc.path().join(&*map);
        let png = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        *map = format!(
            "data:image/png;base64,{}",
            base64::engine::general_purpose::STANDARD.encode(png)
        );
    }
    Ok(looks_at_html(&found))
}
