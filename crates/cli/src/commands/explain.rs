use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Args;
use modelsmith::data::Preprocessing;
use modelsmith::explain::faithfulness::{self, Faithfulness};
use modelsmith::explain::permutation::{PermutationImportance, DEFAULT_REPEATS};
use modelsmith::explain::{
    explain_data, file_safe, heatmap, output_names, write_class_maps, Attribution, Baseline,
    Completeness, DataExplanation, ExplainOptions, ExplainedOutput, Explainer, Method, Units,
    DEFAULT_LIMIT, DEFAULT_MAX_STEPS, DEFAULT_STEPS, DEFAULT_TOLERANCE,
};
use modelsmith::predict::read_inputs;
use modelsmith::train::{scoring_data, ScoringData};
use serde::Serialize;

use super::{print_json, BadInput};

#[derive(Args)]
pub struct ExplainArgs {
    /// A model folder written by `modelsmith train`, `tune` or `auto`.
    #[arg(long)]
    model: PathBuf,
    /// Images (PNG/JPEG) or CSV files to explain one by one. Without any, the model's held-out
    /// data (or --data) is explained as a whole.
    inputs: Vec<PathBuf>,
    /// Data SPEC to explain, read with the model's preprocessing (default: the model's own test
    /// data).
    #[arg(long, conflicts_with = "inputs")]
    data: Option<String>,
    /// Target column of a csv: file, if it is not named as in training.
    #[arg(long)]
    target_column: Option<String>,
    /// ig, saliency, input-x-gradient, occlusion, gradcam, or permutation (tables). Default: ig
    /// for images and single rows; permutation and ig for a table's data.
    #[arg(long)]
    method: Option<String>,
    /// The class (name or index) or regression target to explain. Default: each input's
    /// predicted class (a data set's examples: their own class), or the first target.
    #[arg(long)]
    target: Option<String>,
    /// What "absent" means: black, blurred or noise (images), mean (tables).
    #[arg(long)]
    baseline: Option<String>,
    /// Integrated Gradients' path steps.
    #[arg(long, default_value_t = DEFAULT_STEPS)]
    steps: usize,
    /// Integrated Gradients: inputs whose attributions miss f(x) - f(baseline) by more than
    /// this share are integrated again with twice the steps (up to --max-steps); 0 turns it off.
    #[arg(long, default_value_t = DEFAULT_TOLERANCE)]
    tolerance: f32,
    /// Integrated Gradients: the most steps refinement may reach.
    #[arg(long, default_value_t = DEFAULT_MAX_STEPS)]
    max_steps: usize,
    /// Occlusion's window side in pixels (default: a seventh of the image's shorter side).
    #[arg(long)]
    window: Option<usize>,
    /// Examples explained from a data set.
    #[arg(long, default_value_t = DEFAULT_LIMIT)]
    limit: usize,
    /// Permutation importance: shuffles per column.
    #[arg(long, default_value_t = DEFAULT_REPEATS)]
    repeats: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Where heatmap PNGs go (default: MODEL/explain).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print one JSON object with the results on stdout.
    #[arg(long)]
    json: bool,
}

/// One input's explanation as printed with --json.
#[derive(Serialize)]
struct InputExplanation {
    input: String,
    output: String,
    #[serde(flatten)]
    attribution: Attribution,
    faithfulness: Faithfulness,
    /// Per unit: a table's columns by name, an image's pixels row by row.
    units: Vec<(String, f32)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    heatmap: Option<PathBuf>,
}

#[derive(Serialize)]
struct ExplainReport {
    model: PathBuf,
    method: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    inputs: Vec<InputExplanation>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<DataExplanation>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    heatmaps: Vec<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    permutation: Option<PermutationImportance>,
}

/// What the user asked for: an attribution method, or permutation importance.
enum Wanted {
    Attribution(Method),
    Permutation,
}

