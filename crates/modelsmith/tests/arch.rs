//! Architecture space and mutations on the real bundled digits: every mutation yields a genome
//! that builds and meets the limits; widen and deepen on trained networks leave the outputs on
//! real test digits unchanged; inheritance copies exactly the matching tensors; bad limits and
//! genomes are rejected with messages that name the offending value.

use std::collections::HashMap;

use std::sync::Arc;

use modelsmith::arch::evolve::{evaluated, GENOME_ATTR, MUTATION_ATTR, PARENT_ATTR};
use modelsmith::arch::morph::{self, DeepenSite, Morph, MorphError, WidenSite};
use modelsmith::arch::{ensemble, propose, EvolutionConfig};
use modelsmith::arch::{
    mutate, mutate_random, ArchError, Block, BlockOp, ConvParams, Genome, Head, HeadPooling,
    Hidden, ImageGenome, MutateError, MutationKind, PoolKind, SpaceLimits, TableGenome, MUTATIONS,
};
use modelsmith::data::{load, Dataset, LoadOptions, LoadedData};
use modelsmith::model::{
    build_network, inherit, network_tensors, ActivationSpec, NamedTensors, OutputLayer,
};
use modelsmith::search::{
    Direction, OptimizeOptions, Study, StudyOptions, Trial, TrialError, TrialState,
};
use modelsmith::store::MemoryStorage;
use modelsmith::train::{train_with, Silent, TrainConfig, TrainOptions};
use modelsmith_engine::{softmax_cross_entropy, Mode, Network, Optimizer, OptimizerConfig, Tensor};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

const DIGITS: [usize; 3] = [28, 28, 1];
/// The digits' ten classes, as the model's output layer.
const HEAD: OutputLayer = OutputLayer {
    outputs: 10,
    activation: ActivationSpec::Softmax,
};

fn conv(kernel: usize, filters: usize, batch_norm: bool) -> ConvParams {
    ConvParams {
        kernel,
        filters,
        batch_norm,
        activation: ActivationSpec::Relu,
    }
}

fn block(id: u32, op: BlockOp) -> Block {
    Block { id, op }
}

/// A small CNN with every kind of block and a flatten head, all ReLU so every site can deepen.
fn mixed_cnn() -> Genome {
    Genome::Image(ImageGenome {
        blocks: vec![
            block(0, BlockOp::Conv(conv(3, 12, true))),
            block(
                1,
                BlockOp::Pool {
                    pool: PoolKind::Max,
                },
            ),
            block(2, BlockOp::Conv(conv(3, 16, false))),
            // 16 -> 24 channels: the shortcut goes through a 1x1 projection.
            block(3, BlockOp::Residual(conv(3, 24, true))),
            block(
                4,
                BlockOp::Pool {
                    pool: PoolKind::Avg,
                },
            ),
            block(5, BlockOp::Dropout { rate: 0.1 }),
            block(6, BlockOp::Conv(conv(5, 16, false))),
            // 16 -> 16: the shortcut adds the input directly.
            block(7, BlockOp::Residual(conv(3, 16, false))),
        ],
        head: Head {
            pooling: HeadPooling::Flatten,
            hidden: vec![Hidden { id: 8, units: 32 }],
            dropout: 0.2,
            activation: ActivationSpec::Relu,
        },
        next_id: 9,
    })
}

/// Global average pooling straight into the logits.
fn gap_cnn() -> Genome {
    Genome::Image(ImageGenome {
        blocks: vec![
            block(0, BlockOp::Conv(conv(3, 8, false))),
            block(
                1,
                BlockOp::Pool {
                    pool: PoolKind::Max,
                },
            ),
            block(2, BlockOp::Conv(conv(3, 12, true))),
        ],
        head: Head {
            pooling: HeadPooling::GlobalAvg,
            hidden: vec![],
            dropout: 0.0,
            activation: ActivationSpec::Relu,
        },
        next_id: 3,
    })
}

/// An MLP with batch norm (dense layers without bias) and dropout.
fn mlp() -> Genome {
    Genome::Table(TableGenome {
        hidden: vec![Hidden { id: 0, units: 48 }, Hidden { id: 1, units: 24 }],
        dropout: 0.1,
        batch_norm: true,
        activation: ActivationSpec::Relu,
        next_id: 2,
    })
}

struct Digits {
    train: Dataset,
    test: Dataset,
}

