//! The CUDA executor against the CPU engine: every layer's forward and backward, each
//! optimizer's first steps, and whole-network training steps (the seed CNN; a residual network
//! with batch norm and dropout) must agree to a relative error of 1e-4 (the largest absolute
//! difference over the largest reference magnitude).
//!
//! Without a usable GPU these tests print one `SKIPPED` line naming why and pass, unless
//! `MODELSMITH_REQUIRE_GPU=1`, where they fail. Two tests run everywhere: opening a device
//! without a driver is a clear error (not a panic), and every kernel compiles with NVRTC for
//! `compute_90` whenever libnvrtc can be loaded (no GPU needed).

#![cfg(feature = "cuda")]

use modelsmith_engine::cuda::{self, kernels, CudaNetwork};
use modelsmith_engine::optim::{clip_grad_norm, clip_grad_value, Optimizer, OptimizerConfig};
use modelsmith_engine::rng::SplitMix64;
use modelsmith_engine::{
    softmax_cross_entropy, Activation, ActivationLayer, Add, AvgPool2d, BatchNorm, Conv2d, Dense,
    Dropout, EngineError, Flatten, GlobalAvgPool, Layer, MaxPool2d, Mode, Network, Padding, Tensor,
};

const TOLERANCE: f32 = 1e-4;

fn gpu_required() -> bool {
    std::env::var("MODELSMITH_REQUIRE_GPU").is_ok_and(|v| v == "1")
}

/// True when GPU 0 is usable; otherwise prints why and returns false (or fails the test under
/// `MODELSMITH_REQUIRE_GPU=1`).
fn have_gpu(test: &str) -> bool {
    match cuda::probe(0) {
        Ok(_) => true,
        Err(e) if gpu_required() => panic!("{test}: MODELSMITH_REQUIRE_GPU=1 but {e}"),
        Err(e) => {
            eprintln!("SKIPPED {test}: {e}");
            false
        }
    }
}

fn random(len: usize, seed: u64) -> Vec<f32> {
    let mut rng = SplitMix64::new(seed);
    (0..len).map(|_| rng.uniform(-1.0, 1.0)).collect()
}

/// `max |gpu - cpu| / max |cpu|` must be at most [`TOLERANCE`].
fn assert_close(what: &str, gpu: &[f32], cpu: &[f32]) {
    assert_eq!(gpu.len(), cpu.len(), "{what}: lengths differ");
    let scale = cpu.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
    let (mut worst, mut at) = (0f32, 0);
    for (i, (g, c)) in gpu.iter().zip(cpu).enumerate() {
        let d = (g - c).abs();
        if d.is_nan() || d > worst {
            (worst, at) = (if d.is_nan() { f32::INFINITY } else { d }, i);
        }
    }
    let rel = worst / scale;
    assert!(
        rel <= TOLERANCE,
        "{what}: relative error {rel:e} at index {at} (gpu {}, cpu {}, scale {scale})",
        gpu[at],
        cpu[at]
    );
}

/// One layer on both backends: forward in `mode`, then backward of a random output gradient.
/// `make` must build identical layers (same seed) each call.
fn check_layer(name: &str, make: &dyn Fn() -> Box<dyn Layer>, in_shape: &[usize], mode: Mode) {
    let batch = 5;
    let per: usize = in_shape.iter().product();
    let mut shape = vec![batch];
    shape.extend_from_slice(in_shape);
    let x = Tensor::from_vec(&shape, random(batch * per, 11)).unwrap();

    // CPU: the layer's own forward and backward.
    let mut cpu = make();
    cpu.set_training_step(7);
    let mut out = Tensor::default();
    cpu.forward(&mut out, &[&x], mode);
    let dout = Tensor::from_vec(&out.shape, random(out.len(), 12)).unwrap();
    let mut dx = Tensor::zeros(&x.shape);
    cpu.backward(&mut [Some(&mut dx)], &dout, &out, &[&x]);

    // GPU: a one-node network built from an identical layer.
    let mut net = Network::new(in_shape);
    net.push(name, make(), &[0]).unwrap();
    let mut gpu = CudaNetwork::new(0, &net, OptimizerConfig::sgd(), batch).unwrap();
    gpu.keep_input_grad().unwrap();
    gpu.load_batch(&x.data, &vec![0; batch]).unwrap();
    gpu.set_training_step(7);
    gpu.forward(mode).unwrap();
    assert_close(
        &format!("{name} forward"),
        &gpu.output().unwrap(),
        &out.data,
    );
    gpu.set_output_grad(&dout.data).unwrap();
    gpu.backward().unwrap();
    assert_close(
        &format!("{name} input gradient"),
        &gpu.input_grad().unwrap(),
        &dx.data,
    );
    let grads = gpu.param_grads().unwrap();
    for (p, g) in cpu.params().iter().zip(&grads) {
        assert_close(&format!("{name} {} gradient", p.name), g, &p.grad.data);
    }
    let mut host = Network::new(in_shape);
    host.push(name, make(), &[0]).unwrap();
    gpu.copy_to_host(&mut host).unwrap();
    for ((_, h), (_, c)) in host.buffers().iter().zip(cpu.buffers()) {
        assert_close(&format!("{name} running statistics"), &h.data, &c.data);
    }
}

