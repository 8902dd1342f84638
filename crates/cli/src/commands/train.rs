use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use modelsmith::data::{Augment, MissingPolicy};
use modelsmith::train::{train, Device, TrainConfig, TrainObserver};

use super::{init_threads, load_training_data, print_json};
use crate::progress::ProgressReporter;

#[derive(Args)]
pub struct TrainArgs {
    /// Data SPEC: digits (bundled), fashion-mnist, idx:DIR, csv:FILE, images:DIR.
    #[arg(long)]
    data: Option<String>,
    /// Target column for csv: data; `a,b` for several (a regression on each).
    #[arg(long)]
    target: Option<String>,
    /// classification or regression (default: chosen from the target column, said once).
    #[arg(long)]
    task: Option<modelsmith::task::TaskKind>,
    /// cross_entropy (classes), mse, mae or huber (values); default: the task's (cross_entropy,
    /// mse).
    #[arg(long)]
    loss: Option<modelsmith::task::Loss>,
    /// Missing CSV values: impute (default) or reject.
    #[arg(long, value_parser = ["impute", "reject"])]
    missing: Option<String>,
    /// Your own test data (a SPEC), scored whole at the end with the preprocessing fitted on
    /// --data, which then trains on all its examples instead of holding a test part out.
    #[arg(long, value_name = "SPEC")]
    test_data: Option<String>,
    /// One-hot encode CSV string columns with very many distinct values instead of refusing them.
    #[arg(long)]
    allow_high_cardinality: bool,
    /// auto (default: seed-cnn for images, mlp for tables), seed-cnn, mlp, or a model spec
    /// file (.json or .toml).
    #[arg(long)]
    model: Option<String>,
    /// TOML file with any of the training settings; flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Most epochs to train (default 20; early stopping may end sooner).
    #[arg(long)]
    epochs: Option<u32>,
    /// Examples per training step (default 32).
    #[arg(long)]
    batch_size: Option<usize>,
    /// The optimizer (default sgd, the seed recipe).
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(modelsmith::train::OPTIMIZERS))]
    optimizer: Option<String>,
    /// Learning rate (default 0.01).
    #[arg(long, allow_negative_numbers = true)]
    lr: Option<f32>,
    /// Momentum for sgd (default 0.9) and rmsprop (default 0).
    #[arg(long, allow_negative_numbers = true)]
    momentum: Option<f32>,
    /// Nesterov momentum for sgd.
    #[arg(long)]
    nesterov: bool,
    /// Keras legacy decay: lr / (1 + decay * step).
    #[arg(long, allow_negative_numbers = true)]
    decay: Option<f32>,
    /// L2 penalty on the weights (decoupled for adamw, whose default is 0.004; others 0).
    #[arg(long, allow_negative_numbers = true)]
    weight_decay: Option<f32>,
    /// Early-stopping patience in epochs (0 disables early stopping).
    #[arg(long)]
    patience: Option<u32>,
    /// End with the weights of the epoch with the best monitored value (default: the last).
    #[arg(long)]
    restore_best: bool,
    /// Fraction of the training data held out for validation.
    #[arg(long, allow_negative_numbers = true)]
    validation_split: Option<f32>,
    /// On-the-fly augmentation: rotation up to 10 degrees and shifts up to 10%.
    #[arg(long)]
    augment: bool,
    /// Clip the gradients' global L2 norm to this value.
    #[arg(long, allow_negative_numbers = true)]
    clip_norm: Option<f32>,
    /// Seed of the split, initial weights, shuffles and dropout (same seed and threads, same
    /// result; default 42).
    #[arg(long)]
    seed: Option<u64>,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Where to train: cpu (default), cuda, cuda:N, or auto (a GPU when one is usable).
    #[arg(long)]
    device: Option<Device>,
    /// Output model folder.
    #[arg(long, default_value = "runs/latest")]
    out: PathBuf,
    /// Watts per busy CPU thread for the energy estimate (used where RAPL counters cannot be
    /// read; default: the CPU's TDP per thread from a table, else 4 W).
    #[arg(long, allow_negative_numbers = true)]
    cpu_watts: Option<f64>,
    /// Grams CO2e per kWh of your grid (default: MODELSMITH_CARBON_INTENSITY, else the world
    /// average, 475).
    #[arg(long, allow_negative_numbers = true)]
    carbon_intensity: Option<f64>,
    /// Continue from the checkpoint in --out.
    #[arg(long)]
    resume: bool,
    /// Print one JSON object with the results on stdout (progress still goes to stderr).
    #[arg(long)]
    json: bool,
    /// No progress output on stderr.
    #[arg(long, short)]
    quiet: bool,
}

