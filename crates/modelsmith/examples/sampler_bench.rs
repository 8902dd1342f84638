//! Sampler quality and overhead, the peer of `bench/optuna_functions.py` and
//! `bench/optuna_overhead.py` (run both side by side with `bench/samplers_vs_optuna.sh`).
//!
//! ```sh
//! cargo run --release -p modelsmith --example sampler_bench -- [N_TRIALS=60] [SEEDS=5] [SAMPLERS=random,tpe,gp] [FUNCTIONS=branin,hartmann6,styblinski_tang8]
//! cargo run --release -p modelsmith --example sampler_bench -- overhead [N=1000] [REPEATS=10] [SAMPLERS=random,tpe,gp]
//! ```
//!
//! Quality: the same three test functions as the Optuna script (shifted so the global minimum
//! is 0, same bounds, same parameter names), each minimized for N trials from seeds 0..SEEDS
//! through the public `Study` API; one line per function and sampler, in the Python script's
//! format: `branin tpe median_best=… ms_per_trial=…` (medians over seeds).
//!
//! Overhead: a study of the 8-parameter Styblinski–Tang space is filled with N complete trials
//! drawn by the random sampler, then REPEATS further trials are run one `optimize` call each
//! with the sampler under test. `ms_per_trial` is their mean wall time (the whole trial, storage
//! reads and the study loop's set-up included, as the Python peer's `study.optimize(f,
//! n_trials=1)`), `median_ms_per_trial` their median (robust to a loaded machine's
//! preemptions), `sampler_ms` the mean time spent inside the sampler, and
//! `ms_per_trial_in_one_call` the mean over REPEATS more trials run by a single `optimize`
//! call. The `random` line is the cost of the study loop and storage alone.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use modelsmith::search::sampler::{GpSampler, RandomSampler, SampleContext, Sampler, TpeSampler};
use modelsmith::search::{
    Direction, Distribution, OptimizeOptions, ParamRecord, Study, StudyOptions, Trial, TrialError,
};
use modelsmith::store::MemoryStorage;

type Objective = fn(&mut Trial) -> Result<f64, TrialError>;

fn branin(t: &mut Trial) -> Result<f64, TrialError> {
    let x = t.suggest_float("x", -5.0, 10.0)?;
    let y = t.suggest_float("y", 0.0, 15.0)?;
    let pi = std::f64::consts::PI;
    Ok(
        (y - 5.1 / (4.0 * pi * pi) * x * x + 5.0 / pi * x - 6.0).powi(2)
            + 10.0 * (1.0 - 1.0 / (8.0 * pi)) * x.cos()
            + 10.0
            - 0.397887,
    )
}

const HARTMANN_A: [[f64; 6]; 4] = [
    [10.0, 3.0, 17.0, 3.5, 1.7, 8.0],
    [0.05, 10.0, 17.0, 0.1, 8.0, 14.0],
    [3.0, 3.5, 1.7, 10.0, 17.0, 8.0],
    [17.0, 8.0, 0.05, 10.0, 0.1, 14.0],
];
const HARTMANN_P: [[f64; 6]; 4] = [
    [1312.0, 1696.0, 5569.0, 124.0, 8283.0, 5886.0],
    [2329.0, 4135.0, 8307.0, 3736.0, 1004.0, 9991.0],
    [2348.0, 1451.0, 3522.0, 2883.0, 3047.0, 6650.0],
    [4047.0, 8828.0, 8732.0, 5743.0, 1091.0, 381.0],
];
const HARTMANN_ALPHA: [f64; 4] = [1.0, 1.2, 3.0, 3.2];

fn hartmann6(t: &mut Trial) -> Result<f64, TrialError> {
    let mut x = [0.0; 6];
    for (i, v) in x.iter_mut().enumerate() {
        *v = t.suggest_float(&format!("x{i}"), 0.0, 1.0)?;
    }
    let mut sum = 0.0;
    for k in 0..4 {
        let inner: f64 = (0..6)
            .map(|j| HARTMANN_A[k][j] * (x[j] - 1e-4 * HARTMANN_P[k][j]).powi(2))
            .sum();
        sum += HARTMANN_ALPHA[k] * (-inner).exp();
    }
    Ok(-sum + 3.32237)
}

fn styblinski_tang8(t: &mut Trial) -> Result<f64, TrialError> {
    let mut sum = 0.0;
    for i in 0..8 {
        let x = t.suggest_float(&format!("x{i}"), -5.0, 5.0)?;
        sum += x.powi(4) - 16.0 * x * x + 5.0 * x;
    }
    Ok(0.5 * sum + 39.16599 * 8.0)
}

fn make_sampler(name: &str) -> Arc<dyn Sampler> {
    match name {
        "random" => Arc::new(RandomSampler),
        "tpe" => Arc::new(TpeSampler::default()),
        "gp" => Arc::new(GpSampler::default()),
        other => {
            eprintln!("unknown sampler '{other}' (expected random, tpe or gp)");
            std::process::exit(2)
        }
    }
}

fn new_study(storage: &Arc<MemoryStorage>, sampler: Arc<dyn Sampler>, seed: u64) -> Study {
    let options = StudyOptions {
        sampler,
        seed,
        ..Default::default()
    };
    Study::new(storage.clone(), "bench", Direction::Minimize, options).expect("study")
}

