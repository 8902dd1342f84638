//! Dynamic batching: concurrent requests for one model are gathered into one forward pass.
//!
//! A [`Predictor`] owns reusable buffers (`&mut`), so each model gets one worker thread that owns
//! it; inference never runs on the async executor. Handlers send a [`Job`] down a channel and
//! await a oneshot reply. The worker takes the first job, then keeps taking jobs until the batch
//! holds `max_batch` examples or `max_delay` has passed since the first one arrived; jobs that
//! queued while the previous batch ran are taken at once, so under load batches form even with
//! `max_delay` = 0 while a lone request never waits. The queue is bounded (`max_queue` requests
//! per model): past that a request is refused at once with [`InferError::Overloaded`] (a 503 the
//! client can retry, or a load balancer can route elsewhere) instead of waiting without bound.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use modelsmith::predict::Predictor;
use tokio::sync::oneshot;

use crate::metrics::BatchMetrics;
use crate::stats::InferenceStats;

/// How the worker forms batches.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchConfig {
    /// Most examples in one forward pass (a larger request runs in passes of this size).
    pub max_batch: usize,
    /// Longest wait for more requests after the first one of a batch arrived.
    pub max_delay: Duration,
    /// Most requests waiting for the worker; more are refused with [`InferError::Overloaded`].
    pub max_queue: usize,
}

/// Default [`BatchConfig::max_queue`]: at about 30 µs per example, a full queue of one-example
/// requests is answered within some tens of milliseconds.
pub const DEFAULT_MAX_QUEUE: usize = 1024;

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_batch: 32,
            max_delay: Duration::ZERO,
            max_queue: DEFAULT_MAX_QUEUE,
        }
    }
}

/// Why a batch produced no probabilities.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InferError {
    /// The inputs do not fit the model (the Predictor's message).
    BadInput(String),
    /// The worker is gone or failed: not the client's fault.
    Internal(String),
    /// The queue is full: try again shortly.
    Overloaded(String),
}

/// Some examples (`examples` inputs laid end to end) and where to send their probabilities.
struct Job {
    inputs: Vec<f32>,
    examples: usize,
    queued_at: Instant,
    reply: oneshot::Sender<Result<Vec<f32>, InferError>>,
}

/// The handle handlers use; cloning it is cheap. The worker stops when every handle is dropped.
#[derive(Clone)]
pub struct Batcher {
    jobs: SyncSender<Job>,
    input_len: usize,
    max_queue: usize,
    config: BatchConfig,
    stats: Arc<InferenceStats>,
}

impl Batcher {
    /// Starts the worker thread that owns `predictor`.
    pub fn start(
        predictor: Predictor,
        config: BatchConfig,
        metrics: BatchMetrics,
        thread_name: String,
    ) -> std::io::Result<Batcher> {
        let input_len = predictor.input_len();
        let max_queue = config.max_queue.max(1);
        let (jobs, queue) = mpsc::sync_channel(max_queue);
        let stats = Arc::new(InferenceStats::default());
        let worker_stats = stats.clone();
        std::thread::Builder::new()
            .name(thread_name)
            .spawn(move || {
                Worker {
                    predictor,
                    config,
                    metrics,
                    queue,
                    carried: None,
                    stats: worker_stats,
                }
                .run()
            })?;
        Ok(Batcher {
            jobs,
            input_len,
            max_queue,
            config,
            stats,
        })
    }

    /// How the worker forms batches.
    pub fn config(&self) -> BatchConfig {
        self.config
    }

    /// The model's inference statistics (requests, queue and compute time).
    pub fn stats(&self) -> &InferenceStats {
        &self.stats
    }

