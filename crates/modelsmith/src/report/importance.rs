//! Parameter importance: a random forest of regression trees fitted to (parameters →
//! objective) over the complete trials, then **out-of-bag permutation importance**: for each
//! tree, how much its squared error on the trials it did not see grows when one parameter's
//! values are shuffled among them. A parameter the objective does not depend on can be
//! shuffled for free; one that drives it cannot. Increases are averaged over trees, negative
//! ones (noise) count as 0, and the shares are normalized to sum to 1.
//!
//! Encoding: floats and ints as their value (log-scale parameters as their logarithm),
//! categoricals as their choice index, a conditional parameter that was not drawn as a value
//! below every drawn one (so a tree can split "absent" off).

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::StudyData;

/// Fewer complete trials than this and importance is not computed (it would be noise).
pub const MIN_TRIALS: usize = 5;

pub const METHOD: &str =
    "random forest (64 bagged regression trees), out-of-bag permutation importance";

#[derive(Clone, Debug, Serialize)]
pub struct Importance {
    pub method: &'static str,
    pub trials_used: usize,
    /// Most important first; shares sum to 1 (or are all 0 when nothing matters).
    pub params: Vec<ParamImportance>,
    /// Why the list is empty, when it is.
    pub note: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ParamImportance {
    pub name: String,
    /// Share of the total importance, 0..=1.
    pub importance: f64,
    /// Mean growth of the out-of-bag squared error when this parameter is shuffled.
    pub error_increase: f64,
}

pub fn param_importance(data: &StudyData) -> Importance {
    let complete: Vec<_> = data.complete().collect();
    let empty = |note: String| Importance {
        method: METHOD,
        trials_used: complete.len(),
        params: Vec::new(),
        note: Some(note),
    };
    if complete.len() < MIN_TRIALS {
        return empty(format!(
            "needs at least {MIN_TRIALS} complete trials ({} so far)",
            complete.len()
        ));
    }
    let mut names: Vec<&str> = complete
        .iter()
        .flat_map(|t| t.params.keys().map(String::as_str))
        .collect();
    names.sort_unstable();
    names.dedup();
    // One column per parameter; constant ones cannot explain anything and are left out.
    let mut features: Vec<(&str, Vec<f64>)> = Vec::new();
    for name in names {
        let column: Vec<Option<f64>> = complete
            .iter()
            .map(|t| {
                let p = t.params.get(name)?;
                Some(if p.distribution.is_log() {
                    p.internal.max(f64::MIN_POSITIVE).ln()
                } else {
                    p.internal
                })
            })
            .collect();
        let drawn = column.iter().flatten();
        let lo = drawn.clone().copied().fold(f64::INFINITY, f64::min);
        let hi = drawn.copied().fold(f64::NEG_INFINITY, f64::max);
        let absent = column.iter().any(Option::is_none);
        if lo == hi && !absent {
            continue;
        }
        let missing = if lo.is_finite() {
            lo - 1.0 - (hi - lo)
        } else {
            0.0
        };
        features.push((name, column.iter().map(|v| v.unwrap_or(missing)).collect()));
    }
    if features.is_empty() {
        return empty("no parameter varies across the complete trials".into());
    }
    let x: Vec<Vec<f64>> = (0..complete.len())
        .map(|row| features.iter().map(|(_, col)| col[row]).collect())
        .collect();
    let y: Vec<f64> = complete.iter().filter_map(|t| t.value).collect();
    let increases = permutation_importance(&x, &y, &ForestOptions::default());
    let total: f64 = increases.iter().map(|v| v.max(0.0)).sum();
    let mut params: Vec<ParamImportance> = features
        .iter()
        .zip(&increases)
        .map(|((name, _), &inc)| ParamImportance {
            name: name.to_string(),
            importance: if total > 0.0 {
                inc.max(0.0) / total
            } else {
                0.0
            },
            error_increase: inc,
        })
        .collect();
    params.sort_by(|a, b| {
        b.importance
            .total_cmp(&a.importance)
            .then(b.error_increase.total_cmp(&a.error_increase))
    });
    let note = (total <= 0.0).then(|| {
        format!(
            "no parameter measurably changes the value across these {} trials (shuffling none raises the forest's error); more trials may show one",
            complete.len()
        )
    });
    Importance {
        method: METHOD,
        trials_used: complete.len(),
        params,
        note,
    }
}

#[derive(Clone, Debug)]
pub struct ForestOptions {
    pub trees: usize,
    pub max_depth: usize,
    /// A split leaves at least this many samples on each side.
    pub min_leaf: usize,
    /// Shuffles per tree and feature (averaged: less noise from one unlucky permutation).
    pub repeats: usize,
    pub seed: u64,
}

impl Default for ForestOptions {
    fn default() -> Self {
        ForestOptions {
            trees: 64,
            max_depth: 8,
            min_leaf: 2,
            repeats: 3,
            seed: 0,
        }
    }
}

enum Node {
    Leaf(f64),
    Split {
        feature: usize,
        threshold: f64,
        left: usize,
        right: usize,
    },
}

/// One regression tree, nodes in a flat list (index 0 is the root).
struct Tree {
    nodes: Vec<Node>,
}

impl Tree {
    fn predict(&self, row: &[f64]) -> f64 {
        let mut at = 0;
        loop {
            match self.nodes[at] {
                Node::Leaf(v) => return v,
                Node::Split {
                    feature,
                    threshold,
                    left,
                    right,
                } => {
                    at = if row[feature] <= threshold {
                        left
                    } else {
                        right
                    }
                }
            }
        }
    }
}

/// A fitted forest, each tree with the rows it did not see (its out-of-bag rows).
pub struct Forest {
    trees: Vec<(Tree, Vec<usize>)>,
}

impl Forest {
    /// Fits `options.trees` trees, each on a bootstrap sample of the rows of `x` (`[rows][features]`).
    pub fn fit(x: &[Vec<f64>], y: &[f64], options: &ForestOptions) -> Forest {
        let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
        let n = y.len();
        let trees = (0..options.trees)
            .map(|_| {
                let sample: Vec<usize> = (0..n).map(|_| rng.gen_range(0..n)).collect();
                let mut seen = vec![false; n];
                for &i in &sample {
                    seen[i] = true;
                }
                let oob = (0..n).filter(|&i| !seen[i]).collect();
                let mut tree = Tree { nodes: Vec::new() };
                grow(&mut tree, x, y, sample, 0, options);
                (tree, oob)
            })
            .collect();
        Forest { trees }
    }

