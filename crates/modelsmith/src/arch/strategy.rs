//! Search strategies: which genome a trial evaluates, and whose trained weights it starts from.
//!
//! - `evolution`: regularized (aging) evolution ([`super::evolve`]).
//! - `hillclimb`: a greedy morphism hill-climb in the manner of AutoKeras: the best complete
//!   trial so far is the parent of every new trial, and the child (one mutation away, often a
//!   function-preserving widen or deepen) starts from its trained weights, so a few epochs per
//!   trial keep improving one lineage. The first trial is a small, sound starter network.
//! - `random`: random genomes from the space, trained from scratch: the control.
//!
//! Like the samplers, a strategy keeps no state: a proposal depends only on the trials in
//! storage, the seed and the trial number, so resumed studies and parallel workers agree.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::evolve::{evaluated, propose as evolve_propose, EvolutionConfig, EvolveError, Proposal};
use super::mutate::{mutate, mutate_random, MutationKind};
use super::space::{
    Block, BlockOp, ConvParams, Genome, Head, HeadPooling, Hidden, ImageGenome, PoolKind,
    SpaceLimits, TableGenome,
};
use crate::model::ActivationSpec;
use crate::search::sampler::trial_rng;
use crate::search::{Direction, FrozenTrial};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StrategyKind {
    Evolution,
    /// The default: on 2 cores a short budget affords few trials, and a lineage that keeps
    /// its weights gets further in them than independent networks trained from scratch.
    #[default]
    Hillclimb,
    Random,
}

pub const STRATEGIES: &[&str] = &["evolution", "hillclimb", "random"];

impl fmt::Display for StrategyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StrategyKind::Evolution => "evolution",
            StrategyKind::Hillclimb => "hillclimb",
            StrategyKind::Random => "random",
        })
    }
}

impl FromStr for StrategyKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "evolution" => Ok(StrategyKind::Evolution),
            "hillclimb" => Ok(StrategyKind::Hillclimb),
            "random" => Ok(StrategyKind::Random),
            _ => Err(format!(
                "unknown strategy '{s}' (expected one of {})",
                STRATEGIES.join(", ")
            )),
        }
    }
}

/// A strategy and its settings (the limits of the space are shared by all three).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Strategy {
    pub kind: StrategyKind,
    /// Population and tournament for `evolution`; its limits are the space's.
    pub evolution: EvolutionConfig,
    /// Hill-climb: how many of the best trials keep their weights (parents to come).
    pub hillclimb_keep: usize,
    /// Hill-climb: the share of children made by a function-preserving widen or deepen.
    pub hillclimb_morph_share: f64,
}

impl Default for Strategy {
    fn default() -> Self {
        Strategy {
            kind: StrategyKind::default(),
            evolution: EvolutionConfig::default(),
            hillclimb_keep: 3,
            hillclimb_morph_share: 0.6,
        }
    }
}

impl Strategy {
    pub fn limits(&self) -> &SpaceLimits {
        &self.evolution.limits
    }

    /// Whether children start from their parent's weights (`random` is the control: never).
    pub fn inherits(&self) -> bool {
        self.kind != StrategyKind::Random
    }

    pub fn validate(&self) -> Result<(), EvolveError> {
        self.evolution.validate()?;
        Ok(())
    }

    /// The genome for trial `number`, given the study's `trials`. Deterministic in (`seed`,
    /// `number`, the complete trials).
    pub fn propose(
        &self,
        trials: &[FrozenTrial],
        direction: Direction,
        seed: u64,
        number: u64,
        input_shape: &[usize],
        num_classes: usize,
    ) -> Result<Proposal, EvolveError> {
        let limits = self.limits();
        match self.kind {
            StrategyKind::Evolution => evolve_propose(
                &self.evolution,
                trials,
                direction,
                seed,
                number,
                input_shape,
                num_classes,
            ),
            StrategyKind::Random => {
                self.validate()?;
                let mut rng = trial_rng(seed, number, "arch.random");
                let (genome, _) = limits.sample(input_shape, num_classes, &mut rng, 200)?;
                Ok(Proposal {
                    genome,
                    parent: None,
                    change: None,
                })
            }
            StrategyKind::Hillclimb => {
                self.validate()?;
                let mut rng = trial_rng(seed, number, "arch.hillclimb");
                let best = best_evaluated(trials, direction);
                let (parent_genome, parent) = match best {
                    Some((n, _, g)) => (g, Some(n)),
                    None => {
                        let start = starter(limits, input_shape, num_classes, &mut rng)?;
                        // The very first trial is the starter itself; parallel workers that
                        // start before anything finished get varied starters, not copies.
                        if number == 0 {
                            return Ok(Proposal {
                                genome: start,
                                parent: None,
                                change: None,
                            });
                        }
                        (start, None)
                    }
                };
                // Morphism first, as AutoKeras: a widen or deepen child starts exactly where
                // its parent ended, so it can only build on it; the other mutations (which
                // restart some layers) keep the search from growing one shape forever.
                let morph = if rng.gen_bool(self.hillclimb_morph_share.clamp(0.0, 1.0)) {
                    let kind = if rng.gen_bool(0.5) {
                        MutationKind::Widen
                    } else {
                        MutationKind::Deepen
                    };
                    mutate(
                        &parent_genome,
                        kind,
                        limits,
                        input_shape,
                        num_classes,
                        &mut rng,
                    )
                    .ok()
                } else {
                    None
                };
                let child = match morph {
                    Some(child) => child,
                    None => mutate_random(
                        &parent_genome,
                        limits,
                        input_shape,
                        num_classes,
                        &mut rng,
                        self.evolution.mutation_attempts,
                    )?,
                };
                Ok(Proposal {
                    genome: child.genome,
                    parent,
                    change: parent.map(|_| child.change),
                })
            }
        }
    }

