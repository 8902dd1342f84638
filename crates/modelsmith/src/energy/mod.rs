//! What work costs: energy (measured where the hardware tells, estimated and labelled so where
//! it does not) and its carbon.
//!
//! - [`Meter`] meters one piece of work on a thread of its own: Linux RAPL counters when they
//!   can be read ([`rapl`]; machine-wide, given to the work by its share of the busy CPU time),
//!   else an estimate ([`power_model`]: CPU time × watts per busy thread from the CPU's TDP,
//!   plus resident memory × watts per GB). Every [`Energy`] carries its method and source.
//! - [`CpuClock`] says whose CPU time counts: the process (`train`) or the threads of the rayon
//!   pool a trial runs on (trials side by side in one process each get their own).
//! - [`CarbonIntensity`] turns joules into grams CO2e.
//!
//! NVIDIA GPUs (NVML's energy counter) are not metered yet.

mod carbon;
mod cpu_time;
mod meter;
mod power_model;
pub mod rapl;

pub use carbon::{CarbonIntensity, DEFAULT_G_PER_KWH};
pub use cpu_time::CpuClock;
pub use meter::{Energy, EnergyMethod, Meter};
pub use power_model::{CpuPower, DEFAULT_WATTS_PER_THREAD, MEMORY_WATTS_PER_GB};

/// How the energy of work is metered and priced: the `[energy]` table of a train config
/// (`--cpu-watts`, `--carbon-intensity`).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EnergySettings {
    /// Watts per busy CPU thread for the estimate (default: the CPU's TDP from the table).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_watts: Option<f64>,
    /// Grams CO2e per kWh of the grid (default: `MODELSMITH_CARBON_INTENSITY`, else the world
    /// average).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub carbon_intensity: Option<f64>,
}

impl EnergySettings {
    pub fn is_default(&self) -> bool {
        *self == EnergySettings::default()
    }

    pub fn validate(&self) -> crate::Result<()> {
        if let Some(w) = self.cpu_watts {
            if !w.is_finite() || w <= 0.0 {
                return Err(crate::Error::Config(format!(
                    "energy.cpu_watts (--cpu-watts) must be watts per busy thread, a number > 0 (got {w})"
                )));
            }
        }
        CarbonIntensity::resolve(self.carbon_intensity).map(|_| ())
    }
}

/// What a piece of work cost: its energy and the emissions of that energy.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Footprint {
    #[serde(flatten)]
    pub energy: Energy,
    pub co2e_grams: f64,
    pub carbon_intensity: CarbonIntensity,
}

impl Footprint {
    pub fn new(energy: Energy, carbon_intensity: CarbonIntensity) -> Footprint {
        Footprint {
            co2e_grams: carbon_intensity.grams(energy.joules),
            energy,
            carbon_intensity,
        }
    }

    /// Adds another piece of the same work (a cross-validated trial's next fold).
    pub fn absorb(&mut self, other: &Footprint) {
        let (e, o) = (&mut self.energy, &other.energy);
        e.joules += o.joules;
        e.cpu_joules += o.cpu_joules;
        e.memory_joules += o.memory_joules;
        e.seconds += o.seconds;
        e.cpu_seconds += o.cpu_seconds;
        self.co2e_grams += other.co2e_grams;
    }

    /// One line: `energy 3.5 kJ, estimated, 0.46 g CO2e at 475 g/kWh`.
    pub fn summary(&self) -> String {
        let how = match self.energy.method {
            EnergyMethod::Rapl => "measured (RAPL)",
            EnergyMethod::Estimate => "estimated",
        };
        format!(
            "energy {}, {how}, {} CO2e at {} g/kWh",
            format_joules(self.energy.joules),
            format_grams(self.co2e_grams),
            self.carbon_intensity.g_per_kwh
        )
    }
}

/// The energy a run of `total` units of work (epochs, or seconds of a search's budget) is
/// heading for, from `joules` spent on the first `done` (carbontracker's forecast: the rest
/// costs what the start did).
pub fn forecast(joules: f64, done: f64, total: f64) -> Option<f64> {
    (done > 0.0 && total >= done).then(|| joules / done * total)
}

/// Joules for people: `412 J`, `3.5 kJ`, `1.20 MJ` (1 Wh = 3.6 kJ; 1 kWh = 3.6 MJ).
pub fn format_joules(joules: f64) -> String {
    if joules < 1e3 {
        format!("{joules:.0} J")
    } else if joules < 1e6 {
        format!("{:.1} kJ", joules / 1e3)
    } else {
        format!("{:.2} MJ", joules / 1e6)
    }
}

/// Grams CO2e for people: `0.05 g`, `12 g`, `3.4 kg`.
pub fn format_grams(grams: f64) -> String {
    if grams < 1.0 {
        format!("{grams:.3} g")
    } else if grams < 1e3 {
        format!("{grams:.1} g")
    } else {
        format!("{:.2} kg", grams / 1e3)
    }
}
