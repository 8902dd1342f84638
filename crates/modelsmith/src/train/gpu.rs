//! Training epochs on a GPU (feature `cuda`): the training and validation splits are uploaded
//! once; each epoch sends only its shuffled order (the same order as the CPU path), batches are
//! gathered on the device, and the loss is read every [`REPORT_EVERY`] steps, not every step.
//!
//! With augmentation, batches are gathered and augmented on the host exactly as on the CPU path
//! and uploaded each step: the same results, at the cost of one host-to-device copy per step.
//!
//! After each epoch the weights, batch-norm statistics and optimizer state are copied back to the
//! host `Network` and `Optimizer`, so early stopping's best weights, checkpoints, resume and the
//! saved model work exactly as on the CPU.

use std::time::Instant;

use modelsmith_engine::cuda::{CudaNetwork, DeviceDataset};
use modelsmith_engine::optim::Optimizer;
use modelsmith_engine::{EngineError, Network};

use super::checkpoint::Checkpoint;
use super::observer::{interrupted, EpochMetrics, TrainObserver};
use super::trainer::{epoch_order, EVAL_BATCH};
use super::TrainConfig;
use crate::data::Dataset;
use crate::task::Scores;
use crate::{Error, Result};

/// Steps between reads of the loss (each read waits for the GPU).
pub const REPORT_EVERY: usize = 50;

pub struct GpuTrainer {
    net: CudaNetwork,
    train: DeviceDataset,
    val: Option<DeviceDataset>,
    /// Host copies for the augmentation path.
    x_buf: Vec<f32>,
    labels: Vec<u32>,
}

fn device_error(e: EngineError) -> Error {
    Error::Config(format!("GPU: {e}"))
}

impl GpuTrainer {
    /// Mirrors `net` (and `optimizer`'s state, e.g. after a resume) on GPU `ordinal` and uploads
    /// the splits.
    pub fn start(
        ordinal: usize,
        config: &TrainConfig,
        net: &Network,
        optimizer: &Optimizer,
        train: &Dataset,
        val: &Dataset,
    ) -> Result<GpuTrainer> {
        let capacity = config.batch_size.max(EVAL_BATCH);
        let mut gpu = CudaNetwork::new(ordinal, net, optimizer.config().clone(), capacity)
            .map_err(device_error)?;
        if optimizer.iterations() > 0 {
            gpu.load_optimizer_state(&optimizer.state())
                .map_err(device_error)?;
        }
        let train_data = gpu
            .upload_dataset(&train.x, &train.y)
            .map_err(device_error)?;
        let val_data = if val.is_empty() {
            None
        } else {
            Some(gpu.upload_dataset(&val.x, &val.y).map_err(device_error)?)
        };
        Ok(GpuTrainer {
            net: gpu,
            train: train_data,
            val: val_data,
            x_buf: Vec::new(),
            labels: Vec::new(),
        })
    }

    /// One pass over the training set; the same batches, learning rates and clipping as the CPU
    /// path's `train_epoch`. `None` when the observer interrupted it (polled after each step).
    pub fn train_epoch(
        &mut self,
        config: &TrainConfig,
        progress: &mut Checkpoint,
        train_set: &Dataset,
        epoch: u32,
        observer: &mut dyn TrainObserver,
    ) -> Result<Option<EpochMetrics>> {
        let batch_size = progress.batch_sizer.current();
        let order = epoch_order(config.seed, epoch, train_set.len());
        let augment = !config.augment.is_identity();
        if !augment {
            let order32: Vec<u32> = order.iter().map(|&i| i as u32).collect();
            self.train
                .set_order(&self.net, &order32)
                .map_err(device_error)?;
        }
        let batches = order.len().div_ceil(batch_size);
        observer.on_epoch_start(epoch, config.epochs, batches);
        let started = Instant::now();
        let (mut loss_sum, mut correct, mut seen) = (0.0f64, 0.0f64, 0.0f64);
        let mut lr = config.lr;
        for (b, chunk) in order.chunks(batch_size).enumerate() {
            let step = progress.step;
            if augment {
                train_set.gather(chunk, &mut self.x_buf, &mut self.labels);
                let aug_seed = config.seed ^ ((epoch as u64) << 40) ^ ((b as u64) << 8);
                config.augment.apply_batch(
                    &mut self.x_buf,
                    &train_set.shape,
                    chunk.len(),
                    aug_seed,
                );
                self.net
                    .load_batch(&self.x_buf, &self.labels)
                    .map_err(device_error)?;
            } else {
                self.net
                    .gather_batch(&self.train, b * batch_size, chunk.len())
                    .map_err(device_error)?;
            }
            lr = progress.scheduler.lr_at(step, epoch);
            self.net
                .train_step(step, lr, config.clip_value, config.clip_norm)
                .map_err(device_error)?;
            progress.step += 1;
            if (b + 1).is_multiple_of(REPORT_EVERY) || b + 1 == batches {
                let m = self.net.take_metrics().map_err(device_error)?;
                if let Some((step, loss)) = m.diverged {
                    return Err(Error::Diverged { epoch, step, loss });
                }
                loss_sum += m.loss_sum;
                correct += m.correct;
                seen += m.seen;
                observer.on_batch(
                    b + 1,
                    (loss_sum / seen) as f32,
                    Some((correct / seen) as f32),
                    seen / started.elapsed().as_secs_f64().max(1e-9),
                );
            }
            if interrupted(observer, epoch, b + 1, batches) {
                return Ok(None);
            }
        }
        let seconds = started.elapsed().as_secs_f64();
        Ok(Some(EpochMetrics {
            epoch,
            loss: (loss_sum / seen) as f32,
            accuracy: Some((correct / seen) as f32),
            lr,
            batch_size,
            seconds,
            images_per_second: seen / seconds.max(1e-9),
            ..EpochMetrics::default()
        }))
    }

    /// Mean loss and accuracy on the validation split, on the GPU.
    pub fn evaluate_val(&mut self) -> Result<Option<Scores>> {
        match &mut self.val {
            Some(val) => self
                .net
                .evaluate(val, EVAL_BATCH)
                .map(|(loss, accuracy)| {
                    Some(Scores {
                        loss,
                        accuracy: Some(accuracy),
                        ..Scores::default()
                    })
                })
                .map_err(device_error),
            None => Ok(None),
        }
    }

    /// Copies the device weights, statistics and optimizer state into the host objects.
    pub fn sync_to_host(&self, net: &mut Network, optimizer: &mut Optimizer) -> Result<()> {
        self.net.copy_to_host(net).map_err(device_error)?;
        let state = self.net.optimizer_state().map_err(device_error)?;
        optimizer
            .load_state(state)
            .map_err(|e| Error::Config(format!("GPU optimizer state: {e}")))
    }
}
