//! The deployment bundle on a real model trained on the bundled digits: every manifest parses
//! back (typed and as generic YAML) with the expected kinds, API versions and probe paths; the
//! Dockerfile has its stages and copies only files that exist; SHA256SUMS verifies (here, with
//! `sha256sum -c` where installed, and with `verify`, which catches changed, missing and added
//! files); the model inside the bundle predicts what the original does; client.py compiles and
//! preprocesses a real PNG exactly as the server does; bad outputs and names are refused.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use modelsmith::data::{load, LoadOptions, LoadedData};
use modelsmith::deploy::bundle::k8s::{
    self, Deployment, HorizontalPodAutoscaler, InferenceService, Kustomization, Service,
};
use modelsmith::deploy::bundle::{
    dockerfile, verify, write_bundle, BundleOptions, BundleSettings, BundleSummary, Problem,
};
use modelsmith::predict::Predictor;
use modelsmith::train::{train, Silent, TrainConfig};
use serde_yaml_ng::Value;
use sha2::{Digest, Sha256};

struct Trained {
    _dir: tempfile::TempDir,
    model: PathBuf,
    data: LoadedData,
}

/// One small model for every test: seed CNN, one epoch on 1,500 real digits.
fn trained() -> &'static Trained {
    static MODEL: OnceLock<Trained> = OnceLock::new();
    MODEL.get_or_init(|| {
        let data = load("digits", &LoadOptions::default()).unwrap();
        let data = LoadedData {
            train: data.train.subset(&(0..1500).collect::<Vec<_>>()),
            test: data.test.subset(&(0..200).collect::<Vec<_>>()),
            info: data.info,
            task_choice: None,
        };
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("Digits_CNN.v1");
        let config = TrainConfig {
            epochs: 1,
            ..TrainConfig::default()
        };
        train(&config, &data, &model, false, &mut Silent).unwrap();
        Trained {
            _dir: dir,
            model,
            data,
        }
    })
}

/// Any real executable stands in for the modelsmith binary: the test's own.
fn options() -> BundleOptions {
    BundleOptions {
        binary: Some(std::env::current_exe().unwrap()),
        latency_runs: 5,
        ..BundleOptions::default()
    }
}

fn bundle(out: &Path, options: &BundleOptions) -> BundleSummary {
    write_bundle(&trained().model, out, options).unwrap()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn yaml(path: &Path) -> Value {
    serde_yaml_ng::from_str(&read(path)).unwrap()
}

fn get<'a>(value: &'a Value, path: &str) -> &'a Value {
    path.split('.')
        .fold(value, |v, key| match key.parse::<usize>() {
            Ok(i) => &v[i],
            Err(_) => &v[key],
        })
}

fn settings_of(dir: &Path) -> BundleSettings {
    let weights = read_bytes(&trained().model.join("weights.safetensors"));
    let sha = hex(&Sha256::digest(&weights));
    let mut opts = options();
    opts.binary = Some(dir.join("bin/modelsmith"));
    BundleSettings::resolve(&opts, &trained().model, &sha).unwrap()
}

