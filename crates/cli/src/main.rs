//! The `modelsmith` binary: parses the command line, calls the library, prints.
//!
//! Exit codes: 0 success; 1 a run that failed (e.g. training diverged, a file could not be
//! written); 2 bad input (flags, configs, data or model files), reported as one line.

mod commands;
mod next_steps;
mod progress;
mod study_progress;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "modelsmith",
    version,
    about = "Train, optimize and deploy neural networks automatically",
    after_help = "Quick start: `modelsmith train` trains the seed CNN on the bundled MNIST digits."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a model and save it as a folder (model.json + weights.safetensors).
    Train(Box<commands::train::TrainArgs>),
    /// Evaluate a saved model on a data set's test split.
    Evaluate(commands::evaluate::EvaluateArgs),
    /// Explain a saved model: which pixels or columns its predictions rest on (Integrated
    /// Gradients, saliency, occlusion, Grad-CAM, permutation importance).
    Explain(Box<commands::explain::ExplainArgs>),
    /// Classify images (PNG/JPEG) or CSV rows with a saved model.
    Predict(commands::predict::PredictArgs),
    /// Search hyperparameters: sample, train, prune; studies resume and run in parallel.
    Tune(Box<commands::tune::TuneArgs>),
    /// Search architectures and training settings within a time budget; save the best model.
    Auto(Box<commands::auto::AutoArgs>),
    /// Join a study in shared storage and run its trials (start any number, on any hosts).
    Worker(Box<commands::worker::WorkerArgs>),
    /// List, show and export the studies in a storage.
    Studies(commands::studies::StudiesArgs),
    /// Export a saved model as ONNX or safetensors.
    Export(commands::export::ExportArgs),
    /// Serve models over HTTP: KServe v2 inference, /predict, /metrics, dynamic batching.
    Serve(Box<commands::serve::ServeArgs>),
    /// Watch studies in the browser: history, trials, curves, importance, Pareto front.
    Dashboard(commands::dashboard::DashboardArgs),
    /// Write a study's plots as SVG files with an index.html (or README.md).
    Report(commands::report::ReportArgs),
    /// Write a deployment bundle (Dockerfile, Kubernetes, KServe, model card), or --verify one.
    Deploy(Box<commands::deploy::DeployArgs>),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MODELSMITH_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal: logs and CI captures get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Train(args) => commands::train::run(*args),
        Command::Evaluate(args) => commands::evaluate::run(args),
        Command::Explain(args) => commands::explain::run(*args),
        Command::Predict(args) => commands::predict::run(args),
        Command::Tune(args) => commands::tune::run(*args),
        Command::Auto(args) => commands::auto::run(*args),
        Command::Worker(args) => commands::worker::run(*args),
        Command::Studies(args) => commands::studies::run(args),
        Command::Export(args) => commands::export::run(args),
        Command::Serve(args) => commands::serve::run(*args),
        Command::Deploy(args) => commands::deploy::run(*args),
        Command::Dashboard(args) => commands::dashboard::run(args),
        Command::Report(args) => commands::report::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", one_line(&format!("{err:#}")));
            ExitCode::from(commands::exit_code(&err))
        }
    }
}

fn one_line(s: &str) -> String {
    s.lines().map(str::trim).collect::<Vec<_>>().join(" ")
}
