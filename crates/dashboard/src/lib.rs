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
mod explanation;

use std::future::Future;
use std::sync::Arc;

use axum::extract::{FromRef, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use modelsmith::store::Storage;
use tokio::net::TcpListener;

/// What the handlers share: the storage, and the explanations of best trials' models made so
/// far.
#[derive(Clone)]
pub struct AppState {
    storage: Arc<dyn Storage>,
    explanations: Arc<explanation::Explanations>,
}

impl FromRef<AppState> for Arc<dyn Storage> {
    fn from_ref(state: &AppState) -> Self {
        Arc::clone(&state.storage)
    }
}

/// The dashboard's routes over `storage` (opened from `storage_url`, which also says where
/// `auto` keeps trial models), answering only requests addressed to an allowed host (see
/// [`HostCheck`]) and sending the headers that keep a browser from misusing the pages.
pub fn router(storage: Arc<dyn Storage>, storage_url: &str, hosts: HostCheck) -> Router {
    let state = AppState {
        storage,
        explanations: Arc::new(explanation::Explanations::new(storage_url)),
    };
    Router::new()
        .route("/", get(assets::page))
        .route("/study/{name}", get(assets::page))
        .route("/assets/{file}", get(assets::asset))
        .route("/api/studies", get(api::studies))
        .route("/api/studies/{name}", get(api::overview))
        .route(
            "/api/studies/{name}/explanation",
            get(explanation::best_model),
        )
        .route("/api/studies/{name}/{part}", get(api::part))
        .route("/api/studies/{name}/plots/{id}", get(api::plot))
        .fallback(api::not_found)
        .with_state(state)
        .layer(from_fn_with_state(Arc::new(hosts), guard))
}

/// Which `Host` headers the dashboard answers. A page on another site can make a browser send
/// requests to a name of its own that resolves to this machine (DNS rebinding); the `Host`
/// header still carries that name, so requests are answered only for IP addresses, `localhost`
/// and the names given with `--allow-host`.
#[derive(Clone, Debug, Default)]
pub struct HostCheck {
    pub allowed: Vec<String>,
}

impl HostCheck {
    pub fn allows(&self, host: &str) -> bool {
        let name = host_name(host);
        name.eq_ignore_ascii_case("localhost")
            || name.parse::<std::net::IpAddr>().is_ok()
            || self.allowed.iter().any(|a| a.eq_ignore_ascii_case(name))
    }
}

/// `host[:port]` or `[v6]:port` without the port and brackets.
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("");
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
        _ => host,
    }
}

async fn guard(State(hosts): State<Arc<HostCheck>>, request: Request, next: Next) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let mut response = if hosts.allows(host) {
        next.run(request).await
    } else {
        (
            StatusCode::MISDIRECTED_REQUEST,
            Json(serde_json::json!({
                "error": format!(
                    "this dashboard does not answer for host '{host}'; open it by IP address or localhost, or start it with --allow-host NAME"
                )
            })),
        )
            .into_response()
    };
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // The plots are inline SVG documents with a <style> element: inline styles are allowed,
    // scripts come only from the dashboard's own file.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
        ),
    );
    response
}

/// Serves until `shutdown` completes, then finishes the requests in flight.
pub async fn run(
    storage: Arc<dyn Storage>,
    storage_url: &str,
    hosts: HostCheck,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    modelsmith_server::listen::serve(
        listener,
        router(storage, storage_url, hosts),
        modelsmith_server::ConnectionLimits::default(),
        shutdown,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_ip_addresses_localhost_or_allowed_names() {
        let check = HostCheck {
            allowed: vec!["studies.lab".into()],
        };
        for ok in [
            "127.0.0.1:8081",
            "localhost:8081",
            "LOCALHOST",
            "[::1]:8081",
            "10.0.0.5",
            "studies.lab:8081",
        ] {
            assert!(check.allows(ok), "{ok}");
        }
        for bad in [
            "evil.example:8081",
            "",
            "127.0.0.1.evil.example",
            "localhost.evil:80",
        ] {
            assert!(!check.allows(bad), "{bad}");
        }
    }
}
