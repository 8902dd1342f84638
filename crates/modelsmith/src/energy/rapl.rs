//! Linux RAPL energy counters (`/sys/class/powercap/intel-rapl*`; AMD's are exposed there too):
//! each package's and DRAM's cumulative microjoules.
//!
//! A counter wraps at its `max_energy_range_uj` (every few minutes to hours, by power): a
//! reading below the previous one means it wrapped once, so the delta is
//! `now + range - previous`. The meter reads often enough (every second) that two wraps between
//! readings cannot happen. Since 2020 the counters are readable by root only (CVE-2020-8694);
//! [`Rapl::open`] says so, and the meter falls back to its estimate.

use std::path::{Path, PathBuf};

/// Where the powercap tree is; tests point `MODELSMITH_POWERCAP_ROOT` at a fake one.
pub fn root() -> PathBuf {
    std::env::var_os("MODELSMITH_POWERCAP_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/sys/class/powercap"))
}

/// One counter: a package (`intel-rapl:N`) or its DRAM subzone.
#[derive(Clone, Debug)]
struct Zone {
    name: String,
    energy: PathBuf,
    range: u64,
}

/// The machine's RAPL zones and their last readings.
#[derive(Clone, Debug)]
pub struct Rapl {
    zones: Vec<Zone>,
    last: Vec<u64>,
}

impl Rapl {
    /// The package and DRAM zones under `root`: `Ok(None)` when there are none (no RAPL on
    /// this machine or VM), `Err` with one line when they exist but cannot be read.
    pub fn open(root: &Path) -> Result<Option<Rapl>, String> {
        let Ok(entries) = std::fs::read_dir(root) else {
            return Ok(None);
        };
        let mut packages: Vec<PathBuf> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| is_package(p))
            .collect();
        packages.sort();
        let mut zones = Vec::new();
        for package in packages {
            zones.push(zone(&package)?);
            // DRAM has its own subzone on servers; core and uncore are inside the package's.
            let Ok(subs) = std::fs::read_dir(&package) else {
                continue;
            };
            let mut subs: Vec<PathBuf> = subs.filter_map(|e| e.ok()).map(|e| e.path()).collect();
            subs.sort();
            for sub in subs {
                if sub.join("energy_uj").exists() && read_name(&sub).as_deref() == Some("dram") {
                    zones.push(zone(&sub)?);
                }
            }
        }
        if zones.is_empty() {
            return Ok(None);
        }
        let last = zones.iter().map(read_energy).collect::<Result<_, _>>()?;
        Ok(Some(Rapl { zones, last }))
    }

    /// The zones read, e.g. `package-0, dram`.
    pub fn zone_names(&self) -> String {
        let names: Vec<&str> = self.zones.iter().map(|z| z.name.as_str()).collect();
        names.join(", ")
    }

    /// Joules used by the whole machine since the last call (or since [`Rapl::open`]).
    pub fn joules_since_last(&mut self) -> Result<f64, String> {
        let mut micro = 0u64;
        for (zone, last) in self.zones.iter().zip(self.last.iter_mut()) {
            let now = read_energy(zone)?;
            micro += delta(*last, now, zone.range);
            *last = now;
        }
        Ok(micro as f64 * 1e-6)
    }
}

/// Microjoules between two readings of a counter that wraps at `range`.
pub fn delta(previous: u64, now: u64, range: u64) -> u64 {
    if now >= previous {
        now - previous
    } else {
        // Wrapped once: up to the range, then from zero.
        range.saturating_sub(previous) + now
    }
}

/// `intel-rapl:0` (a package), not `intel-rapl:0:1` (a subzone) nor `intel-rapl` (the control
/// type folder).
fn is_package(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name.strip_prefix("intel-rapl:")
        .is_some_and(|rest| !rest.is_empty() && rest.chars().all(|c| c.is_ascii_digit()))
}

fn read_name(dir: &Path) -> Option<String> {
    std::fs::read_to_string(dir.join("name"))
        .ok()
        .map(|s| s.trim().to_string())
}

