//! Data augmentation for image batches: random rotation, shift, horizontal flip, gaussian noise.
//!
//! Each example gets its own RNG derived from `(seed, position in the batch)`, so a batch is
//! augmented identically whatever the thread count, and examples run in parallel (rayon).
//! Geometry is one fused inverse-mapping pass per image: every output pixel is mapped back through
//! shift, rotation (about the image center) and flip to a source position, which is sampled
//! bilinearly; positions outside the image read as 0 (zero fill). Noise is added afterwards and
//! values are not clamped.

use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Augmentation settings. The default is the identity (no augmentation).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Augment {
    /// Maximum rotation in degrees; each example is rotated by a uniform angle in `[-r, r]`.
    pub rotation_deg: f32,
    /// Maximum shift as a fraction of width/height (e.g. 0.1); uniform in `[-s, s]` per axis,
    /// sub-pixel (bilinear).
    pub shift: f32,
    /// Flip horizontally with probability 1/2 (off by default: wrong for digits and text).
    pub hflip: bool,
    /// Standard deviation of gaussian noise added to every value.
    pub noise_std: f32,
}

impl Augment {
    /// The `--augment` preset: rotation up to 10°, shift up to 10%.
    pub fn light() -> Augment {
        Augment {
            rotation_deg: 10.0,
            shift: 0.1,
            hflip: false,
            noise_std: 0.0,
        }
    }

    /// True when [`apply_batch`](Self::apply_batch) changes nothing.
    pub fn is_identity(&self) -> bool {
        self.rotation_deg == 0.0 && self.shift == 0.0 && !self.hflip && self.noise_std == 0.0
    }

    /// Checks the ranges; the message names the field and the allowed range.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.rotation_deg.is_finite() && (0.0..=180.0).contains(&self.rotation_deg)) {
            return Err(format!(
                "augment.rotation_deg is {} but must be between 0 and 180 (degrees)",
                self.rotation_deg
            ));
        }
        if !(self.shift.is_finite() && (0.0..1.0).contains(&self.shift)) {
            return Err(format!(
                "augment.shift is {} but must be at least 0 and below 1 (a fraction of the image size, e.g. 0.1)",
                self.shift
            ));
        }
        if !(self.noise_std.is_finite() && self.noise_std >= 0.0) {
            return Err(format!(
                "augment.noise_std is {} but must be a finite number >= 0",
                self.noise_std
            ));
        }
        Ok(())
    }

    /// Augments `batch` examples in `x` in place. `shape` is one example's `[h, w, c]` (HWC);
    /// for any other shape (tables) only the noise applies. Deterministic in `seed`: example `i`
    /// draws from an RNG seeded by `(seed, i)`; pass a different seed each step.
    ///
    /// Panics if `x.len() != batch * shape.iter().product()`.
    pub fn apply_batch(&self, x: &mut [f32], shape: &[usize], batch: usize, seed: u64) {
        let n: usize = shape.iter().product();
        assert_eq!(
            x.len(),
            batch * n,
            "augment: batch of {batch} examples of shape {shape:?} needs {} values, got {}",
            batch * n,
            x.len()
        );
        if self.is_identity() || n == 0 {
            return;
        }
        let hwc = match shape {
            [h, w, c] => Some((*h, *w, *c)),
            _ => None,
        };
        x.par_chunks_mut(n).enumerate().for_each_init(
            || vec![0f32; n],
            |scratch, (i, example)| {
                let mut rng = ChaCha8Rng::seed_from_u64(example_seed(seed, i as u64));
                // Always draw the same numbers in the same order, whatever is enabled.
                let u_rot: f32 = rng.gen();
                let u_tx: f32 = rng.gen();
                let u_ty: f32 = rng.gen();
                let flip = rng.gen::<bool>() && self.hflip;
                if let Some((h, w, c)) = hwc {
                    let angle = (2.0 * u_rot - 1.0) * self.rotation_deg.to_radians();
                    let tx = (2.0 * u_tx - 1.0) * self.shift * w as f32;
                    let ty = (2.0 * u_ty - 1.0) * self.shift * h as f32;
                    if angle != 0.0 || tx != 0.0 || ty != 0.0 || flip {
                        scratch.copy_from_slice(example);
                        warp(example, scratch, h, w, c, angle, tx, ty, flip);
                    }
                }
                if self.noise_std > 0.0 {
                    add_noise(example, self.noise_std, &mut rng);
                }
            },
        );
    }
}

