//! Agreement with TensorFlow 2.21 on `shared/reference/layers.json` (forward outputs and
//! gradients). The file is NCHW with conv kernels `(out, in, kh, kw)`; we convert to NHWC and
//! `(out, kh, kw, in)`.
//!
//! Metric: `max|ours - tf| / max(max|tf|, 1e-6) <= 1e-4` for every compared array.

use modelsmith_engine::{
    softmax_cross_entropy, AvgPool2d, BatchNorm, Conv2d, Dense, Layer, MaxPool2d, Mode, Padding,
    Tensor,
};
use serde_json::Value;

const TOL: f32 = 1e-4;

fn cases() -> Vec<Value> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/reference/layers.json"
    );
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {path}: {e} (shared/ must sit beside the repo)"));
    let v: Value = serde_json::from_str(&text).expect("layers.json parses");
    v["cases"].as_array().expect("cases array").clone()
}

fn case(name: &str) -> Value {
    cases()
        .into_iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("case {name} missing from layers.json"))
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number") as f32)
        .collect()
}

fn dims(v: &Value) -> Vec<usize> {
    v.as_array()
        .expect("shape")
        .iter()
        .map(|x| x.as_u64().expect("dim") as usize)
        .collect()
}

/// NCHW `[n, c, h, w]` → NHWC.
fn nchw_to_nhwc(x: &[f32], s: &[usize]) -> Tensor {
    let (n, c, h, w) = (s[0], s[1], s[2], s[3]);
    let mut out = vec![0.0; x.len()];
    for i in 0..n {
        for ch in 0..c {
            for y in 0..h {
                for xx in 0..w {
                    out[((i * h + y) * w + xx) * c + ch] = x[((i * c + ch) * h + y) * w + xx];
                }
            }
        }
    }
    Tensor::from_vec(&[n, h, w, c], out).unwrap()
}

/// Kernel `(out, in, kh, kw)` → `(out, kh, kw, in)`.
fn oihw_to_ohwi(wt: &[f32], s: &[usize]) -> Vec<f32> {
    let (o, i, kh, kw) = (s[0], s[1], s[2], s[3]);
    let mut out = vec![0.0; wt.len()];
    for a in 0..o {
        for b in 0..i {
            for y in 0..kh {
                for x in 0..kw {
                    out[((a * kh + y) * kw + x) * i + b] = wt[((a * i + b) * kh + y) * kw + x];
                }
            }
        }
    }
    out
}

fn assert_close(what: &str, ours: &[f32], tf: &[f32]) {
    assert_eq!(ours.len(), tf.len(), "{what}: length");
    let scale = tf.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
    let err = ours
        .iter()
        .zip(tf)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(
        err / scale <= TOL,
        "{what}: max abs error {err} vs scale {scale} (relative {})",
        err / scale
    );
}

fn padding(c: &Value) -> Padding {
    match c["padding"].as_str() {
        Some("same") => Padding::Same,
        Some("valid") => Padding::Valid,
        p => panic!("unknown padding {p:?}"),
    }
}

/// Runs forward then backward with `dy` on a one-input layer; returns (y, dx).
fn run(layer: &mut dyn Layer, x: &Tensor, dy: &Tensor, mode: Mode) -> (Tensor, Tensor) {
    let mut y = Tensor::default();
    layer.forward(&mut y, &[x], mode);
    let mut dx = Tensor::zeros(&x.shape);
    for p in layer.params_mut() {
        p.grad.fill(0.0);
    }
    layer.backward(&mut [Some(&mut dx)], dy, &y, &[x]);
    (y, dx)
}

fn check_conv(name: &str) {
    let c = case(name);
    let xs = dims(&c["x_shape"]);
    let ws = dims(&c["w_shape"]);
    let ys = dims(&c["y_shape"]);
    let x = nchw_to_nhwc(&floats(&c["x"]), &xs);
    let dy = nchw_to_nhwc(&floats(&c["dy"]), &ys);
    let (out_ch, in_ch, kh, kw) = (ws[0], ws[1], ws[2], ws[3]);
    let stride = c["stride"].as_u64().unwrap() as usize;
    let mut conv = Conv2d::new(
        in_ch,
        out_ch,
        kh,
        kw,
        stride,
        padding(&c),
        true,
        modelsmith_engine::Activation::Linear,
        0,
    );
    assert_eq!(
        conv.output_shape(&[vec![xs[2], xs[3], xs[1]]]).unwrap(),
        vec![ys[2], ys[3], ys[1]],
        "{name}: output shape"
    );
    {
        let mut ps = conv.params_mut();
        ps[0].value.data = oihw_to_ohwi(&floats(&c["w"]), &ws);
        ps[1].value.data = floats(&c["b"]);
    }
    let (y, dx) = run(&mut conv, &x, &dy, Mode::Train);
    assert_close(
        &format!("{name} y"),
        &y.data,
        &nchw_to_nhwc(&floats(&c["y"]), &ys).data,
    );
    assert_close(
        &format!("{name} dx"),
        &dx.data,
        &nchw_to_nhwc(&floats(&c["dx"]), &xs).data,
    );
    let ps = conv.params();
    assert_close(
        &format!("{name} dw"),
        &ps[0].grad.data,
        &oihw_to_ohwi(&floats(&c["dw"]), &ws),
    );
    assert_close(&format!("{name} db"), &ps[1].grad.data, &floats(&c["db"]));
}

