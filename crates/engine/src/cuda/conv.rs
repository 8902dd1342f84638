//! cuDNN convolution plans: descriptors for one batch size, the algorithms chosen for the
//! forward pass and both gradients, and the workspace they need.
//!
//! Layouts line up without copies: activations are NHWC and our kernel layout
//! `[out, kh, kw, in]` is cuDNN's NHWC filter layout (`KRSC`). TensorFlow's "same" padding puts
//! an odd extra row or column at the bottom/right, which cuDNN's symmetric padding cannot
//! express; such a layer convolves an explicitly padded copy of its input (`Padded`).

use cudarc::cudnn::{result as dnn, sys};

use super::device::GpuDevice;
use super::error::{self, Result};
use crate::backend::ConvGeom;

/// Workspace above this is not worth an algorithm's speed on the small networks we train.
const MAX_WORKSPACE: usize = 512 << 20;

// Descriptors are host-side structs that cuDNN only reads during calls: moving one to another
// thread (with the executor that owns it, see `DnnHandle`) is sound.
struct TensorDesc(sys::cudnnTensorDescriptor_t);
// SAFETY: see above.
unsafe impl Send for TensorDesc {}
impl Drop for TensorDesc {
    fn drop(&mut self) {
        // SAFETY: created by create_tensor_descriptor, destroyed once here.
        let _ = unsafe { dnn::destroy_tensor_descriptor(self.0) };
    }
}

struct FilterDesc(sys::cudnnFilterDescriptor_t);
// SAFETY: see `TensorDesc`.
unsafe impl Send for FilterDesc {}
impl Drop for FilterDesc {
    fn drop(&mut self) {
        // SAFETY: created by create_filter_descriptor, destroyed once here.
        let _ = unsafe { dnn::destroy_filter_descriptor(self.0) };
    }
}

struct ConvDesc(sys::cudnnConvolutionDescriptor_t);
// SAFETY: see `TensorDesc`.
unsafe impl Send for ConvDesc {}
impl Drop for ConvDesc {
    fn drop(&mut self) {
        // SAFETY: created by create_convolution_descriptor, destroyed once here.
        let _ = unsafe { dnn::destroy_convolution_descriptor(self.0) };
    }
}

/// How a layer's padding maps onto cuDNN: symmetric (cuDNN pads) or explicit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PadMode {
    /// cuDNN pads `pad_h` rows top and bottom, `pad_w` columns left and right.
    Symmetric { pad_h: usize, pad_w: usize },
    /// The input is first copied into `[n, hp, wp, c]` with `pad_top`/`pad_left` before; the
    /// convolution then runs unpadded.
    Padded { hp: usize, wp: usize },
}

/// Decides the padding mode for a layer's geometry (independent of the batch size).
pub fn pad_mode(g: &ConvGeom) -> PadMode {
    let fits = |input: usize, pad: usize, k: usize, out: usize| {
        input + 2 * pad >= k && (input + 2 * pad - k) / g.stride + 1 == out
    };
    if fits(g.h, g.pad_top, g.kh, g.oh) && fits(g.w, g.pad_left, g.kw, g.ow) {
        return PadMode::Symmetric {
            pad_h: g.pad_top,
            pad_w: g.pad_left,
        };
    }
    // Pad just enough after the input for the last window: (out - 1) * stride + k.
    // Input rows past that are read by no window, so they may be cut.
    let hp = (g.oh - 1) * g.stride + g.kh;
    let wp = (g.ow - 1) * g.stride + g.kw;
    PadMode::Padded { hp, wp }
}

/// Everything cuDNN needs to run one layer's convolution at one batch size.
pub struct ConvPlan {
    x: TensorDesc,
    y: TensorDesc,
    w: FilterDesc,
    conv: ConvDesc,
    fwd: sys::cudnnConvolutionFwdAlgo_t,
    bwd_data: sys::cudnnConvolutionBwdDataAlgo_t,
    bwd_filter: sys::cudnnConvolutionBwdFilterAlgo_t,
    /// Bytes of workspace the three algorithms need at most.
    pub workspace: usize,
}

fn nhwc(n: usize, h: usize, w: usize, c: usize) -> Result<TensorDesc> {
    let d = TensorDesc(
        dnn::create_tensor_descriptor().map_err(|e| error::cudnn("creating a descriptor", e))?,
    );
    // SAFETY: a freshly created descriptor.
    unsafe {
        dnn::set_tensor4d_descriptor(
            d.0,
            sys::cudnnTensorFormat_t::CUDNN_TENSOR_NHWC,
            sys::cudnnDataType_t::CUDNN_DATA_FLOAT,
            [n as i32, c as i32, h as i32, w as i32],
        )
    }
    .map_err(|e| error::cudnn(&format!("describing a tensor [{n}, {h}, {w}, {c}]"), e))?;
    Ok(d)
}

