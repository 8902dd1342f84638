//! `Cpu`: the host backend. GEMMs run on the `gemm` crate; convolutions are NHWC im2col + GEMM
//! with the batch split into one coarse chunk per rayon thread (each thread keeps its own im2col
//! buffer and partial weight gradient, reduced once at the end), the bias and activation fused
//! into the GEMM's epilogue, and pooling and element-wise kernels split the same way.

use super::simd::{simd_fn, with_act};
use super::{bands, direct, sparse_grad, winograd};
use super::{Backend, ConvGeom, PoolGeom, Scratch};
use crate::Activation;
use gemm::Parallelism;
use rayon::prelude::*;

/// The CPU backend (stateless; see [`super::cpu`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct Cpu;

/// Target im2col rows per GEMM call inside one thread: keeps the column buffer and the output
/// block in L2 while giving the GEMM a long enough reduction for the weight gradient.
fn target_rows() -> usize {
    static ROWS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *ROWS.get_or_init(|| {
        std::env::var("MODELSMITH_CONV_ROWS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(512)
    })
}

/// Below this many multiply-adds a GEMM runs on one thread.
const PARALLEL_GEMM_MACS: usize = 1 << 18;

/// Element-wise kernels split across threads above this length.
const PARALLEL_ELEMS: usize = 1 << 16;

fn threads() -> usize {
    rayon::current_num_threads().max(1)
}

/// Splits `n` examples into at most one chunk per thread: (examples per chunk, number of chunks).
fn batch_split(n: usize) -> (usize, usize) {
    if n == 0 {
        return (1, 0);
    }
    let per = n.div_ceil(threads());
    (per, n.div_ceil(per))
}

/// Row-major `c[m, n] (+)= op(a) · op(b)` on the `gemm` crate.
#[allow(clippy::too_many_arguments)]
fn sgemm(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    trans_a: bool,
    b: &[f32],
    trans_b: bool,
    c: &mut [f32],
    accumulate: bool,
    par: Parallelism,
) {
    assert!(
        a.len() >= m * k,
        "gemm: lhs holds {} values, needs {}",
        a.len(),
        m * k
    );
    assert!(
        b.len() >= k * n,
        "gemm: rhs holds {} values, needs {}",
        b.len(),
        k * n
    );
    assert!(
        c.len() >= m * n,
        "gemm: dst holds {} values, needs {}",
        c.len(),
        m * n
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            c[..m * n].fill(0.0);
        }
        return;
    }
    // (row stride, column stride) of op(a) and op(b).
    let (a_rs, a_cs) = if trans_a { (1, m) } else { (k, 1) };
    if !trans_b && matches!(par, Parallelism::None) && super::panel_gemm::supports(n) {
        // Single-threaded with B's rows contiguous: the AVX-512 register-panel kernel, which
        // reads both operands in place instead of packing them.
        return super::panel_gemm::gemm(m, n, k, a, (a_rs, a_cs), b, c, n, accumulate);
    }
    let (a_rs, a_cs) = (a_rs as isize, a_cs as isize);
    let (b_rs, b_cs) = if trans_b {
        (1, k as isize)
    } else {
        (n as isize, 1)
    };
    // SAFETY: the asserts above guarantee every index the strides reach is in bounds, and `c`
    // is exclusively borrowed and does not alias `a` or `b`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.as_ptr(),
            a_cs,
            a_rs,
            b.as_ptr(),
            b_cs,
            b_rs,
            1.0,
            1.0,
            false,
            false,
            false,
            par,
        );
    }
}

simd_fn! {
    /// `y = act(y + bias)` on rows of `channels`; `pre` receives `y + bias` when given.
    fn bias_act_rows(
        y: &mut [f32],
        pre: Option<&mut [f32]>,
        bias: Option<&[f32]>,
        channels: usize,
        act: Activation,
    ) {
        if let Some(pre) = pre {
            for (row, prow) in y
                .chunks_exact_mut(channels)
                .zip(pre.chunks_exact_mut(channels))
            {
                if let Some(b) = bias {
                    row.iter_mut().zip(b).for_each(|(v, b)| *v += b);
                }
                prow.copy_from_slice(row);
                row.iter_mut().for_each(|v| *v = act.apply(*v));
            }
            return;
        }
        with_act!(act, |f| match bias {
            Some(b) => {
                for row in y.chunks_exact_mut(channels) {
                    for (v, b) in row.iter_mut().zip(b) {
                        *v = f(*v + b);
                    }
                }
            }
            None => {
                if act != Activation::Linear {
                    y.iter_mut().for_each(|v| *v = f(*v));
                }
            }
        });
    }
}

simd_fn! {
    /// `c[n] (+)= Σ_k a[k] · b[k, n]`: one row times a row-major matrix, as axpys over b's rows.
    fn gemv_rows(c: &mut [f32], a: &[f32], b: &[f32], accumulate: bool) {
        if !accumulate {
            c.fill(0.0);
        }
        let n = c.len();
        for (&ak, row) in a.iter().zip(b.chunks_exact(n)) {
            c.iter_mut().zip(row).for_each(|(c, &v)| *c += ak * v);
        }
    }
}

simd_fn! {
    /// `dz = dy * act'(pre or y)`.
    fn act_grad(dz: &mut [f32], dy: &[f32], y: &[f32], pre: Option<&[f32]>, act: Activation) {
        match act {
            Activation::Relu => {
                for ((d, &g), &o) in dz.iter_mut().zip(dy).zip(y) {
                    *d = if o > 0.0 { g } else { 0.0 };
                }
            }
            _ => {
                let x = pre.unwrap_or(y);
                for (((d, &g), &o), &i) in dz.iter_mut().zip(dy).zip(y).zip(x) {
                    *d = g * act.derivative(i, o);
                }
            }
        }
    }
}

/// `dst.copy_from_slice(src)` for the short segments of im2col (3 values for a 3-wide kernel on
/// one channel, 96 for 32 channels): a library `memcpy` call per segment costs more than the
/// copy, so whole 16- and 4-value blocks are moved as arrays and the last 0–3 values one by one.
#[inline(always)]
fn copy_short(dst: &mut [f32], src: &[f32]) {
    let n = dst.len();
    assert_eq!(n, src.len());
    let mut i = 0;
    while i + 16 <= n {
        let s: [f32; 16] = src[i..i + 16].try_into().unwrap();
        dst[i..i + 16].copy_from_slice(&s);
        i += 16;
    }
    while i + 4 <= n {
        let s: [f32; 4] = src[i..i + 4].try_into().unwrap();
        dst[i..i + 4].copy_from_slice(&s);
        i += 4;
    }
    match n - i {
        3 => {
            dst[i] = src[i];
            dst[i + 1] = src[i + 1];
            dst[i + 2] = src[i + 2];
        }
        2 => {
            dst[i] = src[i];
            dst[i + 1] = src[i + 1];
        }
        1 => dst[i] = src[i],
        _ => {}
    }
}

simd_fn! {
    /// NHWC im2col: `cols[(img, oy, ox), (ky, kx, c)]` for `nb` images of `x`, zeros in the padding.
    fn im2col(cols: &mut [f32], x: &[f32], nb: usize, g: &ConvGeom) {
        let (ci, patch) = (g.c_in, g.patch());
        let seg = g.kw * ci;
        let img = g.h * g.w * ci;
        let mut r = 0;
        for n in 0..nb {
            let ximg = &x[n * img..(n + 1) * img];
            for oy in 0..g.oh {
                for ox in 0..g.ow {
                    let row = &mut cols[r * patch..(r + 1) * patch];
                    r += 1;
                    let ix0 = (ox * g.stride) as isize - g.pad_left as isize;
                    let full_x = ix0 >= 0 && ix0 as usize + g.kw <= g.w;
                    for ky in 0..g.kh {
                        let dst = &mut row[ky * seg..(ky + 1) * seg];
                        let iy = (oy * g.stride + ky) as isize - g.pad_top as isize;
                        if iy < 0 || iy as usize >= g.h {
                            dst.fill(0.0);
                            continue;
                        }
                        let line = iy as usize * g.w;
                        if full_x {
                            let s = (line + ix0 as usize) * ci;
                            copy_short(dst, &ximg[s..s + seg]);
                            continue;
                        }
                        for kx in 0..g.kw {
                            let d = &mut dst[kx * ci..(kx + 1) * ci];
                            let ix = ix0 + kx as isize;
                            if ix < 0 || ix as usize >= g.w {
                                d.fill(0.0);
                            } else {
                                let s = (line + ix as usize) * ci;
                                copy_short(d, &ximg[s..s + ci]);
                            }
                        }
                    }
                }
            }
        }
    }
}

