//! `Tensor`: a dense f32 array with a shape, stored row-major on the host.
//!
//! Layout convention across the engine: image activations are NHWC `[batch, height, width,
//! channels]`, flat activations `[batch, features]`. Convolution kernels are stored
//! `[out_channels, kh, kw, in_channels]` (so one output channel's kernel is a contiguous row that
//! matches an NHWC patch), dense kernels `[in, out]`.
//!
//! Buffers are reused across steps: [`Tensor::resize`] keeps the allocation when the new shape fits
//! in the existing capacity, so a training loop at a fixed batch size allocates nothing after the
//! first step.

use crate::EngineError;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl Tensor {
    pub fn zeros(shape: &[usize]) -> Tensor {
        Tensor {
            shape: shape.to_vec(),
            data: vec![0.0; shape.iter().product()],
        }
    }

    pub fn from_vec(shape: &[usize], data: Vec<f32>) -> Result<Tensor, EngineError> {
        let expected: usize = shape.iter().product();
        if expected != data.len() {
            return Err(EngineError::Shape(format!(
                "tensor of shape {shape:?} needs {expected} values, got {}",
                data.len()
            )));
        }
        Ok(Tensor {
            shape: shape.to_vec(),
            data,
        })
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Leading (batch) dimension; 0 for an empty shape.
    pub fn batch(&self) -> usize {
        self.shape.first().copied().unwrap_or(0)
    }

    /// Values per example: the product of all dimensions after the first.
    pub fn per_example(&self) -> usize {
        self.shape.iter().skip(1).product()
    }

    /// Sets the shape, growing or shrinking the buffer without giving memory back. New elements
    /// are zero; existing ones keep whatever they held (callers overwrite or call `fill`).
    pub fn resize(&mut self, shape: &[usize]) {
        if self.shape != shape {
            self.shape.clear();
            self.shape.extend_from_slice(shape);
        }
        let n = shape.iter().product();
        self.data.resize(n, 0.0);
    }

    /// Sets every value; a large tensor is filled by all threads (the backward pass zeroes
    /// every activation-sized gradient before accumulating into it, and one core alone cannot
    /// keep up with the memory).
    pub fn fill(&mut self, value: f32) {
        const PER_THREAD: usize = 1 << 16;
        if self.data.len() < 2 * PER_THREAD {
            self.data.fill(value);
        } else {
            use rayon::prelude::*;
            self.data
                .par_chunks_mut(PER_THREAD)
                .for_each(|c| c.fill(value));
        }
    }
}
