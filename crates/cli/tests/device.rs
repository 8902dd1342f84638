//! `--device`: `cuda` without a usable GPU (or in a build without the `cuda` feature) is bad
//! input — exit 2 and one line naming what is missing — and `auto` trains on what is there and
//! says which, once. On a machine with a GPU and a `cuda` build, `cuda` trains there instead.

mod common;

use common::{assert_bad_input, stderr};
use std::process::{Command, Output};

fn modelsmith(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_modelsmith"))
        .args(args)
        .output()
        .expect("the binary runs")
}

fn train(out: &std::path::Path, device: &str) -> Output {
    let out = out.to_str().unwrap();
    let args = [
        "train", "--data", "digits", "--model", "mlp", "--epochs", "1",
    ];
    let mut all = args.to_vec();
    all.extend(["--device", device, "--out", out, "--json"]);
    modelsmith(&all)
}

fn gpu_usable() -> bool {
    #[cfg(feature = "cuda")]
    return modelsmith_engine::cuda::probe(0).is_ok();
    #[cfg(not(feature = "cuda"))]
    false
}

#[test]
fn cuda_without_a_usable_gpu_is_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let out = train(&dir.path().join("m"), "cuda");
    if gpu_usable() {
        assert!(
            out.status.success(),
            "GPU training failed: {}",
            stderr(&out)
        );
        return;
    }
    assert_bad_input(&out, "--device cuda:0");
    let why = if cfg!(feature = "cuda") {
        "no usable GPU"
    } else {
        "built without GPU support"
    };
    assert!(stderr(&out).contains(why), "says why: {}", stderr(&out));
    assert!(
        !dir.path().join("m").exists(),
        "nothing is written before the device check"
    );
}

#[test]
fn auto_trains_on_what_is_there_and_says_so_once() {
    let dir = tempfile::tempdir().unwrap();
    let out = train(&dir.path().join("m"), "auto");
    assert!(out.status.success(), "train failed: {}", stderr(&out));
    let err = stderr(&out);
    let said: Vec<&str> = err.lines().filter(|l| l.starts_with("device:")).collect();
    let expected = if gpu_usable() {
        "device: auto chose cuda:0"
    } else {
        "device: auto chose the CPU ("
    };
    assert_eq!(said.len(), 1, "said once: {err}");
    assert!(said[0].starts_with(expected), "{}", said[0]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["test_accuracy"].as_f64().unwrap() > 0.8, "{report}");
    let model = std::fs::read_to_string(dir.path().join("m/model.json")).unwrap();
    assert!(
        model.contains("\"device\""),
        "the saved training settings name the device"
    );
}

#[test]
fn an_unknown_device_is_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let out = train(&dir.path().join("m"), "tpu:0");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("unknown device 'tpu:0'"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("panicked"));
}

#[test]
fn tune_auto_and_serve_refuse_cuda_without_a_usable_gpu() {
    if gpu_usable() {
        return; // covered by the GPU check (bench/gpu_check.sh)
    }
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("s.db").display());
    let out = dir.path().join("o");
    let out = out.to_str().unwrap();
    let runs = [
        modelsmith(&[
            "tune",
            "--trials",
            "1",
            "--storage",
            &db,
            "--device",
            "cuda",
        ]),
        modelsmith(&["auto", "--storage", &db, "--device", "cuda:0", "--out", out]),
        modelsmith(&["serve", "--model", out, "--device", "cuda"]),
    ];
    for run in &runs {
        assert_bad_input(run, "--device cuda:0");
    }
}
