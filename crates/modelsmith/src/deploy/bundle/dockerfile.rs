//! The bundle's Dockerfile, built from a typed list of instructions.
//!
//! Two stages: `verify` copies the whole bundle and runs `sha256sum --check` on SHA256SUMS
//! (a changed or missing file fails the build), then `runtime`, a slim Debian with a fixed
//! non-root user, takes the binary and the model *from the verify stage*. That dependency
//! matters: BuildKit skips stages nothing depends on, so copying from `verify` is what makes
//! the check run. Exec-form arguments are written as JSON arrays (Docker's own syntax for them)
//! by serde_json, so quoting is never done by hand.

use std::fmt::Write as _;

use super::k8s::READY_PATH;
use super::settings::BundleSettings;

/// UID and GID of the runtime user (fixed, so Kubernetes' `runAsUser` matches the image).
pub const RUNTIME_UID: u32 = 10001;
/// Debian 12, the release the `modelsmith` binary is built on here (same glibc).
pub const BASE_IMAGE: &str = "debian:bookworm-slim";
/// The stage that checks the bundle.
pub const VERIFY_STAGE: &str = "verify";
/// The stage that runs the server.
pub const RUNTIME_STAGE: &str = "runtime";
/// Without `bin/modelsmith` in the bundle, the binary comes from this named build context:
/// `docker build --build-context modelsmith-bin=DIR_WITH_THE_BINARY .`
pub const BINARY_CONTEXT: &str = "modelsmith-bin";
/// Where the bundle sits inside the verify stage.
pub const VERIFY_DIR: &str = "/bundle";

/// One Dockerfile instruction.
#[derive(Clone, Debug, PartialEq)]
pub enum Instruction {
    Comment(String),
    Blank,
    From {
        image: String,
        stage: String,
    },
    Workdir(String),
    /// `COPY [--from=STAGE] SRC... DEST`
    Copy {
        from: Option<String>,
        sources: Vec<String>,
        dest: String,
    },
    /// Exec form: no shell parses the arguments.
    Run(Vec<String>),
    Env(String, String),
    Label(String, String),
    User(String),
    Expose(u16),
    Healthcheck {
        interval_s: u32,
        timeout_s: u32,
        start_period_s: u32,
        retries: u32,
        command: Vec<String>,
    },
    Entrypoint(Vec<String>),
}

fn exec_form(args: &[String]) -> String {
    serde_json::to_string(args).expect("strings serialize")
}

/// A Dockerfile string value (ENV/LABEL): JSON string escaping is what Docker accepts.
fn quoted(value: &str) -> String {
    serde_json::to_string(value).expect("strings serialize")
}