impl ConvPlan {
    /// Builds descriptors for `g` (with `g.n` the batch size) and picks algorithms by cuDNN's
    /// heuristics: the first that succeeds within the workspace limit, preferring deterministic
    /// ones so that a run repeats exactly.
    pub fn new(dev: &GpuDevice, g: &ConvGeom, mode: PadMode) -> Result<ConvPlan> {
        let (xh, xw, pad_h, pad_w) = match mode {
            PadMode::Symmetric { pad_h, pad_w } => (g.h, g.w, pad_h, pad_w),
            PadMode::Padded { hp, wp } => (hp, wp, 0, 0),
        };
        let x = nhwc(g.n, xh, xw, g.c_in)?;
        let y = nhwc(g.n, g.oh, g.ow, g.c_out)?;
        let w = FilterDesc(
            dnn::create_filter_descriptor()
                .map_err(|e| error::cudnn("creating a descriptor", e))?,
        );
        // SAFETY: a freshly created descriptor. NHWC filters are [k, r, s, c] = [out, kh, kw, in].
        unsafe {
            dnn::set_filter4d_descriptor(
                w.0,
                sys::cudnnDataType_t::CUDNN_DATA_FLOAT,
                sys::cudnnTensorFormat_t::CUDNN_TENSOR_NHWC,
                [g.c_out as i32, g.c_in as i32, g.kh as i32, g.kw as i32],
            )
        }
        .map_err(|e| error::cudnn("describing the filter", e))?;
        let conv = ConvDesc(
            dnn::create_convolution_descriptor()
                .map_err(|e| error::cudnn("creating a descriptor", e))?,
        );
        let math = if dev.tf32 {
            sys::cudnnMathType_t::CUDNN_DEFAULT_MATH
        } else {
            // Plain fp32 FMA: no TF32 tensor cores, so results match the CPU to rounding.
            sys::cudnnMathType_t::CUDNN_FMA_MATH
        };
        // SAFETY: a freshly created descriptor.
        unsafe {
            dnn::set_convolution2d_descriptor(
                conv.0,
                pad_h as i32,
                pad_w as i32,
                g.stride as i32,
                g.stride as i32,
                1,
                1,
                sys::cudnnConvolutionMode_t::CUDNN_CROSS_CORRELATION,
                sys::cudnnDataType_t::CUDNN_DATA_FLOAT,
            )
            .and_then(|()| dnn::set_convolution_math_type(conv.0, math))
        }
        .map_err(|e| error::cudnn("describing the convolution", e))?;
        let h = dev.dnn.0;
        let what = |op: &str| {
            format!(
                "choosing a {op} algorithm for conv {}x{} {}->{} on [{}, {}, {}]",
                g.kh, g.kw, g.c_in, g.c_out, g.n, g.h, g.w
            )
        };
        // SAFETY (all three): live descriptors and handle; the perf arrays hold ALGO_COUNT.
        let fwd = unsafe {
            let mut perf = [std::mem::zeroed::<sys::cudnnConvolutionFwdAlgoPerf_t>(); 8];
            let mut count = 0;
            dnn::get_convolution_forward_algorithm(
                h,
                x.0,
                w.0,
                conv.0,
                y.0,
                8,
                &mut count,
                perf.as_mut_ptr(),
            )
            .map_err(|e| error::cudnn(&what("forward"), e))?;
            pick(&perf[..count.max(0) as usize], |p| {
                (p.status, p.memory, p.determinism, p.algo)
            })
            .ok_or_else(|| no_algo(&what("forward")))?
        };
        let bwd_data = unsafe {
            let mut perf = [std::mem::zeroed::<sys::cudnnConvolutionBwdDataAlgoPerf_t>(); 6];
            let mut count = 0;
            dnn::get_convolution_backward_data_algorithm(
                h,
                w.0,
                y.0,
                conv.0,
                x.0,
                6,
                &mut count,
                perf.as_mut_ptr(),
            )
            .map_err(|e| error::cudnn(&what("backward-data"), e))?;
            pick(&perf[..count.max(0) as usize], |p| {
                (p.status, p.memory, p.determinism, p.algo)
            })
            .ok_or_else(|| no_algo(&what("backward-data")))?
        };
        let bwd_filter = unsafe {
            let mut perf = [std::mem::zeroed::<sys::cudnnConvolutionBwdFilterAlgoPerf_t>(); 7];
            let mut count = 0;
            dnn::get_convolution_backward_filter_algorithm(
                h,
                x.0,
                y.0,
                conv.0,
                w.0,
                7,
                &mut count,
                perf.as_mut_ptr(),
            )
            .map_err(|e| error::cudnn(&what("backward-filter"), e))?;
            pick(&perf[..count.max(0) as usize], |p| {
                (p.status, p.memory, p.determinism, p.algo)
            })
            .ok_or_else(|| no_algo(&what("backward-filter")))?
        };
        // SAFETY: live descriptors and handle, algorithms returned for them.
        let workspace = unsafe {
            let a = dnn::get_convolution_forward_workspace_size(h, x.0, w.0, conv.0, y.0, fwd);
            let b = dnn::get_convolution_backward_data_workspace_size(
                h, w.0, y.0, conv.0, x.0, bwd_data,
            );
            let c = dnn::get_convolution_backward_filter_workspace_size(
                h, x.0, y.0, conv.0, w.0, bwd_filter,
            );
            a.and_then(|a| Ok(a.max(b?).max(c?)))
        }
        .map_err(|e| error::cudnn(&what("workspace size for the"), e))?;
        Ok(ConvPlan {
            x,
            y,
            w,
            conv,
            fwd,
            bwd_data,
            bwd_filter,
            workspace,
        })
    }

