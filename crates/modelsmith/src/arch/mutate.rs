//! Mutations: a child genome one step from its parent.
//!
//! Each mutation either returns a child that meets every limit and constraint, or says why it
//! cannot ([`MutateError`]). Widen and deepen also record the [`Morph`] that carries the
//! parent's trained weights over unchanged in function; every other child inherits weights by
//! name ([`super::inherit`]).

use crate::model::OutputLayer;
use std::fmt;

use rand::seq::SliceRandom;
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::morph::{DeepenSite, Morph, MorphError, WidenSite};
use super::space::{
    Block, BlockOp, Cost, Genome, HeadPooling, Hidden, ImageGenome, PoolKind, SpaceLimits,
};
use super::ArchError;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MutationKind {
    /// A new image block (or MLP hidden layer) at a random position.
    AddBlock,
    /// Remove an image block (or MLP hidden layer).
    DeleteBlock,
    /// Change one block: kernel, width, activation, batch norm, conv ↔ residual, pool kind,
    /// dropout rate (MLP: one hidden layer's width).
    ReplaceBlock,
    /// Change the head: pooling, hidden layers, dropout, activation (MLP: its shared settings).
    ChangeHead,
    /// Net2Net widen of a convolution block or hidden layer (function-preserving).
    Widen,
    /// Insert an identity layer (function-preserving).
    Deepen,
}

pub const MUTATIONS: &[MutationKind] = &[
    MutationKind::AddBlock,
    MutationKind::DeleteBlock,
    MutationKind::ReplaceBlock,
    MutationKind::ChangeHead,
    MutationKind::Widen,
    MutationKind::Deepen,
];

impl fmt::Display for MutationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MutationKind::AddBlock => "add_block",
            MutationKind::DeleteBlock => "delete_block",
            MutationKind::ReplaceBlock => "replace_block",
            MutationKind::ChangeHead => "change_head",
            MutationKind::Widen => "widen",
            MutationKind::Deepen => "deepen",
        })
    }
}

/// What a mutation did (stored with the child).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub kind: MutationKind,
    /// For people: e.g. `block 4: kernel 3 -> 5`.
    pub detail: String,
    /// For widen and deepen: how the parent's weights carry over unchanged in function.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub morph: Option<Morph>,
}

/// An admitted child.
#[derive(Clone, Debug, PartialEq)]
pub struct Mutated {
    pub genome: Genome,
    pub change: Change,
    pub cost: Cost,
}

#[derive(Debug, thiserror::Error)]
pub enum MutateError {
    /// Nothing to act on, or the step would leave the space (e.g. delete at `min_blocks`).
    #[error("{kind}: not applicable: {reason}")]
    NotApplicable { kind: MutationKind, reason: String },
    /// The child breaks a limit or a constraint.
    #[error("{kind}: child rejected: {source}")]
    Rejected {
        kind: MutationKind,
        source: ArchError,
    },
    /// No mutation produced an admissible child.
    #[error("no mutation produced a valid child in {attempts} attempts (last: {last})")]
    Exhausted { attempts: usize, last: String },
}

/// Where the child must live: limits plus the data's shapes.
struct Ctx<'a> {
    limits: &'a SpaceLimits,
    input_shape: &'a [usize],
    output: OutputLayer,
}

/// Applies one mutation of `kind` to `parent`. Widen and deepen try their sites in random order
/// and return the first admitted child.
pub fn mutate<R: Rng + ?Sized>(
    parent: &Genome,
    kind: MutationKind,
    limits: &SpaceLimits,
    input_shape: &[usize],
    output: OutputLayer,
    rng: &mut R,
) -> Result<Mutated, MutateError> {
    let ctx = Ctx {
        limits,
        input_shape,
        output,
    };
    let na = |reason: &str| MutateError::NotApplicable {
        kind,
        reason: reason.to_string(),
    };
    let proposal = match kind {
        MutationKind::Widen | MutationKind::Deepen => return morph_child(parent, kind, &ctx, rng),
        MutationKind::AddBlock => add_block(parent, limits, rng),
        MutationKind::DeleteBlock => delete_block(parent, limits, rng),
        MutationKind::ReplaceBlock => replace_block(parent, limits, rng),
        MutationKind::ChangeHead => change_head(parent, limits, rng),
    };
    let (genome, detail) = proposal.map_err(|r| na(&r))?;
    admit(genome, kind, detail, None, &ctx)
}

