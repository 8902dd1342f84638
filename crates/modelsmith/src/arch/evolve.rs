//! Regularized (aging) evolution (Real et al., 2019) over the study's storage.
//!
//! The population is the last `population` complete trials that carry a genome, by trial
//! number; a child mutates the best of `tournament` members drawn at random, and the oldest
//! member leaves as soon as a newer trial completes (aging). Until the population is full,
//! trials get random genomes. Like the samplers, the strategy keeps no state of its own: a
//! proposal depends only on the trials in storage, the study seed and the trial number, so a
//! resumed study or a parallel worker sees the same population.
//!
//! The objective records the proposal with [`Proposal::record`] (attrs `genome`, `parent`,
//! `mutation`) before training, which is what later proposals read back.

use crate::model::OutputLayer;
use rand::seq::index::sample;
use serde::{Deserialize, Serialize};

use super::mutate::{mutate_random, Change, MutateError};
use super::space::{Genome, SpaceLimits};
use super::ArchError;
use crate::search::sampler::trial_rng;
use crate::search::{Direction, FrozenTrial, Trial, TrialError, TrialState};

/// Trial attributes the strategy writes and reads.
pub const GENOME_ATTR: &str = "genome";
pub const PARENT_ATTR: &str = "parent";
pub const MUTATION_ATTR: &str = "mutation";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvolutionConfig {
    /// Members of the population (the last complete trials).
    pub population: usize,
    /// Members drawn for each tournament; the best becomes the parent.
    pub tournament: usize,
    /// Random mutations tried before a proposal gives up.
    pub mutation_attempts: usize,
    pub limits: SpaceLimits,
}

impl Default for EvolutionConfig {
    fn default() -> Self {
        EvolutionConfig {
            population: 20,
            tournament: 5,
            mutation_attempts: 50,
            limits: SpaceLimits::default(),
        }
    }
}

impl EvolutionConfig {
    pub fn validate(&self) -> Result<(), ArchError> {
        if self.population == 0 {
            return Err(ArchError::Limits("population must be at least 1".into()));
        }
        if self.tournament == 0 || self.tournament > self.population {
            return Err(ArchError::Limits(format!(
                "tournament ({}) must be between 1 and population ({})",
                self.tournament, self.population
            )));
        }
        self.limits.validate()
    }
}

/// The genome a trial should evaluate, and where it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Proposal {
    pub genome: Genome,
    /// The parent's trial number (none for the random initial population).
    pub parent: Option<u64>,
    pub change: Option<Change>,
}

#[derive(Debug, thiserror::Error)]
pub enum EvolveError {
    #[error(transparent)]
    Arch(#[from] ArchError),
    #[error(transparent)]
    Mutate(#[from] MutateError),
}

impl From<EvolveError> for TrialError {
    fn from(e: EvolveError) -> Self {
        TrialError::failed(e)
    }
}

impl Proposal {
    /// Stores the proposal with the trial, where later proposals read it.
    pub fn record(&self, trial: &mut Trial) -> Result<(), TrialError> {
        trial.set_attr(GENOME_ATTR, &self.genome)?;
        if let Some(parent) = self.parent {
            trial.set_attr(PARENT_ATTR, parent)?;
        }
        if let Some(change) = &self.change {
            trial.set_attr(MUTATION_ATTR, change)?;
        }
        Ok(())
    }
}

/// The complete trials with a readable genome, oldest first: `(number, value, genome)`.
pub fn evaluated(trials: &[FrozenTrial]) -> Vec<(u64, f64, Genome)> {
    let mut out: Vec<(u64, f64, Genome)> = trials
        .iter()
        .filter(|t| t.state == TrialState::Complete)
        .filter_map(|t| {
            let value = t.value.filter(|v| v.is_finite())?;
            let genome = serde_json::from_value(t.attrs.get(GENOME_ATTR)?.clone()).ok()?;
            Some((t.number, value, genome))
        })
        .collect();
    out.sort_by_key(|(n, _, _)| *n);
    out
}

/// Proposes the genome for trial `number` from the study's `trials`. Deterministic in
/// (`seed`, `number`, the complete trials).
pub fn propose(
    config: &EvolutionConfig,
    trials: &[FrozenTrial],
    direction: Direction,
    seed: u64,
    number: u64,
    input_shape: &[usize],
    output: OutputLayer,
) -> Result<Proposal, EvolveError> {
    config.validate()?;
    let mut rng = trial_rng(seed, number, "arch.evolve");
    let evaluated = evaluated(trials);
    if evaluated.len() < config.population {
        let (genome, _) = config.limits.sample(input_shape, output, &mut rng, 200)?;
        return Ok(Proposal {
            genome,
            parent: None,
            change: None,
        });
    }
    let population = &evaluated[evaluated.len() - config.population..];
    let drawn = sample(&mut rng, population.len(), config.tournament);
    let winner = drawn
        .iter()
        .map(|i| &population[i])
        .reduce(|best, m| {
            if direction.better(m.1, best.1) {
                m
            } else {
                best
            }
        })
        .expect("tournament of at least one");
    let child = mutate_random(
        &winner.2,
        &config.limits,
        input_shape,
        output,
        &mut rng,
        config.mutation_attempts,
    )?;
    Ok(Proposal {
        genome: child.genome,
        parent: Some(winner.0),
        change: Some(child.change),
    })
}
