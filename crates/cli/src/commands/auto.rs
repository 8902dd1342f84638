//! `modelsmith auto`: give it data and a time budget, get the best model it can find.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Args;
use modelsmith::auto::{run_auto, Artifacts, AutoConfig, AutoObserver, AutoReport, DEMO_BUDGET};
use modelsmith::energy::{forecast, format_joules};
use modelsmith::search::{FrozenTrial, TrialState};
use modelsmith::store;
use modelsmith::task::{significant, Scores};
use modelsmith::tune::parse_duration;

use super::{init_threads, print_json, BadInput};

#[derive(Args)]
pub struct AutoArgs {
    /// Data SPEC: digits (bundled), fashion-mnist, idx:DIR, csv:FILE, images:DIR.
    #[arg(long, default_value = "digits")]
    data: String,
    /// Target column for csv: data (the search then builds MLPs); `a,b` for several (a
    /// regression on each).
    #[arg(long)]
    target: Option<String>,
    /// classification or regression (default: chosen from the target column, said once).
    #[arg(long)]
    task: Option<modelsmith::task::TaskKind>,
    /// The validation metric trials are ranked by (default: val_accuracy for classes,
    /// val_rmse for values): val_accuracy, val_loss, val_rmse, val_mae or val_r2.
    #[arg(long)]
    metric: Option<modelsmith::task::Metric>,
    /// Your own test data (a SPEC), scored once at the end with the preprocessing fitted on
    /// --data, which then searches and trains on all its examples.
    #[arg(long, value_name = "SPEC")]
    test_data: Option<String>,
    /// One-hot encode CSV string columns with very many distinct values instead of refusing them.
    #[arg(long)]
    allow_high_cardinality: bool,
    /// Wall clock for the whole run: 75% search, 25% final training on train+validation
    /// (default: a 2m demo).
    #[arg(long)]
    time_budget: Option<String>,
    /// hillclimb (default: a morphism hill-climb that keeps weights), evolution, or random
    /// (the control: random architectures trained from scratch).
    #[arg(long, default_value = "hillclimb", value_parser = clap::builder::PossibleValuesParser::new(modelsmith::arch::STRATEGIES))]
    strategy: String,
    /// Where studies live: sqlite:PATH or memory:. Trial weights go beside a SQLite file in
    /// PATH.artifacts/STUDY/.
    #[arg(long, default_value = "sqlite:modelsmith.db")]
    storage: String,
    /// Study name (default: auto-DATA-STRATEGY). The same name continues the search.
    #[arg(long)]
    study: Option<String>,
    /// Trials trained at once, each on its share of the cores (default: on the CPU one per
    /// core, at most 8; on a GPU one).
    #[arg(long)]
    workers: Option<usize>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Watts per busy CPU thread for the energy estimate (default: the CPU's TDP per thread
    /// from a table, else 4 W).
    #[arg(long, allow_negative_numbers = true)]
    cpu_watts: Option<f64>,
    /// Grams CO2e per kWh of your grid (default: MODELSMITH_CARBON_INTENSITY, else 475).
    #[arg(long, allow_negative_numbers = true)]
    carbon_intensity: Option<f64>,
    /// Most learnable parameters an architecture may have.
    #[arg(long)]
    max_params: Option<usize>,
    /// Most milliseconds per example (batch 1, measured here after training); slower
    /// architectures are infeasible.
    #[arg(long)]
    max_latency_ms: Option<f64>,
    /// Small tables (cross-validated): average this many refits of the best trial (other
    /// seeds) in the final network, as many as the time left allows (default 5; 1: one
    /// training). Not with --max-latency-ms.
    #[arg(long)]
    ensemble: Option<usize>,
    /// Folder for the final model (model.json, weights.safetensors, model.onnx).
    #[arg(long)]
    out: PathBuf,
    /// Worker threads for training (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Where trials train: cpu (default), cuda, cuda:N, or auto (a GPU when one is usable).
    /// With --workers N on a GPU, N trials share it, each on its own stream.
    #[arg(long, default_value = "cpu")]
    device: modelsmith::train::Device,
    /// Print one JSON object with the results on stdout.
    #[arg(long)]
    json: bool,
    /// No progress output on stderr.
    #[arg(long, short)]
    quiet: bool,
}

pub fn run(args: AutoArgs) -> Result<()> {
    init_threads(args.threads)?;
    let strategy = args
        .strategy
        .parse()
        .map_err(|e: String| BadInput(format!("--strategy: {e}")))?;
    let budget = match &args.time_budget {
        Some(text) => parse_duration(text).map_err(|e| BadInput(format!("--time-budget: {e}")))?,
        None => DEMO_BUDGET,
    };
    if let Some(0) = args.max_params {
        return Err(BadInput("--max-params must be at least 1".into()).into());
    }
    if let Some(l) = args.max_latency_ms {
        if !(l.is_finite() && l > 0.0) {
            return Err(BadInput(format!(
                "--max-latency-ms must be a positive number of milliseconds, got {l}"
            ))
            .into());
        }
    }
    if args.ensemble == Some(0) {
        return Err(BadInput("--ensemble must be at least 1".into()).into());
    }
    if args.workers == Some(0) {
        return Err(BadInput("--workers must be at least 1".into()).into());
    }
    let data = modelsmith::data::load(
        &args.data,
        &modelsmith::data::LoadOptions {
            target: args.target.clone(),
            task: args.task,
            seed: args.seed,
            test_data: args.test_data.clone(),
            allow_high_cardinality: args.allow_high_cardinality,
            ..modelsmith::data::LoadOptions::default()
        },
    )?;
    let mut config = AutoConfig::defaults_for(&args.data, &data.train.shape, data.train.len());
    config.target = args.target.clone();
    config.task = Some(data.info.task.kind());
    config.metric = args.metric;
    let metric = args.metric.unwrap_or(data.info.task.default_metric());
    config.strategy.kind = strategy;
    config.time_budget = budget;
    config.device = super::resolve_device(args.device)?;
    config.workers = args
        .workers
        .unwrap_or_else(|| AutoConfig::default_workers(config.device));
    config.seed = args.seed;
    config.max_latency_ms = args.max_latency_ms;
    config.energy = modelsmith::energy::EnergySettings {
        cpu_watts: args.cpu_watts,
        carbon_intensity: args.carbon_intensity,
    };
    config.energy.validate()?;
    if let Some(n) = args.ensemble {
        config.ensemble = n;
    }
    if let Some(p) = args.max_params {
        config.strategy.evolution.limits.max_params = p;
    }
    config.study = args
        .study
        .clone()
        .unwrap_or_else(|| default_study_name(&args.data, &args.strategy));

    let storage: Arc<dyn store::Storage> = Arc::from(store::open(&args.storage)?);
    // Trial weights live beside a storage file so other processes find them; a memory storage
    // gets a temporary folder, removed at the end.
    let (artifact_dir, temporary) = match Artifacts::dir_for_storage(&args.storage, &config.study) {
        Some(dir) => (dir, false),
        None => (
            std::env::temp_dir().join(format!(
                "modelsmith-auto-{}-{}",
                std::process::id(),
                config.study
            )),
            true,
        ),
    };
    let artifacts = Artifacts::new(artifact_dir)?;
    let progress = AutoProgress::new(!args.quiet, budget, metric.name());
    if let Some(choice) = &data.task_choice {
        progress.say(choice);
    }
    progress.say(&format!(
        "auto: study '{}' in {}, strategy {}, budget {} ({}s search, {}s final){}, {} worker(s)",
        config.study,
        store::redact_url(&args.storage),
        config.strategy.kind,
        humanize(budget),
        (budget.as_secs_f64() * (1.0 - config.final_share)).round(),
        (budget.as_secs_f64() * config.final_share).round(),
        if args.time_budget.is_none() {
            " [demo default; set --time-budget]"
        } else {
            ""
        },
        config.workers
    ));
    let result = run_auto(&config, storage, &data, &artifacts, &args.out, &progress);
    if temporary {
        let _ = std::fs::remove_dir_all(artifacts.root());
    }
    let report = result?;
    if !args.quiet {
        print_summary(&report, &args);
    }
    if args.json {
        print_json(&report);
    }
    Ok(())
}

/// `auto-digits-hillclimb`, `auto-iris-random` (a CSV's file stem): a data set and strategy
/// continue their own search, and never mix genomes of different input shapes.
fn default_study_name(data: &str, strategy: &str) -> String {
    let name = data
        .rsplit(['/', ':'])
        .next()
        .unwrap_or(data)
        .trim_end_matches(".csv");
    let clean: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    format!("auto-{clean}-{strategy}")
}

fn humanize(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 3600, s % 3600 / 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m{s:02}s"),
        (h, m, _) => format!("{h}h{m:02}m"),
    }
}