fn read_bytes(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn manifests_parse_back_typed_and_as_generic_yaml() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bundle");
    let summary = bundle(&out, &options());
    // The default name comes from the folder `Digits_CNN.v1`; the tag from the weights.
    assert_eq!(summary.name, "digits-cnn-v1");
    let settings = settings_of(&out);
    assert_eq!(summary.image, settings.image);
    assert!(summary.image.starts_with("digits-cnn-v1:") && summary.image.len() == 14 + 12);

    // Typed: each file is exactly what the generator builds.
    let deployment: Deployment =
        serde_yaml_ng::from_str(&read(&out.join("k8s/deployment.yaml"))).unwrap();
    assert_eq!(deployment, k8s::deployment(&settings));
    let service: Service = serde_yaml_ng::from_str(&read(&out.join("k8s/service.yaml"))).unwrap();
    assert_eq!(service, k8s::service(&settings));
    let hpa: HorizontalPodAutoscaler =
        serde_yaml_ng::from_str(&read(&out.join("k8s/hpa.yaml"))).unwrap();
    assert_eq!(hpa, k8s::hpa(&settings));
    let isvc: InferenceService =
        serde_yaml_ng::from_str(&read(&out.join("kserve/inferenceservice.yaml"))).unwrap();
    assert_eq!(isvc, k8s::inference_service(&settings));
    let kustomization: Kustomization =
        serde_yaml_ng::from_str(&read(&out.join("k8s/kustomization.yaml"))).unwrap();
    for resource in &kustomization.resources {
        assert!(out.join("k8s").join(resource).is_file(), "{resource}");
    }

    // Generic: the fields Kubernetes reads, under the names it reads them by.
    let d = yaml(&out.join("k8s/deployment.yaml"));
    assert_eq!(d["apiVersion"], "apps/v1");
    assert_eq!(d["kind"], "Deployment");
    assert_eq!(d["metadata"]["name"], "digits-cnn-v1");
    assert_eq!(d["spec"]["replicas"], 2);
    let pod_labels = get(&d, "spec.template.metadata.labels");
    for (key, value) in get(&d, "spec.selector.matchLabels").as_mapping().unwrap() {
        assert_eq!(
            &pod_labels[key], value,
            "the selector must match the pod labels"
        );
    }
    let c = get(&d, "spec.template.spec.containers.0");
    assert_eq!(c["image"], Value::from(summary.image.clone()));
    assert_eq!(get(c, "readinessProbe.httpGet.path"), "/v2/health/ready");
    assert_eq!(get(c, "livenessProbe.httpGet.path"), "/v2/health/live");
    assert_eq!(get(c, "readinessProbe.httpGet.port"), "http");
    assert_eq!(get(c, "ports.0.name"), "http");
    assert_eq!(get(c, "ports.0.containerPort"), 8080);
    assert_eq!(get(c, "ports.1.name"), "grpc");
    assert_eq!(get(c, "ports.1.containerPort"), 8081);
    for key in ["requests", "limits"] {
        for resource in ["cpu", "memory"] {
            assert!(get(c, &format!("resources.{key}.{resource}")).is_string());
        }
    }
    assert_eq!(get(c, "env.0.name"), "MODELSMITH_TOKEN");
    assert_eq!(
        get(c, "env.0.valueFrom.secretKeyRef.name"),
        "digits-cnn-v1-token"
    );
    assert_eq!(
        get(c, "env.0.valueFrom.secretKeyRef.optional"),
        &Value::Bool(true)
    );
    assert_eq!(get(c, "securityContext.runAsNonRoot"), &Value::Bool(true));
    assert_eq!(get(c, "securityContext.runAsUser"), dockerfile::RUNTIME_UID);

    let s = yaml(&out.join("k8s/service.yaml"));
    assert_eq!(
        (&s["apiVersion"], &s["kind"]),
        (&Value::from("v1"), &Value::from("Service"))
    );
    for (key, value) in get(&s, "spec.selector").as_mapping().unwrap() {
        assert_eq!(&pod_labels[key], value);
    }
    assert_eq!(get(&s, "spec.ports.0.targetPort"), "http");
    assert_eq!(get(&s, "spec.ports.1.targetPort"), "grpc");
    assert_eq!(get(&s, "spec.ports.1.port"), 8081);

    let h = yaml(&out.join("k8s/hpa.yaml"));
    assert_eq!(h["apiVersion"], "autoscaling/v2");
    assert_eq!(h["kind"], "HorizontalPodAutoscaler");
    assert_eq!(get(&h, "spec.scaleTargetRef.kind"), "Deployment");
    assert_eq!(get(&h, "spec.scaleTargetRef.name"), "digits-cnn-v1");
    assert_eq!(get(&h, "spec.minReplicas"), 2);
    assert_eq!(get(&h, "spec.maxReplicas"), 10);
    assert_eq!(get(&h, "spec.metrics.0.resource.name"), "cpu");
    assert_eq!(
        get(&h, "spec.metrics.0.resource.target.averageUtilization"),
        70
    );

    let i = yaml(&out.join("kserve/inferenceservice.yaml"));
    assert_eq!(i["apiVersion"], "serving.kserve.io/v1beta1");
    assert_eq!(i["kind"], "InferenceService");
    let kc = get(&i, "spec.predictor.containers.0");
    assert_eq!(kc["name"], "kserve-container");
    assert_eq!(get(kc, "ports.0.containerPort"), 8080);
    assert_eq!(get(kc, "ports.0.name"), "http1");
    // Knative routes one port per predictor container.
    assert!(kc["ports"].as_sequence().unwrap().len() == 1);
    assert_eq!(get(kc, "env.0.name"), "PROTOCOL");
    assert_eq!(get(kc, "env.0.value"), "v2");
    assert_eq!(get(kc, "readinessProbe.httpGet.path"), "/v2/health/ready");
    assert_eq!(get(kc, "readinessProbe.httpGet.port"), 8080);
    assert_eq!(
        get(&i, "metadata.annotations").as_mapping().unwrap()["prometheus.kserve.io/path"],
        "/metrics"
    );
}

