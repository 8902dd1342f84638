//! Kubernetes and KServe manifests as typed structures, serialized with serde.
//!
//! Only the fields the bundle sets are modelled, under the Kubernetes API names
//! (`camelCase`); everything optional is skipped when empty so the YAML reads like a
//! hand-written manifest. The same structs deserialize, so tests (and users) can read a
//! generated manifest back and check it field by field.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::settings::BundleSettings;

/// The label every object carries and every selector matches on.
pub const APP_LABEL: &str = "app.kubernetes.io/name";
/// Readiness probe path (KServe v2 health API served by `modelsmith serve`).
pub const READY_PATH: &str = "/v2/health/ready";
/// Liveness probe path.
pub const LIVE_PATH: &str = "/v2/health/live";
/// The environment variable `modelsmith serve` reads its bearer token from.
pub const TOKEN_ENV: &str = "MODELSMITH_TOKEN";
/// The key of the token inside the optional Secret `<name>-token`.
pub const TOKEN_SECRET_KEY: &str = "token";
/// The named container port the Service and probes point at.
pub const PORT_NAME: &str = "http";
/// The named container port of the gRPC service (KServe v2's GRPCInferenceService).
pub const GRPC_PORT_NAME: &str = "grpc";
/// The Service's gRPC port.
pub const GRPC_SERVICE_PORT: u16 = 8081;
/// Knative's name for an HTTP/1 container port.
pub const KNATIVE_PORT_NAME: &str = "http1";
/// KServe recognises the serving container of a custom predictor by this name.
pub const KSERVE_CONTAINER: &str = "kserve-container";

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    pub name: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    pub match_labels: BTreeMap<String, String>,
}

/// `apps/v1` Deployment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Deployment {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: DeploymentSpec,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentSpec {
    pub replicas: u32,
    pub selector: LabelSelector,
    pub template: PodTemplateSpec,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodTemplateSpec {
    pub metadata: PodMeta,
    pub spec: PodSpec,
}

