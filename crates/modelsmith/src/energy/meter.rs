//! [`Meter`]: the energy of one piece of work (a training, a trial), sampled on its own thread
//! once a second from the most trusted source this machine offers, with the method recorded.

use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::cpu_time::{machine_busy_seconds, process_seconds, resident_bytes, CpuClock};
use super::power_model::{CpuPower, MEMORY_WATTS_PER_GB};
use super::rapl::{self, Rapl};

/// How often the meter reads its sources (RAPL counters wrap in minutes at the earliest).
const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// How a figure was obtained.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EnergyMethod {
    /// Measured: the machine's RAPL counters, given to this work by its share of the busy CPU
    /// time.
    Rapl,
    /// Estimated: CPU time × watts per busy thread, plus resident memory × watts per GB.
    Estimate,
}

impl EnergyMethod {
    pub fn name(self) -> &'static str {
        match self {
            EnergyMethod::Rapl => "rapl",
            EnergyMethod::Estimate => "estimate",
        }
    }
}

/// The energy of a piece of work.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Energy {
    pub joules: f64,
    /// The CPU's part (with RAPL: packages and DRAM together, all in `cpu_joules`).
    pub cpu_joules: f64,
    pub memory_joules: f64,
    pub seconds: f64,
    /// CPU seconds of the work's threads.
    pub cpu_seconds: f64,
    pub method: EnergyMethod,
    /// What was read or assumed, in one line.
    pub source: String,
}

impl Energy {
    /// Average watts over the work's wall time.
    pub fn watts(&self) -> f64 {
        if self.seconds > 0.0 {
            self.joules / self.seconds
        } else {
            0.0
        }
    }
}

/// Running totals, updated by the sampling thread.
#[derive(Clone, Debug)]
struct Tally {
    cpu_joules: f64,
    memory_joules: f64,
    cpu_seconds: f64,
    last: Reading,
}

/// One read of the CPU clocks a source needs.
#[derive(Clone, Copy, Debug)]
struct Reading {
    at: Instant,
    work_cpu: f64,
    /// The whole process's: the same as `work_cpu` for [`CpuClock::Process`].
    process_cpu: f64,
    /// Read for RAPL only (its share of the machine); 0 otherwise.
    machine_busy: f64,
}

impl Reading {
    fn now(clock: &CpuClock, machine: bool) -> Reading {
        let work_cpu = clock.seconds();
        Reading {
            at: Instant::now(),
            work_cpu,
            process_cpu: match clock {
                CpuClock::Process => work_cpu,
                CpuClock::Threads(_) => process_seconds(),
            },
            machine_busy: if machine { machine_busy_seconds() } else { 0.0 },
        }
    }
}

/// Where joules come from.
enum Source {
    Rapl(Rapl),
    Estimate(CpuPower),
}

struct Sampler {
    clock: CpuClock,
    source: Source,
    tally: Tally,
}

impl Sampler {
    fn sample(&mut self) {
        let now = Reading::now(&self.clock, matches!(self.source, Source::Rapl(_)));
        let last = self.tally.last;
        let work = (now.work_cpu - last.work_cpu).max(0.0);
        let dt = now.at.duration_since(last.at).as_secs_f64();
        self.tally.cpu_seconds += work;
        match &mut self.source {
            Source::Rapl(rapl) => {
                // The machine's joules, this work's share of its busy CPU time.
                let machine = rapl.joules_since_last().unwrap_or(0.0);
                let busy = now.machine_busy - last.machine_busy;
                self.tally.cpu_joules += machine * share(work, busy);
            }
            Source::Estimate(power) => {
                self.tally.cpu_joules += work * power.watts_per_thread;
                // Memory is the process's: a thread set gets its share of the process's CPU.
                let of_process = match self.clock {
                    CpuClock::Process => 1.0,
                    CpuClock::Threads(_) => share(work, now.process_cpu - last.process_cpu),
                };
                self.tally.memory_joules +=
                    resident_bytes() / 1e9 * MEMORY_WATTS_PER_GB * dt * of_process;
            }
        }
        self.tally.last = now;
    }
}

/// `part / whole` within [0, 1]; 0 when nothing was used at all.
fn share(part: f64, whole: f64) -> f64 {
    if whole > 0.0 {
        (part / whole).clamp(0.0, 1.0)
    } else {
        0.0
    }
}

