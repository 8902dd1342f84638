//! Modelsmith: train, optimize and deploy neural networks automatically.
//!
//! The library behind the `modelsmith` binary. [`data`] loads data sets, [`model`] describes
//! architectures as data ([`model::ModelSpec`]) and saves trained models, [`train`] runs the
//! training loop, and [`task`] says what a model predicts (classes or values) and what follows
//! from that. The numeric work happens in the `modelsmith-engine` crate.

pub mod arch;
pub mod auto;
pub mod data;
pub mod deploy;
mod digest;
pub mod energy;
mod error;
pub mod explain;
pub mod model;
pub mod predict;
pub mod record;
pub mod report;
pub mod search;
mod size;
pub mod store;
pub mod task;
pub mod train;
pub mod tune;

pub use error::{Error, Result};
