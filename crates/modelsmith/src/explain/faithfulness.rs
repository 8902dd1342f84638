//! Faithfulness: does an explanation point at what the model uses? Deleting units (pixels,
//! columns) from the input in the order of their attribution, most positive first, must lower
//! the explained output faster than deleting them in a random order (a lower area under the
//! deletion curve); inserting them into the baseline in that order must raise it faster (a
//! higher area under the insertion curve).

use modelsmith_engine::rng::SplitMix64;
use serde::Serialize;

use super::{Attribution, ExplainedOutput, Explainer, Units};

/// Points on each curve after the start: 5% of the units per point.
pub const CURVE_STEPS: usize = 20;

/// One explanation's deletion and insertion areas (the mean of the explained output over the
/// curve's points, trapezoid rule), beside the same for a random order.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Faithfulness {
    pub deletion_auc: f32,
    pub random_deletion_auc: f32,
    pub insertion_auc: f32,
    pub random_insertion_auc: f32,
}

/// [`Faithfulness`] over many explanations.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct FaithfulnessSummary {
    pub explanations: usize,
    pub mean_deletion_auc: f32,
    pub mean_random_deletion_auc: f32,
    pub mean_insertion_auc: f32,
    pub mean_random_insertion_auc: f32,
    /// Share of explanations whose deletion area is below the random order's.
    pub deletion_beats_random: f32,
    /// Share of explanations whose insertion area is above the random order's.
    pub insertion_beats_random: f32,
}

impl FaithfulnessSummary {
    pub fn of(scores: &[Faithfulness]) -> FaithfulnessSummary {
        let n = scores.len().max(1) as f32;
        let mean = |f: fn(&Faithfulness) -> f32| scores.iter().map(f).sum::<f32>() / n;
        let share =
            |f: fn(&Faithfulness) -> bool| scores.iter().filter(|s| f(s)).count() as f32 / n;
        FaithfulnessSummary {
            explanations: scores.len(),
            mean_deletion_auc: mean(|s| s.deletion_auc),
            mean_random_deletion_auc: mean(|s| s.random_deletion_auc),
            mean_insertion_auc: mean(|s| s.insertion_auc),
            mean_random_insertion_auc: mean(|s| s.random_insertion_auc),
            deletion_beats_random: share(|s| s.deletion_auc < s.random_deletion_auc),
            insertion_beats_random: share(|s| s.insertion_auc > s.random_insertion_auc),
        }
    }
}

/// Scores each input's explanation (`attributions[i]`) by deletion and insertion, against a
/// random order drawn from `seed` and the input's number.
pub fn score(
    explainer: &mut Explainer,
    x: &[f32],
    baselines: &[f32],
    targets: &[ExplainedOutput],
    attributions: &[Attribution],
    seed: u64,
) -> Vec<Faithfulness> {
    let len = explainer.input_len();
    let units = Units::of(&explainer.meta.data.preprocessing);
    let points = CURVE_STEPS + 1;
    let (mut rows, mut row_targets, mut values) = (Vec::new(), Vec::new(), Vec::new());
    let mut out = Vec::with_capacity(targets.len());
    for (i, (((xi, bi), t), attr)) in x
        .chunks_exact(len)
        .zip(baselines.chunks_exact(len))
        .zip(targets)
        .zip(attributions)
        .enumerate()
    {
        let scores = units.sum(&attr.values);
        let mut ranked: Vec<usize> = (0..units.len()).collect();
        ranked.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
        let mut random: Vec<usize> = (0..units.len()).collect();
        let mut rng = SplitMix64::new(seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        for k in (1..random.len()).rev() {
            random.swap(k, (rng.next_u64() % (k as u64 + 1)) as usize);
        }
        rows.clear();
        row_targets.clear();
        // Four curves: deletion and insertion, each by attribution and at random.
        for order in [&ranked, &random] {
            for (from, to) in [(xi, bi), (bi, xi)] {
                for p in 0..points {
                    let start = rows.len();
                    rows.extend_from_slice(from);
                    let moved = units.len() * p / CURVE_STEPS;
                    for &u in &order[..moved] {
                        for &j in &units.groups[u] {
                            rows[start + j] = to[j];
                        }
                    }
                    row_targets.push(*t);
                }
            }
        }
        explainer.values(&rows, &row_targets, &mut values);
        let auc = |curve: &[f32]| {
            let inner: f32 = curve[1..curve.len() - 1].iter().sum();
            (inner + (curve[0] + curve[curve.len() - 1]) / 2.0) / (curve.len() - 1) as f32
        };
        let c: Vec<f32> = values.chunks_exact(points).map(auc).collect();
        out.push(Faithfulness {
            deletion_auc: c[0],
            insertion_auc: c[1],
            random_deletion_auc: c[2],
            random_insertion_auc: c[3],
        });
    }
    out
}