fn digits() -> Digits {
    let data = load("digits", &LoadOptions::default()).unwrap();
    Digits {
        train: data.train.subset(&(0..4000).collect::<Vec<_>>()),
        test: data.test.subset(&(0..200).collect::<Vec<_>>()),
    }
}

fn batch_tensor(set: &Dataset, indices: &[usize]) -> (Tensor, Vec<u32>) {
    let (mut x, mut y) = (Vec::new(), Vec::new());
    set.gather(indices, &mut x, &mut y);
    let mut shape = vec![indices.len()];
    shape.extend_from_slice(&set.shape);
    (Tensor::from_vec(&shape, x).unwrap(), y)
}

/// Builds `genome` and trains it with Adam for `steps` batches of 32, so weights, biases and
/// batch-norm statistics are all far from their initial values.
fn trained(genome: &Genome, data: &Digits, steps: usize) -> (Network, f32) {
    let spec = genome.to_spec(&DIGITS, HEAD);
    let mut net = build_network(&spec, &DIGITS, HEAD.outputs, 7).unwrap();
    let mut optimizer = Optimizer::new(OptimizerConfig::adam());
    let mut order: Vec<usize> = (0..data.train.len()).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(1));
    let mut dlogits = Tensor::default();
    let mut loss = f32::NAN;
    for (step, chunk) in order.chunks_exact(32).cycle().take(steps).enumerate() {
        let (x, y) = batch_tensor(&data.train, chunk);
        net.zero_grads();
        net.set_training_step(step as u64);
        let logits = net.forward(&x, Mode::Train).clone();
        loss = softmax_cross_entropy(&mut dlogits, &logits, &y);
        net.backward(&dlogits);
        optimizer.step(&mut net.param_refs_mut(), 2e-3).unwrap();
    }
    (net, loss)
}

fn test_logits(net: &mut Network, data: &Digits) -> Vec<f32> {
    let (x, _) = batch_tensor(&data.test, &(0..data.test.len()).collect::<Vec<_>>());
    net.forward(&x, Mode::Eval).data.clone()
}

/// Builds the morphed child, loads its weights (all of them must come from the morph) and
/// returns the largest output difference from the parent on the test digits.
fn morph_difference(
    parent: &Genome,
    weights: &NamedTensors,
    expected: &[f32],
    morph: Morph,
    data: &Digits,
) -> f32 {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let child = morph::apply(parent, weights, morph, &DIGITS, &mut rng)
        .unwrap_or_else(|e| panic!("{morph:?}: {e}"));
    assert_eq!(child.genome, morph.genome(parent, &DIGITS).unwrap());
    assert_ne!(&child.genome, parent);
    let spec = child.genome.to_spec(&DIGITS, HEAD);
    let mut net = build_network(&spec, &DIGITS, HEAD.outputs, 99).unwrap();
    let report = inherit(&mut net, &child.weights);
    assert!(
        report.fresh.is_empty(),
        "{morph:?}: tensors not provided by the morph: {:?}",
        report.fresh
    );
    let diff = largest_difference(&test_logits(&mut net, data), expected);
    eprintln!("{morph:?}: largest output change {diff:e}");
    // Control: the same child inheriting by name alone (new units and layers fresh) does
    // change the outputs, so the bound above measures the morph, not a blind spot.
    let mut naive = build_network(&spec, &DIGITS, HEAD.outputs, 99).unwrap();
    inherit(&mut naive, weights);
    let control = largest_difference(&test_logits(&mut naive, data), expected);
    assert!(
        control > 1e-2,
        "{morph:?}: inheritance alone changed only {control}"
    );
    diff
}

fn largest_difference(got: &[f32], expected: &[f32]) -> f32 {
    assert_eq!(got.len(), expected.len());
    got.iter()
        .zip(expected)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max)
}

fn max_abs(v: &[f32]) -> f32 {
    v.iter().fold(0.0, |m, x| m.max(x.abs()))
}