    /// Class probabilities of `examples` inputs laid end to end in `inputs`
    /// (`examples * input_len` values), laid end to end too.
    pub async fn infer(&self, inputs: Vec<f32>, examples: usize) -> Result<Vec<f32>, InferError> {
        if examples == 0 || inputs.len() != examples * self.input_len {
            return Err(InferError::BadInput(format!(
                "{} values for {examples} examples; the model takes {} values per example",
                inputs.len(),
                self.input_len
            )));
        }
        let (reply, answer) = oneshot::channel();
        let job = Job {
            inputs,
            examples,
            queued_at: Instant::now(),
            reply,
        };
        self.jobs.try_send(job).map_err(|e| match e {
            TrySendError::Full(_) => InferError::Overloaded(format!(
                "the model's queue is full ({} requests waiting, --max-queue); retry shortly",
                self.max_queue
            )),
            TrySendError::Disconnected(_) => {
                InferError::Internal("the inference worker has stopped".into())
            }
        })?;
        answer
            .await
            .map_err(|_| InferError::Internal("the inference worker dropped the request".into()))?
    }
}

struct Worker {
    predictor: Predictor,
    config: BatchConfig,
    metrics: BatchMetrics,
    queue: Receiver<Job>,
    /// A job taken that would have overfilled the previous batch: it opens the next one.
    carried: Option<Job>,
    stats: Arc<InferenceStats>,
}

impl Worker {
    fn run(mut self) {
        while let Some(batch) = self.next_batch() {
            self.answer(batch);
        }
    }

    /// Blocks for the first job, then gathers more (see the module doc). `None` once every
    /// [`Batcher`] is dropped and the queue is empty.
    fn next_batch(&mut self) -> Option<Vec<Job>> {
        let first = match self.carried.take() {
            Some(job) => job,
            None => self.queue.recv().ok()?,
        };
        let deadline = Instant::now() + self.config.max_delay;
        let mut examples = first.examples;
        let mut batch = vec![first];
        while examples < self.config.max_batch {
            let job = match self.queue.try_recv() {
                Ok(job) => job,
                Err(TryRecvError::Disconnected) => break,
                Err(TryRecvError::Empty) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    match self.queue.recv_timeout(left) {
                        Ok(job) => job,
                        Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
                    }
                }
            };
            if examples + job.examples > self.config.max_batch {
                self.carried = Some(job);
                break;
            }
            examples += job.examples;
            batch.push(job);
        }
        Some(batch)
    }

    /// Runs one forward pass over the batch's live jobs and sends each its probabilities.
    fn answer(&mut self, mut batch: Vec<Job>) {
        // A client that hung up while queued needs no answer.
        batch.retain(|job| !job.reply.is_closed());
        if batch.is_empty() {
            return;
        }
        let len = self.predictor.input_len();
        let inputs: Vec<&[f32]> = batch
            .iter()
            .flat_map(|job| job.inputs.chunks_exact(len))
            .collect();
        let start = Instant::now();
        for job in &batch {
            self.stats.queued(start - job.queued_at);
        }
        // A request larger than max_batch runs in max_batch-sized passes, so one request of
        // thousands of examples needs (and leaves behind) no more memory than a full batch.
        // A panic inside the engine must cost this batch, not the worker and every later request.
        let max_batch = self.config.max_batch.max(1);
        let result = catch_unwind(AssertUnwindSafe(|| {
            let mut all = Vec::with_capacity(inputs.len());
            for chunk in inputs.chunks(max_batch) {
                all.extend(self.predictor.outputs(chunk)?);
            }
            Ok::<_, modelsmith::Error>(all)
        }));
        self.metrics
            .inference_seconds
            .observe(start.elapsed().as_secs_f64());
        self.stats.execution(start.elapsed());
        self.metrics.batch_size.observe(inputs.len() as f64);
        self.metrics.predictions.inc_by(inputs.len() as u64);
        match result {
            Ok(Ok(probabilities)) => {
                let mut rows = probabilities.into_iter();
                for job in batch {
                    let answer: Vec<f32> = rows.by_ref().take(job.examples).flatten().collect();
                    let _ = job.reply.send(Ok(answer));
                }
            }
            Ok(Err(e)) => {
                for job in batch {
                    let _ = job.reply.send(Err(InferError::BadInput(e.to_string())));
                }
            }
            Err(_) => {
                tracing::error!("inference panicked; the batch's requests get a 500");
                for job in batch {
                    let _ = job
                        .reply
                        .send(Err(InferError::Internal("inference failed".into())));
                }
            }
        }
    }
}
