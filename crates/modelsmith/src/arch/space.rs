//! The architecture space: a compact, serde-able [`Genome`] that [`Genome::to_spec`] turns into
//! a [`ModelSpec`], the [`SpaceLimits`] it must respect, and a seeded random sampler.
//!
//! An image genome is a list of blocks (convolution, residual block, pooling, dropout) followed
//! by a head (global average pooling or flatten, hidden dense layers, the logits); a table
//! genome is an MLP. Every block and hidden layer carries an `id` that is never reused within a
//! lineage (`next_id` only grows), and every layer name in the spec derives from it
//! (`b7_conv`, `h9_dense`, ...). So a child keeps its parent's names for everything it did not
//! change, and weights can be inherited by name.

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::ArchError;
use crate::model::{
    build_network, ActivationSpec, LayerKind, LayerSpec, ModelSpec, OutputLayer, PaddingSpec,
};

/// An architecture in the search space.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Genome {
    Image(ImageGenome),
    Table(TableGenome),
}

/// Blocks over `[h, w, c]` images, then a head.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageGenome {
    pub blocks: Vec<Block>,
    pub head: Head,
    /// The id the next new block or hidden layer gets (ids are never reused).
    pub next_id: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Block {
    pub id: u32,
    #[serde(flatten)]
    pub op: BlockOp,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BlockOp {
    /// `conv` ('same' padding) → [batch norm] → activation.
    Conv(ConvParams),
    /// Two convolutions with a shortcut: `act(x + bn(conv(act(bn(conv(x))))))`. When the
    /// input's channels differ from `filters` (or the block reads the network input), a 1x1
    /// linear projection `p` comes first and the block computes `act(p + body(p))`.
    Residual(ConvParams),
    /// 2x2 pooling with stride 2 (halves height and width).
    Pool {
        pool: PoolKind,
    },
    Dropout {
        rate: f32,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConvParams {
    pub kernel: usize,
    pub filters: usize,
    pub batch_norm: bool,
    pub activation: ActivationSpec,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PoolKind {
    Max,
    Avg,
}

/// The image head: pooling, hidden dense layers (each followed by dropout when `dropout > 0`),
/// then the logits.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Head {
    pub pooling: HeadPooling,
    pub hidden: Vec<Hidden>,
    pub dropout: f32,
    pub activation: ActivationSpec,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HeadPooling {
    GlobalAvg,
    Flatten,
}

/// A hidden dense layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hidden {
    pub id: u32,
    pub units: usize,
}

/// An MLP: flatten, then per hidden layer `dense → [batch norm] → activation → [dropout]`, then
/// the logits.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableGenome {
    pub hidden: Vec<Hidden>,
    pub dropout: f32,
    pub batch_norm: bool,
    pub activation: ActivationSpec,
    pub next_id: u32,
}

/// The space's bounds and the constraints every genome must meet.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpaceLimits {
    /// Number of image blocks (of any kind).
    pub min_blocks: usize,
    pub max_blocks: usize,
    /// Convolution kernel sizes (odd: 'same' padding keeps the size).
    pub kernels: Vec<usize>,
    pub min_filters: usize,
    pub max_filters: usize,
    /// Hidden dense layers: in the image head, or the MLP's depth.
    pub min_hidden: usize,
    pub max_hidden: usize,
    pub min_units: usize,
    pub max_units: usize,
    /// Highest dropout rate (blocks and heads).
    pub max_dropout: f32,
    pub activations: Vec<ActivationSpec>,
    /// Learnable parameters.
    pub max_params: usize,
    /// Forward-pass floating-point operations per example (2 per multiply-accumulate).
    pub max_flops: u64,
}

impl Default for SpaceLimits {
    fn default() -> Self {
        SpaceLimits {
            min_blocks: 1,
            max_blocks: 10,
            kernels: vec![3, 5],
            min_filters: 8,
            max_filters: 128,
            min_hidden: 0,
            max_hidden: 3,
            min_units: 16,
            max_units: 512,
            max_dropout: 0.5,
            activations: vec![
                ActivationSpec::Relu,
                ActivationSpec::Elu(1.0),
                ActivationSpec::Gelu,
            ],
            max_params: 2_000_000,
            max_flops: 60_000_000,
        }
    }
}

/// What a genome costs, measured on the built network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cost {
    pub params: usize,
    /// Forward FLOPs per example.
    pub flops: u64,
}

