//! `modelsmith report`: a study's plots as SVG files plus index.html or README.md.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, ValueEnum};
use modelsmith::report::write::{write_report, Format};
use modelsmith::report::{StudyData, StudyReport};
use modelsmith::store;

use super::print_json;

#[derive(Args)]
pub struct ReportArgs {
    /// Where studies live: sqlite:PATH (opened read-only).
    #[arg(long, default_value = "sqlite:modelsmith.db")]
    storage: String,
    /// The study to report on (see `modelsmith studies list`).
    #[arg(long)]
    study: String,
    /// The folder to write (created if needed).
    #[arg(long)]
    out: PathBuf,
    /// index.html with the images, or a Markdown README.md.
    #[arg(long, value_enum, default_value = "html")]
    format: ReportFormat,
    /// The study's final model (e.g. `auto --out`'s folder): the report ends with what it
    /// looks at, explained on its held-out data, with class maps in OUT/explain/.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Print what was written as one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum ReportFormat {
    Html,
    Md,
}

pub fn run(args: ReportArgs) -> Result<()> {
    let storage = store::open_read_only(&args.storage)?;
    let data = StudyData::load(storage.as_ref(), &args.study)?;
    data.require_trials()?;
    let report = StudyReport::build(&data);
    let format = match args.format {
        ReportFormat::Html => Format::Html,
        ReportFormat::Md => Format::Markdown,
    };
    let looks_at = args
        .model
        .as_deref()
        .map(|model| modelsmith::explain::looks_at(model, &args.out))
        .transpose()?;
    let written = write_report(&report, &args.out, format, looks_at.as_ref())?;
    eprintln!(
        "study '{}': {} trials; wrote {} plots and {}",
        args.study,
        report.overview.trials,
        written.images.len(),
        written.index.display()
    );
    if args.json {
        print_json(&written);
    }
    Ok(())
}
