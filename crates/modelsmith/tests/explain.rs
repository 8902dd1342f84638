//! Explanations (`modelsmith::explain`) held to what they claim: every method on tiny networks
//! against finite differences or a direct forward pass, Grad-CAM against class activation
//! mapping where the two coincide, permutation importance on a table where two of eight columns
//! carry the target, and bad requests answered with one clear error.

use modelsmith::data::{ColumnKind, ColumnTransform, DataInfo, Preprocessing};
use modelsmith::explain::{
    gauss_legendre, Baseline, ExplainOptions, ExplainedOutput, Explainer, Method, Units,
};
use modelsmith::model::{
    build_network, ActivationSpec, LayerKind, LayerSpec, ModelMeta, ModelSpec, PaddingSpec,
    MODEL_FORMAT_VERSION,
};
use modelsmith::task::{TargetScale, Task};
use modelsmith_engine::rng::SplitMix64;
use modelsmith_engine::{Activation, Conv2d, Dense, GlobalAvgPool, Layer, Network, Padding};

const EPS: f32 = 1e-2;

fn meta(spec: ModelSpec, input_shape: Vec<usize>, task: Task, pre: Preprocessing) -> ModelMeta {
    ModelMeta {
        format_version: MODEL_FORMAT_VERSION,
        spec,
        input_shape,
        outputs: task.outputs(),
        data: DataInfo {
            spec: "test".into(),
            task,
            preprocessing: pre,
        },
        params: 0,
        macs_per_example: 0,
        metrics: serde_json::Value::Null,
        training: serde_json::Value::Null,
        weights_sha256: None,
    }
}

fn image_pre(h: usize, w: usize, c: usize) -> Preprocessing {
    Preprocessing::Image {
        height: h,
        width: w,
        channels: c,
        scale: 1.0 / 255.0,
    }
}

fn classes(n: usize) -> Task {
    Task::Classification {
        classes: (0..n).map(|i| format!("c{i}")).collect(),
    }
}

/// A small image classifier: tanh convolution, pooling, batch norm, a second convolution and a
/// dense head. Max pooling is smooth except at ties, which random inputs avoid but the dark
/// start of a path from a black baseline does not (every window nearly equal): finite
/// differences across a tie are meaningless, so path integrals are checked with average pooling.
fn image_model_with(max_pool: bool) -> Explainer {
    let pool = if max_pool {
        LayerKind::MaxPool2d {
            pool: 2,
            stride: None,
            padding: PaddingSpec::Valid,
        }
    } else {
        LayerKind::AvgPool2d {
            pool: 2,
            stride: None,
            padding: PaddingSpec::Valid,
        }
    };
    let conv = |filters, padding| {
        LayerSpec::new(LayerKind::Conv2d {
            filters,
            kernel: 3,
            stride: 1,
            padding,
            bias: true,
            activation: ActivationSpec::Tanh,
        })
    };
    let spec = ModelSpec {
        name: None,
        layers: vec![
            conv(3, PaddingSpec::Same),
            LayerSpec::new(pool),
            LayerSpec::new(LayerKind::BatchNorm {
                momentum: 0.99,
                eps: 1e-3,
            }),
            conv(4, PaddingSpec::Valid),
            LayerSpec::new(LayerKind::Flatten),
            LayerSpec::new(LayerKind::Dense {
                units: 3,
                bias: true,
                activation: ActivationSpec::Softmax,
            }),
        ],
    };
    let net = build_network(&spec, &[6, 6, 2], 3, 7).unwrap();
    Explainer::new(
        meta(spec, vec![6, 6, 2], classes(3), image_pre(6, 6, 2)),
        net,
    )
}

fn image_model() -> Explainer {
    image_model_with(true)
}

