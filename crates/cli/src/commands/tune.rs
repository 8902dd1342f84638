use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use clap::Args;
use modelsmith::search::TrialState;
use modelsmith::store;
use modelsmith::tune::{run_tune, RunOptions, TuneConfig};

use super::{init_threads, load_training_data, print_json, use_password_file, BadInput};
use crate::study_progress::StudyProgress;

/// The search `modelsmith tune` runs without --config (examples/tune-digits.toml).
const DEFAULT_CONFIG: &str = include_str!("../../../../examples/tune-digits.toml");

#[derive(Args)]
pub struct TuneArgs {
    /// TOML with [study], [pruner], [train] and [space] (default: the digits search in
    /// examples/tune-digits.toml).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Where studies live: sqlite:PATH, postgres://USER@HOST[:PORT]/DB or memory:.
    #[arg(long, default_value = "sqlite:modelsmith.db")]
    storage: String,
    /// A file whose first line is the storage password.
    #[arg(long, env = "MODELSMITH_STORAGE_PASSWORD_FILE")]
    storage_password_file: Option<PathBuf>,
    /// 0: only create the study (its config goes into the storage) and print the command
    /// that starts a worker on it (`modelsmith worker`).
    #[arg(long)]
    workers: Option<u32>,
    /// A directory where workers copy the model folder of each new best trial.
    #[arg(long)]
    artifacts: Option<PathBuf>,
    /// Study name (default: the config file's name). The same name continues the study.
    #[arg(long)]
    study: Option<String>,
    /// The study's target number of trials (finished earlier ones count).
    #[arg(long)]
    trials: Option<u64>,
    /// Start no new trial after this long: 90s, 10m, 1h30m.
    #[arg(long)]
    timeout: Option<String>,
    /// Trials run in parallel in this process.
    #[arg(long)]
    jobs: Option<usize>,
    /// How trials' settings are chosen (default auto: random for the first, then TPE).
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(modelsmith::search::sampler::SAMPLERS))]
    sampler: Option<String>,
    /// How unpromising trials are stopped early.
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(modelsmith::search::pruner::PRUNERS))]
    pruner: Option<String>,
    /// The sampler's seed (same seed and history, same proposals).
    #[arg(long)]
    seed: Option<u64>,
    /// Queue a retry (same parameters) of every failed trial first.
    #[arg(long)]
    retry_failed: bool,
    /// Skip training the best settings on train+validation at the end.
    #[arg(long)]
    no_retrain: bool,
    /// Folder for the final model (default runs/STUDY/best).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Worker threads for training (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Your own test data (a SPEC) for the final model, scored whole with the preprocessing
    /// fitted on [train] data, which then keeps all its examples ([train] test_data).
    #[arg(long, value_name = "SPEC")]
    test_data: Option<String>,
    /// Where trials train: cpu, cuda, cuda:N, or auto (a GPU when one is usable). With --jobs N
    /// on a GPU, N trials share it, each on its own stream.
    #[arg(long)]
    device: Option<modelsmith::train::Device>,
    /// Print one JSON object with the results on stdout.
    #[arg(long)]
    json: bool,
    /// No progress output on stderr.
    #[arg(long, short)]
    quiet: bool,
}

impl TuneArgs {
    fn config(&self) -> Result<TuneConfig> {
        let mut c = match &self.config {
            Some(path) => TuneConfig::from_toml_file(path)?,
            None => {
                let mut c: TuneConfig = toml::from_str(DEFAULT_CONFIG).expect("bundled config");
                c.study.name = Some("tune-digits".into());
                c
            }
        };
        if let Some(v) = &self.study {
            c.study.name = Some(v.clone());
        }
        if let Some(v) = self.trials {
            c.study.trials = v;
        }
        if let Some(v) = &self.timeout {
            c.study.timeout = Some(v.clone());
        }
        if let Some(v) = self.jobs {
            c.study.jobs = v;
        }
        if let Some(v) = &self.sampler {
            c.study.sampler = v.clone();
        }
        if let Some(v) = self.seed {
            c.study.seed = v;
        }
        if let Some(v) = &self.pruner {
            c.pruner.kind = v.clone();
        }
        if self.no_retrain {
            c.study.retrain = false;
        }
        if let Some(d) = self.device {
            c.train.device = d;
        }
        if self.test_data.is_some() {
            c.train.test_data = self.test_data.clone();
        }
        if let Some(dir) = &self.artifacts {
            // Absolute, so that workers started elsewhere find the same (shared) directory.
            c.study.artifacts = Some(std::path::absolute(dir)?);
        }
        Ok(c)
    }
}