#[test]
fn widen_and_deepen_preserve_a_trained_cnn() {
    let data = digits();
    let genome = mixed_cnn();
    let (mut net, loss) = trained(&genome, &data, 250);
    assert!(loss < 0.8, "the CNN did not learn: loss {loss}");
    let weights = network_tensors(&net);
    let expected = test_logits(&mut net, &data);
    assert!(
        max_abs(&expected) > 1.0,
        "logits too small to test anything"
    );
    let morphs = [
        // Conv with batch norm, read by a convolution.
        Morph::Widen {
            site: WidenSite::Block(0),
            width: 20,
        },
        // Read by a residual block's projection (16 -> 21; the block has 24 filters).
        Morph::Widen {
            site: WidenSite::Block(2),
            width: 21,
        },
        // Read by the first dense layer through flatten (NHWC rows).
        Morph::Widen {
            site: WidenSite::Block(6),
            width: 20,
        },
        Morph::Widen {
            site: WidenSite::Hidden(8),
            width: 50,
        },
        Morph::Deepen {
            site: DeepenSite::AfterBlock(0),
            kernel: 3,
        },
        Morph::Deepen {
            site: DeepenSite::AfterBlock(4),
            kernel: 5,
        },
        Morph::Deepen {
            site: DeepenSite::AfterBlock(7),
            kernel: 3,
        },
        Morph::Deepen {
            site: DeepenSite::HeadStart,
            kernel: 3,
        },
        Morph::Deepen {
            site: DeepenSite::AfterHidden(8),
            kernel: 3,
        },
    ];
    for morph in morphs {
        if matches!(
            morph,
            Morph::Widen {
                site: WidenSite::Block(6),
                ..
            }
        ) {
            // Block 6 feeds residual block 7, which adds its input directly: not preserving.
            let mut rng = ChaCha8Rng::seed_from_u64(0);
            let err = morph::apply(&genome, &weights, morph, &DIGITS, &mut rng).unwrap_err();
            assert!(
                matches!(err, MorphError::NotPreserving(_)),
                "widen before an identity shortcut: {err}"
            );
            continue;
        }
        let diff = morph_difference(&genome, &weights, &expected, morph, &data);
        assert!(diff < 1e-4, "{morph:?} changed the outputs by {diff}");
    }
}

#[test]
fn widen_through_flatten_and_global_pooling_preserves_outputs() {
    let data = digits();
    // Flatten head fed by a conv (no residual after it).
    let flat = Genome::Image(ImageGenome {
        blocks: vec![
            block(0, BlockOp::Conv(conv(3, 8, true))),
            block(
                1,
                BlockOp::Pool {
                    pool: PoolKind::Max,
                },
            ),
            block(2, BlockOp::Conv(conv(3, 10, false))),
            block(
                3,
                BlockOp::Pool {
                    pool: PoolKind::Max,
                },
            ),
        ],
        head: Head {
            pooling: HeadPooling::Flatten,
            hidden: vec![],
            dropout: 0.0,
            activation: ActivationSpec::Relu,
        },
        next_id: 4,
    });
    for genome in [flat, gap_cnn()] {
        let (mut net, _) = trained(&genome, &data, 150);
        let weights = network_tensors(&net);
        let expected = test_logits(&mut net, &data);
        let largest = max_abs(&expected);
        assert!(
            largest > 0.25,
            "logits too small to test anything: {largest}"
        );
        for morph in [
            Morph::Widen {
                site: WidenSite::Block(2),
                width: 17,
            },
            Morph::Widen {
                site: WidenSite::Block(0),
                width: 13,
            },
            Morph::Deepen {
                site: DeepenSite::HeadStart,
                kernel: 3,
            },
        ] {
            let diff = morph_difference(&genome, &weights, &expected, morph, &data);
            assert!(diff < 1e-4, "{morph:?} changed the outputs by {diff}");
        }
    }
}

#[test]
fn widen_and_deepen_preserve_a_trained_mlp_with_batch_norm() {
    let data = digits();
    let genome = mlp();
    let (mut net, loss) = trained(&genome, &data, 200);
    assert!(loss < 0.8, "the MLP did not learn: loss {loss}");
    let weights = network_tensors(&net);
    let expected = test_logits(&mut net, &data);
    for morph in [
        Morph::Widen {
            site: WidenSite::Hidden(0),
            width: 70,
        },
        Morph::Widen {
            site: WidenSite::Hidden(1),
            width: 25,
        },
        Morph::Deepen {
            site: DeepenSite::AfterHidden(0),
            kernel: 3,
        },
        Morph::Deepen {
            site: DeepenSite::AfterHidden(1),
            kernel: 3,
        },
    ] {
        let diff = morph_difference(&genome, &weights, &expected, morph, &data);
        assert!(diff < 1e-4, "{morph:?} changed the outputs by {diff}");
    }
    // The MLP's raw inputs may be negative: a ReLU identity there is refused.
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let head_start = Morph::Deepen {
        site: DeepenSite::HeadStart,
        kernel: 3,
    };
    assert!(matches!(
        morph::apply(&genome, &weights, head_start, &DIGITS, &mut rng),
        Err(MorphError::NotPreserving(_))
    ));
}