/// Python's `statistics.median`.
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn arg<T: std::str::FromStr>(args: &[String], i: usize, default: T) -> T {
    match args.get(i) {
        None => default,
        Some(s) => s.parse().unwrap_or_else(|_| {
            eprintln!("argument {} must be a number, got '{s}'", i + 1);
            std::process::exit(2)
        }),
    }
}

fn samplers_arg(args: &[String], i: usize, default: &str) -> Vec<String> {
    args.get(i)
        .map_or(default, String::as_str)
        .split(',')
        .map(str::to_string)
        .collect()
}

fn quality(args: &[String]) {
    let n_trials: u64 = arg(args, 0, 60);
    let seeds: u64 = arg(args, 1, 5);
    let samplers = samplers_arg(args, 2, "random,tpe,gp");
    let only = samplers_arg(args, 3, "branin,hartmann6,styblinski_tang8");
    let functions: [(&str, Objective); 3] = [
        ("branin", branin),
        ("hartmann6", hartmann6),
        ("styblinski_tang8", styblinski_tang8),
    ];
    for (name, f) in functions
        .into_iter()
        .filter(|(n, _)| only.iter().any(|o| o == n))
    {
        for sampler in &samplers {
            let (mut bests, mut ms) = (Vec::new(), Vec::new());
            for seed in 0..seeds {
                let storage = Arc::new(MemoryStorage::new());
                let study = new_study(&storage, make_sampler(sampler), seed);
                let start = Instant::now();
                study
                    .optimize(&OptimizeOptions::trials(n_trials), f)
                    .expect("optimize");
                ms.push(start.elapsed().as_secs_f64() * 1000.0 / n_trials as f64);
                let best = study
                    .best_trial()
                    .expect("trials")
                    .expect("a complete trial");
                bests.push(best.value.expect("a value"));
            }
            if std::env::var_os("SAMPLER_BENCH_VERBOSE").is_some() {
                eprintln!("{name} {sampler} bests={bests:?}");
            }
            println!(
                "{name} {sampler} median_best={:.4} ms_per_trial={:.2}",
                median(bests),
                median(ms)
            );
        }
    }
}

/// Counts the time spent inside a sampler.
struct Timed {
    inner: Arc<dyn Sampler>,
    nanos: AtomicU64,
}

impl Timed {
    fn add(&self, start: Instant) {
        self.nanos
            .fetch_add(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
    }
}

impl Sampler for Timed {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn sample_relative(
        &self,
        ctx: &SampleContext,
    ) -> std::collections::BTreeMap<String, ParamRecord> {
        let start = Instant::now();
        let out = self.inner.sample_relative(ctx);
        self.add(start);
        out
    }
    fn sample_independent(&self, ctx: &SampleContext, name: &str, dist: &Distribution) -> f64 {
        let start = Instant::now();
        let out = self.inner.sample_independent(ctx, name, dist);
        self.add(start);
        out
    }
}

fn overhead(args: &[String]) {
    let n: u64 = arg(args, 0, 1000);
    let repeats: u64 = arg(args, 1, 10);
    let samplers = samplers_arg(args, 2, "random,tpe,gp");
    for sampler in &samplers {
        // The same N random trials for every sampler (same seed), in a fresh storage each.
        let storage = Arc::new(MemoryStorage::new());
        let fill = Instant::now();
        new_study(&storage, Arc::new(RandomSampler), 0)
            .optimize(&OptimizeOptions::trials(n), styblinski_tang8)
            .expect("optimize");
        let fill_s = fill.elapsed().as_secs_f64();
        let timed = Arc::new(Timed {
            inner: make_sampler(sampler),
            nanos: AtomicU64::new(0),
        });
        let study = new_study(&storage, timed.clone(), 0);
        // As the Python peer: one `optimize` call per trial.
        let start = Instant::now();
        let mut each = Vec::new();
        for r in 1..=repeats {
            let one = Instant::now();
            study
                .optimize(&OptimizeOptions::trials(n + r), styblinski_tang8)
                .expect("optimize");
            each.push(one.elapsed().as_secs_f64() * 1000.0);
        }
        let per_call = start.elapsed().as_secs_f64() * 1000.0 / repeats as f64;
        // The median resists a loaded machine's preemptions better than the mean.
        let median_call = median(each);
        let sampler_ms = timed.nanos.load(Ordering::Relaxed) as f64 / 1e6 / repeats as f64;
        // Steady state: REPEATS more trials in one call (no per-call set-up).
        let start = Instant::now();
        study
            .optimize(&OptimizeOptions::trials(n + 2 * repeats), styblinski_tang8)
            .expect("optimize");
        let in_one_call = start.elapsed().as_secs_f64() * 1000.0 / repeats as f64;
        println!(
            "overhead {sampler} trials={n} ms_per_trial={per_call:.3} \
             median_ms_per_trial={median_call:.3} sampler_ms={sampler_ms:.3} \
             ms_per_trial_in_one_call={in_one_call:.3} (means of {repeats}; filling with random \
             took {fill_s:.2} s)"
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("overhead") {
        overhead(&args[1..]);
    } else {
        quality(&args);
    }
}
