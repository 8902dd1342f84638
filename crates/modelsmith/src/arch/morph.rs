//! Weight transfer from a trained parent to its child, so children start from their parent
//! instead of from scratch.
//!
//! - **Widen** (Net2Net): a convolution's filters or a dense layer's units grow from `n` to `m`;
//!   unit `j ≥ n` copies the incoming weights (and bias, and the following batch norm's four
//!   vectors) of a random unit `g(j) < n`. Each consumer of the widened layer splits the outgoing
//!   weights of unit `u` among its replicas in random positive shares that sum to one (Net2Net's
//!   even `1/count` split is the special case), so the output is unchanged and the replicas,
//!   whose gradients differ with their shares, drift apart in training. Consumers are the next
//!   convolution (its input axis), a residual block's 1x1 projection, or the head's first dense
//!   layer; after `flatten` the dense rows are NHWC positions `p·c + channel`, so each of the
//!   `h·w` row groups is remapped the same way.
//! - **Deepen**: inserts an identity layer after a ReLU output (a ReLU of non-negative values
//!   is the identity): a convolution whose kernel is a centred identity with 'same' padding, or
//!   an identity dense layer. In an MLP with batch norm the new layer's batch norm is the
//!   identity in inference (running mean 0, variance 1, gamma `sqrt(1 + eps)`); in training its
//!   batch statistics take over, as for any new batch norm.
//! - **Inherit**: for every other mutation, the child copies each tensor whose name and shape
//!   match the parent's; the rest keep their fresh initialisation.
//!
//! Everything works on tensors by name ([`NamedTensors`], as in safetensors files), using the
//! stable layer names of [`Genome::to_spec`].

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::space::{
    block_layer, hidden_layer, needs_projection, BlockOp, ConvParams, Genome, HeadPooling, Hidden,
    ImageGenome, BN_EPS, LOGITS,
};
use crate::model::{ActivationSpec, NamedTensors};

/// A layer whose width can grow: a convolution block (by id) or a hidden dense layer (by id).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "at", content = "id", rename_all = "snake_case")]
pub enum WidenSite {
    Block(u32),
    Hidden(u32),
}

/// Where an identity layer can go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "at", content = "id", rename_all = "snake_case")]
pub enum DeepenSite {
    /// A convolution block after this image block.
    AfterBlock(u32),
    /// A hidden dense layer right after the image head's pooling.
    HeadStart,
    /// A hidden dense layer after this one.
    AfterHidden(u32),
}

/// A function-preserving operation, as recorded with a child.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Morph {
    Widen { site: WidenSite, width: usize },
    Deepen { site: DeepenSite, kernel: usize },
}

#[derive(Debug, thiserror::Error)]
pub enum MorphError {
    /// The site does not exist or is of the wrong kind.
    #[error("no such site: {0}")]
    NoSite(String),
    /// The operation would change the network's function here.
    #[error("not function-preserving here: {0}")]
    NotPreserving(String),
    /// The parent's weights do not match its genome.
    #[error("parent weights: {0}")]
    Weights(String),
}

/// A child genome and its weights, computing the same function as the parent.
#[derive(Clone, Debug)]
pub struct Morphed {
    pub genome: Genome,
    pub weights: NamedTensors,
}

/// Applies `morph` to a parent and its trained weights. The genome is exactly what
/// [`Morph::genome`] gives; the weights make it compute the parent's function.
pub fn apply<R: Rng + ?Sized>(
    parent: &Genome,
    weights: &NamedTensors,
    morph: Morph,
    input_shape: &[usize],
    rng: &mut R,
) -> Result<Morphed, MorphError> {
    match morph {
        Morph::Widen { site, width } => widen(parent, weights, site, width, rng),
        Morph::Deepen { site, kernel } => deepen(parent, weights, site, kernel, input_shape),
    }
}

