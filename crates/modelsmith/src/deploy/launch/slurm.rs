//! A Slurm job array of `modelsmith worker` tasks: a typed set of `#SBATCH` directives and the
//! script they head, which parses back into the same structure.

use super::{LaunchOptions, STORAGE_ENV};
use crate::{Error, Result};

/// The job array's directives and what each task runs.
#[derive(Clone, Debug, PartialEq)]
pub struct SlurmArray {
    pub job_name: String,
    /// Tasks `0..workers`.
    pub workers: u32,
    pub cpus_per_task: u32,
    /// Memory per node in Slurm's units (`1024M`, `4G`).
    pub mem: String,
    pub gpus_per_task: Option<u32>,
    pub time: Option<String>,
    pub study: String,
}

impl SlurmArray {
    pub fn from_options(o: &LaunchOptions) -> SlurmArray {
        SlurmArray {
            job_name: o.name.clone(),
            workers: o.workers,
            cpus_per_task: cpus(&o.resources.cpu_limit),
            mem: slurm_memory(&o.resources.memory_limit),
            gpus_per_task: o.gpus,
            time: o.time_limit.clone(),
            study: o.study.clone(),
        }
    }

    /// The `#SBATCH` options, in order.
    pub fn directives(&self) -> Vec<(&'static str, String)> {
        let mut d = vec![
            ("job-name", self.job_name.clone()),
            ("array", format!("0-{}", self.workers.saturating_sub(1))),
            ("ntasks", "1".to_string()),
            ("cpus-per-task", self.cpus_per_task.to_string()),
            ("mem", self.mem.clone()),
            ("output", format!("{}-%A_%a.out", self.job_name)),
        ];
        if let Some(g) = self.gpus_per_task {
            d.push(("gpus-per-task", g.to_string()));
        }
        if let Some(t) = &self.time {
            d.push(("time", t.clone()));
        }
        d
    }

    pub fn to_script(&self) -> String {
        let mut s = String::from("#!/bin/bash\n");
        for (k, v) in self.directives() {
            s.push_str(&format!("#SBATCH --{k}={v}\n"));
        }
        s.push_str(&format!(
            r#"#
# {workers} modelsmith workers on study '{study}' (submit: sbatch worker-array.sbatch).
# The storage URL (and its password) is never written here: export {env} before sbatch
# (sbatch passes the environment on), or keep it in a file only you can read and name it in
# {env}_FILE (default ~/.config/modelsmith/storage-url).
set -euo pipefail
if [ -z "${{{env}:-}}" ]; then
  url_file=${{{env}_FILE:-$HOME/.config/modelsmith/storage-url}}
  if [ ! -r "$url_file" ]; then
    echo "worker-array: set {env} or {env}_FILE ($url_file is not readable)" >&2
    exit 2
  fi
  {env}=$(head -n 1 "$url_file")
fi
export {env}
exec srun --kill-on-bad-exit=1 modelsmith worker --study '{study}' --threads "${{SLURM_CPUS_PER_TASK:-1}}" --quiet
"#,
            workers = self.workers,
            study = self.study,
            env = STORAGE_ENV,
        ));
        s
    }

    /// Reads a script written by [`SlurmArray::to_script`] back.
    pub fn parse(script: &str) -> Result<SlurmArray> {
        let bad = |m: String| Error::Config(format!("Slurm script: {m}"));
        let mut get = std::collections::BTreeMap::new();
        for line in script.lines() {
            if let Some(rest) = line.strip_prefix("#SBATCH --") {
                let (k, v) = rest
                    .split_once('=')
                    .ok_or_else(|| bad(format!("directive without '=': {line}")))?;
                get.insert(k.to_string(), v.to_string());
            }
        }
        let need = |k: &str| {
            get.get(k)
                .cloned()
                .ok_or_else(|| bad(format!("no --{k} directive")))
        };
        let number = |k: &str, v: &str| {
            v.parse::<u32>()
                .map_err(|_| bad(format!("--{k}={v} is not a number")))
        };
        let array = need("array")?;
        let last = array
            .strip_prefix("0-")
            .ok_or_else(|| bad(format!("--array={array} does not start at 0")))?;
        let study = script
            .lines()
            .find_map(|l| l.split_once("--study '").map(|(_, r)| r))
            .and_then(|r| r.split_once('\'').map(|(s, _)| s.to_string()))
            .ok_or_else(|| bad("no `modelsmith worker --study` line".into()))?;
        Ok(SlurmArray {
            job_name: need("job-name")?,
            workers: number("array", last)? + 1,
            cpus_per_task: number("cpus-per-task", &need("cpus-per-task")?)?,
            mem: need("mem")?,
            gpus_per_task: get
                .get("gpus-per-task")
                .map(|g| number("gpus-per-task", g))
                .transpose()?,
            time: get.get("time").cloned(),
            study,
        })
    }
}

/// Whole CPUs for a Kubernetes CPU quantity (`2`, `500m` → 1, `1.5` → 2).
fn cpus(quantity: &str) -> u32 {
    let value = match quantity.strip_suffix('m') {
        Some(milli) => milli.parse::<f64>().unwrap_or(1000.0) / 1000.0,
        None => quantity.parse::<f64>().unwrap_or(1.0),
    };
    value.ceil().max(1.0) as u32
}

/// A Kubernetes memory quantity in Slurm's units (MiB as `M`, rounded up).
fn slurm_memory(quantity: &str) -> String {
    let bytes = crate::deploy::bundle::settings::parse_quantity("--memory-limit", quantity)
        .unwrap_or(1024.0 * 1024.0 * 1024.0);
    format!("{}M", (bytes / (1024.0 * 1024.0)).ceil().max(1.0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_convert() {
        assert_eq!(cpus("500m"), 1);
        assert_eq!(cpus("2"), 2);
        assert_eq!(cpus("1.5"), 2);
        assert_eq!(slurm_memory("1Gi"), "1024M");
        assert_eq!(slurm_memory("256Mi"), "256M");
    }
}