/// A pod template's metadata has no name of its own.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodMeta {
    pub labels: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec {
    pub security_context: PodSecurityContext,
    pub containers: Vec<Container>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSecurityContext {
    pub run_as_non_root: bool,
    pub run_as_user: u32,
    pub run_as_group: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    pub name: String,
    pub image: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<String>,
    /// The executable (default: the image's ENTRYPOINT).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<ContainerPort>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    pub resources: ResourceRequirements,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness_probe: Option<Probe>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub liveness_probe: Option<Probe>,
    pub security_context: ContainerSecurityContext,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerPort {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub container_port: u16,
    pub protocol: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvVar {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<EnvVarSource>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvVarSource {
    pub secret_key_ref: SecretKeySelector,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeySelector {
    pub name: String,
    pub key: String,
    /// The pod starts without the Secret: the server then runs without a token.
    pub optional: bool,
}

/// Quantities as Kubernetes writes them (`500m`, `256Mi`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceRequirements {
    pub requests: BTreeMap<String, String>,
    pub limits: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Probe {
    pub http_get: HttpGetAction,
    pub initial_delay_seconds: u32,
    pub period_seconds: u32,
    pub timeout_seconds: u32,
    pub failure_threshold: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpGetAction {
    pub path: String,
    /// A port number or a named container port.
    pub port: PortRef,
}

/// Kubernetes' `IntOrString` for ports.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PortRef {
    Number(u16),
    Name(String),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerSecurityContext {
    pub run_as_non_root: bool,
    pub run_as_user: u32,
    pub run_as_group: u32,
    pub allow_privilege_escalation: bool,
    pub read_only_root_filesystem: bool,
    pub capabilities: Capabilities,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Capabilities {
    pub drop: Vec<String>,
}

/// `v1` Service.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Service {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: ServiceSpec,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    #[serde(rename = "type")]
    pub type_: String,
    pub selector: BTreeMap<String, String>,
    pub ports: Vec<ServicePort>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServicePort {
    pub name: String,
    pub port: u16,
    pub target_port: PortRef,
    pub protocol: String,
}

/// `autoscaling/v2` HorizontalPodAutoscaler on CPU utilization.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HorizontalPodAutoscaler {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: HpaSpec,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HpaSpec {
    pub scale_target_ref: CrossVersionObjectReference,
    pub min_replicas: u32,
    pub max_replicas: u32,
    pub metrics: Vec<MetricSpec>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CrossVersionObjectReference {
    pub api_version: String,
    pub kind: String,
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricSpec {
    #[serde(rename = "type")]
    pub type_: String,
    pub resource: ResourceMetricSource,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceMetricSource {
    pub name: String,
    pub target: MetricTarget,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricTarget {
    #[serde(rename = "type")]
    pub type_: String,
    pub average_utilization: u32,
}

/// KServe `serving.kserve.io/v1beta1` InferenceService with a custom-container predictor.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InferenceService {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: InferenceServiceSpec,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InferenceServiceSpec {
    pub predictor: PredictorSpec,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PredictorSpec {
    pub min_replicas: u32,
    pub max_replicas: u32,
    pub containers: Vec<Container>,
}

fn labels(s: &BundleSettings) -> BTreeMap<String, String> {
    BTreeMap::from([
        (APP_LABEL.to_string(), s.name.clone()),
        (
            "app.kubernetes.io/part-of".to_string(),
            "modelsmith".to_string(),
        ),
    ])
}

fn selector(s: &BundleSettings) -> BTreeMap<String, String> {
    BTreeMap::from([(APP_LABEL.to_string(), s.name.clone())])
}

fn metadata(s: &BundleSettings, name: &str) -> ObjectMeta {
    ObjectMeta {
        name: name.to_string(),
        labels: labels(s),
        annotations: BTreeMap::new(),
    }
}

fn probe(path: &str, port: PortRef, initial_delay_seconds: u32, failure_threshold: u32) -> Probe {
    Probe {
        http_get: HttpGetAction {
            path: path.to_string(),
            port,
        },
        initial_delay_seconds,
        period_seconds: 10,
        timeout_seconds: 2,
        failure_threshold,
    }
}

/// The token comes from the Secret `<name>-token` when it exists (`optional: true`).
fn token_env(s: &BundleSettings) -> EnvVar {
    EnvVar {
        name: TOKEN_ENV.to_string(),
        value: None,
        value_from: Some(EnvVarSource {
            secret_key_ref: SecretKeySelector {
                name: s.token_secret_name(),
                key: TOKEN_SECRET_KEY.to_string(),
                optional: true,
            },
        }),
    }
}

fn resources(s: &BundleSettings) -> ResourceRequirements {
    let r = &s.resources;
    ResourceRequirements {
        requests: BTreeMap::from([
            ("cpu".to_string(), r.cpu_request.clone()),
            ("memory".to_string(), r.memory_request.clone()),
        ]),
        limits: BTreeMap::from([
            ("cpu".to_string(), r.cpu_limit.clone()),
            ("memory".to_string(), r.memory_limit.clone()),
        ]),
    }
}

fn pod_security() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: true,
        run_as_user: super::dockerfile::RUNTIME_UID,
        run_as_group: super::dockerfile::RUNTIME_UID,
    }
}

fn container_security() -> ContainerSecurityContext {
    ContainerSecurityContext {
        run_as_non_root: true,
        run_as_user: super::dockerfile::RUNTIME_UID,
        run_as_group: super::dockerfile::RUNTIME_UID,
        allow_privilege_escalation: false,
        // The server only reads the model and writes nothing to disk.
        read_only_root_filesystem: true,
        capabilities: Capabilities {
            drop: vec!["ALL".to_string()],
        },
    }
}

/// The serving container: the image's ENTRYPOINT already runs `modelsmith serve` on the
/// model, so no args are needed.
fn container(s: &BundleSettings, name: &str, extra_env: Vec<EnvVar>) -> Container {
    let mut env = extra_env;
    env.push(token_env(s));
    Container {
        name: name.to_string(),
        image: s.image.clone(),
        image_pull_policy: Some("IfNotPresent".to_string()),
        command: Vec::new(),
        args: Vec::new(),
        ports: vec![
            ContainerPort {
                name: Some(PORT_NAME.to_string()),
                container_port: s.port,
                protocol: "TCP".to_string(),
            },
            ContainerPort {
                name: Some(GRPC_PORT_NAME.to_string()),
                container_port: s.grpc_port(),
                protocol: "TCP".to_string(),
            },
        ],
        env,
        resources: resources(s),
        readiness_probe: Some(probe(READY_PATH, named_port(), 2, 3)),
        liveness_probe: Some(probe(LIVE_PATH, named_port(), 5, 3)),
        security_context: container_security(),
    }
}

fn named_port() -> PortRef {
    PortRef::Name(PORT_NAME.to_string())
}

/// KServe's default (serverless) mode runs predictors on Knative, which only accepts the port
/// names `http1` and `h2c`, one port per container, and probes on the container's port number:
/// the predictor declares the HTTP port (the gRPC one still listens inside the pod).
fn kserve_container(s: &BundleSettings, protocol: EnvVar) -> Container {
    let mut c = container(s, KSERVE_CONTAINER, vec![protocol]);
    c.ports.truncate(1);
    c.ports[0].name = Some(KNATIVE_PORT_NAME.to_string());
    for probe in [&mut c.readiness_probe, &mut c.liveness_probe]
        .into_iter()
        .flatten()
    {
        probe.http_get.port = PortRef::Number(s.port);
    }
    c
}

pub fn deployment(s: &BundleSettings) -> Deployment {
    Deployment {
        api_version: "apps/v1".to_string(),
        kind: "Deployment".to_string(),
        metadata: metadata(s, &s.name),
        spec: DeploymentSpec {
            replicas: s.replicas,
            selector: LabelSelector {
                match_labels: selector(s),
            },
            template: PodTemplateSpec {
                metadata: PodMeta { labels: labels(s) },
                spec: PodSpec {
                    security_context: pod_security(),
                    containers: vec![container(s, &s.name, Vec::new())],
                },
            },
        },
    }
}

pub fn service(s: &BundleSettings) -> Service {
    Service {
        api_version: "v1".to_string(),
        kind: "Service".to_string(),
        metadata: metadata(s, &s.name),
        spec: ServiceSpec {
            type_: "ClusterIP".to_string(),
            selector: selector(s),
            ports: vec![
                ServicePort {
                    name: PORT_NAME.to_string(),
                    port: 80,
                    target_port: PortRef::Name(PORT_NAME.to_string()),
                    protocol: "TCP".to_string(),
                },
                ServicePort {
                    name: GRPC_PORT_NAME.to_string(),
                    port: GRPC_SERVICE_PORT,
                    target_port: PortRef::Name(GRPC_PORT_NAME.to_string()),
                    protocol: "TCP".to_string(),
                },
            ],
        },
    }
}

pub fn hpa(s: &BundleSettings) -> HorizontalPodAutoscaler {
    HorizontalPodAutoscaler {
        api_version: "autoscaling/v2".to_string(),
        kind: "HorizontalPodAutoscaler".to_string(),
        metadata: metadata(s, &s.name),
        spec: HpaSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: "apps/v1".to_string(),
                kind: "Deployment".to_string(),
                name: s.name.clone(),
            },
            min_replicas: s.replicas,
            max_replicas: s.max_replicas,
            metrics: vec![MetricSpec {
                type_: "Resource".to_string(),
                resource: ResourceMetricSource {
                    name: "cpu".to_string(),
                    target: MetricTarget {
                        type_: "Utilization".to_string(),
                        average_utilization: s.target_cpu_percent,
                    },
                },
            }],
        },
    }
}

/// KServe reads a custom container's protocol from its `PROTOCOL` env variable, routes to
/// port 8080 of the container named `kserve-container`, and scrapes `/metrics` when the
/// prometheus annotations say so.
pub fn inference_service(s: &BundleSettings) -> InferenceService {
    let mut meta = metadata(s, &s.name);
    meta.annotations = BTreeMap::from([
        (
            "serving.kserve.io/enable-prometheus-scraping".to_string(),
            "true".to_string(),
        ),
        ("prometheus.kserve.io/port".to_string(), s.port.to_string()),
        (
            "prometheus.kserve.io/path".to_string(),
            "/metrics".to_string(),
        ),
    ]);
    let protocol = EnvVar {
        name: "PROTOCOL".to_string(),
        value: Some("v2".to_string()),
        value_from: None,
    };
    InferenceService {
        api_version: "serving.kserve.io/v1beta1".to_string(),
        kind: "InferenceService".to_string(),
        metadata: meta,
        spec: InferenceServiceSpec {
            predictor: PredictorSpec {
                min_replicas: s.replicas,
                max_replicas: s.max_replicas,
                containers: vec![kserve_container(s, protocol)],
            },
        },
    }
}

/// One manifest as YAML text (a single document, as `kubectl apply -f` reads it).
pub fn to_yaml<T: Serialize>(value: &T) -> String {
    serde_yaml_ng::to_string(value).expect("manifests are plain maps, lists and scalars")
}

/// `k8s/kustomization.yaml`, so `kubectl apply -k k8s/` applies the three manifests.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Kustomization {
    pub api_version: String,
    pub kind: String,
    pub resources: Vec<String>,
}

pub fn kustomization(resources: &[&str]) -> Kustomization {
    Kustomization {
        api_version: "kustomize.config.k8s.io/v1beta1".to_string(),
        kind: "Kustomization".to_string(),
        resources: resources.iter().map(|r| r.to_string()).collect(),
    }
}
