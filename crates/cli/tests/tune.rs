//! `modelsmith tune` and `modelsmith studies` end to end on real SQLite files: crash safety
//! (kill -9 mid-trial, then the same command again), several processes on one file, the
//! reports, and the bad-input contract.

mod common;
use common::{assert_bad_input, stderr, write_table};

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use modelsmith::search::TrialState;
use modelsmith::store::{SqliteStorage, Storage};

fn modelsmith(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_modelsmith"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("the binary runs")
}

fn write_config(dir: &Path, name: &str, trials: u64, epochs: u32, extra: &str) -> PathBuf {
    let table = write_table(dir, 400);
    let text = format!(
        r#"
[study]
trials = {trials}
sampler = "tpe"
retrain = false
[pruner]
kind = "none"
[train]
data = "csv:{}"
target = "label"
model = "mlp"
epochs = {epochs}
batch_size = 16
early_stopping = {{ patience = 0 }}
[space]
optimizer = {{ choices = ["sgd", "adam"] }}
lr = {{ low = 1e-3, high = 0.3, log = true }}
momentum = {{ low = 0.5, high = 0.95, when = {{ optimizer = "sgd" }} }}
{extra}
"#,
        table.display()
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

fn trials_in(db: &Path, study: &str) -> Vec<modelsmith::search::FrozenTrial> {
    let storage = SqliteStorage::open(db).unwrap();
    let record = storage.get_study(study).unwrap().expect("study exists");
    storage.trials(record.id).unwrap()
}

#[test]
fn a_tune_run_is_recorded_and_listed_shown_and_exported() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "small", 6, 3, "");
    let out = modelsmith(
        dir.path(),
        &[
            "tune",
            "--config",
            config.to_str().unwrap(),
            "--storage",
            "sqlite:s.db",
            "--json",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["study"], "small");
    assert_eq!(report["complete"], 6);
    assert!(report["best"]["value"].as_f64().unwrap() > 0.6, "{report}");
    assert!(
        stderr(&out).contains("trial   5"),
        "live view: {}",
        stderr(&out)
    );

    let trials = trials_in(&dir.path().join("s.db"), "small");
    assert_eq!(trials.len(), 6);
    for t in &trials {
        assert_eq!(t.state, TrialState::Complete);
        assert_eq!(t.intermediate.len(), 3, "one value per epoch");
        assert!(t.attrs.contains_key("config") && t.attrs.contains_key("model_spec"));
        assert!(t.attrs.contains_key("seed"));
        assert!(t.duration_seconds().unwrap() >= 0.0);
        // What its training cost, stored with it so a study's total adds up across workers.
        let e = &t.attrs["energy"];
        assert!(e["joules"].as_f64().unwrap() > 0.0, "{e}");
        assert_eq!(e["method"], "estimate");
        // momentum exists only for sgd trials.
        let optimizer = t.param_values()["optimizer"].to_string();
        assert_eq!(t.params.contains_key("momentum"), optimizer == "sgd");
    }

    let list = modelsmith(dir.path(), &["studies", "list", "--storage", "sqlite:s.db"]);
    assert!(list.status.success(), "{}", stderr(&list));
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(
        text.contains("small") && text.contains("maximize"),
        "{text}"
    );

    let show = modelsmith(
        dir.path(),
        &["studies", "show", "small", "--storage", "sqlite:s.db"],
    );
    assert!(show.status.success(), "{}", stderr(&show));
    let shown = String::from_utf8_lossy(&show.stdout).into_owned();
    assert!(shown.contains("best: trial"));
    let total: f64 = trials
        .iter()
        .map(|t| t.attrs["energy"]["joules"].as_f64().unwrap())
        .sum();
    let line = shown
        .lines()
        .find(|l| l.starts_with("energy: "))
        .unwrap_or_else(|| panic!("no energy line: {shown}"));
    assert!(line.contains("over 6 trials (estimate)"), "{line}");
    assert!(
        line.contains(&modelsmith::energy::format_joules(total)),
        "{line} vs {total} J"
    );
    // Times are dates, not Unix seconds.
    let year = |text: &str| text.contains(" 20") && text.contains('Z');
    assert!(year(&shown), "{shown}");
    assert!(year(&String::from_utf8_lossy(&list.stdout)));

    let csv = modelsmith(
        dir.path(),
        &[
            "studies",
            "export",
            "small",
            "--storage",
            "sqlite:s.db",
            "--format",
            "csv",
        ],
    );
    let csv = String::from_utf8_lossy(&csv.stdout).into_owned();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 7, "{csv}");
    assert!(lines[0].contains("param_lr") && lines[0].contains("param_optimizer"));
    // started_at is RFC 3339: 2026-12-07T13:43:45.123Z.
    let started = lines[1].split(',').nth(3).unwrap();
    assert!(
        started.len() >= 20 && started.as_bytes()[10] == b'T' && started.ends_with('Z'),
        "{started}"
    );

    let json = modelsmith(
        dir.path(),
        &[
            "studies",
            "export",
            "small",
            "--storage",
            "sqlite:s.db",
            "--format",
            "json",
        ],
    );
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["trials"].as_array().unwrap().len(), 6);

    // The same command again: the study already has its 6 trials.
    let again = modelsmith(
        dir.path(),
        &[
            "tune",
            "--config",
            config.to_str().unwrap(),
            "--storage",
            "sqlite:s.db",
            "--json",
        ],
    );
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(trials_in(&dir.path().join("s.db"), "small").len(), 6);
}

