//! The energy meter's overhead, two ways: what one reading of its sources costs (it reads once
//! a second, so that cost per second is the share of one core it takes), and seed-CNN training
//! steps (batch 32, synthetic 28x28 digits) per second with a `Meter` running beside them and
//! without, alternating rounds. One JSON line.
//!
//!     cargo run --release -p modelsmith --example energy_overhead -- [ROUNDS] [SECONDS]

use std::time::Instant;

use modelsmith::energy::{CpuClock, Meter};
use modelsmith::model::{build_network, ModelSpec, OutputLayer};
use modelsmith_engine::{softmax_cross_entropy, Mode, Tensor};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rounds: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(4);
    let seconds: f64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(5.0);
    let shape = [28, 28, 1];
    let spec = ModelSpec::resolve("seed-cnn", OutputLayer::classes(10), &shape).expect("built in");
    let mut net = build_network(&spec, &shape, 10, 1).expect("builds");
    let batch = 32;
    let x = Tensor::from_vec(
        &[batch, 28, 28, 1],
        (0..batch * 784).map(|i| (i % 251) as f32 / 251.0).collect(),
    )
    .expect("shape");
    let labels: Vec<u32> = (0..batch as u32).map(|i| i % 10).collect();
    let mut dlogits = Tensor::default();
    let mut run = |metered: bool| -> f64 {
        let meter = metered.then(|| Meter::start(CpuClock::current_pool(), None));
        let start = Instant::now();
        let mut steps = 0u64;
        while start.elapsed().as_secs_f64() < seconds {
            let logits = net.forward(&x, Mode::Train).clone();
            dlogits.resize(&logits.shape);
            softmax_cross_entropy(&mut dlogits, &logits, &labels);
            net.backward(&dlogits);
            net.zero_grads();
            steps += 1;
        }
        let rate = (steps * batch as u64) as f64 / start.elapsed().as_secs_f64();
        drop(meter.map(Meter::stop));
        rate
    };
    // One reading of every source, as the sampling thread does each second.
    let meter = Meter::start(CpuClock::current_pool(), None);
    let reads = 2000;
    let start = Instant::now();
    for _ in 0..reads {
        std::hint::black_box(meter.read());
    }
    let read_us = start.elapsed().as_secs_f64() * 1e6 / reads as f64;
    drop(meter.stop());
    run(false);
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        without.push(run(false));
        with.push(run(true));
    }
    let best = |v: &[f64]| v.iter().cloned().fold(0.0, f64::max);
    let ratios: Vec<String> = with
        .iter()
        .zip(&without)
        .map(|(w, o)| format!("{:.4}", w / o))
        .collect();
    println!(
        "{{\"read_microseconds\":{read_us:.1},\"share_of_one_core\":{:.2e},\"images_per_second_without\":{:?},\"images_per_second_with\":{:?},\"best_with_over_best_without\":{:.4},\"round_ratios\":[{}]}}",
        read_us / 1e6,
        without.iter().map(|v| v.round()).collect::<Vec<_>>(),
        with.iter().map(|v| v.round()).collect::<Vec<_>>(),
        best(&with) / best(&without),
        ratios.join(",")
    );
}