/// The instructions of a Dockerfile as (keyword, rest), comments and blank lines dropped.
fn instructions(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(|l| {
            let (keyword, rest) = l.split_once(' ').unwrap();
            (keyword.to_string(), rest.to_string())
        })
        .collect()
}

#[test]
fn dockerfile_has_verify_and_runtime_stages_and_copies_only_bundle_files() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bundle");
    let summary = bundle(&out, &options());
    let text = read(&out.join("Dockerfile"));
    let mut stages: Vec<String> = Vec::new();
    let mut verified = false;
    let mut user = None;
    for (keyword, rest) in instructions(&text) {
        match keyword.as_str() {
            "FROM" => {
                let parts: Vec<&str> = rest.split_whitespace().collect();
                assert_eq!(parts.len(), 3, "FROM image AS stage: {rest}");
                assert_eq!(parts[0], "debian:bookworm-slim");
                assert_eq!(parts[1], "AS");
                stages.push(parts[2].to_string());
            }
            "RUN" if rest.contains("sha256sum") => {
                let args: Vec<String> = serde_json::from_str(&rest).unwrap();
                assert_eq!(args, ["sha256sum", "--check", "--strict", "SHA256SUMS"]);
                assert_eq!(stages, ["verify"], "the check runs in the verify stage");
                verified = true;
            }
            "COPY" => {
                let parts: Vec<&str> = rest.split_whitespace().collect();
                let (from, sources) = match parts[0].strip_prefix("--from=") {
                    Some(stage) => (Some(stage), &parts[1..parts.len() - 1]),
                    None => (None, &parts[..parts.len() - 1]),
                };
                for source in sources {
                    let in_bundle = match from {
                        None => source.to_string(),
                        Some(stage) => {
                            assert!(
                                stages.iter().any(|s| s == stage),
                                "COPY from unknown stage {stage}"
                            );
                            assert_eq!(
                                stage, "verify",
                                "runtime files come from the verified copy"
                            );
                            source.strip_prefix("/bundle/").unwrap().to_string()
                        }
                    };
                    assert!(
                        out.join(&in_bundle).exists(),
                        "COPY {source}: {in_bundle} is not in the bundle"
                    );
                }
            }
            "USER" => user = Some(rest.clone()),
            "HEALTHCHECK" => {
                assert!(
                    rest.contains("--interval=") && rest.contains(" CMD "),
                    "{rest}"
                );
                let cmd: Vec<String> =
                    serde_json::from_str(rest.split_once(" CMD ").unwrap().1).unwrap();
                assert_eq!(cmd[0], "bash");
                assert!(
                    cmd[2].contains("/dev/tcp/127.0.0.1/8080")
                        && cmd[2].contains("GET /v2/health/ready")
                );
            }
            "ENTRYPOINT" => {
                let args: Vec<String> = serde_json::from_str(&rest).unwrap();
                let model = format!("/models/{}", summary.name);
                assert_eq!(
                    args,
                    [
                        "modelsmith",
                        "serve",
                        "--model",
                        &model,
                        "--addr",
                        "0.0.0.0:8080",
                        "--grpc-addr",
                        "0.0.0.0:8081"
                    ]
                );
            }
            _ => {}
        }
    }
    assert_eq!(stages, ["verify", "runtime"]);
    assert!(verified, "no sha256sum check");
    assert_eq!(user.as_deref(), Some("10001:10001"), "non-root user");
    assert!(text.contains("\nEXPOSE 8080\nEXPOSE 8081\n"));
    assert!(out.join(".dockerignore").is_file());
    // The binary in the bundle is the one given, byte for byte, and still executable.
    assert_eq!(
        read_bytes(&out.join("bin/modelsmith")),
        read_bytes(&std::env::current_exe().unwrap())
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(out.join("bin/modelsmith"))
            .unwrap()
            .permissions()
            .mode();
        assert!(
            mode & 0o111 != 0,
            "bin/modelsmith is not executable: {mode:o}"
        );
    }
}