fn print_summary(r: &AutoReport, args: &AutoArgs) {
    eprintln!(
        "\nstudy '{}' ({}): {} trials ({} complete, {} pruned, {} failed); search {:.0}s, total {:.0}s of {:.0}s",
        r.study,
        r.strategy,
        r.trials,
        r.complete,
        r.pruned,
        r.failed,
        r.search_seconds,
        r.total_seconds,
        r.budget_seconds
    );
    let metric = r.metric.trim_start_matches("val_");
    eprintln!(
        "{:>5}  {:>9} {:>10} {:>8} {:>9} {:>10}  {:>9}  {:>9}  architecture",
        "trial",
        "params",
        "FLOPs",
        "lat ms",
        "train J",
        "J/1k pred",
        format!("val {metric}"),
        "test"
    );
    let f = &r.final_model;
    let test_value = match metric {
        "accuracy" => f.test.accuracy,
        "rmse" => f.test.rmse,
        "mae" => f.test.mae,
        "r2" => f.test.r2,
        _ => Some(f.test.loss),
    };
    for p in &r.leaderboard {
        let test = if p.number == f.trial {
            shown(metric, test_value.map_or(f64::NAN, f64::from))
        } else {
            "-".into()
        };
        eprintln!(
            "{:>5}  {:>9} {:>10} {:>8.3} {:>9} {:>10}  {:>9}  {:>9}  {}",
            p.number,
            p.params,
            p.flops,
            p.latency_ms,
            p.train_joules.map_or("-".into(), |j| format!("{j:.0}")),
            p.joules_per_prediction
                .map_or("-".into(), |j| format!("{:.3}", j * 1000.0)),
            shown(metric, p.value),
            test,
            p.architecture
        );
    }
    if r.pareto_front.len() > 1 {
        let front: Vec<String> = r
            .pareto_front
            .iter()
            .map(|p| format!("#{}", p.number))
            .collect();
        eprintln!(
            "Pareto front ({metric} / params / latency): {}",
            front.join(" ")
        );
    }
    if let Some(e) = &r.search_energy {
        eprintln!("search energy: {}", e.summary());
    }
    if let Some(g) = &r.greenest {
        eprintln!("{}", g.sentence(r.metric));
    }
    let seeds = match f.members {
        1 => String::new(),
        n => format!(", {n} seeds averaged"),
    };
    eprintln!(
        "final model: trial {} trained {} more epoch(s) on train+validation from {}{seeds}: test {}  test loss {:.4}  {} params  {:.3} ms/example",
        f.trial,
        f.epochs,
        f.start,
        super::test_figures(&f.test),
        f.test.loss,
        f.params,
        f.latency_ms
    );
    eprintln!("saved {} (ONNX: {})", f.out.display(), f.onnx.display());
    if let Some(e) = &r.explanation {
        super::explain::print_final(e);
    }
    eprintln!(
        "next: modelsmith studies show {} --storage {}  (every trial and the Pareto front)",
        r.study,
        store::redact_url(&args.storage)
    );
    eprintln!("{}", crate::next_steps::after_train(&f.out, &args.data));
    // The report and dashboard commands: one shared line for every study command.
    eprintln!(
        "{}",
        crate::next_steps::after_study(&store::redact_url(&args.storage), &r.study)
    );
}

