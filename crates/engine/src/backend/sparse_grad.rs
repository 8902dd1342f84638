//! The input gradient of a convolution whose output gradient is mostly zeros.
//!
//! Behind ReLU and max pooling, a convolution's output gradient `dz` is mostly zeros: pooling
//! passes each window's gradient to one element, and ReLU drops the inactive ones, leaving about
//! one value in eight (the seed CNN's two convolutions, explaining or training). The dense input
//! gradient (`dz · w` then col2im, or Winograd) multiplies all those zeros. Here each nonzero
//! `dz[pixel, c]` adds `dz · w[c]` straight onto the input window its pixel read, kernel row by
//! kernel row — each a contiguous run of `kw · c_in` values in the kernel and, away from the
//! padding, in the image — so the work follows the nonzeros and there is no column buffer.

use super::simd::simd_fn;
use super::ConvGeom;

/// Output-gradient density (share of nonzero values) below which [`input_grad`] replaces the
/// dense path. Measured only at the seed CNN's one in eight: there the second convolution's
/// backward (against Winograd) got faster, the first's (against GEMM + col2im) stayed within
/// the noise, and the whole pass got faster (`MODELSMITH_SPARSE_GRAD=0` for the dense path;
/// BENCHMARKS.md, "Explanations"). The margin shrinks as the density rises, hence a bound well
/// under where the multiply counts meet.
pub(super) const DENSITY_BELOW: f32 = 0.2;

/// Whether the sparse path is allowed (`MODELSMITH_SPARSE_GRAD=0` turns it off, for comparisons).
pub(super) fn enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var("MODELSMITH_SPARSE_GRAD").as_deref() != Ok("0"))
}

simd_fn! {
    /// Share of `dz`'s values that are not zero (0 for an empty slice).
    pub(super) fn density(dz: &[f32]) -> f32 {
        let nonzero: usize = dz
            .chunks(1024)
            .map(|c| c.iter().map(|&v| usize::from(v != 0.0)).sum::<usize>())
            .sum();
        nonzero as f32 / dz.len().max(1) as f32
    }
}

/// Per-thread scratch of [`input_grad`]: one pixel's nonzero masks and its column row.
#[derive(Default)]
pub(super) struct Scratch {
    masks: Vec<u32>,
    column: Vec<f32>,
}

/// Channels per nonzero mask word.
const MASK_BITS: usize = 16;

simd_fn! {
    /// `dx += ∂L/∂x` for `nb` images from their output gradient `dz [nb·oh·ow, c_out]` and the
    /// kernel `w [c_out, kh·kw·c_in]`.
    pub(super) fn input_grad(
        dx: &mut [f32],
        dz: &[f32],
        w: &[f32],
        nb: usize,
        g: &ConvGeom,
        scratch: &mut Scratch,
    ) {
        let (co, patch) = (g.c_out, g.patch());
        let img = g.h * g.w * g.c_in;
        let Scratch { masks, column } = scratch;
        masks.resize(co.div_ceil(MASK_BITS), 0);
        column.resize(patch, 0.0);
        let mut rows = dz.chunks_exact(co);
        for dimg in dx.chunks_exact_mut(img).take(nb) {
            for oy in 0..g.oh {
                for ox in 0..g.ow {
                    let Some(row) = rows.next() else { return };
                    // Which channels are nonzero, 16 at a time as a bit mask (one vector
                    // compare), so the loops below visit only those: a test per value would
                    // mispredict on most of them.
                    let mut any = 0;
                    for (m, block) in masks.iter_mut().zip(row.chunks(MASK_BITS)) {
                        *m = block
                            .iter()
                            .enumerate()
                            .fold(0, |m, (i, &v)| m | (u32::from(v != 0.0) << i));
                        any |= *m;
                    }
                    if any == 0 {
                        continue;
                    }
                    // This pixel's column row, dz[pixel] · w over the nonzeros only ...
                    column.fill(0.0);
                    for (block, &m) in masks.iter().enumerate() {
                        let mut bits = m;
                        while bits != 0 {
                            let c = block * MASK_BITS + bits.trailing_zeros() as usize;
                            bits &= bits - 1;
                            let v = row[c];
                            let k = &w[c * patch..(c + 1) * patch];
                            column.iter_mut().zip(k).for_each(|(d, &k)| *d += v * k);
                        }
                    }
                    // ... added onto the input window it came from.
                    add_window(dimg, column, oy, ox, g);
                }
            }
        }
    }
}

/// `dimg[window of output pixel (oy, ox)] += column` (one row of col2im).
#[inline(always)]
fn add_window(dimg: &mut [f32], column: &[f32], oy: usize, ox: usize, g: &ConvGeom) {
    let ci = g.c_in;
    let seg = g.kw * ci;
    let ix0 = (ox * g.stride) as isize - g.pad_left as isize;
    let full_x = ix0 >= 0 && ix0 as usize + g.kw <= g.w;
    for ky in 0..g.kh {
        let iy = (oy * g.stride + ky) as isize - g.pad_top as isize;
        if iy < 0 || iy as usize >= g.h {
            continue;
        }
        let line = iy as usize * g.w;
        let src = &column[ky * seg..(ky + 1) * seg];
        if full_x {
            let s = (line + ix0 as usize) * ci;
            dimg[s..s + seg]
                .iter_mut()
                .zip(src)
                .for_each(|(d, v)| *d += v);
            continue;
        }
        for kx in 0..g.kw {
            let ix = ix0 + kx as isize;
            if ix < 0 || ix as usize >= g.w {
                continue;
            }
            let s = (line + ix as usize) * ci;
            dimg[s..s + ci]
                .iter_mut()
                .zip(&src[kx * ci..(kx + 1) * ci])
                .for_each(|(d, v)| *d += v);
        }
    }
}