/// A regression table model (two numeric columns and a three-way categorical one) predicting
/// one target with mean 10 and std 2.5, so values are in the target's units.
fn table_model() -> Explainer {
    let numeric = |name: &str| ColumnTransform {
        name: name.into(),
        kind: ColumnKind::Numeric {
            mean: 0.0,
            std: 1.0,
            impute: 0.0,
        },
    };
    let pre = Preprocessing::Table {
        target: "y".into(),
        columns: vec![
            numeric("a"),
            ColumnTransform {
                name: "colour".into(),
                kind: ColumnKind::Categorical {
                    vocabulary: vec!["blue".into(), "green".into(), "red".into()],
                    impute: "green".into(),
                },
            },
            numeric("b"),
        ],
    };
    let dense = |units, activation| {
        LayerSpec::new(LayerKind::Dense {
            units,
            bias: true,
            activation,
        })
    };
    let spec = ModelSpec {
        name: None,
        layers: vec![
            dense(8, ActivationSpec::Tanh),
            dense(1, ActivationSpec::Linear),
        ],
    };
    let task = Task::Regression {
        targets: vec![TargetScale {
            name: "y".into(),
            mean: 10.0,
            std: 2.5,
        }],
    };
    let net = build_network(&spec, &[5], 1, 3).unwrap();
    Explainer::new(meta(spec, vec![5], task, pre), net)
}

fn random_inputs(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = SplitMix64::new(seed);
    (0..n).map(|_| rng.uniform(0.0, 1.0)).collect()
}

fn table_rows() -> Vec<f32> {
    // a, colour one-hot, b.
    vec![0.7, 0.0, 0.0, 1.0, -1.2, -0.3, 1.0, 0.0, 0.0, 0.4]
}

/// ∂f/∂x by central differences, in f64 sums of f32 forward passes.
fn numeric_gradient(e: &mut Explainer, x: &[f32], target: ExplainedOutput) -> Vec<f32> {
    let mut values = Vec::new();
    (0..x.len())
        .map(|i| {
            let mut moved = x.to_vec();
            moved[i] = x[i] + EPS;
            e.values(&moved, &[target], &mut values);
            let up = values[0] as f64;
            moved[i] = x[i] - EPS;
            e.values(&moved, &[target], &mut values);
            ((up - values[0] as f64) / (2.0 * EPS as f64)) as f32
        })
        .collect()
}

fn assert_close(what: &str, got: &[f32], want: &[f32], tolerance: f32) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let scale = want.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tolerance * scale,
            "{what}: value {i}: {g} vs {w} (scale {scale})"
        );
    }
}

#[test]
fn saliency_is_the_gradient_of_the_explained_output_for_both_tasks() {
    let mut e = image_model();
    let len = e.input_len();
    let x = random_inputs(2 * len, 1);
    for target in 0..3 {
        let t = ExplainedOutput(target);
        let options = ExplainOptions::new(Method::Saliency, Baseline::Black);
        let got = e.explain(&x, &[t, t], &options).unwrap();
        for (k, a) in got.iter().enumerate() {
            let xi = &x[k * len..(k + 1) * len];
            let want = numeric_gradient(&mut e, xi, t);
            assert_close(&format!("image {k} class {target}"), &a.values, &want, 2e-2);
            let mut p = Vec::new();
            e.values(xi, &[t], &mut p);
            assert!((a.value - p[0]).abs() < 1e-6, "{} vs {}", a.value, p[0]);
        }
    }
    let mut e = table_model();
    let x = table_rows();
    let t = ExplainedOutput(0);
    let got = e
        .explain(
            &x,
            &[t, t],
            &ExplainOptions::new(Method::Saliency, Baseline::Mean),
        )
        .unwrap();
    for (k, a) in got.iter().enumerate() {
        let want = numeric_gradient(&mut e, &x[k * 5..(k + 1) * 5], t);
        assert_close(&format!("row {k}"), &a.values, &want, 2e-2);
        assert!(a.value > 0.0, "a value in the target's units");
    }
}

#[test]
fn input_x_gradient_is_the_gradient_times_the_distance_from_the_baseline() {
    let mut e = table_model();
    let x = table_rows();
    let t = [ExplainedOutput(0); 2];
    let grad = e
        .explain(
            &x,
            &t,
            &ExplainOptions::new(Method::Saliency, Baseline::Mean),
        )
        .unwrap();
    let ixg = e
        .explain(
            &x,
            &t,
            &ExplainOptions::new(Method::InputXGradient, Baseline::Mean),
        )
        .unwrap();
    // The mean row: numeric columns at 0, the categorical one at its most frequent value.
    let baseline = [0.0, 0.0, 1.0, 0.0, 0.0];
    for k in 0..2 {
        for i in 0..5 {
            let want = grad[k].values[i] * (x[k * 5 + i] - baseline[i]);
            assert!((ixg[k].values[i] - want).abs() < 1e-6, "row {k} value {i}");
        }
    }
}

