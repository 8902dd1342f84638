//! `modelsmith deploy --workers N --target kubernetes|slurm`: the launch files parse back into
//! their typed structures, carry no credentials, and the Slurm script really starts a worker
//! (with a stand-in `srun`) that runs a study on the PostgreSQL test server.

mod common;
#[path = "../../modelsmith/tests/pg/mod.rs"]
mod pg;

use common::{assert_bad_input, stderr};

use std::path::Path;
use std::process::{Command, Output};

use modelsmith::deploy::bundle::Resources;
use modelsmith::deploy::launch::kubernetes::{worker_job, Job};
use modelsmith::deploy::launch::slurm::SlurmArray;
use modelsmith::deploy::launch::{LaunchOptions, Target};
use modelsmith::search::TrialState;
use modelsmith::store::{PostgresStorage, Storage};

fn modelsmith(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_modelsmith"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("the binary runs")
}

fn options(target: Target) -> LaunchOptions {
    LaunchOptions {
        workers: 4,
        target,
        study: "digits-search".into(),
        name: "digits-search-workers".into(),
        image: "registry.example/modelsmith:0.1.0".into(),
        storage_secret: "pg-url".into(),
        storage_secret_key: "url".into(),
        resources: Resources {
            cpu_request: "1".into(),
            cpu_limit: "2".into(),
            memory_request: "512Mi".into(),
            memory_limit: "2Gi".into(),
        },
        gpus: Some(1),
        time_limit: Some("02:00:00".into()),
    }
}

const FLAGS: &[&str] = &[
    "--workers",
    "4",
    "--study",
    "digits-search",
    "--image",
    "registry.example/modelsmith:0.1.0",
    "--storage-secret",
    "pg-url",
    "--cpu-request",
    "1",
    "--cpu-limit",
    "2",
    "--memory-request",
    "512Mi",
    "--memory-limit",
    "2Gi",
    "--gpus",
    "1",
    "--time-limit",
    "02:00:00",
];

#[test]
fn the_kubernetes_indexed_job_parses_back_and_reads_the_url_from_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["deploy", "--target", "kubernetes", "--out", "launch"];
    args.extend(FLAGS);
    let out = modelsmith(dir.path(), &args);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = std::fs::read_to_string(dir.path().join("launch/worker-job.yaml")).unwrap();
    let job: Job = serde_yaml_ng::from_str(&text).unwrap();
    assert_eq!(job, worker_job(&options(Target::Kubernetes)));
    assert_eq!(
        (job.api_version.as_str(), job.kind.as_str()),
        ("batch/v1", "Job")
    );
    assert_eq!(job.spec.completion_mode, "Indexed");
    assert_eq!((job.spec.completions, job.spec.parallelism), (4, 4));
    let c = &job.spec.template.spec.containers[0];
    assert_eq!(c.args, ["worker", "--study", "digits-search", "--quiet"]);
    assert_eq!(c.env.len(), 1);
    assert_eq!(c.env[0].name, "MODELSMITH_STORAGE");
    assert_eq!(c.env[0].value, None, "never inline");
    let secret = &c.env[0].value_from.as_ref().unwrap().secret_key_ref;
    assert_eq!(
        (secret.name.as_str(), secret.key.as_str()),
        ("pg-url", "url")
    );
    assert!(!secret.optional);
    assert_eq!(c.resources.limits["nvidia.com/gpu"], "1");
    assert_eq!(c.resources.requests["nvidia.com/gpu"], "1");
    assert!(c.ports.is_empty() && c.readiness_probe.is_none());
    assert!(!text.contains("postgres://"));
    // Without --gpus there is no GPU request; the default name comes from the study.
    let out = modelsmith(
        dir.path(),
        &[
            "deploy",
            "--workers",
            "2",
            "--target",
            "kubernetes",
            "--study",
            "My_Study",
            "--out",
            "plain",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let job: Job = serde_yaml_ng::from_str(
        &std::fs::read_to_string(dir.path().join("plain/worker-job.yaml")).unwrap(),
    )
    .unwrap();
    assert_eq!(job.metadata.name, "my-study-workers");
    let c = &job.spec.template.spec.containers[0];
    assert!(!c.resources.limits.contains_key("nvidia.com/gpu"));
    assert_eq!(
        c.env[0].value_from.as_ref().unwrap().secret_key_ref.name,
        "modelsmith-storage"
    );
}

#[test]
fn the_slurm_array_parses_back_and_is_valid_bash() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["deploy", "--target", "slurm", "--out", "launch"];
    args.extend(FLAGS);
    let out = modelsmith(dir.path(), &args);
    assert!(out.status.success(), "{}", stderr(&out));
    let path = dir.path().join("launch/worker-array.sbatch");
    let text = std::fs::read_to_string(&path).unwrap();
    let parsed = SlurmArray::parse(&text).unwrap();
    assert_eq!(parsed, SlurmArray::from_options(&options(Target::Slurm)));
    assert_eq!(parsed.workers, 4);
    assert_eq!((parsed.cpus_per_task, parsed.mem.as_str()), (2, "2048M"));
    assert!(text.contains("#SBATCH --array=0-3\n"), "{text}");
    assert!(text.contains("#SBATCH --gpus-per-task=1\n"), "{text}");
    assert!(!text.contains("postgres://"));
    let syntax = Command::new("bash").arg("-n").arg(&path).output().unwrap();
    assert!(syntax.status.success(), "{}", stderr(&syntax));
    // Without the URL anywhere, a task refuses to start, saying what to set.
    let run = Command::new("bash")
        .arg(&path)
        .env_remove("MODELSMITH_STORAGE")
        .env("MODELSMITH_STORAGE_FILE", dir.path().join("missing"))
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(2));
    assert!(
        stderr(&run).contains("set MODELSMITH_STORAGE"),
        "{}",
        stderr(&run)
    );
}

