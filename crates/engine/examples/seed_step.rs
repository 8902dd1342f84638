//! Training-step throughput of the Keras seed CNN on synthetic 28x28x1 data:
//! Conv2D(32, 3x3, relu) → MaxPool 2 → Conv2D(64, 3x3, relu) → MaxPool 2 → Flatten →
//! Dense(64, relu) → Dense(10) + softmax cross-entropy, SGD with momentum 0.9 (inline).
//!
//! Run: `cargo run --release -p modelsmith-engine --example seed_step [STEPS]`
//! Prints images/s of full training steps at batch 32 and 128 and a per-layer breakdown.
//! Peer (same machine class, 2 cores): Keras/TensorFlow 4,390 img/s at b32, 6,824 at b128.

use modelsmith_engine::rng::SplitMix64;
use modelsmith_engine::{
    softmax_cross_entropy, Activation, Conv2d, Dense, Flatten, MaxPool2d, Mode, Network, Padding,
    Tensor,
};
use std::time::Instant;

fn seed_cnn() -> Network {
    let relu = Activation::Relu;
    let mut net = Network::new(&[28, 28, 1]);
    let mut s = 0;
    let mut push = |name: &str, layer: Box<dyn modelsmith_engine::Layer>| {
        s = net.push(name, layer, &[s]).expect("seed CNN shapes chain");
    };
    push(
        "conv1",
        Box::new(Conv2d::new(1, 32, 3, 3, 1, Padding::Valid, true, relu, 1)),
    );
    push("pool1", Box::new(MaxPool2d::new(2, 2, Padding::Valid)));
    push(
        "conv2",
        Box::new(Conv2d::new(32, 64, 3, 3, 1, Padding::Valid, true, relu, 2)),
    );
    push("pool2", Box::new(MaxPool2d::new(2, 2, Padding::Valid)));
    push("flatten", Box::new(Flatten::new()));
    push("dense1", Box::new(Dense::new(1600, 64, true, relu, 3)));
    push(
        "dense2",
        Box::new(Dense::new(64, 10, true, Activation::Linear, 4)),
    );
    net
}

fn run(batch: usize, steps: usize) {
    let mut net = seed_cnn();
    let mut rng = SplitMix64::new(batch as u64);
    let x = Tensor::from_vec(
        &[batch, 28, 28, 1],
        (0..batch * 784).map(|_| rng.next_f32()).collect(),
    )
    .unwrap();
    let labels: Vec<u32> = (0..batch).map(|i| (i % 10) as u32).collect();
    let mut dlogits = Tensor::default();
    let mut velocity: Vec<Vec<f32>> = net
        .params()
        .iter()
        .map(|(_, p)| vec![0.0; p.value.len()])
        .collect();
    let (lr, momentum) = (0.01f32, 0.9f32);
    let mut loss_time = std::time::Duration::ZERO;
    let mut sgd_time = std::time::Duration::ZERO;
    let mut step =
        |net: &mut Network, loss_t: &mut std::time::Duration, sgd_t: &mut std::time::Duration| {
            net.zero_grads();
            let logits = net.forward(&x, Mode::Train);
            let t = Instant::now();
            let loss = softmax_cross_entropy(&mut dlogits, logits, &labels);
            *loss_t += t.elapsed();
            net.backward(&dlogits);
            let t = Instant::now();
            for ((_, p), v) in net.params_mut().into_iter().zip(&mut velocity) {
                for ((w, g), v) in p.value.data.iter_mut().zip(&p.grad.data).zip(v.iter_mut()) {
                    *v = momentum * *v - lr * g;
                    *w += *v;
                }
            }
            *sgd_t += t.elapsed();
            loss
        };
    for _ in 0..5 {
        step(&mut net, &mut loss_time, &mut sgd_time);
    }
    net.set_timing(true);
    loss_time = Default::default();
    sgd_time = Default::default();
    let start = Instant::now();
    let mut loss = 0.0;
    for _ in 0..steps {
        loss = step(&mut net, &mut loss_time, &mut sgd_time);
    }
    let secs = start.elapsed().as_secs_f64();
    let ips = (batch * steps) as f64 / secs;
    println!(
        "batch {batch:>4}: {ips:>8.0} img/s  ({:.2} ms/step, final loss {loss:.3})",
        1e3 * secs / steps as f64
    );
    let per = |d: std::time::Duration| 1e3 * d.as_secs_f64() / steps as f64;
    for (name, f, b) in net.timings() {
        println!(
            "    {name:<8} fwd {:>6.3} ms  bwd {:>6.3} ms",
            per(f),
            per(b)
        );
    }
    println!("    {:<8} {:>10.3} ms", "loss", per(loss_time));
    println!("    {:<8} {:>10.3} ms", "sgd", per(sgd_time));
}

fn main() {
    let steps: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    println!("threads: {}", rayon::current_num_threads());
    for batch in [32, 128] {
        let steps = if steps > 0 { steps } else { 20_000 / batch };
        run(batch, steps);
    }
}
