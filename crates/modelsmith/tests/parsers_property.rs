//! Property tests of every parser a file reaches: IDX (raw and gzip), CSV, TOML training and tune
//! configs, and `model.json`. For arbitrary (mostly near-valid) input each must return a value
//! or an error — never panic — and allocate at most [`ALLOCATION_BOUND`] above what it started
//! with, whatever sizes the input claims.
//!
//! One test runs every property in turn, so the allocation counter sees one parser at a time.
//! `PROPTEST_CASES` sets the number of cases per parser (default 200; `scripts/test` uses the
//! default).

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use modelsmith::data::{load, LoadOptions};
use modelsmith::model::{build_network, load_model, save_model, ModelMeta, ModelSpec};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

/// The most any one parse may allocate on top of its starting point. The inputs here are a few
/// kilobytes, so anything near this means a claimed size was believed.
const ALLOCATION_BOUND: usize = 64 << 20;

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `parse`, failing the case if it panics or allocates past the bound.
fn bounded<T>(what: &str, parse: impl FnOnce() -> T) -> Result<T, TestCaseError> {
    let start = CURRENT.load(Ordering::Relaxed);
    PEAK.store(start, Ordering::Relaxed);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(parse))
        .map_err(|_| TestCaseError::fail(format!("{what}: panicked")))?;
    let grew = PEAK.load(Ordering::Relaxed).saturating_sub(start);
    if grew > ALLOCATION_BOUND {
        return Err(TestCaseError::fail(format!(
            "{what}: allocated {grew} bytes"
        )));
    }
    Ok(result)
}

fn runner() -> TestRunner {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(200);
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    })
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// An IDX file: a magic of the right or a wrong kind, dimensions that are small, huge or zero,
/// and a payload that may or may not match them.
fn idx_file() -> impl Strategy<Value = Vec<u8>> {
    let dim = prop_oneof![0u32..40, Just(u32::MAX), Just(1 << 31), any::<u32>()];
    (
        prop_oneof![Just(0x0803u32), Just(0x0801u32), any::<u32>()],
        proptest::collection::vec(dim, 0..4),
        proptest::collection::vec(any::<u8>(), 0..2048),
        any::<bool>(),
    )
        .prop_map(|(magic, dims, payload, truncate)| {
            let mut b = magic.to_be_bytes().to_vec();
            b[2] = 8; // u8 elements: the magic's type byte
            b[3] = dims.len() as u8;
            for d in dims {
                b.extend_from_slice(&d.to_be_bytes());
            }
            b.extend(payload);
            if truncate && b.len() > 3 {
                b.truncate(b.len() / 2);
            }
            b
        })
}

fn idx_property(dir: &Path) -> Result<(), String> {
    let names = [
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ];
    let valid = |i: usize| -> Vec<u8> {
        if i.is_multiple_of(2) {
            let mut b = vec![0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 3];
            b.extend([7u8; 18]);
            b
        } else {
            vec![0, 0, 8, 1, 0, 0, 0, 2, 1, 0]
        }
    };
    let mut runner = runner();
    runner
        .run(
            &(0usize..4, idx_file(), any::<bool>(), any::<u32>()),
            |(which, bytes, gzip, trailer)| {
                for (i, name) in names.iter().enumerate() {
                    let _ = std::fs::remove_file(dir.join(name));
                    let _ = std::fs::remove_file(dir.join(format!("{name}.gz")));
                    let bytes = if i == which { bytes.clone() } else { valid(i) };
                    if gzip && i == which {
                        // Sometimes with a forged size in the gzip trailer.
                        let mut z = gz(&bytes);
                        if trailer.is_multiple_of(2) {
                            let n = z.len();
                            z[n - 4..].copy_from_slice(&trailer.to_le_bytes());
                        }
                        std::fs::write(dir.join(format!("{name}.gz")), z).unwrap();
                    } else {
                        std::fs::write(dir.join(name), bytes).unwrap();
                    }
                }
                // Loading may succeed or fail; it may not panic or over-allocate.
                let _loaded = bounded("IDX", || {
                    load(&format!("idx:{}", dir.display()), &LoadOptions::default())
                })?;
                Ok(())
            },
        )
        .map_err(|e| format!("IDX: {e}"))
}

