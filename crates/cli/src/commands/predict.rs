use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use modelsmith::predict::Predictor;

use super::{print_json, BadInput};

#[derive(Args)]
pub struct PredictArgs {
    /// A model folder written by `modelsmith train`.
    #[arg(long)]
    model: PathBuf,
    /// Images (PNG/JPEG) or CSV files with one example per row.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// How many classes to show per input.
    #[arg(long, default_value_t = 1)]
    top_k: usize,
    #[arg(long)]
    json: bool,
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
    } else {
        for p in &predictions {
            let top: Vec<String> = p
                .top
                .iter()
                .map(|(class, prob)| format!("{class} ({prob:.3})"))
                .collect();
            println!("{}\t{}", p.input, top.join("  "));
        }
    }
    Ok(())
}
