use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use modelsmith::deploy::{export, ExportFormat};

use super::print_json;

#[derive(Args)]
pub struct ExportArgs {
    /// A model folder written by `modelsmith train`.
    #[arg(long)]
    model: PathBuf,
    /// `onnx` (opset 13; input `input` = the preprocessed NHWC tensor, output `probabilities`,
    /// preprocessing in the metadata) or `safetensors` (the weights under their engine names).
    #[arg(long, value_parser = ["onnx", "safetensors"])]
    format: String,
    /// The file to write.
    #[arg(long)]
    out: PathBuf,
    /// Print what was written as one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

pub fn run(args: ExportArgs) -> Result<()> {
    let format: ExportFormat = args.format.parse()?;
    let summary = export(&args.model, format, &args.out)?;
    if args.json {
        print_json(&summary);
    } else {
        eprintln!(
            "wrote {} ({}, {} bytes, {} tensors{})",
            summary.path,
            summary.format,
            summary.bytes,
            summary.tensors,
            summary
                .nodes
                .map(|n| format!(", {n} nodes"))
                .unwrap_or_default()
        );
    }
    Ok(())
}