/// A CSV built from fields that stress the loader: numbers, non-finite numbers, text, quotes,
/// blanks and missing markers, with a header that may repeat or lack the target.
fn csv_text() -> impl Strategy<Value = String> {
    let field = prop_oneof![
        any::<f64>().prop_map(|v| v.to_string()),
        (0i64..5).prop_map(|v| v.to_string()),
        Just("inf".to_string()),
        Just("1e400".to_string()),
        Just("NA".to_string()),
        Just(String::new()),
        Just("\"a,b\"".to_string()),
        Just("\"unterminated".to_string()),
        "[a-z]{1,6}",
        "\\PC{0,8}",
    ];
    let header = proptest::collection::vec(
        prop_oneof![Just("y".to_string()), Just("a".to_string()), "[a-z]{1,3}"],
        1..5,
    );
    (
        header,
        proptest::collection::vec(proptest::collection::vec(field, 0..6), 0..30),
    )
        .prop_map(|(header, rows)| {
            let mut text = header.join(",");
            text.push('\n');
            for row in rows {
                text.push_str(&row.join(","));
                text.push('\n');
            }
            text
        })
}

fn csv_property(dir: &Path) -> Result<(), String> {
    let path = dir.join("t.csv");
    let mut runner = runner();
    runner
        .run(&(csv_text(), any::<bool>()), |(text, reject)| {
            std::fs::write(&path, &text).unwrap();
            let opts = LoadOptions {
                target: Some("y".into()),
                missing: if reject {
                    modelsmith::data::MissingPolicy::Reject
                } else {
                    modelsmith::data::MissingPolicy::Impute
                },
                ..LoadOptions::default()
            };
            let loaded = bounded("CSV", || load(&format!("csv:{}", path.display()), &opts))?;
            if let Ok(d) = loaded {
                // What loads is consistent: finite inputs of the declared width.
                prop_assert!(d.train.x.iter().chain(&d.test.x).all(|v| v.is_finite()));
                prop_assert_eq!(d.train.shape.clone(), d.info.preprocessing.input_shape());
                // And the same file scores whole through the saved preprocessing.
                let held = bounded("CSV held out", || {
                    modelsmith::data::load_held_out(
                        &format!("csv:{}", path.display()),
                        &d.info,
                        &LoadOptions::default(),
                    )
                })?;
                let held = held.map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(held.data.len(), d.train.len() + d.test.len());
            }
            Ok(())
        })
        .map_err(|e| format!("CSV: {e}"))
}

/// TOML with the config's own keys and values of every type, some out of range.
fn toml_text() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        Just("lr"),
        Just("epochs"),
        Just("batch_size"),
        Just("optimizer"),
        Just("validation_split"),
        Just("decay"),
        Just("clip_norm"),
        Just("seed"),
        Just("data"),
        Just("model"),
        Just("unknown_key"),
    ];
    let value = prop_oneof![
        any::<i64>().prop_map(|v| v.to_string()),
        any::<f64>().prop_map(|v| format!("{v:?}")),
        Just("nan".to_string()),
        Just("-inf".to_string()),
        Just("\"adam\"".to_string()),
        Just("\"\"".to_string()),
        Just("[1, 2]".to_string()),
        Just("{ kind = \"cosine\" }".to_string()),
        "\\PC{0,6}",
    ];
    proptest::collection::vec((key, value), 0..8).prop_map(|pairs| {
        pairs
            .into_iter()
            .map(|(k, v)| format!("{k} = {v}\n"))
            .collect()
    })
}

fn toml_property() -> Result<(), String> {
    let mut runner = runner();
    runner
        .run(&toml_text(), |text| {
            bounded("TOML", || {
                if let Ok(c) = toml::from_str::<modelsmith::train::TrainConfig>(&text) {
                    let _ = c.validate();
                }
                let tune = format!("[train]\n{text}[space]\nlr = {{ low = 1e-4, high = 0.1 }}\n");
                if let Ok(c) = toml::from_str::<modelsmith::tune::TuneConfig>(&tune) {
                    let _ = c.validate();
                }
            })?;
            Ok(())
        })
        .map_err(|e| format!("TOML: {e}"))
}

