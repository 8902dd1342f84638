//! `modelsmith serve` as a process: bad model folders and addresses exit with 2 and one line;
//! a real server starts, answers on loopback, and stops cleanly on SIGTERM.

mod common;
use common::assert_bad_input;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use modelsmith::data::{load, LoadOptions, LoadedData};
use modelsmith::train::{train, Silent, TrainConfig};

fn modelsmith(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_modelsmith"))
        .args(args)
        .env_remove("MODELSMITH_TOKEN")
        .output()
        .expect("the binary runs")
}

/// A small MLP trained on 300 real digits: enough for a server to load and answer.
fn trained_model(dir: &Path) -> PathBuf {
    let data = load("digits", &LoadOptions::default()).unwrap();
    let data = LoadedData {
        train: data.train.subset(&(0..300).collect::<Vec<_>>()),
        test: data.test.subset(&(0..50).collect::<Vec<_>>()),
        info: data.info,
        task_choice: None,
    };
    let out = dir.join("digits");
    let config = TrainConfig {
        model: "mlp".into(),
        epochs: 1,
        ..TrainConfig::default()
    };
    train(&config, &data, &out, false, &mut Silent).unwrap();
    out
}

/// A plain HTTP/1.1 GET; returns the status line and the body.
fn http_get(addr: &str, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response.lines().next().unwrap_or("").to_string();
    let body = response.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

#[test]
fn bad_model_folders_and_flags_exit_with_2() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-model");
    assert_bad_input(
        &modelsmith(&["serve", "--model", missing.to_str().unwrap()]),
        "no-such-model",
    );
    assert_bad_input(
        &modelsmith(&["serve", "--model-repo", dir.path().to_str().unwrap()]),
        "no subfolder holds a model.json",
    );
    let model = trained_model(dir.path());
    let model = model.to_str().unwrap();
    assert_bad_input(
        &modelsmith(&["serve", "--model", model, "--addr", "localhost-ish"]),
        "use IP:PORT",
    );
    assert_bad_input(
        &modelsmith(&["serve", "--model", model, "--max-batch", "0"]),
        "--max-batch",
    );
    assert_bad_input(
        &modelsmith(&["serve", "--model", model, "--max-delay-ms=-1"]),
        "--max-delay-ms",
    );
    assert_bad_input(
        &modelsmith(&["serve", "--model", model, "--max-queue", "0"]),
        "--max-queue",
    );
    assert_bad_input(
        &modelsmith(&["serve", "--model", model, "--drain-seconds", "nan"]),
        "--drain-seconds",
    );
    assert_bad_input(
        &modelsmith(&["serve", "--model", model, "--model", model]),
        "two models are named 'digits'",
    );
    assert_bad_input(
        &modelsmith(&["serve", "--model", model, "--max-connections", "0"]),
        "--max-connections",
    );
    assert_bad_input(
        &modelsmith(&["serve", "--model", model, "--header-timeout-seconds", "0"]),
        "--header-timeout-seconds",
    );
    let empty = dir.path().join("empty-token");
    std::fs::write(&empty, "\n").unwrap();
    assert_bad_input(
        &modelsmith(&[
            "serve",
            "--model",
            model,
            "--token-file",
            empty.to_str().unwrap(),
        ]),
        "first line is empty",
    );
    assert_bad_input(
        &modelsmith(&["serve", "--model", model, "--token-file", "/no/such/token"]),
        "--token-file /no/such/token",
    );
    // An address another process holds.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    assert_bad_input(
        &modelsmith(&["serve", "--model", model, "--addr", &addr]),
        "already in use",
    );
}

#[test]
fn serves_on_loopback_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let model = trained_model(dir.path());
    // The token comes from a file, so it is not in the process's arguments (`ps`).
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "from-file\n").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_modelsmith"))
        .args([
            "serve",
            "--model",
            model.to_str().unwrap(),
            "--addr",
            "127.0.0.1:0",
        ])
        .args(["--name", "mnist"])
        .args(["--token-file", token_file.to_str().unwrap()])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut banner = String::new();
    stderr.read_line(&mut banner).unwrap();
    let addr = banner
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in: {banner}"))
        .to_string();
    assert!(banner.contains("serving mnist"), "{banner}");

    let (status, body) = http_get(&addr, "/v2/health/ready");
    assert!(status.contains("200"), "{status}");
    assert!(body.contains("\"ready\":true"), "{body}");
    // The token came from the file, and is not among the arguments.
    let (status, body) = http_get(&addr, "/v2/models/mnist");
    assert!(status.contains("401"), "{status} {body}");
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", child.id())).unwrap_or_default();
    assert!(!String::from_utf8_lossy(&cmdline).contains("from-file"));
    let mut stream = TcpStream::connect(&addr).unwrap();
    write!(
        stream,
        "GET /v2/models/mnist HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer from-file\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");

    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = child.wait().unwrap();
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    assert!(status.success(), "exit {status:?}: {rest}");
    assert!(rest.contains("stopped"), "{rest}");
}