#[test]
fn morphs_refuse_sites_that_would_change_the_function() {
    let weights = HashMap::new();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut elu = gap_cnn();
    if let Genome::Image(g) = &mut elu {
        if let BlockOp::Conv(p) = &mut g.blocks[2].op {
            p.activation = ActivationSpec::Elu(1.0);
        }
    }
    let cases = [
        (
            elu.clone(),
            Morph::Deepen {
                site: DeepenSite::AfterBlock(2),
                kernel: 3,
            },
            "ends in elu",
        ),
        (
            gap_cnn(),
            Morph::Widen {
                site: WidenSite::Block(1),
                width: 20,
            },
            "not a convolution block",
        ),
        (
            gap_cnn(),
            Morph::Widen {
                site: WidenSite::Block(2),
                width: 12,
            },
            "does not grow",
        ),
        (
            gap_cnn(),
            Morph::Widen {
                site: WidenSite::Hidden(42),
                width: 12,
            },
            "no hidden layer with id 42",
        ),
    ];
    for (genome, morph, expected) in cases {
        let err = morph::apply(&genome, &weights, morph, &DIGITS, &mut rng).unwrap_err();
        assert!(err.to_string().contains(expected), "{morph:?}: {err}");
    }
    // Missing tensors are reported by name, not a panic.
    let err = morph::apply(
        &gap_cnn(),
        &weights,
        Morph::Widen {
            site: WidenSite::Block(2),
            width: 20,
        },
        &DIGITS,
        &mut rng,
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("'b2_conv.weight' is missing"),
        "{err}"
    );
}

#[test]
fn inherit_copies_exactly_the_matching_tensors() {
    let parent = mixed_cnn();
    let parent_net =
        build_network(&parent.to_spec(&DIGITS, HEAD), &DIGITS, HEAD.outputs, 1).unwrap();
    let parent_weights = network_tensors(&parent_net);
    // Child: block 2's kernel 3 -> 5 (its weight changes shape, its bias does not), block 0
    // deleted (so block 2 reads the image's single channel), and a new conv block 9 at the end.
    let mut child = parent.clone();
    if let Genome::Image(g) = &mut child {
        if let BlockOp::Conv(p) = &mut g.blocks[2].op {
            p.kernel = 5;
        }
        g.blocks.remove(0);
        g.blocks.push(block(9, BlockOp::Conv(conv(3, 16, true))));
        g.next_id = 10;
    }
    let spec = child.to_spec(&DIGITS, HEAD);
    let fresh_net = build_network(&spec, &DIGITS, HEAD.outputs, 2).unwrap();
    let fresh_weights = network_tensors(&fresh_net);
    let mut net = build_network(&spec, &DIGITS, HEAD.outputs, 2).unwrap();
    let report = inherit(&mut net, &parent_weights);
    let got = network_tensors(&net);
    for (name, (shape, values)) in &got {
        let matching = parent_weights.get(name).is_some_and(|(s, _)| s == shape);
        if matching {
            assert!(report.copied.contains(name), "{name} should be copied");
            assert_eq!(values, &parent_weights[name].1, "{name} not copied exactly");
        } else {
            assert!(report.fresh.contains(name), "{name} should be fresh");
            assert_eq!(values, &fresh_weights[name].1, "{name} was overwritten");
        }
    }
    assert_eq!(report.copied.len() + report.fresh.len(), got.len());
    // Spot checks of the expected split.
    for name in [
        "b2_conv.bias",
        "b3_conv1.weight",
        "b3_bn2.running_var",
        "h8_dense.bias",
    ] {
        assert!(report.copied.contains(name), "{name} not inherited");
    }
    for name in ["b2_conv.weight", "b9_conv.weight", "b9_bn.gamma"] {
        assert!(report.fresh.contains(name), "{name} should be fresh");
    }
}

