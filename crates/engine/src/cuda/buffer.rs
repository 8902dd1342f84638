//! Device buffers: a `CudaSlice` that owns the allocation, plus its raw address for kernel,
//! cuBLAS and cuDNN calls.
//!
//! Every buffer belongs to one executor and is used only on that executor's stream, in issue
//! order, so no per-use event tracking is needed (the context turns cudarc's off, see
//! `device.rs`). The allocation lives until the executor drops, after its stream is synchronized.

use std::sync::Arc;

use cudarc::driver::{CudaSlice, CudaStream, DevicePtr, DeviceRepr, ValidAsZeroBits};

use super::error::{self, Result};

pub struct GpuBuf<T> {
    slice: CudaSlice<T>,
    ptr: u64,
}

impl<T: DeviceRepr + ValidAsZeroBits + Clone + Default> GpuBuf<T> {
    /// `len` zeroed elements (at least one, so every buffer has a valid address). `what` names the
    /// buffer in an out-of-memory error.
    pub fn zeros(stream: &Arc<CudaStream>, len: usize, what: &str) -> Result<GpuBuf<T>> {
        let slice = stream_alloc(stream, len.max(1), what)?;
        let (ptr, _) = slice.device_ptr(stream);
        Ok(GpuBuf { slice, ptr })
    }

    /// A copy of `host` on the device.
    pub fn from_host(stream: &Arc<CudaStream>, host: &[T], what: &str) -> Result<GpuBuf<T>> {
        let mut buf = GpuBuf::zeros(stream, host.len(), what)?;
        buf.upload(stream, host, what)?;
        Ok(buf)
    }

    /// Copies `host` into the start of the buffer.
    pub fn upload(&mut self, stream: &Arc<CudaStream>, host: &[T], what: &str) -> Result<()> {
        assert!(
            host.len() <= self.slice.len(),
            "upload: {what} is too small"
        );
        if host.is_empty() {
            return Ok(());
        }
        let mut view = self.slice.slice_mut(0..host.len());
        stream
            .memcpy_htod(host, &mut view)
            .map_err(|e| error::driver(&format!("copying {what} to the GPU"), e))
    }

    /// Copies the first `out.len()` elements to the host (waits for the stream).
    pub fn download(&self, stream: &Arc<CudaStream>, out: &mut [T], what: &str) -> Result<()> {
        if out.is_empty() {
            return Ok(());
        }
        let view = self.slice.slice(0..out.len());
        let what = || format!("copying {what} from the GPU");
        stream
            .memcpy_dtoh(&view, out)
            .map_err(|e| error::driver(&what(), e))?;
        // cudarc does not wait for a copy into ordinary (pageable) host memory; the driver
        // documents such copies as complete on return, but the caller reads `out` next, so make
        // it certain.
        stream.synchronize().map_err(|e| error::driver(&what(), e))
    }

    /// The first `len` elements as a host vector.
    pub fn to_vec(&self, stream: &Arc<CudaStream>, len: usize, what: &str) -> Result<Vec<T>> {
        let mut out = vec![T::default(); len];
        self.download(stream, &mut out, what)?;
        Ok(out)
    }

    pub fn len(&self) -> usize {
        self.slice.len()
    }

    /// The device address of the first element.
    pub fn ptr(&self) -> u64 {
        self.ptr
    }
}

fn stream_alloc<T: DeviceRepr + ValidAsZeroBits>(
    stream: &Arc<CudaStream>,
    len: usize,
    what: &str,
) -> Result<CudaSlice<T>> {
    let bytes = len * std::mem::size_of::<T>();
    stream.alloc_zeros::<T>(len).map_err(|e| {
        error::driver(
            &format!(
                "allocating {what} ({:.1} MiB)",
                bytes as f64 / (1 << 20) as f64
            ),
            e,
        )
    })
}

impl GpuBuf<f32> {
    /// Sets the first `len` elements to zero (queued on the stream).
    pub fn zero(&mut self, stream: &Arc<CudaStream>, len: usize) -> Result<()> {
        if len == 0 {
            return Ok(());
        }
        let mut view = self.slice.slice_mut(0..len);
        stream
            .memset_zeros(&mut view)
            .map_err(|e| error::driver("clearing a GPU buffer", e))
    }
}