impl SpaceLimits {
    /// Checks the limits themselves, naming the first offending field and value.
    pub fn validate(&self) -> Result<(), ArchError> {
        let bad = |msg: String| Err(ArchError::Limits(msg));
        let order = |lo: &str, l: usize, hi: &str, h: usize| {
            if l > h {
                Err(ArchError::Limits(format!(
                    "{lo} ({l}) is greater than {hi} ({h})"
                )))
            } else {
                Ok(())
            }
        };
        if self.min_blocks == 0 {
            return bad("min_blocks must be at least 1".into());
        }
        order("min_blocks", self.min_blocks, "max_blocks", self.max_blocks)?;
        if self.kernels.is_empty() {
            return bad("kernels is empty; list at least one size such as 3".into());
        }
        if let Some(k) = self
            .kernels
            .iter()
            .find(|&&k| k.is_multiple_of(2) || k > 11)
        {
            return bad(format!(
                "kernel {k} is not an odd size between 1 and 11 ('same' padding needs odd kernels)"
            ));
        }
        if self.min_filters == 0 {
            return bad("min_filters must be at least 1".into());
        }
        order(
            "min_filters",
            self.min_filters,
            "max_filters",
            self.max_filters,
        )?;
        order("min_hidden", self.min_hidden, "max_hidden", self.max_hidden)?;
        if self.min_units == 0 {
            return bad("min_units must be at least 1".into());
        }
        order("min_units", self.min_units, "max_units", self.max_units)?;
        if !(0.0..1.0).contains(&self.max_dropout) {
            return bad(format!(
                "max_dropout must be in [0, 1), got {}",
                self.max_dropout
            ));
        }
        if self.activations.is_empty() {
            return bad("activations is empty; list at least one such as relu".into());
        }
        if let Some(a) = self
            .activations
            .iter()
            .find(|a| matches!(a, ActivationSpec::Softmax))
        {
            return bad(format!(
                "activation {a} is only for the output layer; hidden layers need e.g. relu"
            ));
        }
        if self.max_params == 0 {
            return bad("max_params must be at least 1".into());
        }
        if self.max_flops == 0 {
            return bad("max_flops must be at least 1".into());
        }
        Ok(())
    }

    /// Checks that every field of `genome` lies in the space (naming the block or layer), then
    /// builds it and checks the parameter and FLOP constraints. Returns the measured cost.
    pub fn admit(
        &self,
        genome: &Genome,
        input_shape: &[usize],
        output: OutputLayer,
    ) -> Result<Cost, ArchError> {
        self.check_fields(genome, input_shape)?;
        let cost = genome.cost(input_shape, output)?;
        if cost.params > self.max_params {
            return Err(ArchError::TooLarge(format!(
                "{} parameters exceed max_params ({})",
                cost.params, self.max_params
            )));
        }
        if cost.flops > self.max_flops {
            return Err(ArchError::TooLarge(format!(
                "{} FLOPs per example exceed max_flops ({})",
                cost.flops, self.max_flops
            )));
        }
        Ok(cost)
    }

