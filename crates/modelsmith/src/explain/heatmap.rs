//! Heatmap PNGs: attributions per pixel laid over the input, positive evidence red, negative
//! blue, the colour's strength the attribution's size against the map's 99th percentile.

use std::path::Path;

use image::{Rgb, RgbImage};

use crate::{Error, Result};

/// Shortest side of a written heatmap: small inputs are scaled up by whole pixels to at least
/// this, so a 28x28 digit is readable.
const MIN_SIDE: u32 = 224;

/// An input image (model-input values, HWC, `scale` the preprocessing's multiplier of 0..=255
/// pixels) and one attribution per pixel, as an RGB overlay.
pub fn overlay(
    input: &[f32],
    per_pixel: &[f32],
    h: usize,
    w: usize,
    c: usize,
    scale: f32,
) -> RgbImage {
    let mut magnitudes: Vec<f32> = per_pixel
        .iter()
        .map(|v| v.abs())
        .filter(|v| v.is_finite())
        .collect();
    magnitudes.sort_by(f32::total_cmp);
    let top = magnitudes
        .get((magnitudes.len() as f32 * 0.99) as usize)
        .or(magnitudes.last())
        .copied()
        .filter(|&v| v > 0.0)
        .unwrap_or(1.0);
    let zoom = (MIN_SIDE as usize).div_ceil(h.max(w).max(1)).max(1) as u32;
    let mut img = RgbImage::new(w as u32 * zoom, h as u32 * zoom);
    for y in 0..h {
        for x in 0..w {
            let px = &input[(y * w + x) * c..(y * w + x + 1) * c];
            let raw = |v: f32| (v / scale).clamp(0.0, 255.0);
            let rgb = if c >= 3 {
                [raw(px[0]), raw(px[1]), raw(px[2])]
            } else {
                [raw(px[0]); 3]
            };
            // The input dimmed, so the colour reads on white strokes too.
            let base = rgb.map(|v| v * 0.55);
            let a = (per_pixel[y * w + x] / top).clamp(-1.0, 1.0);
            let tint = if a >= 0.0 {
                [255.0, 40.0, 0.0]
            } else {
                [0.0, 90.0, 255.0]
            };
            let s = a.abs();
            let out = [0, 1, 2].map(|k| (base[k] * (1.0 - s) + tint[k] * s).round() as u8);
            for dy in 0..zoom {
                for dx in 0..zoom {
                    img.put_pixel(x as u32 * zoom + dx, y as u32 * zoom + dy, Rgb(out));
                }
            }
        }
    }
    img
}

/// Writes `img` as a PNG.
pub fn save(img: &RgbImage, path: &Path) -> Result<()> {
    img.save_with_format(path, image::ImageFormat::Png)
        .map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positive_is_red_negative_is_blue_and_small_inputs_grow() {
        let input = vec![0.0; 4];
        let img = overlay(&input, &[1.0, -1.0, 0.0, 0.5], 2, 2, 1, 1.0 / 255.0);
        assert_eq!(img.width(), 224);
        let red = img.get_pixel(0, 0);
        let blue = img.get_pixel(150, 0);
        assert!(red[0] > 200 && red[2] < 50, "{red:?}");
        assert!(blue[2] > 200 && blue[0] < 50, "{blue:?}");
        assert_eq!(img.get_pixel(0, 150), &Rgb([0, 0, 0]));
    }
}