#[test]
fn every_layer_matches_the_cpu() {
    if !have_gpu("every_layer_matches_the_cpu") {
        return;
    }
    let relu = Activation::Relu;
    type Make = Box<dyn Fn() -> Box<dyn Layer>>;
    let cases: Vec<(&str, Make, Vec<usize>, Mode)> = vec![
        (
            "conv valid relu",
            Box::new(move || Box::new(Conv2d::new(3, 8, 3, 3, 1, Padding::Valid, true, relu, 1))),
            vec![9, 9, 3],
            Mode::Train,
        ),
        (
            // 8 → 4 at stride 2 pads one row/column at the bottom/right only: explicit padding.
            "conv same stride 2 gelu",
            Box::new(|| {
                Box::new(Conv2d::new(
                    4,
                    6,
                    3,
                    3,
                    2,
                    Padding::Same,
                    true,
                    Activation::Gelu,
                    2,
                ))
            }),
            vec![8, 8, 4],
            Mode::Train,
        ),
        (
            "conv same 5x5 tanh no bias",
            Box::new(|| {
                Box::new(Conv2d::new(
                    2,
                    5,
                    5,
                    5,
                    1,
                    Padding::Same,
                    false,
                    Activation::Tanh,
                    3,
                ))
            }),
            vec![7, 7, 2],
            Mode::Train,
        ),
        (
            "dense relu",
            Box::new(move || Box::new(Dense::new(20, 7, true, relu, 4))),
            vec![20],
            Mode::Train,
        ),
        (
            "dense on images sigmoid no bias",
            Box::new(|| Box::new(Dense::new(18, 5, false, Activation::Sigmoid, 5))),
            vec![3, 3, 2],
            Mode::Train,
        ),
        (
            "max pool 2",
            Box::new(|| Box::new(MaxPool2d::new(2, 2, Padding::Valid))),
            vec![6, 6, 3],
            Mode::Train,
        ),
        (
            "max pool 3 stride 2 same",
            Box::new(|| Box::new(MaxPool2d::new(3, 2, Padding::Same))),
            vec![7, 7, 3],
            Mode::Train,
        ),
        (
            "avg pool 2",
            Box::new(|| Box::new(AvgPool2d::new(2, 2, Padding::Valid))),
            vec![6, 6, 3],
            Mode::Train,
        ),
        (
            "avg pool 3 stride 2 same",
            Box::new(|| Box::new(AvgPool2d::new(3, 2, Padding::Same))),
            vec![8, 8, 2],
            Mode::Train,
        ),
        (
            "global average pool",
            Box::new(|| Box::new(GlobalAvgPool::new())),
            vec![5, 4, 6],
            Mode::Train,
        ),
        (
            "flatten",
            Box::new(|| Box::new(Flatten::new())),
            vec![3, 4, 2],
            Mode::Train,
        ),
        (
            "batch norm training",
            Box::new(|| Box::new(BatchNorm::new(5).with_momentum(0.9))),
            vec![4, 4, 5],
            Mode::Train,
        ),
        (
            "batch norm inference",
            Box::new(|| Box::new(BatchNorm::new(6))),
            vec![6],
            Mode::Eval,
        ),
        (
            "dropout training",
            Box::new(|| Box::new(Dropout::new(0.3, 99))),
            vec![4, 4, 3],
            Mode::Train,
        ),
        (
            "dropout inference",
            Box::new(|| Box::new(Dropout::new(0.3, 99))),
            vec![10],
            Mode::Eval,
        ),
    ];
    for (name, make, shape, mode) in &cases {
        check_layer(name, make.as_ref(), shape, *mode);
    }
    for act in [
        Activation::Linear,
        Activation::Relu,
        Activation::LeakyRelu(0.1),
        Activation::Elu(1.0),
        Activation::Gelu,
        Activation::Sigmoid,
        Activation::Tanh,
    ] {
        let make = move || -> Box<dyn Layer> { Box::new(ActivationLayer::new(act)) };
        check_layer(act.name(), &make, &[3, 3, 4], Mode::Train);
    }
}