    pub fn predict(&self, row: &[f64]) -> f64 {
        let sum: f64 = self.trees.iter().map(|(t, _)| t.predict(row)).sum();
        sum / self.trees.len().max(1) as f64
    }
}

/// Mean growth of each tree's out-of-bag squared error when one feature is shuffled among the
/// out-of-bag rows, per feature (see the module doc).
pub fn permutation_importance(x: &[Vec<f64>], y: &[f64], options: &ForestOptions) -> Vec<f64> {
    let features = x.first().map_or(0, Vec::len);
    let forest = Forest::fit(x, y, options);
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed ^ 0x5eed);
    let mut sums = vec![0.0; features];
    let mut used = 0usize;
    for (tree, oob) in &forest.trees {
        if oob.len() < 2 {
            continue;
        }
        used += 1;
        let mse = |rows: &mut dyn Iterator<Item = (usize, Vec<f64>)>| {
            let (mut sum, mut n) = (0.0, 0.0);
            for (i, row) in rows {
                sum += (tree.predict(&row) - y[i]).powi(2);
                n += 1.0;
            }
            sum / n
        };
        let base = mse(&mut oob.iter().map(|&i| (i, x[i].clone())));
        for (f, total) in sums.iter_mut().enumerate() {
            let mut grown = 0.0;
            for _ in 0..options.repeats {
                let mut shuffled: Vec<f64> = oob.iter().map(|&i| x[i][f]).collect();
                shuffled.shuffle(&mut rng);
                let permuted = oob.iter().zip(&shuffled).map(|(&i, &v)| {
                    let mut row = x[i].clone();
                    row[f] = v;
                    (i, row)
                });
                grown += mse(&mut permuted.into_iter()) - base;
            }
            *total += grown / options.repeats as f64;
        }
    }
    sums.iter().map(|s| s / used.max(1) as f64).collect()
}

/// Grows the subtree for `rows` and returns its node index: the split that most reduces the
/// squared error, until `max_depth`, `min_leaf` or no split helps.
fn grow(
    tree: &mut Tree,
    x: &[Vec<f64>],
    y: &[f64],
    rows: Vec<usize>,
    depth: usize,
    options: &ForestOptions,
) -> usize {
    let mean = rows.iter().map(|&i| y[i]).sum::<f64>() / rows.len() as f64;
    let at = tree.nodes.len();
    tree.nodes.push(Node::Leaf(mean));
    if depth >= options.max_depth || rows.len() < 2 * options.min_leaf {
        return at;
    }
    let Some((feature, threshold)) = best_split(x, y, &rows, options.min_leaf) else {
        return at;
    };
    let (left_rows, right_rows): (Vec<usize>, Vec<usize>) =
        rows.iter().partition(|&&i| x[i][feature] <= threshold);
    let left = grow(tree, x, y, left_rows, depth + 1, options);
    let right = grow(tree, x, y, right_rows, depth + 1, options);
    tree.nodes[at] = Node::Split {
        feature,
        threshold,
        left,
        right,
    };
    at
}

