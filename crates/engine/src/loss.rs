//! The losses: softmax cross-entropy for classes, and mean squared error, mean absolute error
//! and Huber for continuous targets; the softmax for inference, and an accuracy count.
//!
//! Shapes: `logits [n, k]`, `labels [n]` (class indices `< k`) or `targets [n * k]` (one value
//! per output), `dlogits [n, k]`.

use crate::Tensor;

/// Mean softmax cross-entropy over the batch; writes `dlogits = (softmax(logits) - onehot) / n`
/// (overwriting, not accumulating: it starts the backward pass). Numerically stable (subtracts
/// each row's max). Panics if a label is out of range or the lengths disagree.
pub fn softmax_cross_entropy(dlogits: &mut Tensor, logits: &Tensor, labels: &[u32]) -> f32 {
    let n = logits.batch();
    let k = logits.per_example();
    assert_eq!(
        labels.len(),
        n,
        "softmax_cross_entropy: {} labels for a batch of {n}",
        labels.len()
    );
    dlogits.resize(&logits.shape);
    if n == 0 {
        return 0.0;
    }
    let inv_n = 1.0 / n as f32;
    let mut total = 0f64;
    for ((row, drow), &label) in logits
        .data
        .chunks_exact(k)
        .zip(dlogits.data.chunks_exact_mut(k))
        .zip(labels)
    {
        let label = label as usize;
        assert!(
            label < k,
            "softmax_cross_entropy: label {label} is not below {k} classes"
        );
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0f32;
        for (d, &z) in drow.iter_mut().zip(row) {
            *d = (z - max).exp();
            sum += *d;
        }
        // loss = log Σ exp(z - max) - (z_label - max)
        total += (sum.ln() - (row[label] - max)) as f64;
        let inv_sum = 1.0 / sum;
        drow.iter_mut().for_each(|d| *d *= inv_sum * inv_n);
        drow[label] -= inv_n;
    }
    (total / n as f64) as f32
}

/// A loss on continuous targets. Each is the mean over every output of every example (Keras's
/// `mean_squared_error`, `mean_absolute_error` and `Huber(delta)` reduced the same way).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RegressionLoss {
    /// `(z - t)²`.
    Squared,
    /// `|z - t|`; its gradient at `z == t` is taken as 0.
    Absolute,
    /// `½(z - t)²` within `delta` of the target, `delta·(|z - t| - ½delta)` beyond: squared
    /// near the target, absolute (robust to outliers) far from it.
    Huber { delta: f32 },
}

/// Mean of `loss` over the `n * k` outputs; writes `dlogits` (overwriting, like
/// [`softmax_cross_entropy`]). Panics if `targets` does not hold one value per output.
pub fn regression_loss(
    loss: RegressionLoss,
    dlogits: &mut Tensor,
    logits: &Tensor,
    targets: &[f32],
) -> f32 {
    assert_eq!(
        targets.len(),
        logits.data.len(),
        "regression_loss: {} targets for {} outputs",
        targets.len(),
        logits.data.len()
    );
    dlogits.resize(&logits.shape);
    let count = logits.data.len();
    if count == 0 {
        return 0.0;
    }
    let inv = 1.0 / count as f32;
    let mut total = 0f64;
    for ((d, &z), &t) in dlogits.data.iter_mut().zip(&logits.data).zip(targets) {
        let r = z - t;
        let (value, slope) = match loss {
            RegressionLoss::Squared => (r * r, 2.0 * r),
            RegressionLoss::Absolute => (r.abs(), sign(r)),
            RegressionLoss::Huber { delta } if r.abs() <= delta => (0.5 * r * r, r),
            RegressionLoss::Huber { delta } => (delta * (r.abs() - 0.5 * delta), delta * sign(r)),
        };
        total += value as f64;
        *d = slope * inv;
    }
    (total / count as f64) as f32
}