pub fn run(args: TuneArgs) -> Result<()> {
    init_threads(args.threads)?;
    use_password_file(args.storage_password_file.as_deref());
    let mut config = args.config()?;
    config.validate()?;
    let shown = store::redact_url(&args.storage);
    let storage: Arc<dyn store::Storage> = Arc::from(store::open(&args.storage)?);
    let name = config.study.name.clone().unwrap_or_default();
    match args.workers {
        None => {}
        Some(0) => return create_for_workers(&config, storage, &args, &shown),
        Some(n) => {
            return Err(BadInput(format!(
                "--workers {n}: only 0 is supported (create the study, then start                  `modelsmith worker` processes)"
            ))
            .into())
        }
    }
    // Resolved here, not for --workers 0: each worker resolves `auto` on its own machine.
    config.train.device = super::resolve_device(config.train.device)?;
    let done_before = match storage.get_study(&name)? {
        Some(s) => storage
            .trials(s.id)?
            .iter()
            .filter(|t| matches!(t.state, TrialState::Complete | TrialState::Pruned))
            .count() as u64,
        None => 0,
    };
    let data = load_training_data(&config.train)?;
    let progress = StudyProgress::new(
        !args.quiet,
        config.study.trials,
        done_before,
        config.metric_for(&data.info.task)?.name(),
    );
    if let Some(choice) = &data.task_choice {
        progress.say(choice);
    }
    progress.say(&format!(
        "study '{name}' in {shown}: {} trials ({} done), sampler {}, pruner {}, {} job(s)",
        config.study.trials,
        done_before,
        config.study.sampler,
        config.pruner.kind,
        config.study.jobs
    ));
    let run = RunOptions {
        retry_failed: args.retry_failed,
        out: args.out.clone(),
    };
    let report = run_tune(&config, storage, &data, &run, &progress)?;
    progress.finish();
    if !args.quiet {
        eprintln!(
            "study '{}': {} trials ({} complete, {} pruned, {} failed)",
            report.study, report.trials, report.complete, report.pruned, report.failed
        );
        if let Some(best) = &report.best {
            let params: Vec<String> = best
                .params
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            eprintln!(
                "best: trial {}  {} {:.4}  {}",
                best.number,
                report.metric,
                best.value,
                params.join(" ")
            );
        }
        if let Some(f) = &report.final_model {
            eprintln!(
                "final model (train+validation, {} epochs): test {}  test loss {:.4}  saved {}",
                f.epochs,
                super::test_figures(&f.test),
                f.test.loss,
                f.out.display()
            );
        }
        eprintln!("{}", crate::next_steps::after_study(&shown, &report.study));
    }
    if args.json {
        print_json(&report);
    }
    if report.run.failed > 0 {
        return Err(anyhow::anyhow!(
            "{} trial(s) failed in this run (see `modelsmith studies show {} --storage {}`)",
            report.run.failed,
            report.study,
            shown
        ));
    }
    Ok(())
}

/// `--workers 0`: the study (with its config) goes into the storage; the command that joins it
/// goes to stdout, the URL without its password.
fn create_for_workers(
    config: &modelsmith::tune::TuneConfig,
    storage: Arc<dyn store::Storage>,
    args: &TuneArgs,
    shown: &str,
) -> Result<()> {
    // The data decides the task, and so the study's default metric and direction.
    let data = load_training_data(&config.train)?;
    let record = modelsmith::tune::create_study(config, &data.info.task, storage)?;
    // Workers get the password from a file or the environment, never from a command line.
    let worker_url = shown.replace(":***@", "@").replace("password=***", "");
    if args.json {
        print_json(&serde_json::json!({
            "study": record.name,
            "storage": shown,
            "trials": config.study.trials,
            "worker_command": ["modelsmith", "worker", "--storage", worker_url, "--study", &record.name],
        }));
    } else {
        if !args.quiet {
            eprintln!(
                "study '{}' is ready in {shown}: {} trials; start workers with:",
                record.name, config.study.trials
            );
        }
        if worker_url != shown && !args.quiet {
            eprintln!("(the password is not shown: give workers --storage-password-file FILE or PGPASSWORD)");
        }
        println!(
            "modelsmith worker --storage '{worker_url}' --study '{}'",
            record.name
        );
    }
    Ok(())
}