#[test]
fn integrated_gradients_match_a_finite_difference_path_integral_and_are_complete() {
    let mut e = image_model_with(false);
    let len = e.input_len();
    let x = random_inputs(len, 5);
    let t = ExplainedOutput(1);
    for (baseline, steps) in [
        (Baseline::Black, 8),
        (Baseline::Blurred, 8),
        (Baseline::Noise, 50),
    ] {
        let mut options = ExplainOptions::new(Method::IntegratedGradients, baseline);
        options.steps = steps;
        options.tolerance = None;
        options.seed = 3;
        let got = e.explain(&x, &[t], &options).unwrap();
        let b = baseline
            .build(&x, &e.meta.data.preprocessing.clone(), 3)
            .unwrap();
        // The same quadrature with every gradient taken by finite differences.
        let (alphas, weights) = gauss_legendre(steps);
        let mut want = vec![0f32; len];
        for (a, w) in alphas.iter().zip(&weights) {
            let point: Vec<f32> = x
                .iter()
                .zip(&b)
                .map(|(xi, bi)| bi + *a as f32 * (xi - bi))
                .collect();
            let g = numeric_gradient(&mut e, &point, t);
            for i in 0..len {
                want[i] += *w as f32 * g[i] * (x[i] - b[i]);
            }
        }
        assert_close(&format!("{baseline:?}"), &got[0].values, &want, 3e-2);
        let c = got[0].completeness.unwrap();
        assert_eq!(c.steps, steps);
        // A smooth network: even 8 steps integrate the path almost exactly.
        assert!(c.relative_error < 1e-3, "{baseline:?}: {c:?}");
        let sum: f32 = got[0].values.iter().sum();
        assert!((sum - c.sum).abs() < 1e-5);
    }
}

#[test]
fn integrated_gradients_refine_steps_until_complete() {
    // A ReLU network with kinks along the path: one step is far from complete, refinement
    // doubles the steps until the error is within the tolerance.
    let spec = ModelSpec {
        name: None,
        layers: vec![
            LayerSpec::new(LayerKind::Flatten),
            LayerSpec::new(LayerKind::Dense {
                units: 16,
                bias: true,
                activation: ActivationSpec::Relu,
            }),
            LayerSpec::new(LayerKind::Dense {
                units: 3,
                bias: true,
                activation: ActivationSpec::Softmax,
            }),
        ],
    };
    let net = build_network(&spec, &[4, 4, 1], 3, 11).unwrap();
    let mut e = Explainer::new(
        meta(spec, vec![4, 4, 1], classes(3), image_pre(4, 4, 1)),
        net,
    );
    let x: Vec<f32> = random_inputs(16, 2).iter().map(|v| v * 4.0).collect();
    let t = e.default_targets(&x);
    let mut options = ExplainOptions::new(Method::IntegratedGradients, Baseline::Black);
    options.steps = 1;
    options.tolerance = None;
    let coarse = e.explain(&x, &t, &options).unwrap()[0]
        .completeness
        .unwrap();
    options.tolerance = Some(1e-3);
    let fine = e.explain(&x, &t, &options).unwrap()[0]
        .completeness
        .unwrap();
    assert!(coarse.relative_error > 1e-3, "{coarse:?}");
    assert!(fine.relative_error <= 1e-3, "{fine:?}");
    assert!(fine.steps > 1 && fine.steps <= 16, "{fine:?}");
}

