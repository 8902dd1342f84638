//! Optimizers against Keras 3 (`tests/fixtures/tensorflow_reference.json`, cases with
//! `op == "optimizer"`), plus weight decay, clipping and checkpoint/resume behaviour.

use modelsmith_engine::{
    clip_grad_norm, clip_grad_value, grad_norm, Optimizer, OptimizerConfig, OptimizerState, Param,
    Tensor,
};
use serde_json::Value;

const REFERENCE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/tensorflow_reference.json"
);

fn reference_cases() -> Vec<Value> {
    let text =
        std::fs::read_to_string(REFERENCE).unwrap_or_else(|e| panic!("reading {REFERENCE}: {e}"));
    let json: Value = serde_json::from_str(&text).expect("reference JSON");
    json["cases"]
        .as_array()
        .expect("cases array")
        .iter()
        .filter(|c| c["op"] == "optimizer")
        .cloned()
        .collect()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number") as f32)
        .collect()
}

fn hp(h: &Value, key: &str, default: f32) -> f32 {
    h.get(key)
        .and_then(Value::as_f64)
        .map(|x| x as f32)
        .unwrap_or(default)
}

/// Builds the config from the case's hyperparameters, through serde as a user's config would.
fn config_from(h: &Value) -> OptimizerConfig {
    let mut obj = h.as_object().expect("hparams object").clone();
    obj.remove("lr");
    serde_json::from_value(Value::Object(obj)).expect("hparams deserialize as OptimizerConfig")
}

fn param(values: &[f32]) -> Param {
    Param::new(
        "weight",
        Tensor::from_vec(&[values.len()], values.to_vec()).unwrap(),
    )
}

fn rel_err(a: f32, b: f32) -> f32 {
    (a - b).abs() / b.abs().max(1e-6)
}

#[test]
fn optimizers_match_keras() {
    let cases = reference_cases();
    let names: Vec<&str> = cases.iter().map(|c| c["name"].as_str().unwrap()).collect();
    for expected in [
        "sgd_momentum_keras",
        "sgd_nesterov_keras",
        "adam_keras",
        "adamw_keras",
        "rmsprop_keras",
        "adagrad_keras",
    ] {
        assert!(
            names.contains(&expected),
            "reference case {expected} missing"
        );
    }

    for case in &cases {
        let name = case["name"].as_str().unwrap();
        let h = &case["hparams"];
        let lr = hp(h, "lr", f32::NAN);
        let config = config_from(h);
        config.validate().unwrap();
        assert_eq!(config.kind(), h["kind"].as_str().unwrap());
        assert_eq!(
            config.weight_decay(),
            hp(h, "weight_decay", config.weight_decay())
        );

        let mut p = param(&floats(&case["w0"]));
        let mut opt = Optimizer::new(config);
        let grads = case["grads"].as_array().unwrap();
        let after = case["w_after_each_step"].as_array().unwrap();
        assert_eq!(grads.len(), after.len());
        for (step, (g, want)) in grads.iter().zip(after).enumerate() {
            p.grad.data.copy_from_slice(&floats(g));
            opt.step(&mut [&mut p], lr).unwrap();
            for (i, (&got, want)) in p.value.data.iter().zip(floats(want)).enumerate() {
                let err = rel_err(got, want);
                assert!(
                    err <= 1e-4,
                    "{name}: step {} element {i}: got {got}, Keras {want} (rel err {err:.2e})",
                    step + 1
                );
            }
        }
        assert_eq!(opt.iterations(), grads.len() as u64);
    }
}

