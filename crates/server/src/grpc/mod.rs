//! KServe v2's `GRPCInferenceService` on its own port (`--grpc-addr`): ServerLive, ServerReady,
//! ModelReady, ServerMetadata, ModelMetadata and ModelInfer, over the same models, batchers,
//! limits, token, statistics and drain as the HTTP side. Inputs come as `raw_input_contents`
//! (what `tritonclient.grpc` sends) or typed contents; the output comes back as
//! `raw_output_contents`. Errors are gRPC statuses with one-line messages: INVALID_ARGUMENT,
//! NOT_FOUND, RESOURCE_EXHAUSTED (queue full, message too large), UNAUTHENTICATED, UNAVAILABLE
//! (draining).
//!
//! The service is written without generated code: [`GrpcService`] routes each method's path to
//! a handler through tonic's `Grpc::unary` with prost's codec, which is all tonic-build would
//! generate for unary methods.

pub mod incoming;
pub mod proto;

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::http::{self, StatusCode};
use tonic::body::Body;
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::{Code, Request, Response, Status};
use tonic_prost::ProstCodec;

use crate::error::ApiError;
use crate::infer_input::{model_input, InputValues, TensorIn, FP32, UINT8};
use crate::kserve::{MODEL_VERSION, SERVER_EXTENSIONS};
use crate::models::ServedModel;
use crate::state::AppState;
use proto::*;

const SERVICE: &str = "inference.GRPCInferenceService";

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// The gRPC service over the server's state.
#[derive(Clone)]
pub struct GrpcService {
    state: AppState,
    token: Option<Arc<str>>,
}

impl GrpcService {
    pub fn new(state: AppState, token: Option<Arc<str>>) -> GrpcService {
        GrpcService { state, token }
    }
}

impl NamedService for GrpcService {
    const NAME: &'static str = SERVICE;
}

/// ApiError's status as the gRPC code a client expects.
fn status(e: ApiError) -> Status {
    let code = match e.status {
        StatusCode::BAD_REQUEST => Code::InvalidArgument,
        StatusCode::NOT_FOUND => Code::NotFound,
        StatusCode::UNAUTHORIZED => Code::Unauthenticated,
        StatusCode::PAYLOAD_TOO_LARGE => Code::ResourceExhausted,
        // The queue is full (a 503 over HTTP): the client may retry.
        StatusCode::SERVICE_UNAVAILABLE => Code::ResourceExhausted,
        _ => Code::Internal,
    };
    Status::new(code, e.message)
}