impl Instruction {
    fn render(&self) -> String {
        match self {
            Instruction::Comment(text) => text
                .lines()
                .map(|l| format!("# {l}").trim_end().to_string())
                .collect::<Vec<_>>()
                .join("\n"),
            Instruction::Blank => String::new(),
            Instruction::From { image, stage } => format!("FROM {image} AS {stage}"),
            Instruction::Workdir(dir) => format!("WORKDIR {dir}"),
            Instruction::Copy {
                from,
                sources,
                dest,
            } => {
                let from = from
                    .as_ref()
                    .map(|f| format!("--from={f} "))
                    .unwrap_or_default();
                format!("COPY {from}{} {dest}", sources.join(" "))
            }
            Instruction::Run(args) => format!("RUN {}", exec_form(args)),
            Instruction::Env(key, value) => format!("ENV {key}={}", quoted(value)),
            Instruction::Label(key, value) => format!("LABEL {key}={}", quoted(value)),
            Instruction::User(user) => format!("USER {user}"),
            Instruction::Expose(port) => format!("EXPOSE {port}"),
            Instruction::Healthcheck {
                interval_s,
                timeout_s,
                start_period_s,
                retries,
                command,
            } => format!(
                "HEALTHCHECK --interval={interval_s}s --timeout={timeout_s}s --start-period={start_period_s}s --retries={retries} CMD {}",
                exec_form(command)
            ),
            Instruction::Entrypoint(args) => format!("ENTRYPOINT {}", exec_form(args)),
        }
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// The health check needs no curl or wget in the slim image: bash opens a TCP connection
/// itself (`/dev/tcp`), sends one HTTP/1.0 request and accepts only a `200` status line.
fn health_command(port: u16) -> Vec<String> {
    let script = format!(
        "exec 3<>/dev/tcp/127.0.0.1/{port} && printf 'GET {READY_PATH} HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && read -r status <&3 && [[ $status == *' 200 '* ]]"
    );
    vec!["bash".into(), "-c".into(), script]
}

/// The instructions for a bundle with `settings`.
pub fn instructions(settings: &BundleSettings) -> Vec<Instruction> {
    use Instruction::*;
    let model_dir = settings.model_path_in_image();
    let binary_source = if settings.with_binary {
        Copy {
            from: Some(VERIFY_STAGE.into()),
            sources: vec![format!("{VERIFY_DIR}/bin/modelsmith")],
            dest: "/usr/local/bin/modelsmith".into(),
        }
    } else {
        Copy {
            from: Some(BINARY_CONTEXT.into()),
            sources: vec!["modelsmith".into()],
            dest: "/usr/local/bin/modelsmith".into(),
        }
    };
    let build_command = if settings.with_binary {
        format!("docker build -t {} .", settings.image)
    } else {
        format!(
            "docker build --build-context {BINARY_CONTEXT}=DIR_WITH_MODELSMITH -t {} .",
            settings.image
        )
    };
    let uid = RUNTIME_UID.to_string();
    vec![
        Comment(format!(
            "Generated by `modelsmith deploy` {}. Build from this folder:\n  {build_command}",
            env!("CARGO_PKG_VERSION")
        )),
        Blank,
        Comment("Stage 1: check every file of the bundle against SHA256SUMS.".into()),
        From {
            image: BASE_IMAGE.into(),
            stage: VERIFY_STAGE.into(),
        },
        Workdir(VERIFY_DIR.into()),
        Copy {
            from: None,
            sources: vec![".".into()],
            dest: ".".into(),
        },
        Run(strings(&["sha256sum", "--check", "--strict", "SHA256SUMS"])),
        Blank,
        Comment("Stage 2: the server, as a non-root user, with only the verified files.".into()),
        From {
            image: BASE_IMAGE.into(),
            stage: RUNTIME_STAGE.into(),
        },
        Run(strings(&[
            "useradd",
            "--system",
            "--uid",
            &uid,
            "--user-group",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            "modelsmith",
        ])),
        binary_source,
        Copy {
            from: Some(VERIFY_STAGE.into()),
            sources: vec![format!("{VERIFY_DIR}/model/")],
            dest: format!("{model_dir}/"),
        },
        Label(
            "org.opencontainers.image.title".into(),
            settings.name.clone(),
        ),
        Label(
            "org.opencontainers.image.description".into(),
            "modelsmith model server (KServe v2 inference protocol)".into(),
        ),
        Env("MODELSMITH_LOG".into(), "info".into()),
        User(format!("{uid}:{uid}")),
        Expose(settings.port),
        Expose(settings.grpc_port()),
        Healthcheck {
            interval_s: 15,
            timeout_s: 3,
            start_period_s: 10,
            retries: 3,
            command: health_command(settings.port),
        },
        Entrypoint(vec![
            "modelsmith".into(),
            "serve".into(),
            "--model".into(),
            model_dir,
            "--addr".into(),
            format!("0.0.0.0:{}", settings.port),
            "--grpc-addr".into(),
            format!("0.0.0.0:{}", settings.grpc_port()),
        ]),
    ]
}

/// The Dockerfile text.
pub fn render(instructions: &[Instruction]) -> String {
    let mut out = String::new();
    for instruction in instructions {
        let _ = writeln!(out, "{}", instruction.render());
    }
    out
}

/// `.dockerignore`: the build context is the bundle; keep out what people tend to drop beside
/// it. Every file SHA256SUMS lists must stay in, or the verify stage fails.
pub fn dockerignore() -> String {
    [
        "# Generated by `modelsmith deploy`: files SHA256SUMS lists must not be ignored.",
        ".git",
        "**/*.tmp",
        "**/.DS_Store",
        "**/__pycache__",
        "",
    ]
    .join("\n")
}
