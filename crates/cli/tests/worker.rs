//! `modelsmith worker` against a real PostgreSQL server (the one `scripts/test` starts, see
//! `pg/mod.rs`): four worker processes share one study of 200 trials; a worker killed with
//! SIGKILL mid-trial has its trial reclaimed; workers in separate network namespaces, one cut
//! off mid-trial; passwords from files and the environment, never printed.

mod common;
#[path = "../../modelsmith/tests/pg/mod.rs"]
mod pg;

use common::{assert_bad_input, stderr, write_table};

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use modelsmith::search::{FrozenTrial, TrialState};
use modelsmith::store::{PostgresStorage, Storage};

fn modelsmith(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_modelsmith"))
        .current_dir(dir)
        .args(args)
        .env_remove("PGPASSWORD")
        .env_remove("MODELSMITH_STORAGE_PASSWORD_FILE")
        .envs(env.iter().copied())
        .output()
        .expect("the binary runs")
}

/// A worker process (optionally inside a network namespace), quiet, one training thread.
fn spawn_worker(dir: &Path, url: &str, netns: Option<&str>) -> Child {
    let bin = env!("CARGO_BIN_EXE_modelsmith");
    let worker = [
        "worker",
        "--storage",
        url,
        "--study",
        "shared",
        "--threads",
        "1",
        "--quiet",
    ];
    let mut cmd = match netns {
        // `ip netns exec` execs the command: the child's pid is the worker's.
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, bin]).args(worker);
            c
        }
        None => {
            let mut c = Command::new(bin);
            c.args(worker);
            c
        }
    };
    cmd.current_dir(dir)
        .env_remove("PGPASSWORD")
        .env_remove("MODELSMITH_STORAGE_PASSWORD_FILE")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the worker starts")
}