impl TrainArgs {
    /// The config file (if any) with the flags applied on top.
    fn config(&self) -> Result<TrainConfig> {
        let mut c = match &self.config {
            Some(path) => TrainConfig::from_toml_file(path)?,
            None => TrainConfig::default(),
        };
        macro_rules! set {
            ($field:ident) => {
                if let Some(v) = &self.$field {
                    c.$field = v.clone();
                }
            };
        }
        set!(data);
        set!(model);
        set!(epochs);
        set!(batch_size);
        set!(optimizer);
        set!(lr);
        set!(decay);
        set!(validation_split);
        set!(seed);
        set!(device);
        if self.target.is_some() {
            c.target = self.target.clone();
        }
        if self.task.is_some() {
            c.task = self.task;
        }
        if self.loss.is_some() {
            c.loss = self.loss;
        }
        if self.test_data.is_some() {
            c.test_data = self.test_data.clone();
        }
        if self.allow_high_cardinality {
            c.allow_high_cardinality = true;
        }
        if self.momentum.is_some() {
            c.momentum = self.momentum;
        }
        if self.weight_decay.is_some() {
            c.weight_decay = self.weight_decay;
        }
        if self.clip_norm.is_some() {
            c.clip_norm = self.clip_norm;
        }
        match self.missing.as_deref() {
            Some("reject") => c.missing = MissingPolicy::Reject,
            Some(_) => c.missing = MissingPolicy::Impute,
            None => {}
        }
        if self.nesterov {
            c.nesterov = true;
        }
        if let Some(p) = self.patience {
            c.early_stopping.patience = p;
        }
        if self.restore_best {
            c.early_stopping.restore_best = true;
        }
        if self.augment {
            c.augment = Augment::light();
        }
        if self.cpu_watts.is_some() {
            c.energy.cpu_watts = self.cpu_watts;
        }
        if self.carbon_intensity.is_some() {
            c.energy.carbon_intensity = self.carbon_intensity;
        }
        Ok(c)
    }
}

pub fn run(args: TrainArgs) -> Result<()> {
    init_threads(args.threads)?;
    let mut config = args.config()?;
    config.validate()?;
    config.device = super::resolve_device(config.device)?;
    let data = load_training_data(&config)?;
    let mut progress = ProgressReporter::new(!args.quiet);
    if let Some(choice) = &data.task_choice {
        progress.on_message(choice);
    }
    let report = train(&config, &data, &args.out, args.resume, &mut progress)?;
    progress.finish();
    if args.quiet {
        return finish_json(args.json, &report);
    }
    eprintln!(
        "test {}  test loss {:.4}  epochs {}{}  {:.1}s  {:.0} examples/s  params {}",
        super::test_figures(&report.test_scores()),
        report.test_loss,
        report.epochs_run,
        if report.stopped_early {
            " (stopped early)"
        } else {
            ""
        },
        report.train_seconds,
        report.images_per_second,
        report.params
    );
    eprintln!(
        "{} — {}",
        report.footprint.summary(),
        report.footprint.energy.source
    );
    eprintln!("saved {}", args.out.display());
    eprintln!(
        "{}",
        crate::next_steps::after_train(&args.out, &config.data)
    );
    finish_json(args.json, &report)
}

fn finish_json(json: bool, report: &modelsmith::train::TrainReport) -> Result<()> {
    if json {
        print_json(report);
    }
    Ok(())
}