#[test]
fn residual_add_matches_the_cpu() {
    if !have_gpu("residual_add_matches_the_cpu") {
        return;
    }
    // y = x + tanh(x): the input's gradient arrives through both paths.
    let (batch, shape) = (4, [3, 3, 2]);
    let per = 18;
    let x = Tensor::from_vec(&[batch, 3, 3, 2], random(batch * per, 21)).unwrap();
    let dout = Tensor::from_vec(&x.shape, random(batch * per, 22)).unwrap();
    let mut tanh = ActivationLayer::new(Activation::Tanh);
    let mut add = Add::new();
    let (mut t, mut y) = (Tensor::default(), Tensor::default());
    tanh.forward(&mut t, &[&x], Mode::Train);
    add.forward(&mut y, &[&x, &t], Mode::Train);
    let (mut dx, mut dt) = (Tensor::zeros(&x.shape), Tensor::zeros(&x.shape));
    add.backward(&mut [Some(&mut dx), Some(&mut dt)], &dout, &y, &[&x, &t]);
    tanh.backward(&mut [Some(&mut dx)], &dt, &t, &[&x]);

    let mut net = Network::new(&shape);
    let a = net
        .push(
            "tanh",
            Box::new(ActivationLayer::new(Activation::Tanh)),
            &[0],
        )
        .unwrap();
    net.push("add", Box::new(Add::new()), &[0, a]).unwrap();
    let mut gpu = CudaNetwork::new(0, &net, OptimizerConfig::sgd(), batch).unwrap();
    gpu.keep_input_grad().unwrap();
    gpu.load_batch(&x.data, &vec![0; batch]).unwrap();
    gpu.forward(Mode::Train).unwrap();
    assert_close("add forward", &gpu.output().unwrap(), &y.data);
    gpu.set_output_grad(&dout.data).unwrap();
    gpu.backward().unwrap();
    assert_close("add input gradient", &gpu.input_grad().unwrap(), &dx.data);
}

fn small_mlp(seed: u64) -> Network {
    let mut net = Network::new(&[6]);
    let h = net
        .push(
            "d1",
            Box::new(Dense::new(6, 8, true, Activation::Tanh, seed)),
            &[0],
        )
        .unwrap();
    net.push(
        "d2",
        Box::new(Dense::new(8, 3, true, Activation::Linear, seed + 1)),
        &[h],
    )
    .unwrap();
    net
}

/// `steps` CPU training steps exactly as the trainer takes them (clip value, clip norm, update).
fn cpu_steps(
    net: &mut Network,
    opt: &mut Optimizer,
    batches: &[(Tensor, Vec<u32>)],
    lrs: &[f32],
    clip: (Option<f32>, Option<f32>),
) -> Vec<f32> {
    let mut losses = Vec::new();
    let mut dlogits = Tensor::default();
    for (step, ((x, labels), &lr)) in batches.iter().zip(lrs).enumerate() {
        net.set_training_step(step as u64);
        let logits = net.forward(x, Mode::Train);
        losses.push(softmax_cross_entropy(&mut dlogits, logits, labels));
        net.zero_grads();
        net.backward(&dlogits);
        let mut params = net.param_refs_mut();
        if let Some(v) = clip.0 {
            clip_grad_value(&mut params, v);
        }
        if let Some(n) = clip.1 {
            clip_grad_norm(&mut params, n);
        }
        opt.step(&mut params, lr).unwrap();
    }
    losses
}

fn gpu_steps(
    gpu: &mut CudaNetwork,
    batches: &[(Tensor, Vec<u32>)],
    lrs: &[f32],
    clip: (Option<f32>, Option<f32>),
) -> Vec<f32> {
    let mut losses = Vec::new();
    for (step, ((x, labels), &lr)) in batches.iter().zip(lrs).enumerate() {
        gpu.load_batch(&x.data, labels).unwrap();
        gpu.train_step(step as u64, lr, clip.0, clip.1).unwrap();
        let m = gpu.take_metrics().unwrap();
        assert_eq!(m.diverged, None);
        losses.push((m.loss_sum / m.seen) as f32);
    }
    losses
}