impl GrpcService {
    /// UNAUTHENTICATED unless the request's `authorization` metadata carries the token (the
    /// liveness and readiness probes are open, as over HTTP).
    fn authorize<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let Some(token) = &self.token else {
            return Ok(());
        };
        let given = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        crate::auth::check_bearer(given, token)
            .map_err(|e| Status::unauthenticated(e.message.replace("header", "metadata")))
    }

    fn model(&self, name: &str, version: &str) -> Result<&Arc<ServedModel>, Status> {
        self.state
            .models
            .versioned(name, Some(version))
            .map_err(status)
    }

    fn server_ready(&self) -> bool {
        !self
            .state
            .draining
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    fn model_metadata(&self, r: ModelMetadataRequest) -> Result<ModelMetadataResponse, Status> {
        let model = self.model(&r.name, &r.version)?;
        let meta = &model.meta;
        let (input_shape, output_shape) = model.tensor_shapes();
        Ok(ModelMetadataResponse {
            name: model.name.clone(),
            versions: vec![MODEL_VERSION.into()],
            platform: "modelsmith".into(),
            inputs: vec![TensorMetadata {
                name: crate::infer_input::INPUT_NAME.into(),
                datatype: FP32.into(),
                shape: input_shape,
            }],
            outputs: vec![TensorMetadata {
                name: meta.data.task.output_name().into(),
                datatype: FP32.into(),
                shape: output_shape,
            }],
        })
    }

    async fn infer(&self, r: ModelInferRequest) -> Result<ModelInferResponse, Status> {
        let model = self.model(&r.model_name, &r.model_version)?.clone();
        let started = Instant::now();
        let answer = self.infer_model(&model, r).await;
        let examples = answer.as_ref().map(|(_, n)| *n).map_err(|_| ());
        model.batcher.stats().request(examples, started.elapsed());
        answer.map(|(response, _)| response)
    }

    async fn infer_model(
        &self,
        model: &ServedModel,
        r: ModelInferRequest,
    ) -> Result<(ModelInferResponse, usize), Status> {
        // Raw contents, when given, belong to the inputs in order, one each.
        if !r.raw_input_contents.is_empty() && r.raw_input_contents.len() != r.inputs.len() {
            return Err(Status::invalid_argument(format!(
                "{} raw_input_contents for {} inputs; give one per input, or none",
                r.raw_input_contents.len(),
                r.inputs.len()
            )));
        }
        let mut raw = r.raw_input_contents.into_iter();
        let inputs: Vec<TensorIn> = r
            .inputs
            .into_iter()
            .map(|input| {
                let numbers = input
                    .contents
                    .as_ref()
                    .and_then(|c| typed_values(c, &input.datatype));
                let values = match (raw.next(), numbers) {
                    (Some(_), Some(_)) => InputValues::Both,
                    (Some(bytes), None) => InputValues::Raw(bytes),
                    (None, Some(values)) => InputValues::Numbers(values),
                    (None, None) => InputValues::Missing,
                };
                TensorIn {
                    name: input.name,
                    datatype: input.datatype,
                    shape: input.shape,
                    values,
                }
            })
            .collect();
        let (values, batch) = model_input(model, inputs).map_err(status)?;
        let output_name = model.meta.data.task.output_name();
        if let Some(bad) = r.outputs.iter().find(|o| o.name != output_name) {
            return Err(Status::invalid_argument(format!(
                "unknown output '{}'; this model's output is '{output_name}'",
                bad.name
            )));
        }
        let outputs = model
            .batcher
            .infer(values, batch)
            .await
            .map_err(|e| status(e.into()))?;
        let bytes: Vec<u8> = outputs.iter().flat_map(|v| v.to_le_bytes()).collect();
        let response = ModelInferResponse {
            model_name: model.name.clone(),
            model_version: MODEL_VERSION.into(),
            id: r.id,
            parameters: HashMap::new(),
            outputs: vec![InferOutputTensor {
                name: output_name.into(),
                datatype: FP32.into(),
                shape: vec![batch as i64, model.meta.outputs as i64],
                parameters: HashMap::new(),
                contents: None,
            }],
            raw_output_contents: vec![bytes],
        };
        Ok((response, batch))
    }
}

/// An input's typed contents as numbers, when it has any of its datatype's kind (FP32 in
/// `fp32_contents`, UINT8 in `uint_contents`); `None` when empty.
fn typed_values(c: &InferTensorContents, datatype: &str) -> Option<Vec<f32>> {
    let values: Vec<f32> = match datatype {
        FP32 => c.fp32_contents.clone(),
        UINT8 => c.uint_contents.iter().map(|&v| v as f32).collect(),
        _ => return None,
    };
    (!values.is_empty()).then_some(values)
}

/// One unary method: `handler` answers the decoded request with the service's state.
struct Unary<H> {
    service: GrpcService,
    handler: H,
}

impl<Req, Res, H, Fut> UnaryService<Req> for Unary<H>
where
    H: Fn(GrpcService, Request<Req>) -> Fut,
    Fut: Future<Output = Result<Res, Status>> + Send + 'static,
    Res: Send + 'static,
{
    type Response = Res;
    type Future = BoxFuture<Result<Response<Res>, Status>>;

    fn call(&mut self, request: Request<Req>) -> Self::Future {
        let answer = (self.handler)(self.service.clone(), request);
        Box::pin(async move { answer.await.map(Response::new) })
    }
}

async fn server_live(
    _: GrpcService,
    _: Request<ServerLiveRequest>,
) -> Result<ServerLiveResponse, Status> {
    Ok(ServerLiveResponse { live: true })
}

