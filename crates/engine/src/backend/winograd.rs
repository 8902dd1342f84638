//! Winograd F(2x2, 3x3) forward convolution for stride-1 3x3 layers with many channels (the
//! second conv of the seed CNN: 13x13x32 → 11x11x64).
//!
//! Each 2x2 block of outputs ("tile") needs a 4x4 block of input. With the standard matrices
//! (Lavin & Gray 2015)
//!
//! ```text
//! Bᵀ = [1  0 -1  0]   G = [ 1    0    0 ]   Aᵀ = [1 1  1  0]
//!      [0  1  1  0]       [ ½    ½    ½ ]        [0 1 -1 -1]
//!      [0 -1  1  0]       [ ½   -½    ½ ]
//!      [0  1  0 -1]       [ 0    0    1 ]
//! ```
//!
//! `Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A`, and summing over input channels turns the element-wise
//! product into 16 independent GEMMs `M[e] [tiles, c_out] = V[e] [tiles, c_in] · U[e] [c_in,
//! c_out]` (one per position `e` of the 4x4 transformed tile). That is 16·c_in·c_out multiplies
//! per 4 outputs instead of 36·c_in·c_out: 2.25x fewer (a little less when tiles overhang an odd
//! output edge). Transforms are vectorised over 16 channels at a time; the output transform adds
//! the bias and applies the activation while writing `y` once.
//!
//! Layouts: `u [16, c_in, c_out]`, per micro-batch `v [16, tiles, c_in]`, `m [16, tiles, c_out]`,
//! tiles ordered (image, tile row, tile column).

use super::simd::{level, Level};
use super::ConvGeom;
use crate::Activation;

/// Channels per vector block in the transforms.
const L: usize = 16;

/// Whether the Winograd path handles this convolution: 3x3, stride 1, and channel counts that
/// are multiples of 16 and large enough for the GEMMs to dominate the transforms.
pub(super) fn supports(g: &ConvGeom) -> bool {
    g.kh == 3
        && g.kw == 3
        && g.stride == 1
        && g.c_in >= 16
        && g.c_in.is_multiple_of(L)
        && g.c_out.is_multiple_of(L)
        && level() == Level::Avx512
}

/// Tiles per image: `(tile rows, tile columns)`.
pub(super) fn tiles(g: &ConvGeom) -> (usize, usize) {
    (g.oh.div_ceil(2), g.ow.div_ceil(2))
}

/// `u[e, ci, co] = (G · w[co, :, :, ci] · Gᵀ)[e]` for a kernel `w [c_out, 3, 3, c_in]`.
pub(super) fn transform_kernel(u: &mut [f32], w: &[f32], g: &ConvGeom) {
    let (ci, co) = (g.c_in, g.c_out);
    for o in 0..co {
        for c in 0..ci {
            let k = |ky: usize, kx: usize| w[((o * 3 + ky) * 3 + kx) * ci + c];
            // t = G · k  (4x3), one column j at a time.
            let col = |j: usize| {
                let (a, b, d) = (k(0, j), k(1, j), k(2, j));
                [a, 0.5 * (a + b + d), 0.5 * (a - b + d), d]
            };
            let cols = [col(0), col(1), col(2)];
            let t: [[f32; 3]; 4] = std::array::from_fn(|i| [cols[0][i], cols[1][i], cols[2][i]]);
            // t · Gᵀ  (4x4)
            for (i, r) in t.iter().enumerate() {
                let (a, b, d) = (r[0], r[1], r[2]);
                let row = [a, 0.5 * (a + b + d), 0.5 * (a - b + d), d];
                for (j, v) in row.into_iter().enumerate() {
                    u[((i * 4 + j) * ci + c) * co + o] = v;
                }
            }
        }
    }
}