#[test]
fn checksums_cover_every_file_verify_and_catch_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bundle");
    let summary = bundle(&out, &options());
    let listed: BTreeMap<String, String> = read(&out.join("SHA256SUMS"))
        .lines()
        .map(|l| {
            let (sum, path) = l.split_once("  ").unwrap();
            (path.to_string(), sum.to_string())
        })
        .collect();
    let expected: Vec<&str> = vec![
        ".dockerignore",
        "Dockerfile",
        "README.md",
        "bin/modelsmith",
        "client.py",
        "explain/ig-0.png",
        "explain/ig-1.png",
        "explain/ig-2.png",
        "explain/ig-3.png",
        "explain/ig-4.png",
        "explain/ig-5.png",
        "explain/ig-6.png",
        "explain/ig-7.png",
        "explain/ig-8.png",
        "explain/ig-9.png",
        "k8s/deployment.yaml",
        "k8s/hpa.yaml",
        "k8s/kustomization.yaml",
        "k8s/service.yaml",
        "kserve/inferenceservice.yaml",
        "model.onnx",
        "model/metrics.jsonl",
        "model/model.json",
        "model/weights.safetensors",
    ];
    assert_eq!(
        listed.keys().map(String::as_str).collect::<Vec<_>>(),
        expected
    );
    // Computed here, independently of the bundle code.
    for (path, sum) in &listed {
        assert_eq!(
            &hex(&Sha256::digest(read_bytes(&out.join(path)))),
            sum,
            "{path}"
        );
    }
    assert_eq!(
        summary.files.len(),
        expected.len() + 1,
        "the summary lists SHA256SUMS too"
    );
    // The model files are the trained ones.
    for name in ["model.json", "weights.safetensors"] {
        assert_eq!(
            read_bytes(&out.join("model").join(name)),
            read_bytes(&trained().model.join(name))
        );
    }
    match Command::new("sha256sum")
        .args(["--check", "--strict", "SHA256SUMS"])
        .current_dir(&out)
        .output()
    {
        Ok(run) => assert!(
            run.status.success(),
            "sha256sum -c: {}",
            String::from_utf8_lossy(&run.stdout)
        ),
        Err(_) => eprintln!("sha256sum not installed: skipped the coreutils check"),
    }
    let report = verify(&out).unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
    assert_eq!(report.verified, expected.len());

    // Change one byte of the weights, remove a manifest, add a file.
    let weights = out.join("model/weights.safetensors");
    let mut bytes = read_bytes(&weights);
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&weights, bytes).unwrap();
    std::fs::remove_file(out.join("k8s/hpa.yaml")).unwrap();
    std::fs::write(out.join("k8s/extra.yaml"), "kind: Secret\n").unwrap();
    let report = verify(&out).unwrap();
    assert!(!report.is_ok());
    assert_eq!(
        report.problems,
        [
            Problem::Missing {
                path: "k8s/hpa.yaml".into()
            },
            Problem::Changed {
                path: "model/weights.safetensors".into()
            },
            Problem::Unlisted {
                path: "k8s/extra.yaml".into()
            },
        ]
    );
    assert_eq!(report.verified, expected.len() - 2);
    if let Ok(run) = Command::new("sha256sum")
        .args(["--check", "SHA256SUMS"])
        .current_dir(&out)
        .output()
    {
        assert!(
            !run.status.success(),
            "coreutils must agree that the bundle was changed"
        );
    }

    // A folder that is not a bundle is an error, not an empty report.
    let err = verify(dir.path()).unwrap_err();
    assert!(
        err.is_bad_input() && err.to_string().contains("SHA256SUMS is missing"),
        "{err}"
    );
}

