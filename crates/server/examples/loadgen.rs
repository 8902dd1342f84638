//! A bounded HTTP load generator for `modelsmith serve` (and any server speaking the same
//! requests, such as `bench/ort_server.py`): N keep-alive connections on loopback, each sending
//! one request after the other for a fixed time, with real test digits as the payload.
//!
//! ```text
//! cargo run --release -p modelsmith-server --example loadgen -- \
//!     --url http://127.0.0.1:8080 --model digits --mode infer --connections 32 --seconds 20
//! ```
//! Modes: `infer` (KServe v2 JSON, one image per request), `json` (`/predict` with a JSON array),
//! `png` (`/predict` with a PNG body). Prints req/s, latency percentiles and errors; `--json`
//! prints them as one JSON object. Only loopback targets are accepted, and the run stops by itself.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use modelsmith::data::{load, LoadOptions};

const USAGE: &str = "usage: loadgen [--url http://127.0.0.1:8080] [--model digits] \
[--mode infer|json|png] [--connections 32] [--seconds 20] [--warmup 2] [--threads 1] \
[--token T] [--json]";

struct Args {
    addr: SocketAddr,
    model: String,
    mode: String,
    connections: usize,
    seconds: f64,
    warmup: f64,
    threads: usize,
    token: Option<String>,
    json: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut url = "http://127.0.0.1:8080".to_string();
    let mut args = Args {
        addr: "127.0.0.1:8080".parse().unwrap(),
        model: "digits".into(),
        mode: "infer".into(),
        connections: 32,
        seconds: 20.0,
        warmup: 2.0,
        threads: 1,
        token: None,
        json: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--json" {
            args.json = true;
            continue;
        }
        let value = it.next().ok_or(format!("{flag} needs a value\n{USAGE}"))?;
        let number = |v: &str| {
            v.parse::<f64>()
                .map_err(|_| format!("{flag}: '{v}' is not a number"))
        };
        match flag.as_str() {
            "--url" => url = value,
            "--model" => args.model = value,
            "--mode" => args.mode = value,
            "--connections" => args.connections = number(&value)? as usize,
            "--seconds" => args.seconds = number(&value)?,
            "--warmup" => args.warmup = number(&value)?,
            "--threads" => args.threads = number(&value)? as usize,
            "--token" => args.token = Some(value),
            _ => return Err(format!("unknown flag {flag}\n{USAGE}")),
        }
    }
    if !["infer", "json", "png"].contains(&args.mode.as_str()) {
        return Err(format!("--mode {}: use infer, json or png", args.mode));
    }
    if args.connections == 0 || args.threads == 0 {
        return Err("--connections and --threads must be at least 1".into());
    }
    // Bounded by design: a load test is a short, self-stopping run.
    if !(args.seconds > 0.0 && args.seconds <= 600.0 && args.warmup >= 0.0 && args.warmup <= 60.0) {
        return Err("--seconds must be in (0, 600] and --warmup in [0, 60]".into());
    }
    let host = url
        .strip_prefix("http://")
        .ok_or("--url must start with http://")?
        .trim_end_matches('/');
    args.addr = host
        .to_socket_addrs()
        .map_err(|e| format!("--url {url}: {e}"))?
        .next()
        .ok_or(format!("--url {url}: no address"))?;
    if !args.addr.ip().is_loopback() {
        return Err(format!("--url {url}: only loopback targets are allowed"));
    }
    Ok(args)
}

/// One request's path, content type and body, built once and reused.
struct Payload {
    path: String,
    content_type: &'static str,
    body: Bytes,
}

/// Payloads from the first 256 real test digits, in the chosen mode.
fn payloads(args: &Args) -> Vec<Payload> {
    let data = load("digits", &LoadOptions::default()).expect("the bundled digits load");
    let test = &data.test;
    (0..test.len().min(256))
        .map(|i| {
            let x = test.example(i);
            match args.mode.as_str() {
                "infer" => Payload {
                    path: format!("/v2/models/{}/infer", args.model),
                    content_type: "application/json",
                    body: serde_json::to_vec(&serde_json::json!({"inputs": [{
                        "name": "input", "shape": [1, 28, 28, 1], "datatype": "FP32", "data": x
                    }]}))
                    .unwrap()
                    .into(),
                },
                "json" => Payload {
                    path: format!("/predict?model={}", args.model),
                    content_type: "application/json",
                    body: serde_json::to_vec(x).unwrap().into(),
                },
                _ => {
                    let pixels: Vec<u8> = x.iter().map(|&v| (v * 255.0).round() as u8).collect();
                    let img = image::GrayImage::from_raw(28, 28, pixels).unwrap();
                    let mut png = std::io::Cursor::new(Vec::new());
                    img.write_to(&mut png, image::ImageFormat::Png).unwrap();
                    Payload {
                        path: format!("/predict?model={}", args.model),
                        content_type: "image/png",
                        body: png.into_inner().into(),
                    }
                }
            }
        })
        .collect()
}

