//! The training loop, top to bottom: split off validation, build the network, then per epoch
//! shuffle, augment, step, validate, log, checkpoint and decide (early stopping, plateaus,
//! batch growth); finally restore the best weights, test once and save the model folder.

use std::path::{Path, PathBuf};
use std::time::Instant;

use modelsmith_engine::optim::{clip_grad_norm, clip_grad_value, Optimizer};
use modelsmith_engine::{softmax_cross_entropy, Mode, Network, Tensor};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::batch_schedule::BatchSizer;
use super::checkpoint::{self, Checkpoint};
use super::device::{Device, GpuTrainer};
use super::early_stopping::{EarlyStopper, Monitor};
use super::observer::{interrupted, EpochMetrics, StartInfo, TrainObserver};
use super::schedule::LrScheduler;
use super::TrainConfig;
use crate::data::{Dataset, LoadedData};
use crate::model::{
    build_network, save_model, ModelMeta, ModelSpec, NamedTensors, OutputLock, WeightSnapshot,
    MODEL_FORMAT_VERSION,
};
use crate::{Error, Result};

/// Examples per forward pass when evaluating (no gradients, so larger than training batches).
pub(super) const EVAL_BATCH: usize = 256;

/// What `train` returns (and `--json` prints).
#[derive(Clone, Debug, Serialize)]
pub struct TrainReport {
    pub test_accuracy: f32,
    pub test_loss: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val_accuracy: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val_loss: Option<f32>,
    pub epochs_run: u32,
    pub best_epoch: u32,
    pub stopped_early: bool,
    /// The observer asked to stop (e.g. a search's pruner).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub stopped_by_observer: bool,
    pub train_seconds: f64,
    pub images_per_second: f64,
    pub params: usize,
    pub macs_per_example: u64,
    /// Forward-pass floating-point operations per example (2 per multiply-accumulate).
    pub flops_per_example: u64,
    /// With [`TrainOptions::initial`]: how many tensors came from it, and the validation
    /// accuracy before the first step (a morphed parent's child starts where the parent ended).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inherited_tensors: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initial_val_accuracy: Option<f32>,
    pub out: PathBuf,
}

/// Where a training run writes and what it measures beyond training and validation.
#[derive(Clone, Debug)]
pub struct TrainOptions<'a> {
    /// The model folder (model.json, weights, metrics.jsonl, checkpoints); `None` writes nothing.
    pub out: Option<&'a Path>,
    /// Continue from the checkpoint in `out`.
    pub resume: bool,
    /// Write a checkpoint every epoch (needed for `resume`).
    pub checkpoints: bool,
    /// Measure the test split at the end. A search turns this off: it must decide on the
    /// validation split only (the report's test figures are then NaN).
    pub evaluate_test: bool,
    /// Start from these weights instead of the seed's initialisation: every tensor whose name
    /// and shape match is copied (an architecture search's child starts from its parent's
    /// trained, possibly morphed, weights); the rest keep their fresh values.
    pub initial: Option<&'a NamedTensors>,
}

/// Trains `config.model` on `data` and saves the model folder to `out` (with `metrics.jsonl`
/// and a per-epoch checkpoint). With `resume`, continues from the checkpoint in `out`.
pub fn train(
    config: &TrainConfig,
    data: &LoadedData,
    out: &Path,
    resume: bool,
    observer: &mut dyn TrainObserver,
) -> Result<TrainReport> {
    let options = TrainOptions {
        out: Some(out),
        resume,
        checkpoints: true,
        evaluate_test: true,
        initial: None,
    };
    train_with(config, data, &options, observer)
}