    fn check_fields(&self, genome: &Genome, input_shape: &[usize]) -> Result<(), ArchError> {
        genome.check_ids()?;
        let bad = |msg: String| Err(ArchError::Genome(msg));
        let hidden = match genome {
            Genome::Image(g) => {
                if input_shape.len() != 3 {
                    return bad(format!(
                        "an image genome needs [height, width, channels] input, got {input_shape:?}"
                    ));
                }
                let n = g.blocks.len();
                if n < self.min_blocks || n > self.max_blocks {
                    return bad(format!(
                        "{n} blocks is outside [{}, {}]",
                        self.min_blocks, self.max_blocks
                    ));
                }
                for (i, b) in g.blocks.iter().enumerate() {
                    let at = format!("block {} (id {})", i + 1, b.id);
                    match &b.op {
                        BlockOp::Conv(p) | BlockOp::Residual(p) => self.check_conv(&at, p)?,
                        BlockOp::Pool { .. } => {}
                        BlockOp::Dropout { rate } => {
                            if !(*rate > 0.0 && *rate <= self.max_dropout) {
                                return bad(format!(
                                    "{at}: dropout rate {rate} is outside (0, {}]",
                                    self.max_dropout
                                ));
                            }
                        }
                    }
                }
                self.check_head_fields("head", g.head.dropout, g.head.activation)?;
                &g.head.hidden
            }
            Genome::Table(g) => {
                self.check_head_fields("mlp", g.dropout, g.activation)?;
                &g.hidden
            }
        };
        let n = hidden.len();
        if n < self.min_hidden || n > self.max_hidden {
            return bad(format!(
                "{n} hidden dense layers is outside [{}, {}]",
                self.min_hidden, self.max_hidden
            ));
        }
        for (i, h) in hidden.iter().enumerate() {
            if h.units < self.min_units || h.units > self.max_units {
                return bad(format!(
                    "hidden layer {} (id {}): {} units is outside [{}, {}]",
                    i + 1,
                    h.id,
                    h.units,
                    self.min_units,
                    self.max_units
                ));
            }
        }
        Ok(())
    }

    fn check_conv(&self, at: &str, p: &ConvParams) -> Result<(), ArchError> {
        if !self.kernels.contains(&p.kernel) {
            return Err(ArchError::Genome(format!(
                "{at}: kernel {} is not one of {:?}",
                p.kernel, self.kernels
            )));
        }
        if p.filters < self.min_filters || p.filters > self.max_filters {
            return Err(ArchError::Genome(format!(
                "{at}: {} filters is outside [{}, {}]",
                p.filters, self.min_filters, self.max_filters
            )));
        }
        self.check_activation(at, p.activation)
    }

    fn check_head_fields(
        &self,
        at: &str,
        dropout: f32,
        activation: ActivationSpec,
    ) -> Result<(), ArchError> {
        if !(0.0..=self.max_dropout).contains(&dropout) {
            return Err(ArchError::Genome(format!(
                "{at}: dropout {dropout} is outside [0, {}]",
                self.max_dropout
            )));
        }
        self.check_activation(at, activation)
    }

    fn check_activation(&self, at: &str, a: ActivationSpec) -> Result<(), ArchError> {
        if self.activations.contains(&a) {
            Ok(())
        } else {
            let names: Vec<String> = self.activations.iter().map(|a| a.to_string()).collect();
            Err(ArchError::Genome(format!(
                "{at}: activation {a} is not one of [{}]",
                names.join(", ")
            )))
        }
    }

    /// A random genome for `input_shape` (`[h, w, c]` gives an image genome, anything else a
    /// table genome) that meets every limit, trying up to `attempts` draws.
    pub fn sample<R: Rng + ?Sized>(
        &self,
        input_shape: &[usize],
        output: OutputLayer,
        rng: &mut R,
        attempts: usize,
    ) -> Result<(Genome, Cost), ArchError> {
        self.validate()?;
        let mut last = None;
        for _ in 0..attempts.max(1) {
            let genome = if input_shape.len() == 3 {
                Genome::Image(self.sample_image(input_shape, rng))
            } else {
                Genome::Table(self.sample_table(rng))
            };
            match self.admit(&genome, input_shape, output) {
                Ok(cost) => return Ok((genome, cost)),
                Err(e) => last = Some(e),
            }
        }
        Err(ArchError::Exhausted(format!(
            "no random genome met the limits in {} attempts (last: {}); raise max_params/max_flops or lower max_filters/max_blocks",
            attempts.max(1),
            last.map(|e| e.to_string()).unwrap_or_default()
        )))
    }

