//! Winograd F(4x4, 3x3) forward convolution for stride-1 3x3 layers with many channels (the
//! second conv of the seed CNN: 13x13x32 → 11x11x64; and, through [`input_grad_geom`], the
//! input gradient of such a layer).
//!
//! Each 4x4 block of outputs ("tile") needs a 6x6 block of input. With the matrices of Lavin &
//! Gray (2015) for the interpolation points 0, ±1, ±2, ∞
//!
//! ```text
//! Bᵀ = [4  0 -5  0 1 0]   G = [ 1/4     0     0 ]   Aᵀ = [1 1  1 1  1 0]
//!      [0 -4 -4  1 1 0]       [-1/6  -1/6  -1/6 ]        [0 1 -1 2 -2 0]
//!      [0  4 -4 -1 1 0]       [-1/6   1/6  -1/6 ]        [0 1  1 4  4 0]
//!      [0 -2 -1  2 1 0]       [1/24  1/12   1/6 ]        [0 1 -1 8 -8 1]
//!      [0  2 -1 -2 1 0]       [1/24 -1/12   1/6 ]
//!      [0  4  0 -5 0 1]       [ 0     0      1  ]
//! ```
//!
//! `Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A`, and summing over input channels turns the element-wise
//! product into 36 independent GEMMs `M[e] [tiles, c_out] = V[e] [tiles, c_in] · U[e] [c_in,
//! c_out]` (one per position `e` of the 6x6 transformed tile), run by [`panel_gemm`]. That is
//! 36·c_in·c_out multiplies per 16 outputs instead of 144·c_in·c_out: 4x fewer (less when tiles
//! overhang the output's edge: 11x11 outputs take 3x3 tiles, 1.78x fewer multiplies than
//! F(2x2, 3x3)'s 6x6 tiles of 16 positions). The larger tile's transforms amplify rounding a
//! little more (the tests bound the error against the plain GEMM path). Transforms are
//! vectorised over 16 channels at a time; the output transform adds the bias and applies the
//! activation while writing `y` once.
//!
//! Layouts: `u [36, c_in, c_out]`, per micro-batch `v [tiles, 36, c_in]`, `m [tiles, 36,
//! c_out]`, tiles ordered (image, tile row, tile column).
//!
//! [`panel_gemm`]: super::panel_gemm

use super::simd::{level, Level};
use super::ConvGeom;
use crate::Activation;

/// Channels per vector block in the transforms.
const L: usize = 16;
/// Outputs per tile side.
const OUT: usize = 4;
/// Input pixels per tile side (`OUT + 2`).
const SIDE: usize = 6;
/// Positions of a transformed tile: one GEMM each.
pub(super) const POSITIONS: usize = SIDE * SIDE;

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
    (g.oh.div_ceil(OUT), g.ow.div_ceil(OUT))
}

/// Length of the transformed kernel `u`.
pub(super) fn kernel_len(g: &ConvGeom) -> usize {
    POSITIONS * g.c_in * g.c_out
}

