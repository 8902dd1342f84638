//! `modelsmith deploy` end to end: the binary writes a bundle from a model trained on the real
//! digits, the bundle's own copy of the binary serves predictions from the bundle's model,
//! `--verify` passes and then catches a changed file, and bad input exits 2 with one line.

mod common;
use common::{assert_bad_input, stderr};

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use modelsmith::data::{load, LoadOptions, LoadedData};
use modelsmith::train::{train, Silent, TrainConfig};

fn run(program: &Path, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .expect("the binary runs")
}

fn modelsmith(args: &[&str]) -> Output {
    run(Path::new(env!("CARGO_BIN_EXE_modelsmith")), args)
}

/// A seed CNN trained one epoch on 1,500 real digits, and the first test digit as a PNG.
fn trained(dir: &Path) -> (PathBuf, PathBuf, LoadedData) {
    let data = load("digits", &LoadOptions::default()).unwrap();
    let data = LoadedData {
        train: data.train.subset(&(0..1500).collect::<Vec<_>>()),
        test: data.test.subset(&(0..20).collect::<Vec<_>>()),
        info: data.info,
        task_choice: None,
    };
    let model = dir.join("digits");
    let config = TrainConfig {
        epochs: 1,
        ..TrainConfig::default()
    };
    train(&config, &data, &model, false, &mut Silent).unwrap();
    let pixels: Vec<u8> = data
        .test
        .example(0)
        .iter()
        .map(|&v| (v * 255.0).round() as u8)
        .collect();
    let png = dir.join("digit.png");
    image::GrayImage::from_raw(28, 28, pixels)
        .unwrap()
        .save(&png)
        .unwrap();
    (model, png, data)
}

/// Starts the bundle's binary with the Dockerfile's ENTRYPOINT (the image's paths mapped into
/// the bundle, the address onto a free loopback port), waits for readiness, posts the PNG to
/// `/predict` and checks the answer against `modelsmith predict`'s (`expected`, its --json).
fn serve_as_the_image_would(bundle: &Path, png: &Path, expected: &[u8]) {
    use std::io::{BufRead, BufReader, Read, Write};
    let dockerfile = std::fs::read_to_string(bundle.join("Dockerfile")).unwrap();
    let entrypoint = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix("ENTRYPOINT "))
        .expect("an ENTRYPOINT");
    let argv: Vec<String> = serde_json::from_str(entrypoint).unwrap();
    assert_eq!(argv[..2], ["modelsmith", "serve"]);
    let model_dir = bundle.join("model").display().to_string();
    let args: Vec<String> = argv[1..]
        .iter()
        .map(|a| {
            if a.starts_with("/models/") {
                model_dir.clone()
            } else if a.starts_with("0.0.0.0:") {
                "127.0.0.1:0".to_string()
            } else {
                a.clone()
            }
        })
        .collect();
    let mut child = Command::new(bundle.join("bin/modelsmith"))
        .args(&args)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut banner = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut banner)
        .unwrap();
    let addr = banner
        .split("http://")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in: {banner}"))
        .to_string();
    let request = |head: String, body: &[u8]| {
        let mut stream = std::net::TcpStream::connect(&addr).unwrap();
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(body).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    };
    let ready = request(
        format!("GET /v2/health/ready HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
        b"",
    );
    assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");
    let image = std::fs::read(png).unwrap();
    let answer = request(
        format!(
            "POST /predict HTTP/1.1\r\nHost: {addr}\r\nContent-Type: image/png\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            image.len()
        ),
        &image,
    );
    let _ = child.kill();
    let _ = child.wait();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let body: serde_json::Value =
        serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    let predicted: serde_json::Value = serde_json::from_slice(expected).unwrap();
    assert_eq!(body["predictions"][0]["class"], predicted[0]["class"]);
    let (served, direct) = (
        body["predictions"][0]["probability"].as_f64().unwrap(),
        predicted[0]["probability"].as_f64().unwrap(),
    );
    assert!((served - direct).abs() < 1e-5, "{served} vs {direct}");
}

