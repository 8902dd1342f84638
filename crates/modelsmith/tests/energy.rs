//! The energy meter's RAPL path on a fake powercap tree (`MODELSMITH_POWERCAP_ROOT`): this
//! machine's counters, given to the work by its share of the busy CPU time, wrap-around
//! included. (The estimate's arithmetic is a unit test; the real counters need root on a
//! machine that has them.)

use std::path::Path;
use std::time::{Duration, Instant};

use modelsmith::energy::{CpuClock, EnergyMethod, Meter};

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

#[test]
fn rapl_counters_are_read_and_shared_by_cpu_time() {
    let root = tempfile::tempdir().unwrap();
    let pkg = root.path().join("intel-rapl:0");
    std::fs::create_dir_all(&pkg).unwrap();
    let range: u64 = 100_000_000; // 100 J: the counter wraps during the test
    write(&pkg.join("name"), "package-0\n");
    write(&pkg.join("max_energy_range_uj"), &format!("{range}\n"));
    write(&pkg.join("energy_uj"), "90000000\n");
    // The only test in this binary: no other thread reads the variable.
    std::env::set_var("MODELSMITH_POWERCAP_ROOT", root.path());
    let meter = Meter::start(CpuClock::Process, None);
    // 2.5 s of busy work while the "machine" uses 20 J per second: 90 J → wraps at 100 J.
    let start = Instant::now();
    let mut machine_uj: u64 = 90_000_000;
    let mut x = 1u64;
    let mut last_tick = start;
    while start.elapsed() < Duration::from_millis(2500) {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        if last_tick.elapsed() >= Duration::from_millis(100) {
            last_tick = Instant::now();
            machine_uj = (machine_uj + 2_000_000) % range;
            write(&pkg.join("energy_uj"), &format!("{machine_uj}\n"));
        }
    }
    assert_ne!(x, 0);
    let e = meter.stop();
    assert_eq!(e.method, EnergyMethod::Rapl, "{e:?}");
    assert!(e.source.contains("RAPL (package-0)"), "{}", e.source);
    // About 50 J went through the counter; this process had most of the machine's busy CPU
    // time (a 2-core machine with one spinning thread: half or more), never more than all.
    let machine = 2.0 * (start.elapsed().as_secs_f64() * 10.0).floor();
    assert!(e.joules <= machine + 1e-9, "{} J of {machine} J", e.joules);
    assert!(e.joules >= 0.2 * machine, "{} J of {machine} J", e.joules);
    assert_eq!(e.memory_joules, 0.0, "DRAM is RAPL's when it has a zone");

    // Unreadable counters (no permission, as for a non-root user): the estimate, said once.
    write(&pkg.join("energy_uj"), "not a number\n");
    let e = Meter::start(CpuClock::Process, None).stop();
    assert_eq!(e.method, EnergyMethod::Estimate);
    assert!(e.source.starts_with("estimate: CPU time ×"), "{}", e.source);
}
