//! Finite-difference gradient checks for every layer and the loss.
//!
//! For a layer `y = f(x, θ)` we take the scalar `L = Σ r ⊙ y` with a fixed random projection
//! `r`, run `backward` with `dy = r`, and compare every analytic `∂L/∂x` and `∂L/∂θ` (all of
//! them, or 150 sampled when there are more) with finite differences at `eps = 1e-3`. The
//! error metric is `max |numeric - analytic| / max(max |analytic|, 1e-3)` and must be `≤ 1e-2`.
//! A point passes when its central, forward or backward difference matches, so a kink (ReLU at
//! 0, a max-pool tie) within `eps` on one side does not fail a correct layer;
//! `wrong_gradient_is_caught` shows a 3% gradient error still fails the check.

use modelsmith_engine::rng::SplitMix64;
use modelsmith_engine::{
    regression_loss, softmax_cross_entropy, Activation, ActivationLayer, Add, AvgPool2d, BatchNorm,
    Conv2d, Dense, Dropout, EngineError, Flatten, GlobalAvgPool, Layer, MaxPool2d, Mode, Padding,
    Param, RegressionLoss, Tensor,
};

const EPS: f32 = 1e-3;
const TOL: f64 = 1e-2;
const SAMPLES: usize = 150;

fn random(shape: &[usize], seed: u64) -> Tensor {
    let mut rng = SplitMix64::new(seed);
    let n = shape.iter().product();
    Tensor::from_vec(shape, (0..n).map(|_| rng.uniform(-1.0, 1.0)).collect()).unwrap()
}

fn sample(len: usize, seed: u64) -> Vec<usize> {
    if len <= SAMPLES {
        return (0..len).collect();
    }
    let mut rng = SplitMix64::new(seed);
    (0..SAMPLES)
        .map(|_| (rng.next_u64() % len as u64) as usize)
        .collect()
}

/// Compares analytic and numeric derivatives. `f(i, d)` evaluates the loss with element `i`
/// moved by `d`. A point passes if its central, forward or backward difference matches: a kink
/// (ReLU at 0, a max-pool tie) within `eps` on one side spoils only that side.
fn compare(
    what: &str,
    analytic: &[f32],
    idx: &[usize],
    mut f: impl FnMut(usize, f32) -> f64,
) -> Result<(), String> {
    let scale = idx
        .iter()
        .map(|&i| analytic[i].abs() as f64)
        .fold(1e-3, f64::max);
    let mut worst = 0f64;
    let e = EPS as f64;
    for &i in idx {
        let (up, mid, down) = (f(i, EPS), f(i, 0.0), f(i, -EPS));
        let a = analytic[i] as f64;
        let err = [(up - down) / (2.0 * e), (up - mid) / e, (mid - down) / e]
            .iter()
            .map(|n| (n - a).abs())
            .fold(f64::INFINITY, f64::min);
        worst = worst.max(err / scale);
    }
    if worst > TOL {
        return Err(format!(
            "{what}: relative gradient error {worst:.2e} > {TOL:e}"
        ));
    }
    Ok(())
}

/// Checks `layer` on `inputs`; `prep` runs before every forward pass (e.g. rewinding dropout).
fn check<L: Layer>(
    name: &str,
    layer: &mut L,
    inputs: &[Tensor],
    mode: Mode,
    prep: impl Fn(&mut L),
) -> Result<(), String> {
    check_projected(name, layer, inputs, mode, prep, |shape| random(shape, 99))
}

