//! `modelsmith dashboard`: a web page over a study storage. The page (HTML, CSS and a small
//! JS module, embedded in the binary) lists studies and shows one study's plots, which are the
//! SVG documents `modelsmith::report::plots` draws — the same files `modelsmith report`
//! writes. The JS fetches JSON from `/api/...`, builds the sortable, filterable trials table,
//! and polls the study's `revision` every few seconds, redrawing only when it changed.
//!
//! The storage is opened read-only (`store::open_read_only`): in SQLite's WAL mode a reader
//! takes no lock a worker waits for. Every storage call runs on tokio's blocking pool.

mod api;
mod assets;

use std::future::Future;
use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use modelsmith::store::Storage;
use tokio::net::TcpListener;

/// The dashboard's routes over `storage`.
pub fn router(storage: Arc<dyn Storage>) -> Router {
    Router::new()
        .route("/", get(assets::page))
        .route("/study/{name}", get(assets::page))
        .route("/assets/{file}", get(assets::asset))
        .route("/api/studies", get(api::studies))
        .route("/api/studies/{name}", get(api::overview))
        .route("/api/studies/{name}/{part}", get(api::part))
        .route("/api/studies/{name}/plots/{id}", get(api::plot))
        .fallback(api::not_found)
        .with_state(storage)
}

/// Serves until `shutdown` completes, then finishes the requests in flight.
pub async fn run(
    storage: Arc<dyn Storage>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(storage))
        .with_graceful_shutdown(shutdown)
        .await
}
