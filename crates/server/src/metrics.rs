//! Prometheus metrics: requests, latency, errors per endpoint; batch sizes, inference time and
//! predictions per model; the server's energy. Served as text on `GET /metrics`.
//!
//! Energy: a process [`Meter`] (RAPL, else the CPU-time estimate) is read at each scrape into
//! `modelsmith_energy_joules_total`, whose method is its label; joules per prediction is its
//! rate over `modelsmith_predictions_total`'s (metering each batch's own CPU time would cost as
//! much as a batch-1 prediction).

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use modelsmith::energy::Meter;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    /// The route template (`/v2/models/{name}/infer`), never the raw path: a raw path would make
    /// one time series per URL a client invents.
    endpoint: String,
    code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    endpoint: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModelLabels {
    model: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    /// `rapl` or `estimate`.
    method: String,
}

/// All the server's metrics and the registry that renders them.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    errors: Family<RequestLabels, Counter>,
    latency: Family<EndpointLabels, Histogram>,
    batch_size: Family<ModelLabels, Histogram>,
    inference_seconds: Family<ModelLabels, Histogram>,
    predictions: Family<ModelLabels, Counter>,
    energy: Family<MethodLabels, Counter<f64, AtomicU64>>,
    /// The process's meter and the joules already added to `energy`.
    meter: Mutex<(Meter, f64)>,
    /// Rendering reuses one buffer; scrapes are rare, so a mutex is fine.
    buffer: Mutex<String>,
}

/// One model's batch metrics, handed to its batching worker.
#[derive(Clone)]
pub struct BatchMetrics {
    pub batch_size: Histogram,
    pub inference_seconds: Histogram,
    /// Examples predicted.
    pub predictions: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("modelsmith");
        let requests = Family::<RequestLabels, Counter>::default();
        let errors = Family::<RequestLabels, Counter>::default();
        // 50 µs .. 3.3 s: the fast path answers in well under a millisecond.
        let latency = Family::<EndpointLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(50e-6, 2.0, 17))
        });
        // 1, 2, 4, ... 512 examples.
        let batch_size = Family::<ModelLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(1.0, 2.0, 10))
        });
        let inference_seconds = Family::<ModelLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(20e-6, 2.0, 17))
        });
        registry.register(
            "http_requests",
            "HTTP requests answered, by endpoint and status code",
            requests.clone(),
        );
        registry.register(
            "http_errors",
            "HTTP requests answered with a 4xx or 5xx status, by endpoint and status code",
            errors.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time from a request's arrival to its response, by endpoint",
            latency.clone(),
        );
        registry.register(
            "batch_size",
            "Examples per forward pass of the batching worker, by model",
            batch_size.clone(),
        );
        registry.register(
            "inference_duration_seconds",
            "Time of one batched forward pass, by model",
            inference_seconds.clone(),
        );
        let predictions = Family::<ModelLabels, Counter>::default();
        registry.register(
            "predictions",
            "Examples predicted, by model",
            predictions.clone(),
        );
        let energy = Family::<MethodLabels, Counter<f64, AtomicU64>>::default();
        registry.register(
            "energy_joules",
            "Energy this server process has used since it started (measured by RAPL or \
             estimated from CPU time, as the label says); its rate over predictions' is joules \
             per prediction",
            energy.clone(),
        );
        Metrics {
            registry,
            requests,
            errors,
            latency,
            batch_size,
            inference_seconds,
            predictions,
            energy,
            meter: Mutex::new((Meter::process(), 0.0)),
            buffer: Mutex::new(String::new()),
        }
    }

    /// The histograms a model's batching worker records into.
    pub fn for_model(&self, model: &str) -> BatchMetrics {
        let labels = ModelLabels {
            model: model.to_string(),
        };
        BatchMetrics {
            batch_size: self.batch_size.get_or_create(&labels).clone(),
            inference_seconds: self.inference_seconds.get_or_create(&labels).clone(),
            predictions: self.predictions.get_or_create(&labels).clone(),
        }
    }

    /// A gRPC call to `method`, answered with gRPC status `code` after `seconds` (counted
    /// beside the HTTP endpoints as `grpc:METHOD`).
    pub fn record_grpc(&self, method: &str, code: u16, seconds: f64) {
        let endpoint = format!("grpc:{method}");
        let labels = RequestLabels {
            endpoint: endpoint.clone(),
            code,
        };
        self.requests.get_or_create(&labels).inc();
        if code != 0 {
            self.errors.get_or_create(&labels).inc();
        }
        self.latency
            .get_or_create(&EndpointLabels { endpoint })
            .observe(seconds);
    }

    fn record(&self, endpoint: &str, status: StatusCode, seconds: f64) {
        let labels = RequestLabels {
            endpoint: endpoint.to_string(),
            code: status.as_u16(),
        };
        self.requests.get_or_create(&labels).inc();
        if status.is_client_error() || status.is_server_error() {
            self.errors.get_or_create(&labels).inc();
        }
        self.latency
            .get_or_create(&EndpointLabels {
                endpoint: labels.endpoint,
            })
            .observe(seconds);
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        {
            let mut meter = self.meter.lock().unwrap_or_else(|e| e.into_inner());
            let now = meter.0.read();
            let labels = MethodLabels {
                method: now.method.name().to_string(),
            };
            self.energy
                .get_or_create(&labels)
                .inc_by((now.joules - meter.1).max(0.0));
            meter.1 = now.joules.max(meter.1);
        }
        let mut buffer = self.buffer.lock().unwrap_or_else(|e| e.into_inner());
        buffer.clear();
        prometheus_client::encoding::text::encode(&mut *buffer, &self.registry)
            .expect("writing to a String cannot fail");
        buffer.clone()
    }
}

/// Middleware: counts every response and observes its latency under the matched route.
pub async fn track(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let start = Instant::now();
    let endpoint = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_string();
    let response = next.run(request).await;
    metrics.record(&endpoint, response.status(), start.elapsed().as_secs_f64());
    response
}

/// `GET /metrics`.
pub async fn handler(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics.render(),
    )
}