simd_fn! {
    /// Adjoint of [`im2col`]: `dx += col2im(dcols)` for `nb` images.
    fn col2im_add(dx: &mut [f32], dcols: &[f32], nb: usize, g: &ConvGeom) {
        let (ci, patch) = (g.c_in, g.patch());
        let seg = g.kw * ci;
        let img = g.h * g.w * ci;
        let mut r = 0;
        for n in 0..nb {
            let dimg = &mut dx[n * img..(n + 1) * img];
            for oy in 0..g.oh {
                for ox in 0..g.ow {
                    let row = &dcols[r * patch..(r + 1) * patch];
                    r += 1;
                    let ix0 = (ox * g.stride) as isize - g.pad_left as isize;
                    let full_x = ix0 >= 0 && ix0 as usize + g.kw <= g.w;
                    for ky in 0..g.kh {
                        let src = &row[ky * seg..(ky + 1) * seg];
                        let iy = (oy * g.stride + ky) as isize - g.pad_top as isize;
                        if iy < 0 || iy as usize >= g.h {
                            continue;
                        }
                        let line = iy as usize * g.w;
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
            }
        }
    }
}

pub(super) fn ensure(buf: &mut Vec<f32>, len: usize) {
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
}

/// Images per GEMM block inside one thread.
fn micro_batch(g: &ConvGeom) -> usize {
    (target_rows() / (g.oh * g.ow).max(1)).max(1)
}

/// How a forward convolution is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ConvPath {
    /// im2col + GEMM with the bias and activation applied after each block.
    Gemm,
    /// Small patch: [`direct`] kernels.
    Direct,
    /// Stride-1 3x3 with many channels: [`winograd`] F(4x4, 3x3).
    Winograd,
}

fn conv_path(g: &ConvGeom) -> ConvPath {
    static WINO: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if use_direct(g) {
        ConvPath::Direct
    } else if winograd::supports(g)
        && *WINO.get_or_init(|| std::env::var("MODELSMITH_WINOGRAD").as_deref() != Ok("0"))
    {
        ConvPath::Winograd
    } else {
        ConvPath::Gemm
    }
}

/// The kernel in the form `path` reads (transposed for [`direct`], `U` for [`winograd`], the
/// kernel itself for GEMM), built into `buf` unless `key` says it already holds it.
fn prepared_kernel<'a>(
    buf: &'a mut Vec<f32>,
    key: &mut Option<[usize; 4]>,
    w: &'a [f32],
    g: &ConvGeom,
    path: ConvPath,
) -> &'a [f32] {
    let want = [path as usize, g.c_in, g.c_out, g.kh * 1024 + g.kw];
    let len = match path {
        ConvPath::Gemm => return w,
        ConvPath::Direct => g.patch() * g.c_out,
        ConvPath::Winograd => winograd::kernel_len(g),
    };
    if *key != Some(want) {
        ensure(buf, len);
        match path {
            ConvPath::Direct => direct::transpose_kernel(buf, w, g.c_out, g.patch()),
            ConvPath::Winograd => winograd::transform_kernel(buf, w, g),
            ConvPath::Gemm => unreachable!("returned above"),
        }
        *key = Some(want);
    }
    &buf[..len]
}

/// Whether the convolution runs on the direct small-patch kernels (see [`direct`]) instead of
/// GEMM. `MODELSMITH_CONV_DIRECT=0` turns them off (for comparisons).
fn use_direct(g: &ConvGeom) -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    direct::supports(g)
        && *ON.get_or_init(|| std::env::var("MODELSMITH_CONV_DIRECT").as_deref() != Ok("0"))
}

simd_fn! {
    /// `acc[c] += Σ_rows m[row, c]` for `m` of rows of `acc.len()` values.
    fn add_rows(acc: &mut [f32], m: &[f32]) {
        for row in m.chunks_exact(acc.len()) {
            acc.iter_mut().zip(row).for_each(|(b, d)| *b += d);
        }
    }
}

/// Whether im2col is the identity (1x1, stride 1, no padding): the input rows are the columns.
fn is_pointwise(g: &ConvGeom) -> bool {
    g.kh == 1 && g.kw == 1 && g.stride == 1 && g.pad_top == 0 && g.pad_left == 0
}

/// The im2col columns of `nb` images of `x` in `buf` (or `x` itself for a pointwise conv).
fn columns<'a>(buf: &'a mut Vec<f32>, x: &'a [f32], nb: usize, g: &ConvGeom) -> &'a [f32] {
    if is_pointwise(g) {
        return x;
    }
    let rows = nb * g.oh * g.ow;
    ensure(buf, rows * g.patch());
    if use_direct(g) {
        direct::im2col(buf, x, nb, g);
    } else {
        im2col(buf, x, nb, g);
    }
    &buf[..rows * g.patch()]
}

/// Forward convolution of `imgs` images on the calling thread.
#[allow(clippy::too_many_arguments)]
fn conv_forward_chunk(
    y: &mut [f32],
    mut pre: Option<&mut [f32]>,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    g: &ConvGeom,
    act: Activation,
    wt: Option<&[f32]>,
    cols: &mut Vec<f32>,
    imgs: usize,
) {
    let (patch, co) = (g.patch(), g.c_out);
    let (in_img, out_rows) = (g.h * g.w * g.c_in, g.oh * g.ow);
    let mb = micro_batch(g);
    let mut i0 = 0;
    while i0 < imgs {
        let nb = mb.min(imgs - i0);
        let rows = nb * out_rows;
        let xin = &x[i0 * in_img..(i0 + nb) * in_img];
        let yblk = &mut y[i0 * out_rows * co..(i0 * out_rows + rows) * co];
        let a = columns(cols, xin, nb, g);
        let pblk = pre
            .as_deref_mut()
            .map(|p| &mut p[i0 * out_rows * co..(i0 * out_rows + rows) * co]);
        if let Some(wt) = wt {
            // Small patch: direct kernel with the bias and activation fused.
            direct::forward(yblk, pblk, a, wt, bias, patch, co, act);
            i0 += nb;
            continue;
        }
        // y[rows, co] = cols[rows, patch] · w[co, patch]ᵀ
        sgemm(
            rows,
            co,
            patch,
            a,
            false,
            w,
            true,
            yblk,
            false,
            Parallelism::None,
        );
        bias_act_rows(yblk, pblk, bias, co, act);
        i0 += nb;
    }
}

/// Forward convolution of one image cut into `count` bands of output rows (see [`bands`]), each
/// computed by `run(y, pre, x, bufs, geometry, 1)` on its own rows and buffers.
#[allow(clippy::type_complexity)]
fn conv_forward_bands(
    y: &mut [f32],
    pre: Option<&mut [f32]>,
    x: &[f32],
    bufs: &mut [Vec<f32>],
    g: &ConvGeom,
    count: usize,
    run: &(dyn Fn(&mut [f32], Option<&mut [f32]>, &[f32], &mut [Vec<f32>], &ConvGeom, usize)
          + Sync),
) {
    let (row_in, row_out) = (g.w * g.c_in, g.ow * g.c_out);
    // Hand each band its disjoint output rows and buffers up front.
    let mut y_rest = y;
    let mut pre_rest = pre;
    let mut bufs_rest = bufs;
    let mut work = Vec::with_capacity(count);
    for i in 0..count {
        let (r0, r1) = bands::rows(g, i, count);
        let (y_band, tail) = std::mem::take(&mut y_rest).split_at_mut((r1 - r0) * row_out);
        y_rest = tail;
        let pre_band = pre_rest.take().map(|p| {
            let (head, tail) = p.split_at_mut((r1 - r0) * row_out);
            pre_rest = Some(tail);
            head
        });
        let (b, tail) = std::mem::take(&mut bufs_rest).split_at_mut(3);
        bufs_rest = tail;
        if r0 < r1 {
            let (bg, y0) = bands::band(g, r0, r1);
            let x_band = &x[y0 * row_in..(y0 + bg.h) * row_in];
            work.push(std::sync::Mutex::new((y_band, pre_band, b, bg, x_band)));
        }
    }
    bands::run_split(work.len(), &|i| {
        let mut guard = work[i].lock().expect("each band runs once");
        let (y, pre, b, bg, x) = &mut *guard;
        run(y, pre.as_deref_mut(), x, b, bg, 1);
    });
}