/// -1, 0 or 1 (0 at 0, unlike `f32::signum`).
fn sign(r: f32) -> f32 {
    if r > 0.0 {
        1.0
    } else if r < 0.0 {
        -1.0
    } else {
        0.0
    }
}

/// `out = softmax(logits)` row by row (`[n, k]`), numerically stable.
pub fn softmax(out: &mut Tensor, logits: &Tensor) {
    out.resize(&logits.shape);
    softmax_rows(&mut out.data, &logits.data, logits.per_example());
}

/// Row-wise softmax of `logits [n, k]` into `out [n, k]` (no allocation).
pub fn softmax_rows(out: &mut [f32], logits: &[f32], k: usize) {
    assert_eq!(out.len(), logits.len(), "softmax_rows: output length");
    if k == 0 {
        return;
    }
    for (o, row) in out.chunks_exact_mut(k).zip(logits.chunks_exact(k)) {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0f32;
        for (p, &z) in o.iter_mut().zip(row) {
            *p = (z - max).exp();
            sum += *p;
        }
        let inv = 1.0 / sum;
        o.iter_mut().for_each(|p| *p *= inv);
    }
}

/// Index of the largest value of each row of `logits [n, k]` (first one on ties).
pub fn argmax_rows(logits: &Tensor) -> Vec<u32> {
    let k = logits.per_example().max(1);
    logits
        .data
        .chunks_exact(k)
        .map(|row| {
            let mut best = 0;
            for (i, &v) in row.iter().enumerate() {
                if v > row[best] {
                    best = i;
                }
            }
            best as u32
        })
        .collect()
}

/// How many rows of `logits [n, k]` have their largest value at the label.
pub fn count_correct(logits: &Tensor, labels: &[u32]) -> usize {
    argmax_rows(logits)
        .iter()
        .zip(labels)
        .filter(|(p, l)| p == l)
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_with_huge_logits() {
        let logits = Tensor::from_vec(&[1, 3], vec![1000.0, 0.0, -1000.0]).unwrap();
        let mut d = Tensor::default();
        let loss = softmax_cross_entropy(&mut d, &logits, &[0]);
        assert!(loss.abs() < 1e-6);
        let loss = softmax_cross_entropy(&mut d, &logits, &[1]);
        assert!((loss - 1000.0).abs() < 1e-3);
        assert!(d.data.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn regression_losses_by_hand() {
        let z = Tensor::from_vec(&[2, 1], vec![3.0, -1.0]).unwrap();
        let t = [1.0, -1.5];
        let mut d = Tensor::default();
        // residuals 2 and 0.5
        let mse = regression_loss(RegressionLoss::Squared, &mut d, &z, &t);
        assert!((mse - (4.0 + 0.25) / 2.0).abs() < 1e-6);
        assert_eq!(d.data, vec![2.0, 0.5]);
        let mae = regression_loss(RegressionLoss::Absolute, &mut d, &z, &t);
        assert!((mae - 1.25).abs() < 1e-6);
        assert_eq!(d.data, vec![0.5, 0.5]);
        let huber = regression_loss(RegressionLoss::Huber { delta: 1.0 }, &mut d, &z, &t);
        // 1·(2 - ½) and ½·0.25
        assert!((huber - (1.5 + 0.125) / 2.0).abs() < 1e-6);
        assert_eq!(d.data, vec![0.5, 0.25]);
    }

    #[test]
    fn softmax_rows_sum_to_one_and_accuracy_counts() {
        let logits = Tensor::from_vec(&[2, 3], vec![1.0, 2.0, 3.0, 5.0, -1.0, 0.0]).unwrap();
        let mut p = Tensor::default();
        softmax(&mut p, &logits);
        for row in p.data.chunks(3) {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        }
        assert_eq!(argmax_rows(&logits), vec![2, 0]);
        assert_eq!(count_correct(&logits, &[2, 1]), 1);
    }
}