/// `G`, in f64 so that the kernel transform rounds only once, to the final f32.
const G: [[f64; 3]; SIDE] = [
    [0.25, 0.0, 0.0],
    [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
    [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
    [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
    [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
    [0.0, 0.0, 1.0],
];

/// `u[e, ci, co] = (G · w[co, :, :, ci] · Gᵀ)[e]` for a kernel `w [c_out, 3, 3, c_in]`.
pub(super) fn transform_kernel(u: &mut [f32], w: &[f32], g: &ConvGeom) {
    let (ci, co) = (g.c_in, g.c_out);
    assert!(u.len() >= kernel_len(g) && w.len() >= co * 9 * ci);
    for o in 0..co {
        for c in 0..ci {
            let k = |ky: usize, kx: usize| w[((o * 3 + ky) * 3 + kx) * ci + c] as f64;
            // t = G · k  (6x3)
            let t: [[f64; 3]; SIDE] = std::array::from_fn(|i| {
                std::array::from_fn(|j| (0..3).map(|r| G[i][r] * k(r, j)).sum())
            });
            // t · Gᵀ  (6x6)
            for (i, row) in t.iter().enumerate() {
                for (j, gj) in G.iter().enumerate() {
                    let v: f64 = (0..3).map(|r| row[r] * gj[r]).sum();
                    u[((i * SIDE + j) * ci + c) * co + o] = v as f32;
                }
            }
        }
    }
}

/// `Bᵀ d` for one column `d` of six vectors.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn bt(d: [std::arch::x86_64::__m512; SIDE]) -> [std::arch::x86_64::__m512; SIDE] {
    use std::arch::x86_64::*;
    let (two, four, five) = (
        _mm512_set1_ps(2.0),
        _mm512_set1_ps(4.0),
        _mm512_set1_ps(5.0),
    );
    let d42 = _mm512_sub_ps(d[4], d[2]);
    [
        // 4 d0 - 5 d2 + d4
        _mm512_fmadd_ps(four, d[0], _mm512_fnmadd_ps(five, d[2], d[4])),
        // -4 (d1 + d2) + d3 + d4
        _mm512_fnmadd_ps(four, _mm512_add_ps(d[1], d[2]), _mm512_add_ps(d[3], d[4])),
        // 4 (d1 - d2) - d3 + d4
        _mm512_fmadd_ps(four, _mm512_sub_ps(d[1], d[2]), _mm512_sub_ps(d[4], d[3])),
        // 2 (d3 - d1) - d2 + d4
        _mm512_fmadd_ps(two, _mm512_sub_ps(d[3], d[1]), d42),
        // 2 (d1 - d3) - d2 + d4
        _mm512_fmadd_ps(two, _mm512_sub_ps(d[1], d[3]), d42),
        // 4 d1 - 5 d3 + d5
        _mm512_fmadd_ps(four, d[1], _mm512_fnmadd_ps(five, d[3], d[5])),
    ]
}

/// `Aᵀ m` for one column `m` of six vectors.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn at(m: [std::arch::x86_64::__m512; SIDE]) -> [std::arch::x86_64::__m512; OUT] {
    use std::arch::x86_64::*;
    let (s12, d12) = (_mm512_add_ps(m[1], m[2]), _mm512_sub_ps(m[1], m[2]));
    let (s34, d34) = (_mm512_add_ps(m[3], m[4]), _mm512_sub_ps(m[3], m[4]));
    [
        _mm512_add_ps(_mm512_add_ps(m[0], s12), s34),
        _mm512_fmadd_ps(_mm512_set1_ps(2.0), d34, d12),
        _mm512_fmadd_ps(_mm512_set1_ps(4.0), s34, s12),
        _mm512_add_ps(_mm512_fmadd_ps(_mm512_set1_ps(8.0), d34, d12), m[5]),
    ]
}

/// Rows of `m` as columns (the transforms work column by column, then row by row).
#[inline(always)]
fn transpose<T: Copy, const R: usize, const C: usize>(m: [[T; R]; C]) -> [[T; C]; R] {
    std::array::from_fn(|i| std::array::from_fn(|j| m[j][i]))
}

/// `v[tile, e, :] = (Bᵀ d B)[e]` for every tile of `nb` images of `x [nb, h, w, c_in]`;
/// `zeros` (at least `c_in` zeros) stands in for padding pixels.
fn input_transform(v: &mut [f32], x: &[f32], zeros: &[f32], nb: usize, g: &ConvGeom) {
    let (th, tw) = tiles(g);
    assert!(level() == Level::Avx512 && g.c_in.is_multiple_of(L));
    assert!(v.len() >= POSITIONS * nb * th * tw * g.c_in);
    assert!(x.len() >= nb * g.h * g.w * g.c_in);
    assert!(zeros.len() >= g.c_in && zeros.iter().all(|&z| z == 0.0));
    #[cfg(target_arch = "x86_64")]
    // SAFETY: AVX-512 is present (asserted); every pixel read is inside image `n` of `x` (the
    // bounds check below) or in `zeros`, and writes stay within `36·nb·th·tw·c_in` (asserted).
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
                // The 6x6 input pixels of this tile (padding and overhang read zeros).
                let mut src = [[zeros; SIDE]; SIDE];
                for (i, row) in src.iter_mut().enumerate() {
                    let iy = (OUT * ty + i) as isize - g.pad_top as isize;
                    if iy < 0 || iy as usize >= g.h {
                        continue;
                    }
                    for (j, p) in row.iter_mut().enumerate() {
                        let ix = (OUT * tx + j) as isize - g.pad_left as isize;
                        if ix >= 0 && (ix as usize) < g.w {
                            *p = ximg.add((iy as usize * g.w + ix as usize) * ci);
                        }
                    }
                }
                let out = v.add(tile * POSITIONS * ci);
                for c0 in (0..ci).step_by(L) {
                    // t = Bᵀ d, one column j at a time; then out = t B, one row i at a time.
                    let cols: [_; SIDE] = std::array::from_fn(|j| {
                        bt(std::array::from_fn(|i| _mm512_loadu_ps(src[i][j].add(c0))))
                    });
                    for (i, row) in transpose(cols).into_iter().enumerate() {
                        for (j, ov) in bt(row).into_iter().enumerate() {
                            _mm512_storeu_ps(out.add((i * SIDE + j) * ci + c0), ov);
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
/// `pre` receives the value before the activation. (Written with intrinsics: LLVM left the
/// portable version of this loop scalar.)
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
    assert!(m.len() >= POSITIONS * nb * th * tw * g.c_out);
    assert!(y.len() >= nb * g.oh * g.ow * g.c_out);
    assert!(pre.as_ref().is_none_or(|p| p.len() >= y.len()));
    assert!(bias.is_none_or(|b| b.len() >= g.c_out));
    #[cfg(target_arch = "x86_64")]
    // SAFETY: AVX-512 is present (asserted); `m` holds `nb·th·tw` tiles of 36 positions of
    // `c_out` values and `y`/`pre` hold `nb` images of `oh·ow·c_out` (asserted), and the kernel
    // only forms offsets inside those (outputs past `oh`/`ow` are skipped).
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
                    let ld = |e: usize| _mm512_loadu_ps(m.add((tile * POSITIONS + e) * co + c0));
                    // t = Aᵀ m (4x6), one column j at a time.
                    let cols: [_; SIDE] =
                        std::array::from_fn(|j| at(std::array::from_fn(|i| ld(i * SIDE + j))));
                    let b = match bias {
                        Some(b) => _mm512_loadu_ps(b.add(c0)),
                        None => zero,
                    };
                    for (i, row) in transpose(cols).into_iter().enumerate() {
                        let oy = OUT * ty + i;
                        if oy >= g.oh {
                            break;
                        }
                        // out = t A + b, one row at a time.
                        for (j, v) in at(row).into_iter().enumerate() {
                            let ox = OUT * tx + j;
                            if ox >= g.ow {
                                break;
                            }
                            let v = _mm512_add_ps(v, b);
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

/// Images per micro-batch: about `MODELSMITH_WINO_TILES` (default 64) tiles, so `v` and `m`
/// stay in L2 (64 tiles of 36 positions: 295 KB of `v` and 590 KB of `m` at 32 → 64 channels).
pub(super) fn micro_batch(g: &ConvGeom) -> usize {
    static T: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let target = *T.get_or_init(|| {
        std::env::var("MODELSMITH_WINO_TILES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(64)
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
    assert!(u.len() >= kernel_len(g));
    let mut i0 = 0;
    while i0 < imgs {
        let nb = mb.min(imgs - i0);
        let t = nb * th * tw;
        super::cpu::ensure(bufs.v, POSITIONS * t * ci);
        super::cpu::ensure(bufs.m, POSITIONS * t * co);
        input_transform(
            bufs.v,
            &x[i0 * in_img..(i0 + nb) * in_img],
            bufs.zeros,
            nb,
            g,
        );
        assert!(bufs.v.len() >= POSITIONS * t * ci && bufs.m.len() >= POSITIONS * t * co);
        for e in 0..POSITIONS {
            // M[:, e, :] [t, co] = V[:, e, :] [t, ci] · U[e] [ci, co]; V and M interleave the 36
            // positions per tile (row stride 36·c), so each tile's transforms read and write one
            // contiguous block. The panel kernel reads those strided rows in place.
            super::panel_gemm::gemm(
                t,
                co,
                ci,
                &bufs.v[e * ci..],
                (POSITIONS * ci, 1),
                &u[e * ci * co..(e + 1) * ci * co],
                &mut bufs.m[e * co..],
                POSITIONS * co,
                false,
            );
        }
        let span = i0 * out_img..(i0 + nb) * out_img;
        let p = pre.as_deref_mut().map(|p| &mut p[span.clone()]);
        let m = &bufs.m[..POSITIONS * t * co];
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