async fn server_ready(
    s: GrpcService,
    _: Request<ServerReadyRequest>,
) -> Result<ServerReadyResponse, Status> {
    Ok(ServerReadyResponse {
        ready: s.server_ready(),
    })
}

async fn model_ready(
    s: GrpcService,
    r: Request<ModelReadyRequest>,
) -> Result<ModelReadyResponse, Status> {
    s.authorize(&r)?;
    let r = r.into_inner();
    // An unknown model or version is not ready (Triton answers so too).
    let ready = s.server_ready() && s.model(&r.name, &r.version).is_ok();
    Ok(ModelReadyResponse { ready })
}

async fn server_metadata(
    s: GrpcService,
    r: Request<ServerMetadataRequest>,
) -> Result<ServerMetadataResponse, Status> {
    s.authorize(&r)?;
    Ok(ServerMetadataResponse {
        name: "modelsmith".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        extensions: SERVER_EXTENSIONS.iter().map(|e| e.to_string()).collect(),
    })
}

async fn model_metadata(
    s: GrpcService,
    r: Request<ModelMetadataRequest>,
) -> Result<ModelMetadataResponse, Status> {
    s.authorize(&r)?;
    s.model_metadata(r.into_inner())
}

async fn model_infer(
    s: GrpcService,
    r: Request<ModelInferRequest>,
) -> Result<ModelInferResponse, Status> {
    s.authorize(&r)?;
    s.infer(r.into_inner()).await
}

/// Decodes `request`, runs `handler`, encodes its answer (or status).
async fn unary<Req, Res, H, Fut, B>(
    service: GrpcService,
    request: http::Request<B>,
    handler: H,
) -> http::Response<Body>
where
    Req: prost::Message + Default + Send + 'static,
    Res: prost::Message + Send + 'static,
    H: Fn(GrpcService, Request<Req>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Res, Status>> + Send + 'static,
    B: http_body::Body + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    let limit = service.state.max_body_bytes;
    let mut grpc = Grpc::new(ProstCodec::<Res, Req>::default())
        .max_decoding_message_size(limit)
        .max_encoding_message_size(usize::MAX);
    grpc.unary(Unary { service, handler }, request).await
}

impl<B> tower::Service<http::Request<B>> for GrpcService
where
    B: http_body::Body + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let s = self.clone();
        let method = request
            .uri()
            .path()
            .strip_prefix(&format!("/{SERVICE}/"))
            .unwrap_or("")
            .to_string();
        let metrics = self.state.metrics.clone();
        let limit = self.state.max_body_bytes;
        Box::pin(async move {
            let started = Instant::now();
            let response = match method.as_str() {
                "ServerLive" => unary(s, request, server_live).await,
                "ServerReady" => unary(s, request, server_ready).await,
                "ModelReady" => unary(s, request, model_ready).await,
                "ServerMetadata" => unary(s, request, server_metadata).await,
                "ModelMetadata" => unary(s, request, model_metadata).await,
                "ModelInfer" => unary(s, request, model_infer).await,
                _ => Status::unimplemented(format!(
                    "this server implements ServerLive, ServerReady, ModelReady, ServerMetadata, ModelMetadata and ModelInfer of {SERVICE}, not '{method}'"
                ))
                .into_http(),
            };
            // Errors answer "trailers only": their status is in the headers. tonic refuses an
            // oversize message as OUT_OF_RANGE; clients expect RESOURCE_EXHAUSTED and the flag.
            let mut response = response;
            let refused = Status::from_header_map(response.headers());
            if refused.as_ref().is_some_and(|s| {
                s.code() == Code::OutOfRange && s.message().contains("message length too large")
            }) {
                response = Status::resource_exhausted(format!(
                    "request message is larger than the server's limit of {limit} bytes (--max-body-bytes)"
                ))
                .into_http();
            }
            let code = Status::from_header_map(response.headers()).map_or(Code::Ok, |s| s.code());
            metrics.record_grpc(&method, code as u16, started.elapsed().as_secs_f64());
            Ok(response)
        })
    }
}