/// Every genome the tests see must build, respect the limits, and survive JSON.
fn assert_valid(genome: &Genome, limits: &SpaceLimits, shape: &[usize], context: &str) {
    let cost = limits
        .admit(genome, shape, HEAD)
        .unwrap_or_else(|e| panic!("{context}: {e}\n{genome:?}"));
    let net = build_network(&genome.to_spec(shape, HEAD), shape, HEAD.outputs, 0)
        .unwrap_or_else(|e| panic!("{context}: {e}"));
    assert_eq!(net.param_count(), cost.params);
    assert!(cost.params <= limits.max_params && cost.flops <= limits.max_flops);
    let json = serde_json::to_string(genome).unwrap();
    let back: Genome = serde_json::from_str(&json).unwrap();
    assert_eq!(&back, genome, "{context}: JSON round trip");
}

#[test]
fn every_mutation_yields_a_valid_genome_for_many_seeds() {
    let limits = SpaceLimits {
        max_flops: 20_000_000,
        max_params: 500_000,
        ..SpaceLimits::default()
    };
    let mut successes: HashMap<MutationKind, usize> = HashMap::new();
    for (shape, seeds) in [(&DIGITS[..], 0..30u64), (&[20usize][..], 0..15u64)] {
        for seed in seeds {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let (genome, _) = limits.sample(shape, HEAD, &mut rng, 200).unwrap();
            assert_valid(&genome, &limits, shape, &format!("seed {seed} sample"));
            for &kind in MUTATIONS {
                match mutate(&genome, kind, &limits, shape, HEAD, &mut rng) {
                    Ok(m) => {
                        assert_eq!(m.change.kind, kind);
                        assert_ne!(m.genome, genome, "{kind} changed nothing");
                        assert_valid(&m.genome, &limits, shape, &format!("seed {seed} {kind}"));
                        let is_morph = matches!(kind, MutationKind::Widen | MutationKind::Deepen);
                        assert_eq!(m.change.morph.is_some(), is_morph);
                        *successes.entry(kind).or_default() += 1;
                    }
                    Err(MutateError::NotApplicable { .. } | MutateError::Rejected { .. }) => {}
                    Err(e) => panic!("seed {seed} {kind}: {e}"),
                }
            }
            // A lineage: each child is the next parent.
            let mut current = genome;
            for step in 0..8 {
                let m = mutate_random(&current, &limits, shape, HEAD, &mut rng, 50)
                    .unwrap_or_else(|e| panic!("seed {seed} step {step}: {e}"));
                assert_valid(
                    &m.genome,
                    &limits,
                    shape,
                    &format!("seed {seed} step {step}"),
                );
                current = m.genome;
            }
        }
    }
    for &kind in MUTATIONS {
        assert!(
            successes.get(&kind).copied().unwrap_or(0) >= 5,
            "{kind} rarely applies: {successes:?}"
        );
    }
}

#[test]
fn sampling_is_deterministic_per_seed() {
    let limits = SpaceLimits::default();
    let draw = |seed| {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        limits.sample(&DIGITS, HEAD, &mut rng, 200).unwrap().0
    };
    assert_eq!(draw(3), draw(3));
    assert_ne!(draw(3), draw(4));
}

#[test]
fn bad_limits_are_rejected_naming_the_field() {
    let cases: Vec<(SpaceLimits, &str)> = vec![
        (
            SpaceLimits {
                min_filters: 64,
                max_filters: 32,
                ..SpaceLimits::default()
            },
            "min_filters (64) is greater than max_filters (32)",
        ),
        (
            SpaceLimits {
                min_blocks: 0,
                ..SpaceLimits::default()
            },
            "min_blocks must be at least 1",
        ),
        (
            SpaceLimits {
                kernels: vec![3, 4],
                ..SpaceLimits::default()
            },
            "kernel 4 is not an odd size",
        ),
        (
            SpaceLimits {
                max_dropout: 1.0,
                ..SpaceLimits::default()
            },
            "max_dropout must be in [0, 1), got 1",
        ),
        (
            SpaceLimits {
                activations: vec![ActivationSpec::Softmax],
                ..SpaceLimits::default()
            },
            "activation softmax is only for the output layer",
        ),
        (
            SpaceLimits {
                min_hidden: 4,
                max_hidden: 2,
                ..SpaceLimits::default()
            },
            "min_hidden (4) is greater than max_hidden (2)",
        ),
        (
            SpaceLimits {
                max_params: 0,
                ..SpaceLimits::default()
            },
            "max_params must be at least 1",
        ),
    ];
    for (limits, expected) in cases {
        let err = limits.validate().unwrap_err();
        assert!(matches!(err, ArchError::Limits(_)));
        let message = err.to_string();
        assert!(message.starts_with("architecture limits: "), "{message}");
        assert!(message.contains(expected), "{message} lacks {expected:?}");
        assert!(!message.contains('\n'));
        // Sampling checks the limits first.
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        assert!(limits.sample(&DIGITS, HEAD, &mut rng, 5).is_err());
    }
    // Unknown fields in a limits file are an error, not silently ignored.
    let err = toml::from_str::<SpaceLimits>("max_filter = 64").unwrap_err();
    assert!(err.to_string().contains("max_filter"), "{err}");
}

