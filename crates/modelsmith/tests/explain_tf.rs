//! Attributions against an independent implementation: TensorFlow's `GradientTape` on the same
//! network (weights read from the model folder's safetensors by `bench/tf_explain.py`, computing
//! in float64 so the reference does not share float32's rounding), for the
//! first 100 test digits of the bundled data. Saliency and Integrated Gradients (black baseline,
//! 50 Gauss-Legendre steps) must agree within 1e-4 of each image's attribution scale (its
//! largest absolute attribution). Regenerate with `bench/explain_fixture.sh`.

use std::path::PathBuf;

use modelsmith::data::{load, LoadOptions};
use modelsmith::explain::{Baseline, ExplainOptions, ExplainedOutput, Explainer, Method};
use safetensors::SafeTensors;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/explain-cnn")
}

fn tensor(st: &SafeTensors, name: &str) -> Vec<u8> {
    st.tensor(name).unwrap().data().to_vec()
}

fn floats(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

#[test]
fn saliency_and_integrated_gradients_agree_with_tensorflow_on_100_digits() {
    let bytes = std::fs::read(fixture().join("tensorflow_attributions.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let targets: Vec<ExplainedOutput> = tensor(&st, "targets")
        .chunks_exact(4)
        .map(|b| ExplainedOutput(i32::from_le_bytes(b.try_into().unwrap()) as usize))
        .collect();
    let input_sums = floats(&tensor(&st, "input_sums"));
    let n = targets.len();
    assert_eq!(n, 100);

    let test = load("digits", &LoadOptions::default()).unwrap().test;
    let len = test.example_len();
    let x = &test.x[..n * len];
    for (i, want) in input_sums.iter().enumerate() {
        let got: f32 = x[i * len..(i + 1) * len].iter().sum();
        assert!(
            (got - want).abs() < 1e-3,
            "digit {i} is not TensorFlow's: {got} vs {want}"
        );
    }

    let mut e = Explainer::load(&fixture()).unwrap();
    assert_eq!(e.default_targets(x), targets, "the same predicted classes");
    for (method, name) in [
        (Method::Saliency, "saliency"),
        (Method::IntegratedGradients, "integrated_gradients"),
    ] {
        let want = floats(&tensor(&st, name));
        let mut options = ExplainOptions::new(method, Baseline::Black);
        options.steps = 50;
        options.tolerance = None;
        let got = e.explain(x, &targets, &options).unwrap();
        let mut worst = 0f32;
        for (i, a) in got.iter().enumerate() {
            let w = &want[i * len..(i + 1) * len];
            let scale = w.iter().fold(0f32, |m, v| m.max(v.abs()));
            assert!(scale > 0.0, "{name}: digit {i} has no attribution");
            let diff = a
                .values
                .iter()
                .zip(w)
                .fold(0f32, |m, (g, w)| m.max((g - w).abs()));
            worst = worst.max(diff / scale);
        }
        eprintln!("{name}: max |ours - TensorFlow| = {worst:.2e} of the attribution scale");
        assert!(
            worst <= 1e-4,
            "{name}: {worst:.2e} of the attribution scale"
        );
    }
}