#[test]
fn bundled_model_predicts_like_the_original_and_the_card_reports_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bundle");
    let summary = bundle(&out, &options());
    let t = trained();
    let inputs: Vec<&[f32]> = (0..16).map(|i| t.data.test.example(i)).collect();
    let original = Predictor::load(&t.model).unwrap().outputs(&inputs).unwrap();
    let mut bundled = Predictor::load(&out.join("model")).unwrap();
    assert_eq!(bundled.outputs(&inputs).unwrap(), original);
    // The ONNX file decodes and has the graph's named input and output.
    use prost::Message;
    let onnx =
        modelsmith::deploy::onnx_pb::ModelProto::decode(&read_bytes(&out.join("model.onnx"))[..])
            .unwrap();
    let graph = onnx.graph.unwrap();
    assert_eq!(graph.input[0].name.as_deref(), Some("input"));
    assert_eq!(graph.output[0].name.as_deref(), Some("probabilities"));

    let meta = &bundled.meta;
    let card = read(&out.join("README.md"));
    let accuracy = meta.metrics["test_accuracy"].as_f64().unwrap();
    for needle in [
        format!("# Model card: {}", summary.name),
        format!("| Test accuracy | {:.2}% |", accuracy * 100.0),
        "| Parameters | 121,930 |".to_string(),
        format!("{} (", thousands(meta.macs_per_example * 2)),
        "| 7 | `dense_2` | dense | 10 units, Softmax | [10] | 650 |".to_string(),
        "Trained on `digits`".to_string(),
        "multiplied by 0.003921569".to_string(),
        "## Intended use and limitations".to_string(),
        "sha256sum -c SHA256SUMS".to_string(),
        format!("serve --model model --name {} --addr", summary.name),
        format!("/v2/models/{}/infer", summary.name),
        "/predict?top_k=3".to_string(),
        "python3 client.py digit.png".to_string(),
        "| optimizer | `sgd` |".to_string(),
        "## What the model looks at".to_string(),
        "Integrated Gradients (black baseline, 50 steps) on 100 held-out examples of `digits`"
            .to_string(),
        "![7](explain/ig-7.png)".to_string(),
        "## Training cost".to_string(),
        "CPU-seconds over".to_string(),
    ] {
        assert!(card.contains(&needle), "the card lacks {needle:?}");
    }
    // Hugging Face's emissions metadata, from the footprint training recorded (grams).
    let grams = meta.metrics["footprint"]["co2e_grams"].as_f64().unwrap();
    let front = card
        .strip_prefix("---\nco2_eq_emissions:\n")
        .and_then(|rest| rest.split_once("\n---\n"))
        .unwrap_or_else(|| panic!("no co2_eq_emissions front matter: {card}"))
        .0;
    let emissions: f64 = front
        .lines()
        .find_map(|l| l.trim().strip_prefix("emissions: "))
        .unwrap()
        .parse()
        .unwrap();
    assert!((emissions - grams).abs() < 1e-6, "{front}");
    assert!(
        front.contains("source: \"modelsmith estimate (estimate: CPU time"),
        "{front}"
    );
    assert!(front.contains("training_type: \"pre-training\""), "{front}");
    // The class maps the card shows are in the bundle.
    assert!(out.join("explain/ig-7.png").is_file());
    // Latency: one row per batch size, figures from the summary.
    let latency = summary.latency.as_ref().unwrap();
    assert_eq!(
        latency.batches.iter().map(|b| b.batch).collect::<Vec<_>>(),
        [1, 32]
    );
    for b in &latency.batches {
        assert!(
            b.p50_ms > 0.0 && b.p99_ms >= b.p50_ms && b.runs == 5,
            "{b:?}"
        );
        assert!(card.contains(&format!(
            "| {} | {:.3} | {:.3} |",
            b.batch, b.p50_ms, b.p99_ms
        )));
    }
    assert!(card.contains(&format!("{} logical CPUs", latency.logical_cpus)));
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let groups: Vec<&str> = digits
        .as_bytes()
        .rchunks(3)
        .rev()
        .map(|g| std::str::from_utf8(g).unwrap())
        .collect();
    groups.join(",")
}

