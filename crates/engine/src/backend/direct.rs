//! Direct AVX-512 kernels for convolutions whose receptive field is small (`patch = kh·kw·c_in`
//! of 9, 18, 25 or 27: a first 3x3 or 5x5 layer on grey, two-channel or RGB images) and whose
//! output channel count is a multiple of 16.
//!
//! With so short a reduction a packed GEMM spends its time packing and writing, and the bias and
//! activation need a second pass over the output. Here a block of 16 output channels (one zmm
//! register) of four output pixels at a time is computed in registers — each of the pixel's
//! `patch` im2col values broadcast against row `t` of the transposed kernel `wt [patch, c_out]` —
//! then bias and activation are applied and the rows are written once. The weight gradient is the
//! mirror image: per block of 16 channels, `patch` register accumulators of `dz[r, block] ·
//! cols[r, t]` summed over all rows of the micro-batch, plus one for the bias.
//!
//! Both take im2col rows (`cols [rows, patch]`), so padding and stride are handled by the shared
//! im2col (cheap here: `patch` values per pixel against `c_out` outputs). The patch length is a
//! const generic so the accumulator arrays live in registers. Anything else, and CPUs without
//! AVX-512, use the im2col + GEMM path.

use super::simd::{level, Level};
use super::ConvGeom;
use crate::Activation;

/// Output channels per register block.
const L: usize = 16;

/// Whether [`forward`] and [`backward_weights`] handle this convolution on this CPU.
pub(super) fn supports(g: &ConvGeom) -> bool {
    matches!(g.patch(), 9 | 18 | 25 | 27) && g.c_out.is_multiple_of(L) && level() == Level::Avx512
}

/// `wt[t, c] = w[c, t]` for a kernel `w [c_out, patch]`.
pub(super) fn transpose_kernel(wt: &mut [f32], w: &[f32], c_out: usize, patch: usize) {
    for (c, row) in w.chunks_exact(patch).enumerate().take(c_out) {
        for (t, &v) in row.iter().enumerate() {
            wt[t * c_out + c] = v;
        }
    }
}

/// Calls `$f::<P>($args)` with the patch length as a constant.
macro_rules! by_patch {
    ($patch:expr, $f:ident($($a:expr),*)) => {
        match $patch {
            9 => $f::<9>($($a),*),
            18 => $f::<18>($($a),*),
            25 => $f::<25>($($a),*),
            27 => $f::<27>($($a),*),
            p => unreachable!("direct conv: unsupported patch {p}"),
        }
    };
}

