//! `Cpu`: the host backend. GEMMs run on the `gemm` crate; convolutions are NHWC im2col + GEMM
//! with the batch split into one coarse chunk per rayon thread (each thread keeps its own im2col
//! buffer and partial weight gradient, reduced once at the end), the bias and activation fused
//! into the GEMM's epilogue, and pooling and element-wise kernels split the same way.

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
    let (a_rs, a_cs) = if trans_a {
        (1, m as isize)
    } else {
        (k as isize, 1)
    };
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

/// Runs `f` monomorphised for the activation, so the inner loops vectorise.
macro_rules! with_act {
    ($act:expr, |$f:ident| $body:expr) => {
        match $act {
            Activation::Linear => {
                let $f = |x: f32| x;
                $body
            }
            Activation::Relu => {
                let $f = |x: f32| x.max(0.0);
                $body
            }
            a => {
                let $f = move |x: f32| a.apply(x);
                $body
            }
        }
    };
}

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
                        dst.copy_from_slice(&ximg[s..s + seg]);
                        continue;
                    }
                    for kx in 0..g.kw {
                        let d = &mut dst[kx * ci..(kx + 1) * ci];
                        let ix = ix0 + kx as isize;
                        if ix < 0 || ix as usize >= g.w {
                            d.fill(0.0);
                        } else {
                            let s = (line + ix as usize) * ci;
                            d.copy_from_slice(&ximg[s..s + ci]);
                        }
                    }
                }
            }
        }
    }
}

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

fn ensure(buf: &mut Vec<f32>, len: usize) {
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
}

/// Images per GEMM block inside one thread.
fn micro_batch(g: &ConvGeom) -> usize {
    (target_rows() / (g.oh * g.ow).max(1)).max(1)
}

/// Whether im2col is the identity (1x1, stride 1, no padding): the input rows are the columns.
fn is_pointwise(g: &ConvGeom) -> bool {
    g.kh == 1 && g.kw == 1 && g.stride == 1 && g.pad_top == 0 && g.pad_left == 0
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
        let a: &[f32] = if is_pointwise(g) {
            xin
        } else {
            ensure(cols, rows * patch);
            im2col(cols, xin, nb, g);
            &cols[..rows * patch]
        };
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
        let pblk = pre
            .as_deref_mut()
            .map(|p| &mut p[i0 * out_rows * co..(i0 * out_rows + rows) * co]);
        bias_act_rows(yblk, pblk, bias, co, act);
        i0 += nb;
    }
}

/// Per-thread buffers of the convolution backward pass.
struct ConvBackBufs<'a> {
    cols: &'a mut Vec<f32>,
    dz: &'a mut Vec<f32>,
    dcols: &'a mut Vec<f32>,
    dw: &'a mut Vec<f32>,
    db: &'a mut Vec<f32>,
}

