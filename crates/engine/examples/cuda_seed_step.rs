//! GPU training throughput of the seed CNN on Fashion-MNIST resident on the device: the same
//! steps as `modelsmith train --device cuda` (epoch order uploaded once per epoch, batches
//! gathered on the GPU, SGD momentum 0.9, the loss read every 50 steps).
//!
//! Run (needs `--features cuda` and a GPU):
//! `cargo run --release -p modelsmith-engine --features cuda --example cuda_seed_step -- \
//!  --data /usr/share/datasets/fashion-mnist --batches 32,128,512,2048 --seconds 4 --trials 1`
//!
//! `--trials K` runs K independent trainings at once on the GPU (one thread, stream and
//! network each, as `tune --device cuda --jobs K` does) and reports their summed images/s.
//! Prints one JSON line per batch size. The peer is `bench/torch_seed.py`; `bench/gpu_check.sh`
//! runs both in one session.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};
use std::time::Instant;

use modelsmith_engine::cuda::CudaNetwork;
use modelsmith_engine::optim::OptimizerConfig;
use modelsmith_engine::rng::SplitMix64;
use modelsmith_engine::{Activation, Conv2d, Dense, Flatten, Layer, MaxPool2d, Network, Padding};

fn seed_cnn() -> Network {
    let relu = Activation::Relu;
    let mut net = Network::new(&[28, 28, 1]);
    let layers: Vec<(&str, Box<dyn Layer>)> = vec![
        (
            "conv1",
            Box::new(Conv2d::new(1, 32, 3, 3, 1, Padding::Valid, true, relu, 1)),
        ),
        ("pool1", Box::new(MaxPool2d::new(2, 2, Padding::Valid))),
        (
            "conv2",
            Box::new(Conv2d::new(32, 64, 3, 3, 1, Padding::Valid, true, relu, 2)),
        ),
        ("pool2", Box::new(MaxPool2d::new(2, 2, Padding::Valid))),
        ("flatten", Box::new(Flatten::new())),
        ("dense1", Box::new(Dense::new(1600, 64, true, relu, 3))),
        (
            "dense2",
            Box::new(Dense::new(64, 10, true, Activation::Linear, 4)),
        ),
    ];
    let mut s = 0;
    for (name, layer) in layers {
        s = net.push(name, layer, &[s]).expect("seed CNN shapes chain");
    }
    net
}

/// An IDX file, raw or gzipped, as its bytes after the header.
fn read_idx(path: &Path, header: usize) -> Vec<u8> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .read_to_end(&mut bytes)
        .unwrap();
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_end(&mut raw)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        bytes = raw;
    }
    bytes.split_off(header)
}

fn find(dir: &Path, stem: &str) -> PathBuf {
    for name in [format!("{stem}.gz"), stem.to_string()] {
        let p = dir.join(name);
        if p.exists() {
            return p;
        }
    }
    panic!("{stem}(.gz) not found in {}", dir.display());
}

struct Args {
    data: PathBuf,
    batches: Vec<usize>,
    seconds: f64,
    trials: usize,
}

fn args() -> Args {
    let mut a = Args {
        data: PathBuf::from("/usr/share/datasets/fashion-mnist"),
        batches: vec![32, 128, 512, 2048],
        seconds: 4.0,
        trials: 1,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    for pair in argv.chunks(2) {
        let value = pair.get(1).map(String::as_str).unwrap_or("");
        match pair[0].as_str() {
            "--data" => a.data = PathBuf::from(value),
            "--batches" => {
                a.batches = value
                    .split(',')
                    .map(|b| b.parse().expect("--batches"))
                    .collect()
            }
            "--seconds" => a.seconds = value.parse().expect("--seconds"),
            "--trials" => a.trials = value.parse().expect("--trials"),
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

/// One training run for `seconds` after a warm-up; returns (images, seconds).
fn run(
    x: &[f32],
    labels: &[u32],
    batch: usize,
    seconds: f64,
    seed: u64,
    start: &Barrier,
) -> (f64, f64) {
    let config = OptimizerConfig::Sgd {
        momentum: 0.9,
        nesterov: false,
        weight_decay: 0.0,
    };
    let mut gpu = CudaNetwork::new(0, &seed_cnn(), config, batch).unwrap_or_else(|e| panic!("{e}"));
    let mut data = gpu.upload_dataset(x, labels).unwrap();
    let len = labels.len();
    let steps_per_epoch = len / batch;
    let mut rng = SplitMix64::new(seed);
    let mut order: Vec<u32> = (0..len as u32).collect();
    let mut step = 0u64;
    let mut images = 0usize;
    let mut timed_from: Option<(Instant, usize)> = None;
    let warmup = 20;
    loop {
        // A new shuffled order each epoch (Fisher-Yates), uploaded once.
        for i in (1..len).rev() {
            let j = (rng.next_u64() % (i as u64 + 1)) as usize;
            order.swap(i, j);
        }
        data.set_order(&gpu, &order).unwrap();
        for b in 0..steps_per_epoch {
            if step == warmup {
                gpu.synchronize().unwrap();
                start.wait();
                timed_from = Some((Instant::now(), images));
            }
            gpu.gather_batch(&data, b * batch, batch).unwrap();
            gpu.train_step(step, 0.01 / (1.0 + 1e-6 * step as f32), None, None)
                .unwrap();
            step += 1;
            images += batch;
            if step.is_multiple_of(50) {
                let m = gpu.take_metrics().unwrap();
                assert!(m.diverged.is_none(), "diverged at {:?}", m.diverged);
                if let Some((t0, i0)) = timed_from {
                    let t = t0.elapsed().as_secs_f64();
                    if t >= seconds {
                        return ((images - i0) as f64, t);
                    }
                }
            }
        }
    }
}

fn main() {
    let a = args();
    let images = read_idx(&find(&a.data, "train-images-idx3-ubyte"), 16);
    let labels: Vec<u32> = read_idx(&find(&a.data, "train-labels-idx1-ubyte"), 8)
        .into_iter()
        .map(u32::from)
        .collect();
    let x: Arc<Vec<f32>> = Arc::new(images.iter().map(|&p| p as f32 / 255.0).collect());
    let labels = Arc::new(labels);
    let info = modelsmith_engine::cuda::probe(0).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("{info}; {} training images", labels.len());
    let tf32 = std::env::var("MODELSMITH_CUDA_TF32").is_ok_and(|v| v == "1");
    for &batch in &a.batches {
        let start = Arc::new(Barrier::new(a.trials));
        let handles: Vec<_> = (0..a.trials)
            .map(|t| {
                let (x, labels, start) = (x.clone(), labels.clone(), start.clone());
                let seconds = a.seconds;
                std::thread::spawn(move || run(&x, &labels, batch, seconds, t as u64 + 1, &start))
            })
            .collect();
        let results: Vec<(f64, f64)> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let total: f64 = results.iter().map(|(i, s)| i / s).sum();
        println!(
            "{{\"engine\":\"modelsmith\",\"tf32\":{tf32},\"batch\":{batch},\"trials\":{},\"images_per_second\":{total:.0}}}",
            a.trials
        );
    }
}
