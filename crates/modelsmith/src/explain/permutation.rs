//! Permutation importance: how much a table model's score on held-out rows worsens when one
//! column's values are shuffled among the rows, with a 95% confidence interval.
//!
//! Each repeat scores a bootstrap resample of the rows as they are and with the column
//! shuffled, so the repeats spread as the importance would over other samples of held-out rows
//! and other shuffles; their standard deviation is the importance's standard error, and the
//! interval is the mean ± Student's t (repeats - 1 degrees of freedom) times it. An interval
//! of the mean over shuffles of one fixed set of rows (sd/√repeats) would shrink to nothing as
//! repeats grow and put columns the model barely uses confidently away from 0.

use modelsmith_engine::rng::SplitMix64;
use serde::Serialize;

use super::{Explainer, Units};
use crate::data::{Dataset, Preprocessing};
use crate::train::evaluate;
use crate::{Error, Result};

/// Shuffles per column when the user names no number.
pub const DEFAULT_REPEATS: usize = 10;

#[derive(Clone, Debug, Serialize)]
pub struct ColumnImportance {
    pub column: String,
    /// Mean worsening of the score: accuracy lost, or RMSE gained (in the target's units).
    pub importance: f32,
    pub std: f32,
    /// The 95% confidence interval (see the module docs).
    pub low: f32,
    pub high: f32,
}

#[derive(Clone, Debug, Serialize)]
pub struct PermutationImportance {
    /// `accuracy` or `rmse`.
    pub metric: &'static str,
    /// The score on the rows as they are.
    pub score: f32,
    pub rows: usize,
    pub repeats: usize,
    /// Most important first.
    pub columns: Vec<ColumnImportance>,
}

/// `rows` of `data` (repeats allowed) into `out`.
fn resample(data: &Dataset, rows: &[usize], out: &mut Dataset) {
    let (len, k) = (data.example_len(), data.values_per_example());
    out.x.clear();
    out.y.clear();
    out.values.clear();
    for &r in rows {
        out.x.extend_from_slice(&data.x[r * len..(r + 1) * len]);
        out.y.push(data.y[r]);
        if k > 0 {
            out.values
                .extend_from_slice(&data.values[r * k..(r + 1) * k]);
        }
    }
}

/// Two-sided 97.5% quantiles of Student's t for 1..=30 degrees of freedom.
const T975: [f32; 30] = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
    2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
    2.052, 2.048, 2.045, 2.042,
];

fn t_quantile(df: usize) -> f32 {
    match df {
        0 => f32::INFINITY,
        d if d <= 30 => T975[d - 1],
        _ => 1.96,
    }
}

impl Explainer {
    /// The model's score on `data` as training reports it: accuracy, or the RMSE in target
    /// units (averaged over targets).
    fn score(&mut self, data: &Dataset) -> f32 {
        let task = self.task().clone();
        let scores = evaluate(self.network_mut(), data, &task, task.default_loss());
        scores.accuracy.or(scores.rmse).unwrap_or(f32::NAN)
    }

    /// Permutation importance of every column of a table model on `data` (held-out rows).
    pub fn permutation_importance(
        &mut self,
        data: &Dataset,
        repeats: usize,
        seed: u64,
    ) -> Result<PermutationImportance> {
        if !matches!(self.meta.data.preprocessing, Preprocessing::Table { .. }) {
            return Err(Error::Config(
                "permutation importance is for table models; explain an image model with ig, \
                 saliency, occlusion or gradcam"
                    .into(),
            ));
        }
        if data.len() < 2 {
            return Err(Error::Config(format!(
                "permutation importance needs at least 2 rows to shuffle, the data has {}",
                data.len()
            )));
        }
        if repeats < 2 {
            return Err(Error::Config(
                "permutation importance needs at least 2 repeats for an interval (--repeats)"
                    .into(),
            ));
        }
        let len = self.input_len();
        let units = Units::of(&self.meta.data.preprocessing);
        let base = self.score(data);
        let regression = self.task().is_regression();
        let mut columns = Vec::with_capacity(units.len());
        let (mut sample, mut shuffled) = (data.clone(), data.clone());
        for (c, (name, group)) in units.names.iter().zip(&units.groups).enumerate() {
            let mut drops = Vec::with_capacity(repeats);
            for r in 0..repeats {
                let mut rng = SplitMix64::new(seed ^ ((c * 1_000_003 + r) as u64 + 1));
                let rows: Vec<usize> = (0..data.len())
                    .map(|_| (rng.next_u64() % data.len() as u64) as usize)
                    .collect();
                resample(data, &rows, &mut sample);
                let as_is = self.score(&sample);
                shuffled.clone_from(&sample);
                let mut order: Vec<usize> = (0..rows.len()).collect();
                for k in (1..order.len()).rev() {
                    order.swap(k, (rng.next_u64() % (k as u64 + 1)) as usize);
                }
                for (row, &from) in order.iter().enumerate() {
                    for &j in group {
                        shuffled.x[row * len + j] = sample.x[from * len + j];
                    }
                }
                let s = self.score(&shuffled);
                drops.push(if regression { s - as_is } else { as_is - s });
            }
            let n = drops.len() as f32;
            let mean = drops.iter().sum::<f32>() / n;
            let var = drops.iter().map(|d| (d - mean).powi(2)).sum::<f32>() / (n - 1.0);
            let half = t_quantile(drops.len() - 1) * var.sqrt();
            columns.push(ColumnImportance {
                column: name.clone(),
                importance: mean,
                std: var.sqrt(),
                low: mean - half,
                high: mean + half,
            });
        }
        columns.sort_by(|a, b| b.importance.total_cmp(&a.importance));
        Ok(PermutationImportance {
            metric: if regression { "rmse" } else { "accuracy" },
            score: base,
            rows: data.len(),
            repeats,
            columns,
        })
    }
}