#[test]
fn conv3x3_valid() {
    check_conv("conv3x3_valid");
}

#[test]
fn conv3x3_same_stride2() {
    check_conv("conv3x3_same_stride2");
}

#[test]
fn conv5x5_same() {
    check_conv("conv5x5_same");
}

fn check_pool(name: &str) {
    let c = case(name);
    let xs = dims(&c["x_shape"]);
    let ys = dims(&c["y_shape"]);
    let x = nchw_to_nhwc(&floats(&c["x"]), &xs);
    let dy = nchw_to_nhwc(&floats(&c["dy"]), &ys);
    let k = c["kernel"].as_u64().unwrap() as usize;
    let stride = c["stride"].as_u64().unwrap() as usize;
    let mut layer: Box<dyn Layer> = match c["op"].as_str().unwrap() {
        "maxpool2d" => Box::new(MaxPool2d::new(k, stride, padding(&c))),
        "avgpool2d" => Box::new(AvgPool2d::new(k, stride, padding(&c))),
        op => panic!("unexpected op {op}"),
    };
    let (y, dx) = run(layer.as_mut(), &x, &dy, Mode::Train);
    assert_eq!(
        y.shape,
        vec![ys[0], ys[2], ys[3], ys[1]],
        "{name}: output shape"
    );
    assert_close(
        &format!("{name} y"),
        &y.data,
        &nchw_to_nhwc(&floats(&c["y"]), &ys).data,
    );
    assert_close(
        &format!("{name} dx"),
        &dx.data,
        &nchw_to_nhwc(&floats(&c["dx"]), &xs).data,
    );
}

#[test]
fn maxpool2_valid() {
    check_pool("maxpool2_valid");
}

#[test]
fn maxpool3_s2_same() {
    check_pool("maxpool3_s2_same");
}

#[test]
fn avgpool2_valid() {
    check_pool("avgpool2_valid");
}

#[test]
fn dense() {
    let c = case("dense");
    let xs = dims(&c["x_shape"]);
    let ws = dims(&c["w_shape"]);
    let x = Tensor::from_vec(&xs, floats(&c["x"])).unwrap();
    let dy = Tensor::from_vec(&[xs[0], ws[1]], floats(&c["dy"])).unwrap();
    let mut d = Dense::new(ws[0], ws[1], true, modelsmith_engine::Activation::Linear, 0);
    {
        let mut ps = d.params_mut();
        ps[0].value.data = floats(&c["w"]);
        ps[1].value.data = floats(&c["b"]);
    }
    let (y, dx) = run(&mut d, &x, &dy, Mode::Train);
    assert_close("dense y", &y.data, &floats(&c["y"]));
    assert_close("dense dx", &dx.data, &floats(&c["dx"]));
    let ps = d.params();
    assert_close("dense dw", &ps[0].grad.data, &floats(&c["dw"]));
    assert_close("dense db", &ps[1].grad.data, &floats(&c["db"]));
}

#[test]
fn batchnorm_train() {
    let c = case("batchnorm_train");
    let xs = dims(&c["x_shape"]);
    let x = nchw_to_nhwc(&floats(&c["x"]), &xs);
    let dy = nchw_to_nhwc(&floats(&c["dy"]), &xs);
    let eps = c["eps"].as_f64().unwrap() as f32;
    let mut bn = BatchNorm::new(xs[1]).with_eps(eps);
    {
        let mut ps = bn.params_mut();
        ps[0].value.data = floats(&c["gamma"]);
        ps[1].value.data = floats(&c["beta"]);
    }
    let (y, dx) = run(&mut bn, &x, &dy, Mode::Train);
    assert_close(
        "batchnorm y",
        &y.data,
        &nchw_to_nhwc(&floats(&c["y"]), &xs).data,
    );
    assert_close(
        "batchnorm dx",
        &dx.data,
        &nchw_to_nhwc(&floats(&c["dx"]), &xs).data,
    );
    let ps = bn.params();
    assert_close("batchnorm dgamma", &ps[0].grad.data, &floats(&c["dgamma"]));
    assert_close("batchnorm dbeta", &ps[1].grad.data, &floats(&c["dbeta"]));
}

#[test]
fn softmax_cross_entropy_mean() {
    let c = case("softmax_ce_mean");
    let ls = dims(&c["logits_shape"]);
    let logits = Tensor::from_vec(&ls, floats(&c["logits"])).unwrap();
    let labels: Vec<u32> = c["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect();
    let mut d = Tensor::default();
    let loss = softmax_cross_entropy(&mut d, &logits, &labels);
    let tf_loss = c["loss"].as_f64().unwrap() as f32;
    assert!(
        (loss - tf_loss).abs() / tf_loss.abs().max(1e-6) <= TOL,
        "loss {loss} vs {tf_loss}"
    );
    assert_close("softmax_ce dlogits", &d.data, &floats(&c["dlogits"]));
}