    fn sample_image<R: Rng + ?Sized>(&self, input_shape: &[usize], rng: &mut R) -> ImageGenome {
        let n = rng.gen_range(self.min_blocks..=self.max_blocks);
        // Pool only while the map stays at least 2x2, so most draws build.
        let mut side = input_shape[0].min(input_shape[1]);
        let mut blocks = Vec::with_capacity(n);
        for id in 0..n as u32 {
            let roll: f32 = rng.gen();
            let op = if id == 0 || roll < 0.45 {
                BlockOp::Conv(self.random_conv(rng))
            } else if roll < 0.65 {
                BlockOp::Residual(self.random_conv(rng))
            } else if roll < 0.85 && side >= 4 {
                side /= 2;
                BlockOp::Pool {
                    pool: self.random_pool(rng),
                }
            } else if self.max_dropout > 0.0 {
                BlockOp::Dropout {
                    rate: self.random_rate(rng),
                }
            } else {
                BlockOp::Conv(self.random_conv(rng))
            };
            blocks.push(Block { id, op });
        }
        let mut next_id = n as u32;
        let hidden = self.random_hidden(rng, &mut next_id);
        ImageGenome {
            blocks,
            head: Head {
                pooling: if rng.gen_bool(0.5) {
                    HeadPooling::GlobalAvg
                } else {
                    HeadPooling::Flatten
                },
                hidden,
                dropout: self.random_head_dropout(rng),
                activation: self.random_activation(rng),
            },
            next_id,
        }
    }

    fn sample_table<R: Rng + ?Sized>(&self, rng: &mut R) -> TableGenome {
        let mut next_id = 0;
        let hidden = self.random_hidden(rng, &mut next_id);
        TableGenome {
            hidden,
            dropout: self.random_head_dropout(rng),
            batch_norm: rng.gen_bool(0.5),
            activation: self.random_activation(rng),
            next_id,
        }
    }

    fn random_hidden<R: Rng + ?Sized>(&self, rng: &mut R, next_id: &mut u32) -> Vec<Hidden> {
        let n = rng.gen_range(self.min_hidden..=self.max_hidden);
        (0..n)
            .map(|_| {
                let id = *next_id;
                *next_id += 1;
                Hidden {
                    id,
                    units: self.random_units(rng),
                }
            })
            .collect()
    }

    pub(crate) fn random_conv<R: Rng + ?Sized>(&self, rng: &mut R) -> ConvParams {
        ConvParams {
            kernel: self.kernels[rng.gen_range(0..self.kernels.len())],
            filters: self.random_filters(rng),
            batch_norm: rng.gen_bool(0.5),
            activation: self.random_activation(rng),
        }
    }

    /// Log-uniform: small and large widths are tried alike.
    pub(crate) fn random_filters<R: Rng + ?Sized>(&self, rng: &mut R) -> usize {
        log_uniform(rng, self.min_filters, self.max_filters)
    }

    pub(crate) fn random_units<R: Rng + ?Sized>(&self, rng: &mut R) -> usize {
        log_uniform(rng, self.min_units, self.max_units)
    }

    pub(crate) fn random_activation<R: Rng + ?Sized>(&self, rng: &mut R) -> ActivationSpec {
        self.activations[rng.gen_range(0..self.activations.len())]
    }

    pub(crate) fn random_pool<R: Rng + ?Sized>(&self, rng: &mut R) -> PoolKind {
        if rng.gen_bool(0.5) {
            PoolKind::Max
        } else {
            PoolKind::Avg
        }
    }

    /// A block dropout rate in (0, max_dropout], rounded to 0.05 so genomes stay readable.
    pub(crate) fn random_rate<R: Rng + ?Sized>(&self, rng: &mut R) -> f32 {
        let steps = (self.max_dropout / 0.05).floor().max(1.0) as u32;
        (rng.gen_range(1..=steps) as f32 * 0.05).min(self.max_dropout)
    }

    /// A head dropout in [0, max_dropout]: none half the time.
    pub(crate) fn random_head_dropout<R: Rng + ?Sized>(&self, rng: &mut R) -> f32 {
        if self.max_dropout == 0.0 || rng.gen_bool(0.5) {
            0.0
        } else {
            self.random_rate(rng)
        }
    }
}

