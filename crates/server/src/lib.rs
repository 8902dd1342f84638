//! Modelsmith's inference server: the Open Inference Protocol (KServe v2) REST API, a
//! convenience `/predict`, Prometheus `/metrics`, dynamic batching and graceful shutdown.
//! The only crate of the workspace that knows HTTP.
//!
//! ```text
//! GET  /v2                          server metadata
//! GET  /v2/health/live              liveness (no token needed)
//! GET  /v2/health/ready             readiness (no token needed)
//! GET  /v2/models/{name}            model metadata: input/output names, shapes, datatypes
//! GET  /v2/models/{name}/ready      model readiness
//! POST /v2/models/{name}/infer      KServe v2 inference on preprocessed FP32 tensors
//! POST /v2/models/{name}/explain    the same input -> attributions (see [`explain_api`])
//!      /v2/models/{name}/versions/1[/ready|/infer|/explain]   the same, at the one version
//! POST /predict[?top_k=K&model=M]   PNG/JPEG body or JSON inputs -> top-k classes
//! GET  /metrics                     Prometheus text format
//! ```
//!
//! Inference goes through [`modelsmith::predict::Predictor`], the path `modelsmith predict` uses;
//! each model's Predictor lives on its own batching thread ([`batcher`]).

pub mod auth;
pub mod batcher;
pub mod binary_tensor;
pub mod error;
pub mod explain_api;
pub mod grpc;
pub mod infer_input;
pub mod kserve;
pub mod listen;
pub mod metrics;
pub mod models;
pub mod predict_api;
pub mod state;
pub mod stats;
pub mod tensor_json;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::middleware::{from_fn_with_state, map_response};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio::net::TcpListener;

pub use batcher::BatchConfig;
pub use error::{ApiError, ServeError};
pub use listen::ConnectionLimits;
pub use metrics::Metrics;
pub use models::{ModelSource, Models};
use state::AppState;

/// Default request-size limit: a batch of a few hundred 28x28 images as JSON fits.
pub const DEFAULT_MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// How the server behaves, apart from which models it serves.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    pub batch: BatchConfig,
    /// Bearer token every endpoint but the health probes requires; `None` = open.
    pub token: Option<String>,
    /// Larger request bodies get a 413.
    pub max_body_bytes: usize,
    /// After the shutdown signal, how long to keep serving while readiness answers 503, so a
    /// load balancer (a Kubernetes Service) stops sending new requests before the listener closes.
    pub drain: Duration,
    /// Where each model's batching worker runs inference (a `cuda` build can use a GPU).
    pub device: modelsmith::train::Device,
    /// Connection cap and timeouts.
    pub limits: ConnectionLimits,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            batch: BatchConfig::default(),
            token: None,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            drain: Duration::ZERO,
            device: modelsmith::train::Device::Cpu,
            limits: ConnectionLimits::default(),
        }
    }
}

/// Loaded models and the HTTP routes over them, ready to serve on a listener.
pub struct Server {
    state: AppState,
    token: Option<Arc<str>>,
    drain: Duration,
    limits: ConnectionLimits,
}

impl Server {
    /// Loads every model and starts its batching worker.
    pub fn new(sources: &[ModelSource], options: &ServeOptions) -> Result<Server, ServeError> {
        if options
            .token
            .as_deref()
            .is_some_and(|t| t.trim().is_empty())
        {
            return Err(ServeError::Config(
                "the token is empty; give a non-empty --token (or MODELSMITH_TOKEN), or none"
                    .into(),
            ));
        }
        let metrics = Arc::new(Metrics::new());
        let models = Models::load(sources, options.batch, options.device, &metrics)?;
        Ok(Server {
            state: AppState {
                models: Arc::new(models),
                metrics,
                max_body_bytes: options.max_body_bytes,
                draining: Arc::new(AtomicBool::new(false)),
                decode_slots: Arc::new(tokio::sync::Semaphore::new(
                    std::thread::available_parallelism().map_or(2, |n| n.get()),
                )),
                explain_slots: Arc::new(tokio::sync::Semaphore::new(explain_api::EXPLAIN_SLOTS)),
            },
            token: options.token.as_deref().map(Arc::from),
            drain: options.drain,
            limits: options.limits,
        })
    }

    /// The names of the served models.
    pub fn model_names(&self) -> Vec<String> {
        self.state.models.names().map(str::to_string).collect()
    }