/// splitmix64 of the seed combined with the example position.
fn example_seed(seed: u64, i: u64) -> u64 {
    let mut z = seed ^ i.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// out[oy, ox] = src[T⁻¹(ox, oy)] with T = shift ∘ rotate(about center) ∘ flip; bilinear,
/// zero fill. `out`, `src`: [h, w, c].
#[allow(clippy::too_many_arguments)]
fn warp(
    out: &mut [f32],
    src: &[f32],
    h: usize,
    w: usize,
    c: usize,
    angle: f32,
    tx: f32,
    ty: f32,
    flip: bool,
) {
    let (sin, cos) = angle.sin_cos();
    let (cx, cy) = ((w as f32 - 1.0) * 0.5, (h as f32 - 1.0) * 0.5);
    // r = R(-angle) (o - t - center) + center;  s = flip ? (w - 1 - r.x, r.y) : r
    let (qx0, qy0) = (-tx - cx, -ty - cy);
    let mut m = Affine {
        a: cos,
        b: sin,
        c: cos * qx0 + sin * qy0 + cx,
        d: -sin,
        e: cos,
        f: -sin * qx0 + cos * qy0 + cy,
    };
    if flip {
        m.a = -m.a;
        m.b = -m.b;
        m.c = (w as f32 - 1.0) - m.c;
    }
    match c {
        1 => warp_c::<1>(out, src, h, w, &m),
        3 => warp_c::<3>(out, src, h, w, &m),
        _ => warp_dyn(out, src, h, w, c, &m),
    }
}

/// Source position of output pixel (x, y): `(a x + b y + c, d x + e y + f)`.
struct Affine {
    a: f32,
    b: f32,
    c: f32,
    d: f32,
    e: f32,
    f: f32,
}

/// floor(v) as an integer without a libm call (v is within a few image sizes of 0).
#[inline(always)]
fn floor_i(v: f32) -> isize {
    let t = v as isize;
    t - ((v < t as f32) as isize)
}

/// Bilinear corner (x0, y0) and fractions of source position (sx, sy).
#[inline(always)]
fn corner(sx: f32, sy: f32) -> (isize, isize, f32, f32) {
    let (x0, y0) = (floor_i(sx), floor_i(sy));
    (x0, y0, sx - x0 as f32, sy - y0 as f32)
}

fn warp_c<const C: usize>(out: &mut [f32], src: &[f32], h: usize, w: usize, m: &Affine) {
    let (wi, hi) = (w as isize, h as isize);
    let row = w * C;
    for oy in 0..h {
        let (bx, by) = (m.b * oy as f32 + m.c, m.e * oy as f32 + m.f);
        let out_row = &mut out[oy * row..(oy + 1) * row];
        for (ox, o) in out_row.chunks_exact_mut(C).enumerate() {
            let (sx, sy) = (m.a * ox as f32 + bx, m.d * ox as f32 + by);
            let (x0, y0, ax, ay) = corner(sx, sy);
            if x0 >= 0 && y0 >= 0 && x0 + 1 < wi && y0 + 1 < hi {
                let i00 = (y0 as usize * w + x0 as usize) * C;
                let p = &src[i00..i00 + row + 2 * C];
                let (w00, w01) = ((1.0 - ax) * (1.0 - ay), ax * (1.0 - ay));
                let (w10, w11) = ((1.0 - ax) * ay, ax * ay);
                for k in 0..C {
                    o[k] = w00 * p[k] + w01 * p[C + k] + w10 * p[row + k] + w11 * p[row + C + k];
                }
            } else if x0 < -1 || y0 < -1 || x0 >= wi || y0 >= hi {
                o.fill(0.0);
            } else {
                border(o, src, w, h, C, x0, y0, ax, ay);
            }
        }
    }
}

fn warp_dyn(out: &mut [f32], src: &[f32], h: usize, w: usize, c: usize, m: &Affine) {
    for oy in 0..h {
        for ox in 0..w {
            let sx = m.a * ox as f32 + m.b * oy as f32 + m.c;
            let sy = m.d * ox as f32 + m.e * oy as f32 + m.f;
            let (x0, y0, ax, ay) = corner(sx, sy);
            let o = &mut out[(oy * w + ox) * c..(oy * w + ox + 1) * c];
            border(o, src, w, h, c, x0, y0, ax, ay);
        }
    }
}

/// Bilinear sample with every corner bounds-checked (zero outside).
#[allow(clippy::too_many_arguments)]
#[inline(never)]
fn border(
    o: &mut [f32],
    src: &[f32],
    w: usize,
    h: usize,
    c: usize,
    x0: isize,
    y0: isize,
    ax: f32,
    ay: f32,
) {
    o.fill(0.0);
    let corners = [
        (x0, y0, (1.0 - ax) * (1.0 - ay)),
        (x0 + 1, y0, ax * (1.0 - ay)),
        (x0, y0 + 1, (1.0 - ax) * ay),
        (x0 + 1, y0 + 1, ax * ay),
    ];
    for (x, y, wt) in corners {
        if wt != 0.0 && x >= 0 && y >= 0 && (x as usize) < w && (y as usize) < h {
            let s = &src[(y as usize * w + x as usize) * c..][..c];
            for (ov, sv) in o.iter_mut().zip(s) {
                *ov += wt * sv;
            }
        }
    }
}

/// Adds N(0, std²) to every value (Marsaglia's polar method; two 24-bit uniforms per draw).
fn add_noise(x: &mut [f32], std: f32, rng: &mut ChaCha8Rng) {
    const SCALE: f32 = 1.0 / (1u32 << 23) as f32; // maps 24 bits to [0, 2)
    for pair in x.chunks_mut(2) {
        let (u, v, s) = loop {
            let r = rng.next_u64();
            let u = (r as u32 >> 8) as f32 * SCALE - 1.0;
            let v = ((r >> 32) as u32 >> 8) as f32 * SCALE - 1.0;
            let s = u * u + v * v;
            if s > 0.0 && s < 1.0 {
                break (u, v, s);
            }
        };
        let k = (-2.0 * s.ln() / s).sqrt() * std;
        pair[0] += u * k;
        if let Some(p) = pair.get_mut(1) {
            *p += v * k;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_rejects_bad_ranges() {
        assert!(Augment::light().validate().is_ok());
        let bad = Augment {
            rotation_deg: -1.0,
            ..Augment::default()
        };
        assert!(bad.validate().unwrap_err().contains("rotation_deg"));
        let bad = Augment {
            shift: 1.5,
            ..Augment::default()
        };
        assert!(bad.validate().unwrap_err().contains("shift"));
        let bad = Augment {
            noise_std: f32::NAN,
            ..Augment::default()
        };
        assert!(bad.validate().unwrap_err().contains("noise_std"));
    }

    #[test]
    fn warp_without_rotation_or_shift_is_exact_identity() {
        let (h, w, c) = (5, 7, 3);
        let src: Vec<f32> = (0..h * w * c).map(|i| (i as f32 * 0.37).sin()).collect();
        let mut out = vec![0.0; src.len()];
        warp(&mut out, &src, h, w, c, 0.0, 0.0, 0.0, false);
        assert_eq!(out, src);
        // Flipping twice is exact too.
        let mut once = vec![0.0; src.len()];
        warp(&mut once, &src, h, w, c, 0.0, 0.0, 0.0, true);
        assert_ne!(once, src);
        warp(&mut out, &once, h, w, c, 0.0, 0.0, 0.0, true);
        assert_eq!(out, src);
    }

    #[test]
    fn pure_shift_by_one_pixel_moves_the_image() {
        // 1x3 image, one channel: shift right by exactly one pixel.
        let src = [1.0, 2.0, 3.0];
        let mut out = [0.0; 3];
        warp(&mut out, &src, 1, 3, 1, 0.0, 1.0, 0.0, false);
        assert_eq!(out, [0.0, 1.0, 2.0]);
    }

    #[test]
    fn rotation_by_90_degrees_on_a_square() {
        // 3x3 image with one bright pixel at (x=2, y=1): rotating by ±90° moves it to the
        // top or bottom middle.
        let mut src = [0.0f32; 9];
        src[3 + 2] = 1.0;
        let mut out = [0.0; 9];
        warp(&mut out, &src, 3, 3, 1, 90f32.to_radians(), 0.0, 0.0, false);
        let hot: Vec<usize> = (0..9).filter(|&i| out[i] > 0.99).collect();
        assert!(hot == vec![1] || hot == vec![7], "{out:?}");
        assert!((out.iter().sum::<f32>() - 1.0).abs() < 1e-4);
    }

    #[test]
    fn seeds_differ_per_example() {
        assert_ne!(example_seed(1, 0), example_seed(1, 1));
        assert_ne!(example_seed(1, 0), example_seed(2, 0));
    }
}
