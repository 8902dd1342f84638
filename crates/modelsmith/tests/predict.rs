//! The inference path (`Predictor`) on a real trained model and real test digits: the
//! allocation-free `outputs_into` against the `outputs` wrapper, batches whose layers
//! split across three pool threads against one image at a time, and bad buffer sizes.

use modelsmith::data::{load, LoadOptions, LoadedData};
use modelsmith::predict::Predictor;
use modelsmith::train::{train, Silent, TrainConfig};

fn digits(n_train: usize, n_test: usize) -> LoadedData {
    let data = load("digits", &LoadOptions::default()).unwrap();
    LoadedData {
        train: data.train.subset(&(0..n_train).collect::<Vec<_>>()),
        test: data.test.subset(&(0..n_test).collect::<Vec<_>>()),
        info: data.info,
        task_choice: None,
    }
}

#[test]
fn split_batches_match_one_image_at_a_time_and_bad_sizes_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let data = digits(600, 80);
    let out = dir.path().join("model");
    let config = TrainConfig {
        model: "seed-cnn".into(),
        epochs: 2,
        batch_size: 32,
        optimizer: "adam".into(),
        lr: 3e-3,
        ..TrainConfig::default()
    };
    train(&config, &data, &out, false, &mut Silent).unwrap();
    let test = &data.test;
    let len = test.x.len() / test.len();

    // Three pool threads: every layer of a batch splits three ways; one image stays on one.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(3)
        .build()
        .unwrap();
    pool.install(|| {
        let mut predictor = Predictor::load(&out).unwrap();
        let classes = predictor.meta.outputs;
        assert_eq!(predictor.input_len(), len);

        // Reference: each image alone (never split).
        let mut single = vec![0f32; test.len() * classes];
        for (i, o) in single.chunks_exact_mut(classes).enumerate() {
            predictor.outputs_into(test.example(i), o).unwrap();
        }
        let mut correct = 0;
        for (i, row) in single.chunks_exact(classes).enumerate() {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5, "image {i}");
            let best = (0..classes).max_by(|&a, &b| row[a].total_cmp(&row[b]));
            correct += usize::from(best == Some(test.y[i] as usize));
        }
        assert!(
            correct * 10 >= test.len() * 7,
            "{correct}/{} right",
            test.len()
        );

        for batch in [2, 3, 5, 32, 33, 80] {
            for start in [0, test.len() - batch] {
                let x = &test.x[start * len..(start + batch) * len];
                let mut got = vec![f32::NAN; batch * classes];
                predictor.outputs_into(x, &mut got).unwrap();
                let want = &single[start * classes..(start + batch) * classes];
                for (k, (a, b)) in got.iter().zip(want).enumerate() {
                    assert!(
                        (a - b).abs() < 1e-5,
                        "batch {batch} from {start}, value {k}: {a} vs {b}"
                    );
                }
                // The allocating wrapper gives the same numbers.
                let inputs: Vec<&[f32]> = x.chunks_exact(len).collect();
                let rows = predictor.outputs(&inputs).unwrap();
                assert_eq!(rows.concat(), got, "batch {batch}: probabilities vs _into");
            }
        }

        let mut empty: [f32; 0] = [];
        predictor.outputs_into(&[], &mut empty).unwrap();
        let mut out = vec![0f32; classes];
        let err = predictor
            .outputs_into(&test.x[..len + 1], &mut out)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a whole number of inputs"), "{err}");
        let err = predictor
            .outputs_into(&test.x[..2 * len], &mut out)
            .unwrap_err()
            .to_string();
        assert!(err.contains("output buffer holds 10 values"), "{err}");
        let err = predictor
            .outputs(&[&test.x[..len - 1]])
            .unwrap_err()
            .to_string();
        assert!(err.contains("input 1 has 783 values"), "{err}");
    });
}
