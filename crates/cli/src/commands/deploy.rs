use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use modelsmith::deploy::bundle::{self, BundleOptions, Resources};
use modelsmith::deploy::launch::{write_launch_files, LaunchOptions, Target};

use super::{print_json, BadInput};

#[derive(Args)]
#[command(group = clap::ArgGroup::new("mode").required(true).args(["model", "verify", "workers"]))]
pub struct DeployArgs {
    /// A model folder written by `modelsmith train`.
    #[arg(long, requires = "out")]
    model: Option<PathBuf>,
    /// The bundle folder to write (must be new or empty; see --force).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Instead of writing a bundle, check the bundle BUNDLE against its SHA256SUMS.
    #[arg(long, value_name = "BUNDLE", conflicts_with_all = ["model", "out"])]
    verify: Option<PathBuf>,
    /// Instead of a bundle, write launch files for N `modelsmith worker` processes on --study
    /// (a Kubernetes Indexed Job or a Slurm job array, see --target) into --out.
    #[arg(long, value_name = "N", requires_all = ["out", "target", "study"], conflicts_with_all = ["model", "verify"])]
    workers: Option<u32>,
    /// Where the workers run: kubernetes or slurm.
    #[arg(long, value_enum, requires = "workers")]
    target: Option<LaunchTarget>,
    /// The study the workers join (created by `modelsmith tune --storage URL --workers 0`).
    #[arg(long, requires = "workers")]
    study: Option<String>,
    /// The Kubernetes Secret holding the storage URL (never written into the manifest).
    #[arg(long, default_value = "modelsmith-storage")]
    storage_secret: String,
    /// The Secret's key that holds the URL.
    #[arg(long, default_value = "url")]
    storage_secret_key: String,
    /// GPUs per worker (nvidia.com/gpu; Slurm --gpus-per-task). None by default.
    #[arg(long)]
    gpus: Option<u32>,
    /// Slurm wall-clock limit per task (e.g. 02:00:00).
    #[arg(long)]
    time_limit: Option<String>,
    /// Kubernetes name of every object and the model's name on the server
    /// (default: from the model folder's name; for --workers, STUDY-workers).
    #[arg(long)]
    name: Option<String>,
    /// Image reference in the manifests (default: NAME:<first 12 hex digits of the weights' SHA-256>).
    #[arg(long)]
    image: Option<String>,
    /// Pods the Deployment starts with (the autoscaler's minimum).
    #[arg(long, default_value_t = 2)]
    replicas: u32,
    /// The autoscaler's maximum (default: the larger of 10 and --replicas).
    #[arg(long)]
    max_replicas: Option<u32>,
    /// Average CPU utilization (%) the autoscaler aims at.
    #[arg(long = "target-cpu", default_value_t = 70)]
    target_cpu: u32,
    /// Port the server listens on in the container.
    #[arg(long, default_value_t = 8080)]
    port: u16,
    #[arg(long, default_value = "500m")]
    cpu_request: String,
    #[arg(long, default_value = "2")]
    cpu_limit: String,
    #[arg(long, default_value = "256Mi")]
    memory_request: String,
    #[arg(long, default_value = "1Gi")]
    memory_limit: String,
    /// Leave this modelsmith binary out of the bundle (docker build then takes it from a
    /// named build context, see the bundle's README.md).
    #[arg(long)]
    no_binary: bool,
    /// Timed predictions per batch size (1 and 32) for the model card; 0 skips measuring.
    #[arg(long, default_value_t = 100)]
    latency_runs: usize,
    /// Replace an existing bundle at --out.
    #[arg(long)]
    force: bool,
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LaunchTarget {
    Kubernetes,
    Slurm,
}

pub fn run(args: DeployArgs) -> Result<()> {
    if let Some(dir) = &args.verify {
        return verify(dir, args.json);
    }
    if let Some(workers) = args.workers {
        return launch(&args, workers);
    }
    let (Some(model), Some(out)) = (&args.model, &args.out) else {
        return Err(BadInput("give --model DIR --out BUNDLE, or --verify BUNDLE".into()).into());
    };
    let binary = if args.no_binary {
        None
    } else {
        Some(std::env::current_exe().context("cannot find the running modelsmith binary")?)
    };
    let options = BundleOptions {
        name: args.name.clone(),
        image: args.image.clone(),
        replicas: args.replicas,
        max_replicas: args.max_replicas,
        target_cpu_percent: args.target_cpu,
        port: args.port,
        resources: Resources {
            cpu_request: args.cpu_request.clone(),
            cpu_limit: args.cpu_limit.clone(),
            memory_request: args.memory_request.clone(),
            memory_limit: args.memory_limit.clone(),
        },
        binary,
        force: args.force,
        latency_runs: args.latency_runs,
    };
    if !args.json && args.latency_runs > 0 {
        eprintln!(
            "timing the model ({} runs at batch 1 and 32)...",
            args.latency_runs
        );
    }
    let summary = bundle::write_bundle(model, out, &options)?;
    if args.json {
        print_json(&summary);
        return Ok(());
    }
    let bytes: u64 = summary.files.iter().map(|f| f.bytes).sum();
    eprintln!(
        "wrote {} ({} files, {} bytes): model '{}', image {}",
        summary.bundle,
        summary.files.len(),
        bytes,
        summary.name,
        summary.image
    );
    if let Some(latency) = &summary.latency {
        for b in &latency.batches {
            eprintln!(
                "  batch {:>2}: p50 {:.3} ms, p99 {:.3} ms, {:.0} examples/s",
                b.batch, b.p50_ms, b.p99_ms, b.images_per_s
            );
        }
    }
    if let Some(why) = &summary.onnx_skipped {
        eprintln!("  no model.onnx: {why}");
    }
    eprintln!(
        "next: cd {} && sha256sum -c SHA256SUMS && docker build -t {} .",
        summary.bundle, summary.image
    );
    Ok(())
}

/// `--workers N --target …`: the launch files.
fn launch(args: &DeployArgs, workers: u32) -> Result<()> {
    let (Some(target), Some(study), Some(out)) = (args.target, &args.study, &args.out) else {
        return Err(BadInput("--workers needs --target, --study and --out".into()).into());
    };
    let name = args.name.clone().unwrap_or_else(|| {
        let plain: String = study
            .to_ascii_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        format!("{}-workers", plain.trim_matches('-'))
    });
    let options = LaunchOptions {
        workers,
        target: match target {
            LaunchTarget::Kubernetes => Target::Kubernetes,
            LaunchTarget::Slurm => Target::Slurm,
        },
        study: study.clone(),
        name,
        image: args
            .image
            .clone()
            .unwrap_or_else(|| format!("modelsmith:{}", env!("CARGO_PKG_VERSION"))),
        storage_secret: args.storage_secret.clone(),
        storage_secret_key: args.storage_secret_key.clone(),
        resources: Resources {
            cpu_request: args.cpu_request.clone(),
            cpu_limit: args.cpu_limit.clone(),
            memory_request: args.memory_request.clone(),
            memory_limit: args.memory_limit.clone(),
        },
        gpus: args.gpus,
        time_limit: args.time_limit.clone(),
    };
    let summary = write_launch_files(&options, out, args.force)?;
    if args.json {
        print_json(&summary);
    } else {
        eprintln!(
            "wrote {}: {} workers on study '{}'",
            summary.file.display(),
            summary.workers,
            summary.study
        );
        match options.target {
            Target::Kubernetes => eprintln!(
                "next: kubectl create secret generic {} --from-file={}=./storage-url && kubectl apply -f {}",
                options.storage_secret,
                options.storage_secret_key,
                summary.file.display()
            ),
            Target::Slurm => eprintln!(
                "next: export MODELSMITH_STORAGE=postgres://… (or MODELSMITH_STORAGE_FILE) && sbatch {}",
                summary.file.display()
            ),
        }
    }
    Ok(())
}

/// `--verify`: exit 0 when every file matches; otherwise each problem on its own line, then
/// an error (exit 1: the check ran and failed; a folder that is no bundle is bad input, 2).
fn verify(dir: &std::path::Path, json: bool) -> Result<()> {
    let report = bundle::verify(dir)?;
    if json {
        print_json(&report);
    } else {
        for problem in &report.problems {
            eprintln!("{}: {problem}", report.bundle);
        }
    }
    if report.is_ok() {
        if !json {
            eprintln!("{}: {} files OK", report.bundle, report.verified);
        }
        Ok(())
    } else {
        anyhow::bail!(
            "{}: verification failed: {} problem(s), {} files OK",
            report.bundle,
            report.problems.len(),
            report.verified
        )
    }
}