/// [`train`] with every choice explicit. The observer may end training after any epoch
/// ([`TrainObserver::should_stop`], e.g. a pruner); the report then says `stopped_by_observer`.
pub fn train_with(
    config: &TrainConfig,
    data: &LoadedData,
    options: &TrainOptions,
    observer: &mut dyn TrainObserver,
) -> Result<TrainReport> {
    config.validate()?;
    let num_classes = data.train.num_classes.max(data.test.num_classes);
    if num_classes < 2 {
        return Err(Error::Config(format!(
            "data '{}': the target has a single class; a classifier needs at least two",
            data.info.spec
        )));
    }
    let (train_set, val_set) = if config.validation_split > 0.0 {
        data.train.split(config.validation_split, config.seed)
    } else {
        (data.train.clone(), data.train.subset(&[]))
    };
    if train_set.is_empty() {
        return Err(Error::Config(format!(
            "data '{}': no training examples left after the validation split",
            data.info.spec
        )));
    }
    let spec = ModelSpec::resolve(&config.model, num_classes)?;
    let mut net = build_network(&spec, &train_set.shape, num_classes, config.seed)?;
    let (mut inherited_tensors, mut initial_val_accuracy) = (None, None);
    if let Some(initial) = options.initial {
        let inherited = crate::arch::inherit(&mut net, initial);
        inherited_tensors = Some(inherited.copied.len());
        if !val_set.is_empty() {
            initial_val_accuracy = Some(evaluate(&mut net, &val_set).1);
        }
    }
    let mut optimizer = Optimizer::new(config.optimizer_config());
    let batch_sizer = BatchSizer::new(config.batch_schedule.clone(), config.batch_size);
    let steps_per_epoch = train_set.len().div_ceil(config.batch_size) as u64;
    let scheduler = LrScheduler::new(
        config.effective_schedule(),
        config.lr,
        steps_per_epoch * config.epochs as u64,
        steps_per_epoch,
    );
    let mut progress = Checkpoint {
        epoch: 0,
        step: 0,
        stopped_early: false,
        scheduler,
        stopper: EarlyStopper::new(config.early_stopping.clone()),
        batch_sizer,
        history: Vec::new(),
    };
    let mut best = WeightSnapshot::default();

    let out = options.out;
    let _lock = out.map(OutputLock::acquire).transpose()?;
    let metrics_path = out.map(|o| o.join("metrics.jsonl"));
    if let (true, Some(out)) = (options.resume, out) {
        progress = Checkpoint::load(out, config, &mut net, &mut optimizer, &mut best)?;
        // `epochs` may have been raised: schedules that depend on the run's length follow it.
        progress
            .scheduler
            .set_total_steps(steps_per_epoch * config.epochs as u64);
        observer.on_message(&format!("resuming after epoch {}", progress.epoch));
    }
    // On resume, drops metric lines written after the checkpoint (a crash between the writes).
    if let Some(path) = &metrics_path {
        checkpoint::write_metrics(path, &progress.history)?;
    }

    observer.on_start(&StartInfo {
        params: net.param_count(),
        macs_per_example: net.macs_per_example(),
        train_examples: train_set.len(),
        val_examples: val_set.len(),
        epochs: config.epochs,
        first_epoch: progress.epoch + 1,
    });

    // The executor: the CPU, or a GPU holding the data, weights and optimizer state (whose
    // results come back to `net` and `optimizer` after every epoch).
    let (device, said) = config.device.resolve()?;
    if config.device == Device::Auto {
        observer.on_message(&said);
    }
    let mut gpu = match device {
        Device::Cuda(n) => Some(GpuTrainer::start(
            n, config, &net, &optimizer, &train_set, &val_set,
        )?),
        _ => None,
    };
    let mut bufs = StepBuffers::default();
    let mut stopped_by_observer = false;
    while progress.epoch < config.epochs && !progress.stopped_early {
        let epoch = progress.epoch + 1;
        let finished = match &mut gpu {
            Some(g) => g.train_epoch(config, &mut progress, &train_set, epoch, observer)?,
            None => train_epoch(
                config,
                &mut net,
                &mut optimizer,
                &mut progress,
                &train_set,
                epoch,
                &mut bufs,
                observer,
            )?,
        };
        // The host objects follow the GPU after every epoch, an interrupted one too.
        if let Some(g) = &mut gpu {
            g.sync_to_host(&mut net, &mut optimizer)?;
        }
        let Some(mut metrics) = finished else {
            stopped_by_observer = true;
            break;
        };
        let val = match &mut gpu {
            Some(g) => g.evaluate_val()?,
            None if val_set.is_empty() => None,
            None => Some(evaluate(&mut net, &val_set)),
        };
        if let Some((l, a)) = val {
            (metrics.val_loss, metrics.val_accuracy) = (Some(l), Some(a));
        }
        observer.on_epoch_end(&metrics);
        end_epoch(config, &net, &mut best, &mut progress, metrics, observer);
        progress.epoch = epoch;
        if let Some(path) = &metrics_path {
            checkpoint::append_metrics(path, progress.history.last().expect("pushed"))?;
        }
        if let (true, Some(out)) = (options.checkpoints, out) {
            progress.save(out, config, &net, &optimizer, &best)?;
        }
        if observer.should_stop() {
            stopped_by_observer = true;
            break;
        }
    }

    let restored = config.early_stopping.restore_best && !best.is_empty();
    if restored {
        best.restore(&mut net);
    }
    let (test_loss, test_accuracy) = if options.evaluate_test {
        evaluate(&mut net, &data.test)
    } else {
        (f32::NAN, f32::NAN)
    };
    // The last epoch already measured the validation split on these weights unless the best
    // epoch's weights were just restored.
    let (val_loss, val_accuracy) = match progress.history.last() {
        Some(last) if !restored => (last.val_loss, last.val_accuracy),
        _ if val_set.is_empty() => (None, None),
        _ => {
            let (l, a) = evaluate(&mut net, &val_set);
            (Some(l), Some(a))
        }
    };
    let history = &progress.history;
    // Folds from +0.0: a float `sum` of no epochs (an interrupt in the first) is -0.0.
    let train_seconds = history.iter().fold(0.0, |s, m| s + m.seconds);
    let trained = history
        .iter()
        .fold(0.0, |s, m| s + m.images_per_second * m.seconds);
    let report = TrainReport {
        test_accuracy,
        test_loss,
        val_accuracy,
        val_loss,
        epochs_run: history.last().map_or(0, |m| m.epoch),
        best_epoch: progress.stopper.best_epoch(),
        stopped_early: progress.stopped_early,
        stopped_by_observer,
        train_seconds,
        images_per_second: trained / train_seconds.max(1e-9),
        params: net.param_count(),
        macs_per_example: net.macs_per_example(),
        flops_per_example: 2 * net.macs_per_example(),
        inherited_tensors,
        initial_val_accuracy,
        out: out.map(Path::to_path_buf).unwrap_or_default(),
    };
    let Some(out) = out else {
        return Ok(report);
    };
    let meta = ModelMeta {
        format_version: MODEL_FORMAT_VERSION,
        spec,
        input_shape: train_set.shape.clone(),
        num_classes,
        data: data.info.clone(),
        params: report.params,
        macs_per_example: report.macs_per_example,
        metrics: serde_json::to_value(&report).expect("report serializes"),
        training: serde_json::to_value(config).expect("config serializes"),
        weights_sha256: None,
    };
    save_model(out, &meta, &net)?;
    Ok(report)
}

