//! ONNX export on real trained models: every layer kind the spec supports, run in tract-onnx at
//! batch 1 and batch 7 (the batch axis is dynamic) on real test digits, against the
//! Predictor's probabilities.

use std::path::{Path, PathBuf};

use modelsmith::data::{load, LoadOptions, LoadedData};
use modelsmith::deploy::onnx_pb::ModelProto;
use modelsmith::deploy::{export, ExportFormat};
use modelsmith::model::read_weights_file;
use modelsmith::predict::Predictor;
use modelsmith::train::{train, Silent, TrainConfig};
use prost::Message;
use tract_onnx::prelude::*;

/// The first `n_train` training and `n_test` test digits.
fn digits(n_train: usize, n_test: usize) -> LoadedData {
    let data = load("digits", &LoadOptions::default()).unwrap();
    LoadedData {
        train: data.train.subset(&(0..n_train).collect::<Vec<_>>()),
        test: data.test.subset(&(0..n_test).collect::<Vec<_>>()),
        info: data.info,
        task_choice: None,
    }
}

/// Trains `model` (a built-in name or a JSON spec) for four epochs and returns the model folder.
fn trained(dir: &Path, name: &str, model: &str, data: &LoadedData) -> PathBuf {
    let model = if model.trim_start().starts_with('{') {
        let path = dir.join(format!("{name}.json"));
        std::fs::write(&path, model).unwrap();
        path.display().to_string()
    } else {
        model.to_string()
    };
    let out = dir.join(name);
    let config = TrainConfig {
        model,
        epochs: 4,
        batch_size: 32,
        optimizer: "adam".into(),
        lr: 3e-3,
        ..TrainConfig::default()
    };
    train(&config, data, &out, false, &mut Silent).unwrap();
    out
}

/// Exports `model_dir` to ONNX and checks tract's outputs against the Predictor's on the test
/// images at batch 1 and 7. Returns the decoded model for structural checks.
fn check_onnx(model_dir: &Path, data: &LoadedData) -> ModelProto {
    let onnx_path = model_dir.join("model.onnx");
    let summary = export(model_dir, ExportFormat::Onnx, &onnx_path).unwrap();
    assert_eq!(summary.bytes, std::fs::metadata(&onnx_path).unwrap().len());

    let runnable = tract_onnx::onnx()
        .model_for_path(&onnx_path)
        .unwrap()
        .into_optimized()
        .unwrap()
        .into_runnable()
        .unwrap();
    let mut predictor = Predictor::load(model_dir).unwrap();
    let shape = predictor.meta.input_shape.clone();
    let classes = predictor.meta.outputs;
    let test = &data.test;
    let mut worst = 0f32;
    let mut confident = 0f32;
    for (start, batch) in [(0, 1), (1, 7), (8, 7)] {
        let inputs: Vec<&[f32]> = (start..start + batch).map(|i| test.example(i)).collect();
        let ours = predictor.outputs(&inputs).unwrap();
        let mut dims = vec![batch];
        dims.extend_from_slice(&shape);
        let flat: Vec<f32> = inputs.concat();
        let x = Tensor::from_shape(&dims, &flat).unwrap();
        let outputs = runnable.run(tvec!(x.into())).unwrap();
        let theirs = outputs[0].to_array_view::<f32>().unwrap();
        assert_eq!(theirs.shape(), &[batch, classes]);
        for (b, row) in ours.iter().enumerate() {
            for (k, &p) in row.iter().enumerate() {
                let d = (p - theirs[[b, k]]).abs();
                worst = worst.max(d);
                assert!(
                    d <= 1e-4,
                    "{}: example {} class {k}: ours {p}, tract {}",
                    model_dir.display(),
                    start + b,
                    theirs[[b, k]]
                );
            }
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-4);
            confident = row.iter().fold(confident, |m, &p| m.max(p));
        }
    }
    eprintln!(
        "{}: max |diff| {worst:e}, top probability {confident}",
        model_dir.display()
    );
    // A model that outputs uniform probabilities would hide a wrong mapping.
    assert!(
        confident > 0.3,
        "{}: top probability {confident}",
        model_dir.display()
    );
    ModelProto::decode(std::fs::read(&onnx_path).unwrap().as_slice()).unwrap()
}

fn op_types(model: &ModelProto) -> Vec<String> {
    let graph = model.graph.as_ref().unwrap();
    graph
        .node
        .iter()
        .map(|n| n.op_type.clone().unwrap())
        .collect()
}