#[test]
fn writes_a_bundle_whose_binary_serves_its_model_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let (model, png, _) = trained(dir.path());
    let out = dir.path().join("bundle");
    let (model_s, out_s) = (model.to_str().unwrap(), out.to_str().unwrap());
    let written = modelsmith(&[
        "deploy",
        "--model",
        model_s,
        "--out",
        out_s,
        "--image",
        "registry.example.com/digits:1.0",
        "--replicas",
        "3",
        "--latency-runs",
        "10",
        "--json",
    ]);
    assert!(written.status.success(), "{}", stderr(&written));
    let summary: serde_json::Value = serde_json::from_slice(&written.stdout).unwrap();
    assert_eq!(summary["name"], "digits");
    assert_eq!(summary["image"], "registry.example.com/digits:1.0");
    let files: Vec<&str> = summary["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    for expected in [
        "bin/modelsmith",
        "Dockerfile",
        "k8s/hpa.yaml",
        "README.md",
        "SHA256SUMS",
    ] {
        assert!(
            files.contains(&expected),
            "{expected} missing from {files:?}"
        );
    }
    assert_eq!(summary["latency"]["batches"][1]["batch"], 32);

    // The flags reach the manifests.
    let deployment = std::fs::read_to_string(out.join("k8s/deployment.yaml")).unwrap();
    let deployment: serde_yaml_ng::Value = serde_yaml_ng::from_str(&deployment).unwrap();
    assert_eq!(deployment["spec"]["replicas"], 3);
    assert_eq!(
        deployment["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.example.com/digits:1.0"
    );

    // The bundled binary is this one, and it predicts from the bundled model.
    let bundled = out.join("bin/modelsmith");
    assert_eq!(
        std::fs::read(&bundled).unwrap(),
        std::fs::read(env!("CARGO_BIN_EXE_modelsmith")).unwrap()
    );
    let model_in_bundle = out.join("model");
    let predicted = run(
        &bundled,
        &[
            "predict",
            "--model",
            model_in_bundle.to_str().unwrap(),
            png.to_str().unwrap(),
            "--json",
        ],
    );
    assert!(predicted.status.success(), "{}", stderr(&predicted));
    let original = modelsmith(&[
        "predict",
        "--model",
        model_s,
        png.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(predicted.stdout, original.stdout);
    serve_as_the_image_would(&out, &png, &original.stdout);

    match Command::new("sha256sum")
        .args(["-c", "SHA256SUMS"])
        .current_dir(&out)
        .output()
    {
        Ok(check) => assert!(
            check.status.success(),
            "{}",
            String::from_utf8_lossy(&check.stdout)
        ),
        Err(_) => eprintln!("sha256sum not installed: skipped the coreutils check"),
    }
    let verified = modelsmith(&["deploy", "--verify", out_s]);
    assert!(verified.status.success(), "{}", stderr(&verified));
    assert!(
        // 14 files, and the model card's ten class maps (explain/ig-0.png ... ig-9.png).
        stderr(&verified).contains("24 files OK"),
        "{}",
        stderr(&verified)
    );

    // Writing again needs --force, which replaces the bundle.
    assert_bad_input(
        &modelsmith(&[
            "deploy",
            "--model",
            model_s,
            "--out",
            out_s,
            "--latency-runs",
            "0",
        ]),
        "not empty",
    );
    let again = modelsmith(&[
        "deploy",
        "--model",
        model_s,
        "--out",
        out_s,
        "--latency-runs",
        "0",
        "--no-binary",
        "--force",
    ]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(!out.join("bin").exists());

    // A changed file fails verification: exit 1, the file named.
    std::fs::write(out.join("k8s/service.yaml"), "kind: Service\n").unwrap();
    let tampered = modelsmith(&["deploy", "--verify", out_s]);
    assert_eq!(tampered.status.code(), Some(1), "{}", stderr(&tampered));
    assert!(stderr(&tampered).contains("k8s/service.yaml: checksum does not match"));
    assert!(stderr(&tampered).contains("verification failed"));
}

#[test]
fn bad_input_exits_2_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let (model, _, _) = trained(dir.path());
    let model_s = model.to_str().unwrap();
    let out = dir.path().join("out");
    let out_s = out.to_str().unwrap();
    let quick = ["--latency-runs", "0", "--no-binary"];
    let deploy = |extra: &[&str]| {
        let mut args = vec!["deploy"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&quick);
        modelsmith(&args)
    };

    let missing = dir.path().join("missing");
    assert_bad_input(
        &deploy(&["--model", missing.to_str().unwrap(), "--out", out_s]),
        "not a folder",
    );
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    assert_bad_input(
        &deploy(&["--model", empty.to_str().unwrap(), "--out", out_s]),
        "model.json is missing",
    );
    let broken = dir.path().join("broken");
    std::fs::create_dir(&broken).unwrap();
    std::fs::write(broken.join("model.json"), "{ not json").unwrap();
    assert_bad_input(
        &deploy(&["--model", broken.to_str().unwrap(), "--out", out_s]),
        "invalid model.json",
    );

    let inside = model.join("bundle");
    assert_bad_input(
        &deploy(&["--model", model_s, "--out", inside.to_str().unwrap()]),
        "inside the model folder",
    );
    assert_bad_input(
        &deploy(&["--model", model_s, "--out", "/", "--force"]),
        "would replace the model",
    );
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("keep.txt"), "mine").unwrap();
    assert_bad_input(&deploy(&["--model", model_s, "--out", out_s]), "not empty");
    assert_bad_input(
        &deploy(&["--model", model_s, "--out", out_s, "--force"]),
        "not a bundle",
    );
    assert_eq!(
        std::fs::read_to_string(out.join("keep.txt")).unwrap(),
        "mine"
    );

    let fresh = dir.path().join("fresh");
    let fresh_s = fresh.to_str().unwrap();
    assert_bad_input(
        &deploy(&["--model", model_s, "--out", fresh_s, "--name", "My_Model"]),
        "not a valid Kubernetes name",
    );
    assert_bad_input(
        &deploy(&["--model", model_s, "--out", fresh_s, "--port", "80"]),
        "--port 80",
    );
    assert_bad_input(
        &deploy(&[
            "--model",
            model_s,
            "--out",
            fresh_s,
            "--cpu-request",
            "lots",
        ]),
        "--cpu-request 'lots'",
    );
    assert_bad_input(
        &deploy(&[
            "--model",
            model_s,
            "--out",
            fresh_s,
            "--memory-request",
            "4Gi",
        ]),
        "above --memory-limit",
    );
    assert_bad_input(
        &deploy(&["--model", model_s, "--out", fresh_s, "--replicas", "0"]),
        "--replicas",
    );
    assert_bad_input(
        &deploy(&[
            "--model",
            model_s,
            "--out",
            fresh_s,
            "--image",
            "has space:1",
        ]),
        "--image",
    );
    assert!(!fresh.exists(), "nothing is written on bad input");

    // --verify on something that is not a bundle, and missing or conflicting flags.
    assert_bad_input(
        &modelsmith(&["deploy", "--verify", model_s]),
        "SHA256SUMS is missing",
    );
    assert_eq!(modelsmith(&["deploy"]).status.code(), Some(2));
    assert_eq!(
        modelsmith(&["deploy", "--model", model_s]).status.code(),
        Some(2)
    );
    assert_eq!(
        modelsmith(&["deploy", "--verify", out_s, "--model", model_s])
            .status
            .code(),
        Some(2)
    );
}