/// [`check`] with the projection `r` (the upstream gradient `dy`) built by `projection` from
/// the output shape.
fn check_projected<L: Layer>(
    name: &str,
    layer: &mut L,
    inputs: &[Tensor],
    mode: Mode,
    prep: impl Fn(&mut L),
    projection: impl Fn(&[usize]) -> Tensor,
) -> Result<(), String> {
    let per_example: Vec<Vec<usize>> = inputs.iter().map(|t| t.shape[1..].to_vec()).collect();
    let out_shape = layer
        .output_shape(&per_example)
        .map_err(|e| e.to_string())?;
    let mut y = Tensor::default();
    prep(layer);
    let refs: Vec<&Tensor> = inputs.iter().collect();
    layer.forward(&mut y, &refs, mode);
    assert_eq!(
        y.shape[1..],
        out_shape[..],
        "{name}: forward shape vs output_shape"
    );
    let r = projection(&y.shape);
    let loss = |layer: &mut L, inputs: &[Tensor]| -> f64 {
        prep(layer);
        let refs: Vec<&Tensor> = inputs.iter().collect();
        let mut y = Tensor::default();
        layer.forward(&mut y, &refs, mode);
        y.data
            .iter()
            .zip(&r.data)
            .map(|(a, b)| *a as f64 * *b as f64)
            .sum()
    };
    // Analytic gradients.
    prep(layer);
    layer.forward(&mut y, &refs, mode);
    let mut dxs: Vec<Tensor> = inputs.iter().map(|t| Tensor::zeros(&t.shape)).collect();
    for p in layer.params_mut() {
        p.grad.fill(0.0);
    }
    {
        let mut d: Vec<Option<&mut Tensor>> = dxs.iter_mut().map(Some).collect();
        layer.backward(&mut d, &r, &y, &refs);
    }
    let grads: Vec<Param> = layer.params().into_iter().cloned().collect();
    // Numeric: inputs.
    let mut xs = inputs.to_vec();
    for (k, dx) in dxs.iter().enumerate() {
        let idx = sample(dx.len(), 7 + k as u64);
        compare(&format!("{name} d(input {k})"), &dx.data, &idx, |i, d| {
            let v = xs[k].data[i];
            xs[k].data[i] = v + d;
            let l = loss(layer, &xs);
            xs[k].data[i] = v;
            l
        })?;
    }
    // Numeric: parameters.
    for (pi, p) in grads.iter().enumerate() {
        let idx = sample(p.grad.len(), 31 + pi as u64);
        compare(
            &format!("{name} d{}", p.name),
            &p.grad.data,
            &idx,
            |i, d| {
                let set = |layer: &mut L, v: f32| layer.params_mut()[pi].value.data[i] = v;
                let v = p.value.data[i];
                set(layer, v + d);
                let l = loss(layer, inputs);
                set(layer, v);
                l
            },
        )?;
    }
    Ok(())
}

fn ok<L: Layer>(name: &str, mut layer: L, shapes: &[&[usize]]) {
    let inputs: Vec<Tensor> = shapes
        .iter()
        .enumerate()
        .map(|(k, s)| random(s, 1 + k as u64))
        .collect();
    check(name, &mut layer, &inputs, Mode::Train, |_| {}).unwrap();
}

const ALL_ACTS: [Activation; 7] = [
    Activation::Linear,
    Activation::Relu,
    Activation::LeakyRelu(0.2),
    Activation::Elu(1.0),
    Activation::Gelu,
    Activation::Sigmoid,
    Activation::Tanh,
];

#[test]
fn activation_layer_every_kind() {
    for act in ALL_ACTS {
        ok(act.name(), ActivationLayer::new(act), &[&[3, 4, 5]]);
    }
}

#[test]
fn conv2d_variants() {
    // (name, kh/kw, stride, padding, bias, activation)
    let cases = [
        (
            "3x3 valid s1 bias",
            3,
            1,
            Padding::Valid,
            true,
            Activation::Linear,
        ),
        (
            "3x3 same s1 relu",
            3,
            1,
            Padding::Same,
            true,
            Activation::Relu,
        ),
        (
            "3x3 same s2 no bias",
            3,
            2,
            Padding::Same,
            false,
            Activation::Linear,
        ),
        (
            "3x3 valid s2 elu",
            3,
            2,
            Padding::Valid,
            true,
            Activation::Elu(1.0),
        ),
        (
            "5x5 same s1 gelu",
            5,
            1,
            Padding::Same,
            true,
            Activation::Gelu,
        ),
        (
            "5x5 valid s1 tanh",
            5,
            1,
            Padding::Valid,
            false,
            Activation::Tanh,
        ),
        (
            "5x5 same s2 sigmoid",
            5,
            2,
            Padding::Same,
            true,
            Activation::Sigmoid,
        ),
        (
            "1x1 pointwise leaky",
            1,
            1,
            Padding::Valid,
            true,
            Activation::LeakyRelu(0.1),
        ),
    ];
    for (name, k, s, p, b, a) in cases {
        ok(
            name,
            Conv2d::new(3, 4, k, k, s, p, b, a, 5),
            &[&[2, 7, 8, 3]],
        );
    }
    // Non-square kernel.
    ok(
        "3x2 same s1",
        Conv2d::new(2, 3, 3, 2, 1, Padding::Same, true, Activation::Linear, 6),
        &[&[3, 5, 6, 2]],
    );
}

