//! [`Baseline`]: the "absent" input that Integrated Gradients, input×gradient, occlusion and
//! deletion measure from.

use modelsmith_engine::rng::SplitMix64;
use serde::Serialize;

use crate::data::{ColumnKind, Preprocessing};
use crate::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Baseline {
    /// Images: every pixel 0.
    Black,
    /// Images: the input under a Gaussian blur (σ = an eighth of the longer side): keeps the
    /// colours and removes the shapes.
    Blurred,
    /// Images: uniform noise over the pixel range, seeded.
    Noise,
    /// Tables: every numeric column at its training mean, every categorical one at its most
    /// frequent value.
    Mean,
}

impl Baseline {
    pub const NAMES: &'static [&'static str] = &["black", "blurred", "noise", "mean"];

    pub fn parse(text: &str) -> Result<Baseline> {
        Ok(match text {
            "black" => Baseline::Black,
            "blurred" | "blur" => Baseline::Blurred,
            "noise" => Baseline::Noise,
            "mean" => Baseline::Mean,
            other => {
                return Err(Error::Config(format!(
                    "unknown baseline '{other}' (known: {})",
                    Baseline::NAMES.join(", ")
                )))
            }
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Baseline::Black => "black",
            Baseline::Blurred => "blurred",
            Baseline::Noise => "noise",
            Baseline::Mean => "mean",
        }
    }

    /// Black for images, the mean row for tables.
    pub fn default_for(preprocessing: &Preprocessing) -> Baseline {
        match preprocessing {
            Preprocessing::Image { .. } => Baseline::Black,
            Preprocessing::Table { .. } => Baseline::Mean,
        }
    }

    /// One baseline per input of `x` (inputs end to end), in model-input units.
    pub fn build(self, x: &[f32], preprocessing: &Preprocessing, seed: u64) -> Result<Vec<f32>> {
        match (self, preprocessing) {
            (Baseline::Black, Preprocessing::Image { .. }) => Ok(vec![0.0; x.len()]),
            (Baseline::Noise, Preprocessing::Image { scale, .. }) => {
                let mut rng = SplitMix64::new(seed ^ 0x006E_6F69_7365);
                Ok(x.iter().map(|_| rng.uniform(0.0, 255.0 * scale)).collect())
            }
            (
                Baseline::Blurred,
                Preprocessing::Image {
                    height,
                    width,
                    channels,
                    ..
                },
            ) => {
                let len = height * width * channels;
                let sigma = (*height.max(width) as f32) / 8.0;
                let mut out = Vec::with_capacity(x.len());
                for image in x.chunks_exact(len) {
                    out.extend(gaussian_blur(image, *height, *width, *channels, sigma));
                }
                Ok(out)
            }
            (Baseline::Mean, Preprocessing::Table { columns, .. }) => {
                let mut row = Vec::new();
                for c in columns {
                    match &c.kind {
                        ColumnKind::Numeric { .. } => row.push(0.0),
                        ColumnKind::Categorical { vocabulary, impute } => {
                            row.extend(vocabulary.iter().map(|v| f32::from(v == impute)))
                        }
                    }
                }
                let n = if row.is_empty() {
                    0
                } else {
                    x.len() / row.len()
                };
                Ok(row.repeat(n))
            }
            (b, Preprocessing::Image { .. }) => Err(Error::Config(format!(
                "baseline '{}' is for tables; an image model takes black, blurred or noise",
                b.name()
            ))),
            (b, Preprocessing::Table { .. }) => Err(Error::Config(format!(
                "baseline '{}' is for images; a table model takes mean",
                b.name()
            ))),
        }
    }
}

/// A separable Gaussian blur of one HWC image, edges clamped.
fn gaussian_blur(image: &[f32], h: usize, w: usize, c: usize, sigma: f32) -> Vec<f32> {
    let radius = (3.0 * sigma).ceil() as isize;
    let kernel: Vec<f32> = (-radius..=radius)
        .map(|d| (-(d * d) as f32 / (2.0 * sigma * sigma)).exp())
        .collect();
    let total: f32 = kernel.iter().sum();
    let kernel: Vec<f32> = kernel.iter().map(|k| k / total).collect();
    let clamp = |v: isize, hi: usize| v.clamp(0, hi as isize - 1) as usize;
    let mut rows = vec![0f32; image.len()];
    for y in 0..h {
        for x in 0..w {
            for ch in 0..c {
                rows[(y * w + x) * c + ch] = kernel
                    .iter()
                    .enumerate()
                    .map(|(k, kv)| {
                        kv * image[(y * w + clamp(x as isize + k as isize - radius, w)) * c + ch]
                    })
                    .sum();
            }
        }
    }
    let mut out = vec![0f32; image.len()];
    for y in 0..h {
        for x in 0..w {
            for ch in 0..c {
                out[(y * w + x) * c + ch] = kernel
                    .iter()
                    .enumerate()
                    .map(|(k, kv)| {
                        kv * rows[(clamp(y as isize + k as isize - radius, h) * w + x) * c + ch]
                    })
                    .sum();
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blur_keeps_a_flat_image_and_spreads_a_point() {
        let flat = vec![0.5f32; 8 * 8];
        let b = gaussian_blur(&flat, 8, 8, 1, 1.0);
        assert!(b.iter().all(|v| (v - 0.5).abs() < 1e-6));
        let mut point = vec![0f32; 9 * 9];
        point[4 * 9 + 4] = 1.0;
        let b = gaussian_blur(&point, 9, 9, 1, 1.0);
        assert!(b[4 * 9 + 4] < 0.2 && b[4 * 9 + 5] > 0.05);
        assert!((b.iter().sum::<f32>() - 1.0).abs() < 1e-4);
    }
}
