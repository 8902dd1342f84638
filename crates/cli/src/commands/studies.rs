use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use modelsmith::report;
use modelsmith::search::{best_trial, FrozenTrial, ParamValue};
use modelsmith::store::{self, Storage, StoreError};

use super::print_json;

#[derive(Args)]
pub struct StudiesArgs {
    #[command(subcommand)]
    command: StudiesCommand,
    /// Where studies live: sqlite:PATH, postgres://USER@HOST[:PORT]/DB or memory:.
    #[arg(long, global = true, default_value = "sqlite:modelsmith.db")]
    storage: String,
    /// A file whose first line is the storage password.
    #[arg(long, global = true, env = "MODELSMITH_STORAGE_PASSWORD_FILE")]
    storage_password_file: Option<PathBuf>,
}

#[derive(Subcommand)]
enum StudiesCommand {
    /// One line per study: trials by state, the best value and when it was created.
    List {
        /// Print the studies as one JSON array on stdout.
        #[arg(long)]
        json: bool,
    },
    /// A study's trials: number, state, value, start, duration, parameters.
    Show {
        name: String,
        /// Print the study and its trials as one JSON object on stdout (times in Unix seconds).
        #[arg(long)]
        json: bool,
    },
    /// Delete a study and all its trials (refused while any trial runs).
    Delete { name: String },
    /// Every trial of a study as CSV (one column per parameter) or JSON (full records).
    Export {
        name: String,
        #[arg(long, value_enum, default_value = "csv")]
        format: ExportFormat,
        /// Write to this file instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum ExportFormat {
    Csv,
    Json,
}

pub fn run(args: StudiesArgs) -> Result<()> {
    super::use_password_file(args.storage_password_file.as_deref());
    let storage = store::open_existing(&args.storage)?;
    if matches!(args.command, StudiesCommand::List { json: false }) {
        eprintln!("studies in {}", store::redact_url(&args.storage));
    }
    match args.command {
        StudiesCommand::List { json } => list(&*storage, json),
        StudiesCommand::Show { name, json } => show(&*storage, &name, json),
        StudiesCommand::Export { name, format, out } => export(&*storage, &name, format, out),
        StudiesCommand::Delete { name } => {
            let trials = storage.delete_study(&name)?;
            eprintln!(
                "deleted study '{name}' and its {trials} trial(s) from {}",
                store::redact_url(&args.storage)
            );
            Ok(())
        }
    }
}

/// A stored time (Unix seconds) as a UTC date and time, `2026-12-07 13:43:45Z`.
fn date(unix_seconds: f64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix_seconds.floor() as i64)
        .ok()
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute]:[second]Z"
            ))
            .ok()
        })
        .unwrap_or_else(|| "-".into())
}