/// [`Backend::conv2d_forward`], cutting a single image into `bands` bands of rows when above 1.
#[allow(clippy::too_many_arguments)]
fn conv_forward(
    y: &mut [f32],
    pre: Option<&mut [f32]>,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    g: &ConvGeom,
    act: Activation,
    scratch: &mut Scratch,
    bands: usize,
) {
    let (per, chunks) = batch_split(g.n);
    let (in_img, out_img) = (g.h * g.w * g.c_in, g.oh * g.ow * g.c_out);
    assert_eq!(x.len(), g.n * in_img, "conv2d_forward: input length");
    assert_eq!(y.len(), g.n * out_img, "conv2d_forward: output length");
    assert_eq!(
        w.len(),
        g.c_out * g.patch(),
        "conv2d_forward: kernel length"
    );
    if chunks == 0 || out_img == 0 {
        return;
    }
    // Scratch: three buffers per chunk (im2col columns or Winograd V, Winograd M, a row of
    // zeros); the kernel transform is cached beside them.
    let sets = chunks.max(bands);
    if scratch.bufs.len() < 3 * sets {
        scratch.bufs.resize_with(3 * sets, Vec::new);
    }
    let path = conv_path(g);
    let kt = prepared_kernel(&mut scratch.kernel, &mut scratch.kernel_key, w, g, path);
    let chunk_bufs = &mut scratch.bufs[..3 * sets];
    // One chunk of `imgs` images of geometry `g` (or one band of one image).
    let run_geom = |y: &mut [f32],
                    pre: Option<&mut [f32]>,
                    x: &[f32],
                    bufs: &mut [Vec<f32>],
                    g: &ConvGeom,
                    imgs: usize| {
        let [cols, m, zeros] = bufs else {
            unreachable!("chunks of three")
        };
        match path {
            ConvPath::Winograd => winograd::forward_chunk(
                y,
                pre,
                x,
                kt,
                bias,
                g,
                act,
                winograd::Bufs { v: cols, m, zeros },
                imgs,
                false,
            ),
            ConvPath::Direct => {
                conv_forward_chunk(y, pre, x, w, bias, g, act, Some(kt), cols, imgs)
            }
            ConvPath::Gemm => conv_forward_chunk(y, pre, x, w, bias, g, act, None, cols, imgs),
        }
    };
    let run = |y: &mut [f32], pre: Option<&mut [f32]>, x: &[f32], bufs: &mut [Vec<f32>]| {
        run_geom(y, pre, x, bufs, g, x.len() / in_img)
    };
    if bands > 1 {
        return conv_forward_bands(y, pre, x, chunk_bufs, g, bands, &run_geom);
    }
    if chunks == 1 {
        // One chunk: run it here rather than hand it to a pool thread and wait.
        return run(y, pre, x, chunk_bufs);
    }
    let mut pres: Vec<Option<&mut [f32]>> = match pre {
        Some(p) => p.chunks_mut(per * out_img).map(Some).collect(),
        None => (0..chunks).map(|_| None).collect(),
    };
    y.par_chunks_mut(per * out_img)
        .zip(x.par_chunks(per * in_img))
        .zip(chunk_bufs.par_chunks_mut(3))
        .zip(pres.par_iter_mut())
        .for_each(|(((y, x), bufs), pre)| run(y, pre.take(), x, bufs));
}

/// Per-thread buffers of the convolution backward pass.
struct ConvBackBufs<'a> {
    cols: &'a mut Vec<f32>,
    dz: &'a mut Vec<f32>,
    /// im2col-shaped input gradient, or Winograd's V.
    dcols: &'a mut Vec<f32>,
    dw: &'a mut Vec<f32>,
    db: &'a mut Vec<f32>,
    /// Winograd's M and row of zeros.
    m: &'a mut Vec<f32>,
    zeros: &'a mut Vec<f32>,
}

/// The input gradient as a Winograd convolution: its geometry and transformed kernel.
#[derive(Clone, Copy)]
struct WinoGrad<'a> {
    g: ConvGeom,
    u: &'a [f32],
}

/// Backward convolution of `imgs` images on the calling thread; `bufs.dw` and `bufs.db` receive
/// this chunk's (zero-started) partial weight and bias gradients.
#[allow(clippy::too_many_arguments)]
/// Which parameter gradients a convolution's backward pass computes.
#[derive(Clone, Copy)]
struct ParamGrads {
    weight: bool,
    bias: bool,
}

#[cfg(test)]
impl ParamGrads {
    const ALL: ParamGrads = ParamGrads {
        weight: true,
        bias: true,
    };
}

#[allow(clippy::too_many_arguments)]
fn conv_backward_chunk(
    mut dx: Option<&mut [f32]>,
    dy: &[f32],
    y: &[f32],
    pre: Option<&[f32]>,
    x: &[f32],
    w: &[f32],
    g: &ConvGeom,
    act: Activation,
    bufs: ConvBackBufs<'_>,
    imgs: usize,
    direct: bool,
    wino: Option<WinoGrad<'_>>,
    params: ParamGrads,
) {
    let (patch, co) = (g.patch(), g.c_out);
    let (in_img, out_rows) = (g.h * g.w * g.c_in, g.oh * g.ow);
    let mb = micro_batch(g);
    let mut sparse = sparse_grad::Scratch::default();
    ensure(bufs.dw, co * patch);
    ensure(bufs.db, co);
    bufs.dw[..co * patch].fill(0.0);
    bufs.db[..co].fill(0.0);
    let mut i0 = 0;
    while i0 < imgs {
        let nb = mb.min(imgs - i0);
        let rows = nb * out_rows;
        let span = i0 * out_rows * co..(i0 * out_rows + rows) * co;
        if direct
            && params.weight
            && dx.is_none()
            && matches!(act, Activation::Relu | Activation::Linear)
        {
            // Small patch, first layer: dw and db in one pass with the ReLU mask fused in.
            let cols = columns(bufs.cols, &x[i0 * in_img..(i0 + nb) * in_img], nb, g);
            let relu_out = (act == Activation::Relu).then(|| &y[span.clone()]);
            direct::backward_weights(
                &mut bufs.dw[..co * patch],
                &mut bufs.db[..co],
                &dy[span],
                relu_out,
                cols,
                patch,
                co,
            );
            i0 += nb;
            continue;
        }
        // dz[rows, co] = dy ⊙ act'(·)
        let dz: &[f32] = if act == Activation::Linear {
            &dy[span]
        } else {
            ensure(bufs.dz, rows * co);
            act_grad(
                &mut bufs.dz[..rows * co],
                &dy[span.clone()],
                &y[span.clone()],
                pre.map(|p| &p[span]),
                act,
            );
            &bufs.dz[..rows * co]
        };
        if !params.weight {
            if params.bias {
                add_rows(&mut bufs.db[..co], dz);
            }
        } else if direct {
            let xin = &x[i0 * in_img..(i0 + nb) * in_img];
            let cols: &[f32] = columns(bufs.cols, xin, nb, g);
            // Small patch: dw and db in one pass with register accumulators.
            direct::backward_weights(
                &mut bufs.dw[..co * patch],
                &mut bufs.db[..co],
                dz,
                None,
                cols,
                patch,
                co,
            );
        } else {
            let xin = &x[i0 * in_img..(i0 + nb) * in_img];
            let cols: &[f32] = columns(bufs.cols, xin, nb, g);
            // db[co] += Σ_rows dz
            add_rows(&mut bufs.db[..co], dz);
            // dw[co, patch] += dzᵀ · cols
            sgemm(
                co,
                patch,
                rows,
                dz,
                true,
                cols,
                false,
                bufs.dw,
                true,
                Parallelism::None,
            );
        }
        if let Some(dx) = dx.as_deref_mut() {
            let dxblk = &mut dx[i0 * in_img..(i0 + nb) * in_img];
            if sparse_grad::enabled() && sparse_grad::density(dz) < sparse_grad::DENSITY_BELOW {
                // Behind ReLU and max pooling most of dz is zero: scatter the nonzeros.
                sparse_grad::input_grad(dxblk, dz, w, nb, g, &mut sparse);
            } else if let Some(wg) = wino {
                // dx += full 3x3 convolution of dz with the rotated kernel, by Winograd.
                let wbufs = winograd::Bufs {
                    v: bufs.dcols,
                    m: bufs.m,
                    zeros: bufs.zeros,
                };
                let (act, g) = (Activation::Linear, &wg.g);
                winograd::forward_chunk(dxblk, None, dz, wg.u, None, g, act, wbufs, nb, true);
            } else if is_pointwise(g) {
                // dx[rows, c_in] += dz · w
                sgemm(
                    rows,
                    patch,
                    co,
                    dz,
                    false,
                    w,
                    false,
                    dxblk,
                    true,
                    Parallelism::None,
                );
            } else {
                // dcols[rows, patch] = dz · w, then scatter back onto the image.
                ensure(bufs.dcols, rows * patch);
                sgemm(
                    rows,
                    patch,
                    co,
                    dz,
                    false,
                    w,
                    false,
                    bufs.dcols,
                    false,
                    Parallelism::None,
                );
                col2im_add(dxblk, &bufs.dcols[..rows * patch], nb, g);
            }
        }
        i0 += nb;
    }
}