#[test]
fn occlusion_is_the_fall_of_the_output_when_a_part_is_set_to_the_baseline() {
    // Tables: one column at a time; the column's values sum to f(x) - f(x with it at the mean).
    let mut e = table_model();
    let x = table_rows();
    let t = [ExplainedOutput(0); 2];
    let got = e
        .explain(
            &x,
            &t,
            &ExplainOptions::new(Method::Occlusion, Baseline::Mean),
        )
        .unwrap();
    let units = Units::of(&e.meta.data.preprocessing);
    let baseline = [0.0, 0.0, 1.0, 0.0, 0.0];
    let mut values = Vec::new();
    for k in 0..2 {
        let row = &x[k * 5..(k + 1) * 5];
        let per_column = units.sum(&got[k].values);
        for (c, group) in units.groups.iter().enumerate() {
            let mut occluded = row.to_vec();
            group.iter().for_each(|&i| occluded[i] = baseline[i]);
            e.values(&[row, &occluded].concat(), &[t[0], t[0]], &mut values);
            let want = values[0] - values[1];
            assert!(
                (per_column[c] - want).abs() < 1e-5,
                "row {k} column {}: {} vs {want}",
                units.names[c],
                per_column[c]
            );
        }
    }
    // Images: a window as large as the image occludes everything at once.
    let mut e = image_model();
    let len = e.input_len();
    let x = random_inputs(len, 9);
    let t = [ExplainedOutput(2)];
    let mut options = ExplainOptions::new(Method::Occlusion, Baseline::Black);
    options.window = Some(6);
    let got = e.explain(&x, &t, &options).unwrap();
    e.values(
        &[x.clone(), vec![0.0; len]].concat(),
        &[t[0], t[0]],
        &mut values,
    );
    let share = (values[0] - values[1]) / len as f32;
    assert!(got[0].values.iter().all(|v| (v - share).abs() < 1e-6));
    // Windows overlap: every pixel is covered and the map is not flat.
    options.window = None;
    let got = e.explain(&x, &t, &options).unwrap();
    assert!(got[0]
        .values
        .iter()
        .any(|v| (v - got[0].values[0]).abs() > 1e-6));
}

#[test]
fn grad_cam_is_class_activation_mapping_for_a_globally_pooled_network() {
    // conv (ReLU) -> global average pool -> linear dense: Grad-CAM's channel weights are the
    // dense weights times std / (h·w), so the map is ReLU(Σ_c W_c A_c)·std/(h·w) — CAM.
    let (h, w, filters) = (5, 5, 4);
    let mut net = Network::new(&[h, w, 1]);
    let conv = || {
        Conv2d::new(
            1,
            filters,
            3,
            3,
            1,
            Padding::Same,
            true,
            Activation::Relu,
            21,
        )
    };
    let s = net.push("conv2d_1", Box::new(conv()), &[0]).unwrap();
    let s = net
        .push("gap", Box::new(GlobalAvgPool::new()), &[s])
        .unwrap();
    let dense = Dense::new(filters, 1, true, Activation::Linear, 22);
    let dense_w = dense.params()[0].value.data.clone();
    net.push("dense_1", Box::new(dense), &[s]).unwrap();
    let task = Task::Regression {
        targets: vec![TargetScale {
            name: "y".into(),
            mean: 0.0,
            std: 2.0,
        }],
    };
    let spec = ModelSpec {
        name: None,
        layers: vec![],
    };
    let mut e = Explainer::new(meta(spec, vec![h, w, 1], task, image_pre(h, w, 1)), net);
    let x = random_inputs(h * w, 4);
    let got = e
        .explain(
            &x,
            &[ExplainedOutput(0)],
            &ExplainOptions::new(Method::GradCam, Baseline::Black),
        )
        .unwrap();
    // The feature maps from the same convolution on its own.
    let mut alone = Network::new(&[h, w, 1]);
    alone.push("conv2d_1", Box::new(conv()), &[0]).unwrap();
    let input = modelsmith_engine::Tensor::from_vec(&[1, h, w, 1], x.clone()).unwrap();
    let a = alone
        .forward(&input, modelsmith_engine::Mode::Eval)
        .data
        .clone();
    let want: Vec<f32> = a
        .chunks_exact(filters)
        .map(|px| {
            let s: f32 = px.iter().zip(&dense_w).map(|(a, w)| a * w).sum();
            (s * 2.0 / (h * w) as f32).max(0.0)
        })
        .collect();
    assert_close("grad-cam", &got[0].values, &want, 1e-5);
    assert!(want.iter().any(|&v| v > 0.0));
}