fn log_uniform<R: Rng + ?Sized>(rng: &mut R, lo: usize, hi: usize) -> usize {
    if lo >= hi {
        return lo;
    }
    let (l, h) = ((lo as f64).ln(), ((hi + 1) as f64).ln());
    (rng.gen_range(l..h).exp() as usize).clamp(lo, hi)
}

/// Layer names, all derived from ids so they survive mutations elsewhere in the genome.
pub(crate) fn block_layer(id: u32, part: &str) -> String {
    format!("b{id}_{part}")
}
pub(crate) fn hidden_layer(id: u32, part: &str) -> String {
    format!("h{id}_{part}")
}
pub(crate) const LOGITS: &str = "logits";

impl Genome {
    /// The model for `input_shape`, ending in `output` (the task's output layer).
    pub fn to_spec(&self, input_shape: &[usize], output: OutputLayer) -> ModelSpec {
        let mut out = SpecWriter::default();
        match self {
            Genome::Image(g) => {
                let mut channels = input_shape.last().copied().unwrap_or(1);
                for b in &g.blocks {
                    channels = out.block(b, channels);
                }
                out.push(
                    "head_pool",
                    match g.head.pooling {
                        HeadPooling::GlobalAvg => LayerKind::GlobalAvgPool,
                        HeadPooling::Flatten => LayerKind::Flatten,
                    },
                );
                for h in &g.head.hidden {
                    out.hidden(h, false, g.head.activation, g.head.dropout);
                }
            }
            Genome::Table(g) => {
                out.push("flatten", LayerKind::Flatten);
                for h in &g.hidden {
                    out.hidden(h, g.batch_norm, g.activation, g.dropout);
                }
            }
        }
        out.push(LOGITS, dense(output.outputs, true, output.activation));
        ModelSpec {
            name: None,
            layers: out.layers,
        }
    }

    /// Parameters and FLOPs of the built network; errors name the layer that does not build.
    pub fn cost(&self, input_shape: &[usize], output: OutputLayer) -> Result<Cost, ArchError> {
        let net = build_network(
            &self.to_spec(input_shape, output),
            input_shape,
            output.outputs,
            0,
        )
        .map_err(ArchError::Build)?;
        Ok(Cost {
            params: net.param_count(),
            flops: 2 * net.macs_per_example(),
        })
    }

    /// Ids must be unique and below `next_id`, or inheritance by name would mix layers up.
    fn check_ids(&self) -> Result<(), ArchError> {
        let (ids, next): (Vec<u32>, u32) = match self {
            Genome::Image(g) => (
                g.blocks
                    .iter()
                    .map(|b| b.id)
                    .chain(g.head.hidden.iter().map(|h| h.id))
                    .collect(),
                g.next_id,
            ),
            Genome::Table(g) => (g.hidden.iter().map(|h| h.id).collect(), g.next_id),
        };
        let mut seen = std::collections::HashSet::new();
        for id in ids {
            if id >= next {
                return Err(ArchError::Genome(format!(
                    "id {id} is not below next_id ({next})"
                )));
            }
            if !seen.insert(id) {
                return Err(ArchError::Genome(format!("id {id} is used twice")));
            }
        }
        Ok(())
    }

    /// The hidden dense layers (image head or MLP).
    pub fn hidden(&self) -> &[Hidden] {
        match self {
            Genome::Image(g) => &g.head.hidden,
            Genome::Table(g) => &g.hidden,
        }
    }

    pub(crate) fn hidden_mut(&mut self) -> &mut Vec<Hidden> {
        match self {
            Genome::Image(g) => &mut g.head.hidden,
            Genome::Table(g) => &mut g.hidden,
        }
    }

    pub(crate) fn take_id(&mut self) -> u32 {
        let next = match self {
            Genome::Image(g) => &mut g.next_id,
            Genome::Table(g) => &mut g.next_id,
        };
        *next += 1;
        *next - 1
    }
}

/// Does a residual block whose input has `in_channels` (and a named predecessor or not) need a
/// 1x1 projection for its shortcut?
pub(crate) fn needs_projection(first: bool, in_channels: usize, filters: usize) -> bool {
    first || in_channels != filters
}