/// Backward convolution of `imgs` images on the calling thread; `bufs.dw` and `bufs.db` receive
/// this chunk's (zero-started) partial weight and bias gradients.
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
) {
    let (patch, co) = (g.patch(), g.c_out);
    let (in_img, out_rows) = (g.h * g.w * g.c_in, g.oh * g.ow);
    let mb = micro_batch(g);
    ensure(bufs.dw, co * patch);
    ensure(bufs.db, co);
    bufs.dw[..co * patch].fill(0.0);
    bufs.db[..co].fill(0.0);
    let mut i0 = 0;
    while i0 < imgs {
        let nb = mb.min(imgs - i0);
        let rows = nb * out_rows;
        let span = i0 * out_rows * co..(i0 * out_rows + rows) * co;
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
        // db[co] += Σ_rows dz
        for row in dz.chunks_exact(co) {
            bufs.db[..co].iter_mut().zip(row).for_each(|(b, d)| *b += d);
        }
        let xin = &x[i0 * in_img..(i0 + nb) * in_img];
        let cols: &[f32] = if is_pointwise(g) {
            xin
        } else {
            ensure(bufs.cols, rows * patch);
            im2col(bufs.cols, xin, nb, g);
            &bufs.cols[..rows * patch]
        };
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
        if let Some(dx) = dx.as_deref_mut() {
            let dxblk = &mut dx[i0 * in_img..(i0 + nb) * in_img];
            if is_pointwise(g) {
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

fn max_pool_image(y: &mut [f32], am: &mut [u32], x: &[f32], g: &PoolGeom) {
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
            let (out, idx) = (&mut y[o..o + c], &mut am[o..o + c]);
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
            // Pass 2: where it was, scanning the window backwards so the first maximum wins.
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
        if y.len() >= PARALLEL_ELEMS {
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
        if dx.len() >= PARALLEL_ELEMS {
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
        if scratch.bufs.len() < chunks {
            scratch.bufs.resize_with(chunks, Vec::new);
        }
        let mut pres: Vec<Option<&mut [f32]>> = match pre {
            Some(p) => p.chunks_mut(per * out_img).map(Some).collect(),
            None => (0..chunks).map(|_| None).collect(),
        };
        y.par_chunks_mut(per * out_img)
            .zip(x.par_chunks(per * in_img))
            .zip(scratch.bufs[..chunks].par_iter_mut())
            .zip(pres.par_iter_mut())
            .for_each(|(((y, x), cols), pre)| {
                let imgs = x.len() / in_img;
                conv_forward_chunk(y, pre.take(), x, w, bias, g, act, cols, imgs);
            });
    }

    fn conv2d_backward(
        &self,
        dx: Option<&mut [f32]>,
        dw: &mut [f32],
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
        // Five buffers per thread: cols, dz, dcols, dw partial, db partial.
        if scratch.bufs.len() < 5 * chunks {
            scratch.bufs.resize_with(5 * chunks, Vec::new);
        }
        let mut dxs: Vec<Option<&mut [f32]>> = match dx {
            Some(d) => d.chunks_mut(per * in_img).map(Some).collect(),
            None => (0..chunks).map(|_| None).collect(),
        };
        scratch.bufs[..5 * chunks]
            .par_chunks_mut(5)
            .zip(dxs.par_iter_mut())
            .enumerate()
            .for_each(|(t, (bufs, dx))| {
                let imgs = per.min(g.n - t * per);
                let o = t * per * out_img..(t * per + imgs) * out_img;
                let [cols, dz, dcols, dwp, dbp] = bufs else {
                    unreachable!("chunks of five")
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
                    },
                    imgs,
                );
            });
        // Reduce the per-thread partials in a fixed order (deterministic for a thread count).
        let (np, co) = (g.c_out * g.patch(), g.c_out);
        let mut db = db;
        for t in 0..chunks {
            dw.iter_mut()
                .zip(&scratch.bufs[5 * t + 3][..np])
                .for_each(|(d, p)| *d += p);
            if let Some(db) = db.as_deref_mut() {
                db.iter_mut()
                    .zip(&scratch.bufs[5 * t + 4][..co])
                    .for_each(|(d, p)| *d += p);
            }
        }
    }

    fn max_pool_forward(&self, y: &mut [f32], argmax: &mut [u32], x: &[f32], g: &PoolGeom) {
        let (per, _) = batch_split(g.n);
        let (in_img, out_img) = (g.h * g.w * g.c, g.oh * g.ow * g.c);
        y.par_chunks_mut(per * out_img)
            .zip(argmax.par_chunks_mut(per * out_img))
            .zip(x.par_chunks(per * in_img))
            .for_each(|((y, am), x)| {
                for ((y, am), x) in y
                    .chunks_exact_mut(out_img)
                    .zip(am.chunks_exact_mut(out_img))
                    .zip(x.chunks_exact(in_img))
                {
                    max_pool_image(y, am, x, g);
                }
            });
    }

    fn max_pool_backward(&self, dx: &mut [f32], dy: &[f32], argmax: &[u32], g: &PoolGeom) {
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
                    for (&g, &i) in dy.iter().zip(am) {
                        dx[i as usize] += g;
                    }
                }
            });
    }

    fn avg_pool_forward(&self, y: &mut [f32], x: &[f32], g: &PoolGeom) {
        let (per, _) = batch_split(g.n);
        let (in_img, out_img) = (g.h * g.w * g.c, g.oh * g.ow * g.c);
        y.par_chunks_mut(per * out_img)
            .zip(x.par_chunks(per * in_img))
            .for_each(|(y, x)| {
                for (y, x) in y.chunks_exact_mut(out_img).zip(x.chunks_exact(in_img)) {
                    avg_pool_image(y, Some(x), None, &[], g);
                }
            });
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