/// `MODELSMITH_POOL_FAST=0` turns the 2x2 max-pool fast path off (for comparisons).
fn pool_fast_on() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var("MODELSMITH_POOL_FAST").as_deref() != Ok("0"))
}

/// Whether max pooling takes the 2x2 stride-2 fast path: windows tile the image without padding
/// or overlap (a trailing odd row or column is simply not covered, as with "valid" padding).
fn is_pool2x2(g: &PoolGeom) -> bool {
    g.k == 2
        && g.stride == 2
        && g.pad_top == 0
        && g.pad_left == 0
        && 2 * g.oh <= g.h
        && 2 * g.ow <= g.w
}

simd_fn! {
    /// 2x2 stride-2 max pooling of one image in one pass: for each window the four input pixels'
    /// channel vectors are compared lane-wise with `>` in scan order (so the first maximum wins,
    /// as in [`max_pool_image`]), selecting the value and its index together.
    fn max_pool2x2_image(y: &mut [f32], am: &mut [u32], x: &[f32], g: &PoolGeom) {
        let (c, w) = (g.c, g.w);
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                let i00 = (2 * oy * w + 2 * ox) * c;
                let (i01, i10) = (i00 + c, i00 + w * c);
                let i11 = i10 + c;
                let o = (oy * g.ow + ox) * c;
                let (xa, xb) = (&x[i00..i00 + c], &x[i01..i01 + c]);
                let (xc, xd) = (&x[i10..i10 + c], &x[i11..i11 + c]);
                let (out, idx) = (&mut y[o..o + c], &mut am[o..o + c]);
                for k in 0..c {
                    let (mut m, mut i) = (xa[k], (i00 + k) as u32);
                    if xb[k] > m {
                        m = xb[k];
                        i = (i01 + k) as u32;
                    }
                    if xc[k] > m {
                        m = xc[k];
                        i = (i10 + k) as u32;
                    }
                    if xd[k] > m {
                        m = xd[k];
                        i = (i11 + k) as u32;
                    }
                    out[k] = m;
                    idx[k] = i;
                }
            }
        }
    }
}

simd_fn! {
    /// [`max_pool2x2_image`] without the argmax (inference): a lane-wise max of the four pixels.
    fn max_pool2x2_values(y: &mut [f32], x: &[f32], g: &PoolGeom) {
        let (c, w) = (g.c, g.w);
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                let i00 = (2 * oy * w + 2 * ox) * c;
                let (i01, i10) = (i00 + c, i00 + w * c);
                let i11 = i10 + c;
                let o = (oy * g.ow + ox) * c;
                let (xa, xb) = (&x[i00..i00 + c], &x[i01..i01 + c]);
                let (xc, xd) = (&x[i10..i10 + c], &x[i11..i11 + c]);
                for (k, out) in y[o..o + c].iter_mut().enumerate() {
                    // In scan order with `>`, exactly as with the argmax (NaNs included).
                    let mut m = xa[k];
                    for v in [xb[k], xc[k], xd[k]] {
                        m = if v > m { v } else { m };
                    }
                    *out = m;
                }
            }
        }
    }
}

simd_fn! {
    /// Backward of [`max_pool2x2_image`]: `dx += dy` at each window's argmax, as a dense pass
    /// over the four pixels of every window (sequential and vectorised, unlike the scatter).
    fn max_pool2x2_backward_image(dx: &mut [f32], dy: &[f32], am: &[u32], g: &PoolGeom) {
        let (c, w) = (g.c, g.w);
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                let o = (oy * g.ow + ox) * c;
                let (d, a) = (&dy[o..o + c], &am[o..o + c]);
                let i00 = (2 * oy * w + 2 * ox) * c;
                for base in [i00, i00 + c, i00 + w * c, i00 + w * c + c] {
                    let dst = &mut dx[base..base + c];
                    for k in 0..c {
                        let hit = a[k] == (base + k) as u32;
                        dst[k] += if hit { d[k] } else { 0.0 };
                    }
                }
            }
        }
    }
}

simd_fn! {
    fn max_pool_image(y: &mut [f32], am: Option<&mut [u32]>, x: &[f32], g: &PoolGeom) {
        let mut am = am;
        let c = g.c;
        for oy in 0..g.oh {
            let y0 = (oy * g.stride) as isize - g.pad_top as isize;
            let (ky0, ky1) = (
                y0.max(0) as usize,
                ((y0 + g.k as isize).min(g.h as isize)) as usize,
            );
            for ox in 0..g.ow {
                let x0 = (ox * g.stride) as isize - g.pad_left as isize;
                let (kx0, kx1) = (
                    x0.max(0) as usize,
                    ((x0 + g.k as isize).min(g.w as isize)) as usize,
                );
                let o = (oy * g.ow + ox) * c;
                let out = &mut y[o..o + c];
                // Pass 1: the maximum (a plain vector max over the window).
                let first = (ky0 * g.w + kx0) * c;
                out.copy_from_slice(&x[first..first + c]);
                for iy in ky0..ky1 {
                    for ix in kx0..kx1 {
                        let base = (iy * g.w + ix) * c;
                        for (o, &v) in out.iter_mut().zip(&x[base..base + c]) {
                            *o = if v > *o { v } else { *o };
                        }
                    }
                }
                // Pass 2 (training only): where it was, scanning the window backwards so the first
                // maximum wins.
                let Some(am) = am.as_deref_mut() else {
                    continue;
                };
                let idx = &mut am[o..o + c];
                for iy in (ky0..ky1).rev() {
                    for ix in (kx0..kx1).rev() {
                        let base = (iy * g.w + ix) * c;
                        let src = &x[base..base + c];
                        let b = base as u32;
                        for (k, ((i, &v), &m)) in
                            (b..b + c as u32).zip(idx.iter_mut().zip(src).zip(out.iter()))
                        {
                            // Branch-free: equal-to-max lanes take this position.
                            let eq = (v == m) as u32;
                            *i = eq * k + (1 - eq) * *i;
                        }
                    }
                }
            }
        }
    }
}

