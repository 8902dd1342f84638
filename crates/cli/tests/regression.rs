//! Regression end to end on a small real table (scikit-learn's diabetes set, 442 rows, the
//! fixture `crates/modelsmith/tests/fixtures/diabetes.csv` from `bench/regression_data.py`):
//! the task is chosen and said, then train → evaluate → predict → export → serve, each in the
//! target's own units and agreeing with the others; and the task rule's edge cases.

mod common;
use common::{assert_bad_input, stderr};

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

fn modelsmith(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_modelsmith"))
        .args(args)
        .env_remove("MODELSMITH_TOKEN")
        .output()
        .expect("the binary runs")
}

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../modelsmith/tests/fixtures/diabetes.csv")
}

fn json_of(out: &Output) -> Value {
    assert!(out.status.success(), "{}", stderr(out));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// The fixture's targets, in file order.
fn targets() -> Vec<f64> {
    let text = std::fs::read_to_string(fixture()).unwrap();
    text.lines()
        .skip(1)
        .map(|l| l.rsplit(',').next().unwrap().parse().unwrap())
        .collect()
}

fn std_dev(v: &[f64]) -> f64 {
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64).sqrt()
}

/// POSTs a JSON body; returns the status line and the body.
fn http_post(addr: &str, path: &str, body: &str) -> (String, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response.lines().next().unwrap_or("").to_string();
    let body = response.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

#[test]
fn a_regression_table_trains_evaluates_predicts_exports_and_serves_in_its_units() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("diabetes");
    let (data, model_s) = (
        format!("csv:{}", fixture().display()),
        model.to_str().unwrap().to_string(),
    );
    let out = modelsmith(&[
        "train",
        "--data",
        &data,
        "--target",
        "progression",
        "--optimizer",
        "adam",
        "--lr",
        "0.003",
        "--epochs",
        "40",
        "--out",
        &model_s,
        "--json",
    ]);
    let report = json_of(&out);
    // The task was chosen by the rule and said once, with the way to override it.
    let said = stderr(&out);
    assert!(
        said.contains("regression: `progression` has 214 distinct integer values in 442 rows; --task classification to override"),
        "{said}"
    );
    assert_eq!(report["task"], "regression");
    assert_eq!(report["loss"], "mse");
    assert!(report.get("test_accuracy").is_none(), "{report}");
    // Far better than predicting the mean (whose RMSE is the target's spread, R² 0).
    let spread = std_dev(&targets());
    let rmse = report["test_rmse"].as_f64().unwrap();
    let r2 = report["test_r2"].as_f64().unwrap();
    assert!(rmse < 0.85 * spread, "test RMSE {rmse} vs spread {spread}");
    assert!(r2 > 0.3, "test R² {r2}");
    assert!(report["test_mae"].as_f64().unwrap() < rmse);

    // evaluate: its own test split gives the training's figures again; the whole file scores.
    let again = json_of(&modelsmith(&["evaluate", "--model", &model_s, "--json"]));
    assert!((again["test_rmse"].as_f64().unwrap() - rmse).abs() < 1e-3 * rmse);
    let whole = json_of(&modelsmith(&[
        "evaluate", "--model", &model_s, "--data", &data, "--json",
    ]));
    assert_eq!(whole["examples"], 442);
    assert_eq!(whole["task"], "regression");
    let whole_rmse = whole["test_rmse"].as_f64().unwrap();

    // predict --csv: one value per row in the target's units; their error over the file is
    // evaluate's.
    let out = modelsmith(&[
        "predict",
        "--model",
        &model_s,
        fixture().to_str().unwrap(),
        "--csv",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("input,progression"));
    let predicted: Vec<f64> = lines
        .map(|l| l.rsplit(',').next().unwrap().parse().unwrap())
        .collect();
    let truth = targets();
    assert_eq!(predicted.len(), truth.len());
    let mse = predicted
        .iter()
        .zip(&truth)
        .map(|(p, t)| (p - t).powi(2))
        .sum::<f64>()
        / truth.len() as f64;
    assert!(
        (mse.sqrt() - whole_rmse).abs() < 1e-3 * whole_rmse,
        "predict's RMSE {} vs evaluate's {whole_rmse}",
        mse.sqrt()
    );

    // export: the ONNX graph ends in `values`, metadata names the task (its numbers are
    // checked against the engine in modelsmith's onnx_export tests).
    let onnx = dir.path().join("diabetes.onnx");
    let out = modelsmith(&[
        "export",
        "--model",
        &model_s,
        "--format",
        "onnx",
        "--out",
        onnx.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let bytes = std::fs::read(&onnx).unwrap();
    let has = |s: &str| bytes.windows(s.len()).any(|w| w == s.as_bytes());
    assert!(has("values") && has("modelsmith.task") && has("target_std"));

    // serve: the v2 protocol answers a `values` tensor, /predict named values, both the same
    // numbers as predict.
    let predictor = modelsmith::predict::Predictor::load(&model).unwrap();
    let rows = predictor.read_inputs(&[fixture()]).unwrap();
    let first_two: Vec<&Vec<f32>> = rows.iter().take(2).map(|(_, v)| v).collect();
    let mut child = Command::new(env!("CARGO_BIN_EXE_modelsmith"))
        .args(["serve", "--model", &model_s, "--addr", "127.0.0.1:0"])
        .env_remove("MODELSMITH_TOKEN")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut server_err = BufReader::new(child.stderr.take().unwrap());
    let mut banner = String::new();
    server_err.read_line(&mut banner).unwrap();
    let addr = banner
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in: {banner}"))
        .to_string();
    let width = first_two[0].len();
    let flat: Vec<f32> = first_two.iter().flat_map(|v| v.iter().copied()).collect();
    let request = serde_json::json!({"inputs": [{
        "name": "input", "datatype": "FP32", "shape": [2, width], "data": flat
    }]});
    let (status, body) = http_post(&addr, "/v2/models/diabetes/infer", &request.to_string());
    let (status2, body2) = http_post(&addr, "/predict", &serde_json::json!(first_two).to_string());
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    assert!(status.contains("200"), "{status} {body}");
    let v2: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v2["outputs"][0]["name"], "values");
    assert_eq!(v2["outputs"][0]["shape"], serde_json::json!([2, 1]));
    assert!(status2.contains("200"), "{status2} {body2}");
    let simple: Value = serde_json::from_str(&body2).unwrap();
    for i in 0..2 {
        let served = v2["outputs"][0]["data"][i].as_f64().unwrap();
        let named = &simple["predictions"][i]["values"][0];
        assert_eq!(named["target"], "progression");
        assert!((named["value"].as_f64().unwrap() - served).abs() < 1e-4);
        assert!(
            (served - predicted[i]).abs() < 1e-3 * predicted[i].abs().max(1.0),
            "served {served} vs predicted {}",
            predicted[i]
        );
    }
}

/// Writes `name` with columns `x,y` (y from `ys`), returns its `csv:` spec.
fn table(dir: &Path, name: &str, ys: &[&str]) -> String {
    let mut text = String::from("x,y\n");
    for (i, y) in ys.iter().enumerate() {
        text.push_str(&format!("{},{y}\n", i % 7));
    }
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    format!("csv:{}", path.display())
}

#[test]
fn the_task_rule_on_its_edge_cases() {
    let dir = tempfile::tempdir().unwrap();
    let train = |data: &str, extra: &[&str]| {
        let out_dir = dir.path().join("m");
        let mut args = vec![
            "train",
            "--data",
            data,
            "--target",
            "y",
            "--epochs",
            "1",
            "--out",
            out_dir.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        modelsmith(&args)
    };
    // Integers with few values: classes.
    let few: Vec<String> = (0..60).map(|i| (i % 3).to_string()).collect();
    let few: Vec<&str> = few.iter().map(String::as_str).collect();
    let out = train(&table(dir.path(), "few.csv", &few), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("classification: `y` has 3 distinct integer values in 60 rows"),
        "{}",
        stderr(&out)
    );
    // A float column with two values: a binary classification.
    let two: Vec<&str> = (0..40).map(|i| ["0.5", "1.5"][i % 2]).collect();
    let out = train(&table(dir.path(), "two.csv", &two), &[]);
    assert!(
        stderr(&out).contains("classification: `y` has 2 distinct values"),
        "{}",
        stderr(&out)
    );
    // ... or a regression when asked.
    let out = train(
        &table(dir.path(), "two.csv", &two),
        &["--task", "regression", "--json"],
    );
    assert_eq!(json_of(&out)["task"], "regression");
    // A constant target: nothing to learn, whatever the task.
    let constant = vec!["4"; 30];
    for extra in [&[][..], &["--task", "regression"][..]] {
        assert_bad_input(
            &train(&table(dir.path(), "constant.csv", &constant), extra),
            "single value `4` in all 30 rows",
        );
    }
    // NaN and infinite targets: refused, naming the line.
    let mut with_nan: Vec<&str> = (0..30).map(|i| ["1.5", "2.25", "3.5"][i % 3]).collect();
    with_nan[4] = "NaN";
    assert_bad_input(
        &train(&table(dir.path(), "nan.csv", &with_nan), &[]),
        "nan.csv:6: target column `y` has no value (`NaN`)",
    );
    with_nan[4] = "inf";
    assert_bad_input(
        &train(&table(dir.path(), "inf.csv", &with_nan), &[]),
        "inf.csv:6: target column `y` holds `inf`, which is not a finite number",
    );
    // Text cannot be regressed; a loss or metric of the other task is refused.
    let text: Vec<&str> = (0..30).map(|i| ["cat", "dog"][i % 2]).collect();
    assert_bad_input(
        &train(
            &table(dir.path(), "text.csv", &text),
            &["--task", "regression"],
        ),
        "regression needs numbers",
    );
    assert_bad_input(
        &train(&table(dir.path(), "text.csv", &text), &["--loss", "mse"]),
        "loss `mse` does not fit binary classification",
    );
    let values: Vec<String> = (0..60).map(|i| format!("{}.5", i * 3)).collect();
    let values: Vec<&str> = values.iter().map(String::as_str).collect();
    assert_bad_input(
        &train(
            &table(dir.path(), "values.csv", &values),
            &["--loss", "cross-entropy"],
        ),
        "does not fit regression of y",
    );
}

#[test]
fn several_targets_are_one_regression() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("x,a,b\n");
    for i in 0..200 {
        let x = (i % 20) as f64 / 10.0;
        text.push_str(&format!("{x},{},{}\n", 3.0 * x + 1.0, -2.0 * x + 0.25));
    }
    let path = dir.path().join("two.csv");
    std::fs::write(&path, text).unwrap();
    let data = format!("csv:{}", path.display());
    let out_dir = dir.path().join("m");
    let out = modelsmith(&[
        "train",
        "--data",
        &data,
        "--target",
        "a,b",
        "--optimizer",
        "adam",
        "--lr",
        "0.01",
        "--epochs",
        "60",
        "--out",
        out_dir.to_str().unwrap(),
        "--json",
    ]);
    let report = json_of(&out);
    assert!(
        stderr(&out).contains("regression: 2 target columns (a, b)"),
        "{}",
        stderr(&out)
    );
    assert!(report["test_r2"].as_f64().unwrap() > 0.9, "{report}");
    let out = modelsmith(&[
        "predict",
        "--model",
        out_dir.to_str().unwrap(),
        path.to_str().unwrap(),
        "--csv",
    ]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("input,a,b\n"), "{text}");
    // Classification of two columns is refused.
    assert_bad_input(
        &modelsmith(&[
            "train",
            "--data",
            &data,
            "--target",
            "a,b",
            "--task",
            "classification",
            "--out",
            out_dir.to_str().unwrap(),
        ]),
        "classification learns one",
    );
}