/// A random admissible mutation: random kinds until one works, at most `attempts` tries.
pub fn mutate_random<R: Rng + ?Sized>(
    parent: &Genome,
    limits: &SpaceLimits,
    input_shape: &[usize],
    output: OutputLayer,
    rng: &mut R,
    attempts: usize,
) -> Result<Mutated, MutateError> {
    let mut last = String::from("none tried");
    for _ in 0..attempts.max(1) {
        let kind = *MUTATIONS.choose(rng).expect("non-empty");
        match mutate(parent, kind, limits, input_shape, output, rng) {
            Ok(m) => return Ok(m),
            Err(e) => last = e.to_string(),
        }
    }
    Err(MutateError::Exhausted {
        attempts: attempts.max(1),
        last,
    })
}

fn admit(
    genome: Genome,
    kind: MutationKind,
    detail: String,
    morph: Option<Morph>,
    ctx: &Ctx,
) -> Result<Mutated, MutateError> {
    let cost = ctx
        .limits
        .admit(&genome, ctx.input_shape, ctx.output)
        .map_err(|source| MutateError::Rejected { kind, source })?;
    Ok(Mutated {
        genome,
        change: Change {
            kind,
            detail,
            morph,
        },
        cost,
    })
}

type Proposal = Result<(Genome, String), String>;

fn add_block<R: Rng + ?Sized>(parent: &Genome, limits: &SpaceLimits, rng: &mut R) -> Proposal {
    let mut child = parent.clone();
    let id = child.take_id();
    match &mut child {
        Genome::Image(g) => {
            if g.blocks.len() >= limits.max_blocks {
                return Err(format!("already {} blocks (max_blocks)", g.blocks.len()));
            }
            let at = rng.gen_range(0..=g.blocks.len());
            let roll: f32 = rng.gen();
            let op = if roll < 0.5 {
                BlockOp::Conv(limits.random_conv(rng))
            } else if roll < 0.7 {
                BlockOp::Residual(limits.random_conv(rng))
            } else if roll < 0.85 || limits.max_dropout == 0.0 {
                BlockOp::Pool {
                    pool: limits.random_pool(rng),
                }
            } else {
                BlockOp::Dropout {
                    rate: limits.random_rate(rng),
                }
            };
            let detail = format!("add {} at position {}", describe(id, &op), at + 1);
            g.blocks.insert(at, Block { id, op });
            Ok((child, detail))
        }
        Genome::Table(g) => {
            if g.hidden.len() >= limits.max_hidden {
                return Err(format!(
                    "already {} hidden layers (max_hidden)",
                    g.hidden.len()
                ));
            }
            let at = rng.gen_range(0..=g.hidden.len());
            let units = limits.random_units(rng);
            g.hidden.insert(at, Hidden { id, units });
            Ok((
                child,
                format!(
                    "add hidden layer {id} ({units} units) at position {}",
                    at + 1
                ),
            ))
        }
    }
}

fn delete_block<R: Rng + ?Sized>(parent: &Genome, limits: &SpaceLimits, rng: &mut R) -> Proposal {
    let mut child = parent.clone();
    match &mut child {
        Genome::Image(g) => {
            if g.blocks.len() <= limits.min_blocks {
                return Err(format!("only {} blocks (min_blocks)", g.blocks.len()));
            }
            let at = rng.gen_range(0..g.blocks.len());
            let removed = g.blocks.remove(at);
            let detail = format!("delete {}", describe(removed.id, &removed.op));
            Ok((child, detail))
        }
        Genome::Table(g) => {
            if g.hidden.len() <= limits.min_hidden || g.hidden.is_empty() {
                return Err(format!(
                    "only {} hidden layers (min_hidden)",
                    g.hidden.len()
                ));
            }
            let removed = g.hidden.remove(rng.gen_range(0..g.hidden.len()));
            Ok((child, format!("delete hidden layer {}", removed.id)))
        }
    }
}