#[test]
fn conv2d_batch_split_matches_many_threads() {
    // A batch large enough to be split across threads and micro-batches.
    ok(
        "3x3 same relu batch 9",
        Conv2d::new(2, 3, 3, 3, 1, Padding::Same, true, Activation::Relu, 8),
        &[&[9, 10, 10, 2]],
    );
}

#[test]
fn dense_variants() {
    ok(
        "dense bias",
        Dense::new(12, 5, true, Activation::Linear, 1),
        &[&[4, 12]],
    );
    ok(
        "dense no bias",
        Dense::new(12, 5, false, Activation::Linear, 1),
        &[&[4, 12]],
    );
    ok(
        "dense relu image input",
        Dense::new(12, 5, true, Activation::Relu, 2),
        &[&[3, 2, 2, 3]],
    );
    ok(
        "dense gelu",
        Dense::new(6, 4, true, Activation::Gelu, 3),
        &[&[3, 6]],
    );
    ok(
        "dense sigmoid",
        Dense::new(6, 4, true, Activation::Sigmoid, 4),
        &[&[3, 6]],
    );
}

#[test]
fn pooling_variants() {
    ok(
        "max 2 s2 valid",
        MaxPool2d::new(2, 2, Padding::Valid),
        &[&[2, 6, 7, 3]],
    );
    ok(
        "max 3 s2 same",
        MaxPool2d::new(3, 2, Padding::Same),
        &[&[2, 7, 7, 2]],
    );
    ok(
        "max 3 s1 valid",
        MaxPool2d::new(3, 1, Padding::Valid),
        &[&[1, 5, 5, 2]],
    );
    ok(
        "avg 2 s2 valid",
        AvgPool2d::new(2, 2, Padding::Valid),
        &[&[2, 6, 6, 3]],
    );
    ok(
        "avg 3 s2 same",
        AvgPool2d::new(3, 2, Padding::Same),
        &[&[2, 7, 7, 2]],
    );
    ok(
        "avg 2 s2 same odd",
        AvgPool2d::new(2, 2, Padding::Same),
        &[&[2, 5, 5, 2]],
    );
    ok("global avg", GlobalAvgPool::new(), &[&[2, 3, 4, 5]]);
}

#[test]
fn flatten_and_add() {
    ok("flatten", Flatten::new(), &[&[2, 3, 4, 5]]);
    ok("add 2", Add::new(), &[&[2, 3, 4], &[2, 3, 4]]);
    ok("add 3", Add::new(), &[&[2, 5], &[2, 5], &[2, 5]]);
}

#[test]
fn batch_norm_train_and_eval() {
    ok("bn nhwc train", BatchNorm::new(3), &[&[3, 3, 2, 3]]);
    ok("bn flat train", BatchNorm::new(4), &[&[6, 4]]);
    let mut bn = BatchNorm::new(4).with_eps(1e-5);
    let x = random(&[5, 4], 3);
    check("bn eval", &mut bn, &[x], Mode::Eval, |_| {}).unwrap();
}