#[test]
fn kill_9_mid_trial_then_the_same_command_finishes_the_study() {
    let dir = tempfile::tempdir().unwrap();
    // Slow enough trials (many epochs) that the kill lands inside one.
    let config = write_config(dir.path(), "crash", 8, 400, "");
    let db = dir.path().join("c.db");
    let args = [
        "tune",
        "--config",
        config.to_str().unwrap(),
        "--storage",
        "sqlite:c.db",
        "--quiet",
    ];
    let mut child = Command::new(env!("CARGO_BIN_EXE_modelsmith"))
        .current_dir(dir.path())
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait for two finished trials and a third one running, then kill -9.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        assert!(Instant::now() < deadline, "the first run made no progress");
        std::thread::sleep(Duration::from_millis(50));
        if !db.exists() {
            continue;
        }
        let Ok(storage) = SqliteStorage::open(&db) else {
            continue;
        };
        let Ok(Some(study)) = storage.get_study("crash") else {
            continue;
        };
        let trials = storage.trials(study.id).unwrap();
        let complete = trials
            .iter()
            .filter(|t| t.state == TrialState::Complete)
            .count();
        let running = trials
            .iter()
            .any(|t| t.state == TrialState::Running && !t.intermediate.is_empty());
        if complete >= 2 && running {
            break;
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let before = trials_in(&db, "crash");
    let killed: Vec<u64> = before
        .iter()
        .filter(|t| t.state == TrialState::Running)
        .map(|t| t.number)
        .collect();
    assert_eq!(killed.len(), 1, "one trial was running: {before:?}");

    let out = modelsmith(dir.path(), &args);
    assert!(out.status.success(), "{}", stderr(&out));
    let after = trials_in(&db, "crash");
    // Completed trials are intact.
    for b in before.iter().filter(|t| t.state == TrialState::Complete) {
        let a = after.iter().find(|t| t.number == b.number).unwrap();
        assert_eq!(a, b, "trial {} changed", b.number);
    }
    // The killed trial is failed, with an explanation; nothing is running; numbers are unique.
    let k = after.iter().find(|t| t.number == killed[0]).unwrap();
    assert_eq!(k.state, TrialState::Failed);
    assert!(
        k.error.as_deref().unwrap().contains("stopped"),
        "{:?}",
        k.error
    );
    assert!(after.iter().all(|t| t.state != TrialState::Running));
    let mut numbers: Vec<u64> = after.iter().map(|t| t.number).collect();
    numbers.dedup();
    assert_eq!(numbers, (0..after.len() as u64).collect::<Vec<_>>());
    // The study reached its count.
    assert_eq!(
        after
            .iter()
            .filter(|t| t.state == TrialState::Complete)
            .count(),
        8
    );

    // Asked to, a third run retries the failed trial with its parameters.
    let mut retry_args = args.to_vec();
    retry_args.extend(["--retry-failed", "--trials", "9"]);
    let out = modelsmith(dir.path(), &retry_args);
    assert!(out.status.success(), "{}", stderr(&out));
    let last = trials_in(&db, "crash");
    let retry = last
        .iter()
        .find(|t| t.attrs.get("retry_of").and_then(|v| v.as_u64()) == Some(killed[0]))
        .expect("a retry of the killed trial");
    assert_eq!(retry.state, TrialState::Complete);
    assert_eq!(retry.params, k.params);
}

#[test]
fn four_processes_share_one_sqlite_file_without_errors() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "shared", 200, 1, "");
    let args = [
        "tune",
        "--config",
        config.to_str().unwrap(),
        "--storage",
        "sqlite:p.db",
        "--quiet",
        "--threads",
        "1",
    ];
    let children: Vec<_> = (0..4)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_modelsmith"))
                .current_dir(dir.path())
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let spawned: Vec<u32> = children.iter().map(|c| c.id()).collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "a worker failed: {}", stderr(&out));
        assert!(
            stderr(&out).is_empty(),
            "a worker complained: {}",
            stderr(&out)
        );
    }
    let trials = trials_in(&dir.path().join("p.db"), "shared");
    assert_eq!(trials.len(), 200);
    assert!(trials.iter().all(|t| t.state == TrialState::Complete));
    let mut numbers: Vec<u64> = trials.iter().map(|t| t.number).collect();
    numbers.sort();
    numbers.dedup();
    assert_eq!(numbers, (0..200).collect::<Vec<_>>());
    // All four processes took part: each of them ran trials.
    for pid in &spawned {
        let ran = trials
            .iter()
            .filter(|t| t.owner.as_ref().is_some_and(|o| o.pid == *pid))
            .count();
        assert!(ran > 0, "process {pid} ran no trial (of {spawned:?})");
    }
}