fn replace_block<R: Rng + ?Sized>(parent: &Genome, limits: &SpaceLimits, rng: &mut R) -> Proposal {
    let mut child = parent.clone();
    match &mut child {
        Genome::Image(g) => {
            if g.blocks.is_empty() {
                return Err("no blocks".into());
            }
            let at = rng.gen_range(0..g.blocks.len());
            let block = &mut g.blocks[at];
            let detail = replace_op(block.id, &mut block.op, limits, rng)?;
            Ok((child, detail))
        }
        Genome::Table(g) => {
            if g.hidden.is_empty() {
                return Err("no hidden layers".into());
            }
            let at = rng.gen_range(0..g.hidden.len());
            let h = &mut g.hidden[at];
            let units = other_value(h.units, || limits.random_units(rng))
                .ok_or("min_units = max_units: no other width")?;
            let detail = format!("hidden layer {}: units {} -> {units}", h.id, h.units);
            h.units = units;
            Ok((child, detail))
        }
    }
}

/// One change to a block, chosen among those the limits allow.
fn replace_op<R: Rng + ?Sized>(
    id: u32,
    op: &mut BlockOp,
    limits: &SpaceLimits,
    rng: &mut R,
) -> Result<String, String> {
    match op {
        BlockOp::Conv(_) | BlockOp::Residual(_) => {
            let mut choices = vec!["filters", "batch_norm", "swap"];
            if limits.kernels.len() > 1 {
                choices.push("kernel");
            }
            if limits.activations.len() > 1 {
                choices.push("activation");
            }
            let before = describe(id, op);
            let (BlockOp::Conv(p) | BlockOp::Residual(p)) = op else {
                return Err(format!("block {id} is not a convolution block"));
            };
            match *choices.choose(rng).expect("non-empty") {
                "kernel" => {
                    let k = *limits
                        .kernels
                        .iter()
                        .filter(|&&k| k != p.kernel)
                        .collect::<Vec<_>>()
                        .choose(rng)
                        .ok_or("one kernel size only")?;
                    let detail = format!("block {id}: kernel {} -> {k}", p.kernel);
                    p.kernel = *k;
                    Ok(detail)
                }
                "filters" => {
                    let f = other_value(p.filters, || limits.random_filters(rng))
                        .ok_or("min_filters = max_filters: no other width")?;
                    let detail = format!("block {id}: filters {} -> {f}", p.filters);
                    p.filters = f;
                    Ok(detail)
                }
                "activation" => {
                    let a = other_value(p.activation, || limits.random_activation(rng))
                        .ok_or("one activation only")?;
                    let detail = format!("block {id}: activation {} -> {a}", p.activation);
                    p.activation = a;
                    Ok(detail)
                }
                "batch_norm" => {
                    p.batch_norm = !p.batch_norm;
                    Ok(format!("block {id}: batch_norm -> {}", p.batch_norm))
                }
                _ => {
                    let params = *p;
                    *op = match op {
                        BlockOp::Conv(_) => BlockOp::Residual(params),
                        _ => BlockOp::Conv(params),
                    };
                    Ok(format!("replace {before} by {}", describe(id, op)))
                }
            }
        }
        BlockOp::Pool { pool } => {
            let new = match pool {
                PoolKind::Max => PoolKind::Avg,
                PoolKind::Avg => PoolKind::Max,
            };
            let detail = format!("block {id}: pool {pool:?} -> {new:?}").to_lowercase();
            *pool = new;
            Ok(detail)
        }
        BlockOp::Dropout { rate } => {
            let r = other_value(*rate, || limits.random_rate(rng))
                .ok_or("max_dropout allows one rate only")?;
            let detail = format!("block {id}: dropout {rate} -> {r}");
            *rate = r;
            Ok(detail)
        }
    }
}

