//! `C [m, n] (+)= A [m, k] · B [k, n]` on AVX-512 for every single-threaded product whose `B` is
//! row-major with `n` a multiple of 16: the Winograd products, convolution weight gradients and
//! dense layers at small batch.
//!
//! The `gemm` crate runs its AVX2 kernels on stable Rust (its AVX-512 ones need nightly) and packs
//! both operands first; for the 36 Winograd products of the seed CNN's second convolution (`k` =
//! 32) and for a dense layer at batch 1 the packing and the edge tiles cost as much as the
//! arithmetic. Here a panel of up to 6 rows by 64 columns of `C` (24 zmm registers) is kept in
//! registers for the whole reduction: per step of `k`, four vector loads of `B`'s row, one
//! broadcast of each `A` value from memory and 24 FMAs. Nothing is packed: `A` is read in place
//! with any row and column strides (so the Winograd buffers with interleaved positions and the
//! transposed operand of a weight gradient work as they are) and `B`'s rows are contiguous. At
//! `m` = 1 (a dense layer at batch 1) this is a matrix-vector product whose four accumulators are
//! independent chains, so the FMA latency is hidden.

use super::simd::{level, Level};

/// Columns per vector.
const L: usize = 16;
/// Rows of `C` per register panel.
const ROWS: usize = 6;

/// Whether [`gemm`] handles `n` columns on this CPU.
pub(super) fn supports(n: usize) -> bool {
    n > 0 && n.is_multiple_of(L) && level() == Level::Avx512
}