/// Residual block with batch norm, "same" convolutions and pools with asymmetric padding,
/// GELU, dropout, global average pooling, ELU.
const RESIDUAL: &str = r#"{"layers": [
  {"type": "conv2d", "name": "stem", "filters": 8, "kernel": 3, "padding": "same", "activation": "relu"},
  {"type": "batch_norm", "name": "bn1", "momentum": 0.9},
  {"type": "conv2d", "filters": 8, "kernel": 3, "padding": "same", "bias": false},
  {"type": "batch_norm", "momentum": 0.9},
  {"type": "add", "with": "bn1"},
  {"type": "activation", "activation": "gelu"},
  {"type": "avg_pool2d", "pool": 3, "stride": 2, "padding": "same"},
  {"type": "dropout", "rate": 0.25},
  {"type": "conv2d", "filters": 12, "kernel": 3, "stride": 2, "padding": "same", "activation": "elu"},
  {"type": "max_pool2d", "pool": 3, "stride": 2, "padding": "same"},
  {"type": "global_avg_pool"},
  {"type": "dense", "units": 16, "activation": "elu(0.5)"},
  {"type": "dense", "units": 10, "activation": "softmax"}
]}"#;

/// Valid padding, strides, a dense layer straight on an image (the engine flattens NHWC),
/// batch norm on a flat tensor, leaky ReLU, sigmoid, tanh, a `input` branch and an average pool.
const FLAT: &str = r#"{"layers": [
  {"type": "conv2d", "name": "c1", "filters": 6, "kernel": 5, "stride": 2, "activation": "leaky_relu(0.1)"},
  {"type": "max_pool2d", "pool": 2},
  {"type": "avg_pool2d", "name": "p2", "pool": 2, "stride": 1},
  {"type": "dense", "name": "d1", "units": 24, "activation": "sigmoid"},
  {"type": "dense", "input": "p2", "units": 24, "bias": false},
  {"type": "batch_norm", "momentum": 0.9},
  {"type": "activation", "activation": "tanh"},
  {"type": "add", "with": "d1"},
  {"type": "dropout", "rate": 0.5},
  {"type": "dense", "units": 10}
]}"#;

#[test]
fn exported_onnx_matches_the_engine_for_every_layer_kind() {
    let data = digits(1000, 15);
    let dir = tempfile::tempdir().unwrap();
    for (name, model) in [
        ("residual", RESIDUAL),
        ("flat", FLAT),
        ("seed", "seed-cnn"),
        ("mlp", "mlp"),
    ] {
        let model_dir = trained(dir.path(), name, model, &data);
        let proto = check_onnx(&model_dir, &data);
        let ops = op_types(&proto);
        assert!(!ops.iter().any(|op| op == "Dropout"), "{name}: {ops:?}");
        assert_eq!(ops.last().map(String::as_str), Some("Softmax"));
        if name == "residual" {
            for op in [
                "Conv",
                "BatchNormalization",
                "Add",
                "Erf",
                "AveragePool",
                "MaxPool",
                "GlobalAveragePool",
                "Elu",
                "Gemm",
            ] {
                assert!(ops.iter().any(|o| o == op), "{name}: no {op} in {ops:?}");
            }
        }
    }
}

#[test]
fn onnx_has_named_io_dynamic_batch_opset_and_preprocessing_metadata() {
    let data = digits(500, 15);
    let dir = tempfile::tempdir().unwrap();
    let model_dir = trained(dir.path(), "seed", "seed-cnn", &data);
    let proto = check_onnx(&model_dir, &data);
    assert!(proto
        .opset_import
        .iter()
        .any(|o| o.domain.as_deref().unwrap_or("").is_empty() && o.version.unwrap() >= 13));
    let graph = proto.graph.as_ref().unwrap();
    let dims = |v: &modelsmith::deploy::onnx_pb::ValueInfoProto| -> Vec<String> {
        use modelsmith::deploy::onnx_pb::{tensor_shape_proto::dimension::Value, type_proto};
        let Some(type_proto::Value::TensorType(t)) = v.r#type.as_ref().unwrap().value.as_ref()
        else {
            panic!("not a tensor")
        };
        t.shape
            .as_ref()
            .unwrap()
            .dim
            .iter()
            .map(|d| match d.value.as_ref().unwrap() {
                Value::DimValue(n) => n.to_string(),
                Value::DimParam(p) => p.clone(),
            })
            .collect()
    };
    assert_eq!(graph.input.len(), 1);
    assert_eq!(graph.input[0].name.as_deref(), Some("input"));
    assert_eq!(dims(&graph.input[0]), ["batch", "28", "28", "1"]);
    assert_eq!(graph.output[0].name.as_deref(), Some("probabilities"));
    assert_eq!(dims(&graph.output[0]), ["batch", "10"]);
    let meta = |key: &str| {
        proto
            .metadata_props
            .iter()
            .find(|p| p.key.as_deref() == Some(key))
            .and_then(|p| p.value.clone())
            .unwrap_or_else(|| panic!("no metadata {key}"))
    };
    let pre: serde_json::Value = serde_json::from_str(&meta("modelsmith.preprocessing")).unwrap();
    assert_eq!(pre["kind"], "image");
    assert!((pre["scale"].as_f64().unwrap() - 1.0 / 255.0).abs() < 1e-9);
    assert_eq!(meta("modelsmith.input_layout"), "NHWC");
    let names: Vec<String> = serde_json::from_str(&meta("modelsmith.class_names")).unwrap();
    assert_eq!(names.len(), 10);
    // Initializers keep the engine's parameter names.
    let inits: Vec<&str> = graph
        .initializer
        .iter()
        .map(|t| t.name.as_deref().unwrap())
        .collect();
    assert!(inits.contains(&"conv2d_1.weight") && inits.contains(&"dense_2.bias"));
}

