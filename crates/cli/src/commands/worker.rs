//! `modelsmith worker`: joins a study in shared storage (created by `modelsmith tune --workers
//! 0`) and runs its trials until the study's budget is spent. Start as many as you like, on
//! any hosts that reach the storage and the data.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use clap::Args;
use modelsmith::search::TrialState;
use modelsmith::store;
use modelsmith::tune::{joined_study, run_worker, WorkerOptions};

use super::{init_threads, load_training_data, print_json, use_password_file, BadInput};
use crate::study_progress::StudyProgress;

#[derive(Args)]
pub struct WorkerArgs {
    /// Where the study lives: postgres://USER@HOST[:PORT]/DB (the password from
    /// --storage-password-file, PGPASSWORD, or the URL), or sqlite:PATH on a shared disk.
    #[arg(long, env = "MODELSMITH_STORAGE", hide_env_values = true)]
    storage: String,
    /// A file whose first line is the storage password.
    #[arg(long, env = "MODELSMITH_STORAGE_PASSWORD_FILE")]
    storage_password_file: Option<PathBuf>,
    /// The study to join (see `modelsmith studies list`).
    #[arg(long)]
    study: String,
    /// Stop after this many trials (default: until the study's budget is spent).
    #[arg(long)]
    max_trials: Option<u64>,
    /// Trials run in parallel by this worker (default: the study's `jobs`).
    #[arg(long)]
    jobs: Option<usize>,
    /// Where trials train: cpu (the only device of this build).
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Threads for training (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Print one JSON object with what this worker did on stdout.
    #[arg(long)]
    json: bool,
    /// No progress output on stderr.
    #[arg(long, short)]
    quiet: bool,
}

pub fn run(args: WorkerArgs) -> Result<()> {
    init_threads(args.threads)?;
    if args.device != "cpu" {
        return Err(BadInput(format!(
            "--device {}: this build trains on the CPU only (use --device cpu)",
            args.device
        ))
        .into());
    }
    if args.max_trials == Some(0) || args.jobs == Some(0) {
        return Err(BadInput("--max-trials and --jobs must be at least 1".into()).into());
    }
    use_password_file(args.storage_password_file.as_deref());
    let shown = store::redact_url(&args.storage);
    let storage: Arc<dyn store::Storage> = Arc::from(store::open_existing(&args.storage)?);
    let (record, config) = joined_study(&*storage, &args.study)?;
    let done_before = storage
        .trials(record.id)?
        .iter()
        .filter(|t| matches!(t.state, TrialState::Complete | TrialState::Pruned))
        .count() as u64;
    // The data set the study names: a path every worker can read, or a bundled set.
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
        "worker joined study '{}' in {shown}: {} trials ({} done), data {}",
        record.name, config.study.trials, done_before, config.train.data
    ));
    let options = WorkerOptions {
        max_trials: args.max_trials,
        jobs: args.jobs,
    };
    let report = run_worker(&config, storage, &data, &options, &progress)?;
    progress.finish();
    if !args.quiet {
        eprintln!(
            "worker done ({}): {} complete, {} pruned, {} failed here; reclaimed {:?}; \
             study '{}' has {} trials, {} complete",
            report.stopped,
            report.complete,
            report.pruned,
            report.failed,
            report.reclaimed,
            report.study,
            report.study_trials,
            report.study_complete
        );
    }
    if args.json {
        print_json(&report);
    }
    if report.failed > 0 {
        return Err(anyhow::anyhow!(
            "{} trial(s) failed in this worker (see `modelsmith studies show {} --storage {shown}`)",
            report.failed,
            report.study
        ));
    }
    Ok(())
}