/// Buffers one training step reuses, so steps at a fixed batch size allocate nothing.
#[derive(Default)]
struct StepBuffers {
    x: Tensor,
    x_buf: Vec<f32>,
    labels: Vec<u32>,
    dlogits: Tensor,
    order: Vec<usize>,
}

/// One pass over the training set: shuffle, then per batch gather, augment, forward, loss,
/// backward, clip and update. Returns the epoch's training metrics (validation not yet filled),
/// or `None` when the observer interrupted it.
#[allow(clippy::too_many_arguments)]
fn train_epoch(
    config: &TrainConfig,
    net: &mut Network,
    optimizer: &mut Optimizer,
    progress: &mut Checkpoint,
    train_set: &Dataset,
    epoch: u32,
    bufs: &mut StepBuffers,
    observer: &mut dyn TrainObserver,
) -> Result<Option<EpochMetrics>> {
    let batch_size = progress.batch_sizer.current();
    bufs.order = epoch_order(config.seed, epoch, train_set.len());
    let batches = bufs.order.len().div_ceil(batch_size);
    observer.on_epoch_start(epoch, config.epochs, batches);
    let started = Instant::now();
    let (mut loss_sum, mut correct, mut seen) = (0.0f64, 0usize, 0usize);
    let mut lr = config.lr;
    for (b, chunk) in bufs.order.chunks(batch_size).enumerate() {
        let step = progress.step;
        train_set.gather(chunk, &mut bufs.x_buf, &mut bufs.labels);
        if !config.augment.is_identity() {
            let aug_seed = config.seed ^ ((epoch as u64) << 40) ^ ((b as u64) << 8);
            config
                .augment
                .apply_batch(&mut bufs.x_buf, &train_set.shape, chunk.len(), aug_seed);
        }
        to_tensor(&mut bufs.x, &mut bufs.x_buf, chunk.len(), &train_set.shape);
        net.set_training_step(step);
        let logits = net.forward(&bufs.x, Mode::Train);
        let loss = softmax_cross_entropy(&mut bufs.dlogits, logits, &bufs.labels);
        if !loss.is_finite() {
            return Err(Error::Diverged { epoch, step, loss });
        }
        correct += modelsmith_engine::count_correct(logits, &bufs.labels);
        loss_sum += loss as f64 * chunk.len() as f64;
        seen += chunk.len();
        net.zero_grads();
        net.backward(&bufs.dlogits);
        let mut params = net.param_refs_mut();
        if let Some(v) = config.clip_value {
            clip_grad_value(&mut params, v);
        }
        if let Some(n) = config.clip_norm {
            clip_grad_norm(&mut params, n);
        }
        lr = progress.scheduler.lr_at(step, epoch);
        optimizer
            .step(&mut params, lr)
            .map_err(|e| Error::Config(format!("optimizer: {e}")))?;
        progress.step += 1;
        observer.on_batch(
            b + 1,
            (loss_sum / seen as f64) as f32,
            correct as f32 / seen as f32,
            seen as f64 / started.elapsed().as_secs_f64().max(1e-9),
        );
        if interrupted(observer, epoch, b + 1, batches) {
            return Ok(None);
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(Some(EpochMetrics {
        epoch,
        loss: (loss_sum / seen as f64) as f32,
        accuracy: correct as f32 / seen as f32,
        val_loss: None,
        val_accuracy: None,
        lr,
        batch_size,
        seconds,
        images_per_second: seen as f64 / seconds.max(1e-9),
    }))
}

/// The order an epoch visits `len` examples in. It depends only on (seed, epoch): a resumed run
/// sees the same batches, and so does a GPU run.
pub(super) fn epoch_order(seed: u64, epoch: u32, len: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..len).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(
        seed ^ ((epoch as u64) << 32),
    ));
    order
}