    /// The trials whose trained weights future proposals may need as parents (and the best,
    /// which the final retrain starts from); every other trial's weights can be deleted.
    pub fn weights_to_keep(&self, trials: &[FrozenTrial], direction: Direction) -> BTreeSet<u64> {
        let mut evaluated = evaluated(trials);
        let mut keep = BTreeSet::new();
        if self.kind == StrategyKind::Evolution {
            let from = evaluated.len().saturating_sub(self.evolution.population);
            keep.extend(evaluated[from..].iter().map(|(n, _, _)| *n));
        }
        let top = match self.kind {
            StrategyKind::Hillclimb => self.hillclimb_keep.max(1),
            _ => 1,
        };
        evaluated.sort_by(|a, b| match direction {
            Direction::Maximize => b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)),
            Direction::Minimize => a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)),
        });
        keep.extend(evaluated.iter().take(top).map(|(n, _, _)| *n));
        keep
    }
}

/// The best complete trial with a genome (the earliest among equals).
pub fn best_evaluated(trials: &[FrozenTrial], direction: Direction) -> Option<(u64, f64, Genome)> {
    evaluated(trials).into_iter().reduce(|best, t| {
        if direction.better(t.1, best.1) {
            t
        } else {
            best
        }
    })
}

/// A small, sound first network: for images two `conv 3x3 + batch norm + relu` blocks with
/// pooling and a flatten head (the classic small CNN), for tables one hidden layer of 64. Fields
/// are clamped into the limits; if the result is still outside them, a random genome.
pub fn starter<R: rand::Rng + ?Sized>(
    limits: &SpaceLimits,
    input_shape: &[usize],
    num_classes: usize,
    rng: &mut R,
) -> Result<Genome, super::ArchError> {
    let activation = if limits.activations.contains(&ActivationSpec::Relu) {
        ActivationSpec::Relu
    } else {
        limits.activations[0]
    };
    let kernel = if limits.kernels.contains(&3) {
        3
    } else {
        limits.kernels[0]
    };
    let filters = |f: usize| f.clamp(limits.min_filters, limits.max_filters);
    let units = |u: usize| u.clamp(limits.min_units, limits.max_units);
    let genome = if input_shape.len() == 3 {
        let conv = |id, f| Block {
            id,
            op: BlockOp::Conv(ConvParams {
                kernel,
                filters: filters(f),
                batch_norm: true,
                activation,
            }),
        };
        let pool = |id| Block {
            id,
            op: BlockOp::Pool {
                pool: PoolKind::Max,
            },
        };
        let side = input_shape[0].min(input_shape[1]);
        let mut blocks = vec![conv(0, 16)];
        if side >= 8 {
            blocks.push(pool(1));
        }
        blocks.push(conv(2, 32));
        if side >= 16 {
            blocks.push(pool(3));
        }
        blocks.truncate(limits.max_blocks);
        let hidden: Vec<Hidden> = (0..limits.min_hidden as u32)
            .map(|i| Hidden {
                id: 4 + i,
                units: units(64),
            })
            .collect();
        Genome::Image(ImageGenome {
            blocks,
            next_id: 4 + hidden.len() as u32,
            head: Head {
                pooling: HeadPooling::Flatten,
                hidden,
                dropout: 0.0,
                activation,
            },
        })
    } else {
        let n = 1.clamp(limits.min_hidden, limits.max_hidden) as u32;
        Genome::Table(TableGenome {
            hidden: (0..n)
                .map(|id| Hidden {
                    id,
                    units: units(64),
                })
                .collect(),
            dropout: 0.0,
            batch_norm: false,
            activation,
            next_id: n,
        })
    };
    match limits.admit(&genome, input_shape, num_classes) {
        Ok(_) => Ok(genome),
        Err(_) => Ok(limits.sample(input_shape, num_classes, rng, 200)?.0),
    }
}