fn zone(dir: &Path) -> Result<Zone, String> {
    let range_path = dir.join("max_energy_range_uj");
    let range = std::fs::read_to_string(&range_path)
        .map_err(|e| format!("{}: {e}", range_path.display()))?
        .trim()
        .parse::<u64>()
        .map_err(|e| format!("{}: not a number ({e})", range_path.display()))?;
    Ok(Zone {
        name: read_name(dir).unwrap_or_else(|| dir.display().to_string()),
        energy: dir.join("energy_uj"),
        range,
    })
}

fn read_energy(zone: &Zone) -> Result<u64, String> {
    let text = std::fs::read_to_string(&zone.energy).map_err(|e| {
        if e.kind() == std::io::ErrorKind::PermissionDenied {
            format!(
                "{} is readable by root only (Linux restricts RAPL since CVE-2020-8694)",
                zone.energy.display()
            )
        } else {
            format!("{}: {e}", zone.energy.display())
        }
    })?;
    text.trim()
        .parse()
        .map_err(|e| format!("{}: not a number ({e})", zone.energy.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_zone(dir: &Path, name: &str, energy: u64, range: u64) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("name"), format!("{name}\n")).unwrap();
        std::fs::write(dir.join("energy_uj"), format!("{energy}\n")).unwrap();
        std::fs::write(dir.join("max_energy_range_uj"), format!("{range}\n")).unwrap();
    }

    #[test]
    fn packages_and_dram_with_wrap_around() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        let range = 262_143_328_850;
        write_zone(&r.join("intel-rapl:0"), "package-0", 1_000_000, range);
        write_zone(&r.join("intel-rapl:0/intel-rapl:0:0"), "core", 5, range);
        write_zone(
            &r.join("intel-rapl:0/intel-rapl:0:1"),
            "dram",
            2_000_000,
            range,
        );
        write_zone(&r.join("intel-rapl:1"), "package-1", range - 500_000, range);
        // The control-type folder and a platform zone are not packages.
        std::fs::create_dir_all(r.join("intel-rapl")).unwrap();
        write_zone(&r.join("intel-rapl-mmio:0"), "package-0", 7, range);
        let mut rapl = Rapl::open(r).unwrap().expect("zones");
        assert_eq!(rapl.zone_names(), "package-0, dram, package-1");
        // +3 J on package 0, +1 J on DRAM, and package 1 wraps: 0.5 J to the range, 1.5 J after.
        std::fs::write(r.join("intel-rapl:0/energy_uj"), "4000000").unwrap();
        std::fs::write(r.join("intel-rapl:0/intel-rapl:0:1/energy_uj"), "3000000").unwrap();
        std::fs::write(r.join("intel-rapl:1/energy_uj"), "1500000").unwrap();
        let j = rapl.joules_since_last().unwrap();
        assert!((j - 6.0).abs() < 1e-9, "{j}");
        // Nothing moved: nothing used.
        assert_eq!(rapl.joules_since_last().unwrap(), 0.0);
    }

    #[test]
    fn missing_tree_is_none_and_garbage_is_an_error() {
        let root = tempfile::tempdir().unwrap();
        assert!(Rapl::open(&root.path().join("nowhere")).unwrap().is_none());
        assert!(Rapl::open(root.path()).unwrap().is_none());
        write_zone(&root.path().join("intel-rapl:0"), "package-0", 1, 10);
        std::fs::write(root.path().join("intel-rapl:0/energy_uj"), "lots").unwrap();
        let e = Rapl::open(root.path()).unwrap_err();
        assert!(e.contains("energy_uj") && e.contains("not a number"), "{e}");
    }

    #[test]
    fn delta_wraps_once() {
        assert_eq!(delta(10, 25, 100), 15);
        assert_eq!(delta(90, 5, 100), 15);
        assert_eq!(delta(7, 7, 100), 0);
    }
}
