//! Row-major matrix products on cuBLAS (column-major) through the usual transpose trick: a
//! row-major `C[m, n] = op(A) · op(B)` is the column-major `Cᵀ[n, m] = op(B)ᵀ · op(A)ᵀ`, and a
//! row-major matrix read as column-major is its transpose, so no data moves.

use cudarc::cublas::{result as blas, sys::cublasOperation_t};

use super::device::GpuDevice;
use super::error::{self, Result};

/// `c[m, n] = op(a)[m, k] · op(b)[k, n]`, or `+=` when `accumulate`, all row-major device
/// matrices: `a` stored `[m, k]` (`[k, m]` when `trans_a`), `b` stored `[k, n]` (`[n, k]` when
/// `trans_b`). The same contract as `Backend::gemm`.
#[allow(clippy::too_many_arguments)]
pub fn gemm(
    dev: &GpuDevice,
    m: usize,
    n: usize,
    k: usize,
    a: u64,
    trans_a: bool,
    b: u64,
    trans_b: bool,
    c: u64,
    accumulate: bool,
) -> Result<()> {
    if m == 0 || n == 0 {
        return Ok(());
    }
    let op = |t: bool| {
        if t {
            cublasOperation_t::CUBLAS_OP_T
        } else {
            cublasOperation_t::CUBLAS_OP_N
        }
    };
    let lda = if trans_a { m } else { k };
    let ldb = if trans_b { k } else { n };
    let (alpha, beta) = (1.0f32, if accumulate { 1.0f32 } else { 0.0 });
    dev.bind()?;
    // SAFETY: the pointers address device matrices of the documented shapes (the callers size
    // them from the same dimensions) on the stream the handle is bound to.
    unsafe {
        blas::sgemm(
            *dev.blas.handle(),
            op(trans_b),
            op(trans_a),
            n as i32,
            m as i32,
            k as i32,
            &alpha,
            b as *const f32,
            ldb.max(1) as i32,
            a as *const f32,
            lda.max(1) as i32,
            &beta,
            c as *mut f32,
            n as i32,
        )
    }
    .map_err(|e| error::cublas(&format!("multiplying [{m}x{k}] by [{k}x{n}]"), e))
}
