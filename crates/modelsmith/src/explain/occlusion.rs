//! Occlusion: how much the explained output falls when a part of the input is set to the
//! baseline — a square window sliding over an image, or one column of a table.

use super::{Attribution, ExplainedOutput, Explainer, Units};
use crate::data::Preprocessing;
use crate::{Error, Result};

/// The parts occluded in turn, as lists of input values.
fn patches(preprocessing: &Preprocessing, window: Option<usize>) -> Result<Vec<Vec<usize>>> {
    match preprocessing {
        Preprocessing::Image {
            height,
            width,
            channels,
            ..
        } => {
            let (h, w, c) = (*height, *width, *channels);
            // A seventh of the shorter side: 4 pixels on 28x28 digits.
            let k = window.unwrap_or_else(|| h.min(w).div_ceil(7)).max(1);
            if k > h || k > w {
                return Err(Error::Config(format!(
                    "occlusion window {k} is larger than the {h}x{w} image"
                )));
            }
            let stride = (k / 2).max(1);
            let starts = |n: usize| {
                let mut s: Vec<usize> = (0..=n - k).step_by(stride).collect();
                if s.last() != Some(&(n - k)) {
                    s.push(n - k);
                }
                s
            };
            let mut out = Vec::new();
            for y0 in starts(h) {
                for x0 in starts(w) {
                    let mut p = Vec::with_capacity(k * k * c);
                    for y in y0..y0 + k {
                        for x in x0..x0 + k {
                            p.extend((y * w + x) * c..(y * w + x + 1) * c);
                        }
                    }
                    out.push(p);
                }
            }
            Ok(out)
        }
        Preprocessing::Table { .. } => {
            if window.is_some() {
                return Err(Error::Config(
                    "--window is for images; a table is occluded one column at a time".into(),
                ));
            }
            Ok(Units::of(preprocessing).groups)
        }
    }
}

impl Explainer {
    /// Each value's attribution is its share of the fall in `f` (the fall split evenly over the
    /// window's values), averaged over the windows that cover it; a table column's values sum
    /// back to the fall for that column.
    pub(super) fn occlusion(
        &mut self,
        x: &[f32],
        baselines: &[f32],
        targets: &[ExplainedOutput],
        window: Option<usize>,
    ) -> Result<Vec<Attribution>> {
        let len = self.input_len();
        let patches = patches(&self.meta.data.preprocessing.clone(), window)?;
        let mut coverage = vec![0u32; len];
        for p in &patches {
            p.iter().for_each(|&i| coverage[i] += 1);
        }
        let mut out = Vec::with_capacity(targets.len());
        let (mut occluded, mut occluded_targets, mut values) = (Vec::new(), Vec::new(), Vec::new());
        for ((xi, bi), t) in x
            .chunks_exact(len)
            .zip(baselines.chunks_exact(len))
            .zip(targets)
        {
            occluded.clear();
            occluded_targets.clear();
            occluded.extend_from_slice(xi);
            occluded_targets.push(*t);
            for p in &patches {
                let start = occluded.len();
                occluded.extend_from_slice(xi);
                for &i in p {
                    occluded[start + i] = bi[i];
                }
                occluded_targets.push(*t);
            }
            self.values(&occluded, &occluded_targets, &mut values);
            let value = values[0];
            let mut attr = vec![0f32; len];
            for (p, v) in patches.iter().zip(&values[1..]) {
                let share = (value - v) / p.len() as f32;
                p.iter().for_each(|&i| attr[i] += share);
            }
            attr.iter_mut()
                .zip(&coverage)
                .filter(|(_, &c)| c > 0)
                .for_each(|(a, &c)| *a /= c as f32);
            out.push(Attribution {
                target: t.0,
                value,
                values: attr,
                completeness: None,
            });
        }
        Ok(out)
    }
}
