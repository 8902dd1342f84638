//! A data set resident on the GPU: every example and label uploaded once, plus the order in
//! which an epoch visits them. The host sends only the epoch's shuffled index (4 bytes an
//! example, once per epoch); each batch is then gathered on the device.

use super::buffer::GpuBuf;
use super::device::GpuDevice;
use super::error::Result;
use super::kernels::Arg;
use crate::EngineError;

pub struct DeviceDataset {
    x: GpuBuf<f32>,
    labels: GpuBuf<u32>,
    order: GpuBuf<u32>,
    identity_order: bool,
    len: usize,
    per_example: usize,
}

impl DeviceDataset {
    pub(crate) fn new(
        dev: &GpuDevice,
        x: &[f32],
        labels: &[u32],
        per_example: usize,
    ) -> Result<DeviceDataset> {
        let len = labels.len();
        if x.len() != len * per_example {
            return Err(EngineError::Shape(format!(
                "data set of {len} labels needs {} values, got {}",
                len * per_example,
                x.len()
            )));
        }
        let s = &dev.stream;
        let identity: Vec<u32> = (0..len as u32).collect();
        Ok(DeviceDataset {
            x: GpuBuf::from_host(s, x, "the data set")?,
            labels: GpuBuf::from_host(s, labels, "the labels")?,
            order: GpuBuf::from_host(s, &identity, "the epoch order")?,
            identity_order: true,
            len,
            per_example,
        })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn per_example(&self) -> usize {
        self.per_example
    }

    /// Sets the order batches are gathered in (a permutation of `0..len`, e.g. the epoch's
    /// shuffle, so the GPU visits examples exactly as the CPU trainer would).
    pub fn set_order(&mut self, dev_stream: &super::CudaNetwork, order: &[u32]) -> Result<()> {
        if order.len() != self.len || order.iter().any(|&i| i as usize >= self.len) {
            return Err(EngineError::Shape(format!(
                "epoch order must index the data set's {} examples",
                self.len
            )));
        }
        dev_stream.upload_order(&mut self.order, order)?;
        self.identity_order = false;
        Ok(())
    }

    pub(crate) fn use_identity_order(&mut self, dev: &GpuDevice) -> Result<()> {
        if !self.identity_order {
            let identity: Vec<u32> = (0..self.len as u32).collect();
            self.order
                .upload(&dev.stream, &identity, "the epoch order")?;
            self.identity_order = true;
        }
        Ok(())
    }

    /// `xb[j] = x[order[offset + j]]`, `yb[j] = labels[order[offset + j]]` for `j < n`.
    pub(crate) fn gather(
        &self,
        dev: &GpuDevice,
        xb: u64,
        yb: u64,
        offset: usize,
        n: usize,
    ) -> Result<()> {
        dev.launch_n(
            "gather_batch",
            n * self.per_example,
            &[
                Arg::Ptr(xb),
                Arg::Ptr(yb),
                Arg::Ptr(self.x.ptr()),
                Arg::Ptr(self.labels.ptr()),
                Arg::Ptr(self.order.ptr()),
                Arg::I64(offset as i64),
                Arg::I32(n as i32),
                Arg::I32(self.per_example as i32),
            ],
        )
    }
}
