//! `modelsmith serve`: parse, load, run; the server itself is `modelsmith-server`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use modelsmith_server::{
    bind, shutdown_signal, BatchConfig, ConnectionLimits, ModelSource, ServeOptions, Server,
};

use super::BadInput;

#[derive(Args)]
pub struct ServeArgs {
    /// A model folder written by `modelsmith train` (repeat to serve several).
    #[arg(long, required_unless_present = "model_repo")]
    model: Vec<PathBuf>,
    /// A folder whose subfolders are model folders (a model repository, as in Triton): each
    /// subfolder holding a model.json is served under its folder name.
    #[arg(long)]
    model_repo: Option<PathBuf>,
    /// The name clients use for the model (default: the folder's name); only with one --model.
    #[arg(long)]
    name: Option<String>,
    /// Address to listen on (loopback by default; 0.0.0.0:8080 to accept other machines).
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: String,
    /// Also serve KServe v2's gRPC inference service on this address (e.g. 127.0.0.1:8081), with
    /// the same models, batching, limits and token.
    #[arg(long)]
    grpc_addr: Option<String>,
    /// Most examples gathered into one forward pass.
    #[arg(long, default_value_t = 32)]
    max_batch: usize,
    /// Longest wait, in milliseconds (fractions allowed), for more requests to join a batch;
    /// 0 waits for none but still batches the requests that queued meanwhile.
    #[arg(long, default_value_t = 0.0)]
    max_delay_ms: f64,
    /// Bearer token every endpoint except the health probes requires. Prefer MODELSMITH_TOKEN
    /// or --token-file: a flag's value is visible to every user in `ps`.
    #[arg(long, env = "MODELSMITH_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// A file whose first line is the bearer token (instead of --token).
    #[arg(long, value_name = "FILE", conflicts_with = "token")]
    token_file: Option<PathBuf>,
    /// Most connections at once (default: what the open-file limit allows, at most 4096); at
    /// the cap a new connection closes the longest-idle one.
    #[arg(long)]
    max_connections: Option<usize>,
    /// Seconds a client has to send a request's headers (and an idle connection its next
    /// request) before it is closed.
    #[arg(long, default_value_t = 10.0)]
    header_timeout_seconds: f64,
    /// Larger request bodies are refused with 413.
    #[arg(long, default_value_t = modelsmith_server::DEFAULT_MAX_BODY_BYTES)]
    max_body_bytes: usize,
    /// Most requests waiting per model; more get 503 with Retry-After at once.
    #[arg(long, default_value_t = modelsmith_server::batcher::DEFAULT_MAX_QUEUE)]
    max_queue: usize,
    /// On SIGTERM/Ctrl-C, keep serving this many seconds with readiness at 503 (so a load
    /// balancer stops routing here) before closing the listener.
    #[arg(long, default_value_t = 0.0)]
    drain_seconds: f64,
    /// Threads answering HTTP (default: one per core); inference runs on its own threads.
    #[arg(long)]
    http_threads: Option<usize>,
    /// Where inference runs: cpu (default), cuda, cuda:N, or auto (a GPU when one is usable).
    #[arg(long, default_value = "cpu")]
    device: modelsmith::train::Device,
}

pub fn run(args: ServeArgs) -> Result<()> {
    let options = options(&args)?;
    let sources = sources(&args)?;
    let server = Server::new(&sources, &options)?;
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Some(threads) = args.http_threads {
        if threads == 0 {
            return Err(BadInput("--http-threads must be at least 1".into()).into());
        }
        runtime.worker_threads(threads);
    }
    runtime.build()?.block_on(async {
        let listener = bind(&args.addr).await?;
        let grpc = match &args.grpc_addr {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
        let grpc_line = match &grpc {
            Some(g) => format!(" and grpc://{}", g.local_addr()?),
            None => String::new(),
        };
        eprintln!(
            "serving {} on http://{}{grpc_line} (Ctrl-C to stop)",
            server.model_names().join(", "),
            listener.local_addr()?
        );
        server.run(listener, grpc, shutdown_signal()).await?;
        eprintln!("stopped");
        Ok(())
    })
}

fn options(args: &ServeArgs) -> Result<ServeOptions> {
    if !(args.max_delay_ms.is_finite() && args.max_delay_ms >= 0.0 && args.max_delay_ms <= 10_000.0)
    {
        return Err(BadInput(format!(
            "--max-delay-ms {} must be between 0 and 10000",
            args.max_delay_ms
        ))
        .into());
    }
    if args.max_batch == 0 {
        return Err(BadInput("--max-batch must be at least 1".into()).into());
    }
    if args.max_body_bytes == 0 {
        return Err(BadInput("--max-body-bytes must be at least 1".into()).into());
    }
    if args.max_queue == 0 {
        return Err(BadInput("--max-queue must be at least 1".into()).into());
    }
    if !(args.drain_seconds.is_finite() && (0.0..=600.0).contains(&args.drain_seconds)) {
        return Err(BadInput(format!(
            "--drain-seconds {} must be between 0 and 600",
            args.drain_seconds
        ))
        .into());
    }
    if !(args.header_timeout_seconds.is_finite()
        && (0.1..=3600.0).contains(&args.header_timeout_seconds))
    {
        return Err(BadInput(format!(
            "--header-timeout-seconds {} must be between 0.1 and 3600",
            args.header_timeout_seconds
        ))
        .into());
    }
    if args.max_connections == Some(0) {
        return Err(BadInput("--max-connections must be at least 1".into()).into());
    }
    let token = match &args.token_file {
        Some(path) => Some(read_token_file(path)?),
        None => args.token.clone(),
    };
    let defaults = ConnectionLimits::default();
    Ok(ServeOptions {
        limits: ConnectionLimits {
            max_connections: args.max_connections.unwrap_or(defaults.max_connections),
            header_timeout: Duration::from_secs_f64(args.header_timeout_seconds),
            ..defaults
        },
        batch: BatchConfig {
            max_batch: args.max_batch,
            max_delay: Duration::from_secs_f64(args.max_delay_ms / 1000.0),
            max_queue: args.max_queue,
        },
        token,
        max_body_bytes: args.max_body_bytes,
        drain: Duration::from_secs_f64(args.drain_seconds),
        device: super::resolve_device(args.device)?,
    })
}

fn sources(args: &ServeArgs) -> Result<Vec<ModelSource>> {
    let mut sources: Vec<ModelSource> = args
        .model
        .iter()
        .map(|d| ModelSource::from_dir(d))
        .collect();
    if let Some(name) = &args.name {
        if args.model.len() != 1 || args.model_repo.is_some() {
            return Err(
                BadInput("--name needs exactly one --model and no --model-repo".into()).into(),
            );
        }
        if name.is_empty() || name.contains('/') {
            return Err(BadInput(format!("--name '{name}' must be non-empty without '/'")).into());
        }
        sources[0].name = name.clone();
    }
    if let Some(repo) = &args.model_repo {
        sources.extend(ModelSource::scan_repository(repo)?);
    }
    Ok(sources)
}

/// The first line of a token file; the file's contents never reach a message.
fn read_token_file(path: &std::path::Path) -> Result<String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| BadInput(format!("--token-file {}: cannot read: {e}", path.display())))?;
    let token = text.lines().next().unwrap_or("").trim().to_string();
    if token.is_empty() {
        return Err(BadInput(format!(
            "--token-file {}: the first line is empty; put the token there",
            path.display()
        ))
        .into());
    }
    Ok(token)
}
