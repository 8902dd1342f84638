//! The training loop on the real bundled digits: resume is exact, schedules and dynamic batch
//! sizes show in the metrics, architectures beyond the seed CNN train.

use std::path::Path;

use modelsmith::data::{load, LoadOptions, LoadedData};
use modelsmith::model::read_weights_file;
use modelsmith::train::batch_schedule::BatchSchedule;
use modelsmith::train::schedule::LrSchedule;
use modelsmith::train::{train, EpochMetrics, Silent, TrainConfig};

/// The first `n_train` training and `n_test` test digits: small enough for seconds-long runs.
fn digits(n_train: usize, n_test: usize) -> LoadedData {
    let data = load("digits", &LoadOptions::default()).unwrap();
    LoadedData {
        train: data.train.subset(&(0..n_train).collect::<Vec<_>>()),
        test: data.test.subset(&(0..n_test).collect::<Vec<_>>()),
        info: data.info,
        task_choice: None,
    }
}

fn metrics(dir: &Path) -> Vec<EpochMetrics> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn resume_continues_exactly_where_it_stopped() {
    let data = digits(1500, 300);
    let dir = tempfile::tempdir().unwrap();
    let config = TrainConfig {
        epochs: 3,
        model: "mlp".into(), // has dropout, whose mask stream must survive the restart too
        ..TrainConfig::default()
    };
    let straight = dir.path().join("straight");
    train(&config, &data, &straight, false, &mut Silent).unwrap();
    // One complete checkpoint: the state and the one weights file it names.
    let mut files: Vec<String> = std::fs::read_dir(straight.join("checkpoint"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files, vec!["state.json", "weights-3.safetensors"]);

    let resumed = dir.path().join("resumed");
    let first = TrainConfig {
        epochs: 2,
        ..config.clone()
    };
    train(&first, &data, &resumed, false, &mut Silent).unwrap();
    let report = train(&config, &data, &resumed, true, &mut Silent).unwrap();
    assert_eq!(report.epochs_run, 3);

    let a = read_weights_file(&straight.join("weights.safetensors")).unwrap();
    let b = read_weights_file(&resumed.join("weights.safetensors")).unwrap();
    assert_eq!(a, b, "weights after 3 epochs differ from 2 epochs + resume");
    let (ma, mb) = (metrics(&straight), metrics(&resumed));
    assert_eq!(ma.len(), 3);
    for (x, y) in ma.iter().zip(&mb) {
        assert_eq!((x.loss, x.val_loss, x.lr), (y.loss, y.val_loss, y.lr));
    }
}

#[test]
fn resume_refuses_changed_settings_and_missing_checkpoints() {
    let data = digits(300, 100);
    let dir = tempfile::tempdir().unwrap();
    let config = TrainConfig {
        epochs: 1,
        model: "mlp".into(),
        ..TrainConfig::default()
    };
    let err = train(&config, &data, dir.path(), true, &mut Silent).unwrap_err();
    assert!(
        err.is_bad_input() && err.to_string().contains("no checkpoint"),
        "{err}"
    );
    train(&config, &data, dir.path(), false, &mut Silent).unwrap();
    let changed = TrainConfig {
        lr: 0.1,
        epochs: 2,
        ..config
    };
    let err = train(&changed, &data, dir.path(), true, &mut Silent).unwrap_err();
    assert!(err.to_string().contains("differ"), "{err}");
}

#[test]
fn schedules_and_batch_growth_show_in_metrics() {
    let data = digits(1000, 200);
    let dir = tempfile::tempdir().unwrap();
    let config = TrainConfig {
        epochs: 3,
        model: "mlp".into(),
        decay: 0.0,
        schedule: LrSchedule::Step {
            factor: 0.5,
            every_epochs: 1,
        },
        batch_schedule: BatchSchedule::Step {
            factor: 2,
            every_epochs: 1,
            max: 128,
        },
        ..TrainConfig::default()
    };
    train(&config, &data, dir.path(), false, &mut Silent).unwrap();
    let m = metrics(dir.path());
    let lrs: Vec<f32> = m.iter().map(|e| e.lr).collect();
    let batches: Vec<usize> = m.iter().map(|e| e.batch_size).collect();
    assert_eq!(lrs, vec![0.01, 0.005, 0.0025]);
    assert_eq!(batches, vec![32, 64, 128]);
}

#[test]
fn residual_batch_norm_model_with_adam_and_augmentation_learns() {
    let data = digits(2000, 400);
    let dir = tempfile::tempdir().unwrap();
    let spec = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/small-resnet.toml");
    let config = TrainConfig {
        epochs: 2,
        model: spec.display().to_string(),
        optimizer: "adam".into(),
        lr: 0.003,
        decay: 0.0,
        augment: modelsmith::data::Augment::light(),
        clip_norm: Some(5.0),
        ..TrainConfig::default()
    };
    let report = train(&config, &data, dir.path(), false, &mut Silent).unwrap();
    // Ten classes: chance is 10%. Two short epochs on 1,800 images (51.5% when written) must be
    // far above it; the point is that every layer kind trains end to end.
    let accuracy = report.test_accuracy.unwrap();
    assert!(accuracy > 0.3, "accuracy {accuracy}");
    let (meta, _) = modelsmith::model::load_model(dir.path()).unwrap();
    assert!(meta.spec.layers.iter().any(|l| l.kind.type_name() == "add"));
}

#[test]
fn early_stopping_stops_and_restores_the_best_epoch() {
    let data = digits(600, 200);
    let dir = tempfile::tempdir().unwrap();
    // A learning rate this high makes val_loss worse after the first epochs.
    let config = TrainConfig {
        epochs: 30,
        model: "mlp".into(),
        lr: 0.3,
        early_stopping: modelsmith::train::early_stopping::EarlyStopping {
            patience: 2,
            restore_best: true,
            ..Default::default()
        },
        ..TrainConfig::default()
    };
    let report = train(&config, &data, dir.path(), false, &mut Silent).unwrap();
    assert!(report.stopped_early, "{report:?}");
    assert!(report.epochs_run < 30);
    assert_eq!(report.epochs_run, report.best_epoch + 2);
    let m = metrics(dir.path());
    let best = m
        .iter()
        .map(|e| e.val_loss.unwrap())
        .fold(f32::INFINITY, f32::min);
    // The saved weights are the best epoch's: their validation loss is the best one seen.
    assert!(
        (report.val_loss.unwrap() - best).abs() < 1e-5,
        "{report:?} vs {best}"
    );
}

#[test]
fn every_example_config_and_spec_parses_and_builds() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(&examples).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        if text.contains("[[layers]]") {
            let spec = modelsmith::model::ModelSpec::from_file(&path).unwrap();
            modelsmith::model::build_network(&spec, &[28, 28, 1], 10, 0).unwrap();
        } else if text.contains("[space]") {
            let config = modelsmith::tune::TuneConfig::from_toml_file(&path).unwrap();
            config.validate().unwrap();
        } else {
            let config = TrainConfig::from_toml_file(&path).unwrap();
            config.validate().unwrap();
        }
        checked += 1;
    }
    assert!(checked >= 3);
    // The reference file states the defaults: it must parse to exactly TrainConfig::default().
    let all = TrainConfig::from_toml_file(&examples.join("all-settings.toml")).unwrap();
    assert_eq!(all, TrainConfig::default());
}

