//! The saved model folder as a file format others may damage or forge: shapes in `model.json`
//! are checked before anything is allocated, weights must be finite and must be the ones
//! saved with that `model.json`, and one run at a time writes a folder.

use modelsmith::data::{ColumnKind, ColumnTransform, DataInfo, Preprocessing};
use modelsmith::model::{
    build_network, load_model, save_model, LayerKind, LayerSpec, ModelMeta, ModelSpec, OutputLayer,
    OutputLock, MODEL_FORMAT_VERSION,
};
use modelsmith::task::Task;
use serde_json::Value;
use std::path::Path;

/// A saved 4-feature, 3-class MLP with its table preprocessing.
fn saved_mlp(dir: &Path) {
    let spec = ModelSpec::builtin("mlp", OutputLayer::classes(3), &[4]).unwrap();
    let net = build_network(&spec, &[4], 3, 1).unwrap();
    let columns = (0..4)
        .map(|i| ColumnTransform {
            name: format!("f{i}"),
            kind: ColumnKind::Numeric {
                mean: 0.0,
                std: 1.0,
                impute: 0.0,
            },
        })
        .collect();
    let meta = ModelMeta {
        format_version: MODEL_FORMAT_VERSION,
        spec,
        input_shape: vec![4],
        outputs: 3,
        data: DataInfo {
            spec: "csv:t.csv".into(),
            task: Task::Classification {
                classes: vec!["a".into(), "b".into(), "c".into()],
            },
            preprocessing: Preprocessing::Table {
                target: "y".into(),
                columns,
            },
        },
        params: net.param_count(),
        macs_per_example: net.macs_per_example(),
        metrics: Value::Null,
        training: Value::Null,
        weights_sha256: None,
    };
    save_model(dir, &meta, &net).unwrap();
}

/// Rewrites `model.json` through `edit`, then loads the folder and returns the error text.
fn load_error_after(edit: impl Fn(&mut Value)) -> String {
    let dir = tempfile::tempdir().unwrap();
    saved_mlp(dir.path());
    let path = dir.path().join("model.json");
    let mut json: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut json);
    std::fs::write(&path, serde_json::to_string(&json).unwrap()).unwrap();
    load_model(dir.path()).err().expect("refused").to_string()
}

#[test]
fn a_saved_folder_loads_and_records_its_weights_digest() {
    let dir = tempfile::tempdir().unwrap();
    saved_mlp(dir.path());
    let (meta, _) = load_model(dir.path()).unwrap();
    let digest = meta.weights_sha256.expect("save_model records the digest");
    assert_eq!(digest.len(), 64);
    // No temporary file is left beside the model.
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.contains("tmp")), "{names:?}");
}

#[test]
fn huge_or_wrapping_input_shapes_are_refused_before_any_allocation() {
    for shape in [
        serde_json::json!([4_294_967_296u64, 4_294_967_296u64, 4]),
        serde_json::json!([100_000, 100_000, 3]),
        serde_json::json!([0, 4]),
        serde_json::json!([]),
    ] {
        let shown = shape.to_string();
        let e = load_error_after(|j| j["input_shape"] = shape.clone());
        assert!(
            e.contains("model.json") && e.contains("input_shape"),
            "{shown}: {e}"
        );
    }
}

#[test]
fn a_preprocessing_that_disagrees_with_the_input_shape_is_refused() {
    let e = load_error_after(|j| j["input_shape"] = serde_json::json!([5]));
    assert!(e.contains("preprocessing makes inputs of shape [4]"), "{e}");
    let e = load_error_after(|j| {
        j["data"]["preprocessing"] = serde_json::json!({
            "kind": "image", "height": 2, "width": 2, "channels": 1, "scale": 0.5
        })
    });
    assert!(e.contains("[2, 2, 1]") && e.contains("[4]"), "{e}");
    let e = load_error_after(|j| j["outputs"] = serde_json::json!(1u64 << 40));
    assert!(e.contains("outputs is 1099511627776"), "{e}");
    let e = load_error_after(|j| {
        j["data"]["task"]["classes"] = serde_json::json!(["a", "b"]);
    });
    assert!(e.contains("(2 outputs) but outputs is 3"), "{e}");
}