#[test]
fn dropout_with_fixed_mask() {
    let mut d = Dropout::new(0.3, 42);
    let x = random(&[4, 25], 3);
    check(
        "dropout",
        &mut d,
        std::slice::from_ref(&x),
        Mode::Train,
        |d: &mut Dropout| d.set_step(0),
    )
    .unwrap();
    // Identity in eval.
    let mut y = Tensor::default();
    d.forward(&mut y, &[&x], Mode::Eval);
    assert_eq!(y.data, x.data);
    // Deterministic given seed and step; different steps differ; the rate is about right.
    let mut a = Tensor::default();
    let mut b = Tensor::default();
    let big = random(&[10, 1000], 4);
    d.set_step(5);
    d.forward(&mut a, &[&big], Mode::Train);
    d.set_step(5);
    d.forward(&mut b, &[&big], Mode::Train);
    assert_eq!(a.data, b.data);
    d.forward(&mut b, &[&big], Mode::Train);
    assert_ne!(a.data, b.data);
    let dropped = a.data.iter().filter(|v| **v == 0.0).count() as f32 / a.len() as f32;
    assert!((dropped - 0.3).abs() < 0.02, "dropped fraction {dropped}");
}

#[test]
fn softmax_cross_entropy_gradient() {
    let logits = random(&[4, 6], 11);
    let labels = [0u32, 5, 2, 2];
    let mut d = Tensor::default();
    softmax_cross_entropy(&mut d, &logits, &labels);
    let mut z = logits.clone();
    let mut scratch = Tensor::default();
    let idx: Vec<usize> = (0..z.len()).collect();
    compare("softmax_ce", &d.data, &idx, |i, d| {
        let v = z.data[i];
        z.data[i] = v + d;
        let l = softmax_cross_entropy(&mut scratch, &z, &labels) as f64;
        z.data[i] = v;
        l
    })
    .unwrap();
}

#[test]
fn regression_loss_gradients() {
    let logits = random(&[5, 3], 12);
    // Targets away from the outputs (so |z - t| stays clear of the kinks at 0 and ±delta that
    // a finite difference straddling them would blur), some within Huber's delta, some beyond.
    let targets: Vec<f32> = logits
        .data
        .iter()
        .enumerate()
        .map(|(i, z)| z + [0.3, -0.45, 1.7, -2.2, 0.8][i % 5])
        .collect();
    for loss in [
        RegressionLoss::Squared,
        RegressionLoss::Absolute,
        RegressionLoss::Huber { delta: 1.0 },
    ] {
        let mut d = Tensor::default();
        regression_loss(loss, &mut d, &logits, &targets);
        let mut z = logits.clone();
        let mut scratch = Tensor::default();
        let idx: Vec<usize> = (0..z.len()).collect();
        compare(&format!("{loss:?}"), &d.data, &idx, |i, d| {
            let v = z.data[i];
            z.data[i] = v + d;
            let l = regression_loss(loss, &mut scratch, &z, &targets) as f64;
            z.data[i] = v;
            l
        })
        .unwrap();
    }
}

/// A layer whose input gradient is 3% too large: the check must reject it.
struct Broken(Dense);

impl Layer for Broken {
    fn kind(&self) -> &'static str {
        "broken"
    }
    fn output_shape(&self, inputs: &[Vec<usize>]) -> Result<Vec<usize>, EngineError> {
        self.0.output_shape(inputs)
    }
    fn forward(&mut self, out: &mut Tensor, inputs: &[&Tensor], mode: Mode) {
        self.0.forward(out, inputs, mode)
    }
    fn backward(
        &mut self,
        dinputs: &mut [Option<&mut Tensor>],
        dout: &Tensor,
        out: &Tensor,
        inputs: &[&Tensor],
    ) {
        self.0.backward(dinputs, dout, out, inputs);
        if let Some(dx) = dinputs[0].as_deref_mut() {
            dx.data.iter_mut().for_each(|v| *v *= 1.03);
        }
    }
}

#[test]
fn wrong_gradient_is_caught() {
    let x = random(&[3, 6], 2);
    let mut good = Dense::new(6, 4, true, Activation::Tanh, 1);
    assert!(check(
        "good",
        &mut good,
        std::slice::from_ref(&x),
        Mode::Train,
        |_| {}
    )
    .is_ok());
    let mut bad = Broken(Dense::new(6, 4, true, Activation::Tanh, 1));
    let err = check("broken", &mut bad, &[x], Mode::Train, |_| {}).unwrap_err();
    assert!(err.contains("relative gradient error"), "{err}");
}

