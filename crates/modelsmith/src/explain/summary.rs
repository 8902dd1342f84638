//! [`explain_data`]: explanations of many held-out examples summed up — per class (or target)
//! mean attribution maps, the mean attribution per table column, how complete Integrated
//! Gradients was and how faithful the method is. What the CLI prints, the report and the model
//! card show.

use serde::Serialize;

use super::faithfulness::{self, FaithfulnessSummary};
use super::{Attribution, ExplainOptions, ExplainedOutput, Explainer, Method, Units};
use crate::data::Dataset;
use crate::task::Task;
use crate::Result;

/// Examples explained from a data set when the user names no number.
pub const DEFAULT_LIMIT: usize = 100;

/// The mean explanation of the examples explained for one output.
#[derive(Clone, Debug, Serialize)]
pub struct OutputMap {
    /// The class or target name.
    pub output: String,
    pub examples: usize,
    /// The mean input of those examples (model-input values).
    #[serde(skip)]
    pub mean_input: Vec<f32>,
    /// Mean attribution per unit (pixel or column).
    #[serde(skip)]
    pub mean_attribution: Vec<f32>,
}

/// Integrated Gradients' completeness over many examples.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct CompletenessSummary {
    pub mean_relative_error: f32,
    pub max_relative_error: f32,
    /// Share of examples within 1% of `f(x) - f(baseline)`.
    pub within_one_percent: f32,
    /// Examples integrated with more steps than asked for, and the most steps any took.
    pub refined: usize,
    pub max_steps: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct DataExplanation {
    pub data: String,
    pub method: Method,
    pub baseline: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steps: Option<usize>,
    pub explained: usize,
    pub per_output: Vec<OutputMap>,
    /// Units (columns, or pixels as `row,col`) by mean absolute attribution, largest first; at
    /// most 20.
    pub top_units: Vec<(String, f32)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completeness: Option<CompletenessSummary>,
    pub faithfulness: FaithfulnessSummary,
}

/// Explains the first `limit` examples of `data` — each for its own class (classification), or
/// for `target` when given (regression: the first target by default) — and sums them up.
pub fn explain_data(
    explainer: &mut Explainer,
    spec: &str,
    data: &Dataset,
    options: &ExplainOptions,
    limit: usize,
    target: Option<ExplainedOutput>,
) -> Result<(DataExplanation, Vec<Attribution>)> {
    let n = data.len().min(limit.max(1));
    let len = explainer.input_len();
    let x = &data.x[..n * len];
    let targets: Vec<ExplainedOutput> = match (target, explainer.task()) {
        (Some(t), _) => vec![t; n],
        (None, Task::Classification { .. }) => data.y[..n]
            .iter()
            .map(|&y| ExplainedOutput(y as usize))
            .collect(),
        (None, Task::Regression { .. }) => vec![ExplainedOutput(0); n],
    };
    let baselines = options
        .baseline
        .build(x, &explainer.meta.data.preprocessing, options.seed)?;
    let attributions = explainer.explain_from(x, &baselines, &targets, options)?;
    let scores = faithfulness::score(
        explainer,
        x,
        &baselines,
        &targets,
        &attributions,
        options.seed,
    );
    let units = Units::of(&explainer.meta.data.preprocessing);
    let names = output_names(explainer.task());
    let mut per_output = Vec::new();
    for (o, name) in names.iter().enumerate() {
        let members: Vec<usize> = (0..n).filter(|&i| targets[i].0 == o).collect();
        if members.is_empty() {
            continue;
        }
        let mut mean_input = vec![0f32; len];
        let mut mean_attribution = vec![0f32; units.len()];
        for &i in &members {
            mean_input
                .iter_mut()
                .zip(&x[i * len..(i + 1) * len])
                .for_each(|(m, v)| *m += v / members.len() as f32);
            mean_attribution
                .iter_mut()
                .zip(units.sum(&attributions[i].values))
                .for_each(|(m, v)| *m += v / members.len() as f32);
        }
        per_output.push(OutputMap {
            output: name.clone(),
            examples: members.len(),
            mean_input,
            mean_attribution,
        });
    }
    let mut magnitude = vec![0f32; units.len()];
    for a in &attributions {
        magnitude
            .iter_mut()
            .zip(units.sum(&a.values))
            .for_each(|(m, v)| *m += v.abs() / n as f32);
    }
    let mut top_units: Vec<(String, f32)> = units.names.iter().cloned().zip(magnitude).collect();
    top_units.sort_by(|a, b| b.1.total_cmp(&a.1));
    top_units.truncate(20);
    let completeness = (options.method == Method::IntegratedGradients).then(|| {
        let checks: Vec<_> = attributions.iter().filter_map(|a| a.completeness).collect();
        let errors: Vec<f32> = checks.iter().map(|c| c.relative_error).collect();
        CompletenessSummary {
            mean_relative_error: errors.iter().sum::<f32>() / errors.len().max(1) as f32,
            max_relative_error: errors.iter().copied().fold(0.0, f32::max),
            within_one_percent: errors.iter().filter(|&&e| e <= 0.01).count() as f32
                / errors.len().max(1) as f32,
            refined: checks.iter().filter(|c| c.steps > options.steps).count(),
            max_steps: checks.iter().map(|c| c.steps).max().unwrap_or(0),
        }
    });
    Ok((
        DataExplanation {
            data: spec.to_string(),
            method: options.method,
            baseline: options.baseline.name(),
            steps: (options.method == Method::IntegratedGradients).then_some(options.steps),
            explained: n,
            per_output,
            top_units,
            completeness,
            faithfulness: FaithfulnessSummary::of(&scores),
        },
        attributions,
    ))
}

/// Class names, or target names.
pub fn output_names(task: &Task) -> Vec<String> {
    match task {
        Task::Classification { classes } => classes.clone(),
        Task::Regression { targets } => targets.iter().map(|t| t.name.clone()).collect(),
    }
}
