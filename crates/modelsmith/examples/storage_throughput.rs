//! One worker process of the storage throughput benchmark (bench/storage_throughput.sh starts
//! eight at once): joins the study NAME in STORAGE and runs trivially cheap trials — the
//! objective is a quadratic of two sampled floats — until the study has TRIALS trials, so the
//! time goes to the study loop and the storage. All processes start their first trial at the
//! unix time GO (after their own start-up), so start-up costs are not measured. Prints one JSON
//! line: the trials this process ran and when it stopped.
//!
//! Usage: storage_throughput STORAGE NAME TRIALS GO [random|tpe]

use std::sync::Arc;
use std::time::Instant;

use modelsmith::search::sampler::make_sampler;
use modelsmith::search::{Direction, OptimizeOptions, Study, StudyOptions};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 5 {
        eprintln!("usage: storage_throughput STORAGE NAME TRIALS GO [random|tpe]");
        std::process::exit(2);
    }
    let (url, name) = (&args[1], &args[2]);
    let trials: u64 = args[3].parse().expect("TRIALS is a number");
    let go: f64 = args[4].parse().expect("GO is a unix time");
    let sampler = args.get(5).map_or("random", String::as_str);
    let storage = modelsmith::store::open(url).unwrap_or_else(|e| {
        eprintln!("error: {e}");
        std::process::exit(2);
    });
    let study = Study::new(
        Arc::from(storage),
        name,
        Direction::Minimize,
        StudyOptions {
            sampler: Arc::from(make_sampler(sampler, 5).expect("random or tpe")),
            seed: u64::from(std::process::id()),
            ..StudyOptions::default()
        },
    )
    .expect("the study opens");
    let now = modelsmith::search::now_unix();
    let late = now > go;
    if !late {
        std::thread::sleep(std::time::Duration::from_secs_f64(go - now));
    }
    let t0 = Instant::now();
    let summary = study
        .optimize(&OptimizeOptions::trials(trials), |t| {
            let x = t.suggest_float("x", -10.0, 10.0)?;
            let y = t.suggest_float("y", -10.0, 10.0)?;
            Ok((x - 2.0).powi(2) + (y + 1.0).powi(2))
        })
        .expect("the study runs");
    println!(
        "{{\"pid\": {}, \"complete\": {}, \"failed\": {}, \"seconds\": {:.3}, \"end\": {:.3}, \"late\": {}}}",
        std::process::id(),
        summary.complete,
        summary.failed,
        t0.elapsed().as_secs_f64(),
        modelsmith::search::now_unix(),
        late
    );
}