simd_fn! {
    fn avg_pool_image(
        y: &mut [f32],
        x: Option<&[f32]>,
        dx: Option<&mut [f32]>,
        dy: &[f32],
        g: &PoolGeom,
    ) {
        let c = g.c;
        let mut dx = dx;
        let mut y = Some(y);
        for oy in 0..g.oh {
            let y0 = (oy * g.stride) as isize - g.pad_top as isize;
            let (ky0, ky1) = (
                y0.max(0) as usize,
                ((y0 + g.k as isize).min(g.h as isize)) as usize,
            );
            for ox in 0..g.ow {
                let x0 = (ox * g.stride) as isize - g.pad_left as isize;
                let (kx0, kx1) = (
                    x0.max(0) as usize,
                    ((x0 + g.k as isize).min(g.w as isize)) as usize,
                );
                let inv = 1.0 / ((ky1 - ky0) * (kx1 - kx0)) as f32;
                let o = (oy * g.ow + ox) * c;
                if let (Some(x), Some(y)) = (x, y.as_deref_mut()) {
                    let out = &mut y[o..o + c];
                    out.fill(0.0);
                    for iy in ky0..ky1 {
                        for ix in kx0..kx1 {
                            let base = (iy * g.w + ix) * c;
                            out.iter_mut()
                                .zip(&x[base..base + c])
                                .for_each(|(a, v)| *a += v);
                        }
                    }
                    out.iter_mut().for_each(|a| *a *= inv);
                }
                if let Some(dx) = dx.as_deref_mut() {
                    let g_out = &dy[o..o + c];
                    for iy in ky0..ky1 {
                        for ix in kx0..kx1 {
                            let base = (iy * g.w + ix) * c;
                            dx[base..base + c]
                                .iter_mut()
                                .zip(g_out)
                                .for_each(|(d, v)| *d += v * inv);
                        }
                    }
                }
            }
        }
    }
}

impl Backend for Cpu {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn gemm(
        &self,
        m: usize,
        n: usize,
        k: usize,
        a: &[f32],
        trans_a: bool,
        b: &[f32],
        trans_b: bool,
        c: &mut [f32],
        accumulate: bool,
    ) {
        if m == 1 && !trans_a && !trans_b && a.len() >= k && b.len() >= k * n && c.len() >= n {
            // One row (a dense layer at batch 1): the row of c stays in registers when it can.
            if super::panel_gemm::supports(n) {
                return super::panel_gemm::gemm(1, n, k, a, (k, 1), b, c, n, accumulate);
            }
            return gemv_rows(&mut c[..n], &a[..k], &b[..k * n], accumulate);
        }
        let t = threads();
        let par = if t > 1
            && m * n * k >= PARALLEL_GEMM_MACS
            && rayon::current_thread_index().is_none()
        {
            Parallelism::Rayon(t)
        } else {
            Parallelism::None
        };
        sgemm(m, n, k, a, trans_a, b, trans_b, c, accumulate, par);
    }

    fn bias_activation(
        &self,
        y: &mut [f32],
        pre: Option<&mut [f32]>,
        bias: Option<&[f32]>,
        channels: usize,
        act: Activation,
    ) {
        bias_act_rows(y, pre, bias, channels, act);
    }

    fn activation_forward(&self, y: &mut [f32], x: &[f32], act: Activation) {
        let run = |y: &mut [f32], x: &[f32]| {
            with_act!(act, |f| y.iter_mut().zip(x).for_each(|(o, &i)| *o = f(i)))
        };
        if y.len() >= PARALLEL_ELEMS && threads() > 1 {
            let chunk = y.len().div_ceil(threads());
            y.par_chunks_mut(chunk)
                .zip(x.par_chunks(chunk))
                .for_each(|(y, x)| run(y, x));
        } else {
            run(y, x);
        }
    }

    fn activation_backward(
        &self,
        dx: &mut [f32],
        dy: &[f32],
        x: &[f32],
        y: &[f32],
        act: Activation,
    ) {
        let run = |dx: &mut [f32], dy: &[f32], x: &[f32], y: &[f32]| {
            for (((d, &g), &i), &o) in dx.iter_mut().zip(dy).zip(x).zip(y) {
                *d += g * act.derivative(i, o);
            }
        };
        if dx.len() >= PARALLEL_ELEMS && threads() > 1 {
            let chunk = dx.len().div_ceil(threads());
            dx.par_chunks_mut(chunk)
                .zip(dy.par_chunks(chunk))
                .zip(x.par_chunks(chunk))
                .zip(y.par_chunks(chunk))
                .for_each(|(((dx, dy), x), y)| run(dx, dy, x, y));
        } else {
            run(dx, dy, x, y);
        }
    }

    fn conv2d_forward(
        &self,
        y: &mut [f32],
        pre: Option<&mut [f32]>,
        x: &[f32],
        w: &[f32],
        bias: Option<&[f32]>,
        g: &ConvGeom,
        act: Activation,
        scratch: &mut Scratch,
    ) {
        let bands = bands::count(g, threads());
        conv_forward(y, pre, x, w, bias, g, act, scratch, bands);
    }

    fn conv2d_backward(
        &self,
        dx: Option<&mut [f32]>,
        dw: Option<&mut [f32]>,
        db: Option<&mut [f32]>,
        dy: &[f32],
        y: &[f32],
        pre: Option<&[f32]>,
        x: &[f32],
        w: &[f32],
        g: &ConvGeom,
        act: Activation,
        scratch: &mut Scratch,
    ) {
        let (per, chunks) = batch_split(g.n);
        let (in_img, out_img) = (g.h * g.w * g.c_in, g.oh * g.ow * g.c_out);
        assert_eq!(x.len(), g.n * in_img, "conv2d_backward: input length");
        assert_eq!(
            dy.len(),
            g.n * out_img,
            "conv2d_backward: output gradient length"
        );
        if chunks == 0 || out_img == 0 {
            return;
        }
        // Frozen parameters (explaining a prediction) need no weight or bias gradient, and
        // without one the backward pass is the input gradient alone: no im2col columns.
        let params = ParamGrads {
            weight: dw.is_some(),
            bias: db.is_some(),
        };
        // Scratch: [rotated kernel, its Winograd transform (when the input gradient takes that
        // path), then seven buffers per thread: cols, dz, dcols, dw partial, db partial, and
        // Winograd's M and zeros].
        const PER: usize = 7;
        if scratch.bufs.len() < 2 + PER * chunks {
            scratch.bufs.resize_with(2 + PER * chunks, Vec::new);
        }
        let (shared, per_chunk) = scratch.bufs.split_at_mut(2);
        let wino = match (&dx, winograd::input_grad_geom(g)) {
            (Some(_), Some(dg)) if conv_path(g) == ConvPath::Winograd => {
                let [wr, u] = shared else {
                    unreachable!("two shared buffers")
                };
                ensure(wr, w.len());
                winograd::rotate_kernel(wr, w, g);
                ensure(u, winograd::kernel_len(&dg));
                winograd::transform_kernel(u, &wr[..w.len()], &dg);
                Some(WinoGrad {
                    g: dg,
                    u: &u[..winograd::kernel_len(&dg)],
                })
            }
            _ => None,
        };
        let mut dxs: Vec<Option<&mut [f32]>> = match dx {
            Some(d) => d.chunks_mut(per * in_img).map(Some).collect(),
            None => (0..chunks).map(|_| None).collect(),
        };
        per_chunk[..PER * chunks]
            .par_chunks_mut(PER)
            .zip(dxs.par_iter_mut())
            .enumerate()
            .for_each(|(t, (bufs, dx))| {
                let imgs = per.min(g.n - t * per);
                let o = t * per * out_img..(t * per + imgs) * out_img;
                let [cols, dz, dcols, dwp, dbp, m, zeros] = bufs else {
                    unreachable!("chunks of seven")
                };
                conv_backward_chunk(
                    dx.take(),
                    &dy[o.clone()],
                    &y[o.clone()],
                    pre.map(|p| &p[o]),
                    &x[t * per * in_img..(t * per + imgs) * in_img],
                    w,
                    g,
                    act,
                    ConvBackBufs {
                        cols,
                        dz,
                        dcols,
                        dw: dwp,
                        db: dbp,
                        m,
                        zeros,
                    },
                    imgs,
                    use_direct(g),
                    wino,
                    params,
                );
            });
        // Reduce the per-thread partials in a fixed order (deterministic for a thread count).
        let (np, co) = (g.c_out * g.patch(), g.c_out);
        let (mut dw, mut db) = (dw, db);
        for bufs in per_chunk[..PER * chunks].chunks_exact(PER) {
            if let Some(dw) = dw.as_deref_mut() {
                dw.iter_mut().zip(&bufs[3][..np]).for_each(|(d, p)| *d += p);
            }
            if let Some(db) = db.as_deref_mut() {
                db.iter_mut().zip(&bufs[4][..co]).for_each(|(d, p)| *d += p);
            }
        }
    }