pub fn run(args: ExplainArgs) -> Result<()> {
    let mut explainer = Explainer::load(&args.model)?;
    let preprocessing = explainer.meta.data.preprocessing.clone();
    let is_table = matches!(preprocessing, Preprocessing::Table { .. });
    let wanted = match args.method.as_deref() {
        Some("permutation") => Wanted::Permutation,
        Some(m) => Wanted::Attribution(Method::parse(m)?),
        None if is_table && args.inputs.is_empty() => Wanted::Permutation,
        None => Wanted::Attribution(Method::IntegratedGradients),
    };
    let baseline = match &args.baseline {
        Some(b) => Baseline::parse(b)?,
        None => Baseline::default_for(&preprocessing),
    };
    let target = args
        .target
        .as_deref()
        .map(|t| ExplainedOutput::parse(t, explainer.task()))
        .transpose()?;
    let method =
        match wanted {
            Wanted::Attribution(m) => m,
            Wanted::Permutation if !args.inputs.is_empty() => return Err(BadInput(
                "permutation importance explains a data set, not single inputs; drop the inputs \
                 or pick ig, saliency, input-x-gradient or occlusion"
                    .into(),
            )
            .into()),
            Wanted::Permutation => Method::IntegratedGradients,
        };
    let mut options = ExplainOptions::new(method, baseline);
    options.steps = args.steps;
    if !(args.tolerance >= 0.0 && args.tolerance.is_finite()) {
        return Err(BadInput(format!(
            "--tolerance {} must be a share of at least 0 (0.01 = 1%)",
            args.tolerance
        ))
        .into());
    }
    options.tolerance = (args.tolerance > 0.0).then_some(args.tolerance);
    options.max_steps = args.max_steps;
    options.window = args.window;
    options.seed = args.seed;
    let out_dir = args
        .out
        .clone()
        .unwrap_or_else(|| args.model.join("explain"));
    let mut report = ExplainReport {
        model: args.model.clone(),
        method: match wanted {
            Wanted::Permutation => "permutation",
            Wanted::Attribution(m) => m.name(),
        },
        inputs: Vec::new(),
        data: None,
        heatmaps: Vec::new(),
        permutation: None,
    };
    if !args.inputs.is_empty() {
        report.inputs = explain_inputs(&mut explainer, &args, &options, target, &out_dir)?;
    } else {
        let ScoringData { spec, data, .. } = scoring_data(
            &explainer.meta,
            args.data.as_deref(),
            args.target_column.clone(),
        )?;
        if let Wanted::Permutation = wanted {
            let p = explainer.permutation_importance(&data, args.repeats, args.seed)?;
            print_permutation(&spec, &p);
            report.permutation = Some(p);
        }
        eprintln!(
            "explaining {} example(s) of {spec} with {}...",
            data.len().min(args.limit.max(1)),
            method.name()
        );
        let (summary, _) =
            explain_data(&mut explainer, &spec, &data, &options, args.limit, target)?;
        print_summary(&summary, is_table);
        report.heatmaps = write_class_maps(&summary, &preprocessing, &out_dir)?;
        if !report.heatmaps.is_empty() {
            eprintln!(
                "{} class map(s) written to {}",
                report.heatmaps.len(),
                out_dir.display()
            );
        }
        report.data = Some(summary);
    }
    if args.json {
        print_json(&report);
    }
    Ok(())
}

fn explain_inputs(
    explainer: &mut Explainer,
    args: &ExplainArgs,
    options: &ExplainOptions,
    target: Option<ExplainedOutput>,
    out_dir: &Path,
) -> Result<Vec<InputExplanation>> {
    let preprocessing = explainer.meta.data.preprocessing.clone();
    let inputs = read_inputs(&preprocessing, &args.inputs)?;
    let x: Vec<f32> = inputs.iter().flat_map(|(_, v)| v.iter().copied()).collect();
    let targets = match target {
        Some(t) => vec![t; inputs.len()],
        None => explainer.default_targets(&x),
    };
    let baselines = options.baseline.build(&x, &preprocessing, options.seed)?;
    let attributions = explainer.explain_from(&x, &baselines, &targets, options)?;
    let scores = faithfulness::score(
        explainer,
        &x,
        &baselines,
        &targets,
        &attributions,
        options.seed,
    );
    let names = output_names(explainer.task());
    let units = Units::of(&preprocessing);
    let mut out = Vec::new();
    for (((label, input), attribution), faith) in inputs.iter().zip(attributions).zip(scores) {
        let output = names[attribution.target].clone();
        let per_unit = units.sum(&attribution.values);
        let heatmap = match preprocessing {
            Preprocessing::Image {
                height,
                width,
                channels,
                scale,
            } => {
                create_dir(out_dir)?;
                let stem = Path::new(label)
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .unwrap_or("input");
                let path = out_dir.join(format!(
                    "{}-{}-{}.png",
                    file_safe(stem),
                    options.method.name(),
                    file_safe(&output)
                ));
                let img = heatmap::overlay(input, &per_unit, height, width, channels, scale);
                heatmap::save(&img, &path)?;
                Some(path)
            }
            Preprocessing::Table { .. } => None,
        };
        print_input(
            label,
            &output,
            &attribution,
            &faith,
            &units,
            &per_unit,
            heatmap.as_deref(),
        );
        out.push(InputExplanation {
            input: label.clone(),
            output,
            attribution,
            faithfulness: faith,
            units: units.names.iter().cloned().zip(per_unit).collect(),
            heatmap,
        });
    }
    Ok(out)
}