    /// `y = conv(x, w)` (overwrites `y`).
    pub fn forward(&self, dev: &GpuDevice, y: u64, x: u64, w: u64, ws: (u64, usize)) -> Result<()> {
        let (alpha, beta) = (1.0f32, 0.0f32);
        dev.bind()?;
        // SAFETY: pointers sized by the plan's geometry; workspace at least `self.workspace`.
        unsafe {
            dnn::convolution_forward(
                dev.dnn.0,
                ptr(&alpha),
                self.x.0,
                x as *const _,
                self.w.0,
                w as *const _,
                self.conv.0,
                self.fwd,
                ws.0 as *mut _,
                ws.1,
                ptr(&beta),
                self.y.0,
                y as *mut _,
            )
        }
        .map_err(|e| error::cudnn("running a convolution", e))
    }

    /// `dx (+)= ∂L/∂x` from `dy`: `accumulate` adds into `dx`.
    pub fn backward_data(
        &self,
        dev: &GpuDevice,
        dx: u64,
        dy: u64,
        w: u64,
        ws: (u64, usize),
        accumulate: bool,
    ) -> Result<()> {
        let (alpha, beta) = (1.0f32, if accumulate { 1.0f32 } else { 0.0 });
        dev.bind()?;
        // SAFETY: as in `forward`.
        unsafe {
            dnn::convolution_backward_data(
                dev.dnn.0,
                ptr(&alpha),
                self.w.0,
                w as *const _,
                self.y.0,
                dy as *const _,
                self.conv.0,
                self.bwd_data,
                ws.0 as *mut _,
                ws.1,
                ptr(&beta),
                self.x.0,
                dx as *mut _,
            )
        }
        .map_err(|e| error::cudnn("computing a convolution's input gradient", e))
    }

    /// `dw += ∂L/∂w` from `x` and `dy`.
    pub fn backward_filter(
        &self,
        dev: &GpuDevice,
        dw: u64,
        x: u64,
        dy: u64,
        ws: (u64, usize),
    ) -> Result<()> {
        let (alpha, beta) = (1.0f32, 1.0f32);
        dev.bind()?;
        // SAFETY: as in `forward`.
        unsafe {
            dnn::convolution_backward_filter(
                dev.dnn.0,
                ptr(&alpha),
                self.x.0,
                x as *const _,
                self.y.0,
                dy as *const _,
                self.conv.0,
                self.bwd_filter,
                ws.0 as *mut _,
                ws.1,
                ptr(&beta),
                self.w.0,
                dw as *mut _,
            )
        }
        .map_err(|e| error::cudnn("computing a convolution's weight gradient", e))
    }
}

fn ptr(v: &f32) -> *const std::ffi::c_void {
    v as *const f32 as *const _
}

fn no_algo(what: &str) -> crate::EngineError {
    crate::EngineError::Device(format!("cuDNN has no algorithm when {what}"))
}

/// The first successful algorithm within the workspace limit, deterministic ones first; the
/// entries come sorted by cuDNN's expected speed.
fn pick<P, A: Copy>(
    perf: &[P],
    fields: impl Fn(&P) -> (sys::cudnnStatus_t, usize, sys::cudnnDeterminism_t, A),
) -> Option<A> {
    let usable = |p: &&P| {
        let (status, memory, _, _) = fields(p);
        status == sys::cudnnStatus_t::CUDNN_STATUS_SUCCESS && memory <= MAX_WORKSPACE
    };
    let deterministic = perf
        .iter()
        .filter(usable)
        .find(|p| fields(p).2 == sys::cudnnDeterminism_t::CUDNN_DETERMINISTIC);
    deterministic
        .or_else(|| perf.iter().find(usable))
        .map(|p| fields(p).3)
}