#[derive(Default)]
struct SpecWriter {
    layers: Vec<LayerSpec>,
}

impl SpecWriter {
    fn push(&mut self, name: &str, kind: LayerKind) {
        self.layers.push(LayerSpec::new(kind).named(name));
    }

    fn last_name(&self) -> Option<String> {
        self.layers.last().and_then(|l| l.name.clone())
    }

    /// Writes one block and returns its output channels.
    fn block(&mut self, b: &Block, channels: usize) -> usize {
        let name = |part: &str| block_layer(b.id, part);
        match &b.op {
            BlockOp::Conv(p) => {
                self.conv_bn_act(&name("conv"), &name("bn"), &name("act"), p, true);
                p.filters
            }
            BlockOp::Residual(p) => {
                let previous = self.last_name();
                let shortcut = if needs_projection(previous.is_none(), channels, p.filters) {
                    self.push(
                        &name("proj"),
                        conv(p.filters, 1, true, ActivationSpec::Linear),
                    );
                    name("proj")
                } else {
                    previous.expect("a named predecessor")
                };
                self.conv_bn_act(&name("conv1"), &name("bn1"), &name("act1"), p, true);
                self.conv_bn_act(&name("conv2"), &name("bn2"), "", p, false);
                self.push(&name("add"), LayerKind::Add { with: shortcut });
                self.push(
                    &name("act"),
                    LayerKind::Activation {
                        activation: p.activation,
                    },
                );
                p.filters
            }
            BlockOp::Pool { pool: kind } => {
                let (pool, stride, padding) = (2, None, PaddingSpec::Valid);
                let layer = match kind {
                    PoolKind::Max => LayerKind::MaxPool2d {
                        pool,
                        stride,
                        padding,
                    },
                    PoolKind::Avg => LayerKind::AvgPool2d {
                        pool,
                        stride,
                        padding,
                    },
                };
                self.push(&name("pool"), layer);
                channels
            }
            BlockOp::Dropout { rate } => {
                self.push(&name("drop"), LayerKind::Dropout { rate: *rate });
                channels
            }
        }
    }

    /// `conv → [bn → act]`, or the activation fused into the convolution without batch norm.
    /// `activate = false` leaves the output linear (the residual body's second convolution).
    fn conv_bn_act(
        &mut self,
        conv_name: &str,
        bn: &str,
        act: &str,
        p: &ConvParams,
        activate: bool,
    ) {
        let fused = if activate && !p.batch_norm {
            p.activation
        } else {
            ActivationSpec::Linear
        };
        self.push(conv_name, conv(p.filters, p.kernel, !p.batch_norm, fused));
        if p.batch_norm {
            self.push(bn, batch_norm());
            if activate {
                self.push(
                    act,
                    LayerKind::Activation {
                        activation: p.activation,
                    },
                );
            }
        }
    }

    fn hidden(&mut self, h: &Hidden, bn: bool, activation: ActivationSpec, dropout: f32) {
        let name = |part: &str| hidden_layer(h.id, part);
        let fused = if bn {
            ActivationSpec::Linear
        } else {
            activation
        };
        self.push(&name("dense"), dense(h.units, !bn, fused));
        if bn {
            self.push(&name("bn"), batch_norm());
            self.push(&name("act"), LayerKind::Activation { activation });
        }
        if dropout > 0.0 {
            self.push(&name("drop"), LayerKind::Dropout { rate: dropout });
        }
    }
}

fn conv(filters: usize, kernel: usize, bias: bool, activation: ActivationSpec) -> LayerKind {
    LayerKind::Conv2d {
        filters,
        kernel,
        stride: 1,
        padding: PaddingSpec::Same,
        bias,
        activation,
    }
}

fn dense(units: usize, bias: bool, activation: ActivationSpec) -> LayerKind {
    LayerKind::Dense {
        units,
        bias,
        activation,
    }
}

/// Keras's defaults, as the spec's.
pub(crate) const BN_EPS: f32 = 1e-3;

fn batch_norm() -> LayerKind {
    LayerKind::BatchNorm {
        momentum: 0.99,
        eps: BN_EPS,
    }
}