fn batches(n: usize, per: usize, classes: u32, count: usize, seed: u64) -> Vec<(Tensor, Vec<u32>)> {
    (0..count)
        .map(|b| {
            let mut shape = vec![n];
            shape.extend_from_slice(&[per]);
            let x = Tensor::from_vec(&shape, random(n * per, seed + b as u64)).unwrap();
            let labels = (0..n).map(|i| ((i + b) as u32 * 7) % classes).collect();
            (x, labels)
        })
        .collect()
}

fn assert_same_weights(what: &str, gpu: &CudaNetwork, cpu: &Network) {
    let values = gpu.param_values().unwrap();
    for ((name, p), v) in cpu.params().iter().zip(&values) {
        assert_close(&format!("{what}: {name}"), v, &p.value.data);
    }
}

#[test]
fn every_optimizer_takes_the_same_first_steps() {
    if !have_gpu("every_optimizer_takes_the_same_first_steps") {
        return;
    }
    let sgd_m = |momentum, nesterov, weight_decay| OptimizerConfig::Sgd {
        momentum,
        nesterov,
        weight_decay,
    };
    let rms = |momentum, centered| OptimizerConfig::RmsProp {
        rho: 0.9,
        momentum,
        eps: 1e-7,
        centered,
        weight_decay: 1e-3,
    };
    let configs = [
        (OptimizerConfig::sgd(), (None, None)),
        (sgd_m(0.9, false, 0.0), (None, Some(0.5))),
        (sgd_m(0.9, true, 1e-3), (Some(0.05), None)),
        (OptimizerConfig::adam(), (None, None)),
        (
            OptimizerConfig::adam().with_weight_decay(1e-2),
            (None, Some(1.0)),
        ),
        (OptimizerConfig::adamw(), (None, None)),
        (rms(0.0, false), (None, None)),
        (rms(0.5, false), (None, None)),
        (rms(0.0, true), (None, None)),
        (rms(0.5, true), (Some(0.1), None)),
        (OptimizerConfig::adagrad(), (None, None)),
    ];
    let data = batches(8, 6, 3, 4, 31);
    let lrs = [0.05, 0.04, 0.03, 0.02];
    for (config, clip) in configs {
        let what = format!("{config:?} clip {clip:?}");
        let mut cpu = small_mlp(5);
        let mut gpu = CudaNetwork::new(0, &cpu, config.clone(), 8).unwrap();
        let mut opt = Optimizer::new(config);
        let cpu_losses = cpu_steps(&mut cpu, &mut opt, &data, &lrs, clip);
        let gpu_losses = gpu_steps(&mut gpu, &data, &lrs, clip);
        assert_close(&format!("{what}: losses"), &gpu_losses, &cpu_losses);
        assert_same_weights(&what, &gpu, &cpu);
        let (gs, cs) = (gpu.optimizer_state().unwrap(), opt.state());
        assert_eq!(gs.iterations, cs.iterations, "{what}: iterations");
        for ((gn, gv), (cn, cv)) in gs.tensors.iter().zip(&cs.tensors) {
            assert_eq!(gn, cn, "{what}: state tensor names");
            assert_close(&format!("{what}: state {gn}"), gv, cv);
        }
    }
}

fn seed_cnn() -> Network {
    let relu = Activation::Relu;
    let mut net = Network::new(&[28, 28, 1]);
    let layers: Vec<(&str, Box<dyn Layer>)> = vec![
        (
            "conv1",
            Box::new(Conv2d::new(1, 32, 3, 3, 1, Padding::Valid, true, relu, 1)),
        ),
        ("pool1", Box::new(MaxPool2d::new(2, 2, Padding::Valid))),
        (
            "conv2",
            Box::new(Conv2d::new(32, 64, 3, 3, 1, Padding::Valid, true, relu, 2)),
        ),
        ("pool2", Box::new(MaxPool2d::new(2, 2, Padding::Valid))),
        ("flatten", Box::new(Flatten::new())),
        ("dense1", Box::new(Dense::new(1600, 64, true, relu, 3))),
        (
            "dense2",
            Box::new(Dense::new(64, 10, true, Activation::Linear, 4)),
        ),
    ];
    let mut s = 0;
    for (name, layer) in layers {
        s = net.push(name, layer, &[s]).unwrap();
    }
    net
}

