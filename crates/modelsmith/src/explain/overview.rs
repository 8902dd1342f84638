//! [`overview`]: what a model looks at, in brief — for the places a person meets a finished
//! model (the model card of `modelsmith deploy`, the end of `modelsmith auto`). Images: the
//! class maps of Integrated Gradients over up to [`OVERVIEW_EXAMPLES`] held-out examples with
//! their completeness and faithfulness; tables: permutation importance, plus the per-column
//! Integrated Gradients summary.

use std::path::{Path, PathBuf};

use super::permutation::{PermutationImportance, DEFAULT_REPEATS};
use super::{explain_data, heatmap, Baseline, DataExplanation, ExplainOptions, Explainer, Method};
use crate::data::{Dataset, Preprocessing};
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