fn change_head<R: Rng + ?Sized>(parent: &Genome, limits: &SpaceLimits, rng: &mut R) -> Proposal {
    let mut child = parent.clone();
    let new_id = child.take_id();
    let detail = match &mut child {
        Genome::Image(g) => {
            let mut choices = vec!["pooling", "dropout"];
            if limits.activations.len() > 1 {
                choices.push("activation");
            }
            if g.head.hidden.len() < limits.max_hidden {
                choices.push("add");
            }
            if g.head.hidden.len() > limits.min_hidden {
                choices.push("delete");
            }
            if !g.head.hidden.is_empty() && limits.min_units < limits.max_units {
                choices.push("units");
            }
            let head = &mut g.head;
            match *choices.choose(rng).expect("non-empty") {
                "pooling" => {
                    head.pooling = match head.pooling {
                        HeadPooling::GlobalAvg => HeadPooling::Flatten,
                        HeadPooling::Flatten => HeadPooling::GlobalAvg,
                    };
                    format!("head: pooling -> {:?}", head.pooling).to_lowercase()
                }
                "dropout" => {
                    let d = other_value(head.dropout, || limits.random_head_dropout(rng))
                        .ok_or("max_dropout allows no other head dropout")?;
                    let detail = format!("head: dropout {} -> {d}", head.dropout);
                    head.dropout = d;
                    detail
                }
                "activation" => {
                    let a = other_value(head.activation, || limits.random_activation(rng))
                        .ok_or("one activation only")?;
                    let detail = format!("head: activation {} -> {a}", head.activation);
                    head.activation = a;
                    detail
                }
                "add" => {
                    let at = rng.gen_range(0..=head.hidden.len());
                    let units = limits.random_units(rng);
                    head.hidden.insert(at, Hidden { id: new_id, units });
                    format!("head: add hidden layer {new_id} ({units} units)")
                }
                "delete" => {
                    let removed = head.hidden.remove(rng.gen_range(0..head.hidden.len()));
                    format!("head: delete hidden layer {}", removed.id)
                }
                _ => {
                    let at = rng.gen_range(0..head.hidden.len());
                    let h = &mut head.hidden[at];
                    let u = other_value(h.units, || limits.random_units(rng))
                        .ok_or("no other width")?;
                    let detail = format!("head: hidden layer {} units {} -> {u}", h.id, h.units);
                    h.units = u;
                    detail
                }
            }
        }
        Genome::Table(g) => {
            let mut choices = vec!["dropout", "batch_norm"];
            if limits.activations.len() > 1 {
                choices.push("activation");
            }
            match *choices.choose(rng).expect("non-empty") {
                "dropout" => {
                    let d = other_value(g.dropout, || limits.random_head_dropout(rng))
                        .ok_or("max_dropout allows no other dropout")?;
                    let detail = format!("mlp: dropout {} -> {d}", g.dropout);
                    g.dropout = d;
                    detail
                }
                "batch_norm" => {
                    g.batch_norm = !g.batch_norm;
                    format!("mlp: batch_norm -> {}", g.batch_norm)
                }
                _ => {
                    let a = other_value(g.activation, || limits.random_activation(rng))
                        .ok_or("one activation only")?;
                    let detail = format!("mlp: activation {} -> {a}", g.activation);
                    g.activation = a;
                    detail
                }
            }
        }
    };
    Ok((child, detail))
}