#[test]
fn seed_cnn_training_steps_match_the_cpu() {
    if !have_gpu("seed_cnn_training_steps_match_the_cpu") {
        return;
    }
    // The seed recipe: SGD, momentum 0.9, Keras's legacy decay lr / (1 + 1e-6 t).
    let config = OptimizerConfig::Sgd {
        momentum: 0.9,
        nesterov: false,
        weight_decay: 0.0,
    };
    let data: Vec<(Tensor, Vec<u32>)> = batches(16, 784, 10, 5, 41)
        .into_iter()
        .map(|(x, l)| (Tensor::from_vec(&[16, 28, 28, 1], x.data).unwrap(), l))
        .collect();
    let lrs: Vec<f32> = (0..5).map(|t| 0.01 / (1.0 + 1e-6 * t as f32)).collect();
    let mut cpu = seed_cnn();
    let mut gpu = CudaNetwork::new(0, &cpu, config.clone(), 16).unwrap();
    let mut opt = Optimizer::new(config);
    let cpu_losses = cpu_steps(&mut cpu, &mut opt, &data, &lrs, (None, None));
    let gpu_losses = gpu_steps(&mut gpu, &data, &lrs, (None, None));
    assert_close("seed CNN losses", &gpu_losses, &cpu_losses);
    assert_same_weights("seed CNN after 5 steps", &gpu, &cpu);
    let logits = cpu.forward(&data[0].0, Mode::Eval).data.clone();
    gpu.load_batch(&data[0].0.data, &data[0].1).unwrap();
    gpu.forward(Mode::Eval).unwrap();
    assert_close("seed CNN logits", &gpu.output().unwrap(), &logits);
}

/// Residual blocks with batch norm, dropout, average and global pooling: the other layers
/// composed, trained on a data set resident on the device with a shuffled epoch order.
fn residual_net() -> Network {
    let mut net = Network::new(&[8, 8, 2]);
    let c1 = net
        .push(
            "c1",
            Box::new(Conv2d::new(
                2,
                6,
                3,
                3,
                1,
                Padding::Same,
                true,
                Activation::Relu,
                1,
            )),
            &[0],
        )
        .unwrap();
    let bn = net
        .push("bn", Box::new(BatchNorm::new(6).with_momentum(0.9)), &[c1])
        .unwrap();
    let c2 = net
        .push(
            "c2",
            Box::new(Conv2d::new(
                6,
                6,
                3,
                3,
                1,
                Padding::Same,
                false,
                Activation::Elu(1.0),
                2,
            )),
            &[bn],
        )
        .unwrap();
    let add = net.push("add", Box::new(Add::new()), &[c1, c2]).unwrap();
    let drop = net
        .push("drop", Box::new(Dropout::new(0.25, 5)), &[add])
        .unwrap();
    let pool = net
        .push(
            "pool",
            Box::new(AvgPool2d::new(2, 2, Padding::Valid)),
            &[drop],
        )
        .unwrap();
    let gap = net
        .push("gap", Box::new(GlobalAvgPool::new()), &[pool])
        .unwrap();
    net.push(
        "out",
        Box::new(Dense::new(6, 4, true, Activation::Linear, 3)),
        &[gap],
    )
    .unwrap();
    net
}

