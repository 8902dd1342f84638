//! Quality and speed check of the TPE sampler on the functions of
//! `bench/optuna_functions.py` (global minimum 0).
//!
//! `cargo run --release -p modelsmith --example tpe_check [TRIALS=60] [SEEDS=5]` prints the
//! median best value per function; `... --example tpe_check speed` times one proposal with
//! 1,000 finished trials in the history.

use std::collections::BTreeMap;
use std::f64::consts::PI;
use std::sync::Arc;
use std::time::Instant;

use modelsmith::search::sampler::{SampleContext, Sampler, TpeSampler};
use modelsmith::search::{
    Direction, Distribution, FrozenTrial, OptimizeOptions, ParamRecord, Study, StudyOptions, Trial,
    TrialError, TrialState,
};
use modelsmith::store::MemoryStorage;

type Objective = fn(&mut Trial) -> Result<f64, TrialError>;

fn branin(t: &mut Trial) -> Result<f64, TrialError> {
    let x = t.suggest_float("x", -5.0, 10.0)?;
    let y = t.suggest_float("y", 0.0, 15.0)?;
    Ok(
        (y - 5.1 / (4.0 * PI * PI) * x * x + 5.0 / PI * x - 6.0).powi(2)
            + 10.0 * (1.0 - 1.0 / (8.0 * PI)) * x.cos()
            + 10.0
            - 0.397887,
    )
}

const A: [[f64; 6]; 4] = [
    [10.0, 3.0, 17.0, 3.5, 1.7, 8.0],
    [0.05, 10.0, 17.0, 0.1, 8.0, 14.0],
    [3.0, 3.5, 1.7, 10.0, 17.0, 8.0],
    [17.0, 8.0, 0.05, 10.0, 0.1, 14.0],
];
const P: [[f64; 6]; 4] = [
    [1312.0, 1696.0, 5569.0, 124.0, 8283.0, 5886.0],
    [2329.0, 4135.0, 8307.0, 3736.0, 1004.0, 9991.0],
    [2348.0, 1451.0, 3522.0, 2883.0, 3047.0, 6650.0],
    [4047.0, 8828.0, 8732.0, 5743.0, 1091.0, 381.0],
];
const ALPHA: [f64; 4] = [1.0, 1.2, 3.0, 3.2];

fn hartmann6(t: &mut Trial) -> Result<f64, TrialError> {
    let mut x = [0.0; 6];
    for (i, xi) in x.iter_mut().enumerate() {
        *xi = t.suggest_float(&format!("x{i}"), 0.0, 1.0)?;
    }
    let mut s = 0.0;
    for r in 0..4 {
        let e: f64 = (0..6)
            .map(|j| A[r][j] * (x[j] - 1e-4 * P[r][j]).powi(2))
            .sum();
        s += ALPHA[r] * (-e).exp();
    }
    Ok(-s + 3.32237)
}

fn styblinski_tang8(t: &mut Trial) -> Result<f64, TrialError> {
    let mut s = 0.0;
    for i in 0..8 {
        let x = t.suggest_float(&format!("x{i}"), -5.0, 5.0)?;
        s += x.powi(4) - 16.0 * x * x + 5.0 * x;
    }
    Ok(0.5 * s + 39.16599 * 8.0)
}

fn rosenbrock4(t: &mut Trial) -> Result<f64, TrialError> {
    let x: Vec<f64> = (0..4)
        .map(|i| t.suggest_float(&format!("x{i}"), -2.0, 2.0))
        .collect::<Result<_, _>>()?;
    Ok((0..3)
        .map(|i| 100.0 * (x[i + 1] - x[i] * x[i]).powi(2) + (1.0 - x[i]).powi(2))
        .sum())
}

fn ackley5(t: &mut Trial) -> Result<f64, TrialError> {
    let x: Vec<f64> = (0..5)
        .map(|i| Ok(t.suggest_float(&format!("x{i}"), -5.0, 5.0)? - 1.3))
        .collect::<Result<_, TrialError>>()?;
    let n = x.len() as f64;
    let s1 = x.iter().map(|v| v * v).sum::<f64>() / n;
    let s2 = x.iter().map(|v| (2.0 * PI * v).cos()).sum::<f64>() / n;
    Ok(-20.0 * (-0.2 * s1.sqrt()).exp() - s2.exp() + 20.0 + std::f64::consts::E)
}

/// A made-up training run: log-scale learning rate, ints, a categorical with a conditional.
fn mixed(t: &mut Trial) -> Result<f64, TrialError> {
    let lr = t.suggest_float_log("lr", 1e-5, 1.0)?;
    let units = t.suggest_int_log("units", 16, 512)?;
    let layers = t.suggest_int("layers", 1, 6)?;
    let opt = t.suggest_categorical("opt", &["sgd", "adam", "rmsprop"])?;
    let (best_lr, offset) = match opt {
        "sgd" => {
            let m = t.suggest_float("momentum", 0.0, 0.99)?;
            (-1.5, 0.3 + 2.0 * (m - 0.9).powi(2))
        }
        "adam" => (-3.0, 0.0),
        _ => (-3.5, 0.2),
    };
    let dropout = t.suggest_float_step("dropout", 0.0, 0.5, 0.05)?;
    Ok((lr.log10() - best_lr).powi(2)
        + 0.3 * ((units as f64).log2() - 7.3).powi(2)
        + 0.2 * (layers as f64 - 3.0).powi(2)
        + 3.0 * (dropout - 0.2).powi(2)
        + offset)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// The default sampler, with fields overridden by `TPE_*` variables (for tuning).
fn sampler_from_env() -> TpeSampler {
    let mut s = TpeSampler::default();
    let get = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<f64>().ok());
    if let Some(v) = get("TPE_STARTUP") {
        s.n_startup = v as usize;
    }
    if let Some(v) = get("TPE_CAND") {
        s.n_ei_candidates = v as usize;
    }
    if let Some(v) = get("TPE_GAMMA") {
        s.gamma = v;
    }
    if let Some(v) = get("TPE_PRIOR") {
        s.prior_weight = v;
    }
    if let Some(v) = get("TPE_BWGOOD") {
        s.good_bandwidth = v;
    }
    if let Some(v) = get("TPE_RANKW") {
        s.rank_decay = v;
    }
    if let Some(v) = get("TPE_MIX") {
        s.mix_kernels = v != 0.0;
    }
    if let Some(v) = get("TPE_MULTI") {
        s.multivariate = v != 0.0;
    }
    s
}