/// A saved model's `model.json` with one value replaced by something else: a huge, zero,
/// negative or fractional number, a string, null, or a nested array.
fn model_json_property(dir: &Path) -> Result<(), String> {
    let spec = ModelSpec::builtin("mlp", modelsmith::model::OutputLayer::classes(3), &[4]).unwrap();
    let net = build_network(&spec, &[4], 3, 1).unwrap();
    let columns = (0..4)
        .map(|i| modelsmith::data::ColumnTransform {
            name: format!("f{i}"),
            kind: modelsmith::data::ColumnKind::Numeric {
                mean: 0.0,
                std: 1.0,
                impute: 0.0,
            },
        })
        .collect();
    let meta = ModelMeta {
        format_version: 1,
        spec,
        input_shape: vec![4],
        outputs: 3,
        data: modelsmith::data::DataInfo {
            spec: "csv:t.csv".into(),
            task: modelsmith::task::Task::Classification {
                classes: vec!["a".into(), "b".into(), "c".into()],
            },
            preprocessing: modelsmith::data::Preprocessing::Table {
                target: "y".into(),
                columns,
            },
        },
        params: net.param_count(),
        macs_per_example: net.macs_per_example(),
        metrics: serde_json::Value::Null,
        training: serde_json::Value::Null,
        weights_sha256: None,
    };
    save_model(dir, &meta, &net).unwrap();
    let original: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("model.json")).unwrap()).unwrap();
    // Every path to a leaf value.
    fn leaves(v: &serde_json::Value, path: Vec<String>, out: &mut Vec<Vec<String>>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    let mut p = path.clone();
                    p.push(k.clone());
                    leaves(v, p, out);
                }
            }
            serde_json::Value::Array(a) => {
                for (i, v) in a.iter().enumerate() {
                    let mut p = path.clone();
                    p.push(i.to_string());
                    leaves(v, p, out);
                }
            }
            _ => out.push(path),
        }
    }
    let mut paths = Vec::new();
    leaves(&original, Vec::new(), &mut paths);
    let replacement = prop_oneof![
        Just(serde_json::json!(u64::MAX)),
        Just(serde_json::json!(1u64 << 40)),
        Just(serde_json::json!(0)),
        Just(serde_json::json!(-1)),
        Just(serde_json::json!(0.5)),
        Just(serde_json::json!(1e300)),
        Just(serde_json::json!("x")),
        Just(serde_json::Value::Null),
        Just(serde_json::json!([[1, 2], 3])),
        any::<u32>().prop_map(|v| serde_json::json!(v)),
    ];
    let path = dir.join("model.json");
    let mut runner = runner();
    runner
        .run(
            &(0..paths.len(), replacement, 0..paths.len()),
            |(a, value, b)| {
                let mut json = original.clone();
                for at in [a, b] {
                    let mut v = &mut json;
                    for k in &paths[at] {
                        v = match v {
                            serde_json::Value::Array(arr) => &mut arr[k.parse::<usize>().unwrap()],
                            other => &mut other[k.as_str()],
                        };
                    }
                    *v = value.clone();
                }
                std::fs::write(&path, serde_json::to_string(&json).unwrap()).unwrap();
                let _loaded = bounded("model.json", || load_model(dir).map(|_| ()))?;
                Ok(())
            },
        )
        .map_err(|e| format!("model.json: {e}"))
}

#[test]
fn every_parser_survives_arbitrary_input_within_its_allocation_bound() {
    let dir = tempfile::tempdir().unwrap();
    let failures: Vec<String> = [
        idx_property(dir.path()),
        csv_property(dir.path()),
        toml_property(),
        model_json_property(&dir.path().join("model")),
    ]
    .into_iter()
    .filter_map(Result::err)
    .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
