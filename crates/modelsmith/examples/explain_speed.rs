//! Seconds for Integrated Gradients (black baseline, 50 steps, no refinement) on 1 test digit and
//! on a batch of 64, best of REPEATS, as one JSON line: our side of `bench/explain_speed.sh`.
//!
//!     cargo run --release -p modelsmith --example explain_speed -- MODEL_DIR [REPEATS]

use std::time::Instant;

use modelsmith::data::{load, LoadOptions};
use modelsmith::explain::{Baseline, ExplainOptions, Explainer, Method};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(model) = args.get(1) else {
        eprintln!("usage: explain_speed MODEL_DIR [REPEATS]");
        std::process::exit(2);
    };
    let repeats: usize = args.get(2).and_then(|r| r.parse().ok()).unwrap_or(5);
    let mut e = Explainer::load(std::path::Path::new(model)).expect("model folder");
    let test = load("digits", &LoadOptions::default())
        .expect("digits")
        .test;
    let len = test.example_len();
    let mut options = ExplainOptions::new(Method::IntegratedGradients, Baseline::Black);
    options.steps = 50;
    options.tolerance = None;
    let mut out = vec![format!("\"threads\":{}", rayon::current_num_threads())];
    for n in [1usize, 64] {
        let x = &test.x[..n * len];
        let targets = e.default_targets(x);
        e.explain(x, &targets, &options).expect("explain");
        let best = (0..repeats)
            .map(|_| {
                let start = Instant::now();
                e.explain(x, &targets, &options).expect("explain");
                start.elapsed().as_secs_f64()
            })
            .fold(f64::INFINITY, f64::min);
        out.push(format!("\"ig_{n}_seconds\":{best:.6}"));
    }
    println!("{{{}}}", out.join(","));
    if std::env::var_os("MODELSMITH_EXPLAIN_TIMING").is_some() {
        // Where the time goes, layer by layer, for one more batch of 64.
        let x = &test.x[..64 * len];
        let targets = e.default_targets(x);
        e.network_mut().set_timing(true);
        e.explain(x, &targets, &options).expect("explain");
        for (name, forward, backward) in e.network_mut().timings() {
            eprintln!("{name:<12} forward {forward:>10.3?}  backward {backward:>10.3?}");
        }
    }
}