    /// Every route, with the token check, metrics and body limit.
    pub fn router(&self) -> Router {
        let state = self.state.clone();
        let mut protected = Router::new()
            .route("/v2", get(kserve::server_metadata))
            .route("/v2/models/{name}", get(kserve::model_metadata))
            .route("/v2/models/{name}/ready", get(kserve::model_ready))
            .route("/v2/models/{name}/infer", post(kserve::infer))
            .route("/v2/models/{name}/explain", post(explain_api::explain))
            .route("/v2/models/{name}/config", get(kserve::model_config))
            .route("/v2/models/{name}/stats", get(kserve::model_stats))
            .route("/v2/models/stats", get(kserve::all_stats))
            .route(
                "/v2/models/{name}/versions/{version}/config",
                get(kserve::model_config),
            )
            .route(
                "/v2/models/{name}/versions/{version}/stats",
                get(kserve::model_stats),
            )
            .route(
                "/v2/models/{name}/versions/{version}",
                get(kserve::model_metadata),
            )
            .route(
                "/v2/models/{name}/versions/{version}/ready",
                get(kserve::model_ready),
            )
            .route(
                "/v2/models/{name}/versions/{version}/infer",
                post(kserve::infer),
            )
            .route(
                "/v2/models/{name}/versions/{version}/explain",
                post(explain_api::explain),
            )
            .route("/predict", post(predict_api::predict))
            .route("/metrics", get(metrics::handler));
        if let Some(token) = &self.token {
            protected =
                protected.route_layer(from_fn_with_state(token.clone(), auth::require_token));
        }
        Router::new()
            .route("/v2/health/live", get(kserve::live))
            .route("/v2/health/ready", get(kserve::ready))
            .merge(protected)
            .fallback(not_found)
            .method_not_allowed_fallback(method_not_allowed)
            .layer(from_fn_with_state(state.metrics.clone(), metrics::track))
            .layer(map_response(json_for_bare_errors))
            .layer(from_fn_with_state(
                state.max_body_bytes,
                refuse_declared_oversize,
            ))
            .layer(DefaultBodyLimit::max(state.max_body_bytes))
            .with_state(state)
    }

    /// Serves HTTP on `listener`, and gRPC on `grpc` when given, until `shutdown` completes;
    /// then readiness answers 503 (HTTP) and not ready (gRPC), serving goes on for the drain
    /// time, the listeners close and this returns once in-flight requests are answered.
    pub async fn run(
        self,
        listener: TcpListener,
        grpc: Option<TcpListener>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let router = self.router();
        let (draining, drain) = (self.state.draining.clone(), self.drain);
        // One signal, after the drain, ends both servers.
        let (stop, stopped) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            draining.store(true, Ordering::SeqCst);
            if !drain.is_zero() {
                tracing::info!("draining for {drain:?}: readiness answers 503");
                tokio::time::sleep(drain).await;
            }
            let _ = stop.send(true);
        });
        let until_stopped = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
            let _ = stopped.wait_for(|&s| s).await;
        };
        let Some(grpc_listener) = grpc else {
            return listen::serve(listener, router, self.limits, until_stopped(stopped)).await;
        };
        // Both listeners share the connection budget (files): half each.
        let half = (self.limits.max_connections / 2).max(1);
        let http_limits = ConnectionLimits {
            max_connections: half,
            ..self.limits
        };
        let http = listen::serve(
            listener,
            router,
            http_limits,
            until_stopped(stopped.clone()),
        );
        let service = grpc::GrpcService::new(self.state.clone(), self.token.clone());
        let limits = self.limits;
        let grpc = async move {
            tonic::transport::Server::builder()
                .timeout(limits.request_timeout)
                // A dead or silent peer is found and dropped instead of holding its slot.
                .http2_keepalive_interval(Some(limits.header_timeout))
                .http2_keepalive_timeout(Some(limits.header_timeout))
                .max_concurrent_streams(Some(GRPC_STREAMS_PER_CONNECTION))
                .add_service(service)
                .serve_with_incoming_shutdown(
                    grpc::incoming::capped(grpc_listener, half),
                    until_stopped(stopped),
                )
                .await
                .map_err(std::io::Error::other)
        };
        tokio::try_join!(http, grpc).map(|_| ())
    }
}

/// Concurrent calls one gRPC connection may have in flight.
const GRPC_STREAMS_PER_CONNECTION: u32 = 256;

/// Binds `addr` with an error that says what to do.
pub async fn bind(addr: &str) -> Result<TcpListener, ServeError> {
    let parsed: SocketAddr = addr.parse().map_err(|_| ServeError::Bind {
        addr: addr.to_string(),
        message: "not an address; use IP:PORT such as 127.0.0.1:8080".into(),
    })?;
    TcpListener::bind(parsed)
        .await
        .map_err(|e| ServeError::Bind {
            addr: addr.to_string(),
            message: match e.kind() {
                std::io::ErrorKind::AddrInUse => {
                    "the address is already in use (another server?); choose another --addr".into()
                }
                std::io::ErrorKind::AddrNotAvailable => {
                    "no network interface has this IP on this machine".into()
                }
                std::io::ErrorKind::PermissionDenied => {
                    "permission denied (ports below 1024 need privileges); choose another port"
                        .into()
                }
                _ => e.to_string(),
            },
        })
}

/// Completes on Ctrl-C or SIGTERM (what `docker stop` and Kubernetes send).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!(
        "no endpoint at {}; see /v2, /v2/models/NAME, /v2/models/NAME/infer, /predict, /metrics",
        uri.path()
    ))
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        format!("{method} is not allowed on {}", uri.path()),
    )
}

/// A body whose declared `Content-Length` is over the limit gets its 413 before a byte of it is
/// read (the body-limit layer would read up to the limit first).
async fn refuse_declared_oversize(
    axum::extract::State(limit): axum::extract::State<usize>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let declared = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(n) if n > limit as u64 => ApiError::new(
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "request body of {n} bytes is larger than the server's limit of {limit} bytes (--max-body-bytes)"
            ),
        )
        .into_response(),
        _ => next.run(request).await,
    }
}

/// Errors produced by axum itself with an empty or text body (a body-limit hit before a handler
/// ran, say) get the JSON error body every other error has.
async fn json_for_bare_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if (status.is_client_error() || status.is_server_error()) && !is_json {
        let reason = status.canonical_reason().unwrap_or("error").to_lowercase();
        return ApiError::new(status, reason).into_response();
    }
    response
}
