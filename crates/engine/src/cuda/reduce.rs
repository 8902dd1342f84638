//! Per-channel sums over rows of `[rows, c]` (batch-norm statistics and gradients, bias
//! gradients): partial sums per block in double, then one pass adding them in a fixed order. No
//! atomics, so results repeat exactly.

use cudarc::driver::LaunchConfig;

use super::buffer::GpuBuf;
use super::device::GpuDevice;
use super::error::Result;
use super::kernels::Arg;

/// Row blocks at most: partial buffers hold `PARTS * channels` doubles.
pub const PARTS: usize = 512;

/// Rows one block should cover at least: fewer blocks for small sums (the final pass adds one
/// partial per block), enough blocks to fill the GPU for a large batch's convolution output.
const ROWS_PER_PART: usize = 256;

/// What to sum per channel.
#[derive(Clone, Copy, Debug)]
pub enum Sum {
    /// `Σ a`
    Plain,
    /// `Σ (a - mean)²`
    SquaredDeviation { mean: u64 },
    /// `Σ a` and `Σ a·b`
    WithProduct { b: u64 },
}

/// Reusable partial-sum buffers sized for the widest layer.
pub struct Partials {
    a: GpuBuf<f64>,
    b: GpuBuf<f64>,
}

impl Partials {
    pub fn new(dev: &GpuDevice, max_channels: usize) -> Result<Partials> {
        Ok(Partials {
            a: GpuBuf::zeros(&dev.stream, PARTS * max_channels, "reduction partials")?,
            b: GpuBuf::zeros(&dev.stream, PARTS * max_channels, "reduction partials")?,
        })
    }

    /// `out_a[ch] (+)= scale · Σ_rows f(a)` and, for [`Sum::WithProduct`], `out_b[ch] (+)= scale ·
    /// Σ a·b`; `accumulate` adds to the outputs instead of overwriting them.
    #[allow(clippy::too_many_arguments)]
    pub fn channel_sums(
        &self,
        dev: &GpuDevice,
        out_a: u64,
        out_b: Option<u64>,
        a: u64,
        sum: Sum,
        rows: usize,
        c: usize,
        scale: f64,
        accumulate: bool,
    ) -> Result<()> {
        assert!(PARTS * c <= self.a.len(), "reduction partials too small");
        let parts = rows.div_ceil(ROWS_PER_PART).clamp(1, PARTS);
        let (kind, b, mean) = match sum {
            Sum::Plain => (0, 0, 0),
            Sum::SquaredDeviation { mean } => (1, 0, mean),
            Sum::WithProduct { b } => (2, b, 0),
        };
        let cfg = LaunchConfig {
            grid_dim: (c.div_ceil(32) as u32, parts as u32, 1),
            block_dim: (32, 8, 1),
            shared_mem_bytes: 0,
        };
        dev.kernels.launch(
            &dev.stream,
            "channel_partials",
            cfg,
            &[
                Arg::Ptr(self.a.ptr()),
                Arg::Ptr(self.b.ptr()),
                Arg::Ptr(a),
                Arg::Ptr(b),
                Arg::Ptr(mean),
                Arg::I64(rows as i64),
                Arg::I32(c as i32),
                Arg::I32(kind),
            ],
        )?;
        let out_b = if kind == 2 { out_b.unwrap_or(0) } else { 0 };
        dev.launch_n(
            "channel_finalize",
            c,
            &[
                Arg::Ptr(out_a),
                Arg::Ptr(out_b),
                Arg::Ptr(self.a.ptr()),
                Arg::Ptr(self.b.ptr()),
                Arg::I32(parts as i32),
                Arg::I32(c as i32),
                Arg::F64(scale),
                Arg::I32(accumulate as i32),
            ],
        )
    }
}