#[test]
fn genomes_outside_the_limits_are_rejected_naming_the_value() {
    let limits = SpaceLimits::default();
    let with_block = |op: BlockOp| {
        let mut g = gap_cnn();
        if let Genome::Image(i) = &mut g {
            i.blocks[2].op = op;
        }
        g
    };
    let cases = [
        (
            with_block(BlockOp::Conv(conv(3, 300, false))),
            "block 3 (id 2): 300 filters is outside [8, 128]",
        ),
        (
            with_block(BlockOp::Conv(conv(7, 16, false))),
            "block 3 (id 2): kernel 7 is not one of [3, 5]",
        ),
        (
            with_block(BlockOp::Dropout { rate: 0.9 }),
            "block 3 (id 2): dropout rate 0.9 is outside (0, 0.5]",
        ),
        (
            with_block(BlockOp::Conv(ConvParams {
                activation: ActivationSpec::Tanh,
                ..conv(3, 16, false)
            })),
            "activation tanh is not one of [relu, elu(1), gelu]",
        ),
    ];
    for (genome, expected) in cases {
        let err = limits.admit(&genome, &DIGITS, HEAD).unwrap_err();
        assert!(err.to_string().contains(expected), "{err}");
    }
    // Constraints are measured on the built network.
    let tight = SpaceLimits {
        max_params: 1_000,
        ..SpaceLimits::default()
    };
    let err = tight.admit(&gap_cnn(), &DIGITS, HEAD).unwrap_err();
    assert!(matches!(err, ArchError::TooLarge(_)), "{err}");
    assert!(
        err.to_string().contains("exceed max_params (1000)"),
        "{err}"
    );
    let tight = SpaceLimits {
        max_flops: 100_000,
        ..SpaceLimits::default()
    };
    let err = tight.admit(&gap_cnn(), &DIGITS, HEAD).unwrap_err();
    assert!(
        err.to_string().contains("exceed max_flops (100000)"),
        "{err}"
    );
    // Pooling 28x28 five times leaves nothing: the build error names the layer (the fifth
    // pool, b6, meets a 1x1 map).
    let mut pooled = gap_cnn();
    if let Genome::Image(g) = &mut pooled {
        for id in 3..8 {
            g.blocks.push(block(
                id,
                BlockOp::Pool {
                    pool: PoolKind::Max,
                },
            ));
        }
        g.next_id = 8;
    }
    let err = limits.admit(&pooled, &DIGITS, HEAD).unwrap_err();
    assert!(matches!(err, ArchError::Build(_)), "{err}");
    assert!(err.to_string().contains("'b6_pool'"), "{err}");
    // Duplicate ids would make inheritance by name mix layers up.
    let mut duplicate = gap_cnn();
    if let Genome::Image(g) = &mut duplicate {
        g.blocks[1].id = 0;
    }
    let err = limits.admit(&duplicate, &DIGITS, HEAD).unwrap_err();
    assert!(err.to_string().contains("id 0 is used twice"), "{err}");
}

#[test]
fn spec_names_follow_the_ids() {
    let spec = mixed_cnn().to_spec(&DIGITS, HEAD);
    let names: Vec<&str> = spec
        .layers
        .iter()
        .map(|l| l.name.as_deref().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "b0_conv",
            "b0_bn",
            "b0_act",
            "b1_pool",
            "b2_conv",
            "b3_proj",
            "b3_conv1",
            "b3_bn1",
            "b3_act1",
            "b3_conv2",
            "b3_bn2",
            "b3_add",
            "b3_act",
            "b4_pool",
            "b5_drop",
            "b6_conv",
            "b7_conv1",
            "b7_conv2",
            "b7_add",
            "b7_act",
            "head_pool",
            "h8_dense",
            "h8_drop",
            "logits",
        ]
    );
    // Block 7's shortcut is block 6's output itself.
    let add = spec
        .layers
        .iter()
        .find(|l| l.name.as_deref() == Some("b7_add"));
    assert_eq!(
        add.unwrap().kind,
        modelsmith::model::LayerKind::Add {
            with: "b6_conv".into()
        }
    );
}