impl Morph {
    /// The child's genome alone (what a mutation proposes before any weights exist).
    pub fn genome(self, parent: &Genome, input_shape: &[usize]) -> Result<Genome, MorphError> {
        match self {
            Morph::Widen { site, width } => Ok(plan_widen(parent, site, width)?.0),
            Morph::Deepen { site, kernel } => Ok(plan_deepen(parent, site, kernel, input_shape)?.0),
        }
    }
}

/// Where a widened layer's outputs are read.
enum Consumer {
    /// A convolution's weight `[out, kh, kw, in]`: remap the input axis.
    Conv(String),
    /// A dense weight `[p·c, out]` after pooling or flatten (`p` positions) or `[c, out]`.
    Dense(String),
}

/// The widened layer's tensors (remapped on their output axis) and its consumer.
struct WidenPlan {
    /// `(weight, bias, batch norm)` layer names of the producer.
    weight: String,
    /// Whether the producer's weight has its output axis first (conv) or last (dense).
    out_axis_first: bool,
    bias: String,
    bn: String,
    old: usize,
    consumer: Consumer,
}

fn plan_widen(
    parent: &Genome,
    site: WidenSite,
    width: usize,
) -> Result<(Genome, WidenPlan), MorphError> {
    let mut child = parent.clone();
    let plan = match (site, &mut child) {
        (WidenSite::Block(id), Genome::Image(g)) => {
            let i = block_index(g, id)?;
            let old = match &mut g.blocks[i].op {
                BlockOp::Conv(p) => {
                    let old = p.filters;
                    p.filters = width;
                    old
                }
                _ => {
                    return Err(MorphError::NoSite(format!(
                        "block {id} is not a convolution block"
                    )))
                }
            };
            check_growth(old, width)?;
            let consumer = block_consumer(g, i, old, width)?;
            WidenPlan {
                weight: block_layer(id, "conv"),
                out_axis_first: true,
                bias: block_layer(id, "conv"),
                bn: block_layer(id, "bn"),
                old,
                consumer,
            }
        }
        (WidenSite::Block(id), Genome::Table(_)) => {
            return Err(MorphError::NoSite(format!(
                "block {id}: an MLP has no blocks"
            )))
        }
        (WidenSite::Hidden(id), child) => {
            let hidden = child.hidden_mut();
            let i = hidden_index(hidden, id)?;
            let old = hidden[i].units;
            check_growth(old, width)?;
            hidden[i].units = width;
            let consumer = match hidden.get(i + 1) {
                Some(next) => hidden_layer(next.id, "dense"),
                None => LOGITS.to_string(),
            };
            WidenPlan {
                weight: hidden_layer(id, "dense"),
                out_axis_first: false,
                bias: hidden_layer(id, "dense"),
                bn: hidden_layer(id, "bn"),
                old,
                consumer: Consumer::Dense(consumer),
            }
        }
    };
    Ok((child, plan))
}

fn check_growth(old: usize, width: usize) -> Result<(), MorphError> {
    if width <= old {
        return Err(MorphError::NoSite(format!(
            "widen to {width} does not grow the layer (it has {old})"
        )));
    }
    Ok(())
}

/// The first layer after image block `i` that reads its channels.
fn block_consumer(
    g: &ImageGenome,
    i: usize,
    old: usize,
    new: usize,
) -> Result<Consumer, MorphError> {
    for b in &g.blocks[i + 1..] {
        match &b.op {
            BlockOp::Pool { .. } | BlockOp::Dropout { .. } => continue,
            BlockOp::Conv(_) => return Ok(Consumer::Conv(block_layer(b.id, "conv"))),
            BlockOp::Residual(p) => {
                // The shortcut adds the input itself unless a projection reads it; the
                // projection must exist both before and after widening.
                if needs_projection(false, old, p.filters)
                    && needs_projection(false, new, p.filters)
                {
                    return Ok(Consumer::Conv(block_layer(b.id, "proj")));
                }
                return Err(MorphError::NotPreserving(format!(
                    "residual block {} adds its input to its output directly at {} channels",
                    b.id, p.filters
                )));
            }
        }
    }
    Ok(Consumer::Dense(match g.head.hidden.first() {
        Some(h) => hidden_layer(h.id, "dense"),
        None => LOGITS.to_string(),
    }))
}

