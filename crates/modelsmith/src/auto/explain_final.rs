//! What the final model looks at, as `auto`'s report ends: an explanation overview of the test
//! data (class maps written to `OUT/explain/`, or a table's permutation importance).

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::data::Dataset;
use crate::explain::permutation::PermutationImportance;
use crate::explain::{overview, write_class_maps, DataExplanation, Explainer};
use crate::Result;

#[derive(Clone, Debug, Serialize)]
pub struct FinalExplanation {
    pub summary: DataExplanation,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permutation: Option<PermutationImportance>,
    /// Class maps (image models).
    pub maps: Vec<PathBuf>,
}

/// Explains the saved model in `out` on `test`.
pub(super) fn explain_final(out: &Path, test: &Dataset) -> Result<FinalExplanation> {
    let mut explainer = Explainer::load(out)?;
    let found = overview(&mut explainer, "the test split", test)?;
    let maps = write_class_maps(
        &found.summary,
        &explainer.meta.data.preprocessing,
        &out.join("explain"),
    )?;
    Ok(FinalExplanation {
        summary: found.summary,
        permutation: found.permutation,
        maps,
    })
}
