//! Measured inference latency for the model card: the [`Predictor`] timed at fixed batch
//! sizes, after a warm-up, on this machine.

use std::time::Instant;

use serde::Serialize;

use crate::predict::Predictor;
use crate::Result;

/// Batch sizes the card reports: one request at a time, and a batch as a busy server sees it.
pub const BATCH_SIZES: [usize; 2] = [1, 32];
/// Untimed runs first (first-touch allocations, caches, the thread pool waking up).
const WARMUP_RUNS: usize = 5;

#[derive(Clone, Debug, Serialize)]
pub struct BatchLatency {
    pub batch: usize,
    pub runs: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Examples per second at the median latency.
    pub images_per_s: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct LatencyReport {
    /// The CPU model from /proc/cpuinfo (or the architecture where that is unavailable).
    pub cpu: String,
    pub logical_cpus: usize,
    /// Threads the engine used (rayon's pool).
    pub threads: usize,
    pub batches: Vec<BatchLatency>,
}

/// Times `runs` forward passes per batch size in [`BATCH_SIZES`] on synthetic inputs of the
/// model's shape (values in [0, 1), as preprocessed pixels are; dense models take the same time
/// whatever the values).
pub fn measure(predictor: &mut Predictor, runs: usize) -> Result<LatencyReport> {
    let len = predictor.input_len();
    let largest = BATCH_SIZES.iter().copied().max().unwrap_or(1);
    let inputs: Vec<Vec<f32>> = (0..largest)
        .map(|i| synthetic_input(len, i as u64))
        .collect();
    let mut batches = Vec::new();
    for batch in BATCH_SIZES {
        let refs: Vec<&[f32]> = inputs[..batch].iter().map(Vec::as_slice).collect();
        for _ in 0..WARMUP_RUNS {
            predictor.outputs(&refs)?;
        }
        let mut times_ms = Vec::with_capacity(runs);
        for _ in 0..runs {
            let start = Instant::now();
            let probs = predictor.outputs(&refs)?;
            times_ms.push(start.elapsed().as_secs_f64() * 1e3);
            std::hint::black_box(probs);
        }
        times_ms.sort_by(f64::total_cmp);
        let p50_ms = percentile(&times_ms, 50.0);
        batches.push(BatchLatency {
            batch,
            runs,
            p50_ms,
            p99_ms: percentile(&times_ms, 99.0),
            images_per_s: batch as f64 * 1e3 / p50_ms,
        });
    }
    Ok(LatencyReport {
        cpu: cpu_model(),
        logical_cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        threads: rayon::current_num_threads(),
        batches,
    })
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Deterministic values in [0, 1) (a 64-bit LCG), so every run times the same work.
fn synthetic_input(len: usize, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(1);
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 40) as f32 / (1u64 << 24) as f32
        })
        .collect()
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&[3.0], 99.0), 3.0);
        assert_eq!(percentile(&[1.0, 2.0, 3.0], 50.0), 2.0);
        assert!(percentile(&[], 50.0).is_nan());
    }

    #[test]
    fn synthetic_inputs_are_in_unit_range_and_repeatable() {
        let a = synthetic_input(1000, 3);
        assert_eq!(a, synthetic_input(1000, 3));
        assert_ne!(a, synthetic_input(1000, 4));
        assert!(a.iter().all(|&x| (0.0..1.0).contains(&x)));
    }
}