/// `y[r, :] = act(bias + Σ_t cols[r, t] · wt[t, :])` for every row `r` of `y [rows, c_out]`;
/// `pre`, when given, receives the value before the activation. Requires [`supports`].
#[allow(clippy::too_many_arguments)]
pub(super) fn forward(
    y: &mut [f32],
    pre: Option<&mut [f32]>,
    cols: &[f32],
    wt: &[f32],
    bias: Option<&[f32]>,
    patch: usize,
    c_out: usize,
    act: Activation,
) {
    let rows = y.len() / c_out;
    assert!(level() == Level::Avx512 && c_out.is_multiple_of(L));
    assert!(cols.len() >= rows * patch && wt.len() >= patch * c_out);
    assert!(bias.is_none_or(|b| b.len() >= c_out));
    assert!(pre.as_ref().is_none_or(|p| p.len() >= y.len()));
    #[cfg(target_arch = "x86_64")]
    // SAFETY: AVX-512 is present (asserted); every pointer offset the kernel forms is within the
    // lengths asserted above (`rows` rows of `y`/`pre`/`cols`, `patch` rows of `wt`, `c_out`
    // biases).
    unsafe {
        let pre = pre.map(|p| p.as_mut_ptr());
        let bias = bias.map(|b| b.as_ptr());
        let (y, cols, wt) = (y.as_mut_ptr(), cols.as_ptr(), wt.as_ptr());
        by_patch!(
            patch,
            forward_avx512(y, pre, cols, wt, bias, rows, c_out, act)
        );
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn forward_avx512<const P: usize>(
    y: *mut f32,
    pre: Option<*mut f32>,
    cols: *const f32,
    wt: *const f32,
    bias: Option<*const f32>,
    rows: usize,
    co: usize,
    act: Activation,
) {
    use std::arch::x86_64::*;
    // Rows per register group: four independent FMA chains hide the FMA latency.
    const R: usize = 4;
    let zero = _mm512_setzero_ps();
    let out = Out { y, pre, act };
    for c0 in (0..co).step_by(L) {
        let mut w = [zero; P];
        for (t, wv) in w.iter_mut().enumerate() {
            *wv = _mm512_loadu_ps(wt.add(t * co + c0));
        }
        let b = match bias {
            Some(b) => _mm512_loadu_ps(b.add(c0)),
            None => zero,
        };
        let full = rows / R * R;
        for r in (0..full).step_by(R) {
            forward_rows::<P, R>(&out, cols, &w, b, r, co, c0);
        }
        for r in full..rows {
            forward_rows::<P, 1>(&out, cols, &w, b, r, co, c0);
        }
    }
}

/// Where [`forward_rows`] writes.
#[cfg(target_arch = "x86_64")]
struct Out {
    y: *mut f32,
    pre: Option<*mut f32>,
    act: Activation,
}

/// Rows `r..r + N`, channels `c0..c0 + L` of the forward pass.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn forward_rows<const P: usize, const N: usize>(
    out: &Out,
    cols: *const f32,
    w: &[std::arch::x86_64::__m512; P],
    b: std::arch::x86_64::__m512,
    r: usize,
    co: usize,
    c0: usize,
) {
    use std::arch::x86_64::*;
    let mut acc = [b; N];
    for (t, wv) in w.iter().enumerate() {
        for (i, a) in acc.iter_mut().enumerate() {
            let x = _mm512_set1_ps(*cols.add((r + i) * P + t));
            *a = _mm512_fmadd_ps(x, *wv, *a);
        }
    }
    for (i, a) in acc.iter().enumerate() {
        let o = (r + i) * co + c0;
        if let Some(pre) = out.pre {
            _mm512_storeu_ps(pre.add(o), *a);
        }
        let v = match out.act {
            Activation::Linear => *a,
            Activation::Relu => _mm512_max_ps(*a, _mm512_setzero_ps()),
            act => {
                let mut lanes = [0f32; L];
                _mm512_storeu_ps(lanes.as_mut_ptr(), *a);
                lanes.iter_mut().for_each(|v| *v = act.apply(*v));
                _mm512_loadu_ps(lanes.as_ptr())
            }
        };
        _mm512_storeu_ps(out.y.add(o), v);
    }
}

/// Accumulates the weight and bias gradients of `rows` output rows: `dw[c, t] += Σ_r dz[r, c] ·
/// cols[r, t]` (`dw [c_out, patch]`, the kernel's own layout) and `db[c] += Σ_r dz[r, c]`, where
/// `dz = dy`, or with `relu_out` (the forward's ReLU output) `dz = dy · [relu_out > 0]` — the
/// ReLU backward fused in, so `dz` is never written out. Requires [`supports`].
pub(super) fn backward_weights(
    dw: &mut [f32],
    db: &mut [f32],
    dy: &[f32],
    relu_out: Option<&[f32]>,
    cols: &[f32],
    patch: usize,
    c_out: usize,
) {
    let rows = dy.len() / c_out;
    assert!(level() == Level::Avx512 && c_out.is_multiple_of(L));
    assert!(cols.len() >= rows * patch && dw.len() >= c_out * patch && db.len() >= c_out);
    assert!(relu_out.is_none_or(|y| y.len() >= dy.len()));
    #[cfg(target_arch = "x86_64")]
    // SAFETY: AVX-512 is present (asserted); offsets stay within `rows` rows of `dy`, `relu_out`
    // and `cols`, and `c_out` rows of `dw` and entries of `db` (asserted above).
    unsafe {
        let (dw, db, dy, cols) = (dw.as_mut_ptr(), db.as_mut_ptr(), dy.as_ptr(), cols.as_ptr());
        let y = relu_out.map(|y| y.as_ptr());
        by_patch!(
            patch,
            backward_weights_avx512(dw, db, dy, y, cols, rows, c_out)
        );
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn backward_weights_avx512<const P: usize>(
    dw: *mut f32,
    db: *mut f32,
    dy: *const f32,
    relu_out: Option<*const f32>,
    cols: *const f32,
    rows: usize,
    co: usize,
) {
    use std::arch::x86_64::*;
    let zero = _mm512_setzero_ps();
    for c0 in (0..co).step_by(L) {
        let mut acc = [zero; P];
        let mut bacc = zero;
        for r in 0..rows {
            let o = r * co + c0;
            let mut d = _mm512_loadu_ps(dy.add(o));
            if let Some(y) = relu_out {
                let live = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(_mm512_loadu_ps(y.add(o)), zero);
                d = _mm512_maskz_mov_ps(live, d);
            }
            bacc = _mm512_add_ps(bacc, d);
            for (t, a) in acc.iter_mut().enumerate() {
                *a = _mm512_fmadd_ps(_mm512_set1_ps(*cols.add(r * P + t)), d, *a);
            }
        }
        let mut lanes = [0f32; L];
        _mm512_storeu_ps(lanes.as_mut_ptr(), bacc);
        for (l, v) in lanes.iter().enumerate() {
            *db.add(c0 + l) += v;
        }
        for (t, a) in acc.iter().enumerate() {
            _mm512_storeu_ps(lanes.as_mut_ptr(), *a);
            for (l, v) in lanes.iter().enumerate() {
                *dw.add((c0 + l) * P + t) += v;
            }
        }
    }
}

/// im2col for the direct path (`cols [nb·oh·ow, patch]`): a pixel whose window lies inside the
/// image gathers its `patch` values through a table of offsets (a few loads and stores, where the
/// generic im2col spends its time on per-segment bookkeeping for segments of 3 values); windows
/// that touch the padding take the per-value path.
pub(super) fn im2col(cols: &mut [f32], x: &[f32], nb: usize, g: &ConvGeom) {
    by_patch!(g.patch(), im2col_const(cols, x, nb, g))
}

fn im2col_const<const P: usize>(cols: &mut [f32], x: &[f32], nb: usize, g: &ConvGeom) {
    let (ci, kw) = (g.c_in, g.kw);
    let off: [usize; P] = std::array::from_fn(|t| {
        let (ky, kx, c) = (t / (kw * ci), t / ci % kw, t % ci);
        (ky * g.w + kx) * ci + c
    });
    let img = g.h * g.w * ci;
    let rows = cols[..nb * g.oh * g.ow * P].chunks_exact_mut(P);
    let pixels =
        (0..nb).flat_map(|n| (0..g.oh).flat_map(move |oy| (0..g.ow).map(move |ox| (n, oy, ox))));
    for (row, (n, oy, ox)) in rows.zip(pixels) {
        let ximg = &x[n * img..(n + 1) * img];
        let iy0 = (oy * g.stride) as isize - g.pad_top as isize;
        let ix0 = (ox * g.stride) as isize - g.pad_left as isize;
        let inside =
            iy0 >= 0 && ix0 >= 0 && iy0 as usize + g.kh <= g.h && ix0 as usize + g.kw <= g.w;
        if inside {
            let base = (iy0 as usize * g.w + ix0 as usize) * ci;
            let win = &ximg[base..base + off[P - 1] + 1];
            for (v, &o) in row.iter_mut().zip(&off) {
                *v = win[o];
            }
        } else {
            for (t, v) in row.iter_mut().enumerate() {
                let (ky, kx, c) = (t / (kw * ci), t / ci % kw, t % ci);
                let (iy, ix) = (iy0 + ky as isize, ix0 + kx as isize);
                *v = if iy < 0 || ix < 0 || iy as usize >= g.h || ix as usize >= g.w {
                    0.0
                } else {
                    ximg[(iy as usize * g.w + ix as usize) * ci + c]
                };
            }
        }
    }
}