/// Widen or deepen: candidate sites in random order, the first admitted child wins.
fn morph_child<R: Rng + ?Sized>(
    parent: &Genome,
    kind: MutationKind,
    ctx: &Ctx,
    rng: &mut R,
) -> Result<Mutated, MutateError> {
    let mut candidates = match kind {
        MutationKind::Widen => widen_candidates(parent, ctx.limits, rng),
        _ => deepen_candidates(parent, ctx.limits),
    };
    candidates.shuffle(rng);
    let mut last = String::from("no site to act on");
    for morph in candidates {
        let genome = match morph.genome(parent, ctx.input_shape) {
            Ok(g) => g,
            Err(e @ (MorphError::NoSite(_) | MorphError::NotPreserving(_))) => {
                last = e.to_string();
                continue;
            }
            Err(e) => {
                return Err(MutateError::NotApplicable {
                    kind,
                    reason: e.to_string(),
                })
            }
        };
        let detail = match morph {
            Morph::Widen { site, width } => format!("widen {site:?} to {width}"),
            Morph::Deepen { site, kernel } => format!("deepen {site:?} (kernel {kernel})"),
        };
        match admit(genome, kind, detail, Some(morph), ctx) {
            Ok(m) => return Ok(m),
            Err(e) => last = e.to_string(),
        }
    }
    Err(MutateError::NotApplicable { kind, reason: last })
}

/// Each widenable layer with a larger width (x1.25 to x2, at least one more, within the limits).
fn widen_candidates<R: Rng + ?Sized>(
    parent: &Genome,
    limits: &SpaceLimits,
    rng: &mut R,
) -> Vec<Morph> {
    let mut grow = |old: usize, max: usize| {
        let factor = rng.gen_range(1.25..=2.0);
        let width = ((old as f64 * factor).round() as usize)
            .max(old + 1)
            .min(max);
        (width > old).then_some(width)
    };
    let mut out = Vec::new();
    if let Genome::Image(g) = parent {
        for b in &g.blocks {
            if let BlockOp::Conv(p) = &b.op {
                if let Some(width) = grow(p.filters, limits.max_filters) {
                    let site = WidenSite::Block(b.id);
                    out.push(Morph::Widen { site, width });
                }
            }
        }
    }
    for h in parent.hidden() {
        if let Some(width) = grow(h.units, limits.max_units) {
            let site = WidenSite::Hidden(h.id);
            out.push(Morph::Widen { site, width });
        }
    }
    out
}

fn deepen_candidates(parent: &Genome, limits: &SpaceLimits) -> Vec<Morph> {
    let kernel = if limits.kernels.contains(&3) {
        3
    } else {
        limits.kernels[0]
    };
    let mut sites = Vec::new();
    if let Genome::Image(ImageGenome { blocks, .. }) = parent {
        sites.extend(blocks.iter().map(|b| DeepenSite::AfterBlock(b.id)));
        sites.push(DeepenSite::HeadStart);
    }
    sites.extend(
        parent
            .hidden()
            .iter()
            .map(|h| DeepenSite::AfterHidden(h.id)),
    );
    sites
        .into_iter()
        .map(|site| Morph::Deepen { site, kernel })
        .collect()
}

/// A value different from `current` from `draw`, or `None` after a few tries (a space with one
/// value).
fn other_value<T: PartialEq>(current: T, mut draw: impl FnMut() -> T) -> Option<T> {
    (0..32).map(|_| draw()).find(|v| *v != current)
}

fn describe(id: u32, op: &BlockOp) -> String {
    match op {
        BlockOp::Conv(p) | BlockOp::Residual(p) => format!(
            "{} block {id} ({k}x{k}, {} filters{}, {})",
            if matches!(op, BlockOp::Conv(_)) {
                "conv"
            } else {
                "residual"
            },
            p.filters,
            if p.batch_norm { ", bn" } else { "" },
            p.activation,
            k = p.kernel,
        ),
        BlockOp::Pool { pool } => format!("{pool:?} pool block {id}").to_lowercase(),
        BlockOp::Dropout { rate } => format!("dropout block {id} ({rate})"),
    }
}
