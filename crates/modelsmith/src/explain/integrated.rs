//! Integrated Gradients: the gradient averaged along the straight path from a baseline to the
//! input, by Gauss-Legendre quadrature, times the input's distance from the baseline.

use super::{Attribution, Completeness, ExplainedOutput, Explainer};
use crate::Result;

/// Path steps when the user names none (as Captum's default).
pub const DEFAULT_STEPS: usize = 50;

/// Completeness error (relative to `|f(x) - f(baseline)|`) above which an input's path is
/// integrated again with twice the steps.
pub const DEFAULT_TOLERANCE: f32 = 0.01;

/// Most steps refinement goes to by default: a few inputs in a thousand need thousands of
/// steps to meet 1% (a misclassified digit explained for its true class, whose small
/// `f(x) - f(baseline)` is the difference of large positive and negative attributions).
pub const DEFAULT_MAX_STEPS: usize = 6400;

/// Rows (inputs × steps) built and pushed through the engine per group of inputs.
const ROWS_PER_GROUP: usize = 2048;

/// Gauss-Legendre nodes and weights on `[0, 1]`, nodes ascending, weights summing to 1: `n`
/// nodes integrate polynomials of degree `2n - 1` exactly.
pub fn gauss_legendre(n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut nodes = vec![0f64; n];
    let mut weights = vec![0f64; n];
    for i in 0..n.div_ceil(2) {
        // Newton's method on P_n from the classic first guess for the i-th root.
        let mut z = (std::f64::consts::PI * (i as f64 + 0.75) / (n as f64 + 0.5)).cos();
        let mut dp = 1.0;
        for _ in 0..100 {
            let (mut p0, mut p1) = (1.0f64, 0.0f64);
            for j in 0..n {
                let p2 = p1;
                p1 = p0;
                p0 = ((2 * j + 1) as f64 * z * p1 - j as f64 * p2) / (j + 1) as f64;
            }
            dp = n as f64 * (z * p0 - p1) / (z * z - 1.0);
            let step = p0 / dp;
            z -= step;
            if step.abs() < 1e-15 {
                break;
            }
        }
        let w = 2.0 / ((1.0 - z * z) * dp * dp);
        // Map [-1, 1] to [0, 1]: x = (1 ± z) / 2, weight halved.
        nodes[i] = (1.0 - z) / 2.0;
        nodes[n - 1 - i] = (1.0 + z) / 2.0;
        weights[i] = w / 2.0;
        weights[n - 1 - i] = w / 2.0;
    }
    (nodes, weights)
}

impl Explainer {
    /// Integrated Gradients with `steps` nodes; with a `tolerance`, each input whose
    /// completeness error exceeds it is integrated again with twice the steps while they stay
    /// within `max_steps`. A ReLU network's gradient jumps along the path where units switch
    /// on, and a few inputs need a finer grid than the rest to meet the same bound.
    pub(super) fn integrated_gradients_refined(
        &mut self,
        x: &[f32],
        baselines: &[f32],
        targets: &[ExplainedOutput],
        steps: usize,
        tolerance: Option<f32>,
        max_steps: usize,
    ) -> Result<Vec<Attribution>> {
        let len = self.input_len();
        let mut out = self.integrated_gradients(x, baselines, targets, steps)?;
        let Some(tolerance) = tolerance else {
            return Ok(out);
        };
        let mut steps = steps;
        loop {
            let coarse: Vec<usize> = (0..out.len())
                .filter(|&i| {
                    out[i]
                        .completeness
                        .is_some_and(|c| c.relative_error > tolerance)
                })
                .collect();
            if coarse.is_empty() || steps * 2 > max_steps {
                break;
            }
            steps *= 2;
            let pick = |v: &[f32]| -> Vec<f32> {
                coarse
                    .iter()
                    .flat_map(|&i| v[i * len..(i + 1) * len].iter().copied())
                    .collect()
            };
            let (xs, bs) = (pick(x), pick(baselines));
            let ts: Vec<ExplainedOutput> = coarse.iter().map(|&i| targets[i]).collect();
            let finer = self.integrated_gradients(&xs, &bs, &ts, steps)?;
            for (i, a) in coarse.into_iter().zip(finer) {
                out[i] = a;
            }
        }
        Ok(out)
    }

    pub(super) fn integrated_gradients(
        &mut self,
        x: &[f32],
        baselines: &[f32],
        targets: &[ExplainedOutput],
        steps: usize,
    ) -> Result<Vec<Attribution>> {
        let len = self.input_len();
        let (alphas, weights) = gauss_legendre(steps);
        let group = (ROWS_PER_GROUP / steps).max(1);
        let mut out = Vec::with_capacity(targets.len());
        let (mut path, mut path_targets) = (Vec::new(), Vec::new());
        let (mut values, mut grads) = (Vec::new(), Vec::new());
        let mut ends = Vec::new();
        for ((xs, bs), ts) in x
            .chunks(group * len)
            .zip(baselines.chunks(group * len))
            .zip(targets.chunks(group))
        {
            path.clear();
            path_targets.clear();
            for ((xi, bi), t) in xs.chunks_exact(len).zip(bs.chunks_exact(len)).zip(ts) {
                for &a in &alphas {
                    let a = a as f32;
                    path.extend(xi.iter().zip(bi).map(|(x, b)| b + a * (x - b)));
                    path_targets.push(*t);
                }
            }
            self.value_and_gradient(&path, &path_targets, &mut values, &mut grads);
            // f(x) and f(baseline), for the completeness check.
            let mut both = Vec::with_capacity(2 * xs.len());
            let mut both_targets = Vec::with_capacity(2 * ts.len());
            for ((xi, bi), t) in xs.chunks_exact(len).zip(bs.chunks_exact(len)).zip(ts) {
                both.extend_from_slice(xi);
                both.extend_from_slice(bi);
                both_targets.extend([*t, *t]);
            }
            self.values(&both, &both_targets, &mut ends);
            for (i, ((xi, bi), t)) in xs
                .chunks_exact(len)
                .zip(bs.chunks_exact(len))
                .zip(ts)
                .enumerate()
            {
                let mut avg = vec![0f64; len];
                for (k, w) in weights.iter().enumerate() {
                    let g = &grads[(i * steps + k) * len..(i * steps + k + 1) * len];
                    avg.iter_mut().zip(g).for_each(|(a, g)| *a += w * *g as f64);
                }
                let attr: Vec<f32> = avg
                    .iter()
                    .zip(xi.iter().zip(bi))
                    .map(|(a, (x, b))| (a * (*x as f64 - *b as f64)) as f32)
                    .collect();
                let sum = attr.iter().map(|&v| v as f64).sum::<f64>() as f32;
                let (value, baseline_value) = (ends[2 * i], ends[2 * i + 1]);
                out.push(Attribution {
                    target: t.0,
                    value,
                    values: attr,
                    completeness: Some(Completeness::new(value, baseline_value, sum, steps)),
                });
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauss_legendre_integrates_polynomials_exactly() {
        for n in [1, 2, 5, 50] {
            let (x, w) = gauss_legendre(n);
            assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-12, "n {n}");
            assert!(x.windows(2).all(|p| p[0] < p[1]), "ascending, n {n}");
            // ∫₀¹ t^d dt = 1 / (d + 1), exact up to degree 2n - 1.
            for d in 0..2 * n {
                let q: f64 = x.iter().zip(&w).map(|(x, w)| w * x.powi(d as i32)).sum();
                assert!((q - 1.0 / (d + 1) as f64).abs() < 1e-10, "n {n} degree {d}");
            }
        }
    }
}
