//! Inference speed of a saved model through `Predictor` (the path `modelsmith predict` and the
//! server use), on the bundled MNIST test digits. The peer is `bench/ort_infer.py` (onnxruntime on
//! the ONNX export of the same model); `bench/infer_vs_ort.sh` runs both interleaved.
//!
//! ```sh
//! cargo run --release -p modelsmith --example infer_bench -- MODEL_DIR [--threads 2] \
//!     [--batches 1,32] [--seconds 2] [--api into|vec] [--dump FILE] [--layers]
//! ```
//!
//! Per batch size: a warm-up of about a fifth of the measuring time, then calls on consecutive
//! test images (wrapping around) for `--seconds`, each call timed. Prints one line per batch size:
//! `engine=modelsmith batch=B calls=N images_per_s=… p50_ms=… p99_ms=…` (images/s = images run /
//! total time of the calls). `--api into` times `Predictor::outputs_into` (one flat batch,
//! no allocation per call), `--api vec` the allocating `Predictor::probabilities` wrapper.
//! `--dump FILE` writes the probabilities of the first 1,024 test digits (run at batch 32) as
//! little-endian f32, for `bench/ort_infer.py --compare FILE`. `--layers` adds each layer's mean
//! forward time per call (timing costs two clock reads per layer).

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use modelsmith::data::{self, LoadOptions};
use modelsmith::predict::Predictor;

#[derive(Clone, Copy, PartialEq)]
enum Api {
    Into,
    Vec,
}

struct Args {
    model: PathBuf,
    threads: usize,
    batches: Vec<usize>,
    seconds: f64,
    api: Api,
    dump: Option<PathBuf>,
    layers: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mut args = Args {
        model: PathBuf::new(),
        threads: 2,
        batches: vec![1, 32],
        seconds: 2.0,
        api: Api::Into,
        dump: None,
        layers: false,
    };
    let mut model = None;
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--threads" => args.threads = value()?.parse().map_err(|e| format!("{a}: {e}"))?,
            "--seconds" => args.seconds = value()?.parse().map_err(|e| format!("{a}: {e}"))?,
            "--batches" => {
                args.batches = value()?
                    .split(',')
                    .map(|b| b.trim().parse::<usize>().map_err(|e| format!("{a}: {e}")))
                    .collect::<Result<_, _>>()?
            }
            "--api" => {
                args.api = match value()?.as_str() {
                    "into" => Api::Into,
                    "vec" => Api::Vec,
                    other => return Err(format!("--api is into or vec, not {other}")),
                }
            }
            "--dump" => args.dump = Some(value()?.into()),
            "--layers" => args.layers = true,
            _ if model.is_none() && !a.starts_with('-') => model = Some(PathBuf::from(a)),
            _ => return Err(format!("unexpected argument {a}")),
        }
    }
    args.model = model.ok_or("usage: infer_bench MODEL_DIR [options]")?;
    if args.threads == 0 || args.batches.contains(&0) || args.seconds <= 0.0 {
        return Err("threads, batch sizes and seconds must be positive".into());
    }
    Ok(args)
}

/// Runs calls of `batch` images starting at image `start` of `images` (wrapping around), writing
/// `batch * classes` probabilities into `out`.
struct Runner<'a> {
    predictor: &'a mut Predictor,
    images: &'a [f32],
    len: usize,
    count: usize,
    api: Api,
    flat: Vec<f32>,
}

impl Runner<'_> {
    /// Gathers the call's images into one flat batch (outside the timed part, as the peer
    /// passes a slice of its array).
    fn prepare(&mut self, start: usize, batch: usize) {
        self.flat.clear();
        for i in 0..batch {
            let k = (start + i) % self.count;
            self.flat
                .extend_from_slice(&self.images[k * self.len..(k + 1) * self.len]);
        }
    }

    /// One timed call on the prepared batch.
    fn run(&mut self, out: &mut [f32]) {
        match self.api {
            Api::Into => self
                .predictor
                .outputs_into(&self.flat, out)
                .expect("inputs have the model's size"),
            Api::Vec => {
                let inputs: Vec<&[f32]> = self.flat.chunks_exact(self.len).collect();
                let probs = self
                    .predictor
                    .outputs(&inputs)
                    .expect("inputs have the model's size");
                for (o, p) in out.chunks_exact_mut(probs[0].len()).zip(&probs) {
                    o.copy_from_slice(p);
                }
            }
        }
    }
}

fn percentile(sorted: &[Duration], q: f64) -> f64 {
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("infer_bench: {e}");
            std::process::exit(2);
        }
    };
    rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads)
        .build_global()
        .expect("the global thread pool is set once");
    let mut predictor = Predictor::load(&args.model).unwrap_or_else(|e| {
        eprintln!("infer_bench: {e}");
        std::process::exit(2);
    });
    let test = data::load("digits", &LoadOptions::default())
        .expect("the digits set is bundled")
        .test;
    let len = predictor.input_len();
    assert_eq!(test.x.len() / test.len(), len, "model input vs digits");
    let classes = predictor.output_len();
    let max_batch = args.batches.iter().copied().max().unwrap_or(1).max(32);
    let mut out = vec![0f32; max_batch * classes];
    let mut runner = Runner {
        predictor: &mut predictor,
        images: &test.x,
        len,
        count: test.len(),
        api: args.api,
        flat: Vec::with_capacity(max_batch * len),
    };

    if let Some(path) = &args.dump {
        let n = 1024.min(runner.count);
        let mut probs = Vec::with_capacity(n * classes);
        for start in (0..n).step_by(32) {
            let b = 32.min(n - start);
            runner.prepare(start, b);
            runner.run(&mut out[..b * classes]);
            probs.extend_from_slice(&out[..b * classes]);
        }
        let bytes: Vec<u8> = probs.iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::File::create(path)
            .and_then(|mut f| f.write_all(&bytes))
            .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    }

    for &batch in &args.batches {
        let out = &mut out[..batch * classes];
        let mut start = 0;
        let warm_until = Instant::now() + Duration::from_secs_f64(args.seconds / 5.0);
        while Instant::now() < warm_until {
            runner.prepare(start, batch);
            runner.run(out);
            start = (start + batch) % runner.count;
        }
        runner.predictor.network_mut().set_timing(args.layers);
        let mut times = Vec::new();
        let budget = Duration::from_secs_f64(args.seconds);
        let mut total = Duration::ZERO;
        while total < budget {
            runner.prepare(start, batch);
            let t = Instant::now();
            runner.run(out);
            let dt = t.elapsed();
            times.push(dt);
            total += dt;
            start = (start + batch) % runner.count;
        }
        times.sort();
        println!(
            "engine=modelsmith batch={batch} calls={} images_per_s={:.0} p50_ms={:.4} p99_ms={:.4}",
            times.len(),
            (times.len() * batch) as f64 / total.as_secs_f64(),
            percentile(&times, 0.5),
            percentile(&times, 0.99),
        );
        if args.layers {
            let calls = times.len() as f64;
            for (name, fwd, _) in runner.predictor.network_mut().timings() {
                println!(
                    "  layer {name:<10} {:>8.2} us/call",
                    fwd.as_secs_f64() * 1e6 / calls
                );
            }
        }
    }
}