    fn max_pool_forward(&self, y: &mut [f32], argmax: Option<&mut [u32]>, x: &[f32], g: &PoolGeom) {
        let fast = is_pool2x2(g) && pool_fast_on();
        let (per, chunks) = batch_split(g.n);
        let (in_img, out_img) = (g.h * g.w * g.c, g.oh * g.ow * g.c);
        let run = |y: &mut [f32], am: Option<&mut [u32]>, x: &[f32]| {
            let mut ams = am.map(|am| am.chunks_exact_mut(out_img));
            for (y, x) in y.chunks_exact_mut(out_img).zip(x.chunks_exact(in_img)) {
                match (ams.as_mut().and_then(|a| a.next()), fast) {
                    (Some(am), true) => max_pool2x2_image(y, am, x, g),
                    (Some(am), false) => max_pool_image(y, Some(am), x, g),
                    (None, true) => max_pool2x2_values(y, x, g),
                    (None, false) => max_pool_image(y, None, x, g),
                }
            }
        };
        if chunks <= 1 {
            // Not worth a trip to the pool.
            return run(y, argmax, x);
        }
        let (ys, xs) = (y.par_chunks_mut(per * out_img), x.par_chunks(per * in_img));
        match argmax {
            Some(am) => ys
                .zip(am.par_chunks_mut(per * out_img))
                .zip(xs)
                .for_each(|((y, am), x)| run(y, Some(am), x)),
            None => ys.zip(xs).for_each(|(y, x)| run(y, None, x)),
        }
    }

    fn max_pool_backward(&self, dx: &mut [f32], dy: &[f32], argmax: &[u32], g: &PoolGeom) {
        let fast = is_pool2x2(g) && pool_fast_on();
        let (per, _) = batch_split(g.n);
        let (in_img, out_img) = (g.h * g.w * g.c, g.oh * g.ow * g.c);
        dx.par_chunks_mut(per * in_img)
            .zip(dy.par_chunks(per * out_img))
            .zip(argmax.par_chunks(per * out_img))
            .for_each(|((dx, dy), am)| {
                for ((dx, dy), am) in dx
                    .chunks_exact_mut(in_img)
                    .zip(dy.chunks_exact(out_img))
                    .zip(am.chunks_exact(out_img))
                {
                    if fast {
                        max_pool2x2_backward_image(dx, dy, am, g);
                        continue;
                    }
                    for (&g, &i) in dy.iter().zip(am) {
                        dx[i as usize] += g;
                    }
                }
            });
    }

    fn avg_pool_forward(&self, y: &mut [f32], x: &[f32], g: &PoolGeom) {
        let (per, chunks) = batch_split(g.n);
        let (in_img, out_img) = (g.h * g.w * g.c, g.oh * g.ow * g.c);
        let run = |y: &mut [f32], x: &[f32]| {
            for (y, x) in y.chunks_exact_mut(out_img).zip(x.chunks_exact(in_img)) {
                avg_pool_image(y, Some(x), None, &[], g);
            }
        };
        if chunks <= 1 {
            return run(y, x);
        }
        y.par_chunks_mut(per * out_img)
            .zip(x.par_chunks(per * in_img))
            .for_each(|(y, x)| run(y, x));
    }

    fn avg_pool_backward(&self, dx: &mut [f32], dy: &[f32], g: &PoolGeom) {
        let (per, _) = batch_split(g.n);
        let (in_img, out_img) = (g.h * g.w * g.c, g.oh * g.ow * g.c);
        dx.par_chunks_mut(per * in_img)
            .zip(dy.par_chunks(per * out_img))
            .for_each(|(dx, dy)| {
                for (dx, dy) in dx.chunks_exact_mut(in_img).zip(dy.chunks_exact(out_img)) {
                    avg_pool_image(&mut [], None, Some(dx), dy, g);
                }
            });
    }

    fn channel_moments(&self, mean: &mut [f32], var: &mut [f32], x: &[f32], channels: usize) {
        let rows = (x.len() / channels.max(1)).max(1) as f64;
        let mut acc = vec![0f64; channels];
        for row in x.chunks_exact(channels) {
            acc.iter_mut().zip(row).for_each(|(a, &v)| *a += v as f64);
        }
        for (m, a) in mean.iter_mut().zip(&acc) {
            *m = (a / rows) as f32;
        }
        acc.iter_mut().for_each(|a| *a = 0.0);
        for row in x.chunks_exact(channels) {
            for ((a, &v), &m) in acc.iter_mut().zip(row).zip(mean.iter()) {
                let d = (v - m) as f64;
                *a += d * d;
            }
        }
        for (v, a) in var.iter_mut().zip(&acc) {
            *v = (a / rows) as f32;
        }
    }

    fn channel_sums(
        &self,
        sum_a: &mut [f32],
        sum_ab: &mut [f32],
        a: &[f32],
        b: &[f32],
        channels: usize,
    ) {
        let mut sa = vec![0f64; channels];
        let mut sab = vec![0f64; channels];
        for (ra, rb) in a.chunks_exact(channels).zip(b.chunks_exact(channels)) {
            for c in 0..channels {
                sa[c] += ra[c] as f64;
                sab[c] += (ra[c] * rb[c]) as f64;
            }
        }
        sum_a.iter_mut().zip(&sa).for_each(|(o, v)| *o = *v as f32);
        sum_ab
            .iter_mut()
            .zip(&sab)
            .for_each(|(o, v)| *o = *v as f32);
    }
}

#[cfg(test)]
mod tests {
    //! The fast paths against the generic ones on random inputs (odd sizes, padding, stride 2,
    //! batch 1 and odd batches, 1–3 input channels, ties in max pooling).
    use super::*;
    use crate::backend::Padding;
    use crate::rng::SplitMix64;

    fn random(len: usize, seed: u64) -> Vec<f32> {
        let mut r = SplitMix64::new(seed);
        (0..len).map(|_| r.next_f32() * 2.0 - 1.0).collect()
    }

