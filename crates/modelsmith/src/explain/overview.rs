//! [`overview`]: what a model looks at, in brief — for the places a person meets a finished
//! model (the model card of `modelsmith deploy`, the end of `modelsmith auto`). Images: the
//! class maps of Integrated Gradients over up to [`OVERVIEW_EXAMPLES`] held-out examples with
//! their completeness and faithfulness; tables: permutation importance, plus the per-column
//! Integrated Gradients summary.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::permutation::{PermutationImportance, DEFAULT_REPEATS};
use super::{explain_data, heatmap, Baseline, DataExplanation, ExplainOptions, Explainer, Method};
use crate::data::{Dataset, Preprocessing};
use crate::task::significant;
use crate::Result;

/// Held-out examples an overview explains.
pub const OVERVIEW_EXAMPLES: usize = 100;

pub struct Overview {
    pub summary: DataExplanation,
    /// Tables only.
    pub permutation: Option<PermutationImportance>,
}

/// Explains up to [`OVERVIEW_EXAMPLES`] examples of `data` (held-out rows named by `spec`)
/// with Integrated Gradients and, for a table, measures permutation importance on all of them.
pub fn overview(explainer: &mut Explainer, spec: &str, data: &Dataset) -> Result<Overview> {
    let preprocessing = explainer.meta.data.preprocessing.clone();
    let options = ExplainOptions::new(
        Method::IntegratedGradients,
        Baseline::default_for(&preprocessing),
    );
    let permutation = match preprocessing {
        Preprocessing::Table { .. } if data.len() >= 2 => {
            Some(explainer.permutation_importance(data, DEFAULT_REPEATS, 0)?)
        }
        _ => None,
    };
    let (summary, _) = explain_data(explainer, spec, data, &options, OVERVIEW_EXAMPLES, None)?;
    Ok(Overview {
        summary,
        permutation,
    })
}

/// What the model in `model_dir` looks at, on its own held-out data
/// ([`crate::train::scoring_data`]), for a document in `doc_dir`: class maps are written to
/// `doc_dir/explain/` and named relative to `doc_dir`. The model card and `modelsmith report
/// --model` both show this.
pub fn looks_at(model_dir: &Path, doc_dir: &Path) -> Result<LooksAt> {
    let mut explainer = Explainer::load(model_dir)?;
    let scoring = crate::train::scoring_data(&explainer.meta, None, None)?;
    let overview = overview(&mut explainer, &scoring.spec, &scoring.data)?;
    let maps = write_class_maps(
        &overview.summary,
        &explainer.meta.data.preprocessing,
        &doc_dir.join("explain"),
    )?
    .iter()
    .filter_map(|p| p.strip_prefix(doc_dir).ok())
    .map(|p| p.display().to_string())
    .collect();
    Ok(LooksAt { overview, maps })
}

/// Writes an image model's class maps as `DIR/<method>-<class>.png`; returns the files
/// written (none for a table model).
pub fn write_class_maps(
    summary: &DataExplanation,
    preprocessing: &Preprocessing,
    dir: &Path,
) -> Result<Vec<PathBuf>> {
    let Preprocessing::Image {
        height,
        width,
        channels,
        scale,
    } = *preprocessing
    else {
        return Ok(Vec::new());
    };
    std::fs::create_dir_all(dir).map_err(|e| crate::Error::io(dir, e))?;
    let mut written = Vec::new();
    for map in &summary.per_output {
        let img = heatmap::overlay(
            &map.mean_input,
            &map.mean_attribution,
            height,
            width,
            channels,
            scale,
        );
        let path = dir.join(format!(
            "{}-{}.png",
            summary.method.name(),
            file_safe(&map.output)
        ));
        heatmap::save(&img, &path)?;
        written.push(path);
    }
    Ok(written)
}

/// A class name as part of a file name.
pub fn file_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// An overview and its class maps, as paths relative to the document that shows them (the
/// model card, a study report).
pub struct LooksAt {
    pub overview: Overview,
    pub maps: Vec<String>,
}

