//! [`scoring_data`]: the rows a trained model is scored or explained on — a file the user names,
//! the test file it was trained with, or its own training source's test part, split again as
//! in training. `evaluate` and `explain` share it.

use crate::data::{load, load_held_out, Dataset, EncodingReport, LoadOptions};
use crate::model::ModelMeta;
use crate::Result;

use super::TrainConfig;

pub struct ScoringData {
    /// The data SPEC the rows came from.
    pub spec: String,
    pub data: Dataset,
    pub encoding: EncodingReport,
}

/// Held-out rows for `meta`'s model: `data` (a SPEC, read whole with the model's preprocessing)
/// or, without one, the model's test file or its training source's test part. `target` names a
/// CSV's target column when it differs from training's.
pub fn scoring_data(
    meta: &ModelMeta,
    data: Option<&str>,
    target: Option<String>,
) -> Result<ScoringData> {
    let training: Option<TrainConfig> = serde_json::from_value(meta.training.clone()).ok();
    let opts = LoadOptions {
        target,
        ..training
            .as_ref()
            .map(TrainConfig::load_options)
            .unwrap_or_default()
    };
    let given = data
        .map(str::to_string)
        .or_else(|| training.as_ref().and_then(|t| t.test_data.clone()));
    Ok(match given {
        Some(spec) => {
            let held = load_held_out(&spec, &meta.data, &opts)?;
            ScoringData {
                spec,
                data: held.data,
                encoding: held.report,
            }
        }
        None => {
            let spec = meta.data.spec.clone();
            let own = LoadOptions {
                target: opts.target.clone().or_else(|| meta.data.target_column()),
                ..opts
            };
            let test = load(&spec, &own)?.test;
            let encoding = EncodingReport {
                examples: test.len(),
                ..EncodingReport::default()
            };
            ScoringData {
                spec,
                data: test,
                encoding,
            }
        }
    })
}