fn print_input(
    label: &str,
    output: &str,
    a: &Attribution,
    faith: &Faithfulness,
    units: &Units,
    per_unit: &[f32],
    heatmap: Option<&Path>,
) {
    let mut line = format!("{label}: {output} = {:.4}", a.value);
    if let Some(c) = a.completeness {
        line.push_str(&completeness_text(a.value, &c));
    }
    line.push_str(&format!(
        "; deletion AUC {:.3} (random order {:.3})",
        faith.deletion_auc, faith.random_deletion_auc
    ));
    if let Some(p) = heatmap {
        line.push_str(&format!("; heatmap {}", p.display()));
    }
    eprintln!("{line}");
    if heatmap.is_none() {
        let mut ranked: Vec<(&String, f32)> =
            units.names.iter().zip(per_unit.iter().copied()).collect();
        ranked.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()));
        for (name, v) in ranked.iter().take(10) {
            eprintln!("  {name:<24} {v:+.4}");
        }
    }
}

fn completeness_text(value: f32, c: &Completeness) -> String {
    format!(
        "; {} steps: attributions sum to {:+.4}, f(x) - f(baseline) = {:+.4} (completeness error {:.2}%)",
        c.steps,
        c.sum,
        value - c.baseline_value,
        100.0 * c.relative_error
    )
}

fn print_summary(s: &DataExplanation, is_table: bool) {
    let mut line = format!(
        "{}: {} example(s) explained with {}",
        s.data,
        s.explained,
        s.method.name()
    );
    if let Some(c) = s.completeness {
        line.push_str(&format!(
            "; completeness error mean {:.2}%, max {:.2}%, {:.0}% within 1% ({} input(s) refined, up to {} steps)",
            100.0 * c.mean_relative_error,
            100.0 * c.max_relative_error,
            100.0 * c.within_one_percent,
            c.refined,
            c.max_steps
        ));
    }
    let f = &s.faithfulness;
    line.push_str(&format!(
        "; deletion AUC {:.3} vs random {:.3} (lower for {:.0}% of examples), insertion AUC {:.3} vs random {:.3}",
        f.mean_deletion_auc,
        f.mean_random_deletion_auc,
        100.0 * f.deletion_beats_random,
        f.mean_insertion_auc,
        f.mean_random_insertion_auc
    ));
    eprintln!("{line}");
    if is_table {
        eprintln!("mean |attribution| per column:");
        for (name, v) in s.top_units.iter().take(10) {
            eprintln!("  {name:<24} {v:.4}");
        }
    }
}

fn print_permutation(spec: &str, p: &PermutationImportance) {
    eprintln!(
        "{spec}: permutation importance over {} rows, {} shuffles per column ({} {:.4} as is; importance = {} when a column is shuffled, 95% interval):",
        p.rows,
        p.repeats,
        p.metric,
        p.score,
        if p.metric == "rmse" { "RMSE gained" } else { "accuracy lost" }
    );
    for c in &p.columns {
        eprintln!(
            "  {:<24} {:+.4}  [{:+.4}, {:+.4}]",
            c.column, c.importance, c.low, c.high
        );
    }
}

fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)
        .map_err(|e| anyhow::anyhow!("{}: cannot create the folder: {e}", dir.display()))
}

/// The few lines `auto` ends with: what the final model looks at.
pub fn print_final(e: &modelsmith::auto::FinalExplanation) {
    let s = &e.summary;
    let f = &s.faithfulness;
    let mut line = format!(
        "what it looks at ({} test examples, Integrated Gradients): deleting the most attributed inputs first beats a random order for {:.0}% of them",
        s.explained,
        100.0 * f.deletion_beats_random
    );
    if let Some(c) = s.completeness {
        line.push_str(&format!(
            ", completeness error {:.2}% on average",
            100.0 * c.mean_relative_error
        ));
    }
    eprintln!("{line}");
    if let Some(p) = &e.permutation {
        let top: Vec<String> = p
            .columns
            .iter()
            .take(5)
            .map(|c| {
                format!(
                    "{} {:+.3} [{:+.3}, {:+.3}]",
                    c.column, c.importance, c.low, c.high
                )
            })
            .collect();
        let what = if p.metric == "rmse" {
            "RMSE gained"
        } else {
            "accuracy lost"
        };
        eprintln!("  permutation importance ({what}): {}", top.join(", "));
    }
    if let Some(dir) = e.maps.first().and_then(|p| p.parent()) {
        eprintln!("  class maps: {} ({} PNGs)", dir.display(), e.maps.len());
    }
}