fn block_index(g: &ImageGenome, id: u32) -> Result<usize, MorphError> {
    g.blocks
        .iter()
        .position(|b| b.id == id)
        .ok_or_else(|| MorphError::NoSite(format!("no block with id {id}")))
}

fn hidden_index(hidden: &[Hidden], id: u32) -> Result<usize, MorphError> {
    hidden
        .iter()
        .position(|h| h.id == id)
        .ok_or_else(|| MorphError::NoSite(format!("no hidden layer with id {id}")))
}

/// Net2Net widen: see the module documentation.
pub fn widen<R: Rng + ?Sized>(
    parent: &Genome,
    weights: &NamedTensors,
    site: WidenSite,
    width: usize,
    rng: &mut R,
) -> Result<Morphed, MorphError> {
    let (genome, plan) = plan_widen(parent, site, width)?;
    let old = plan.old;
    // map[j]: which old unit new unit j copies; share[j]: its part of that unit's output.
    let map: Vec<usize> = (0..width)
        .map(|j| if j < old { j } else { rng.gen_range(0..old) })
        .collect();
    let share = random_shares(&map, old, rng);

    let mut out = weights.clone();
    let weight_name = format!("{}.weight", plan.weight);
    let (shape, values) = tensor(weights, &weight_name)?;
    let (outer, inner) = if plan.out_axis_first {
        (1, shape.iter().skip(1).product())
    } else {
        (shape[..shape.len() - 1].iter().product(), 1)
    };
    expect_axis(&weight_name, values.len(), outer, old, inner)?;
    let mut new_shape = shape.clone();
    let axis = if plan.out_axis_first {
        0
    } else {
        shape.len() - 1
    };
    new_shape[axis] = width;
    out.insert(
        weight_name,
        (new_shape, remap(values, outer, old, inner, &map, None)),
    );
    // Vectors indexed by unit: bias, and the following batch norm's parameters and statistics.
    let vectors = [
        format!("{}.bias", plan.bias),
        format!("{}.gamma", plan.bn),
        format!("{}.beta", plan.bn),
        format!("{}.running_mean", plan.bn),
        format!("{}.running_var", plan.bn),
    ];
    for name in vectors {
        if let Some((_, v)) = weights.get(&name) {
            expect_axis(&name, v.len(), 1, old, 1)?;
            out.insert(name, (vec![width], remap(v, 1, old, 1, &map, None)));
        }
    }
    match &plan.consumer {
        Consumer::Conv(layer) => {
            let name = format!("{layer}.weight");
            let (shape, values) = tensor(weights, &name)?;
            let outer: usize = shape[..shape.len() - 1].iter().product();
            expect_axis(&name, values.len(), outer, old, 1)?;
            let mut new_shape = shape.clone();
            *new_shape.last_mut().expect("4-d kernel") = width;
            let v = remap(values, outer, old, 1, &map, Some(&share));
            out.insert(name, (new_shape, v));
        }
        Consumer::Dense(layer) => {
            let name = format!("{layer}.weight");
            let (shape, values) = tensor(weights, &name)?;
            let (rows, cols) = (shape[0], shape[1]);
            if rows % old != 0 {
                return Err(MorphError::Weights(format!(
                    "'{name}' has {rows} rows, not a multiple of {old} channels"
                )));
            }
            let positions = rows / old;
            let v = remap(values, positions, old, cols, &map, Some(&share));
            out.insert(name, (vec![positions * width, cols], v));
        }
    }
    Ok(Morphed {
        genome,
        weights: out,
    })
}

/// Random positive shares per replica group, summing to one within each group (a unit that
/// was not replicated keeps exactly 1).
fn random_shares<R: Rng + ?Sized>(map: &[usize], old: usize, rng: &mut R) -> Vec<f32> {
    let raw: Vec<f64> = map.iter().map(|_| rng.gen_range(0.5..1.5)).collect();
    let mut totals = vec![0.0f64; old];
    let mut counts = vec![0usize; old];
    for (j, &u) in map.iter().enumerate() {
        totals[u] += raw[j];
        counts[u] += 1;
    }
    map.iter()
        .enumerate()
        .map(|(j, &u)| {
            if counts[u] == 1 {
                1.0
            } else {
                (raw[j] / totals[u]) as f32
            }
        })
        .collect()
}