/// A study config named `shared`: `trials` trials of `epochs` epochs, short heartbeats.
fn write_config(dir: &Path, trials: u64, epochs: u32, study_extra: &str) -> PathBuf {
    let table = write_table(dir, 400);
    let text = format!(
        r#"
[study]
name = "shared"
trials = {trials}
sampler = "tpe"
retrain = false
heartbeat = "0.2s"
stale_after = "1.5s"
{study_extra}
[pruner]
kind = "none"
[train]
data = "csv:{}"
target = "label"
model = "mlp"
epochs = {epochs}
batch_size = 16
early_stopping = {{ patience = 0 }}
clip_norm = 1.0
[space]
optimizer = {{ choices = ["sgd", "adam"] }}
lr = {{ low = 1e-3, high = 0.03, log = true }}
"#,
        table.display()
    );
    let path = dir.join("shared.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// `tune --workers 0`: creates the study and prints the worker command.
fn create_study(dir: &Path, url: &str, config: &Path) {
    create_study_with(dir, url, config, &[]);
}

fn create_study_with(dir: &Path, url: &str, config: &Path, extra: &[&str]) {
    let mut args = vec![
        "tune",
        "--config",
        config.to_str().unwrap(),
        "--storage",
        url,
        "--workers",
        "0",
    ];
    args.extend(extra);
    let out = modelsmith(dir, &args, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("modelsmith worker --storage '") && stdout.contains("--study 'shared'"),
        "{stdout}"
    );
    if url.starts_with("postgres") {
        let password = modelsmith::store::redact_url(url);
        assert!(!stdout.contains("***"), "{stdout}");
        let real = url_password(url);
        assert!(!stdout.contains(&real) && !stderr(&out).contains(&real));
        assert!(password.contains(":***@"));
    }
}

fn url_password(url: &str) -> String {
    let (_, rest) = url.split_once("://").unwrap();
    let userinfo = rest.split_once('@').unwrap().0;
    userinfo.split_once(':').unwrap().1.to_string()
}

fn trials_of(url: &str) -> Vec<FrozenTrial> {
    let s = PostgresStorage::open_existing(url).unwrap();
    let study = s.get_study("shared").unwrap().expect("the study exists");
    s.trials(study.id).unwrap()
}

/// The study's complete trials are exactly `count`, numbered without duplicates, and nothing
/// is still running.
fn assert_finished_study(trials: &[FrozenTrial], count: usize) {
    let complete: Vec<&FrozenTrial> = trials
        .iter()
        .filter(|t| t.state == TrialState::Complete)
        .collect();
    assert_eq!(complete.len(), count, "complete trials");
    assert!(trials.iter().all(|t| t.state != TrialState::Running));
    let mut numbers: Vec<u64> = trials.iter().map(|t| t.number).collect();
    numbers.sort_unstable();
    numbers.dedup();
    assert_eq!(numbers, (0..trials.len() as u64).collect::<Vec<_>>());
}

/// Waits until `pid` runs a trial that has reported an epoch; returns that trial's number.
fn wait_mid_trial(url: &str, pid: u32, within: Duration) -> u64 {
    let deadline = Instant::now() + within;
    loop {
        assert!(Instant::now() < deadline, "worker {pid} never ran a trial");
        if let Some(t) = trials_of(url).iter().find(|t| {
            t.state == TrialState::Running
                && !t.intermediate.is_empty()
                && t.owner.as_ref().is_some_and(|o| o.pid == pid)
        }) {
            return t.number;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until trial `number` is no longer running; returns how long that took.
fn wait_reclaimed(url: &str, number: u64, within: Duration) -> Duration {
    let t0 = Instant::now();
    loop {
        let trials = trials_of(url);
        let t = trials.iter().find(|t| t.number == number).unwrap();
        if t.state != TrialState::Running {
            assert_eq!(t.state, TrialState::Failed, "{t:?}");
            assert!(t.error.as_deref().unwrap().contains("stopped"), "{t:?}");
            return t0.elapsed();
        }
        assert!(
            t0.elapsed() < within,
            "trial {number} still running after {within:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_ok(child: Child, what: &str) {
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{what} failed: {}", stderr(&out));
    assert!(
        stderr(&out).is_empty(),
        "{what} complained: {}",
        stderr(&out)
    );
}

#[test]
fn four_workers_run_200_trials_without_errors() {
    let Some(url) = pg::fresh_schema("worker_four") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), 200, 1, "");
    let artifacts = dir.path().join("artifacts");
    create_study_with(
        dir.path(),
        &url,
        &config,
        &["--artifacts", artifacts.to_str().unwrap()],
    );
    let started = Instant::now();
    let workers: Vec<Child> = (0..4)
        .map(|_| spawn_worker(dir.path(), &url, None))
        .collect();
    let pids: Vec<u32> = workers.iter().map(Child::id).collect();
    for w in workers {
        wait_ok(w, "a worker");
    }
    eprintln!("4 workers, 200 trials: {:?}", started.elapsed());
    let trials = trials_of(&url);
    assert_eq!(trials.len(), 200);
    assert_finished_study(&trials, 200);
    let owners: std::collections::HashSet<u32> = trials
        .iter()
        .map(|t| t.owner.as_ref().unwrap().pid)
        .collect();
    assert!(owners.iter().all(|p| pids.contains(p)), "{owners:?}");
    assert!(owners.len() >= 2, "only {owners:?} ran trials");

    // Each new best went to the artifact directory as a model folder; only its path is in
    // the database. A trial with the study's best value is among them.
    let kept: Vec<&FrozenTrial> = trials
        .iter()
        .filter(|t| t.attrs.contains_key("artifact"))
        .collect();
    assert!(!kept.is_empty() && kept.len() < 200, "{} kept", kept.len());
    for t in &kept {
        let path = PathBuf::from(t.attrs["artifact"].as_str().unwrap());
        assert_eq!(path, artifacts.join(format!("trial-{:05}", t.number)));
        assert!(path.join("model.json").is_file(), "{}", path.display());
    }
    let best = modelsmith::search::best_trial(&trials, modelsmith::search::Direction::Maximize)
        .unwrap()
        .value;
    assert!(
        kept.iter().any(|t| t.value == best),
        "no artifact of the best value {best:?}"
    );
    let folders = std::fs::read_dir(&artifacts).unwrap().count();
    assert_eq!(folders, kept.len(), "leftover staging folders");

    // `studies` reads it from anywhere, and never shows the password.
    let real = url_password(&url);
    for args in [
        vec!["studies", "list", "--storage", &url],
        vec!["studies", "show", "shared", "--storage", &url],
    ] {
        let out = modelsmith(dir.path(), &args, &[]);
        assert!(out.status.success(), "{}", stderr(&out));
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
        assert!(!text.contains(&real), "{text}");
        assert!(text.contains("shared"), "{text}");
    }
    let out = modelsmith(dir.path(), &["studies", "list", "--storage", &url], &[]);
    assert!(stderr(&out).contains(":***@"), "{}", stderr(&out));
}

#[test]
fn a_worker_killed_mid_trial_loses_its_trial_and_the_others_finish_the_study() {
    let Some(url) = pg::fresh_schema("worker_kill") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // Trials of ~0.1-0.3 s, so that the kill lands inside one.
    let config = write_config(dir.path(), 24, 30, "retry_reclaimed = true");
    create_study(dir.path(), &url, &config);
    let mut workers: Vec<Child> = (0..4)
        .map(|_| spawn_worker(dir.path(), &url, None))
        .collect();
    let victim = workers.remove(0);
    let killed = wait_mid_trial(&url, victim.id(), Duration::from_secs(60));
    let mut victim = victim;
    victim.kill().unwrap(); // SIGKILL
    victim.wait().unwrap();
    // Same host, process gone: the next worker to look reclaims it, well within stale_after
    // plus a trial.
    let took = wait_reclaimed(&url, killed, Duration::from_secs(10));
    eprintln!("trial {killed} reclaimed {took:?} after the kill");
    for w in workers {
        wait_ok(w, "a surviving worker");
    }
    let trials = trials_of(&url);
    assert_finished_study(&trials, 24);
    // The study says retry_reclaimed: the killed trial's parameters ran again.
    let k = trials.iter().find(|t| t.number == killed).unwrap();
    let retry = trials
        .iter()
        .find(|t| t.attrs.get("retry_of").and_then(|v| v.as_u64()) == Some(killed))
        .expect("a retry of the killed trial");
    assert_eq!(retry.state, TrialState::Complete);
    assert_eq!(retry.params, k.params);
}

#[test]
fn passwords_come_from_a_file_or_the_environment_and_are_never_printed() {
    let Some(url) = pg::fresh_schema("worker_password") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let real = url_password(&url);
    let bare = url.replace(&format!(":{real}@"), "@");
    assert!(!bare.contains(&real));
    // A study to read.
    let config = write_config(dir.path(), 3, 1, "");
    create_study(dir.path(), &url, &config);

    let file = dir.path().join("pw");
    std::fs::write(&file, format!("{real}\n")).unwrap();
    let file_s = file.to_str().unwrap();
    for (args, env) in [
        (
            vec![
                "studies",
                "list",
                "--storage",
                &bare,
                "--storage-password-file",
                file_s,
            ],
            vec![],
        ),
        (
            vec!["studies", "list", "--storage", &bare],
            vec![("MODELSMITH_STORAGE_PASSWORD_FILE", file_s)],
        ),
        (
            vec!["studies", "list", "--storage", &bare],
            vec![("PGPASSWORD", real.as_str())],
        ),
    ] {
        let out = modelsmith(dir.path(), &args, &env);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        assert!(String::from_utf8_lossy(&out.stdout).contains("shared"));
    }

    // A wrong password, from each source: exit 2, one line, the URL masked, no password.
    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, "wrong-password-123\n").unwrap();
    let wrong_url = url.replace(&real, "wrong-password-456");
    for (args, env) in [
        (
            vec!["studies", "list", "--storage", wrong_url.as_str()],
            vec![],
        ),
        (
            vec!["worker", "--storage", &bare, "--study", "shared"],
            vec![("MODELSMITH_STORAGE_PASSWORD_FILE", wrong.to_str().unwrap())],
        ),
        (
            vec!["studies", "show", "shared", "--storage", &bare],
            vec![("PGPASSWORD", "wrong-password-789")],
        ),
    ] {
        let out = modelsmith(dir.path(), &args, &env);
        assert_bad_input(&out, "password authentication failed");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
        for secret in [real.as_str(), "wrong-password"] {
            assert!(!text.contains(secret), "{text}");
        }
    }
    let out = modelsmith(
        dir.path(),
        &["worker", "--storage", &bare, "--study", "shared"],
        &[("MODELSMITH_STORAGE_PASSWORD_FILE", "/no/such/file")],
    );
    assert_bad_input(&out, "/no/such/file");
}

#[test]
fn bad_worker_input_exits_2_with_one_line() {
    let Some(url) = pg::fresh_schema("worker_bad_input") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // No such study (the schema is empty: not even a store).
    let out = modelsmith(d, &["worker", "--storage", &url, "--study", "nope"], &[]);
    assert_bad_input(&out, "no Modelsmith studies");
    let config = write_config(d, 3, 1, "");
    create_study(d, &url, &config);
    let out = modelsmith(d, &["worker", "--storage", &url, "--study", "nope"], &[]);
    assert_bad_input(&out, "no study named 'nope'");
    let out = modelsmith(
        d,
        &[
            "worker",
            "--storage",
            &url,
            "--study",
            "shared",
            "--device",
            "cuda",
        ],
        &[],
    );
    assert_bad_input(&out, "--device cuda");
    let out = modelsmith(
        d,
        &["worker", "--storage", "mysql://x/y", "--study", "s"],
        &[],
    );
    assert_bad_input(&out, "unknown storage");
    let out = modelsmith(
        d,
        &[
            "tune",
            "--config",
            config.to_str().unwrap(),
            "--storage",
            &url,
            "--workers",
            "3",
        ],
        &[],
    );
    assert_bad_input(&out, "--workers 3");
    // A study a worker cannot run (not made by `tune`).
    let s = PostgresStorage::open(&url).unwrap();
    s.create_study(
        "foreign",
        modelsmith::search::Direction::Minimize,
        serde_json::json!({"x": 1}),
    )
    .unwrap();
    let out = modelsmith(d, &["worker", "--storage", &url, "--study", "foreign"], &[]);
    assert_bad_input(&out, "holds no tune config");
}

/// A server of the test's own (scripts/pg-test-server with `flags`), stopped on drop.
struct Server {
    dir: tempfile::TempDir,
    url: String,
}

impl Server {
    fn script() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/pg-test-server")
    }

    fn start(flags: &[&str]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(Server::script())
            .arg("start")
            .arg(dir.path().join("pg"))
            .args(flags)
            .output()
            .unwrap();
        assert!(out.status.success(), "server: {}", stderr(&out));
        let url = String::from_utf8_lossy(&out.stdout).trim().to_string();
        Server { dir, url }
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join("pg").join(file)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new(Server::script())
            .arg("stop")
            .arg(self.dir.path().join("pg"))
            .output();
    }
}

/// `sslmode=require`: TLS, with the server's certificate checked against the trusted roots
/// (`SSL_CERT_FILE` names a private CA); refused when the certificate is not trusted or the
/// server has no TLS.
#[test]
fn tls_is_used_and_checked_when_the_url_asks_for_it() {
    let Some(plain_url) = pg::server_url("tls") else {
        return;
    };
    let server = Server::start(&["--tls"]);
    let url = format!("{}?sslmode=require", server.url);
    let real = url_password(&url);
    let ca = server.path("ca.crt");
    let ca = ca.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), 2, 1, "");
    let create = [
        "tune",
        "--config",
        config.to_str().unwrap(),
        "--storage",
        &url,
        "--workers",
        "0",
    ];
    let out = modelsmith(dir.path(), &create, &[("SSL_CERT_FILE", ca)]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = modelsmith(
        dir.path(),
        &["worker", "--storage", &url, "--study", "shared", "--quiet"],
        &[("SSL_CERT_FILE", ca)],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(trials_of_with(&server.url).len(), 2);

    // The same server, its CA not trusted: the handshake fails, one line, no password.
    let empty = dir.path().join("no-roots.pem");
    std::fs::write(&empty, "").unwrap();
    let out = modelsmith(
        dir.path(),
        &["studies", "list", "--storage", &url],
        &[("SSL_CERT_FILE", empty.to_str().unwrap())],
    );
    assert_bad_input(&out, "cannot connect");
    assert!(!stderr(&out).contains(&real), "{}", stderr(&out));
    // A server without TLS, asked for TLS: refused.
    let out = modelsmith(
        dir.path(),
        &[
            "studies",
            "list",
            "--storage",
            &format!("{plain_url}?sslmode=require"),
        ],
        &[],
    );
    assert_bad_input(&out, "cannot connect");
}

/// The trials, read over a connection without TLS (this process trusts no private CA).
fn trials_of_with(url: &str) -> Vec<FrozenTrial> {
    trials_of(&format!("{url}?sslmode=disable"))
}

// ---------------------------------------------------------------------------------------------
// Network namespaces: needs root and `ip`.

/// Network namespaces and veth pairs made by this test, removed on drop (even on failure).
struct Netns {
    names: Vec<String>,
    host_links: Vec<String>,
}

impl Drop for Netns {
    fn drop(&mut self) {
        for link in &self.host_links {
            let _ = Command::new("ip").args(["link", "del", link]).output();
        }
        for ns in &self.names {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("ip runs");
    assert!(out.status.success(), "ip {args:?}: {}", stderr(&out));
}

/// Why this machine cannot run the namespace test, if it cannot: not root, no `ip`, or a kernel
/// (container) that refuses to create a namespace — probed by creating and deleting one.
fn netns_unavailable() -> Option<String> {
    let uid = Command::new("id").arg("-u").output().map(|o| o.stdout);
    if uid.ok().as_deref() != Some(b"0\n".as_slice()) {
        return Some("not root".into());
    }
    let probe = format!("msprobe{}", std::process::id());
    match Command::new("ip").args(["netns", "add", &probe]).output() {
        Ok(o) if o.status.success() => {
            let _ = Command::new("ip").args(["netns", "del", &probe]).output();
            None
        }
        Ok(o) => Some(format!("`ip netns add` is refused: {}", stderr(&o))),
        Err(e) => Some(format!("no `ip` command: {e}")),
    }
}

/// Two namespaces, each with a veth pair to the host (10.231.N.2 inside, 10.231.N.1 on the
/// host); a PostgreSQL server of its own listening on 10.231.1.1, which both namespaces reach
/// through their host side; one worker per namespace and one on the host. Namespace 1 is cut
/// off (its link set down) while its worker runs a trial: that trial is reclaimed once its
/// heartbeat is older than `stale_after`, and the other two workers finish the study.
#[test]
fn workers_in_network_namespaces_survive_one_being_cut_off() {
    if let Some(why) = netns_unavailable() {
        // scripts/test installs `ip` under CI; a CI sandbox that forbids namespaces is the
        // environment's limit, not the code's, and is reported loudly below.
        if std::env::var("CI").is_ok_and(|v| v == "true") && why.starts_with("no `ip`") {
            panic!("the network namespace test cannot run under CI: {why}");
        }
        eprintln!("\n*** SKIPPED workers_in_network_namespaces: {why} (needs root and `ip`) ***\n");
        return;
    }
    if pg::server_url("workers_in_network_namespaces").is_none() {
        return; // the same requirement as the other tests: a PostgreSQL installation
    }
    let tag = std::process::id() % 100_000;
    let mut net = Netns {
        names: Vec::new(),
        host_links: Vec::new(),
    };
    for n in 1..=2 {
        let ns = format!("ms{tag}n{n}");
        let (host, inner) = (format!("ms{tag}h{n}"), format!("ms{tag}i{n}"));
        ip(&["netns", "add", &ns]);
        net.names.push(ns.clone());
        ip(&["link", "add", &host, "type", "veth", "peer", "name", &inner]);
        net.host_links.push(host.clone());
        ip(&["link", "set", &inner, "netns", &ns]);
        ip(&["addr", "add", &format!("10.231.{n}.1/24"), "dev", &host]);
        ip(&["link", "set", &host, "up"]);
        let inside = |args: &[&str]| {
            let mut all = vec!["netns", "exec", &ns, "ip"];
            all.extend(args);
            ip(&all);
        };
        inside(&["addr", "add", &format!("10.231.{n}.2/24"), "dev", &inner]);
        inside(&["link", "set", &inner, "up"]);
        inside(&["link", "set", "lo", "up"]);
        inside(&["route", "add", "default", "via", &format!("10.231.{n}.1")]);
    }

    // A server on the veth address (the shared one listens on loopback only).
    let server = Server::start(&["--listen", "10.231.1.1"]);
    let url = server.url.clone();
    assert!(url.contains("@10.231.1.1:"), "{url}");

    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), 30, 30, "");
    create_study(dir.path(), &url, &config);
    let cut = spawn_worker(dir.path(), &url, Some(&net.names[0]));
    let others = vec![
        spawn_worker(dir.path(), &url, Some(&net.names[1])),
        spawn_worker(dir.path(), &url, None),
    ];
    let number = wait_mid_trial(&url, cut.id(), Duration::from_secs(60));
    let inner = format!("ms{tag}i1");
    ip(&[
        "netns",
        "exec",
        &net.names[0],
        "ip",
        "link",
        "set",
        &inner,
        "down",
    ]);
    let took = wait_reclaimed(&url, number, Duration::from_secs(20));
    eprintln!("trial {number} of the cut-off worker reclaimed {took:?} after the cut");
    // Its heartbeat stopped at the cut: reclaimed after stale_after (1.5 s), not before.
    assert!(took >= Duration::from_millis(1_000), "{took:?}");
    for w in others {
        wait_ok(w, "a connected worker");
    }
    let trials = trials_of(&url);
    for t in trials.iter().filter(|t| t.state == TrialState::Failed) {
        eprintln!("failed trial {}: {:?}", t.number, t.error);
    }
    assert_finished_study(&trials, 30);
    let mut cut = cut;
    let _ = cut.kill();
    let _ = cut.wait();
    drop(net);
}

/// Two workers on one host and one SQLite file, the second in a PID namespace of its own (as
/// containers sharing the host's hostname are): the second must not take the first's pid,
/// absent from its /proc, for a dead worker and fail its live trial. It once did, and the first
/// worker then exited 1 with "trial N is already finished".
#[test]
fn a_worker_in_another_pid_namespace_leaves_live_trials_alone() {
    let unshare = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "true"])
        .output();
    match unshare {
        Ok(o) if o.status.success() => {}
        other => {
            let why = match other {
                Ok(o) => stderr(&o),
                Err(e) => e.to_string(),
            };
            eprintln!("\n*** SKIPPED a_worker_in_another_pid_namespace: {why} (needs unshare and root) ***\n");
            return;
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.db");
    let url = format!("sqlite:{}", db.display());
    // Trials long enough that the second worker starts while the first is inside one.
    let config = write_config(dir.path(), 4, 600, "");
    create_study(dir.path(), &url, &config);
    let first = spawn_worker(dir.path(), &url, None);
    let sqlite_trials = || {
        let s = modelsmith::store::SqliteStorage::open(&db).unwrap();
        let study = s.get_study("shared").unwrap().unwrap();
        s.trials(study.id).unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let busy = loop {
        assert!(
            Instant::now() < deadline,
            "the first worker never ran a trial"
        );
        if let Some(t) = sqlite_trials().into_iter().find(|t| {
            t.state == TrialState::Running
                && !t.intermediate.is_empty()
                && t.owner.as_ref().is_some_and(|o| o.pid == first.id())
        }) {
            break t.number;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let second = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc"])
        .arg(env!("CARGO_BIN_EXE_modelsmith"))
        .args([
            "worker",
            "--storage",
            &url,
            "--study",
            "shared",
            "--threads",
            "1",
            "--quiet",
        ])
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_ok(first, "the first worker");
    wait_ok(second, "the worker in its own PID namespace");
    let trials = sqlite_trials();
    let t = trials.iter().find(|t| t.number == busy).unwrap();
    assert_eq!(t.state, TrialState::Complete, "{t:?}");
    assert!(
        trials.iter().all(|t| t.state == TrialState::Complete),
        "{:?}",
        trials
            .iter()
            .map(|t| (t.number, t.state))
            .collect::<Vec<_>>()
    );
    assert_eq!(trials.len(), 4);
}