/// Meters one piece of work from [`Meter::start`] to [`Meter::stop`].
pub struct Meter {
    started: Instant,
    method: EnergyMethod,
    source: String,
    sampler: Arc<Mutex<Sampler>>,
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Meter {
    /// Starts metering the CPU time of `clock`: RAPL when this machine's counters can be read,
    /// else the estimate (with `cpu_watts` per busy thread when given).
    pub fn start(clock: CpuClock, cpu_watts: Option<f64>) -> Meter {
        let (source, method, text) = match (cpu_watts, Rapl::open(&rapl::root())) {
            (None, Ok(Some(r))) => {
                let text = format!(
                    "RAPL ({}), this work's share of the busy CPU time",
                    r.zone_names()
                );
                (Source::Rapl(r), EnergyMethod::Rapl, text)
            }
            (given, found) => {
                if let (None, Err(why)) = (given, found) {
                    warn_once(&why);
                }
                let power = CpuPower::for_this_machine(given);
                let text = format!(
                    "estimate: CPU time × {}, plus resident memory × {MEMORY_WATTS_PER_GB} W/GB",
                    power.source
                );
                (Source::Estimate(power), EnergyMethod::Estimate, text)
            }
        };
        let first = Reading::now(&clock, matches!(source, Source::Rapl(_)));
        let sampler = Arc::new(Mutex::new(Sampler {
            clock,
            source,
            tally: Tally {
                cpu_joules: 0.0,
                memory_joules: 0.0,
                cpu_seconds: 0.0,
                last: first,
            },
        }));
        let (stop, stopped) = channel::<()>();
        let shared = Arc::clone(&sampler);
        let thread = std::thread::Builder::new()
            .name("energy-meter".into())
            .spawn(move || loop {
                match stopped.recv_timeout(SAMPLE_EVERY) {
                    Err(RecvTimeoutError::Timeout) => lock(&shared).sample(),
                    _ => return,
                }
            })
            .ok();
        Meter {
            started: first.at,
            method,
            source: text,
            sampler,
            stop: Some(stop),
            thread,
        }
    }

    /// Meters this process (a training on its own).
    pub fn process() -> Meter {
        Meter::start(CpuClock::Process, None)
    }

    /// The energy so far (reads every source now).
    pub fn read(&self) -> Energy {
        let mut s = lock(&self.sampler);
        s.sample();
        let t = &s.tally;
        Energy {
            joules: t.cpu_joules + t.memory_joules,
            cpu_joules: t.cpu_joules,
            memory_joules: t.memory_joules,
            seconds: self.started.elapsed().as_secs_f64(),
            cpu_seconds: t.cpu_seconds,
            method: self.method,
            source: self.source.clone(),
        }
    }

    /// Stops the sampling thread and returns the total.
    pub fn stop(mut self) -> Energy {
        self.halt();
        self.read()
    }

    fn halt(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        self.halt();
    }
}

fn lock(s: &Mutex<Sampler>) -> std::sync::MutexGuard<'_, Sampler> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

/// Says once per process why the counters were not used.
fn warn_once(why: &str) {
    static SAID: std::sync::Once = std::sync::Once::new();
    SAID.call_once(|| tracing::warn!("energy: {why}; estimating from CPU time instead"));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spin(seconds: f64) {
        let start = Instant::now();
        let mut x = 1u64;
        while start.elapsed().as_secs_f64() < seconds {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        assert_ne!(x, 0);
    }

    #[test]
    fn the_estimate_is_cpu_time_times_watts_plus_memory() {
        let meter = Meter::start(CpuClock::current_pool(), Some(10.0));
        spin(1.3);
        let e = meter.stop();
        assert_eq!(e.method, EnergyMethod::Estimate);
        assert!(
            e.source.contains("10 W per busy thread (--cpu-watts)"),
            "{}",
            e.source
        );
        assert!((1.0..2.5).contains(&e.cpu_seconds), "{e:?}");
        assert!((e.cpu_joules - 10.0 * e.cpu_seconds).abs() < 1e-9, "{e:?}");
        assert!(e.memory_joules >= 0.0 && e.memory_joules < 1.0, "{e:?}");
        assert!((e.joules - e.cpu_joules - e.memory_joules).abs() < 1e-12);
        assert!(e.seconds >= 1.3 && e.watts() > 0.0, "{e:?}");
    }
}