/// `out[o, j, i] = values[o, map[j], i] · scale[j]` for a tensor viewed as `[outer, len, inner]`.
fn remap(
    values: &[f32],
    outer: usize,
    len: usize,
    inner: usize,
    map: &[usize],
    scale: Option<&[f32]>,
) -> Vec<f32> {
    let mut out = Vec::with_capacity(outer * map.len() * inner);
    for o in 0..outer {
        for (j, &src) in map.iter().enumerate() {
            let from = &values[(o * len + src) * inner..][..inner];
            match scale {
                Some(s) => out.extend(from.iter().map(|v| v * s[j])),
                None => out.extend_from_slice(from),
            }
        }
    }
    out
}

fn tensor<'a>(
    weights: &'a NamedTensors,
    name: &str,
) -> Result<(&'a Vec<usize>, &'a [f32]), MorphError> {
    weights
        .get(name)
        .map(|(s, v)| (s, v.as_slice()))
        .ok_or_else(|| MorphError::Weights(format!("tensor '{name}' is missing")))
}

fn expect_axis(
    name: &str,
    len: usize,
    outer: usize,
    axis: usize,
    inner: usize,
) -> Result<(), MorphError> {
    if len != outer * axis * inner {
        return Err(MorphError::Weights(format!(
            "'{name}' has {len} values, expected {outer}x{axis}x{inner}"
        )));
    }
    Ok(())
}

/// The identity layer a deepen inserts.
enum Identity {
    /// A convolution block `id` over `channels` with a `kernel`-sized kernel.
    Conv {
        id: u32,
        channels: usize,
        kernel: usize,
    },
    /// A hidden dense layer `id` of `units`, with or without batch norm.
    Dense { id: u32, units: usize, bn: bool },
}

fn plan_deepen(
    parent: &Genome,
    site: DeepenSite,
    kernel: usize,
    input_shape: &[usize],
) -> Result<(Genome, Identity), MorphError> {
    let mut child = parent.clone();
    let id = child.take_id();
    let identity = match (site, &mut child) {
        (DeepenSite::AfterBlock(after), Genome::Image(g)) => {
            if kernel.is_multiple_of(2) {
                return Err(MorphError::NoSite(format!(
                    "kernel {kernel} has no centre; use an odd size"
                )));
            }
            let i = block_index(g, after)?;
            let channels = relu_channels_after(g, i + 1)?;
            g.blocks.insert(
                i + 1,
                super::space::Block {
                    id,
                    op: BlockOp::Conv(ConvParams {
                        kernel,
                        filters: channels,
                        batch_norm: false,
                        activation: ActivationSpec::Relu,
                    }),
                },
            );
            Identity::Conv {
                id,
                channels,
                kernel,
            }
        }
        (DeepenSite::AfterBlock(after), Genome::Table(_)) => {
            return Err(MorphError::NoSite(format!(
                "block {after}: an MLP has no blocks"
            )))
        }
        (DeepenSite::HeadStart, Genome::Image(g)) => {
            relu_head(g.head.activation)?;
            let channels = relu_channels_after(g, g.blocks.len())?;
            let positions = match g.head.pooling {
                HeadPooling::GlobalAvg => 1,
                HeadPooling::Flatten => spatial_positions(g, input_shape),
            };
            let units = channels * positions;
            g.head.hidden.insert(0, Hidden { id, units });
            Identity::Dense {
                id,
                units,
                bn: false,
            }
        }
        (DeepenSite::HeadStart, Genome::Table(_)) => {
            return Err(MorphError::NotPreserving(
                "the MLP's inputs may be negative, which a ReLU layer would change".into(),
            ))
        }
        (DeepenSite::AfterHidden(after), child) => {
            let (activation, bn) = match child {
                Genome::Image(g) => (g.head.activation, false),
                Genome::Table(g) => (g.activation, g.batch_norm),
            };
            relu_head(activation)?;
            let hidden = child.hidden_mut();
            let i = hidden_index(hidden, after)?;
            let units = hidden[i].units;
            hidden.insert(i + 1, Hidden { id, units });
            Identity::Dense { id, units, bn }
        }
    };
    Ok((child, identity))
}