/// The script as Slurm would run one task: `srun` replaced by a stand-in that runs its command,
/// `modelsmith` on the PATH, the URL in a file. The worker runs the whole (small) study.
#[test]
fn a_slurm_task_runs_a_real_worker_on_the_study() {
    let Some(url) = pg::fresh_schema("launch_slurm") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("study.toml"),
        r#"
[study]
name = "slurm-study"
trials = 3
retrain = false
[pruner]
kind = "none"
[train]
data = "digits"
model = "mlp"
epochs = 1
[space]
lr = { low = 1e-3, high = 1e-2, log = true }
"#,
    )
    .unwrap();
    let out = modelsmith(
        d,
        &[
            "tune",
            "--config",
            "study.toml",
            "--storage",
            &url,
            "--workers",
            "0",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = modelsmith(
        d,
        &[
            "deploy",
            "--workers",
            "2",
            "--target",
            "slurm",
            "--study",
            "slurm-study",
            "--out",
            "launch",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));

    let bin = d.join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::fs::write(
        bin.join("srun"),
        "#!/bin/sh\n# stand-in for Slurm's srun: drop its options, run the command\nwhile [ \"${1#-}\" != \"$1\" ]; do shift; done\nexec \"$@\"\n",
    )
    .unwrap();
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_modelsmith"))
        .parent()
        .unwrap();
    Command::new("chmod")
        .arg("+x")
        .arg(bin.join("srun"))
        .status()
        .unwrap();
    std::fs::write(d.join("storage-url"), format!("{url}\n")).unwrap();
    let path = format!(
        "{}:{}:{}",
        bin.display(),
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let run = Command::new("bash")
        .arg(d.join("launch/worker-array.sbatch"))
        .current_dir(d)
        .env("PATH", path)
        .env_remove("MODELSMITH_STORAGE")
        .env("MODELSMITH_STORAGE_FILE", d.join("storage-url"))
        .env("SLURM_ARRAY_TASK_ID", "0")
        .env("SLURM_CPUS_PER_TASK", "1")
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", stderr(&run));
    let s = PostgresStorage::open_existing(&url).unwrap();
    let study = s.get_study("slurm-study").unwrap().unwrap();
    let trials = s.trials(study.id).unwrap();
    assert_eq!(trials.len(), 3);
    assert!(trials.iter().all(|t| t.state == TrialState::Complete));
}

#[test]
fn bad_launch_input_exits_2_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let base = ["deploy", "--target", "kubernetes", "--out", "x"];
    let run = |extra: &[&str]| {
        let mut args = base.to_vec();
        args.extend(extra);
        modelsmith(d, &args)
    };
    assert_bad_input(&run(&["--workers", "0", "--study", "s"]), "--workers");
    assert_bad_input(&run(&["--workers", "2", "--study", "a b"]), "--study 'a b'");
    assert_bad_input(
        &run(&[
            "--workers",
            "2",
            "--study",
            "s",
            "--storage-secret",
            "Bad_Name",
        ]),
        "--storage-secret",
    );
    assert_bad_input(
        &run(&["--workers", "2", "--study", "s", "--memory-limit", "lots"]),
        "--memory-limit",
    );
    assert!(run(&["--workers", "2", "--study", "s"]).status.success());
    assert_bad_input(&run(&["--workers", "2", "--study", "s"]), "--force");
    assert!(run(&["--workers", "2", "--study", "s", "--force"])
        .status
        .success());
    let out = modelsmith(
        d,
        &["deploy", "--workers", "2", "--study", "s", "--out", "y"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--target"), "{}", stderr(&out));
}