/// Progress on stderr: each trial's start, its epochs, its end, with the best so far and the
/// time left of the budget.
struct AutoProgress {
    enabled: bool,
    started: Instant,
    budget: Duration,
    /// The study's metric, `val_accuracy`, `val_rmse`, …
    metric: &'static str,
    best: Mutex<Option<(u64, f64)>>,
    /// Joules of the trials finished so far.
    joules: Mutex<f64>,
}

impl AutoProgress {
    fn new(enabled: bool, budget: Duration, metric: &'static str) -> AutoProgress {
        AutoProgress {
            enabled,
            started: Instant::now(),
            budget,
            metric,
            best: Mutex::new(None),
            joules: Mutex::new(0.0),
        }
    }

    fn say(&self, line: &str) {
        if self.enabled {
            eprintln!("{line}");
        }
    }

    fn status(&self) -> String {
        let left = self.budget.saturating_sub(self.started.elapsed());
        let best = self.best.lock().unwrap_or_else(|p| p.into_inner());
        let best = best.map_or("best -".into(), |(n, v)| {
            format!(
                "best {} (#{n})",
                shown(self.metric.trim_start_matches("val_"), v)
            )
        });
        // The trials' energy so far and, at this pace, by the end of the budget.
        let joules = *self.joules.lock().unwrap_or_else(|p| p.into_inner());
        let (spent, budget) = (
            self.started.elapsed().as_secs_f64(),
            self.budget.as_secs_f64(),
        );
        let energy = match forecast(joules, spent, budget) {
            Some(all) if joules > 0.0 => format!(
                "  energy {} (≈ {} at this pace)",
                format_joules(joules),
                format_joules(all)
            ),
            _ => String::new(),
        };
        format!("{best}{energy}  {} left", humanize(left))
    }
}

