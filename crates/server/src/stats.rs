//! Per-model inference statistics in the shape of Triton's statistics extension
//! (`GET /v2/models/{name}/stats`), which `tritonclient`'s `get_inference_statistics` reads:
//! requests that succeeded and failed with their total time, the time requests waited for the
//! batching worker, and the forward passes with theirs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

/// Counters that handlers and the batching worker add to; reading them never blocks either.
#[derive(Debug, Default)]
pub struct InferenceStats {
    success_count: AtomicU64,
    success_ns: AtomicU64,
    fail_count: AtomicU64,
    fail_ns: AtomicU64,
    /// Examples answered.
    inference_count: AtomicU64,
    /// Forward passes (batches) run, and their time.
    execution_count: AtomicU64,
    compute_ns: AtomicU64,
    /// Requests taken off the queue, and their time waiting in it.
    queue_count: AtomicU64,
    queue_ns: AtomicU64,
    /// Unix milliseconds of the last successful request.
    last_inference_ms: AtomicU64,
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl InferenceStats {
    /// A request answered (`Ok(examples)`) or refused, after `elapsed`.
    pub fn request(&self, examples: Result<usize, ()>, elapsed: Duration) {
        match examples {
            Ok(n) => {
                self.success_count.fetch_add(1, Ordering::Relaxed);
                self.success_ns.fetch_add(nanos(elapsed), Ordering::Relaxed);
                self.inference_count.fetch_add(n as u64, Ordering::Relaxed);
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64);
                self.last_inference_ms.store(now, Ordering::Relaxed);
            }
            Err(()) => {
                self.fail_count.fetch_add(1, Ordering::Relaxed);
                self.fail_ns.fetch_add(nanos(elapsed), Ordering::Relaxed);
            }
        }
    }

    /// One forward pass over a batch that took `compute`.
    pub fn execution(&self, compute: Duration) {
        self.execution_count.fetch_add(1, Ordering::Relaxed);
        self.compute_ns.fetch_add(nanos(compute), Ordering::Relaxed);
    }

    /// A request that waited `waited` in the queue before its batch ran.
    pub fn queued(&self, waited: Duration) {
        self.queue_count.fetch_add(1, Ordering::Relaxed);
        self.queue_ns.fetch_add(nanos(waited), Ordering::Relaxed);
    }

    /// Triton's per-model statistics object.
    pub fn to_json(&self, name: &str, version: &str) -> Value {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let pair = |count: u64, ns: u64| json!({ "count": count, "ns": ns });
        let none = pair(0, 0);
        json!({
            "name": name,
            "version": version,
            "last_inference": get(&self.last_inference_ms),
            "inference_count": get(&self.inference_count),
            "execution_count": get(&self.execution_count),
            "inference_stats": {
                "success": pair(get(&self.success_count), get(&self.success_ns)),
                "fail": pair(get(&self.fail_count), get(&self.fail_ns)),
                "queue": pair(get(&self.queue_count), get(&self.queue_ns)),
                "compute_input": none,
                "compute_infer": pair(get(&self.execution_count), get(&self.compute_ns)),
                "compute_output": none,
                "cache_hit": none,
                "cache_miss": none,
            },
            "batch_stats": [],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_up() {
        let stats = InferenceStats::default();
        stats.request(Ok(3), Duration::from_micros(5));
        stats.request(Ok(1), Duration::from_micros(7));
        stats.request(Err(()), Duration::from_micros(2));
        stats.execution(Duration::from_micros(4));
        stats.queued(Duration::from_nanos(10));
        let j = stats.to_json("m", "1");
        assert_eq!(j["inference_count"], 4);
        assert_eq!(j["execution_count"], 1);
        assert_eq!(j["inference_stats"]["success"]["count"], 2);
        assert_eq!(j["inference_stats"]["success"]["ns"], 12_000);
        assert_eq!(j["inference_stats"]["fail"]["count"], 1);
        assert_eq!(j["inference_stats"]["queue"]["ns"], 10);
        assert_eq!(j["inference_stats"]["compute_infer"]["ns"], 4_000);
        assert!(j["last_inference"].as_u64().unwrap() > 0);
    }
}