#[test]
fn residual_network_trains_from_resident_data_like_the_cpu() {
    if !have_gpu("residual_network_trains_from_resident_data_like_the_cpu") {
        return;
    }
    let (len, per, batch) = (40, 128, 10);
    let x = random(len * per, 51);
    let labels: Vec<u32> = (0..len as u32).map(|i| (i * 3) % 4).collect();
    let order: Vec<u32> = (0..len as u32).map(|i| (i * 17) % len as u32).collect();
    let config = OptimizerConfig::adam();
    let mut cpu = residual_net();
    let mut gpu = CudaNetwork::new(0, &cpu, config.clone(), batch).unwrap();
    let mut opt = Optimizer::new(config);
    // CPU batches gathered on the host in the same order.
    let host_batches: Vec<(Tensor, Vec<u32>)> = order
        .chunks(batch)
        .map(|chunk| {
            let mut xb = Vec::new();
            for &i in chunk {
                xb.extend_from_slice(&x[i as usize * per..(i as usize + 1) * per]);
            }
            let lb = chunk.iter().map(|&i| labels[i as usize]).collect();
            (Tensor::from_vec(&[chunk.len(), 8, 8, 2], xb).unwrap(), lb)
        })
        .collect();
    let lrs = vec![1e-2; host_batches.len()];
    let cpu_losses = cpu_steps(&mut cpu, &mut opt, &host_batches, &lrs, (None, Some(1.0)));
    let mut data = gpu.upload_dataset(&x, &labels).unwrap();
    data.set_order(&gpu, &order).unwrap();
    for (step, offset) in (0..len).step_by(batch).enumerate() {
        gpu.gather_batch(&data, offset, batch).unwrap();
        gpu.train_step(step as u64, 1e-2, None, Some(1.0)).unwrap();
    }
    let m = gpu.take_metrics().unwrap();
    let cpu_mean = cpu_losses.iter().sum::<f32>() / cpu_losses.len() as f32;
    assert_close("mean loss", &[(m.loss_sum / m.seen) as f32], &[cpu_mean]);
    assert_same_weights("residual network after an epoch", &gpu, &cpu);
    // Running statistics come back to the host, and evaluation agrees.
    let mut host = residual_net();
    gpu.copy_to_host(&mut host).unwrap();
    for ((name, h), (_, c)) in host.buffers().iter().zip(cpu.buffers()) {
        assert_close(&format!("running statistic {name}"), &h.data, &c.data);
    }
    let (gpu_loss, gpu_acc) = gpu.evaluate(&mut data, 16).unwrap();
    let all = Tensor::from_vec(&[len, 8, 8, 2], x.clone()).unwrap();
    let mut d = Tensor::default();
    let logits = cpu.forward(&all, Mode::Eval).clone();
    let cpu_loss = softmax_cross_entropy(&mut d, &logits, &labels);
    let cpu_acc = modelsmith_engine::count_correct(&logits, &labels) as f32 / len as f32;
    assert_close("evaluation loss", &[gpu_loss], &[cpu_loss]);
    assert_eq!(gpu_acc, cpu_acc, "evaluation accuracy");
}

#[test]
fn a_diverging_step_is_reported_with_its_number() {
    if !have_gpu("a_diverging_step_is_reported_with_its_number") {
        return;
    }
    let cpu = small_mlp(9);
    let mut gpu = CudaNetwork::new(0, &cpu, OptimizerConfig::sgd(), 4).unwrap();
    let mut x = random(24, 61);
    gpu.load_batch(&x, &[0, 1, 2, 0]).unwrap();
    gpu.train_step(0, 0.01, None, None).unwrap();
    x[3] = f32::NAN;
    gpu.load_batch(&x, &[0, 1, 2, 0]).unwrap();
    gpu.train_step(1, 0.01, None, None).unwrap();
    let m = gpu.take_metrics().unwrap();
    assert_eq!(m.diverged.map(|(step, _)| step), Some(1));
}

#[test]
fn opening_a_gpu_that_is_not_there_is_a_clear_error() {
    let net = small_mlp(1);
    let err = match cuda::probe(0) {
        // A GPU is here: ask for one that is not.
        Ok(_) => CudaNetwork::new(999, &net, OptimizerConfig::sgd(), 4).err(),
        Err(_) => CudaNetwork::new(0, &net, OptimizerConfig::sgd(), 4).err(),
    };
    let Some(EngineError::Device(message)) = err else {
        panic!("expected a device error, got {err:?}");
    };
    assert!(!message.contains('\n'), "one line: {message}");
    assert!(
        message.starts_with("no usable GPU") || message.starts_with("no GPU cuda:999"),
        "says what is missing: {message}"
    );
    eprintln!("device error as shown: {message}");
}

#[test]
fn every_kernel_compiles_with_nvrtc() {
    if !kernels::nvrtc_available() {
        if gpu_required() {
            panic!("MODELSMITH_REQUIRE_GPU=1 but libnvrtc.so.13 cannot be loaded");
        }
        eprintln!(
            "SKIPPED every_kernel_compiles_with_nvrtc: libnvrtc.so.13 cannot be loaded (set \
             LD_LIBRARY_PATH to a CUDA 13 NVRTC, e.g. the nvidia-cuda-nvrtc wheel's lib folder)"
        );
        return;
    }
    let ptx = kernels::compile("compute_90").unwrap_or_else(|e| panic!("{e}"));
    let text = ptx.to_src();
    for name in kernels::KERNEL_NAMES {
        assert!(
            text.contains(&format!(".entry {name}(")),
            "PTX has no entry point {name}"
        );
    }
    eprintln!(
        "compiled {} kernels for compute_90 ({} bytes of PTX)",
        kernels::KERNEL_NAMES.len(),
        text.len()
    );
}