/// Interrupts after a fixed number of steps, as a deadline would, and counts what it saw.
struct InterruptAfter {
    steps: usize,
    seen: usize,
    epochs_ended: u32,
}

impl modelsmith::train::TrainObserver for InterruptAfter {
    fn on_batch(&mut self, _batch: usize, _loss: f32, _accuracy: Option<f32>, _ips: f64) {
        self.seen += 1;
    }
    fn on_epoch_end(&mut self, _m: &EpochMetrics) {
        self.epochs_ended += 1;
    }
    fn interrupt(&mut self) -> bool {
        self.seen >= self.steps
    }
}

#[test]
fn an_interrupt_stops_mid_epoch_and_keeps_only_completed_epochs() {
    let data = digits(640, 100);
    let dir = tempfile::tempdir().unwrap();
    let config = TrainConfig {
        epochs: 5,
        model: "mlp".into(),
        batch_size: 32,
        ..TrainConfig::default()
    };
    // 576 training examples after the 10% validation split: 18 steps per epoch; stop 5 steps
    // into the second epoch.
    let mut observer = InterruptAfter {
        steps: 18 + 5,
        seen: 0,
        epochs_ended: 0,
    };
    let report = train(&config, &data, dir.path(), false, &mut observer).unwrap();
    assert_eq!(observer.seen, 23, "no step after the interrupt");
    assert_eq!(observer.epochs_ended, 1);
    assert_eq!(report.epochs_run, 1, "{report:?}");
    assert!(report.stopped_by_observer);
    assert_eq!(
        metrics(dir.path()).len(),
        1,
        "the cut epoch is not recorded"
    );
    // The model is still saved and measured (the weights as they were at the interrupt).
    assert!(report.val_accuracy.unwrap() > 0.0 && report.test_accuracy.unwrap() > 0.0);
    assert!(dir.path().join("weights.safetensors").exists());

    // Cut inside the first epoch: nothing recorded, and the report's sums are plain zeros.
    let mut early = InterruptAfter {
        steps: 5,
        seen: 0,
        epochs_ended: 0,
    };
    let dir = tempfile::tempdir().unwrap();
    let report = train(&config, &data, dir.path(), false, &mut early).unwrap();
    assert_eq!((early.seen, report.epochs_run), (5, 0));
    assert!(report.train_seconds.is_sign_positive() && report.train_seconds == 0.0);
    assert!(report.images_per_second.is_sign_positive());
}