#[test]
fn aging_evolution_mutates_tournament_winners_and_resumes_from_storage() {
    let all = load("digits", &LoadOptions::default()).unwrap();
    let data = LoadedData {
        train: all.train.subset(&(0..600).collect::<Vec<_>>()),
        test: all.test.subset(&(0..50).collect::<Vec<_>>()),
        info: all.info,
        task_choice: None,
    };
    let dir = tempfile::tempdir().unwrap();
    let config = EvolutionConfig {
        population: 2,
        tournament: 2,
        mutation_attempts: 50,
        limits: SpaceLimits {
            max_blocks: 3,
            min_filters: 4,
            max_filters: 12,
            min_units: 8,
            max_units: 32,
            max_hidden: 1,
            max_params: 100_000,
            max_flops: 3_000_000,
            ..SpaceLimits::default()
        },
    };
    const SEED: u64 = 11;
    // The objective a search runs: propose from storage, record, train one short epoch, and
    // return the validation loss (continuous, so tournaments have no ties).
    let objective = |study: &Study, trial: &mut Trial| -> Result<f64, TrialError> {
        let trials = study.trials()?;
        let number = trial.number();
        let proposal = propose(
            &config,
            &trials,
            Direction::Minimize,
            SEED,
            number,
            &DIGITS,
            HEAD,
        )?;
        proposal.record(trial)?;
        let spec = dir.path().join(format!("trial-{number}.json"));
        let json = serde_json::to_string(&proposal.genome.to_spec(&DIGITS, HEAD)).unwrap();
        std::fs::write(&spec, json).unwrap();
        let train = TrainConfig {
            model: spec.display().to_string(),
            epochs: 1,
            seed: trial.seed(),
            ..TrainConfig::default()
        };
        let options = TrainOptions {
            out: None,
            resume: false,
            checkpoints: false,
            evaluate_test: false,
            initial: None,
            validation_fold: None,
        };
        let report =
            train_with(&train, &data, &options, &mut Silent).map_err(TrialError::failed)?;
        Ok(report.val_loss.expect("a validation split") as f64)
    };
    let storage = Arc::new(MemoryStorage::new());
    let open = || {
        let options = StudyOptions {
            seed: SEED,
            ..StudyOptions::default()
        };
        Study::new(storage.clone(), "evolution", Direction::Minimize, options).unwrap()
    };
    // Three trials, then a "restart": a new Study on the same storage continues to four.
    let first = open();
    first
        .optimize(&OptimizeOptions::trials(3), |t| objective(&first, t))
        .unwrap();
    let second = open();
    second
        .optimize(&OptimizeOptions::trials(4), |t| objective(&second, t))
        .unwrap();

    let trials = second.trials().unwrap();
    assert_eq!(trials.len(), 4);
    assert!(
        trials.iter().all(|t| t.state == TrialState::Complete),
        "{trials:?}"
    );
    for t in &trials {
        let genome: Genome = serde_json::from_value(t.attrs[GENOME_ATTR].clone()).unwrap();
        config.limits.admit(&genome, &DIGITS, HEAD).unwrap();
        // Proposals depend only on storage: re-proposing from the trials before this one
        // gives the stored genome.
        let before = &trials[..t.number as usize];
        let again = propose(
            &config,
            before,
            Direction::Minimize,
            SEED,
            t.number,
            &DIGITS,
            HEAD,
        )
        .unwrap();
        assert_eq!(again.genome, genome, "trial {}", t.number);
        if t.number < 2 {
            assert!(
                !t.attrs.contains_key(PARENT_ATTR),
                "initial population is random"
            );
            continue;
        }
        // The tournament covers the whole population here: the parent is the best of the last
        // two complete trials, and the child is one mutation away from it.
        let population = evaluated(before);
        let population = &population[population.len() - 2..];
        let best = population
            .iter()
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap();
        assert_eq!(
            t.attrs[PARENT_ATTR].as_u64(),
            Some(best.0),
            "trial {}",
            t.number
        );
        assert_ne!(genome, best.2);
        assert!(t.attrs.contains_key(MUTATION_ATTR));
    }
}

