use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use modelsmith::data::{load, LoadOptions, Preprocessing};
use modelsmith::model::load_model;
use modelsmith::train::evaluate;
use serde::Serialize;

use super::{print_json, BadInput};

#[derive(Args)]
pub struct EvaluateArgs {
    /// A model folder written by `modelsmith train`.
    #[arg(long)]
    model: PathBuf,
    /// Data SPEC (default: the data the model was trained on).
    #[arg(long)]
    data: Option<String>,
    /// Target column for csv: data.
    #[arg(long)]
    target: Option<String>,
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct EvaluateReport {
    data: String,
    examples: usize,
    test_accuracy: f32,
    test_loss: f32,
}

pub fn run(args: EvaluateArgs) -> Result<()> {
    let (meta, mut net) = load_model(&args.model)?;
    let spec = args.data.clone().unwrap_or_else(|| meta.data.spec.clone());
    let data = load(
        &spec,
        &LoadOptions {
            target: args
                .target
                .clone()
                .or_else(|| match &meta.data.preprocessing {
                    Preprocessing::Table { target, .. } => Some(target.clone()),
                    Preprocessing::Image { .. } => None,
                }),
            ..LoadOptions::default()
        },
    )?;
    if data.test.shape != meta.input_shape {
        return Err(BadInput(format!(
            "data '{spec}' has examples of shape {:?} but the model in {} expects {:?}",
            data.test.shape,
            args.model.display(),
            meta.input_shape
        ))
        .into());
    }
    if data.test.num_classes > meta.num_classes {
        return Err(BadInput(format!(
            "data '{spec}' has {} classes but the model predicts {}",
            data.test.num_classes, meta.num_classes
        ))
        .into());
    }
    let (loss, accuracy) = evaluate(&mut net, &data.test);
    let report = EvaluateReport {
        data: spec,
        examples: data.test.len(),
        test_accuracy: accuracy,
        test_loss: loss,
    };
    eprintln!(
        "{}: {} test examples, accuracy {:.2}%, loss {:.4}",
        report.data,
        report.examples,
        accuracy * 100.0,
        loss
    );
    if args.json {
        print_json(&report);
    }
    Ok(())
}
