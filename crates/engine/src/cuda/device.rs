//! Opening a GPU: the CUDA libraries checked before anything loads them (cudarc would panic on a
//! missing one), the context, one stream, cuBLAS and cuDNN handles bound to that stream, and the
//! NVRTC kernels loaded.

use std::sync::Arc;

use cudarc::cublas::CudaBlas;
use cudarc::cudnn::{result as dnn, sys as dnn_sys};
use cudarc::driver::{sys::CUdevice_attribute, CudaContext, CudaStream};

use super::error::{self, Result};
use super::kernels::{self, Kernels};
use crate::EngineError;

/// What a probe found about one GPU.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    pub ordinal: usize,
    pub name: String,
    pub compute_capability: (i32, i32),
    pub total_memory: usize,
    pub free_memory: usize,
}

impl std::fmt::Display for DeviceInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cuda:{} ({}, compute {}.{}, {:.1} of {:.1} GiB free)",
            self.ordinal,
            self.name,
            self.compute_capability.0,
            self.compute_capability.1,
            self.free_memory as f64 / (1u64 << 30) as f64,
            self.total_memory as f64 / (1u64 << 30) as f64
        )
    }
}

/// Fails with one clear line unless the driver and every library the executor uses can be
/// loaded. Only tries to `dlopen` them.
pub fn check_libraries() -> Result<()> {
    // SAFETY: each call only tries to dlopen a library by its candidate names.
    let (driver, blas, cudnn) = unsafe {
        (
            cudarc::driver::sys::is_culib_present(),
            cudarc::cublas::sys::is_culib_present(),
            cudarc::cudnn::sys::is_culib_present(),
        )
    };
    let missing = |what: &str| {
        Err(EngineError::Device(format!(
            "no usable GPU: {what} could not be loaded; install it or add its folder to \
             LD_LIBRARY_PATH"
        )))
    };
    if !driver {
        return missing("the NVIDIA driver (libcuda.so.1)");
    }
    if !kernels::nvrtc_available() {
        return missing("NVRTC (libnvrtc.so.13, CUDA 13)");
    }
    if !blas {
        return missing("cuBLAS (libcublas.so.13, CUDA 13)");
    }
    if !cudnn {
        return missing("cuDNN (libcudnn.so.9)");
    }
    Ok(())
}

/// The number of CUDA GPUs (0 when the driver is missing or finds none).
pub fn device_count() -> usize {
    // SAFETY: only dlopens the driver library.
    if !unsafe { cudarc::driver::sys::is_culib_present() } {
        return 0;
    }
    CudaContext::device_count().map_or(0, |n| n.max(0) as usize)
}

/// Checks the libraries and that GPU `ordinal` exists and answers; creates no stream.
pub fn probe(ordinal: usize) -> Result<DeviceInfo> {
    info(&open_context(ordinal)?)
}

/// The libraries checked, GPU `ordinal` checked to exist, and its (primary) context.
fn open_context(ordinal: usize) -> Result<Arc<CudaContext>> {
    check_libraries()?;
    let count = CudaContext::device_count()
        .map_err(|e| error::driver("counting GPUs (is the NVIDIA driver working?)", e))?;
    if count <= 0 {
        return Err(EngineError::Device(
            "no usable GPU: the NVIDIA driver found no CUDA device".into(),
        ));
    }
    if ordinal >= count as usize {
        return Err(EngineError::Device(format!(
            "no GPU cuda:{ordinal}: this machine has {count} (cuda:0 to cuda:{})",
            count - 1
        )));
    }
    CudaContext::new(ordinal).map_err(|e| error::driver("opening the GPU", e))
}

fn info(ctx: &Arc<CudaContext>) -> Result<DeviceInfo> {
    let name = ctx
        .name()
        .map_err(|e| error::driver("reading the GPU's name", e))?;
    let compute_capability = ctx
        .compute_capability()
        .map_err(|e| error::driver("reading the compute capability", e))?;
    let (free_memory, total_memory) = ctx
        .mem_get_info()
        .map_err(|e| error::driver("reading free GPU memory", e))?;
    Ok(DeviceInfo {
        ordinal: ctx.ordinal(),
        name,
        compute_capability,
        total_memory,
        free_memory,
    })
}

