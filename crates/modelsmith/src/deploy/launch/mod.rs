//! Launch files for many workers on one study (`modelsmith deploy --workers N --target …`):
//! a Kubernetes Indexed Job ([`kubernetes`]) and a Slurm job array ([`slurm`]). Each starts `N`
//! `modelsmith worker` processes on the study; the storage URL (which holds the password)
//! reaches them from a Secret or the environment, never from the files themselves.

pub mod kubernetes;
pub mod slurm;

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::bundle::settings::{check_name, parse_quantity, Resources};
use crate::{Error, Result};

/// The environment variable `modelsmith worker --storage` falls back to.
pub const STORAGE_ENV: &str = "MODELSMITH_STORAGE";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    Kubernetes,
    Slurm,
}

/// What the launch files start.
#[derive(Clone, Debug)]
pub struct LaunchOptions {
    /// Worker processes (Job completions / array tasks).
    pub workers: u32,
    pub target: Target,
    /// The study the workers join (created by `modelsmith tune --workers 0`).
    pub study: String,
    /// Name of the Job / Slurm job (a Kubernetes name).
    pub name: String,
    /// The container image (Kubernetes).
    pub image: String,
    /// The Secret holding the storage URL, and its key (Kubernetes).
    pub storage_secret: String,
    pub storage_secret_key: String,
    pub resources: Resources,
    /// GPUs per worker (`nvidia.com/gpu` / `--gpus-per-task`); none by default.
    pub gpus: Option<u32>,
    /// Wall-clock limit per task (Slurm `--time`, e.g. `02:00:00`).
    pub time_limit: Option<String>,
}

/// What was written.
#[derive(Clone, Debug, Serialize)]
pub struct LaunchSummary {
    pub target: Target,
    pub workers: u32,
    pub study: String,
    pub file: PathBuf,
}

impl LaunchOptions {
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(m));
        if self.workers == 0 {
            return bad("--workers: must be at least 1".into());
        }
        check_name(&self.name)?;
        // The study name goes into a shell script and a command line: keep it plain.
        if self.study.is_empty()
            || !self
                .study
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return bad(format!(
                "--study '{}': use letters, digits, '-', '_' and '.' only",
                self.study
            ));
        }
        if self.target == Target::Kubernetes {
            check_name(&self.storage_secret)
                .map_err(|e| Error::Config(format!("--storage-secret: {e}")))?;
            if self.storage_secret_key.is_empty() {
                return bad("--storage-secret-key must not be empty".into());
            }
        }
        for (flag, q) in [
            ("--cpu-request", &self.resources.cpu_request),
            ("--cpu-limit", &self.resources.cpu_limit),
            ("--memory-request", &self.resources.memory_request),
            ("--memory-limit", &self.resources.memory_limit),
        ] {
            parse_quantity(flag, q)?;
        }
        if let Some(t) = &self.time_limit {
            if t.is_empty()
                || !t
                    .chars()
                    .all(|c| c.is_ascii_digit() || c == ':' || c == '-')
            {
                return bad(format!(
                    "--time-limit '{t}': use Slurm's form, e.g. 90, 02:00:00 or 1-12:00:00"
                ));
            }
        }
        Ok(())
    }
}

/// Writes the launch file for `options.target` into `out` (created if needed): `worker-job.yaml`
/// or `worker-array.sbatch`. An existing file is replaced only with `force`.
pub fn write_launch_files(
    options: &LaunchOptions,
    out: &Path,
    force: bool,
) -> Result<LaunchSummary> {
    options.validate()?;
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let (file, text) = match options.target {
        Target::Kubernetes => (
            out.join("worker-job.yaml"),
            kubernetes::to_yaml(options, &kubernetes::worker_job(options)),
        ),
        Target::Slurm => (
            out.join("worker-array.sbatch"),
            slurm::SlurmArray::from_options(options).to_script(),
        ),
    };
    if file.exists() && !force {
        return Err(Error::Config(format!(
            "{} exists (use --force to replace it)",
            file.display()
        )));
    }
    std::fs::write(&file, text).map_err(|e| Error::io(&file, e))?;
    if options.target == Target::Slurm {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| Error::io(&file, e))?;
    }
    Ok(LaunchSummary {
        target: options.target,
        workers: options.workers,
        study: options.study.clone(),
        file,
    })
}