#[test]
fn bad_requests_are_one_line_errors() {
    let mut e = image_model();
    let len = e.input_len();
    let x = random_inputs(len, 1);
    let ig = ExplainOptions::new(Method::IntegratedGradients, Baseline::Black);
    let err = |r: modelsmith::Result<_>| r.map(|_: Vec<_>| ()).unwrap_err().to_string();
    let msg = err(e.explain(&x, &[ExplainedOutput(3)], &ig));
    assert!(
        msg.contains("output 3") && msg.contains("3 outputs"),
        "{msg}"
    );
    let msg = err(e.explain(&x[1..], &[ExplainedOutput(0)], &ig));
    assert!(msg.contains("[6, 6, 2]"), "{msg}");
    let msg = err(e.explain(
        &x,
        &[ExplainedOutput(0)],
        &ExplainOptions::new(Method::Saliency, Baseline::Mean),
    ));
    assert!(msg.contains("baseline 'mean' is for tables"), "{msg}");
    let mut zero = ig.clone();
    zero.steps = 0;
    assert!(err(e.explain(&x, &[ExplainedOutput(0)], &zero)).contains("at least one step"));
    let mut huge = ExplainOptions::new(Method::Occlusion, Baseline::Black);
    huge.window = Some(7);
    assert!(err(e.explain(&x, &[ExplainedOutput(0)], &huge)).contains("larger than the 6x6"));
    let msg = ExplainedOutput::parse("dog", e.task())
        .unwrap_err()
        .to_string();
    assert!(msg.contains("'dog'") && msg.contains("c0, c1, c2"), "{msg}");
    assert_eq!(
        ExplainedOutput::parse("c2", e.task()).unwrap(),
        ExplainedOutput(2)
    );
    assert_eq!(
        ExplainedOutput::parse("1", e.task()).unwrap(),
        ExplainedOutput(1)
    );
    let data = modelsmith::data::Dataset::empty(vec![6, 6, 2], 3);
    let msg = e
        .permutation_importance(&data, 5, 0)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("for table models"), "{msg}");

    let mut t = table_model();
    let rows = table_rows();
    let msg = err(t.explain(
        &rows,
        &[ExplainedOutput(0); 2],
        &ExplainOptions::new(Method::GradCam, Baseline::Mean),
    ));
    assert!(msg.contains("Grad-CAM needs a convolution"), "{msg}");
    let msg = err(t.explain(
        &rows,
        &[ExplainedOutput(0); 2],
        &ExplainOptions::new(Method::Saliency, Baseline::Blurred),
    ));
    assert!(msg.contains("is for images"), "{msg}");
}

/// Eight uniform columns of which only `x3` and `x6` decide the label, as train and test CSVs.
fn two_of_eight(dir: &std::path::Path) -> (String, String) {
    let mut rng = SplitMix64::new(17);
    let mut write = |name: &str, rows: usize| {
        let mut text = String::from("x1,x2,x3,x4,x5,x6,x7,x8,label\n");
        for _ in 0..rows {
            let x: Vec<f32> = (0..8).map(|_| rng.uniform(-1.0, 1.0)).collect();
            let label = if x[2] - 0.7 * x[5] > 0.0 { "yes" } else { "no" };
            for v in &x {
                text.push_str(&format!("{v:.4},"));
            }
            text.push_str(label);
            text.push('\n');
        }
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        format!("csv:{}", path.display())
    };
    (write("train.csv", 1500), write("test.csv", 500))
}

#[test]
fn permutation_importance_finds_the_two_columns_that_carry_the_target() {
    use modelsmith::data::{load, LoadOptions};
    use modelsmith::train::{train, Silent, TrainConfig};
    let dir = tempfile::tempdir().unwrap();
    let (train_spec, test_spec) = two_of_eight(dir.path());
    let opts = LoadOptions {
        target: Some("label".into()),
        test_data: Some(test_spec),
        ..LoadOptions::default()
    };
    let data = load(&train_spec, &opts).unwrap();
    let out = dir.path().join("model");
    let config = TrainConfig {
        model: "mlp".into(),
        epochs: 30,
        ..TrainConfig::default()
    };
    train(&config, &data, &out, false, &mut Silent).unwrap();
    let mut e = Explainer::load(&out).unwrap();
    let p = e.permutation_importance(&data.test, 10, 0).unwrap();
    assert_eq!(p.metric, "accuracy");
    assert!(p.score > 0.9, "the model learned the rule: {}", p.score);
    let names: Vec<&str> = p.columns.iter().map(|c| c.column.as_str()).collect();
    assert_eq!(&names[..2], ["x3", "x6"], "{p:?}");
    assert!(p.columns[1].low > 0.05, "{:?}", p.columns[1]);
    for c in &p.columns[2..] {
        assert!(
            c.low <= 0.0 && c.high >= 0.0,
            "{c:?} should be indistinguishable from 0"
        );
    }
    // The same seed repeats exactly.
    let again = e.permutation_importance(&data.test, 10, 0).unwrap();
    assert_eq!(again.columns[0].importance, p.columns[0].importance);
    let msg = e
        .permutation_importance(&data.test, 1, 0)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("at least 2 repeats"), "{msg}");
}