#[test]
fn conv2d_wide_outputs() {
    // Output channel counts in blocks of 8 and 32, as real networks use.
    let cases = [
        (
            "3x3 valid relu 8",
            1,
            8,
            3,
            1,
            Padding::Valid,
            Activation::Relu,
        ),
        (
            "3x3 same s2 gelu 32",
            2,
            32,
            3,
            2,
            Padding::Same,
            Activation::Gelu,
        ),
        (
            "5x5 same tanh 16",
            1,
            16,
            5,
            1,
            Padding::Same,
            Activation::Tanh,
        ),
    ];
    for (name, cin, cout, k, s, p, a) in cases {
        ok(
            name,
            Conv2d::new(cin, cout, k, k, s, p, true, a, 9),
            &[&[3, 7, 6, cin]],
        );
    }
}

#[test]
fn conv2d_weight_gradient_same_with_and_without_dx() {
    // The first layer skips dx (its dinputs entry is None): the weight gradient must not change.
    for (cin, cout, act) in [
        (1, 32, Activation::Relu),
        (3, 4, Activation::Elu(1.0)),
        (2, 8, Activation::Linear),
    ] {
        let x = random(&[5, 9, 9, cin], 4);
        let mut conv = Conv2d::new(cin, cout, 3, 3, 1, Padding::Same, true, act, 2);
        let mut y = Tensor::default();
        conv.forward(&mut y, &[&x], Mode::Train);
        let dy = random(&y.shape, 5);
        let mut dx = Tensor::zeros(&x.shape);
        conv.backward(&mut [Some(&mut dx)], &dy, &y, &[&x]);
        let with: Vec<Vec<f32>> = conv.params().iter().map(|p| p.grad.data.clone()).collect();
        for p in conv.params_mut() {
            p.grad.fill(0.0);
        }
        conv.backward(&mut [None], &dy, &y, &[&x]);
        for (a, p) in with.iter().zip(conv.params()) {
            let err = a
                .iter()
                .zip(&p.grad.data)
                .fold(0f32, |m, (u, v)| m.max((u - v).abs()));
            let scale = a.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
            assert!(err / scale < 1e-5, "{}: {err} vs scale {scale}", p.name);
        }
    }
}

#[test]
fn conv2d_fast_paths() {
    // The shapes that select the CPU backend's fast paths (on AVX-512 machines): the direct
    // small-patch kernel (patch <= 27, output channels a multiple of 16) and Winograd F(2x2,3x3)
    // (3x3, stride 1, >= 16 input channels), on odd sizes where tiles overhang the border.
    let cases = [
        (
            "direct 3x3 valid relu 1->32",
            1,
            32,
            3,
            Padding::Valid,
            Activation::Relu,
        ),
        (
            "direct 5x5 same linear 1->16",
            1,
            16,
            5,
            Padding::Same,
            Activation::Linear,
        ),
        (
            "direct 3x3 same relu 3->16",
            3,
            16,
            3,
            Padding::Same,
            Activation::Relu,
        ),
        (
            "winograd 3x3 valid relu 16->16",
            16,
            16,
            3,
            Padding::Valid,
            Activation::Relu,
        ),
        (
            "winograd 3x3 same linear 16->32",
            16,
            32,
            3,
            Padding::Same,
            Activation::Linear,
        ),
        (
            // 80 output channels: a full 64-column panel of the Winograd products and a 16-wide one.
            "winograd 3x3 same relu 16->80",
            16,
            80,
            3,
            Padding::Same,
            Activation::Relu,
        ),
        (
            "winograd 3x3 valid elu 32->16",
            32,
            16,
            3,
            Padding::Valid,
            Activation::Elu(1.0),
        ),
    ];
    for (name, cin, cout, k, p, a) in cases {
        ok(
            name,
            Conv2d::new(cin, cout, k, k, 1, p, true, a, 11),
            // Few pixels per channel keep ReLU kinks out of the bias's finite differences.
            &[&[2, 5, 6, cin]],
        );
    }
}