/// The `(feature, threshold)` with the lowest summed squared error of the two sides, if any
/// split lowers it.
// `f` is a column of every row, not an index into `x` itself.
#[allow(clippy::needless_range_loop)]
fn best_split(x: &[Vec<f64>], y: &[f64], rows: &[usize], min_leaf: usize) -> Option<(usize, f64)> {
    let n = rows.len() as f64;
    let (sum, sum_sq) = rows
        .iter()
        .fold((0.0, 0.0), |(s, q), &i| (s + y[i], q + y[i] * y[i]));
    let parent_sse = sum_sq - sum * sum / n;
    let mut best: Option<(f64, usize, f64)> = None;
    let mut order = rows.to_vec();
    let features = x[rows[0]].len();
    for f in 0..features {
        order.sort_by(|&a, &b| x[a][f].total_cmp(&x[b][f]));
        let (mut left_sum, mut left_sq) = (0.0, 0.0);
        for k in 1..order.len() {
            let prev = order[k - 1];
            left_sum += y[prev];
            left_sq += y[prev] * y[prev];
            let (lo, hi) = (x[prev][f], x[order[k]][f]);
            if lo == hi || k < min_leaf || order.len() - k < min_leaf {
                continue;
            }
            let (nl, nr) = (k as f64, n - k as f64);
            let right_sum = sum - left_sum;
            let sse = (left_sq - left_sum * left_sum / nl)
                + ((sum_sq - left_sq) - right_sum * right_sum / nr);
            if best.is_none_or(|(b, _, _)| sse < b) {
                best = Some((sse, f, (lo + hi) / 2.0));
            }
        }
    }
    best.filter(|&(sse, _, _)| sse < parent_sse - 1e-12 * parent_sse.abs().max(1e-300))
        .map(|(_, f, t)| (f, t))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::testing::{study, trial, with_param};
    use crate::search::{Direction, Distribution, TrialState};

    /// 60 trials: the objective is a smooth function of `lr` (log scale) plus a small
    /// contribution of `opt`; `noise` is drawn independently and never used.
    fn synthetic_study() -> StudyData {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let opt = Distribution::categorical(vec!["sgd".into(), "adam".into(), "rmsprop".into()]);
        let trials = (0..60)
            .map(|n| {
                let lr: f64 = 10f64.powf(rng.gen_range(-4.0..-1.0));
                let noise: f64 = rng.gen_range(0.0..1.0);
                let choice = rng.gen_range(0..3) as f64;
                let value = 0.9 - 0.05 * (lr.log10() + 2.5).powi(2) + 0.01 * choice;
                let t = trial(n, TrialState::Complete, Some(value));
                let t = with_param(t, "lr", Distribution::float_log(1e-4, 1e-1), lr);
                let t = with_param(t, "noise", Distribution::float(0.0, 1.0), noise);
                with_param(t, "opt", opt.clone(), choice)
            })
            .collect();
        study(Direction::Maximize, trials)
    }

    #[test]
    fn the_driving_parameter_ranks_first_and_noise_last() {
        let imp = param_importance(&synthetic_study());
        let names: Vec<&str> = imp.params.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["lr", "opt", "noise"], "{imp:?}");
        let total: f64 = imp.params.iter().map(|p| p.importance).sum();
        assert!((total - 1.0).abs() < 1e-9, "shares sum to {total}");
        assert!(imp.params[0].importance > 0.7, "{imp:?}");
        assert!(imp.params[2].importance < 0.05, "{imp:?}");
        assert_eq!(imp.trials_used, 60);
    }

    #[test]
    fn importance_is_deterministic() {
        let a = param_importance(&synthetic_study());
        let b = param_importance(&synthetic_study());
        let shares = |i: &Importance| i.params.iter().map(|p| p.importance).collect::<Vec<_>>();
        assert_eq!(shares(&a), shares(&b));
    }

    #[test]
    fn few_trials_or_constant_parameters_say_why_there_is_nothing() {
        let few = study(
            Direction::Minimize,
            (0..3)
                .map(|n| trial(n, TrialState::Complete, Some(n as f64)))
                .collect(),
        );
        let imp = param_importance(&few);
        assert!(imp.params.is_empty());
        assert!(imp.note.unwrap().contains("at least 5"));
        let constant = study(
            Direction::Minimize,
            (0..8)
                .map(|n| {
                    let t = trial(n, TrialState::Complete, Some(n as f64));
                    with_param(t, "x", Distribution::float(0.0, 1.0), 0.5)
                })
                .collect(),
        );
        assert!(param_importance(&constant)
            .note
            .unwrap()
            .contains("no parameter varies"));
    }

    #[test]
    fn a_forest_fits_a_step_function() {
        let x: Vec<Vec<f64>> = (0..40).map(|i| vec![i as f64]).collect();
        let y: Vec<f64> = (0..40).map(|i| if i < 20 { 0.0 } else { 1.0 }).collect();
        let forest = Forest::fit(&x, &y, &ForestOptions::default());
        assert!(forest.predict(&[2.0]) < 0.1);
        assert!(forest.predict(&[37.0]) > 0.9);
    }
}