#[derive(Default)]
struct Tally {
    /// Latencies of answered requests after the warm-up, in microseconds.
    latencies_us: Vec<u32>,
    errors: usize,
    first_error: Option<String>,
}

/// One connection's loop: request after request until `end`; counts from `measure_from` on.
async fn client(
    args: Arc<Args>,
    payloads: Arc<Vec<Payload>>,
    offset: usize,
    measure_from: Instant,
    end: Instant,
) -> Tally {
    let mut tally = Tally::default();
    let mut sender = None;
    let mut i = offset;
    while Instant::now() < end {
        if sender.is_none() {
            match connect(args.addr).await {
                Ok(s) => sender = Some(s),
                Err(e) => {
                    tally.errors += 1;
                    tally.first_error.get_or_insert(e);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            }
        }
        let payload = &payloads[i % payloads.len()];
        i += 1;
        let mut request = Request::post(&payload.path)
            .header("host", args.addr.to_string())
            .header("content-type", payload.content_type);
        if let Some(token) = &args.token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let request = request.body(Full::new(payload.body.clone())).unwrap();
        let start = Instant::now();
        let result = async {
            let s = sender.as_mut().unwrap();
            let response = s.send_request(request).await.map_err(|e| e.to_string())?;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?;
            if status == StatusCode::OK && body.to_bytes().first() == Some(&b'{') {
                Ok(())
            } else {
                Err(format!("HTTP {status}"))
            }
        }
        .await;
        let elapsed = start.elapsed();
        if start < measure_from {
            if result.is_err() {
                sender = None;
            }
            continue;
        }
        match result {
            Ok(()) => tally
                .latencies_us
                .push(elapsed.as_micros().min(u32::MAX as u128) as u32),
            Err(e) => {
                tally.errors += 1;
                tally.first_error.get_or_insert(e);
                sender = None;
            }
        }
    }
    tally
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(addr: SocketAddr) -> Result<Sender, String> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    Ok(sender)
}

fn percentile_ms(sorted_us: &[u32], q: f64) -> f64 {
    if sorted_us.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted_us.len() as f64).ceil() as usize).clamp(1, sorted_us.len());
    sorted_us[rank - 1] as f64 / 1000.0
}

fn main() {
    let args = match parse_args() {
        Ok(a) => Arc::new(a),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let payloads = Arc::new(payloads(&args));
    let runtime = if args.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()
    }
    .unwrap();
    let (tallies, measured) = runtime.block_on(async {
        let start = Instant::now();
        let measure_from = start + Duration::from_secs_f64(args.warmup);
        let end = measure_from + Duration::from_secs_f64(args.seconds);
        let tasks: Vec<_> = (0..args.connections)
            .map(|c| {
                tokio::spawn(client(
                    args.clone(),
                    payloads.clone(),
                    c * 7,
                    measure_from,
                    end,
                ))
            })
            .collect();
        let mut tallies = Vec::new();
        for task in tasks {
            tallies.push(task.await.unwrap());
        }
        (tallies, Instant::now().duration_since(measure_from))
    });
    let mut latencies: Vec<u32> = tallies
        .iter()
        .flat_map(|t| t.latencies_us.iter().copied())
        .collect();
    latencies.sort_unstable();
    let errors: usize = tallies.iter().map(|t| t.errors).sum();
    let first_error = tallies.iter().find_map(|t| t.first_error.clone());
    let seconds = measured.as_secs_f64();
    let report = serde_json::json!({
        "mode": args.mode,
        "connections": args.connections,
        "seconds": seconds,
        "requests": latencies.len(),
        "errors": errors,
        "first_error": first_error,
        "rps": latencies.len() as f64 / seconds,
        "p50_ms": percentile_ms(&latencies, 0.50),
        "p90_ms": percentile_ms(&latencies, 0.90),
        "p99_ms": percentile_ms(&latencies, 0.99),
        "max_ms": percentile_ms(&latencies, 1.0),
    });
    if args.json {
        println!("{report}");
    } else {
        println!(
            "{} req/s  p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms  max {:.3} ms  errors {}{}",
            report["rps"].as_f64().unwrap().round(),
            report["p50_ms"].as_f64().unwrap(),
            report["p90_ms"].as_f64().unwrap(),
            report["p99_ms"].as_f64().unwrap(),
            report["max_ms"].as_f64().unwrap(),
            errors,
            first_error
                .map(|e| format!(" (first: {e})"))
                .unwrap_or_default()
        );
    }
}
