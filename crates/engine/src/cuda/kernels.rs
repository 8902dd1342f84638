//! The NVRTC kernels (`kernels.cu`): compiling them, loading them into a context, and launching
//! them with typed arguments.
//!
//! The source is compiled once per process and architecture (NVRTC needs no GPU, which is how the
//! tests check it compiles on machines without one). `--fmad=false` keeps `a * b + c` as two
//! roundings, as on the CPU, so element-wise results match the CPU's to the last bit wherever the
//! operation order is the same; these kernels are memory-bound, so fused multiply-adds would buy
//! nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use cudarc::driver::{
    CudaFunction, CudaModule, CudaStream, DeviceRepr, LaunchConfig, PushKernelArg,
};
use cudarc::nvrtc::{compile_ptx_with_opts, CompileOptions, Ptx};

use super::error::{self, Result};
use crate::{Activation, EngineError};

/// The kernels' CUDA C++ source.
pub const SOURCE: &str = include_str!("kernels.cu");

/// Every `extern "C"` kernel in [`SOURCE`]; all are loaded when a device opens.
pub const KERNEL_NAMES: &[&str] = &[
    "act_forward",
    "bias_act_forward",
    "act_backward",
    "add_into",
    "scale_into",
    "dropout_forward",
    "dropout_backward",
    "max_pool_forward",
    "max_pool_backward",
    "avg_pool_forward",
    "avg_pool_backward",
    "global_avg_pool_forward",
    "global_avg_pool_backward",
    "channel_partials",
    "channel_finalize",
    "bn_statistics",
    "bn_apply",
    "bn_backward",
    "pad_nhwc",
    "crop_add_nhwc",
    "gather_batch",
    "softmax_xent",
    "accumulate_metrics",
    "clip_value",
    "sum_squares",
    "clip_by_norm",
    "sgd_update",
    "sgd_momentum_update",
    "adam_update",
    "rmsprop_update",
    "adagrad_update",
    "fill",
];

/// Whether NVRTC's library (libnvrtc) can be loaded in this process.
pub fn nvrtc_available() -> bool {
    // SAFETY: only tries to dlopen the library by its candidate names.
    unsafe { cudarc::nvrtc::sys::is_culib_present() }
}

/// Compiles [`SOURCE`] to PTX for a virtual architecture such as `compute_90`, caching the
/// result for the process. Errors carry NVRTC's log.
pub fn compile(arch: &'static str) -> Result<Ptx> {
    static CACHE: OnceLock<Mutex<HashMap<&'static str, Ptx>>> = OnceLock::new();
    if !nvrtc_available() {
        return Err(EngineError::Device(
            "NVRTC (libnvrtc.so.13, CUDA 13) could not be loaded: install the CUDA 13 runtime \
             libraries or add their folder to LD_LIBRARY_PATH"
                .into(),
        ));
    }
    let cache = CACHE.get_or_init(Default::default);
    if let Some(ptx) = cache.lock().expect("kernel cache").get(arch) {
        return Ok(ptx.clone());
    }
    let opts = CompileOptions {
        fmad: Some(false),
        arch: Some(arch),
        name: Some("modelsmith_kernels.cu".into()),
        ..Default::default()
    };
    let ptx = compile_ptx_with_opts(SOURCE, opts).map_err(|e| {
        let detail = match &e {
            cudarc::nvrtc::CompileError::CompileError { log, .. } => {
                log.to_string_lossy().replace('\n', " | ")
            }
            other => format!("{other:?}"),
        };
        EngineError::Device(format!(
            "NVRTC could not compile the kernels for {arch}: {detail}"
        ))
    })?;
    cache
        .lock()
        .expect("kernel cache")
        .insert(arch, ptx.clone());
    Ok(ptx)
}

/// The virtual architecture name NVRTC takes for a compute capability (leaked once per value:
/// there are a handful).
pub fn arch_name(major: i32, minor: i32) -> &'static str {
    static NAMES: OnceLock<Mutex<HashMap<(i32, i32), &'static str>>> = OnceLock::new();
    let names = NAMES.get_or_init(Default::default);
    let mut names = names.lock().expect("arch names");
    names
        .entry((major, minor))
        .or_insert_with(|| Box::leak(format!("compute_{major}{minor}").into_boxed_str()))
}

