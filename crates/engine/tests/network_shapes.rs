//! Network construction errors and a small end-to-end training run of the seed CNN.

use modelsmith_engine::{
    softmax_cross_entropy, Activation, Add, Conv2d, Dense, EngineError, Flatten, MaxPool2d, Mode,
    Network, Padding, Tensor,
};

fn seed_cnn() -> Network {
    let mut net = Network::new(&[28, 28, 1]);
    let relu = Activation::Relu;
    let c1 = Conv2d::new(1, 32, 3, 3, 1, Padding::Valid, true, relu, 1);
    let s = net.push("conv1", Box::new(c1), &[0]).unwrap();
    let s = net
        .push(
            "pool1",
            Box::new(MaxPool2d::new(2, 2, Padding::Valid)),
            &[s],
        )
        .unwrap();
    let c2 = Conv2d::new(32, 64, 3, 3, 1, Padding::Valid, true, relu, 2);
    let s = net.push("conv2", Box::new(c2), &[s]).unwrap();
    let s = net
        .push(
            "pool2",
            Box::new(MaxPool2d::new(2, 2, Padding::Valid)),
            &[s],
        )
        .unwrap();
    let s = net.push("flatten", Box::new(Flatten::new()), &[s]).unwrap();
    let s = net
        .push(
            "dense1",
            Box::new(Dense::new(1600, 64, true, relu, 3)),
            &[s],
        )
        .unwrap();
    net.push(
        "dense2",
        Box::new(Dense::new(64, 10, true, Activation::Linear, 4)),
        &[s],
    )
    .unwrap();
    net
}

#[test]
fn seed_cnn_shapes_and_params() {
    let net = seed_cnn();
    assert_eq!(net.output_shape(), &[10]);
    assert_eq!(net.shapes()[1], vec![26, 26, 32]);
    assert_eq!(net.shapes()[4], vec![5, 5, 64]);
    // Keras reports 121,930 parameters for this model.
    assert_eq!(net.param_count(), 121_930);
    let names: Vec<String> = net.params().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names[0], "conv1.weight");
    assert_eq!(names[1], "conv1.bias");
}

#[test]
fn mismatched_channels_name_the_layer() {
    let mut net = Network::new(&[28, 28, 1]);
    let conv = Conv2d::new(3, 8, 3, 3, 1, Padding::Valid, true, Activation::Relu, 1);
    let err = net.push("stem", Box::new(conv), &[0]).unwrap_err();
    assert!(matches!(err, EngineError::Shape(_)));
    let msg = err.to_string();
    assert!(
        msg.contains("stem") && msg.contains("3 input channels"),
        "{msg}"
    );
}

#[test]
fn dense_after_image_needs_matching_features() {
    let mut net = Network::new(&[4, 4, 2]);
    let err = net
        .push(
            "head",
            Box::new(Dense::new(30, 2, true, Activation::Linear, 1)),
            &[0],
        )
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("head") && msg.contains("32 features"), "{msg}");
}

#[test]
fn kernel_larger_than_input_and_bad_add() {
    let mut net = Network::new(&[2, 2, 1]);
    let conv = Conv2d::new(1, 1, 3, 3, 1, Padding::Valid, true, Activation::Linear, 1);
    let msg = net
        .push("big", Box::new(conv), &[0])
        .unwrap_err()
        .to_string();
    assert!(msg.contains("big") && msg.contains("does not fit"), "{msg}");
    let pool = MaxPool2d::new(2, 2, Padding::Valid);
    let p = net.push("pool", Box::new(pool), &[0]).unwrap();
    let msg = net
        .push("sum", Box::new(Add::new()), &[0, p])
        .unwrap_err()
        .to_string();
    assert!(msg.contains("sum") && msg.contains("equal shape"), "{msg}");
    let msg = net
        .push("twice", Box::new(Add::new()), &[p, p])
        .unwrap_err()
        .to_string();
    assert!(msg.contains("twice") && msg.contains("twice"), "{msg}");
}

#[test]
fn seed_cnn_learns_a_synthetic_task() {
    // Class k: a bright 7x7 square in one of ten positions, plus noise.
    let mut net = seed_cnn();
    let n = 64;
    let mut rng = modelsmith_engine::rng::SplitMix64::new(3);
    let mut x = Tensor::zeros(&[n, 28, 28, 1]);
    let labels: Vec<u32> = (0..n as u32).map(|i| i % 10).collect();
    for (i, &l) in labels.iter().enumerate() {
        let (oy, ox) = ((l as usize / 5) * 14 + 3, (l as usize % 5) * 5 + 1);
        for y in 0..28 {
            for xx in 0..28 {
                let on = (oy..oy + 7).contains(&y) && (ox..ox + 4).contains(&xx);
                x.data[(i * 28 + y) * 28 + xx] = if on { 1.0 } else { 0.0 } + 0.1 * rng.next_f32();
            }
        }
    }
    let mut dlogits = Tensor::default();
    let mut first = 0.0;
    let mut last = 0.0;
    for step in 0..30 {
        net.zero_grads();
        let logits = net.forward(&x, Mode::Train).clone();
        let loss = softmax_cross_entropy(&mut dlogits, &logits, &labels);
        if step == 0 {
            first = loss;
        }
        last = loss;
        net.backward(&dlogits);
        for (_, p) in net.params_mut() {
            for (v, g) in p.value.data.iter_mut().zip(&p.grad.data) {
                *v -= 0.1 * g;
            }
        }
    }
    assert!(last < 0.5 * first, "loss went from {first} to {last}");
    let logits = net.forward(&x, Mode::Eval).clone();
    assert!(modelsmith_engine::count_correct(&logits, &labels) >= 50);
}
