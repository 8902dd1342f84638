//! The training loop, top to bottom: split off validation, build the network, then per epoch
//! shuffle, augment, step, validate, log, checkpoint and decide (early stopping, plateaus,
//! batch growth); finally restore the best weights, test once and save the model folder.

use std::path::{Path, PathBuf};
use std::time::Instant;

use modelsmith_engine::optim::{clip_grad_norm, clip_grad_value, Optimizer};
use modelsmith_engine::{Mode, Network, Tensor};
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
use crate::energy::{CarbonIntensity, CpuClock, Footprint, Meter};
use crate::model::{
    build_network, save_model, ActivationSpec, LayerKind, ModelMeta, ModelSpec, NamedTensors,
    OutputLock, WeightSnapshot, MODEL_FORMAT_VERSION,
};
use crate::task::{Loss, PredictionSample, ScoreSums, Scores, Task, PREDICTION_SAMPLE};
use crate::{Error, Result};

/// Examples per forward pass when evaluating (no gradients, so larger than training batches).
pub(super) const EVAL_BATCH: usize = 256;

/// What `train` returns (and `--json` prints). The figures present follow the task (see
/// [`Scores`]): accuracies for classification; RMSE, MAE (target units) and R² for regression.
#[derive(Clone, Debug, Serialize)]
pub struct TrainReport {
    pub test_loss: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_accuracy: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_rmse: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_mae: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_r2: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val_loss: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val_accuracy: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val_rmse: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val_mae: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val_r2: Option<f32>,
    /// `classification`, `regression`.
    pub task: &'static str,
    /// The loss trained on.
    pub loss: &'static str,
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
    /// Regression: predictions beside the truth on the first validation examples, for a
    /// search's residual plots (not printed).
    #[serde(skip)]
    pub val_sample: Option<PredictionSample>,
    /// What this run cost: energy (measured or estimated, as it says) and CO2e. A resumed run
    /// counts from its resumption.
    pub footprint: Footprint,
}

impl TrainReport {
    /// The test split's scores (NaN when not measured).
    pub fn test_scores(&self) -> Scores {
        Scores {
            loss: self.test_loss,
            accuracy: self.test_accuracy,
            rmse: self.test_rmse,
            mae: self.test_mae,
            r2: self.test_r2,
        }
    }