#[test]
fn evolution_config_is_checked() {
    let bad = EvolutionConfig {
        population: 3,
        tournament: 5,
        ..EvolutionConfig::default()
    };
    let err = propose(&bad, &[], Direction::Minimize, 0, 0, &DIGITS, HEAD).unwrap_err();
    assert!(
        err.to_string()
            .contains("tournament (5) must be between 1 and population (3)"),
        "{err}"
    );
}

#[test]
fn an_ensemble_network_outputs_the_mean_of_its_members() {
    let data = digits();
    let genome = mlp();
    let Genome::Table(table) = &genome else {
        unreachable!()
    };
    // Three differently trained members, with batch norm whose statistics moved.
    let members: Vec<NamedTensors> = [60, 120, 180]
        .iter()
        .map(|&steps| network_tensors(&trained(&genome, &data, steps).0))
        .collect();
    // Their pre-softmax outputs: the same weights under a linear head.
    let linear = OutputLayer {
        outputs: HEAD.outputs,
        activation: ActivationSpec::Linear,
    };
    let outputs = |genome: &Genome, weights: &NamedTensors| {
        let spec = genome.to_spec(&DIGITS, linear);
        let mut net = build_network(&spec, &DIGITS, linear.outputs, 3).unwrap();
        let report = inherit(&mut net, weights);
        assert!(report.fresh.is_empty(), "not provided: {:?}", report.fresh);
        test_logits(&mut net, &data)
    };
    let each: Vec<Vec<f32>> = members.iter().map(|m| outputs(&genome, m)).collect();
    let mean: Vec<f32> = (0..each[0].len())
        .map(|i| each.iter().map(|o| o[i]).sum::<f32>() / 3.0)
        .collect();
    // Control: the members disagree, so the mean is not any one of them.
    assert!(largest_difference(&each[0], &each[2]) > 0.1);

    let wide = Genome::Table(ensemble::ensemble_genome(table, 3));
    assert_eq!(wide.hidden()[0].units, 3 * 48);
    let weights = ensemble::ensemble_weights(table, &members).unwrap();
    let got = outputs(&wide, &weights);
    let diff = largest_difference(&got, &mean);
    assert!(
        diff < 1e-4,
        "the ensemble's outputs differ from the mean by {diff}"
    );

    // One member is that member.
    let one = ensemble::ensemble_weights(table, &members[..1]).unwrap();
    assert!(largest_difference(&outputs(&genome, &one), &each[0]) < 1e-6);

    // Members of another genome are refused, naming the tensor.
    let mut other = members[1].clone();
    other.insert("h1_dense.weight".into(), (vec![48, 25], vec![0.0; 48 * 25]));
    let err = ensemble::ensemble_weights(table, &[members[0].clone(), other])
        .unwrap_err()
        .to_string();
    assert!(err.contains("h1_dense.weight"), "{err}");
    assert!(ensemble::ensemble_weights(table, &[]).is_err());

    // No hidden layer (a linear model): the ensemble is the same genome, weights averaged.
    let linear_genome = Genome::Table(TableGenome {
        hidden: vec![],
        ..table.clone()
    });
    let Genome::Table(linear_table) = &linear_genome else {
        unreachable!()
    };
    let members: Vec<NamedTensors> = [20, 40]
        .iter()
        .map(|&steps| network_tensors(&trained(&linear_genome, &data, steps).0))
        .collect();
    let each: Vec<Vec<f32>> = members.iter().map(|m| outputs(&linear_genome, m)).collect();
    let mean: Vec<f32> = (0..each[0].len())
        .map(|i| (each[0][i] + each[1][i]) / 2.0)
        .collect();
    assert!(largest_difference(&each[0], &each[1]) > 0.1);
    let wide = Genome::Table(ensemble::ensemble_genome(linear_table, 2));
    assert_eq!(wide, linear_genome);
    let weights = ensemble::ensemble_weights(linear_table, &members).unwrap();
    let diff = largest_difference(&outputs(&wide, &weights), &mean);
    assert!(
        diff < 1e-4,
        "the linear ensemble differs from the mean by {diff}"
    );
}
