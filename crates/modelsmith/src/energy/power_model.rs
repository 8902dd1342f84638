//! The estimate used where no counter is readable: watts per busy CPU thread from the CPU's
//! TDP, and watts per GB of resident memory.

/// Watts per busy thread for a CPU missing from [`TDP_TABLE`]: CodeCarbon's default (4 W per
/// thread), so that the two estimates agree on unknown hardware.
pub const DEFAULT_WATTS_PER_THREAD: f64 = 4.0;

/// Watts per GB of resident memory: Green Algorithms' figure (Lannelongue et al., 2021).
pub const MEMORY_WATTS_PER_GB: f64 = 0.3725;

/// Common server and desktop CPUs: (model name fragment, TDP in W, hardware threads per
/// socket), from the vendors' specifications. A busy thread draws TDP / threads.
const TDP_TABLE: &[(&str, f64, f64)] = &[
    ("Xeon(R) Platinum 8481C", 350.0, 112.0),
    ("Xeon(R) Platinum 8375C", 300.0, 64.0),
    ("Xeon(R) Platinum 8259CL", 210.0, 48.0),
    ("Xeon(R) Gold 6248", 150.0, 40.0),
    ("Xeon(R) CPU E5-2686 v4", 145.0, 36.0),
    ("EPYC 7763", 280.0, 128.0),
    ("EPYC 7742", 225.0, 128.0),
    ("Core(TM) i7-8700", 65.0, 12.0),
];

/// Watts per busy CPU thread and where the figure comes from.
#[derive(Clone, Debug, PartialEq)]
pub struct CpuPower {
    pub watts_per_thread: f64,
    pub source: String,
}

impl CpuPower {
    /// `--cpu-watts` when given, else this machine's CPU from the table, else the default.
    pub fn for_this_machine(cpu_watts: Option<f64>) -> CpuPower {
        if let Some(w) = cpu_watts {
            return CpuPower {
                watts_per_thread: w,
                source: format!("{w} W per busy thread (--cpu-watts)"),
            };
        }
        let model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| model_name(&s))
            .unwrap_or_else(|| "an unknown CPU".into());
        CpuPower::for_model(&model)
    }

    pub fn for_model(model: &str) -> CpuPower {
        match TDP_TABLE.iter().find(|(name, _, _)| model.contains(name)) {
            Some((_, tdp, threads)) => CpuPower {
                watts_per_thread: tdp / threads,
                source: format!(
                    "{:.2} W per busy thread ({model}: {tdp} W TDP / {threads} threads)",
                    tdp / threads
                ),
            },
            None => CpuPower {
                watts_per_thread: DEFAULT_WATTS_PER_THREAD,
                source: format!(
                    "{DEFAULT_WATTS_PER_THREAD} W per busy thread ({model} is not in the TDP \
                     table: CodeCarbon's default; --cpu-watts to set it)"
                ),
            },
        }
    }
}

fn model_name(cpuinfo: &str) -> Option<String> {
    let line = cpuinfo.lines().find(|l| l.starts_with("model name"))?;
    Some(line.split_once(':')?.1.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_unknown_and_given() {
        let p = CpuPower::for_model("Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz");
        assert!((p.watts_per_thread - 300.0 / 64.0).abs() < 1e-12, "{p:?}");
        let p = CpuPower::for_model("Intel(R) Xeon(R) Processor @ 2.80GHz");
        assert_eq!(p.watts_per_thread, DEFAULT_WATTS_PER_THREAD);
        assert!(p.source.contains("not in the TDP table"), "{p:?}");
        let p = CpuPower::for_this_machine(Some(6.5));
        assert_eq!(p.watts_per_thread, 6.5);
        assert_eq!(
            model_name("processor : 0\nmodel name\t: AMD EPYC 7763 64-Core Processor\n"),
            Some("AMD EPYC 7763 64-Core Processor".into())
        );
    }
}
