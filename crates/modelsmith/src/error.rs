//! The library's error type. Every message is one line naming what was wrong and where.

use crate::data::DataError;
use crate::model::ModelError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting (command-line flag or config field) is invalid.
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The loss became NaN or infinite.
    #[error("training diverged: loss is {loss} at epoch {epoch}, step {step}; lower the learning rate (--lr) or enable gradient clipping (clip_norm)")]
    Diverged { epoch: u32, step: u64, loss: f32 },
    #[error("{path}: {message}")]
    Io { path: String, message: String },
}

impl Error {
    /// True for errors caused by the user's input (files, flags, configs): the CLI exits with 2.
    pub fn is_bad_input(&self) -> bool {
        matches!(self, Error::Config(_) | Error::Data(_) | Error::Model(_))
    }

    pub(crate) fn io(path: &std::path::Path, e: impl std::fmt::Display) -> Error {
        Error::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