/// A stored time as RFC 3339 (for CSV readers: spreadsheets and pandas parse it).
fn rfc3339(unix_seconds: f64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos((unix_seconds * 1e9) as i128)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

fn list(storage: &dyn Storage, json: bool) -> Result<()> {
    let studies = storage.list_studies()?;
    if json {
        print_json(&studies);
        return Ok(());
    }
    if studies.is_empty() {
        eprintln!("no studies yet (run `modelsmith tune`)");
        return Ok(());
    }
    println!(
        "{:<28} {:<9} {:>6} {:>8} {:>6} {:>6} {:>7}  {:<10} {:<20}",
        "study",
        "direction",
        "trials",
        "complete",
        "pruned",
        "failed",
        "running",
        "best",
        "created"
    );
    for s in studies {
        println!(
            "{:<28} {:<9} {:>6} {:>8} {:>6} {:>6} {:>7}  {:<10} {:<20}",
            s.study.name,
            s.study.direction.name(),
            s.trials,
            s.complete,
            s.pruned,
            s.failed,
            s.running,
            s.best_value.map_or("-".into(), |v| format!("{v:.6}")),
            date(s.study.created_at)
        );
    }
    Ok(())
}

fn study_trials(
    storage: &dyn Storage,
    name: &str,
) -> Result<(modelsmith::store::StudyRecord, Vec<FrozenTrial>)> {
    let study = storage
        .get_study(name)?
        .ok_or_else(|| StoreError::NoStudy(name.into()))?;
    let trials = storage.trials(study.id)?;
    Ok((study, trials))
}

fn show(storage: &dyn Storage, name: &str, json: bool) -> Result<()> {
    let (study, trials) = study_trials(storage, name)?;
    let best = best_trial(&trials, study.direction);
    let architecture = modelsmith::auto::is_architecture_study(&study.attrs);
    let energy = report::trials_energy(&trials);
    if json {
        let mut value = serde_json::json!({
            "study": study,
            "best_trial": best.map(|b| b.number),
            "energy": energy,
            "trials": trials,
        });
        if architecture {
            value["pareto_front"] =
                serde_json::json!(modelsmith::auto::pareto_front(&trials, study.direction));
        }
        print_json(&value);
        return Ok(());
    }
    println!(
        "study '{}' ({}), {} trials, created {}",
        study.name,
        study.direction.name(),
        trials.len(),
        date(study.created_at)
    );
    println!(
        "{:>5}  {:<8} {:>10} {:>6} {:<20} {:>8} {:>10}  params",
        "trial", "state", "value", "steps", "started", "seconds", "energy"
    );
    for t in &trials {
        let params: Vec<String> = t
            .param_values()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let mark = if best.is_some_and(|b| b.id == t.id) {
            " *"
        } else {
            ""
        };
        println!(
            "{:>5}  {:<8} {:>10} {:>6} {:<20} {:>8} {:>10}  {}{}{}",
            t.number,
            t.state.name(),
            t.value.map_or("-".into(), |v| format!("{v:.6}")),
            t.intermediate.len(),
            t.started_at.map_or("-".into(), date),
            t.duration_seconds()
                .map_or("-".into(), |s| format!("{s:.1}")),
            report::trial_joules(t).map_or("-".into(), |j| format!("{j:.0} J")),
            params.join(" "),
            mark,
            t.error
                .as_deref()
                .map_or(String::new(), |e| format!("  error: {e}"))
        );
    }
    if let Some(b) = best {
        println!(
            "best: trial {} (marked *), value {:.6}",
            b.number,
            b.value.unwrap_or(f64::NAN)
        );
    }
    if let Some(e) = &energy {
        println!("energy: {}", e.summary());
    }
    if architecture {
        show_pareto_front(&trials, study.direction);
    }
    Ok(())
}

/// For an architecture search (`modelsmith auto`): the trials no other beats on the validation
/// metric, parameters and latency at once.
fn show_pareto_front(trials: &[FrozenTrial], direction: modelsmith::search::Direction) {
    let front = modelsmith::auto::pareto_front(trials, direction);
    println!(
        "Pareto front (val accuracy vs params vs latency), {} of {} complete architectures:",
        front.len(),
        modelsmith::auto::arch_points(trials).len()
    );
    println!(
        "{:>5}  {:>8} {:>9} {:>10} {:>8}  architecture",
        "trial", "value", "params", "FLOPs", "lat ms"
    );
    for p in front {
        println!(
            "{:>5}  {:>8.4} {:>9} {:>10} {:>8.3}  {}",
            p.number, p.value, p.params, p.flops, p.latency_ms, p.architecture
        );
    }
}

fn export(
    storage: &dyn Storage,
    name: &str,
    format: ExportFormat,
    out: Option<PathBuf>,
) -> Result<()> {
    let (study, trials) = study_trials(storage, name)?;
    let mut bytes = Vec::new();
    match format {
        ExportFormat::Json => {
            serde_json::to_writer_pretty(
                &mut bytes,
                &serde_json::json!({ "study": study, "trials": trials }),
            )?;
            bytes.push(b'\n');
        }
        ExportFormat::Csv => {
            let mut names: Vec<&String> = trials.iter().flat_map(|t| t.params.keys()).collect();
            names.sort();
            names.dedup();
            let mut w = csv::Writer::from_writer(&mut bytes);
            let mut header: Vec<String> = [
                "number",
                "state",
                "value",
                "started_at",
                "finished_at",
                "seconds",
                "steps",
                "last_step_value",
                "error",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            header.extend(names.iter().map(|n| format!("param_{n}")));
            w.write_record(&header)?;
            for t in &trials {
                let opt = |v: Option<f64>| v.map_or(String::new(), |v| v.to_string());
                let values = t.param_values();
                let mut row = vec![
                    t.number.to_string(),
                    t.state.name().to_string(),
                    opt(t.value),
                    t.started_at.map(rfc3339).unwrap_or_default(),
                    t.finished_at.map(rfc3339).unwrap_or_default(),
                    opt(t.duration_seconds()),
                    t.intermediate.len().to_string(),
                    opt(t.last_intermediate().map(|(_, v)| v)),
                    t.error.clone().unwrap_or_default(),
                ];
                row.extend(names.iter().map(|n| match values.get(*n) {
                    Some(ParamValue::Str(s)) => s.clone(),
                    Some(v) => v.to_string(),
                    None => String::new(),
                }));
                w.write_record(&row)?;
            }
            w.flush()?;
        }
    }
    match out {
        Some(path) => std::fs::write(&path, &bytes)
            .with_context(|| format!("{}: cannot write", path.display()))?,
        None => std::io::stdout().write_all(&bytes)?,
    }
    Ok(())
}