/// `c[i·ldc + j] (+)= Σ_t a[i·a_rs + t·a_cs] · b[t·n + j]` for `i < m`, `j < n`, `t < k`: `B` is
/// row-major `[k, n]`; `A` has row and column strides `(a_rs, a_cs)` (elements; `(k, 1)` for a
/// row-major `A`, `(1, m)` for the transpose of a row-major `[k, m]`), `C` row stride `ldc`.
/// With `accumulate` the product is added to `C`, otherwise it overwrites it. Requires
/// [`supports`]`(n)`.
#[allow(clippy::too_many_arguments)]
pub(super) fn gemm(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    (a_rs, a_cs): (usize, usize),
    b: &[f32],
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
) {
    assert!(supports(n), "panel gemm: {n} columns on this CPU");
    if m == 0 {
        return;
    }
    assert!(ldc >= n);
    assert!(
        k == 0 || a.len() > (m - 1) * a_rs + (k - 1) * a_cs,
        "panel gemm: lhs too short"
    );
    assert!(b.len() >= k * n, "panel gemm: rhs too short");
    assert!(c.len() >= (m - 1) * ldc + n, "panel gemm: dst too short");
    #[cfg(target_arch = "x86_64")]
    // SAFETY: AVX-512 is present (`supports`); rows `< m` of `a`/`c` with columns `< k`/`< n` and
    // rows `< k` of `b` are within the lengths asserted above.
    unsafe {
        let (a, b, c) = (a.as_ptr(), b.as_ptr(), c.as_mut_ptr());
        let lda = (a_rs, a_cs);
        let mut r = 0;
        while r + ROWS <= m {
            let (ar, cr) = (a.add(r * a_rs), c.add(r * ldc));
            columns::<ROWS>(ar, lda, b, cr, ldc, n, k, accumulate);
            r += ROWS;
        }
        let (a, c) = (a.add(r * a_rs), c.add(r * ldc));
        match m - r {
            0 => {}
            1 => columns::<1>(a, lda, b, c, ldc, n, k, accumulate),
            2 => columns::<2>(a, lda, b, c, ldc, n, k, accumulate),
            3 => columns::<3>(a, lda, b, c, ldc, n, k, accumulate),
            4 => columns::<4>(a, lda, b, c, ldc, n, k, accumulate),
            _ => columns::<5>(a, lda, b, c, ldc, n, k, accumulate),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("panel gemm needs x86-64 AVX-512");
}

/// `R` rows of `C`, all `n` columns: panels of 64 columns, then one of 16, 32 or 48.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn columns<const R: usize>(
    a: *const f32,
    lda: (usize, usize),
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    n: usize,
    k: usize,
    accumulate: bool,
) {
    let mut j = 0;
    while j + 4 * L <= n {
        panel::<R, 4>(a, lda, b.add(j), n, c.add(j), ldc, k, accumulate);
        j += 4 * L;
    }
    match (n - j) / L {
        0 => {}
        1 => panel::<R, 1>(a, lda, b.add(j), n, c.add(j), ldc, k, accumulate),
        2 => panel::<R, 2>(a, lda, b.add(j), n, c.add(j), ldc, k, accumulate),
        _ => panel::<R, 3>(a, lda, b.add(j), n, c.add(j), ldc, k, accumulate),
    }
}

/// `R` rows by `V` vectors of `C` in registers over the whole reduction.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
#[allow(clippy::too_many_arguments)]
unsafe fn panel<const R: usize, const V: usize>(
    a: *const f32,
    lda: (usize, usize),
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    k: usize,
    accumulate: bool,
) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm512_setzero_ps(); V]; R];
    if accumulate {
        for (i, row) in acc.iter_mut().enumerate() {
            for (v, x) in row.iter_mut().enumerate() {
                *x = _mm512_loadu_ps(c.add(i * ldc + v * L));
            }
        }
    }
    for t in 0..k {
        let mut bv = [_mm512_setzero_ps(); V];
        for (v, x) in bv.iter_mut().enumerate() {
            *x = _mm512_loadu_ps(b.add(t * ldb + v * L));
        }
        for (i, row) in acc.iter_mut().enumerate() {
            let x = _mm512_set1_ps(*a.add(i * lda.0 + t * lda.1));
            for (v, y) in row.iter_mut().enumerate() {
                *y = _mm512_fmadd_ps(x, bv[v], *y);
            }
        }
    }
    for (i, row) in acc.iter().enumerate() {
        for (v, x) in row.iter().enumerate() {
            _mm512_storeu_ps(c.add(i * ldc + v * L), *x);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every row remainder (1–5 after panels of 6), every column remainder (16, 32, 48 after
    /// panels of 64), strided rows on both sides, overwrite and accumulate: against the plain sum.
    #[test]
    fn matches_the_plain_product() {
        if !supports(16) {
            eprintln!("skipped: panel gemm needs AVX-512, which this CPU lacks");
            return;
        }
        let value =
            |i: usize, salt: usize| ((i * 7919 + salt * 104_729) % 201) as f32 / 100.0 - 1.0;
        for m in [1, 2, 5, 6, 7, 13] {
            for n in [16, 48, 64, 80, 112, 128] {
                for k in [1, 9, 32] {
                    let (lda, ldc) = (k + 3, n + 16);
                    let a: Vec<f32> = (0..m * lda).map(|i| value(i, 1)).collect();
                    // The same A stored transposed, [k, m + 2].
                    let at: Vec<f32> = (0..k * (m + 2))
                        .map(|j| match (j % (m + 2), j / (m + 2)) {
                            (i, t) if i < m => a[i * lda + t],
                            _ => f32::NAN,
                        })
                        .collect();
                    let b: Vec<f32> = (0..k * n).map(|i| value(i, 2)).collect();
                    let layouts = [(&a, (lda, 1)), (&at, (1, m + 2))];
                    for ((a_mem, strides), accumulate) in
                        layouts.into_iter().flat_map(|l| [(l, false), (l, true)])
                    {
                        let start: Vec<f32> = (0..m * ldc).map(|i| value(i, 3)).collect();
                        let mut c = start.clone();
                        gemm(m, n, k, a_mem, strides, &b, &mut c, ldc, accumulate);
                        for i in 0..m {
                            for j in 0..ldc {
                                let got = c[i * ldc + j];
                                if j >= n {
                                    assert_eq!(got, start[i * ldc + j], "wrote past column {n}");
                                    continue;
                                }
                                let dot: f32 = (0..k).map(|t| a[i * lda + t] * b[t * n + j]).sum();
                                let want = dot + if accumulate { start[i * ldc + j] } else { 0.0 };
                                assert!(
                                    (got - want).abs() <= 1e-5 * (1.0 + want.abs()),
                                    "m={m} n={n} k={k} {strides:?} acc={accumulate} [{i},{j}]: {got} vs {want}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}