fn quality(trials: u64, seeds: u64, holdout: bool) {
    let functions: Vec<(&str, Objective)> = if holdout {
        vec![
            ("rosenbrock4", rosenbrock4),
            ("ackley5", ackley5),
            ("mixed", mixed),
        ]
    } else {
        vec![
            ("branin", branin),
            ("hartmann6", hartmann6),
            ("styblinski_tang8", styblinski_tang8),
        ]
    };
    let sampler = Arc::new(sampler_from_env());
    for (name, f) in functions {
        let start = Instant::now();
        let mut bests = Vec::new();
        for seed in 0..seeds {
            let options = StudyOptions {
                sampler: sampler.clone(),
                seed,
                ..Default::default()
            };
            let study = Study::new(
                Arc::new(MemoryStorage::new()),
                name,
                Direction::Minimize,
                options,
            )
            .unwrap();
            study.optimize(&OptimizeOptions::trials(trials), f).unwrap();
            let best = study.best_trial().unwrap().unwrap();
            if std::env::var_os("TPE_DEBUG").is_some() {
                let xs: Vec<String> = best
                    .params
                    .values()
                    .map(|p| format!("{:.2}", p.internal))
                    .collect();
                eprintln!(
                    "{name} seed {seed}: {:.4} at trial {} [{}]",
                    best.value.unwrap(),
                    best.number,
                    xs.join(" ")
                );
            }
            bests.push(best.value.unwrap());
        }
        let ms = start.elapsed().as_secs_f64() * 1e3 / (trials * seeds) as f64;
        let first5 = median(&mut bests[..seeds.min(5) as usize].to_vec());
        let med = median(&mut bests);
        let q = |p: f64| bests[((bests.len() - 1) as f64 * p).round() as usize];
        println!(
            "{name:<17} median5={first5:<8.4} median={med:<8.4} q25={:<8.4} q75={:<8.4} ms_per_trial={ms:.3}",
            q(0.25),
            q(0.75)
        );
    }
}

fn speed() {
    let dims: Vec<(String, Distribution)> = (0..8)
        .map(|i| (format!("x{i}"), Distribution::float(-5.0, 5.0)))
        .collect();
    let mut state = 1u64;
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let trials: Vec<FrozenTrial> = (0..1000u64)
        .map(|number| {
            let params: BTreeMap<String, ParamRecord> = dims
                .iter()
                .map(|(n, d)| {
                    let record = ParamRecord {
                        distribution: d.clone(),
                        internal: -5.0 + 10.0 * next(),
                    };
                    (n.clone(), record)
                })
                .collect();
            let value = params.values().map(|p| p.internal.powi(2)).sum();
            FrozenTrial {
                id: number as i64,
                number,
                state: TrialState::Complete,
                params,
                value: Some(value),
                intermediate: BTreeMap::new(),
                attrs: BTreeMap::new(),
                started_at: None,
                finished_at: None,
                heartbeat_at: None,
                owner: None,
                error: None,
            }
        })
        .collect();
    let sampler = sampler_from_env();
    let empty = BTreeMap::new();
    let reps = 200;
    let start = Instant::now();
    for r in 0..reps {
        let ctx = SampleContext {
            trials: &trials,
            direction: Direction::Minimize,
            number: 1000 + r,
            seed: 0,
            params: &empty,
        };
        let rel = sampler.sample_relative(&ctx);
        assert_eq!(rel.len(), 8);
    }
    let ms = start.elapsed().as_secs_f64() * 1e3 / reps as f64;
    println!("multivariate proposal, 8 dims, 1000 trials: {ms:.3} ms");
    let start = Instant::now();
    for r in 0..reps {
        let ctx = SampleContext {
            trials: &trials,
            direction: Direction::Minimize,
            number: 1000 + r,
            seed: 0,
            params: &empty,
        };
        for (n, d) in &dims {
            sampler.sample_independent(&ctx, n, d);
        }
    }
    let ms = start.elapsed().as_secs_f64() * 1e3 / reps as f64;
    println!("univariate proposals, 8 dims, 1000 trials: {ms:.3} ms");
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("speed") {
        return speed();
    }
    let holdout = args.first().map(String::as_str) == Some("holdout");
    let args = &args[holdout as usize..];
    let trials = args.first().and_then(|a| a.parse().ok()).unwrap_or(60);
    let seeds = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(5);
    quality(trials, seeds, holdout);
}