#[test]
fn conv2d_sparse_output_gradient() {
    // Behind max pooling most of a convolution's output gradient is zero, and the CPU backend
    // then scatters the nonzeros instead of running the dense input gradient: the same checks
    // with nine in ten upstream values zeroed, through padding, stride and the fast paths'
    // shapes.
    let sparse = |shape: &[usize]| {
        let mut r = random(shape, 99);
        let mut rng = SplitMix64::new(5);
        for v in &mut r.data {
            if rng.uniform(0.0, 1.0) < 0.9 {
                *v = 0.0;
            }
        }
        r
    };
    let cases = [
        (
            "3x3 valid relu 1->32",
            1,
            32,
            3,
            1,
            Padding::Valid,
            Activation::Relu,
        ),
        (
            "3x3 same s2 linear 3->5",
            3,
            5,
            3,
            2,
            Padding::Same,
            Activation::Linear,
        ),
        (
            "5x5 same tanh 2->7",
            2,
            7,
            5,
            1,
            Padding::Same,
            Activation::Tanh,
        ),
        (
            "3x3 valid relu 16->16",
            16,
            16,
            3,
            1,
            Padding::Valid,
            Activation::Relu,
        ),
        (
            "3x3 same relu 32->20",
            32,
            20,
            3,
            1,
            Padding::Same,
            Activation::Relu,
        ),
    ];
    for (name, cin, cout, k, s, p, a) in cases {
        let mut conv = Conv2d::new(cin, cout, k, k, s, p, true, a, 13);
        let x = random(&[2, 5, 6, cin], 1);
        check_projected(name, &mut conv, &[x], Mode::Train, |_| {}, sparse).unwrap();
    }
}

/// `Network::set_input_gradient`: the gradient with respect to the network's input (what
/// explanations are made of), through a grayscale first convolution, pooling and dense layers.
#[test]
fn network_input_gradient() {
    use modelsmith_engine::Network;
    let mut net = Network::new(&[8, 8, 1]);
    let relu = Activation::Relu;
    let c1 = Conv2d::new(1, 4, 3, 3, 1, Padding::Same, true, relu, 1);
    let s = net.push("c1", Box::new(c1), &[0]).unwrap();
    let s = net
        .push("pool", Box::new(MaxPool2d::new(2, 2, Padding::Valid)), &[s])
        .unwrap();
    let c2 = Conv2d::new(4, 6, 3, 3, 1, Padding::Valid, true, Activation::Tanh, 2);
    let s = net.push("c2", Box::new(c2), &[s]).unwrap();
    let s = net.push("flat", Box::new(Flatten::new()), &[s]).unwrap();
    let d = Dense::new(24, 3, true, Activation::Linear, 3);
    net.push("d", Box::new(d), &[s]).unwrap();
    let x = random(&[2, 8, 8, 1], 7);
    let r = random(&[2, 3], 8);
    net.set_input_gradient(true);
    net.forward(&x, Mode::Explain);
    net.backward(&r);
    let analytic = net.gradient(0).data.clone();
    assert_eq!(analytic.len(), x.len());
    let idx: Vec<usize> = (0..x.len()).collect();
    compare("network input", &analytic, &idx, |i, d| {
        let mut moved = x.clone();
        moved.data[i] += d;
        let y = net.forward(&moved, Mode::Explain);
        y.data
            .iter()
            .zip(&r.data)
            .map(|(a, b)| (*a as f64) * (*b as f64))
            .sum()
    })
    .unwrap();
    // Frozen: the same input gradient, and not one parameter gradient touched.
    net.zero_grads();
    net.set_frozen(true);
    net.forward(&x, Mode::Explain);
    net.backward(&r);
    assert_eq!(net.gradient(0).data, analytic);
    for (name, p) in net.params() {
        assert!(
            p.grad.data.iter().all(|&g| g == 0.0),
            "{name} has a gradient"
        );
    }
    net.set_frozen(false);
    net.forward(&x, Mode::Explain);
    net.backward(&r);
    assert!(net
        .params()
        .iter()
        .all(|(_, p)| p.grad.data.iter().any(|&g| g != 0.0)));
    // Off again, slot 0 is left alone (a different upstream gradient changes nothing there):
    // training pays nothing for the option.
    net.set_input_gradient(false);
    net.forward(&x, Mode::Explain);
    net.backward(&random(&[2, 3], 9));
    assert_eq!(net.gradient(0).data, analytic);
}
