//! Training: the configuration, the loop, optimizers' schedules, early stopping, dynamic batch
//! size, checkpoints and metrics.

pub mod batch_schedule;
mod checkpoint;
mod config;
pub mod device;
pub mod early_stopping;
#[cfg(feature = "cuda")]
mod gpu;
mod observer;
pub mod schedule;
mod scoring_data;
mod step_time;
mod trainer;

pub use config::{TrainConfig, OPTIMIZERS};
pub use device::Device;
pub use observer::{EpochMetrics, Silent, StartInfo, TrainObserver};
pub use scoring_data::{scoring_data, ScoringData};
pub use step_time::seconds_per_example;
pub use trainer::{evaluate, train, train_with, TrainOptions, TrainReport};