/// A cuDNN handle bound to one stream, destroyed on drop.
pub struct DnnHandle(pub(crate) dnn_sys::cudnnHandle_t);

// SAFETY: cuDNN allows a handle to be used from any host thread as long as no two threads use it
// at the same time. The handle is reachable only through its `GpuDevice`, whose users take
// `&mut` for every call that reaches cuDNN, and the device is not `Sync`; every such call binds
// the context to the calling thread first.
unsafe impl Send for DnnHandle {}

impl Drop for DnnHandle {
    fn drop(&mut self) {
        // SAFETY: created by `dnn::create_handle` and destroyed only here.
        let _ = unsafe { dnn::destroy_handle(self.0) };
    }
}

/// One GPU opened for one executor: its own stream, cuBLAS and cuDNN handles and kernels.
///
/// `Send` but not `Sync`: it may move to another thread (a server's batching thread), and one
/// thread at a time uses it.
pub struct GpuDevice {
    pub(crate) ctx: Arc<CudaContext>,
    pub(crate) stream: Arc<CudaStream>,
    pub(crate) blas: CudaBlas,
    pub(crate) dnn: DnnHandle,
    pub(crate) kernels: Kernels,
    /// Allow TF32 tensor cores in cuDNN convolutions (`MODELSMITH_CUDA_TF32=1`, PyTorch's default
    /// for convolutions). Off by default: results then match the CPU to fp32 rounding.
    pub(crate) tf32: bool,
    info: DeviceInfo,
}

impl GpuDevice {
    /// Opens GPU `ordinal`: checks the libraries, creates a stream and handles, compiles (once
    /// per process) and loads the kernels.
    pub fn open(ordinal: usize) -> Result<GpuDevice> {
        let ctx = open_context(ordinal)?;
        // Each executor's buffers are used on its own stream only, in issue order: cudarc's
        // per-buffer event tracking (for buffers shared between streams) would only add an
        // event record per use.
        // SAFETY: called before any buffer of this context object is created.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx
            .new_stream()
            .map_err(|e| error::driver("creating a stream", e))?;
        let blas =
            CudaBlas::new(stream.clone()).map_err(|e| error::cublas("starting cuBLAS", e))?;
        let handle = dnn::create_handle().map_err(|e| error::cudnn("starting cuDNN", e))?;
        let dnn = DnnHandle(handle);
        // SAFETY: the handle is live and the stream outlives it (both owned by this device).
        unsafe { dnn::set_stream(dnn.0, stream.cu_stream() as _) }
            .map_err(|e| error::cudnn("binding cuDNN to the stream", e))?;
        let info = info(&ctx)?;
        let (major, minor) = info.compute_capability;
        let ptx = kernels::compile(kernels::arch_name(major, minor))?;
        let sm_count = ctx
            .attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)
            .map_err(|e| error::driver("reading the SM count", e))?;
        let kernels = Kernels::load(&ctx, ptx, sm_count.max(1) as u32)?;
        let tf32 = std::env::var("MODELSMITH_CUDA_TF32").is_ok_and(|v| v == "1");
        Ok(GpuDevice {
            ctx,
            stream,
            blas,
            dnn,
            kernels,
            tf32,
            info,
        })
    }

    pub fn info(&self) -> &DeviceInfo {
        &self.info
    }

    /// Makes this device's context current on the calling thread (cuBLAS and cuDNN calls need
    /// it; kernel launches and copies do it themselves).
    pub fn bind(&self) -> Result<()> {
        self.ctx
            .bind_to_thread()
            .map_err(|e| error::driver("binding the GPU to this thread", e))
    }

    /// Waits for everything queued on the stream; surfaces asynchronous kernel failures.
    pub fn synchronize(&self) -> Result<()> {
        self.stream
            .synchronize()
            .map_err(|e| error::driver("waiting for the GPU", e))
    }

    /// A grid-stride launch of kernel `name` over `n` elements.
    pub fn launch_n(&self, name: &'static str, n: usize, args: &[kernels::Arg]) -> Result<()> {
        if n == 0 {
            return Ok(());
        }
        self.kernels
            .launch(&self.stream, name, self.kernels.elementwise(n), args)
    }
}
