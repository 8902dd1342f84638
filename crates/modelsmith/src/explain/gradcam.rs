//! Grad-CAM: the last convolution's feature maps, each weighted by the mean gradient of the
//! explained output with respect to it, summed, rectified and scaled up to the input's size.

use super::gradients::ROWS_PER_PASS;
use super::{Attribution, ExplainedOutput, Explainer};
use crate::{Error, Result};

impl Explainer {
    /// The slot written by the last convolution, if the model has one.
    fn last_convolution(&self) -> Option<usize> {
        let nodes = self.network().nodes();
        nodes
            .iter()
            .rposition(|n| n.layer.kind() == "conv2d")
            .map(|i| i + 1)
    }

    pub(super) fn grad_cam(
        &mut self,
        x: &[f32],
        targets: &[ExplainedOutput],
    ) -> Result<Vec<Attribution>> {
        let slot = self.last_convolution().ok_or_else(|| {
            Error::Config(
                "Grad-CAM needs a convolution and this model has none; use ig, saliency or \
                 occlusion"
                    .into(),
            )
        })?;
        let shape = self.meta.input_shape.clone();
        let (h, w, c) = (shape[0], shape[1], shape[2]);
        let len = self.input_len();
        let mut values = Vec::new();
        self.values(x, targets, &mut values);
        let mut out = Vec::with_capacity(targets.len());
        for (xs, ts) in x
            .chunks(ROWS_PER_PASS * len)
            .zip(targets.chunks(ROWS_PER_PASS))
        {
            let maps = self.with_gradients(xs, ts, |net| {
                let (a, g) = (net.activation(slot), net.gradient(slot));
                let (fh, fw, fc) = (a.shape[1], a.shape[2], a.shape[3]);
                let per = fh * fw * fc;
                a.data
                    .chunks_exact(per)
                    .zip(g.data.chunks_exact(per))
                    .map(|(a, g)| {
                        let mut alpha = vec![0f32; fc];
                        for px in g.chunks_exact(fc) {
                            alpha.iter_mut().zip(px).for_each(|(s, v)| *s += v);
                        }
                        alpha.iter_mut().for_each(|s| *s /= (fh * fw) as f32);
                        let cam: Vec<f32> = a
                            .chunks_exact(fc)
                            .map(|px| {
                                px.iter()
                                    .zip(&alpha)
                                    .map(|(v, k)| v * k)
                                    .sum::<f32>()
                                    .max(0.0)
                            })
                            .collect();
                        upsample(&cam, fh, fw, h, w)
                    })
                    .collect::<Vec<_>>()
            });
            for (map, t) in maps.into_iter().zip(ts) {
                let per_value: Vec<f32> = map
                    .iter()
                    .flat_map(|&v| std::iter::repeat_n(v / c as f32, c))
                    .collect();
                out.push(Attribution {
                    target: t.0,
                    value: values[out.len()],
                    values: per_value,
                    completeness: None,
                });
            }
        }
        Ok(out)
    }
}

/// Bilinear resize of an `fh`×`fw` map to `h`×`w`, pixel centres aligned.
fn upsample(map: &[f32], fh: usize, fw: usize, h: usize, w: usize) -> Vec<f32> {
    let coord = |i: usize, from: usize, to: usize| -> (usize, usize, f32) {
        let s = ((i as f32 + 0.5) * from as f32 / to as f32 - 0.5).clamp(0.0, (from - 1) as f32);
        let lo = s.floor() as usize;
        let hi = (lo + 1).min(from - 1);
        (lo, hi, s - lo as f32)
    };
    let mut out = Vec::with_capacity(h * w);
    for y in 0..h {
        let (y0, y1, fy) = coord(y, fh, h);
        for x in 0..w {
            let (x0, x1, fx) = coord(x, fw, w);
            let top = map[y0 * fw + x0] * (1.0 - fx) + map[y0 * fw + x1] * fx;
            let bottom = map[y1 * fw + x0] * (1.0 - fx) + map[y1 * fw + x1] * fx;
            out.push(top * (1.0 - fy) + bottom * fy);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::upsample;

    #[test]
    fn upsample_keeps_constants_and_corners() {
        assert!(upsample(&[2.0; 4], 2, 2, 5, 7)
            .iter()
            .all(|v| (v - 2.0).abs() < 1e-6));
        let up = upsample(&[0.0, 1.0, 2.0, 3.0], 2, 2, 4, 4);
        assert_eq!(up[0], 0.0);
        assert_eq!(up[15], 3.0);
        assert!(up[1] > up[0] && up[2] > up[1]);
    }
}