#[test]
fn config_serde_defaults_and_typos() {
    let c: OptimizerConfig = serde_json::from_str(r#"{"kind":"adam"}"#).unwrap();
    assert_eq!(c, OptimizerConfig::adam());
    let c: OptimizerConfig = serde_json::from_str(r#"{"kind":"adamw"}"#).unwrap();
    assert_eq!(c.weight_decay(), 0.004);
    let c: OptimizerConfig =
        serde_json::from_str(r#"{"kind":"sgd","momentum":0.9,"nesterov":true}"#).unwrap();
    assert_eq!(
        c,
        OptimizerConfig::Sgd {
            momentum: 0.9,
            nesterov: true,
            weight_decay: 0.0
        }
    );
    for kind in OptimizerConfig::KINDS {
        let c: OptimizerConfig = serde_json::from_str(&format!(r#"{{"kind":"{kind}"}}"#)).unwrap();
        assert_eq!(c.kind(), kind);
        assert_eq!(Some(c.clone()), OptimizerConfig::default_for(kind));
        c.validate().unwrap();
        // Round trip.
        let back: OptimizerConfig =
            serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
    }
    assert!(serde_json::from_str::<OptimizerConfig>(r#"{"kind":"adam","beta_1":0.8}"#).is_err());
    assert!(serde_json::from_str::<OptimizerConfig>(r#"{"kind":"lion"}"#).is_err());
}

#[test]
fn validation_rejects_nonsense() {
    let bad = [
        OptimizerConfig::sgd().with_weight_decay(-1e-4),
        OptimizerConfig::Sgd {
            momentum: 1.0,
            nesterov: false,
            weight_decay: 0.0,
        },
        OptimizerConfig::Sgd {
            momentum: -0.1,
            nesterov: false,
            weight_decay: 0.0,
        },
        OptimizerConfig::Sgd {
            momentum: 0.0,
            nesterov: true,
            weight_decay: 0.0,
        },
        OptimizerConfig::Adam {
            beta1: 1.0,
            beta2: 0.999,
            eps: 1e-7,
            weight_decay: 0.0,
        },
        OptimizerConfig::AdamW {
            beta1: 0.9,
            beta2: 0.999,
            eps: 0.0,
            weight_decay: 0.0,
        },
        OptimizerConfig::RmsProp {
            rho: 1.5,
            momentum: 0.0,
            eps: 1e-7,
            centered: false,
            weight_decay: 0.0,
        },
        OptimizerConfig::Adagrad {
            initial_accumulator: -0.1,
            eps: 1e-7,
            weight_decay: 0.0,
        },
    ];
    for c in bad {
        let msg = c
            .validate()
            .expect_err(&format!("{c:?} should be rejected"));
        assert!(msg.contains(c.kind()), "{msg}");
    }
}

/// L2 (coupled) weight decay is the same as adding `wd * w` to the gradient.
#[test]
fn l2_weight_decay_equals_gradient_term() {
    let wd = 0.05;
    let w0 = [0.5f32, -1.5, 2.0, 0.0];
    let g = [0.1f32, 0.2, -0.3, 0.4];
    for base in [
        OptimizerConfig::Sgd {
            momentum: 0.9,
            nesterov: true,
            weight_decay: 0.0,
        },
        OptimizerConfig::adam(),
        OptimizerConfig::RmsProp {
            rho: 0.9,
            momentum: 0.5,
            eps: 1e-7,
            centered: true,
            weight_decay: 0.0,
        },
        OptimizerConfig::adagrad(),
    ] {
        let mut a = param(&w0);
        let mut b = param(&w0);
        let mut oa = Optimizer::new(base.clone().with_weight_decay(wd));
        let mut ob = Optimizer::new(base.clone());
        for _ in 0..3 {
            a.grad.data.copy_from_slice(&g);
            for (i, gb) in b.grad.data.iter_mut().enumerate() {
                *gb = g[i] + wd * b.value.data[i];
            }
            oa.step(&mut [&mut a], 0.01).unwrap();
            ob.step(&mut [&mut b], 0.01).unwrap();
        }
        for (x, y) in a.value.data.iter().zip(&b.value.data) {
            assert!((x - y).abs() < 1e-6, "{}: {x} vs {y}", base.kind());
        }
        assert_ne!(a.value.data, w0.to_vec());
    }
}

/// AdamW's decay is decoupled: with zero gradient, Adam moments stay zero and the only change is
/// `w *= 1 - lr * wd`; plain Adam with L2 instead moves by about `lr` (sign of w).
#[test]
fn adamw_decay_is_decoupled() {
    let w0 = [1.0f32, -2.0, 0.5];
    let (lr, wd) = (0.01, 0.1);
    let mut p = param(&w0);
    let mut opt = Optimizer::new(OptimizerConfig::adamw().with_weight_decay(wd));
    opt.step(&mut [&mut p], lr).unwrap();
    for (w, w0) in p.value.data.iter().zip(w0) {
        assert!((w - w0 * (1.0 - lr * wd)).abs() < 1e-7, "{w} vs {w0}");
    }
    let mut q = param(&w0);
    let mut adam = Optimizer::new(OptimizerConfig::adam().with_weight_decay(wd));
    adam.step(&mut [&mut q], lr).unwrap();
    for (w, w0) in q.value.data.iter().zip(w0) {
        assert!((w - (w0 - lr * w0.signum())).abs() < 1e-5, "{w} vs {w0}");
    }
}

#[test]
fn clipping() {
    let mut a = param(&[0.0; 2]);
    let mut b = param(&[0.0; 1]);
    a.grad.data.copy_from_slice(&[3.0, 0.0]);
    b.grad.data.copy_from_slice(&[4.0]);
    let mut ps = [&mut a, &mut b];
    assert_eq!(grad_norm(&ps), 5.0);
    // Below the limit: untouched.
    assert_eq!(clip_grad_norm(&mut ps, 10.0), 5.0);
    assert_eq!(ps[0].grad.data, vec![3.0, 0.0]);
    // Above: scaled to the limit, direction kept.
    assert_eq!(clip_grad_norm(&mut ps, 1.0), 5.0);
    assert!((ps[0].grad.data[0] - 0.6).abs() < 1e-6);
    assert!((ps[1].grad.data[0] - 0.8).abs() < 1e-6);
    assert!((grad_norm(&ps) - 1.0).abs() < 1e-6);

    ps[0].grad.data.copy_from_slice(&[-3.0, 0.25]);
    ps[1].grad.data.copy_from_slice(&[f32::INFINITY]);
    assert!(clip_grad_norm(&mut ps, 1.0).is_infinite());
    clip_grad_value(&mut ps, 0.5);
    assert_eq!(ps[0].grad.data, vec![-0.5, 0.25]);
    assert_eq!(ps[1].grad.data, vec![0.5]);
}

fn grads_for(step: usize, n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((step * 7 + i * 3) as f32 * 0.37).sin())
        .collect()
}

/// Saving after a few steps, loading into a fresh optimizer (through JSON) and continuing gives
/// bit-identical weights to never stopping.
#[test]
fn state_round_trip_continues_identically() {
    let configs = [
        OptimizerConfig::sgd(),
        OptimizerConfig::Sgd {
            momentum: 0.9,
            nesterov: false,
            weight_decay: 1e-3,
        },
        OptimizerConfig::adam(),
        OptimizerConfig::adamw(),
        OptimizerConfig::RmsProp {
            rho: 0.9,
            momentum: 0.5,
            eps: 1e-7,
            centered: true,
            weight_decay: 0.0,
        },
        OptimizerConfig::adagrad(),
    ];
    for config in configs {
        let init = || [param(&[0.3, -0.2, 0.1]), param(&[1.0, 2.0])];
        let mut full = init();
        let mut opt = Optimizer::new(config.clone());
        let run = |opt: &mut Optimizer, ps: &mut [Param; 2], from: usize, to: usize| {
            for s in from..to {
                for (k, p) in ps.iter_mut().enumerate() {
                    let n = p.value.len();
                    p.grad.data.copy_from_slice(&grads_for(s + k, n));
                }
                let [a, b] = ps;
                opt.step(&mut [a, b], 0.05).unwrap();
            }
        };
        run(&mut opt, &mut full, 0, 6);

        let mut resumed = init();
        let mut first = Optimizer::new(config.clone());
        run(&mut first, &mut resumed, 0, 3);
        let saved = serde_json::to_string(&first.state()).unwrap();
        drop(first);
        let state: OptimizerState = serde_json::from_str(&saved).unwrap();
        assert_eq!(state.iterations, 3);
        assert_eq!(state.tensors.len(), 2 * config.slot_names().len());
        let mut second = Optimizer::new(config.clone());
        second.load_state(state).unwrap();
        run(&mut second, &mut resumed, 3, 6);

        for (a, b) in full.iter().zip(&resumed) {
            assert_eq!(a.value.data, b.value.data, "{}", config.kind());
        }
        assert_eq!(second.iterations(), 6);
    }
}

#[test]
fn mismatched_state_is_an_error_not_a_panic() {
    let mut opt = Optimizer::new(OptimizerConfig::adam());
    let mut a = param(&[1.0, 2.0]);
    opt.step(&mut [&mut a], 0.1).unwrap();
    let state = opt.state();

    // Wrong kind.
    let mut sgd = Optimizer::new(OptimizerConfig::sgd());
    assert!(sgd.load_state(state.clone()).is_err());

    // Wrong parameter count or size: error, nothing changes.
    let mut b = param(&[1.0, 2.0, 3.0]);
    let before = b.value.data.clone();
    assert!(opt.step(&mut [&mut b], 0.1).is_err());
    assert!(opt.step(&mut [&mut a, &mut b], 0.1).is_err());
    assert_eq!(b.value.data, before);
    assert_eq!(opt.iterations(), 1);

    // Missing or unknown tensors.
    let mut fresh = Optimizer::new(OptimizerConfig::adam());
    let mut partial = state.clone();
    partial.tensors.pop();
    assert!(fresh.load_state(partial).is_err());
    let mut odd = state;
    odd.tensors[0].0 = "0.accumulator".into();
    assert!(fresh.load_state(odd).is_err());
}
