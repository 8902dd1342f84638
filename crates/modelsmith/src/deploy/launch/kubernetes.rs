//! A Kubernetes Indexed Job of `modelsmith worker` pods, typed with the bundle's structures
//! ([`crate::deploy::bundle::k8s`]) so that it serializes as a manifest and parses back.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{LaunchOptions, STORAGE_ENV};
use crate::deploy::bundle::dockerfile::RUNTIME_UID;
use crate::deploy::bundle::k8s::{
    Capabilities, Container, ContainerSecurityContext, EnvVar, EnvVarSource, ObjectMeta, PodMeta,
    PodSecurityContext, ResourceRequirements, SecretKeySelector, APP_LABEL,
};

/// `batch/v1` Job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: JobSpec,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobSpec {
    /// `Indexed`: each pod gets its own completion index (`JOB_COMPLETION_INDEX`).
    pub completion_mode: String,
    pub completions: u32,
    pub parallelism: u32,
    /// Retries per index before that index counts as failed (a crashed worker's trial is
    /// reclaimed by the others meanwhile).
    pub backoff_limit_per_index: u32,
    pub template: JobPodTemplate,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobPodTemplate {
    pub metadata: PodMeta,
    pub spec: JobPodSpec,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobPodSpec {
    pub restart_policy: String,
    pub security_context: PodSecurityContext,
    pub containers: Vec<Container>,
}

/// The Job: `workers` pods at once, each running `modelsmith worker --study STUDY` with the
/// storage URL in `MODELSMITH_STORAGE` from the Secret (`secretKeyRef`, never inline).
pub fn worker_job(o: &LaunchOptions) -> Job {
    let labels = BTreeMap::from([
        (APP_LABEL.to_string(), o.name.clone()),
        (
            "app.kubernetes.io/part-of".to_string(),
            "modelsmith".to_string(),
        ),
        (
            "app.kubernetes.io/component".to_string(),
            "worker".to_string(),
        ),
    ]);
    let mut requests = BTreeMap::from([
        ("cpu".to_string(), o.resources.cpu_request.clone()),
        ("memory".to_string(), o.resources.memory_request.clone()),
    ]);
    let mut limits = BTreeMap::from([
        ("cpu".to_string(), o.resources.cpu_limit.clone()),
        ("memory".to_string(), o.resources.memory_limit.clone()),
    ]);
    if let Some(gpus) = o.gpus {
        // Extended resources: the request must equal the limit.
        requests.insert("nvidia.com/gpu".into(), gpus.to_string());
        limits.insert("nvidia.com/gpu".into(), gpus.to_string());
    }
    let container = Container {
        name: "worker".into(),
        image: o.image.clone(),
        image_pull_policy: Some("IfNotPresent".into()),
        command: vec!["modelsmith".into()],
        args: vec![
            "worker".into(),
            "--study".into(),
            o.study.clone(),
            "--quiet".into(),
        ],
        ports: Vec::new(),
        env: vec![EnvVar {
            name: STORAGE_ENV.into(),
            value: None,
            value_from: Some(EnvVarSource {
                secret_key_ref: SecretKeySelector {
                    name: o.storage_secret.clone(),
                    key: o.storage_secret_key.clone(),
                    optional: false,
                },
            }),
        }],
        resources: ResourceRequirements { requests, limits },
        readiness_probe: None,
        liveness_probe: None,
        security_context: ContainerSecurityContext {
            run_as_non_root: true,
            run_as_user: RUNTIME_UID,
            run_as_group: RUNTIME_UID,
            allow_privilege_escalation: false,
            // Trials train in memory; a study's artifact directory is a mounted volume.
            read_only_root_filesystem: true,
            capabilities: Capabilities {
                drop: vec!["ALL".into()],
            },
        },
    };
    Job {
        api_version: "batch/v1".into(),
        kind: "Job".into(),
        metadata: ObjectMeta {
            name: o.name.clone(),
            labels: labels.clone(),
            annotations: BTreeMap::from([("modelsmith.dev/study".to_string(), o.study.clone())]),
        },
        spec: JobSpec {
            completion_mode: "Indexed".into(),
            completions: o.workers,
            parallelism: o.workers,
            backoff_limit_per_index: 3,
            template: JobPodTemplate {
                metadata: PodMeta { labels },
                spec: JobPodSpec {
                    restart_policy: "Never".into(),
                    security_context: PodSecurityContext {
                        run_as_non_root: true,
                        run_as_user: RUNTIME_UID,
                        run_as_group: RUNTIME_UID,
                    },
                    containers: vec![container],
                },
            },
        },
    }
}

/// The manifest, headed by how to create the Secret it reads.
pub fn to_yaml(o: &LaunchOptions, job: &Job) -> String {
    let yaml = serde_yaml_ng::to_string(job).expect("manifests serialize");
    format!(
        "# {workers} modelsmith workers on study '{study}'. The storage URL comes from the Secret\n\
         # '{secret}' (key '{key}'); create it first, from a file holding the URL:\n\
         #   kubectl create secret generic {secret} --from-file={key}=./storage-url\n\
         {yaml}",
        workers = o.workers,
        study = o.study,
        secret = o.storage_secret,
        key = o.storage_secret_key,
    )
}