    /// The validation split's scores, if there was one.
    pub fn val_scores(&self) -> Option<Scores> {
        Some(Scores {
            loss: self.val_loss?,
            accuracy: self.val_accuracy,
            rmse: self.val_rmse,
            mae: self.val_mae,
            r2: self.val_r2,
        })
    }
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
    /// `(fold, folds)`: validate on this fold of a stratified k-fold partition of the training
    /// data (a search's cross-validation) instead of the `validation_split` share.
    pub validation_fold: Option<(usize, usize)>,
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
        validation_fold: None,
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
    // The work's own threads (a trial beside others in this process has its own pool).
    let meter = Meter::start(CpuClock::current_pool(), config.energy.cpu_watts);
    let carbon = CarbonIntensity::resolve(config.energy.carbon_intensity)?;
    let task = &data.info.task;
    let loss = config.effective_loss(task)?;
    let outputs = task.outputs();
    let classes_seen = data.train.num_classes.max(data.test.num_classes);
    if !task.is_regression() && outputs.min(classes_seen) < 2 {
        return Err(Error::Config(format!(
            "data '{}': the target has a single class; a classifier needs at least two",
            data.info.spec
        )));
    }
    let (train_set, val_set) = if let Some((fold, folds)) = options.validation_fold {
        data.train.fold(folds, fold, config.seed)
    } else if config.validation_split > 0.0 {
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
    let spec = ModelSpec::resolve(&config.model, task.model_head(), &train_set.shape)?;
    check_head(&spec, task)?;
    let mut net = build_network(&spec, &train_set.shape, outputs, config.seed)?;
    let (mut inherited_tensors, mut initial_val_accuracy) = (None, None);
    if let Some(initial) = options.initial {
        let inherited = crate::model::inherit(&mut net, initial);
        inherited_tensors = Some(inherited.copied.len());
        if !val_set.is_empty() {
            initial_val_accuracy = evaluate(&mut net, &val_set, task, loss).accuracy;
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
    if task.is_regression() && matches!(device, Device::Cuda(_)) {
        return Err(Error::Config(
            "--device: regression trains on the CPU for now (the GPU executor has only the cross-entropy loss); use --device cpu".into(),
        ));
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
                (task, loss),
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
            None => Some(evaluate(&mut net, &val_set, task, loss)),
        };
        if let Some(scores) = &val {
            metrics.set_val(scores);
        }
        metrics.joules = Some(meter.read().joules);
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
    let test = if options.evaluate_test {
        evaluate(&mut net, &data.test, task, loss)
    } else {
        Scores::nan(task)
    };
    // The last epoch already measured the validation split on these weights unless the best
    // epoch's weights were just restored.
    let val = match progress.history.last() {
        Some(last) if !restored => last.val_scores(),
        _ if val_set.is_empty() => None,
        _ => Some(evaluate(&mut net, &val_set, task, loss)),
    };
    let val_sample = prediction_sample(&mut net, &val_set, task);
    let history = &progress.history;
    // Folds from +0.0: a float `sum` of no epochs (an interrupt in the first) is -0.0.
    let train_seconds = history.iter().fold(0.0, |s, m| s + m.seconds);
    let trained = history
        .iter()
        .fold(0.0, |s, m| s + m.images_per_second * m.seconds);
    let mut energy = meter.stop();
    if gpu.is_some() {
        energy
            .source
            .push_str("; the GPU's own energy is not metered yet");
    }
    let report = TrainReport {
        test_loss: test.loss,
        test_accuracy: test.accuracy,
        test_rmse: test.rmse,
        test_mae: test.mae,
        test_r2: test.r2,
        val_loss: val.map(|v| v.loss),
        val_accuracy: val.and_then(|v| v.accuracy),
        val_rmse: val.and_then(|v| v.rmse),
        val_mae: val.and_then(|v| v.mae),
        val_r2: val.and_then(|v| v.r2),
        task: task.kind().name(),
        loss: loss.name(),
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
        val_sample,
        footprint: Footprint::new(energy, carbon),
    };
    let Some(out) = out else {
        return Ok(report);
    };
    let meta = ModelMeta {
        format_version: MODEL_FORMAT_VERSION,
        spec,
        input_shape: train_set.shape.clone(),
        outputs,
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
    values: Vec<f32>,
    dlogits: Tensor,
    order: Vec<usize>,
}

/// One pass over the training set: shuffle, then per batch gather, augment, forward, loss,
/// backward, clip and update. Returns the epoch's training metrics (validation not yet filled),
/// or `None` when the observer interrupted it.
#[allow(clippy::too_many_arguments)]
fn train_epoch(
    config: &TrainConfig,
    (task, loss_fn): (&Task, Loss),
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
    let mut sums = ScoreSums::new(task);
    let mut lr = config.lr;
    for (b, chunk) in bufs.order.chunks(batch_size).enumerate() {
        let step = progress.step;
        train_set.gather(chunk, &mut bufs.x_buf, &mut bufs.labels);
        train_set.gather_values(chunk, &mut bufs.values);
        if !config.augment.is_identity() {
            let aug_seed = config.seed ^ ((epoch as u64) << 40) ^ ((b as u64) << 8);
            config
                .augment
                .apply_batch(&mut bufs.x_buf, &train_set.shape, chunk.len(), aug_seed);
        }
        to_tensor(&mut bufs.x, &mut bufs.x_buf, chunk.len(), &train_set.shape);
        net.set_training_step(step);
        let logits = net.forward(&bufs.x, Mode::Train);
        let loss = loss_fn.compute(&mut bufs.dlogits, logits, &bufs.labels, &bufs.values);
        if !loss.is_finite() {
            return Err(Error::Diverged { epoch, step, loss });
        }
        sums.add(task, loss, logits, &bufs.labels, &bufs.values);
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
        let so_far = sums.finish(task);
        observer.on_batch(
            b + 1,
            so_far.loss,
            so_far.accuracy,
            sums.examples() as f64 / started.elapsed().as_secs_f64().max(1e-9),
        );
        if interrupted(observer, epoch, b + 1, batches) {
            return Ok(None);
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let scores = sums.finish(task);
    Ok(Some(EpochMetrics {
        epoch,
        loss: scores.loss,
        accuracy: scores.accuracy,
        lr,
        batch_size,
        seconds,
        images_per_second: sums.examples() as f64 / seconds.max(1e-9),
        ..EpochMetrics::default()
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

/// The task's scores of `net` on `data` (the loss by `loss`), in inference mode.
pub fn evaluate(net: &mut Network, data: &Dataset, task: &Task, loss: Loss) -> Scores {
    let mut x = Tensor::default();
    let mut x_buf = Vec::new();
    let mut labels = Vec::new();
    let mut values = Vec::new();
    let mut dlogits = Tensor::default();
    let mut sums = ScoreSums::new(task);
    let indices: Vec<usize> = (0..data.len()).collect();
    for chunk in indices.chunks(EVAL_BATCH) {
        data.gather(chunk, &mut x_buf, &mut labels);
        data.gather_values(chunk, &mut values);
        to_tensor(&mut x, &mut x_buf, chunk.len(), &data.shape);
        let logits = net.forward(&x, Mode::Eval);
        let batch_loss = loss.compute(&mut dlogits, logits, &labels, &values);
        sums.add(task, batch_loss, logits, &labels, &values);
    }
    sums.finish(task)
}

/// Regression: the first target's predictions and truth (target units) on the first
/// [`PREDICTION_SAMPLE`] examples of `data`; `None` for classification or no data.
fn prediction_sample(net: &mut Network, data: &Dataset, task: &Task) -> Option<PredictionSample> {
    let first = task.targets().first()?;
    let n = data.len().min(PREDICTION_SAMPLE);
    if n == 0 {
        return None;
    }
    let k = task.outputs();
    let indices: Vec<usize> = (0..n).collect();
    let (mut x_buf, mut labels, mut values) = (Vec::new(), Vec::new(), Vec::new());
    data.gather(&indices, &mut x_buf, &mut labels);
    data.gather_values(&indices, &mut values);
    let logits = net.forward_slice(&x_buf, n, Mode::Eval);
    let mut decoded = vec![0f32; n * k];
    task.decode_into(&mut decoded, &logits.data);
    Some(PredictionSample {
        target: first.name.clone(),
        truth: values
            .iter()
            .step_by(k)
            .map(|&v| first.to_units(v))
            .collect(),
        predicted: decoded.iter().step_by(k).copied().collect(),
    })
}

/// A regression model must end linear: a spec file's softmax head would squash its values.
fn check_head(spec: &ModelSpec, task: &Task) -> Result<()> {
    let last = spec.layers.last().map(|l| &l.kind);
    let softmax_end = matches!(
        last,
        Some(LayerKind::Dense {
            activation: ActivationSpec::Softmax,
            ..
        }) | Some(LayerKind::Activation {
            activation: ActivationSpec::Softmax
        })
    );
    if task.is_regression() && softmax_end {
        return Err(Error::Config(format!(
            "model: the last layer ends in softmax, but {} needs a linear output; set its activation to linear",
            task.describe()
        )));
    }
    Ok(())
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
        Monitor::ValAccuracy => m.val_accuracy.or(m.accuracy).unwrap_or(f32::NAN),
        Monitor::ValRmse => m.val_rmse.unwrap_or(f32::NAN),
        Monitor::ValMae => m.val_mae.unwrap_or(f32::NAN),
        Monitor::ValR2 => m.val_r2.unwrap_or(f32::NAN),
        Monitor::Loss => m.loss,
        Monitor::Accuracy => m.accuracy.unwrap_or(f32::NAN),
    }
}