#[test]
fn safetensors_export_copies_the_weights_and_bad_input_is_reported() {
    let data = digits(500, 15);
    let dir = tempfile::tempdir().unwrap();
    let model_dir = trained(dir.path(), "mlp", "mlp", &data);
    let out = dir.path().join("weights-export.safetensors");
    let summary = export(&model_dir, ExportFormat::Safetensors, &out).unwrap();
    let original = read_weights_file(&model_dir.join("weights.safetensors")).unwrap();
    assert_eq!(read_weights_file(&out).unwrap(), original);
    assert_eq!(summary.tensors, original.len());

    let missing = export(
        &dir.path().join("no-such-model"),
        ExportFormat::Onnx,
        &dir.path().join("x.onnx"),
    )
    .unwrap_err();
    assert!(missing.is_bad_input(), "{missing}");
    assert!(missing.to_string().contains("model.json"), "{missing}");

    let bad: modelsmith::Error = "tflite".parse::<ExportFormat>().unwrap_err();
    assert!(bad.is_bad_input() && bad.to_string().contains("onnx or safetensors"));
    assert_eq!("ONNX".parse::<ExportFormat>().unwrap(), ExportFormat::Onnx);

    let no_folder = export(
        &model_dir,
        ExportFormat::Onnx,
        &dir.path().join("missing-dir/model.onnx"),
    )
    .unwrap_err();
    assert!(no_folder.is_bad_input(), "{no_folder}");
}

#[test]
fn a_regression_model_exports_values_in_the_targets_units() {
    // The diabetes fixture: ONNX must end in `values` (std × output + mean), agreeing with the
    // Predictor, whose values are in the target's units.
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/diabetes.csv");
    let options = LoadOptions {
        target: Some("progression".into()),
        ..LoadOptions::default()
    };
    let data = load(&format!("csv:{}", fixture.display()), &options).unwrap();
    assert!(data.info.task.is_regression());
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("diabetes");
    let config = TrainConfig {
        epochs: 3,
        optimizer: "adam".into(),
        lr: 3e-3,
        ..TrainConfig::default()
    };
    train(&config, &data, &out, false, &mut Silent).unwrap();
    let onnx_path = out.join("model.onnx");
    export(&out, ExportFormat::Onnx, &onnx_path).unwrap();
    let runnable = tract_onnx::onnx()
        .model_for_path(&onnx_path)
        .unwrap()
        .into_optimized()
        .unwrap()
        .into_runnable()
        .unwrap();
    let mut predictor = Predictor::load(&out).unwrap();
    let inputs: Vec<&[f32]> = (0..9).map(|i| data.test.example(i)).collect();
    let ours = predictor.outputs(&inputs).unwrap();
    let x = Tensor::from_shape(&[9, inputs[0].len()], &inputs.concat()).unwrap();
    let outputs = runnable.run(tvec!(x.into())).unwrap();
    let theirs = outputs[0].to_array_view::<f32>().unwrap();
    assert_eq!(theirs.shape(), &[9, 1]);
    for (i, row) in ours.iter().enumerate() {
        // In the target's units (the disease score runs 25–346), not standardized.
        assert!(row[0] > 10.0 && row[0] < 400.0, "{}", row[0]);
        assert!(
            (row[0] - theirs[[i, 0]]).abs() <= 1e-4 * row[0].abs(),
            "example {i}: ours {}, tract {}",
            row[0],
            theirs[[i, 0]]
        );
    }
    let model = ModelProto::decode(std::fs::read(&onnx_path).unwrap().as_slice()).unwrap();
    let ops = op_types(&model);
    assert_eq!(&ops[ops.len() - 2..], ["Mul", "Add"], "{ops:?}");
    let graph = model.graph.as_ref().unwrap();
    assert_eq!(graph.output[0].name.as_deref(), Some("values"));
}