    fn assert_close(what: &str, a: &[f32], b: &[f32]) {
        assert_eq!(a.len(), b.len(), "{what}: lengths");
        let scale = b.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
        for (i, (u, v)) in a.iter().zip(b).enumerate() {
            assert!(
                (u - v).abs() <= 1e-5 * scale.max(1.0),
                "{what}[{i}]: {u} vs {v} (scale {scale})"
            );
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn geom(
        n: usize,
        h: usize,
        w: usize,
        c_in: usize,
        c_out: usize,
        k: usize,
        stride: usize,
        pad: Padding,
    ) -> ConvGeom {
        let (oh, pad_top) = pad.output_and_pad(h, k, stride).unwrap();
        let (ow, pad_left) = pad.output_and_pad(w, k, stride).unwrap();
        ConvGeom {
            n,
            h,
            w,
            c_in,
            oh,
            ow,
            c_out,
            kh: k,
            kw: k,
            stride,
            pad_top,
            pad_left,
        }
    }

    fn direct_cases() -> Vec<ConvGeom> {
        vec![
            geom(3, 28, 28, 1, 32, 3, 1, Padding::Valid),
            geom(1, 7, 9, 1, 16, 3, 1, Padding::Same),
            geom(5, 9, 7, 3, 16, 3, 2, Padding::Same),
            geom(2, 8, 11, 2, 32, 3, 2, Padding::Valid),
            geom(3, 6, 5, 1, 48, 5, 1, Padding::Same),
            geom(1, 10, 10, 3, 32, 3, 1, Padding::Same),
        ]
    }

    #[test]
    fn direct_conv_matches_gemm() {
        for g in direct_cases() {
            if !direct::supports(&g) {
                eprintln!("skipping direct-kernel comparison: no AVX-512 on this CPU");
                return;
            }
            let (in_len, out_len) = (g.n * g.h * g.w * g.c_in, g.n * g.oh * g.ow * g.c_out);
            let x = random(in_len, 1);
            let w = random(g.c_out * g.patch(), 2);
            let bias = random(g.c_out, 3);
            let mut wt = vec![0.0; g.patch() * g.c_out];
            direct::transpose_kernel(&mut wt, &w, g.c_out, g.patch());
            for act in [Activation::Relu, Activation::Linear, Activation::Gelu] {
                let run_fwd = |direct: bool| {
                    let (mut y, mut pre, mut cols) =
                        (vec![0.0; out_len], vec![0.0; out_len], vec![]);
                    let wt = direct.then_some(&wt[..]);
                    let p = act.needs_input().then_some(&mut pre[..]);
                    conv_forward_chunk(&mut y, p, &x, &w, Some(&bias), &g, act, wt, &mut cols, g.n);
                    (y, pre)
                };
                let ((y0, p0), (y1, p1)) = (run_fwd(false), run_fwd(true));
                assert_close(&format!("{g:?} {act:?} y"), &y1, &y0);
                assert_close(&format!("{g:?} {act:?} pre"), &p1, &p0);
                let dy = random(out_len, 4);
                for with_dx in [false, true] {
                    let run_bwd = |direct: bool| {
                        let mut b: Vec<Vec<f32>> = vec![vec![]; 7];
                        let mut dx = vec![0.5; in_len];
                        let [cols, dz, dcols, dw, db, m, zeros] = &mut b[..] else {
                            unreachable!()
                        };
                        let bufs = ConvBackBufs {
                            cols,
                            dz,
                            dcols,
                            dw,
                            db,
                            m,
                            zeros,
                        };
                        let dxs = with_dx.then_some(&mut dx[..]);
                        let pre = act.needs_input().then_some(&p0[..]);
                        conv_backward_chunk(
                            dxs,
                            &dy,
                            &y0,
                            pre,
                            &x,
                            &w,
                            &g,
                            act,
                            bufs,
                            g.n,
                            direct,
                            None,
                            ParamGrads::ALL,
                        );
                        (b[3][..w.len()].to_vec(), b[4][..g.c_out].to_vec(), dx)
                    };
                    let ((dw0, db0, dx0), (dw1, db1, dx1)) = (run_bwd(false), run_bwd(true));
                    let what = format!("{g:?} {act:?} dx {with_dx}");
                    assert_close(&format!("{what} dw"), &dw1, &dw0);
                    assert_close(&format!("{what} db"), &db1, &db0);
                    assert_close(&format!("{what} dx"), &dx1, &dx0);
                }
            }
        }
    }

    #[test]
    fn direct_im2col_matches_generic() {
        for g in direct_cases() {
            let x = random(g.n * g.h * g.w * g.c_in, 5);
            let len = g.n * g.oh * g.ow * g.patch();
            let (mut a, mut b) = (vec![0.0; len], vec![1.0; len]);
            im2col(&mut a, &x, g.n, &g);
            direct::im2col(&mut b, &x, g.n, &g);
            assert_eq!(a, b, "{g:?}");
        }
    }

    #[test]
    fn winograd_forward_matches_gemm() {
        let cases = [
            geom(3, 13, 13, 32, 64, 3, 1, Padding::Valid),
            geom(1, 13, 13, 32, 64, 3, 1, Padding::Valid),
            geom(2, 7, 10, 16, 16, 3, 1, Padding::Same),
            geom(5, 9, 6, 48, 32, 3, 1, Padding::Same),
            geom(1, 4, 5, 16, 32, 3, 1, Padding::Valid),
        ];
        for g in cases {
            if !winograd::supports(&g) {
                eprintln!("skipping Winograd comparison: no AVX-512 on this CPU");
                return;
            }
            let (in_len, out_len) = (g.n * g.h * g.w * g.c_in, g.n * g.oh * g.ow * g.c_out);
            let x = random(in_len, 11);
            let w = random(g.c_out * g.patch(), 12);
            let bias = random(g.c_out, 13);
            let mut u = vec![0.0; winograd::kernel_len(&g)];
            winograd::transform_kernel(&mut u, &w, &g);
            for act in [Activation::Relu, Activation::Linear, Activation::Gelu] {
                let mut cols = vec![];
                let (mut y0, mut p0) = (vec![0.0; out_len], vec![0.0; out_len]);
                let p = act.needs_input().then_some(&mut p0[..]);
                conv_forward_chunk(
                    &mut y0,
                    p,
                    &x,
                    &w,
                    Some(&bias),
                    &g,
                    act,
                    None,
                    &mut cols,
                    g.n,
                );
                let (mut y1, mut p1) = (vec![1.0; out_len], vec![1.0; out_len]);
                let (mut v, mut m, mut zeros) = (vec![], vec![], vec![]);
                let p = act.needs_input().then_some(&mut p1[..]);
                let bufs = winograd::Bufs {
                    v: &mut v,
                    m: &mut m,
                    zeros: &mut zeros,
                };
                winograd::forward_chunk(&mut y1, p, &x, &u, Some(&bias), &g, act, bufs, g.n, false);
                let scale = y0.iter().fold(1f32, |m, v| m.max(v.abs()));
                for (i, (a, b)) in y1.iter().zip(&y0).enumerate() {
                    assert!(
                        (a - b).abs() <= 1e-4 * scale,
                        "{g:?} {act:?} y[{i}]: {a} vs {b}"
                    );
                }
                if act.needs_input() {
                    for (i, (a, b)) in p1.iter().zip(&p0).enumerate() {
                        assert!((a - b).abs() <= 1e-4 * scale, "{g:?} pre[{i}]: {a} vs {b}");
                    }
                }
            }
        }
    }

    #[test]
    fn winograd_input_gradient_matches_gemm() {
        let cases = [
            geom(3, 13, 13, 32, 64, 3, 1, Padding::Valid),
            geom(1, 7, 10, 16, 16, 3, 1, Padding::Same),
            geom(5, 9, 6, 32, 48, 3, 1, Padding::Same),
            geom(2, 5, 4, 16, 32, 3, 1, Padding::Valid),
        ];
        for g in cases {
            let Some(dg) = winograd::input_grad_geom(&g) else {
                eprintln!("skipping Winograd comparison: no AVX-512 on this CPU");
                return;
            };
            let (in_len, out_len) = (g.n * g.h * g.w * g.c_in, g.n * g.oh * g.ow * g.c_out);
            let x = random(in_len, 21);
            let w = random(g.c_out * g.patch(), 22);
            let y = random(out_len, 23);
            let dy = random(out_len, 24);
            let mut wr = vec![0.0; w.len()];
            winograd::rotate_kernel(&mut wr, &w, &g);
            let mut u = vec![0.0; winograd::kernel_len(&dg)];
            winograd::transform_kernel(&mut u, &wr, &dg);
            let run = |wino: Option<WinoGrad<'_>>| {
                let mut b: Vec<Vec<f32>> = vec![vec![]; 7];
                let mut dx = random(in_len, 25);
                let [cols, dz, dcols, dw, db, m, zeros] = &mut b[..] else {
                    unreachable!()
                };
                let bufs = ConvBackBufs {
                    cols,
                    dz,
                    dcols,
                    dw,
                    db,
                    m,
                    zeros,
                };
                let act = Activation::Relu;
                conv_backward_chunk(
                    Some(&mut dx),
                    &dy,
                    &y,
                    None,
                    &x,
                    &w,
                    &g,
                    act,
                    bufs,
                    g.n,
                    false,
                    wino,
                    ParamGrads::ALL,
                );
                (dx, b[3][..w.len()].to_vec())
            };
            let (dx0, dw0) = run(None);
            let (dx1, dw1) = run(Some(WinoGrad { g: dg, u: &u }));
            assert_eq!(
                dw0, dw1,
                "{g:?}: the weight gradient does not depend on the dx path"
            );
            let scale = dx0.iter().fold(1f32, |m, v| m.max(v.abs()));
            for (i, (a, b)) in dx1.iter().zip(&dx0).enumerate() {
                assert!((a - b).abs() <= 1e-4 * scale, "{g:?} dx[{i}]: {a} vs {b}");
            }
        }
    }

    #[test]
    fn batch_one_split_into_bands_matches_whole_image() {
        // Large enough to be split (see `bands::count`): Winograd, direct and GEMM paths, valid
        // and same padding, stride 2, odd sizes; 2 and 3 pool threads.
        let cases = [
            geom(1, 13, 13, 32, 64, 3, 1, Padding::Valid),
            geom(1, 14, 11, 16, 32, 3, 1, Padding::Same),
            geom(1, 40, 37, 1, 64, 3, 1, Padding::Same),
            geom(1, 29, 11, 3, 128, 5, 2, Padding::Same),
            geom(1, 21, 9, 8, 96, 3, 1, Padding::Valid),
        ];
        for threads in [2, 3] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            for g in cases {
                assert!(
                    bands::count_when(&g, threads, true) > 1,
                    "{g:?} is not split"
                );
                let (in_len, out_len) = (g.h * g.w * g.c_in, g.oh * g.ow * g.c_out);
                let x = random(in_len, 31);
                let w = random(g.c_out * g.patch(), 32);
                let bias = random(g.c_out, 33);
                for act in [Activation::Relu, Activation::Gelu] {
                    let (mut y0, mut p0, mut cols) =
                        (vec![0.0; out_len], vec![0.0; out_len], vec![]);
                    let p = act.needs_input().then_some(&mut p0[..]);
                    let b = Some(&bias[..]);
                    conv_forward_chunk(&mut y0, p, &x, &w, b, &g, act, None, &mut cols, 1);
                    let (mut y1, mut p1) = (vec![7.0; out_len], vec![7.0; out_len]);
                    let mut scratch = Scratch::default();
                    pool.install(|| {
                        let p = act.needs_input().then_some(&mut p1[..]);
                        let bands = bands::count_when(&g, threads, true);
                        conv_forward(&mut y1, p, &x, &w, b, &g, act, &mut scratch, bands);
                    });
                    let scale = y0.iter().fold(1f32, |m, v| m.max(v.abs()));
                    for (i, (a, b)) in y1.iter().zip(&y0).enumerate() {
                        let what = format!("{g:?} {act:?} {threads} threads y[{i}]");
                        assert!((a - b).abs() <= 1e-4 * scale, "{what}: {a} vs {b}");
                    }
                    if act.needs_input() {
                        for (i, (a, b)) in p1.iter().zip(&p0).enumerate() {
                            assert!((a - b).abs() <= 1e-4 * scale, "{g:?} pre[{i}]: {a} vs {b}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn cached_kernel_transform_follows_weight_changes() {
        // The forward pass caches the transformed kernel; `Scratch::invalidate` (called by the
        // layer whenever it lends its weights out mutably) must make the next pass rebuild it.
        for g in [
            geom(2, 13, 13, 32, 64, 3, 1, Padding::Valid),
            geom(2, 12, 12, 1, 32, 3, 1, Padding::Valid),
        ] {
            let (in_len, out_len) = (g.n * g.h * g.w * g.c_in, g.n * g.oh * g.ow * g.c_out);
            let x = random(in_len, 41);
            let mut w = random(g.c_out * g.patch(), 42);
            let mut scratch = Scratch::default();
            let mut y = vec![0.0; out_len];
            let act = Activation::Linear;
            Cpu.conv2d_forward(&mut y, None, &x, &w, None, &g, act, &mut scratch);
            w.iter_mut().for_each(|v| *v *= -2.0);
            scratch.invalidate();
            Cpu.conv2d_forward(&mut y, None, &x, &w, None, &g, act, &mut scratch);
            let mut expect = vec![0.0; out_len];
            let mut cols = vec![];
            conv_forward_chunk(
                &mut expect,
                None,
                &x,
                &w,
                None,
                &g,
                act,
                None,
                &mut cols,
                g.n,
            );
            let scale = expect.iter().fold(1f32, |m, v| m.max(v.abs()));
            for (i, (a, b)) in y.iter().zip(&expect).enumerate() {
                assert!((a - b).abs() <= 1e-4 * scale, "{g:?} y[{i}]: {a} vs {b}");
            }
        }
    }

    #[test]
    fn one_row_gemm_matches_general_gemm() {
        for (k, n) in [(1600, 64), (7, 3), (64, 10), (33, 17)] {
            let a = random(k, 51);
            let b = random(k * n, 52);
            for accumulate in [false, true] {
                let mut c0 = random(n, 53);
                let mut c1 = c0.clone();
                sgemm(
                    1,
                    n,
                    k,
                    &a,
                    false,
                    &b,
                    false,
                    &mut c0,
                    accumulate,
                    Parallelism::None,
                );
                Cpu.gemm(1, n, k, &a, false, &b, false, &mut c1, accumulate);
                assert_close(&format!("{k}x{n} accumulate {accumulate}"), &c1, &c0);
            }
        }
    }

    fn pool_geom(n: usize, h: usize, w: usize, c: usize) -> PoolGeom {
        PoolGeom {
            n,
            h,
            w,
            c,
            oh: h / 2,
            ow: w / 2,
            k: 2,
            stride: 2,
            pad_top: 0,
            pad_left: 0,
        }
    }

    #[test]
    fn max_pool_2x2_fast_path_matches_generic() {
        for (h, w, c) in [(6, 7, 3), (26, 26, 32), (11, 11, 64), (5, 4, 1), (2, 2, 17)] {
            let g = pool_geom(1, h, w, c);
            assert!(is_pool2x2(&g));
            // Values on a coarse grid so windows have ties (the first maximum must win).
            let x: Vec<f32> = random(h * w * c, 7)
                .iter()
                .map(|v| (v * 3.0).round())
                .collect();
            let out = g.oh * g.ow * c;
            let (mut y0, mut a0) = (vec![0.0; out], vec![0u32; out]);
            let (mut y1, mut a1) = (vec![1.0; out], vec![9u32; out]);
            max_pool_image(&mut y0, Some(&mut a0), &x, &g);
            max_pool2x2_image(&mut y1, &mut a1, &x, &g);
            assert_eq!(y0, y1, "{h}x{w}x{c} values");
            assert_eq!(a0, a1, "{h}x{w}x{c} argmax");
            // Inference skips the argmax; the values must not change.
            let (mut y2, mut y3) = (vec![2.0; out], vec![3.0; out]);
            max_pool_image(&mut y2, None, &x, &g);
            max_pool2x2_values(&mut y3, &x, &g);
            assert_eq!(y0, y2, "{h}x{w}x{c} values without argmax");
            assert_eq!(y0, y3, "{h}x{w}x{c} 2x2 values without argmax");
            let dy = random(out, 8);
            let mut dx0 = random(h * w * c, 9);
            let mut dx1 = dx0.clone();
            for (&d, &i) in dy.iter().zip(&a0) {
                dx0[i as usize] += d;
            }
            max_pool2x2_backward_image(&mut dx1, &dy, &a1, &g);
            assert_eq!(dx0, dx1, "{h}x{w}x{c} dx");
        }
    }
}