#[test]
fn client_compiles_and_preprocesses_a_png_like_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bundle");
    bundle(&out, &options());
    let python = match Command::new("python3").arg("--version").output() {
        Ok(o) if o.status.success() => "python3",
        _ => {
            eprintln!("python3 not installed: skipped the client.py checks");
            return;
        }
    };
    let compiled = Command::new(python)
        .args(["-m", "py_compile"])
        .arg(out.join("client.py"))
        .output()
        .unwrap();
    assert!(
        compiled.status.success(),
        "{}",
        String::from_utf8_lossy(&compiled.stderr)
    );

    // Two real test digits as PNG files: one grayscale, one RGB (the client converts to luma).
    let t = trained();
    let mut paths = Vec::new();
    for (i, rgb) in [(0usize, false), (1, true)] {
        let pixels: Vec<u8> = t
            .data
            .test
            .example(i)
            .iter()
            .map(|&v| (v * 255.0).round() as u8)
            .collect();
        let path = dir.path().join(format!("digit{i}.png"));
        if rgb {
            let tinted: Vec<u8> = pixels.iter().flat_map(|&p| [p, p / 2, 255 - p]).collect();
            image::RgbImage::from_raw(28, 28, tinted)
                .unwrap()
                .save(&path)
                .unwrap();
        } else {
            image::GrayImage::from_raw(28, 28, pixels)
                .unwrap()
                .save(&path)
                .unwrap();
        }
        paths.push(path);
    }
    let run = Command::new(python)
        .arg(out.join("client.py"))
        .args(["--protocol", "v2", "--dry-run"])
        .args(&paths)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let request: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    let input = &request["inputs"][0];
    assert_eq!(input["name"], "input");
    assert_eq!(input["datatype"], "FP32");
    assert_eq!(input["shape"], serde_json::json!([2, 28, 28, 1]));
    let sent: Vec<f64> = input["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let predictor = Predictor::load(&t.model).unwrap();
    let server: Vec<f32> = predictor
        .read_inputs(&paths)
        .unwrap()
        .into_iter()
        .flat_map(|(_, v)| v)
        .collect();
    assert_eq!(sent.len(), server.len());
    // Grayscale (the first image) matches exactly; the image library's RGB-to-gray conversion
    // works in floating point with its own rounding, so the client's may differ by one level.
    let scale = 1.0 / 255.0;
    for (k, (a, b)) in sent.iter().zip(&server).enumerate() {
        let tolerance = if k < 784 { 1e-6 } else { scale + 1e-6 };
        assert!(
            (a - *b as f64).abs() < tolerance,
            "value {k}: client {a}, server {b}"
        );
    }

    // A JPEG cannot go the v2 way: one clear line, exit code non-zero.
    std::fs::write(dir.path().join("x.jpg"), b"\xff\xd8\xff not really").unwrap();
    let bad = Command::new(python)
        .arg(out.join("client.py"))
        .args(["--protocol", "v2", "--dry-run"])
        .arg(dir.path().join("x.jpg"))
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a PNG file"));
}