#[test]
fn a_layer_asking_for_terabytes_is_refused_by_the_builder() {
    let e = load_error_after(|j| {
        j["spec"]["layers"][1]["units"] = serde_json::json!(1u64 << 40);
    });
    assert!(e.contains("parameters a layer may have"), "{e}");
    // And a spec built directly, not from a file.
    let spec = ModelSpec {
        layers: vec![LayerSpec::new(LayerKind::Dense {
            units: 1 << 30,
            bias: true,
            activation: modelsmith::model::ActivationSpec::Linear,
        })],
        ..ModelSpec::builtin("mlp", OutputLayer::classes(3), &[4]).unwrap()
    };
    let e = build_network(&spec, &[1 << 10], 1 << 30, 0)
        .err()
        .expect("refused");
    assert!(e.to_string().contains("parameters a layer may have"), "{e}");
}

#[test]
fn weights_that_are_not_finite_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    saved_mlp(dir.path());
    let path = dir.path().join("weights.safetensors");
    let mut bytes = std::fs::read(&path).unwrap();
    // The last four bytes are the last tensor's last value: make it a NaN.
    let n = bytes.len();
    bytes[n - 4..].copy_from_slice(&f32::NAN.to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();
    // Drop the digest, as a folder from before digests would have none.
    let meta_path = dir.path().join("model.json");
    let mut json: Value =
        serde_json::from_str(&std::fs::read_to_string(&meta_path).unwrap()).unwrap();
    json.as_object_mut().unwrap().remove("weights_sha256");
    std::fs::write(&meta_path, json.to_string()).unwrap();
    let e = load_model(dir.path()).err().expect("refused").to_string();
    assert!(
        e.contains("weights.safetensors") && e.contains("NaN"),
        "{e}"
    );
}

#[test]
fn weights_from_another_save_are_refused() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    saved_mlp(a.path());
    // Another run's weights (other initial values) beside this model.json.
    let spec = ModelSpec::builtin("mlp", OutputLayer::classes(3), &[4]).unwrap();
    let net = build_network(&spec, &[4], 3, 99).unwrap();
    let (meta, _) = load_model(a.path()).unwrap();
    save_model(b.path(), &meta, &net).unwrap();
    std::fs::copy(
        b.path().join("weights.safetensors"),
        a.path().join("weights.safetensors"),
    )
    .unwrap();
    let e = load_model(a.path()).err().expect("refused").to_string();
    assert!(e.contains("does not match the model.json"), "{e}");
}

#[test]
fn a_folder_another_process_is_writing_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    std::fs::create_dir_all(&out).unwrap();
    // Another process's lock: a separate open file description holding the flock.
    let other = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(out.join(modelsmith::model::LOCK_FILE))
        .unwrap();
    other.lock().unwrap();
    let e = OutputLock::acquire(&out).unwrap_err().to_string();
    assert!(
        e.contains("another modelsmith run is writing this model folder"),
        "{e}"
    );
    other.unlock().unwrap();
    OutputLock::acquire(&out).unwrap();
}

#[test]
fn a_folder_from_before_tasks_loads_as_a_classifier() {
    // model.json written before the task concept: `num_classes` and `data.class_names`.
    let dir = tempfile::tempdir().unwrap();
    saved_mlp(dir.path());
    let path = dir.path().join("model.json");
    let mut json: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let outputs = json.as_object_mut().unwrap().remove("outputs").unwrap();
    json["num_classes"] = outputs;
    let data = json["data"].as_object_mut().unwrap();
    data.remove("task");
    data.insert("class_names".into(), serde_json::json!(["a", "b", "c"]));
    std::fs::write(&path, serde_json::to_vec(&json).unwrap()).unwrap();
    let (meta, _) = load_model(dir.path()).unwrap();
    assert_eq!(meta.outputs, 3);
    assert_eq!(meta.data.class_names(), ["a", "b", "c"]);
    assert!(!meta.data.task.is_regression());
}

#[test]
fn a_task_that_disagrees_with_the_outputs_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    saved_mlp(dir.path());
    let path = dir.path().join("model.json");
    let mut json: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    json["data"]["task"] = serde_json::json!({"kind": "regression", "targets": [
        {"name": "y", "mean": 1.0, "std": 0.0}
    ]});
    std::fs::write(&path, serde_json::to_vec(&json).unwrap()).unwrap();
    let e = load_model(dir.path()).err().expect("refused").to_string();
    assert!(e.contains("target `y`") && e.contains("std > 0"), "{e}");
    json["data"]["task"]["targets"][0]["std"] = serde_json::json!(2.0);
    std::fs::write(&path, serde_json::to_vec(&json).unwrap()).unwrap();
    let e = load_model(dir.path()).err().expect("refused").to_string();
    assert!(e.contains("1 outputs) but outputs is 3"), "{e}");
}
