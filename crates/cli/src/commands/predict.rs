use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use modelsmith::predict::{Answer, Predictor};

use super::{print_json, BadInput};

#[derive(Args)]
pub struct PredictArgs {
    /// A model folder written by `modelsmith train`.
    #[arg(long)]
    model: PathBuf,
    /// Images (PNG/JPEG) or CSV files with one example per row.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// How many classes to show per input (a classifier's).
    #[arg(long, default_value_t = 1)]
    top_k: usize,
    /// Print one JSON array on stdout.
    #[arg(long, conflicts_with = "csv")]
    json: bool,
    /// Print CSV on stdout: `input,class,probability`, or `input` and one column per target
    /// (values in the target's units).
    #[arg(long)]
    csv: bool,
}

pub fn run(args: PredictArgs) -> Result<()> {
    if args.top_k == 0 {
        return Err(BadInput("--top-k must be at least 1".into()).into());
    }
    let mut predictor = Predictor::load(&args.model)?;
    let inputs = predictor.read_inputs(&args.inputs)?;
    let predictions = predictor.predict(&inputs, args.top_k)?;
    if args.json {
        print_json(&predictions);
        return Ok(());
    }
    if args.csv {
        let mut out = csv::Writer::from_writer(std::io::stdout().lock());
        let targets = predictor.meta.data.task.targets();
        let header: Vec<&str> = if targets.is_empty() {
            vec!["input", "class", "probability"]
        } else {
            std::iter::once("input")
                .chain(targets.iter().map(|t| t.name.as_str()))
                .collect()
        };
        out.write_record(&header)?;
        for p in &predictions {
            let mut row = vec![p.input.clone()];
            match &p.answer {
                Answer::Class {
                    class, probability, ..
                } => row.extend([class.clone(), probability.to_string()]),
                Answer::Values { values } => row.extend(values.iter().map(|(_, v)| v.to_string())),
            }
            out.write_record(&row)?;
        }
        out.flush()?;
        return Ok(());
    }
    for p in &predictions {
        let shown: Vec<String> = match &p.answer {
            Answer::Class { top, .. } => top
                .iter()
                .map(|(class, prob)| format!("{class} ({prob:.3})"))
                .collect(),
            Answer::Values { values } => values
                .iter()
                .map(|(name, v)| format!("{name} {v}"))
                .collect(),
        };
        println!("{}\t{}", p.input, shown.join("  "));
    }
    Ok(())
}