/// A table of the overview: a table model's permutation importance, or its mean |IG| per
/// column when there are no class maps to show.
pub struct LooksAtTable {
    pub header: [&'static str; 3],
    pub rows: Vec<[String; 3]>,
}

impl LooksAt {
    /// The permutation importance paragraph and table (table models).
    pub fn permutation(&self) -> Option<(String, LooksAtTable)> {
        let p = self.overview.permutation.as_ref()?;
        let what = if p.metric == "rmse" {
            "RMSE gained (target units)"
        } else {
            "accuracy lost"
        };
        let text = format!(
            "Permutation importance on {} held-out rows of `{}`: the {what} when a column's \
             values are shuffled among the rows ({} shuffles, each on a bootstrap resample; 95% \
             interval). A column whose interval holds 0 is one the model does not measurably use.",
            p.rows, self.overview.summary.data, p.repeats
        );
        let rows = p
            .columns
            .iter()
            .take(10)
            .map(|c| {
                [
                    c.column.clone(),
                    significant(c.importance),
                    format!("{} to {}", significant(c.low), significant(c.high)),
                ]
            })
            .collect();
        Some((
            text,
            LooksAtTable {
                header: ["column", "importance", "95% interval"],
                rows,
            },
        ))
    }

    /// The Integrated Gradients sentence: completeness and faithfulness.
    pub fn integrated_gradients(&self) -> String {
        let s = &self.overview.summary;
        let f = &s.faithfulness;
        let mut text = format!(
            "Integrated Gradients ({} baseline, {} steps) on {} held-out examples of `{}`",
            s.baseline,
            s.steps.unwrap_or(0),
            s.explained,
            s.data
        );
        if let Some(c) = s.completeness {
            let _ = write!(
                text,
                ": attributions sum to `f(x) - f(baseline)` within {:.2}% on average ({:.0}% of \
                 examples within 1%)",
                100.0 * c.mean_relative_error,
                100.0 * c.within_one_percent
            );
        }
        let _ = write!(
            text,
            ". Deleting the most attributed inputs first lowers the explained output faster than \
             a random order for {:.0}% of them (deletion area {} against {}).",
            100.0 * f.deletion_beats_random,
            significant(f.mean_deletion_auc),
            significant(f.mean_random_deletion_auc)
        );
        text
    }

    /// The class maps with their class names (image models).
    pub fn class_maps(&self) -> Vec<(&str, &str)> {
        self.maps
            .iter()
            .zip(&self.overview.summary.per_output)
            .map(|(m, o)| (o.output.as_str(), m.as_str()))
            .collect()
    }

    /// Mean |IG| per column, for a table model.
    pub fn column_attributions(&self) -> Option<LooksAtTable> {
        if !self.maps.is_empty() || self.overview.permutation.is_none() {
            return None;
        }
        let rows = self
            .overview
            .summary
            .top_units
            .iter()
            .take(10)
            .map(|(name, v)| [name.clone(), significant(*v), String::new()])
            .collect();
        Some(LooksAtTable {
            header: ["column", "mean |attribution|", ""],
            rows,
        })
    }
}

/// What the class maps are, in one line.
pub const CLASS_MAPS_CAPTION: &str =
    "Each class's mean attribution over its mean image (red: evidence for the class, blue: against):";

/// The overview as Markdown (no heading): what the model card and a Markdown report show.
pub fn looks_at_markdown(found: &LooksAt) -> String {
    let mut out = String::new();
    let table = |out: &mut String, t: &LooksAtTable| {
        let cols: Vec<&str> = t.header.iter().copied().filter(|h| !h.is_empty()).collect();
        let cell = |c: &str| c.replace('|', "\\|");
        let _ = writeln!(
            out,
            "| {} |",
            cols.iter().map(|c| cell(c)).collect::<Vec<_>>().join(" | ")
        );
        let _ = writeln!(out, "|{}", "---|".repeat(cols.len()));
        for r in &t.rows {
            let _ = writeln!(
                out,
                "| {} |",
                r[..cols.len()]
                    .iter()
                    .map(|c| cell(c))
                    .collect::<Vec<_>>()
                    .join(" | ")
            );
        }
        out.push('\n');
    };
    if let Some((text, t)) = found.permutation() {
        let _ = writeln!(out, "{text}\n");
        table(&mut out, &t);
    }
    let _ = writeln!(out, "{}\n", found.integrated_gradients());
    let maps = found.class_maps();
    if !maps.is_empty() {
        let _ = writeln!(out, "{CLASS_MAPS_CAPTION}\n");
        for (class, path) in maps {
            let _ = writeln!(out, "![{class}]({path})");
        }
        out.push('\n');
    } else if let Some(t) = found.column_attributions() {
        table(&mut out, &t);
    }
    out
}
