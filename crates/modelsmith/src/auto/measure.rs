//! Measurements on this machine: a model's inference latency (batch 1), and how long one
//! training epoch of a network takes (to refuse budgets that cannot train anything, and to fit
//! the final training's epochs into the time left).

use std::path::Path;
use std::time::Instant;

use crate::arch::Genome;
use crate::data::Dataset;
use crate::model::OutputLayer;
use crate::predict::Predictor;
use crate::Result;

/// Untimed passes first (first-touch allocations, caches), then the median of timed ones.
const LATENCY_WARMUP: usize = 3;
const LATENCY_RUNS: usize = 15;

/// Median milliseconds for one example (batch 1) through the saved model in `dir`, on the
/// calling thread, the way `serve` answers a lone request.
pub fn latency_ms(dir: &Path) -> Result<f64> {
    let mut predictor = Predictor::load(dir)?;
    let input: Vec<f32> = (0..predictor.input_len())
        .map(|i| (i % 7) as f32 / 7.0)
        .collect();
    for _ in 0..LATENCY_WARMUP {
        std::hint::black_box(predictor.outputs(&[&input])?);
    }
    let mut times: Vec<f64> = (0..LATENCY_RUNS)
        .map(|_| {
            let start = Instant::now();
            let out = predictor.outputs(&[&input]);
            let ms = start.elapsed().as_secs_f64() * 1e3;
            std::hint::black_box(out).map(|_| ms)
        })
        .collect::<Result<_>>()?;
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// Estimated seconds of one training epoch of `genome` over `examples` examples of `train`'s
/// shape (batch 32, Adam), from [`crate::train::seconds_per_example`].
pub fn epoch_seconds(
    genome: &Genome,
    train: &Dataset,
    output: OutputLayer,
    examples: usize,
) -> Result<f64> {
    let spec = genome.to_spec(&train.shape, output);
    Ok(crate::train::seconds_per_example(&spec, train, output.outputs)? * examples as f64)
}
