//! `modelsmith explain` end to end: the small CNN of the TensorFlow fixture on the bundled
//! digits' test split (class maps, completeness, faithfulness), one PNG file explained by
//! Grad-CAM, a table model's permutation importance, and bad requests answered with exit 2 and
//! one line.

mod common;
use common::{assert_bad_input, stderr, write_table};

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn modelsmith(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_modelsmith"))
        .args(args)
        .output()
        .expect("the binary runs")
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}); stderr: {}", stderr(out)))
}

/// The fixture model (trained on the bundled digits), read in place; outputs go elsewhere.
fn cnn() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../modelsmith/tests/fixtures/explain-cnn")
}

#[test]
fn explains_held_out_digits_and_a_png_file() {
    let dir = tempfile::tempdir().unwrap();
    let model = cnn();
    let (model, out) = (model.to_str().unwrap(), dir.path().join("maps"));
    let run = modelsmith(&[
        "explain",
        "--model",
        model,
        "--limit",
        "200",
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert!(run.status.success(), "{}", stderr(&run));
    let report = json(&run);
    let data = &report["data"];
    assert_eq!(data["explained"], 200);
    assert_eq!(data["method"], "ig");
    // Completeness within 1% for every digit (refining where 50 steps miss it), and the
    // attributions point at what the model uses.
    assert_eq!(data["completeness"]["within_one_percent"], 1.0, "{data}");
    let beats = data["faithfulness"]["deletion_beats_random"]
        .as_f64()
        .unwrap();
    assert!(beats >= 0.95, "deletion beats random for {beats}");
    let maps = report["heatmaps"].as_array().unwrap();
    assert_eq!(maps.len(), 10);
    for m in maps {
        let img = image::open(m.as_str().unwrap()).unwrap();
        assert!(img.width() >= 224, "scaled up to be readable");
    }
    assert!(stderr(&run).contains("class map(s) written"));

    // One file, by Grad-CAM, for a named class.
    let test = modelsmith::data::load("digits", &Default::default())
        .unwrap()
        .test;
    let pixels: Vec<u8> = test
        .example(0)
        .iter()
        .map(|v| (v * 255.0).round() as u8)
        .collect();
    let png = dir.path().join("digit.png");
    image::GrayImage::from_raw(28, 28, pixels)
        .unwrap()
        .save(&png)
        .unwrap();
    let run = modelsmith(&[
        "explain",
        "--model",
        model,
        png.to_str().unwrap(),
        "--method",
        "gradcam",
        "--target",
        "6",
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert!(run.status.success(), "{}", stderr(&run));
    let report = json(&run);
    let input = &report["inputs"][0];
    assert_eq!(input["output"], "6");
    assert_eq!(input["values"].as_array().unwrap().len(), 784);
    let heatmap = input["heatmap"].as_str().unwrap();
    assert!(heatmap.ends_with("digit-gradcam-6.png") && Path::new(heatmap).is_file());
}

#[test]
fn explains_a_table_model_by_permutation_importance() {
    let dir = tempfile::tempdir().unwrap();
    let table = write_table(dir.path(), 600);
    let model = dir.path().join("model");
    let data = format!("csv:{}", table.display());
    let train = modelsmith(&[
        "train",
        "--data",
        &data,
        "--target",
        "label",
        "--epochs",
        "20",
        "--out",
        model.to_str().unwrap(),
    ]);
    assert!(train.status.success(), "{}", stderr(&train));
    let run = modelsmith(&["explain", "--model", model.to_str().unwrap(), "--json"]);
    assert!(run.status.success(), "{}", stderr(&run));
    let report = json(&run);
    let p = &report["permutation"];
    assert_eq!(p["metric"], "accuracy");
    let columns = p["columns"].as_array().unwrap();
    // label = a + 0.5 b > 0: `a` matters most, `noise` not measurably.
    assert_eq!(columns[0]["column"], "a");
    let noise = columns.iter().find(|c| c["column"] == "noise").unwrap();
    assert!(noise["low"].as_f64().unwrap() <= 0.0 && noise["high"].as_f64().unwrap() >= 0.0);
    // Per-column IG: three columns, in the output's units.
    assert_eq!(report["data"]["top_units"].as_array().unwrap().len(), 3);
    assert!(stderr(&run).contains("permutation importance over"));

    // A table model has no convolution.
    let out = modelsmith(&[
        "explain",
        "--model",
        model.to_str().unwrap(),
        "--method",
        "gradcam",
    ]);
    assert_bad_input(&out, "Grad-CAM needs a convolution");
    let out = modelsmith(&[
        "explain",
        "--model",
        model.to_str().unwrap(),
        "--baseline",
        "blurred",
    ]);
    assert_bad_input(&out, "is for images");
}

#[test]
fn bad_requests_exit_2_with_one_line() {
    let model = cnn();
    let model = model.to_str().unwrap();
    let cases: [(&[&str], &str); 7] = [
        (&["--target", "dog"], "no class of that name"),
        (&["--method", "lime"], "unknown explanation method"),
        (&["--method", "permutation"], "for table models"),
        (&["--baseline", "mean"], "is for tables"),
        (&["--steps", "0"], "at least one step"),
        (&["--tolerance=-1"], "--tolerance"),
        (&["/nonexistent/digit.png"], "digit.png"),
    ];
    for (extra, needle) in cases {
        let mut args = vec!["explain", "--model", model, "--limit", "5"];
        args.extend_from_slice(extra);
        assert_bad_input(&modelsmith(&args), needle);
    }
    assert_bad_input(
        &modelsmith(&["explain", "--model", "/nonexistent/model"]),
        "/nonexistent/model",
    );
}
