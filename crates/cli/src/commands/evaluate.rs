use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use modelsmith::model::load_model;
use modelsmith::train::{evaluate, scoring_data, ScoringData, TrainConfig};
use serde::Serialize;

use super::print_json;

#[derive(Args)]
pub struct EvaluateArgs {
    /// A model folder written by `modelsmith train`.
    #[arg(long)]
    model: PathBuf,
    /// Data SPEC to score, whole, with the model's saved preprocessing (a CSV: every row;
    /// digits, fashion-mnist, idx:DIR: their test part). Default: the model's own test data.
    #[arg(long)]
    data: Option<String>,
    /// Target column of a csv: file, if it is not named as in training.
    #[arg(long)]
    target: Option<String>,
    /// Print one JSON object with the results on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct EvaluateReport {
    data: String,
    examples: usize,
    /// `classification` or `regression`.
    task: &'static str,
    test_loss: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    test_accuracy: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    test_rmse: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    test_mae: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    test_r2: Option<f32>,
    /// Per column: values the training never saw (categories outside its vocabulary).
    unseen_categories: BTreeMap<String, usize>,
    /// Per column: non-finite numbers read as missing values.
    non_finite: BTreeMap<String, usize>,
}

pub fn run(args: EvaluateArgs) -> Result<()> {
    let (meta, mut net) = load_model(&args.model)?;
    let training: Option<TrainConfig> = serde_json::from_value(meta.training.clone()).ok();
    let ScoringData {
        spec,
        data,
        encoding,
    } = scoring_data(&meta, args.data.as_deref(), args.target.clone())?;
    let task = &meta.data.task;
    let loss = training
        .as_ref()
        .and_then(|t| t.loss)
        .unwrap_or(task.default_loss());
    let scores = evaluate(&mut net, &data, task, loss);
    let unseen: usize = encoding.unseen_categories.values().sum();
    let mut line = format!(
        "{spec}: {} examples scored, {}, loss {:.4}",
        data.len(),
        super::test_figures(&scores).replacen("  ", ", ", 2),
        scores.loss
    );
    if unseen > 0 {
        let per_column: Vec<String> = encoding
            .unseen_categories
            .iter()
            .map(|(c, n)| format!("{c} {n}"))
            .collect();
        line.push_str(&format!(
            "; {unseen} value(s) unseen in training, encoded as all zeros ({})",
            per_column.join(", ")
        ));
    }
    eprintln!("{line}");
    if args.json {
        print_json(&EvaluateReport {
            data: spec,
            examples: data.len(),
            task: task.kind().name(),
            test_loss: scores.loss,
            test_accuracy: scores.accuracy,
            test_rmse: scores.rmse,
            test_mae: scores.mae,
            test_r2: scores.r2,
            unseen_categories: encoding.unseen_categories,
            non_finite: encoding.non_finite,
        });
    }
    Ok(())
}
