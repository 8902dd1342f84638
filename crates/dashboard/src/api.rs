//! The JSON endpoints. Errors are `{"error": "..."}`: 404 for an unknown study, part or plot,
//! 500 when the storage fails.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use modelsmith::report::{self, plots, ReportError, StudyData};
use modelsmith::store::Storage;

type Shared = State<Arc<dyn Storage>>;

pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: String) -> ApiError {
        ApiError { status, message }
    }

    pub fn not_found(message: String) -> ApiError {
        ApiError {
            status: StatusCode::NOT_FOUND,
            message,
        }
    }
}

impl From<ReportError> for ApiError {
    fn from(e: ReportError) -> Self {
        let status = match e {
            ReportError::UnknownStudy(_) => StatusCode::NOT_FOUND,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError {
            status,
            message: e.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!("dashboard: {}", self.message);
        }
        (
            self.status,
            Json(serde_json::json!({ "error": self.message })),
        )
            .into_response()
    }
}

/// Runs a storage read on the blocking pool (SQLite calls block).
pub(crate) async fn read<T: Send + 'static>(
    storage: &Arc<dyn Storage>,
    f: impl FnOnce(&dyn Storage) -> Result<T, ReportError> + Send + 'static,
) -> Result<T, ApiError> {
    let storage = Arc::clone(storage);
    tokio::task::spawn_blocking(move || f(storage.as_ref()))
        .await
        .map_err(|e| ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: format!("reading the study failed: {e}"),
        })?
        .map_err(ApiError::from)
}

async fn load(storage: &Arc<dyn Storage>, name: String) -> Result<StudyData, ApiError> {
    read(storage, move |s| StudyData::load(s, &name)).await
}

pub(crate) fn json<T: serde::Serialize>(value: &T) -> Response {
    // NaN/infinity cannot be JSON: serde_json writes them as null, which the page treats as missing.
    Json(value).into_response()
}

pub async fn studies(State(storage): Shared) -> Result<Response, ApiError> {
    let list = read(&storage, |s| Ok(s.list_studies()?)).await?;
    Ok(json(&list))
}

pub async fn overview(
    State(storage): Shared,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let data = load(&storage, name).await?;
    Ok(json(&report::overview(&data)))
}

/// One part of the study's data, or `plots` (every plot's SVG, for the page).
pub async fn part(
    State(storage): Shared,
    Path((name, part)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let data = load(&storage, name).await?;
    // Importance fits a forest: keep it (and the rest) off the async threads.
    let response = tokio::task::spawn_blocking(move || match part.as_str() {
        "history" => Some(json(&report::optimization_history(&data))),
        "trials" => Some(json(&report::trials_table(&data))),
        "curves" => Some(json(&report::learning_curves(&data))),
        "parallel" => Some(json(&report::parallel_coordinates(&data))),
        "importance" => Some(json(&report::param_importance(&data))),
        "pareto" => Some(json(&report::pareto_front(&data))),
        "architectures" => Some(json(&report::best_architectures(&data, 3))),
        "report" => Some(json(&report::StudyReport::build(&data))),
        "plots" => Some(json(&plots::all_plots(&report::StudyReport::build(&data)))),
        _ => None,
    })
    .await
    .map_err(|e| ApiError {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        message: format!("building the study's data failed: {e}"),
    })?;
    response.ok_or_else(|| {
        ApiError::not_found(
            "no such part; use history, trials, curves, parallel, importance, pareto, \
             architectures, report or plots"
                .into(),
        )
    })
}

/// One plot as an SVG document (`/api/studies/NAME/plots/history.svg`).
pub async fn plot(
    State(storage): Shared,
    Path((name, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let data = load(&storage, name).await?;
    let id = id.strip_suffix(".svg").unwrap_or(&id).to_string();
    let plots =
        tokio::task::spawn_blocking(move || plots::all_plots(&report::StudyReport::build(&data)))
            .await
            .map_err(|e| ApiError {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                message: format!("drawing the plots failed: {e}"),
            })?;
    let ids: Vec<String> = plots.iter().map(|p| p.id.clone()).collect();
    let plot = plots.into_iter().find(|p| p.id == id).ok_or_else(|| {
        ApiError::not_found(format!(
            "no plot '{id}' for this study (it has: {})",
            ids.join(", ")
        ))
    })?;
    Ok(([(header::CONTENT_TYPE, "image/svg+xml")], plot.svg).into_response())
}

pub async fn not_found(uri: Uri) -> ApiError {
    ApiError::not_found(format!(
        "no page at {}; see /, /study/NAME, /api/studies, /api/studies/NAME[/PART], \
         /api/studies/NAME/explanation",
        uri.path()
    ))
}