/// The integer code `kernels.cu` uses for an activation, and its parameter.
pub fn act_code(act: Activation) -> (i32, f32) {
    match act {
        Activation::Linear => (0, 0.0),
        Activation::Relu => (1, 0.0),
        Activation::LeakyRelu(a) => (2, a),
        Activation::Elu(a) => (3, a),
        Activation::Gelu => (4, 0.0),
        Activation::Sigmoid => (5, 0.0),
        Activation::Tanh => (6, 0.0),
    }
}

/// Pooling geometry as `kernels.cu`'s `struct PoolGeom` (ten ints, passed by value).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct PoolGeomArg {
    pub n: i32,
    pub h: i32,
    pub w: i32,
    pub c: i32,
    pub oh: i32,
    pub ow: i32,
    pub k: i32,
    pub stride: i32,
    pub pad_top: i32,
    pub pad_left: i32,
}

// SAFETY: a plain `#[repr(C)]` struct of i32s, laid out exactly as the kernel's struct.
unsafe impl DeviceRepr for PoolGeomArg {}

/// One kernel argument. Pointers are raw device addresses (0 for a null pointer): the executor
/// owns every buffer for as long as its stream can use it, see `buffer.rs`.
#[derive(Clone, Copy, Debug)]
pub enum Arg {
    Ptr(u64),
    I32(i32),
    I64(i64),
    U64(u64),
    F32(f32),
    F64(f64),
    Pool(PoolGeomArg),
}

/// The loaded kernels of one context.
pub struct Kernels {
    _module: Arc<CudaModule>,
    functions: HashMap<&'static str, CudaFunction>,
    /// Upper bound on blocks for grid-stride launches (a few waves of the device's SMs).
    max_blocks: u32,
}

impl Kernels {
    pub fn load(
        ctx: &Arc<cudarc::driver::CudaContext>,
        ptx: Ptx,
        sm_count: u32,
    ) -> Result<Kernels> {
        let module = ctx
            .load_module(ptx)
            .map_err(|e| error::driver("loading the kernels", e))?;
        let mut functions = HashMap::new();
        for &name in KERNEL_NAMES {
            let f = module
                .load_function(name)
                .map_err(|e| error::driver(&format!("loading kernel {name}"), e))?;
            functions.insert(name, f);
        }
        Ok(Kernels {
            _module: module,
            functions,
            max_blocks: (sm_count * 8).max(64),
        })
    }

    /// A grid-stride launch shape for `n` elements: 256 threads a block.
    pub fn elementwise(&self, n: usize) -> LaunchConfig {
        let blocks = n.div_ceil(256).clamp(1, self.max_blocks as usize) as u32;
        LaunchConfig {
            grid_dim: (blocks, 1, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        }
    }

    /// Launches `name` on `stream`.
    ///
    /// The arguments must match the kernel's parameter list in `kernels.cu`, and every pointer
    /// must address a live allocation of the right size: the callers (`layers.rs`, `optim.rs`,
    /// `network.rs`) build both from the same shapes that sized the buffers.
    pub fn launch(
        &self,
        stream: &CudaStream,
        name: &'static str,
        cfg: LaunchConfig,
        args: &[Arg],
    ) -> Result<()> {
        let f = self
            .functions
            .get(name)
            .unwrap_or_else(|| panic!("kernel {name} is not in KERNEL_NAMES"));
        let mut b = stream.launch_builder(f);
        for a in args {
            match a {
                Arg::Ptr(v) | Arg::U64(v) => b.arg(v),
                Arg::I32(v) => b.arg(v),
                Arg::I64(v) => b.arg(v),
                Arg::F32(v) => b.arg(v),
                Arg::F64(v) => b.arg(v),
                Arg::Pool(v) => b.arg(v),
            };
        }
        // SAFETY: see the doc comment: arguments and buffers are built from the same shapes.
        unsafe { b.launch(cfg) }
            .map(|_| ())
            .map_err(|e| error::driver(&format!("running kernel {name}"), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kernel_name_is_in_the_source() {
        for name in KERNEL_NAMES {
            assert!(
                SOURCE.contains(&format!("void {name}(")),
                "{name} is not defined in kernels.cu"
            );
        }
        let defined = SOURCE.matches("extern \"C\" __global__").count();
        assert_eq!(
            defined,
            KERNEL_NAMES.len(),
            "kernels.cu and KERNEL_NAMES differ"
        );
    }
}
