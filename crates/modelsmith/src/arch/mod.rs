//! Architecture search: the space, the moves through it, and the strategies that choose them.
//!
//! - [`space`]: the [`Genome`] (image blocks + head, or an MLP), its [`ModelSpec`] with stable
//!   layer names, the [`SpaceLimits`] and their checks, a seeded random sampler.
//! - [`mutate`]: add, delete and replace blocks, change the head, widen, deepen; every child is
//!   checked against the limits.
//! - [`morph`]: weight transfer from a trained parent: function-preserving widen (Net2Net) and
//!   deepen (identity layers), and inheritance by name for every other mutation.
//! - [`ensemble`]: trainings of one MLP genome as one network averaging their outputs.
//! - [`evolve`] and [`strategy`]: aging evolution, a morphism hill-climb and random search,
//!   all stateless over the study's storage.
//!
//! [`ModelSpec`]: crate::model::ModelSpec

mod describe;
pub mod ensemble;
pub mod evolve;
pub mod morph;
pub mod mutate;
pub mod space;
pub mod strategy;

pub use evolve::{propose, EvolutionConfig, EvolveError, Proposal};
pub use morph::{DeepenSite, Morph, MorphError, Morphed, WidenSite};
pub use mutate::{mutate, mutate_random, Change, MutateError, Mutated, MutationKind, MUTATIONS};
pub use space::{
    Block, BlockOp, ConvParams, Cost, Genome, Head, HeadPooling, Hidden, ImageGenome, PoolKind,
    SpaceLimits, TableGenome,
};
pub use strategy::{Strategy, StrategyKind, STRATEGIES};

use crate::model::ModelError;

/// Errors about the space's limits and about genomes.
#[derive(Debug, thiserror::Error)]
pub enum ArchError {
    /// The limits themselves are inconsistent (bad input).
    #[error("architecture limits: {0}")]
    Limits(String),
    /// A genome field lies outside the limits, or the genome is malformed.
    #[error("genome: {0}")]
    Genome(String),
    /// The genome's spec does not build (e.g. pooled below 1x1).
    #[error("genome does not build: {0}")]
    Build(ModelError),
    /// The built network breaks `max_params` or `max_flops`.
    #[error("genome too large: {0}")]
    TooLarge(String),
    /// Sampling found no admissible genome.
    #[error("{0}")]
    Exhausted(String),
}

impl From<ArchError> for crate::Error {
    fn from(e: ArchError) -> Self {
        crate::Error::Config(e.to_string())
    }
}