/// The decisions after an epoch: remember the best weights, stop early, reduce the learning
/// rate on a plateau, grow the batch; then record the epoch in the history.
fn end_epoch(
    config: &TrainConfig,
    net: &Network,
    best: &mut WeightSnapshot,
    progress: &mut Checkpoint,
    metrics: EpochMetrics,
    observer: &mut dyn TrainObserver,
) {
    let epoch = metrics.epoch;
    let monitored = monitored_value(config.early_stopping.monitor, &metrics);
    let decision = progress.stopper.update(epoch, monitored);
    if decision.improved || best.is_empty() {
        best.update(net);
    }
    if decision.stop {
        progress.stopped_early = true;
        observer.on_message(&format!(
            "early stopping at epoch {epoch}: {} has not improved for {} epochs (best {:.4} at epoch {})",
            config.early_stopping.monitor.name(),
            config.early_stopping.patience,
            progress.stopper.best_value(),
            progress.stopper.best_epoch()
        ));
    }
    // A plateau schedule watches its own metric, which may differ from early stopping's.
    let plateau_value = progress
        .scheduler
        .monitor()
        .map_or(monitored, |m| monitored_value(m, &metrics));
    if let Some(message) = progress.scheduler.on_epoch_end(plateau_value) {
        observer.on_message(&message);
    }
    let batch_signal = metrics.val_loss.unwrap_or(metrics.loss);
    if let Some(size) = progress.batch_sizer.on_epoch_end(epoch, batch_signal) {
        observer.on_message(&format!("batch size grows to {size}"));
    }
    progress.history.push(metrics);
}

/// Mean cross-entropy loss and accuracy of `net` on `data`, in inference mode.
pub fn evaluate(net: &mut Network, data: &Dataset) -> (f32, f32) {
    if data.is_empty() {
        return (f32::NAN, f32::NAN);
    }
    let mut x = Tensor::default();
    let mut x_buf = Vec::new();
    let mut labels = Vec::new();
    let mut dlogits = Tensor::default();
    let (mut loss_sum, mut correct) = (0.0f64, 0usize);
    let indices: Vec<usize> = (0..data.len()).collect();
    for chunk in indices.chunks(EVAL_BATCH) {
        data.gather(chunk, &mut x_buf, &mut labels);
        to_tensor(&mut x, &mut x_buf, chunk.len(), &data.shape);
        let logits = net.forward(&x, Mode::Eval);
        loss_sum +=
            softmax_cross_entropy(&mut dlogits, logits, &labels) as f64 * chunk.len() as f64;
        correct += modelsmith_engine::count_correct(logits, &labels);
    }
    (
        (loss_sum / data.len() as f64) as f32,
        correct as f32 / data.len() as f32,
    )
}

/// Moves a gathered batch into `x` with shape `[batch, ..shape]` without allocating: the two
/// buffers swap, so each keeps its capacity for the next batch.
fn to_tensor(x: &mut Tensor, buf: &mut Vec<f32>, batch: usize, shape: &[usize]) {
    std::mem::swap(&mut x.data, buf);
    x.shape.clear();
    x.shape.push(batch);
    x.shape.extend_from_slice(shape);
}

/// The epoch's value of the monitored metric (validation metrics fall back to training ones when
/// there is no validation split; `validate` rejects that combination for early stopping).
fn monitored_value(monitor: Monitor, m: &EpochMetrics) -> f32 {
    match monitor {
        Monitor::ValLoss => m.val_loss.unwrap_or(m.loss),
        Monitor::ValAccuracy => m.val_accuracy.unwrap_or(m.accuracy),
        Monitor::Loss => m.loss,
        Monitor::Accuracy => m.accuracy,
    }
}
