//! Measurements on this machine: a model's inference latency (batch 1), and how long one
//! training epoch of a network takes (to refuse budgets that cannot train anything, and to fit
//! the final training's epochs into the time left).

use std::path::Path;
use std::time::Instant;

use crate::arch::Genome;
use crate::data::Dataset;
use crate::energy::{CpuClock, CpuPower};
use crate::model::OutputLayer;
use crate::predict::Predictor;
use crate::Result;

/// Untimed passes first (first-touch allocations, caches), then the median of timed ones.
const LATENCY_WARMUP: usize = 3;
const LATENCY_RUNS: usize = 15;

/// Wall time of the predictions whose CPU time gives the energy per prediction: the kernel
/// updates other threads' CPU time at its scheduler tick (4 ms at 250 Hz), so a few
/// milliseconds of runs would read as 0 or 1 tick; 250 ms keeps that error near 2%.
const ENERGY_SECONDS: f64 = 0.25;

/// A model's cost per prediction at batch 1.
#[derive(Clone, Copy, Debug)]
pub struct Latency {
    /// Median milliseconds.
    pub ms: f64,
    /// Estimated joules of one prediction: the CPU time (this thread and its rayon pool) of
    /// [`ENERGY_SECONDS`] of back-to-back predictions, per prediction, × watts per busy
    /// thread. A prediction is too short for RAPL to resolve, so this is always the estimate.
    pub joules_per_prediction: f64,
}

/// [`Latency`] of one example (batch 1) through the saved model in `dir`, on the calling
/// thread, the way `serve` answers a lone request; `cpu_watts` as `--cpu-watts`.
pub fn latency(dir: &Path, cpu_watts: Option<f64>) -> Result<Latency> {
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
    let clock = CpuClock::current_pool();
    let (cpu_before, start) = (clock.seconds(), Instant::now());
    let mut runs = 0u64;
    while runs == 0 || start.elapsed().as_secs_f64() < ENERGY_SECONDS {
        std::hint::black_box(predictor.outputs(&[&input])?);
        runs += 1;
    }
    let cpu_per_run = (clock.seconds() - cpu_before).max(0.0) / runs as f64;
    times.sort_by(f64::total_cmp);
    Ok(Latency {
        ms: times[times.len() / 2],
        joules_per_prediction: cpu_per_run * CpuPower::for_this_machine(cpu_watts).watts_per_thread,
    })
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