impl AutoObserver for AutoProgress {
    fn on_message(&self, message: &str) {
        self.say(message);
    }

    fn on_trial_start(&self, number: u64, architecture: &str, start: &str) {
        self.say(&format!(
            "trial {number:>3}  {architecture}  [from {start}]"
        ));
    }

    fn on_epoch(&self, number: u64, epoch: u32, epochs: u32, value: Option<f32>) {
        let figure = value.map_or("-".into(), |v| {
            shown(self.metric.trim_start_matches("val_"), v as f64)
        });
        self.say(&format!(
            "trial {number:>3}  epoch {epoch}/{epochs}  {} {figure}  {}",
            self.metric,
            self.status()
        ));
    }

    fn on_trial_end(&self, t: &FrozenTrial, best: Option<&FrozenTrial>) {
        let trial_joules = modelsmith::report::trial_joules(t);
        *self.joules.lock().unwrap_or_else(|p| p.into_inner()) += trial_joules.unwrap_or(0.0);
        if let Some(b) = best {
            *self.best.lock().unwrap_or_else(|p| p.into_inner()) =
                Some((b.number, b.value.unwrap_or(f64::NAN)));
        }
        let outcome = match t.state {
            TrialState::Complete => format!(
                "complete  {} {}  latency {} ms",
                self.metric,
                shown(
                    self.metric.trim_start_matches("val_"),
                    t.value.unwrap_or(f64::NAN)
                ),
                t.attrs
                    .get("latency_ms")
                    .and_then(|v| v.as_f64())
                    .map_or("-".into(), |v| format!("{v:.3}"))
            ),
            TrialState::Pruned => match t.attrs.get("infeasible").and_then(|v| v.as_str()) {
                Some(why) => format!("infeasible: {why}"),
                None => format!(
                    "pruned at epoch {}",
                    t.last_intermediate().map_or(0, |(s, _)| s)
                ),
            },
            _ => format!("failed: {}", t.error.as_deref().unwrap_or("(no message)")),
        };
        self.say(&format!(
            "trial {:>3}  {outcome}  {:.1}s{}  {}",
            t.number,
            t.duration_seconds().unwrap_or(0.0),
            trial_joules.map_or(String::new(), |j| format!("  {}", format_joules(j))),
            self.status()
        ));
    }

    fn on_final_epoch(&self, epoch: u32, epochs: u32, train: &Scores) {
        let left = self.budget.saturating_sub(self.started.elapsed());
        let figure = match train.accuracy {
            Some(a) => format!("train acc {:.2}%", a * 100.0),
            None => format!("train loss {:.4}", train.loss),
        };
        self.say(&format!(
            "final  epoch {epoch}/{epochs}  {figure}  {} left",
            humanize(left)
        ));
    }
}

/// A metric's value as a person reads it: accuracy in percent, the rest to four significant
/// digits.
fn shown(metric: &str, value: f64) -> String {
    if metric == "accuracy" {
        format!("{:.2}%", value * 100.0)
    } else {
        significant(value as f32)
    }
}