#[test]
fn bad_tune_input_exits_2_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let run = |name: &str, extra: &str, more: &[&str]| {
        let config = write_config(d, name, 2, 1, extra);
        let mut args = vec!["tune", "--storage", "memory:", "--config"];
        let config = config.to_str().unwrap().to_string();
        args.push(&config);
        args.extend(more);
        modelsmith(d, &args)
    };
    assert_bad_input(
        &run("inverted", "decay = { low = 0.1, high = 0.01 }", &[]),
        "space.decay: empty range",
    );
    assert_bad_input(
        &run("typo", "learning_rate = { low = 0.1, high = 0.2 }", &[]),
        "learning_rate",
    );
    assert_bad_input(
        &run("sampler", "", &["--sampler", "annealing"]),
        "invalid value 'annealing' for '--sampler",
    );
    assert_bad_input(
        &run("pruner", "", &["--pruner", "sometimes"]),
        "invalid value 'sometimes' for '--pruner",
    );
    assert_bad_input(
        &run("timeout", "", &["--timeout", "soon"]),
        "duration 'soon'",
    );
    std::fs::write(d.join("broken.toml"), "[study\ntrials = 3").unwrap();
    assert_bad_input(
        &modelsmith(d, &["tune", "--config", "broken.toml"]),
        "broken.toml",
    );
    let config = write_config(d, "ok", 2, 1, "");
    let config = config.to_str().unwrap();
    assert_bad_input(
        &modelsmith(
            d,
            &[
                "tune",
                "--config",
                config,
                "--storage",
                "sqlite:/no/such/dir/x.db",
            ],
        ),
        "/no/such/dir/x.db",
    );
    assert_bad_input(
        &modelsmith(d, &["tune", "--config", config, "--storage", "redis://x"]),
        "unknown storage",
    );
    std::fs::write(d.join("garbage.db"), vec![7u8; 4096]).unwrap();
    assert_bad_input(
        &modelsmith(
            d,
            &["tune", "--config", config, "--storage", "sqlite:garbage.db"],
        ),
        "garbage.db",
    );
    assert_bad_input(
        &modelsmith(d, &["studies", "list", "--storage", "sqlite:missing.db"]),
        "missing.db",
    );
    let made = modelsmith(
        d,
        &[
            "tune",
            "--config",
            config,
            "--storage",
            "sqlite:real.db",
            "--quiet",
        ],
    );
    assert!(made.status.success(), "{}", stderr(&made));
    assert_bad_input(
        &modelsmith(
            d,
            &["studies", "show", "nope", "--storage", "sqlite:real.db"],
        ),
        "no study named 'nope'",
    );
    assert_bad_input(
        &modelsmith(
            d,
            &["studies", "delete", "nope", "--storage", "sqlite:real.db"],
        ),
        "no study named 'nope'",
    );
    // Delete the real one: it is gone from the list, and deleting again is bad input.
    let list = |d| {
        modelsmith(
            d,
            &["studies", "list", "--storage", "sqlite:real.db", "--json"],
        )
    };
    let names = |out: &std::process::Output| {
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s["study"]["name"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    let before = names(&list(d));
    assert_eq!(before.len(), 1, "{before:?}");
    let deleted = modelsmith(
        d,
        &[
            "studies",
            "delete",
            &before[0],
            "--storage",
            "sqlite:real.db",
        ],
    );
    assert!(deleted.status.success(), "{}", stderr(&deleted));
    assert!(
        stderr(&deleted).contains("deleted study"),
        "{}",
        stderr(&deleted)
    );
    assert!(names(&list(d)).is_empty());
}
