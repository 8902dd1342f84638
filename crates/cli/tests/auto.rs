//! `modelsmith auto` end to end: a short search on the bundled digits whose saved model
//! evaluates to the printed test accuracy, with its ONNX file and the Pareto front in
//! `studies show`; and the bad-input contract (exit 2, one line).

mod common;
use common::{assert_bad_input, stderr};

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn modelsmith(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_modelsmith"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("the binary runs")
}

fn json(out: &Output) -> serde_json::Value {
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn auto_on_digits_saves_a_model_that_evaluates_to_the_printed_accuracy() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = modelsmith(
        d,
        &[
            "auto",
            "--data",
            "digits",
            "--time-budget",
            "20s",
            "--max-params",
            "30000",
            "--storage",
            "sqlite:s.db",
            "--out",
            "model",
            "--json",
        ],
    );
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let report = json(&out);
    let final_model = &report["final_model"];
    let test_accuracy = final_model["test"]["accuracy"].as_f64().unwrap();
    assert!(test_accuracy > 0.85, "test accuracy {test_accuracy}");
    assert!(final_model["params"].as_u64().unwrap() <= 30_000);
    // A trial's epoch in progress finishes after the search's deadline: a loaded machine
    // overruns by up to an epoch or two, never by a whole budget.
    let total = report["total_seconds"].as_f64().unwrap();
    assert!(total < 20.0 * 2.0, "took {total}s");
    assert!(d.join("model/model.onnx").exists());
    // The summary on stderr: the leaderboard with the final test accuracy, and next steps.
    assert!(
        err.contains(&format!("{:.2}%", test_accuracy * 100.0)),
        "{err}"
    );
    assert!(err.contains("modelsmith studies show auto-digits-hillclimb --storage sqlite:s.db"));
    assert!(err.contains("modelsmith serve --model model"));
    // Progress: trials, epochs, time left.
    assert!(err.contains("trial   0  epoch 1/"), "{err}");
    assert!(err.contains(" left"), "{err}");

    let eval = modelsmith(
        d,
        &["evaluate", "--model", "model", "--data", "digits", "--json"],
    );
    assert!(eval.status.success(), "{}", stderr(&eval));
    let evaluated = json(&eval);
    let acc = evaluated["accuracy"]
        .as_f64()
        .or_else(|| evaluated["test_accuracy"].as_f64())
        .unwrap_or_else(|| panic!("no accuracy in {evaluated}"));
    assert!(
        (acc - test_accuracy).abs() < 1e-6,
        "evaluate says {acc}, auto printed {test_accuracy}"
    );

    let show = modelsmith(
        d,
        &[
            "studies",
            "show",
            "auto-digits-hillclimb",
            "--storage",
            "sqlite:s.db",
        ],
    );
    assert!(show.status.success(), "{}", stderr(&show));
    let text = String::from_utf8_lossy(&show.stdout);
    assert!(text.contains("Pareto front"), "{text}");
    assert!(d.join("s.db.artifacts/auto-digits-hillclimb").is_dir());
}

fn write_csv(dir: &Path, name: &str, one_class: bool) -> PathBuf {
    let mut text = String::from("a,b,label\n");
    for i in 0..60 {
        let label = if one_class { 0 } else { i % 2 };
        text.push_str(&format!(
            "{},{},{label}\n",
            i as f32 / 60.0,
            (i * 7 % 11) as f32
        ));
    }
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn bad_input_exits_2_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let two = write_csv(d, "two.csv", false);
    let one = write_csv(d, "one.csv", true);
    let csv = |p: &PathBuf| format!("csv:{}", p.display());
    let base = ["auto", "--storage", "memory:", "--out", "m"];
    let run = |extra: &[&str]| {
        let mut args: Vec<&str> = base.to_vec();
        args.extend_from_slice(extra);
        modelsmith(d, &args)
    };
    assert_bad_input(
        &run(&["--strategy", "genetic"]),
        "invalid value 'genetic' for '--strategy",
    );
    assert_bad_input(&run(&["--time-budget", "soon"]), "--time-budget");
    assert_bad_input(&run(&["--time-budget", "2s"]), "is too short");
    assert_bad_input(&run(&["--max-params", "0"]), "--max-params");
    assert_bad_input(
        &run(&["--max-params", "50", "--time-budget", "1m"]),
        "max_params",
    );
    assert_bad_input(&run(&["--max-latency-ms", "0"]), "--max-latency-ms");
    assert_bad_input(&run(&["--ensemble", "0"]), "--ensemble");
    assert_bad_input(
        &run(&[
            "--data",
            &csv(&two),
            "--target",
            "nope",
            "--time-budget",
            "30s",
        ]),
        "nope",
    );
    assert_bad_input(
        &run(&[
            "--data",
            &csv(&one),
            "--target",
            "label",
            "--time-budget",
            "30s",
        ]),
        "single value `0` in all 60 rows",
    );
    assert!(!d.join("m").exists(), "nothing written on bad input");
}