fn relu_head(activation: ActivationSpec) -> Result<(), MorphError> {
    if activation == ActivationSpec::Relu {
        Ok(())
    } else {
        Err(MorphError::NotPreserving(format!(
            "the hidden layers use {activation}; only a ReLU layer is the identity on its own outputs"
        )))
    }
}

/// The channel count of the flow entering position `at` of the block list, provided that flow
/// is a ReLU's output (possibly pooled or dropped out, which keep it non-negative).
fn relu_channels_after(g: &ImageGenome, at: usize) -> Result<usize, MorphError> {
    for b in g.blocks[..at].iter().rev() {
        match &b.op {
            BlockOp::Pool { .. } | BlockOp::Dropout { .. } => continue,
            BlockOp::Conv(p) | BlockOp::Residual(p) => {
                return if p.activation == ActivationSpec::Relu {
                    Ok(p.filters)
                } else {
                    Err(MorphError::NotPreserving(format!(
                        "block {} ends in {}, not relu",
                        b.id, p.activation
                    )))
                };
            }
        }
    }
    Err(MorphError::NotPreserving(
        "only the network input comes before this point, and it may be negative".into(),
    ))
}

/// `h·w` after the genome's pools (2x2, stride 2, valid).
fn spatial_positions(g: &ImageGenome, input_shape: &[usize]) -> usize {
    let (mut h, mut w) = (input_shape[0], input_shape[1]);
    for b in &g.blocks {
        if matches!(b.op, BlockOp::Pool { .. }) {
            h /= 2;
            w /= 2;
        }
    }
    h * w
}

/// Inserts an identity layer: see the module documentation.
pub fn deepen(
    parent: &Genome,
    weights: &NamedTensors,
    site: DeepenSite,
    kernel: usize,
    input_shape: &[usize],
) -> Result<Morphed, MorphError> {
    let (genome, identity) = plan_deepen(parent, site, kernel, input_shape)?;
    let mut out = weights.clone();
    match identity {
        Identity::Conv {
            id,
            channels: c,
            kernel: k,
        } => {
            // Kernel [out, kh, kw, in]: 1 at the centre tap from channel o to channel o.
            let mut w = vec![0.0; c * k * k * c];
            let centre = k / 2;
            for o in 0..c {
                w[((o * k + centre) * k + centre) * c + o] = 1.0;
            }
            let name = block_layer(id, "conv");
            out.insert(format!("{name}.weight"), (vec![c, k, k, c], w));
            out.insert(format!("{name}.bias"), (vec![c], vec![0.0; c]));
        }
        Identity::Dense { id, units: u, bn } => {
            let mut w = vec![0.0; u * u];
            for i in 0..u {
                w[i * u + i] = 1.0;
            }
            let name = hidden_layer(id, "dense");
            out.insert(format!("{name}.weight"), (vec![u, u], w));
            if bn {
                let bn = hidden_layer(id, "bn");
                let gamma = (1.0 + BN_EPS).sqrt();
                out.insert(format!("{bn}.gamma"), (vec![u], vec![gamma; u]));
                out.insert(format!("{bn}.beta"), (vec![u], vec![0.0; u]));
                out.insert(format!("{bn}.running_mean"), (vec![u], vec![0.0; u]));
                out.insert(format!("{bn}.running_var"), (vec![u], vec![1.0; u]));
            } else {
                out.insert(format!("{name}.bias"), (vec![u], vec![0.0; u]));
            }
        }
    }
    Ok(Morphed {
        genome,
        weights: out,
    })
}
