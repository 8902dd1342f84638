//! Where training runs: `--device cpu|cuda[:N]|auto`.
//!
//! `auto` takes GPU 0 when one is usable and the CPU otherwise; [`Device::resolve`] says which
//! once, so a caller running many trainings (a search) resolves it up front and passes the
//! concrete device on. Asking for `cuda` where no GPU is usable (or in a build without the `cuda`
//! feature) is a configuration error: one line, exit code 2.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Device {
    #[default]
    Cpu,
    /// GPU number N (`cuda` is `cuda:0`).
    Cuda(usize),
    /// A GPU when one is usable, else the CPU.
    Auto,
}

impl FromStr for Device {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Device, String> {
        let bad = || format!("unknown device '{s}' (expected cpu, cuda, cuda:N or auto)");
        match s {
            "cpu" => Ok(Device::Cpu),
            "auto" => Ok(Device::Auto),
            "cuda" | "gpu" => Ok(Device::Cuda(0)),
            _ => {
                let n = s.strip_prefix("cuda:").ok_or_else(bad)?;
                n.parse().map(Device::Cuda).map_err(|_| bad())
            }
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => write!(f, "cpu"),
            Device::Cuda(n) => write!(f, "cuda:{n}"),
            Device::Auto => write!(f, "auto"),
        }
    }
}

impl TryFrom<String> for Device {
    type Error = String;
    fn try_from(s: String) -> std::result::Result<Device, String> {
        s.parse()
    }
}

impl From<Device> for String {
    fn from(d: Device) -> String {
        d.to_string()
    }
}

impl Device {
    /// The concrete device (`Cpu` or `Cuda(n)`) and one line saying what was chosen and why.
    /// `Cuda(n)` is checked: no usable GPU n is an [`Error::Config`] naming what is missing.
    pub fn resolve(self) -> Result<(Device, String)> {
        match self {
            Device::Cpu => Ok((Device::Cpu, "device: cpu".into())),
            Device::Cuda(n) => {
                let info =
                    probe(n).map_err(|e| Error::Config(format!("--device cuda:{n}: {e}")))?;
                Ok((Device::Cuda(n), format!("device: {info}")))
            }
            Device::Auto => match probe(0) {
                Ok(info) => Ok((Device::Cuda(0), format!("device: auto chose {info}"))),
                Err(why) => Ok((Device::Cpu, format!("device: auto chose the CPU ({why})"))),
            },
        }
    }
}

#[cfg(feature = "cuda")]
pub(super) use super::gpu::GpuTrainer;

/// Without the `cuda` feature no GPU trainer can exist ([`Device::resolve`] never yields
/// `Cuda`), so the trainer's GPU branches compile to nothing.
#[cfg(not(feature = "cuda"))]
pub(super) enum GpuTrainer {}

#[cfg(not(feature = "cuda"))]
impl GpuTrainer {
    pub fn start(
        _ordinal: usize,
        _config: &super::TrainConfig,
        _net: &modelsmith_engine::Network,
        _optimizer: &modelsmith_engine::optim::Optimizer,
        _train: &crate::data::Dataset,
        _val: &crate::data::Dataset,
    ) -> Result<GpuTrainer> {
        Err(Error::Config(
            "this modelsmith was built without GPU support; rebuild with --features cuda".into(),
        ))
    }

    pub fn train_epoch(
        &mut self,
        _config: &super::TrainConfig,
        _progress: &mut super::checkpoint::Checkpoint,
        _train_set: &crate::data::Dataset,
        _epoch: u32,
        _observer: &mut dyn super::TrainObserver,
    ) -> Result<Option<super::EpochMetrics>> {
        match *self {}
    }

    pub fn evaluate_val(&mut self) -> Result<Option<crate::task::Scores>> {
        match *self {}
    }

    pub fn sync_to_host(
        &self,
        _net: &mut modelsmith_engine::Network,
        _optimizer: &mut modelsmith_engine::optim::Optimizer,
    ) -> Result<()> {
        match *self {}
    }
}

/// A description of GPU `n` when it is usable.
#[cfg(feature = "cuda")]
fn probe(n: usize) -> std::result::Result<String, String> {
    modelsmith_engine::cuda::probe(n)
        .map(|info| info.to_string())
        .map_err(|e| e.to_string())
}

#[cfg(not(feature = "cuda"))]
fn probe(_n: usize) -> std::result::Result<String, String> {
    Err("this modelsmith was built without GPU support; rebuild with --features cuda".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        for s in ["cpu", "auto", "cuda:0", "cuda:3"] {
            assert_eq!(s.parse::<Device>().unwrap().to_string(), s);
        }
        assert_eq!("cuda".parse::<Device>(), Ok(Device::Cuda(0)));
        for bad in ["tpu", "cuda:", "cuda:x", "cuda:-1", ""] {
            assert!(
                bad.parse::<Device>().unwrap_err().contains("expected cpu"),
                "{bad}"
            );
        }
    }

    #[test]
    fn cpu_resolves_to_itself_and_auto_always_resolves() {
        assert_eq!(Device::Cpu.resolve().unwrap().0, Device::Cpu);
        let (chosen, line) = Device::Auto.resolve().unwrap();
        assert!(matches!(chosen, Device::Cpu | Device::Cuda(0)));
        assert!(line.starts_with("device: auto chose"), "{line}");
    }
}
