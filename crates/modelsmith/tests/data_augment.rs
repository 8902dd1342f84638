//! Augmentation: determinism, identities, finiteness, on real digits.

use modelsmith::data::{load, Augment, LoadOptions};

/// The first `n` bundled digits as one batch.
fn digits_batch(n: usize) -> (Vec<f32>, Vec<usize>) {
    let d = load("digits", &LoadOptions::default()).unwrap();
    let idx: Vec<usize> = (0..n).collect();
    let (mut x, mut y) = (Vec::new(), Vec::new());
    d.train.gather(&idx, &mut x, &mut y);
    (x, d.train.shape.clone())
}

#[test]
fn identity_config_leaves_data_unchanged() {
    let (x, shape) = digits_batch(16);
    let mut y = x.clone();
    let a = Augment::default();
    assert!(a.is_identity());
    a.apply_batch(&mut y, &shape, 16, 5);
    assert_eq!(x, y);
}

#[test]
fn a_near_zero_warp_leaves_images_unchanged() {
    // Ranges of a billionth of a degree and of the width: not the identity config (which
    // returns before warping), so the rotation/shift warp runs, and must reproduce the image.
    let (x, shape) = digits_batch(8);
    let mut y = x.clone();
    let a = Augment {
        rotation_deg: 1e-9,
        shift: 1e-9,
        hflip: false,
        noise_std: 0.0,
    };
    assert!(!a.is_identity());
    a.apply_batch(&mut y, &shape, 8, 123);
    let worst = x
        .iter()
        .zip(&y)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(worst < 1e-5, "max change {worst}");
    // And a real rotation changes them (so the comparison above is not vacuous).
    let mut z = x.clone();
    Augment {
        rotation_deg: 15.0,
        ..a
    }
    .apply_batch(&mut z, &shape, 8, 123);
    assert!(x.iter().zip(&z).any(|(a, b)| (a - b).abs() > 0.1));
}

#[test]
fn hflip_twice_is_identity() {
    let (x, shape) = digits_batch(32);
    let a = Augment {
        hflip: true,
        ..Augment::default()
    };
    let mut y = x.clone();
    a.apply_batch(&mut y, &shape, 32, 9);
    assert_ne!(x, y, "some of 32 examples are flipped");
    a.apply_batch(&mut y, &shape, 32, 9);
    assert_eq!(x, y);
}

#[test]
fn hflip_mirrors_rows() {
    let shape = [2usize, 3, 1];
    let x: Vec<f32> = (0..6 * 64).map(|v| (v % 6) as f32).collect();
    let mut y = x.clone();
    Augment {
        hflip: true,
        ..Augment::default()
    }
    .apply_batch(&mut y, &shape, 64, 1);
    let (mut kept, mut flipped) = (0, 0);
    for e in y.chunks(6) {
        if e == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0] {
            kept += 1;
        } else if e == [2.0, 1.0, 0.0, 5.0, 4.0, 3.0] {
            flipped += 1;
        } else {
            panic!("neither the image nor its mirror: {e:?}");
        }
    }
    // Each example flips with probability 1/2: of 64, both kinds occur.
    assert!(kept > 8 && flipped > 8, "{kept} kept, {flipped} flipped");
}

#[test]
fn deterministic_by_seed_and_finite() {
    let (x, shape) = digits_batch(64);
    let a = Augment {
        rotation_deg: 15.0,
        shift: 0.1,
        hflip: true,
        noise_std: 0.05,
    };
    a.validate().unwrap();
    let run = |seed| {
        let mut y = x.clone();
        a.apply_batch(&mut y, &shape, 64, seed);
        y
    };
    let (p, q, r) = (run(1), run(1), run(2));
    assert_eq!(p, q);
    assert_ne!(p, r);
    assert_ne!(p, x);
    assert!(p.iter().all(|v| v.is_finite()));
    // Same result on one thread: per-example RNGs do not depend on scheduling.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    assert_eq!(pool.install(|| run(1)), p);
}

#[test]
fn light_preset_keeps_most_of_the_ink() {
    let (x, shape) = digits_batch(100);
    let mut y = x.clone();
    let a = Augment::light();
    assert!(!a.is_identity());
    a.apply_batch(&mut y, &shape, 100, 42);
    let ink = |v: &[f32]| v.iter().sum::<f32>();
    for (e0, e1) in x.chunks(784).zip(y.chunks(784)) {
        let ratio = ink(e1) / ink(e0);
        assert!((0.75..1.1).contains(&ratio), "ink ratio {ratio}");
        assert!(e1.iter().all(|&v| (0.0..=1.0 + 1e-5).contains(&v)));
    }
}

#[test]
fn table_shapes_get_noise_only() {
    let mut x = vec![1.0f32; 4 * 5];
    Augment {
        rotation_deg: 30.0,
        noise_std: 0.1,
        ..Augment::default()
    }
    .apply_batch(&mut x, &[5], 4, 0);
    assert!(x.iter().all(|v| v.is_finite()));
    assert!(x.iter().any(|&v| v != 1.0));
}

#[test]
fn serde_defaults_and_unknown_fields() {
    let a: Augment = serde_json::from_str(r#"{"rotation_deg": 10}"#).unwrap();
    assert_eq!(
        a,
        Augment {
            rotation_deg: 10.0,
            ..Augment::default()
        }
    );
    assert!(serde_json::from_str::<Augment>(r#"{"rotate": 10}"#).is_err());
}