#[test]
fn refuses_to_clobber_and_replaces_only_bundles() {
    let t = trained();
    let dir = tempfile::tempdir().unwrap();
    let quick = BundleOptions {
        latency_runs: 0,
        binary: None,
        ..BundleOptions::default()
    };
    let err = |out: &Path, options: &BundleOptions| {
        let e = write_bundle(&t.model, out, options).unwrap_err();
        assert!(e.is_bad_input(), "{e}");
        e.to_string()
    };

    // A non-empty folder: refused without --force, and with --force unless it is a bundle.
    let busy = dir.path().join("busy");
    std::fs::create_dir(&busy).unwrap();
    std::fs::write(busy.join("notes.txt"), "mine").unwrap();
    assert!(err(&busy, &quick).contains("is not empty"));
    let forced = BundleOptions {
        force: true,
        ..quick.clone()
    };
    assert!(err(&busy, &forced).contains("not a bundle"));
    assert_eq!(read(&busy.join("notes.txt")), "mine");

    // Inside the model folder, or a folder holding it.
    assert!(err(&t.model.join("bundle"), &quick).contains("inside the model folder"));
    assert!(err(&t.model.join("sub/../bundle"), &quick).contains("inside the model folder"));
    assert!(err(t.model.parent().unwrap(), &forced).contains("would replace the model"));

    // Names Kubernetes refuses; the folder is left untouched.
    let out = dir.path().join("bundle");
    for name in ["Digits", "digits_cnn", "9lives", "x-"] {
        let named = BundleOptions {
            name: Some(name.into()),
            ..quick.clone()
        };
        assert!(
            err(&out, &named).contains("not a valid Kubernetes name"),
            "{name}"
        );
    }
    let privileged = BundleOptions {
        port: 80,
        ..quick.clone()
    };
    assert!(err(&out, &privileged).contains("--port 80"));
    assert!(!out.exists());

    // A missing model folder, and a folder that is not a model.
    let e = write_bundle(&dir.path().join("nope"), &out, &quick).unwrap_err();
    assert!(
        e.is_bad_input() && e.to_string().contains("not a folder"),
        "{e}"
    );
    let e = write_bundle(&busy, &out, &quick).unwrap_err();
    assert!(
        e.is_bad_input() && e.to_string().contains("model.json is missing"),
        "{e}"
    );

    // An existing bundle is replaced whole with --force, and nothing is left beside it.
    write_bundle(&t.model, &out, &quick).unwrap();
    std::fs::write(out.join("stray.txt"), "old").unwrap();
    let renamed = BundleOptions {
        name: Some("digits".into()),
        force: true,
        ..quick.clone()
    };
    let summary = write_bundle(&t.model, &out, &renamed).unwrap();
    assert_eq!(summary.name, "digits");
    assert!(!out.join("stray.txt").exists());
    assert!(read(&out.join("Dockerfile")).contains("/models/digits"));
    assert!(verify(&out).unwrap().is_ok());
    let siblings: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        siblings.iter().all(|n| !n.starts_with('.')),
        "leftovers: {siblings:?}"
    );
}

#[test]
fn without_the_binary_the_dockerfile_takes_it_from_a_build_context() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bundle");
    let options = BundleOptions {
        latency_runs: 0,
        binary: None,
        ..BundleOptions::default()
    };
    let summary = bundle(&out, &options);
    assert!(!out.join("bin").exists());
    assert!(summary.latency.is_none());
    let text = read(&out.join("Dockerfile"));
    assert!(
        text.contains("COPY --from=modelsmith-bin modelsmith /usr/local/bin/modelsmith"),
        "{text}"
    );
    assert!(text.contains("--build-context modelsmith-bin="));
    assert!(read(&out.join("README.md")).contains("Not measured"));
    assert!(verify(&out).unwrap().is_ok());
}