/// `v[tile, e, :] = (Bᵀ d B)[e]` for every tile of `nb` images of `x [nb, h, w, c_in]`;
/// `zeros` (at least `c_in` zeros) stands in for padding pixels.
fn input_transform(v: &mut [f32], x: &[f32], zeros: &[f32], nb: usize, g: &ConvGeom) {
    let (th, tw) = tiles(g);
    assert!(level() == Level::Avx512 && g.c_in.is_multiple_of(L));
    assert!(v.len() >= 16 * nb * th * tw * g.c_in && x.len() >= nb * g.h * g.w * g.c_in);
    assert!(zeros.len() >= g.c_in && zeros.iter().all(|&z| z == 0.0));
    #[cfg(target_arch = "x86_64")]
    // SAFETY: AVX-512 is present (asserted); every pixel read is inside image `n` of `x` (the
    // bounds check below) or in `zeros`, and writes stay within `16·nb·th·tw·c_in` (asserted).
    unsafe {
        input_transform_avx512(v.as_mut_ptr(), x.as_ptr(), zeros.as_ptr(), nb, g);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn input_transform_avx512(
    v: *mut f32,
    x: *const f32,
    zeros: *const f32,
    nb: usize,
    g: &ConvGeom,
) {
    use std::arch::x86_64::*;
    let ci = g.c_in;
    let (th, tw) = tiles(g);
    let img = g.h * g.w * ci;
    let mut tile = 0;
    for n in 0..nb {
        let ximg = x.add(n * img);
        for ty in 0..th {
            for tx in 0..tw {
                // The 4x4 input pixels of this tile (padding and overhang read zeros).
                let mut src = [[zeros; 4]; 4];
                for (i, row) in src.iter_mut().enumerate() {
                    let iy = (2 * ty + i) as isize - g.pad_top as isize;
                    if iy < 0 || iy as usize >= g.h {
                        continue;
                    }
                    for (j, p) in row.iter_mut().enumerate() {
                        let ix = (2 * tx + j) as isize - g.pad_left as isize;
                        if ix >= 0 && (ix as usize) < g.w {
                            *p = ximg.add((iy as usize * g.w + ix as usize) * ci);
                        }
                    }
                }
                let out = v.add(tile * 16 * ci);
                for c0 in (0..ci).step_by(L) {
                    // t = Bᵀ d: rows d0 - d2, d1 + d2, d2 - d1, d1 - d3 (per column j).
                    let mut t = [[_mm512_setzero_ps(); 4]; 4];
                    for j in 0..4 {
                        let d = |i: usize| _mm512_loadu_ps(src[i][j].add(c0));
                        let (d0, d1, d2, d3) = (d(0), d(1), d(2), d(3));
                        t[0][j] = _mm512_sub_ps(d0, d2);
                        t[1][j] = _mm512_add_ps(d1, d2);
                        t[2][j] = _mm512_sub_ps(d2, d1);
                        t[3][j] = _mm512_sub_ps(d1, d3);
                    }
                    // out = t B: the same combination along each row.
                    for (i, r) in t.iter().enumerate() {
                        let o = [
                            _mm512_sub_ps(r[0], r[2]),
                            _mm512_add_ps(r[1], r[2]),
                            _mm512_sub_ps(r[2], r[1]),
                            _mm512_sub_ps(r[1], r[3]),
                        ];
                        for (j, ov) in o.into_iter().enumerate() {
                            _mm512_storeu_ps(out.add((i * 4 + j) * ci + c0), ov);
                        }
                    }
                }
                tile += 1;
            }
        }
    }
}

/// `y = act(Aᵀ m A + bias)` (or `y += …` when `accumulate`) for every tile of `nb` images
/// (`y [nb, oh, ow, c_out]`), dropping outputs of tiles that overhang the bottom or right edge;
/// `pre` receives the value before the activation. (Written with intrinsics: LLVM left the portable version of this loop scalar.)
#[allow(clippy::too_many_arguments)]
fn output_transform(
    y: &mut [f32],
    pre: Option<&mut [f32]>,
    m: &[f32],
    bias: Option<&[f32]>,
    nb: usize,
    g: &ConvGeom,
    act: Activation,
    accumulate: bool,
) {
    let (th, tw) = tiles(g);
    assert!(level() == Level::Avx512 && g.c_out.is_multiple_of(L));
    assert!(m.len() >= 16 * nb * th * tw * g.c_out && y.len() >= nb * g.oh * g.ow * g.c_out);
    assert!(pre.as_ref().is_none_or(|p| p.len() >= y.len()));
    assert!(bias.is_none_or(|b| b.len() >= g.c_out));
    #[cfg(target_arch = "x86_64")]
    // SAFETY: AVX-512 is present (asserted); `m` holds 16 planes of `nb·th·tw` tiles of `c_out`
    // values and `y`/`pre` hold `nb` images of `oh·ow·c_out` (asserted), and the kernel only forms
    // offsets inside those (outputs past `oh`/`ow` are skipped).
    unsafe {
        output_transform_avx512(
            y.as_mut_ptr(),
            pre.map(|p| p.as_mut_ptr()),
            m.as_ptr(),
            bias.map(|b| b.as_ptr()),
            nb,
            g,
            act,
            accumulate,
        );
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn output_transform_avx512(
    y: *mut f32,
    pre: Option<*mut f32>,
    m: *const f32,
    bias: Option<*const f32>,
    nb: usize,
    g: &ConvGeom,
    act: Activation,
    accumulate: bool,
) {
    use std::arch::x86_64::*;
    let co = g.c_out;
    let (th, tw) = tiles(g);
    let img = g.oh * g.ow * co;
    let zero = _mm512_setzero_ps();
    let mut tile = 0;
    for n in 0..nb {
        for ty in 0..th {
            for tx in 0..tw {
                for c0 in (0..co).step_by(L) {
                    let ld = |e: usize| _mm512_loadu_ps(m.add((tile * 16 + e) * co + c0));
                    // t = Aᵀ m: row 0 = m0 + m1 + m2, row 1 = m1 - m2 - m3 (rows of 4).
                    let mut t0 = [zero; 4];
                    let mut t1 = [zero; 4];
                    for j in 0..4 {
                        let (a0, a1, a2, a3) = (ld(j), ld(4 + j), ld(8 + j), ld(12 + j));
                        t0[j] = _mm512_add_ps(_mm512_add_ps(a0, a1), a2);
                        t1[j] = _mm512_sub_ps(_mm512_sub_ps(a1, a2), a3);
                    }
                    let b = match bias {
                        Some(b) => _mm512_loadu_ps(b.add(c0)),
                        None => zero,
                    };
                    for (i, r) in [t0, t1].iter().enumerate() {
                        let oy = 2 * ty + i;
                        if oy >= g.oh {
                            continue;
                        }
                        // out = t A + b: column 0 = r0 + r1 + r2, column 1 = r1 - r2 - r3.
                        let o0 = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(r[0], r[1]), r[2]), b);
                        let o1 = _mm512_add_ps(_mm512_sub_ps(_mm512_sub_ps(r[1], r[2]), r[3]), b);
                        for (j, v) in [o0, o1].into_iter().enumerate() {
                            let ox = 2 * tx + j;
                            if ox >= g.ow {
                                continue;
                            }
                            let at = n * img + (oy * g.ow + ox) * co + c0;
                            if let Some(p) = pre {
                                _mm512_storeu_ps(p.add(at), v);
                            }
                            let v = match act {
                                Activation::Linear => v,
                                Activation::Relu => _mm512_max_ps(v, zero),
                                a => {
                                    let mut lanes = [0f32; L];
                                    _mm512_storeu_ps(lanes.as_mut_ptr(), v);
                                    lanes.iter_mut().for_each(|x| *x = a.apply(*x));
                                    _mm512_loadu_ps(lanes.as_ptr())
                                }
                            };
                            let v = if accumulate {
                                _mm512_add_ps(_mm512_loadu_ps(y.add(at)), v)
                            } else {
                                v
                            };
                            _mm512_storeu_ps(y.add(at), v);
                        }
                    }
                }
                tile += 1;
            }
        }
    }
}

/// Images per micro-batch: about `MODELSMITH_WINO_TILES` (default 144) tiles, so `v` and `m`
/// stay in L2.
pub(super) fn micro_batch(g: &ConvGeom) -> usize {
    static T: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let target = *T.get_or_init(|| {
        std::env::var("MODELSMITH_WINO_TILES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(144)
    });
    let (th, tw) = tiles(g);
    (target / (th * tw).max(1)).max(1)
}

/// Per-thread buffers of the Winograd forward pass.
pub(super) struct Bufs<'a> {
    pub v: &'a mut Vec<f32>,
    pub m: &'a mut Vec<f32>,
    pub zeros: &'a mut Vec<f32>,
}

/// Forward convolution of `imgs` images on the calling thread (`y = act(conv + bias)`, or
/// `y += conv` when `accumulate`, which requires no bias, no `pre` and a linear activation);
/// `u` from [`transform_kernel`].
#[allow(clippy::too_many_arguments)]
pub(super) fn forward_chunk(
    y: &mut [f32],
    mut pre: Option<&mut [f32]>,
    x: &[f32],
    u: &[f32],
    bias: Option<&[f32]>,
    g: &ConvGeom,
    act: Activation,
    bufs: Bufs<'_>,
    imgs: usize,
    accumulate: bool,
) {
    assert!(!accumulate || (bias.is_none() && pre.is_none() && act == Activation::Linear));
    let (ci, co) = (g.c_in, g.c_out);
    let (th, tw) = tiles(g);
    let (in_img, out_img) = (g.h * g.w * ci, g.oh * g.ow * co);
    let mb = micro_batch(g);
    // The layer's scratch is shared with the backward pass, which leaves other data here.
    bufs.zeros.clear();
    bufs.zeros.resize(ci, 0.0);
    assert!(u.len() >= 16 * ci * co);
    let mut i0 = 0;
    while i0 < imgs {
        let nb = mb.min(imgs - i0);
        let t = nb * th * tw;
        super::cpu::ensure(bufs.v, 16 * t * ci);
        super::cpu::ensure(bufs.m, 16 * t * co);
        input_transform(
            bufs.v,
            &x[i0 * in_img..(i0 + nb) * in_img],
            bufs.zeros,
            nb,
            g,
        );
        assert!(bufs.v.len() >= 16 * t * ci && bufs.m.len() >= 16 * t * co);
        for e in 0..16 {
            // M[:, e, :] [t, co] = V[:, e, :] [t, ci] · U[e] [ci, co]; V and M interleave the 16
            // positions per tile (row stride 16·c), so each tile's transforms read and write one
            // contiguous block. The panel kernel reads those strided rows in place.
            super::panel_gemm::gemm(
                t,
                co,
                ci,
                &bufs.v[e * ci..],
                (16 * ci, 1),
                &u[e * ci * co..(e + 1) * ci * co],
                &mut bufs.m[e * co..],
                16 * co,
                false,
            );
        }
        let span = i0 * out_img..(i0 + nb) * out_img;
        let p = pre.as_deref_mut().map(|p| &mut p[span.clone()]);
        let m = &bufs.m[..16 * t * co];
        output_transform(&mut y[span], p, m, bias, nb, g, act, accumulate);
        i0 += nb;
    }
}

/// The input gradient of a stride-1 3x3 convolution `g` is itself a stride-1 3x3 convolution: of
/// `dz [n, oh, ow, c_out]` with the kernel rotated 180° and its channel axes swapped
/// ([`rotate_kernel`]), padded by `2 - pad` before, producing `[n, h, w, c_in]`. Returns that
/// geometry when the Winograd path handles it.
pub(super) fn input_grad_geom(g: &ConvGeom) -> Option<ConvGeom> {
    if g.kh != 3 || g.kw != 3 || g.stride != 1 || g.pad_top > 2 || g.pad_left > 2 {
        return None;
    }
    let d = ConvGeom {
        n: g.n,
        h: g.oh,
        w: g.ow,
        c_in: g.c_out,
        oh: g.h,
        ow: g.w,
        c_out: g.c_in,
        kh: 3,
        kw: 3,
        stride: 1,
        pad_top: 2 - g.pad_top,
        pad_left: 2 - g.pad_left,
    };
    supports(&d).then_some(d)
}

/// `wr[ci, ky, kx, co] = w[co, 2 - ky, 2 - kx, ci]` for a 3x3 kernel `w [c_out, 3, 3, c_in]`.
pub(super) fn rotate_kernel(wr: &mut [f32], w: &[f32], g: &ConvGeom) {
    let (ci, co) = (g.c_in, g.c_out);
    for o in 0..co {
        for ky in 0..3 {
            for kx in 0..3 {
                for c in 0..ci {
                    wr[((c * 3 + (2 - ky)) * 3 + (2 - kx)) * co + o] =
                        w[((o * 3 + ky) * 3 + kx) * ci + c];
                }
            }
        }
    }
}
