//! The server over real sockets: a seed CNN trained on the bundled digits is served on
//! 127.0.0.1:0 and every endpoint is called with a real HTTP client; answers are checked against
//! the Predictor run directly (the path `modelsmith predict` takes).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use hyper::{HeaderMap, Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use modelsmith::data::{load, LoadOptions, LoadedData};
use modelsmith::predict::Predictor;
use modelsmith::train::{train, Silent, TrainConfig};
use modelsmith_server::{BatchConfig, ModelSource, ServeError, ServeOptions, Server};
use serde_json::{json, Value};
use tokio::sync::oneshot;

// ---------------------------------------------------------------- fixtures

struct Fixture {
    /// Keeps the folder alive for the whole test binary.
    _dir: tempfile::TempDir,
    model: PathBuf,
    test: LoadedData,
}

/// A seed CNN trained on 1,000 real digits (once per test binary), and the first test digits.
fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let data = load("digits", &LoadOptions::default()).unwrap();
        let data = LoadedData {
            train: data.train.subset(&(0..1000).collect::<Vec<_>>()),
            test: data.test.subset(&(0..64).collect::<Vec<_>>()),
            info: data.info,
            task_choice: None,
        };
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("digits");
        let config = TrainConfig {
            epochs: 2,
            optimizer: "adam".into(),
            lr: 3e-3,
            ..TrainConfig::default()
        };
        train(&config, &data, &model, false, &mut Silent).unwrap();
        Fixture {
            _dir: dir,
            model,
            test: data,
        }
    })
}

/// The `i`-th test digit, preprocessed (784 values in 0..=1).
fn digit(i: usize) -> Vec<f32> {
    fixture().test.test.example(i).to_vec()
}

/// Probabilities from the Predictor itself, one example at a time.
fn direct_probabilities(model: &Path, inputs: &[Vec<f32>]) -> Vec<Vec<f32>> {
    let mut predictor = Predictor::load(model).unwrap();
    inputs
        .iter()
        .map(|x| predictor.outputs(&[x]).unwrap().remove(0))
        .collect()
}

fn assert_close(got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() < 1e-5, "{got:?} vs {want:?}");
    }
}

/// A running server on an ephemeral loopback port; dropping the handle shuts it down.
struct Running {
    addr: SocketAddr,
    grpc_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    done: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Running {
    async fn start(sources: &[ModelSource], options: ServeOptions) -> Running {
        let server = Server::new(sources, &options).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // Every test server also serves gRPC, so shutdown and drain cover both listeners.
        let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let grpc_addr = grpc.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let done = tokio::spawn(server.run(listener, Some(grpc), async {
            let _ = stopped.await;
        }));
        Running {
            addr,
            grpc_addr,
            stop: Some(stop),
            done: Some(done),
        }
    }

    async fn digits(options: ServeOptions) -> Running {
        Running::start(&[ModelSource::from_dir(&fixture().model)], options).await
    }

    /// Sends the shutdown signal without waiting.
    fn signal_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Asks for a graceful shutdown and waits for the server to finish.
    async fn shutdown(mut self) {
        self.signal_shutdown();
        let done = self.done.take().unwrap();
        tokio::time::timeout(Duration::from_secs(10), done)
            .await
            .expect("the server stops")
            .unwrap()
            .unwrap();
    }
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// Asserts the status and a JSON `{"error": "..."}` body mentioning `needle`.
    fn assert_error(&self, status: StatusCode, needle: &str) {
        assert_eq!(
            self.status,
            status,
            "body: {}",
            String::from_utf8_lossy(&self.body)
        );
        let body = self.json();
        let message = body["error"].as_str().expect("an error string");
        assert!(
            message.to_lowercase().contains(&needle.to_lowercase()),
            "error '{message}' should mention '{needle}'"
        );
    }
}

/// One request on a fresh HTTP/1.1 connection.
async fn call(
    addr: SocketAddr,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Answer {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let mut request = Request::builder().method(method).uri(path);
    request = request.header("host", addr.to_string());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = sender
        .send_request(request.body(Full::new(Bytes::from(body))).unwrap())
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes().to_vec(),
    }
}

async fn get(addr: SocketAddr, path: &str) -> Answer {
    call(addr, Method::GET, path, &[], Vec::new()).await
}

async fn post_json(addr: SocketAddr, path: &str, body: &Value) -> Answer {
    call(
        addr,
        Method::POST,
        path,
        &[("content-type", "application/json")],
        serde_json::to_vec(body).unwrap(),
    )
    .await
}

fn infer_body(inputs: &[Vec<f32>]) -> Value {
    let data: Vec<f32> = inputs.concat();
    json!({"id": "req-1", "inputs": [{
        "name": "input", "shape": [inputs.len(), 28, 28, 1], "datatype": "FP32", "data": data
    }]})
}

/// A test digit as an 8-bit grayscale PNG (the digits are stored as pixel / 255).
fn digit_png(i: usize) -> Vec<u8> {
    let pixels: Vec<u8> = digit(i)
        .iter()
        .map(|&v| (v * 255.0).round() as u8)
        .collect();
    let img = image::GrayImage::from_raw(28, 28, pixels).unwrap();
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

// ---------------------------------------------------------------- endpoints

#[tokio::test]
async fn health_server_and_model_metadata() {
    let server = Running::digits(ServeOptions::default()).await;
    let addr = server.addr;

    let live = get(addr, "/v2/health/live").await;
    assert_eq!(live.status, StatusCode::OK);
    assert_eq!(live.json()["live"], true);
    let ready = get(addr, "/v2/health/ready").await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(ready.json()["ready"], true);

    let meta = get(addr, "/v2").await.json();
    assert_eq!(meta["name"], "modelsmith");
    assert!(meta["version"].is_string());

    let model = get(addr, "/v2/models/digits").await;
    assert_eq!(model.status, StatusCode::OK);
    let model = model.json();
    assert_eq!(model["name"], "digits");
    assert_eq!(model["platform"], "modelsmith");
    assert_eq!(model["inputs"][0]["name"], "input");
    assert_eq!(model["inputs"][0]["datatype"], "FP32");
    assert_eq!(model["inputs"][0]["shape"], json!([-1, 28, 28, 1]));
    assert_eq!(model["outputs"][0]["name"], "probabilities");
    assert_eq!(model["outputs"][0]["shape"], json!([-1, 10]));
    assert_eq!(
        model["parameters"]["class_names"].as_array().unwrap().len(),
        10
    );

    let model_ready = get(addr, "/v2/models/digits/ready").await;
    assert_eq!(model_ready.status, StatusCode::OK);
    assert_eq!(model_ready.json()["ready"], true);

    get(addr, "/v2/models/nope")
        .await
        .assert_error(StatusCode::NOT_FOUND, "unknown model 'nope'");
    get(addr, "/v2/models/nope/ready")
        .await
        .assert_error(StatusCode::NOT_FOUND, "digits");
    server.shutdown().await;
}

#[tokio::test]
async fn infer_answers_like_the_predictor_for_flat_and_nested_data() {
    let server = Running::digits(ServeOptions::default()).await;
    let inputs: Vec<Vec<f32>> = (0..5).map(digit).collect();
    let want = direct_probabilities(&fixture().model, &inputs);

    let answer = post_json(server.addr, "/v2/models/digits/infer", &infer_body(&inputs)).await;
    assert_eq!(
        answer.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let body = answer.json();
    assert_eq!(body["model_name"], "digits");
    assert_eq!(body["id"], "req-1");
    let output = &body["outputs"][0];
    assert_eq!(output["name"], "probabilities");
    assert_eq!(output["datatype"], "FP32");
    assert_eq!(output["shape"], json!([5, 10]));
    let data: Vec<f32> = serde_json::from_value(output["data"].clone()).unwrap();
    for (row, want) in data.chunks(10).zip(&want) {
        assert_close(row, want);
        let sum: f32 = row.iter().sum();
        assert!((sum - 1.0).abs() < 1e-4);
    }

    // The same image as a nested [1][28][28][1] array, with the output asked for by name.
    let nested: Vec<Vec<Vec<f32>>> = digit(3)
        .chunks(28)
        .map(|row| row.iter().map(|&v| vec![v]).collect())
        .collect();
    let body = json!({"inputs": [{"name": "input", "shape": [1, 28, 28, 1], "datatype": "FP32",
                                  "data": [nested]}],
                      "outputs": [{"name": "probabilities"}]});
    let answer = post_json(server.addr, "/v2/models/digits/infer", &body).await;
    assert_eq!(answer.status, StatusCode::OK);
    let data: Vec<f32> =
        serde_json::from_value(answer.json()["outputs"][0]["data"].clone()).unwrap();
    assert_close(&data, &want[3]);
    assert!(answer.json().get("id").is_none());
    server.shutdown().await;
}

#[tokio::test]
async fn predict_takes_png_and_json_and_ranks_top_k() {
    let fixture = fixture();
    let server = Running::digits(ServeOptions::default()).await;
    let addr = server.addr;

    // A PNG body is treated exactly like `modelsmith predict FILE.png`.
    let png = digit_png(7);
    let file = fixture._dir.path().join("seven.png");
    std::fs::write(&file, &png).unwrap();
    let mut predictor = Predictor::load(&fixture.model).unwrap();
    let inputs = predictor.read_inputs(&[&file]).unwrap();
    let want = predictor.predict(&inputs, 3).unwrap().remove(0);

    let answer = call(
        addr,
        Method::POST,
        "/predict?top_k=3",
        &[("content-type", "image/png")],
        png,
    )
    .await;
    assert_eq!(
        answer.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let body = answer.json();
    assert_eq!(body["model"], "digits");
    let got = &body["predictions"][0];
    let modelsmith::predict::Answer::Class {
        class,
        class_index,
        top: want_top,
        ..
    } = &want.answer
    else {
        panic!("a classifier answers with classes");
    };
    assert_eq!(got["class"], class.as_str());
    assert_eq!(got["class_index"], *class_index);
    let top = got["top"].as_array().unwrap();
    assert_eq!(top.len(), 3);
    for ((class, p), entry) in want_top.iter().zip(top) {
        assert_eq!(entry["class"], class.as_str());
        assert!((entry["probability"].as_f64().unwrap() as f32 - p).abs() < 1e-5);
    }
    assert!(top[0]["probability"].as_f64() >= top[1]["probability"].as_f64());

    // JSON: one example, then a batch of three; default top_k is 1.
    let want = direct_probabilities(&fixture.model, &[digit(0), digit(1), digit(2)]);
    let argmax = |p: &[f32]| (0..p.len()).max_by(|&a, &b| p[a].total_cmp(&p[b])).unwrap();
    let one = post_json(addr, "/predict", &json!(digit(0))).await;
    assert_eq!(one.status, StatusCode::OK);
    let one = one.json();
    assert_eq!(one["predictions"].as_array().unwrap().len(), 1);
    assert_eq!(one["predictions"][0]["class_index"], argmax(&want[0]));
    assert_eq!(one["predictions"][0]["top"].as_array().unwrap().len(), 1);
    let batch = post_json(
        addr,
        "/predict?top_k=10",
        &json!([digit(0), digit(1), digit(2)]),
    )
    .await;
    assert_eq!(batch.status, StatusCode::OK);
    let batch = batch.json();
    let predictions = batch["predictions"].as_array().unwrap();
    assert_eq!(predictions.len(), 3);
    for (p, want) in predictions.iter().zip(&want) {
        assert_eq!(p["class_index"], argmax(want));
        assert!((p["probability"].as_f64().unwrap() as f32 - want[argmax(want)]).abs() < 1e-5);
        assert_eq!(p["top"].as_array().unwrap().len(), 10);
    }
    server.shutdown().await;
}

#[tokio::test]
async fn metrics_count_requests_errors_latency_and_batches() {
    let server = Running::digits(ServeOptions::default()).await;
    let addr = server.addr;
    for i in 0..3 {
        let ok = post_json(addr, "/v2/models/digits/infer", &infer_body(&[digit(i)])).await;
        assert_eq!(ok.status, StatusCode::OK);
    }
    let bad = post_json(addr, "/v2/models/digits/infer", &json!({"inputs": []})).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);

    let metrics = get(addr, "/metrics").await;
    assert_eq!(metrics.status, StatusCode::OK);
    let text = String::from_utf8(metrics.body).unwrap();
    let has = |line: &str| text.lines().any(|l| l == line);
    assert!(
        has(r#"modelsmith_http_requests_total{endpoint="/v2/models/{name}/infer",code="200"} 3"#),
        "{text}"
    );
    assert!(
        has(r#"modelsmith_http_errors_total{endpoint="/v2/models/{name}/infer",code="400"} 1"#),
        "{text}"
    );
    assert!(
        has(
            r#"modelsmith_http_request_duration_seconds_count{endpoint="/v2/models/{name}/infer"} 4"#
        ),
        "{text}"
    );
    assert!(
        has(r#"modelsmith_batch_size_sum{model="digits"} 3.0"#),
        "{text}"
    );
    assert!(
        text.contains("modelsmith_inference_duration_seconds_bucket"),
        "{text}"
    );
    server.shutdown().await;
}

// ---------------------------------------------------------------- bad input

#[tokio::test]
async fn bad_input_gets_a_4xx_with_a_json_error() {
    let server = Running::digits(ServeOptions {
        max_body_bytes: 64 * 1024,
        ..ServeOptions::default()
    })
    .await;
    let addr = server.addr;
    let infer = "/v2/models/digits/infer";
    let one = digit(0);
    let tensor = |name: &str, shape: Value, datatype: &str, data: &[f32]| json!({"inputs": [{"name": name, "shape": shape, "datatype": datatype, "data": data}]});

    // Wrong shape, dtype, name, value count, batch 0, several inputs, unknown output.
    post_json(
        addr,
        infer,
        &tensor("input", json!([1, 28, 28, 3]), "FP32", &one),
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "[batch, 28, 28, 1]");
    post_json(addr, infer, &tensor("input", json!([1, 784]), "FP32", &one))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "shape");
    post_json(
        addr,
        infer,
        &tensor("input", json!([1, 28, 28, 1]), "INT64", &one),
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "datatype INT64");
    post_json(
        addr,
        infer,
        &tensor("pixels", json!([1, 28, 28, 1]), "FP32", &one),
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "unknown input 'pixels'");
    post_json(
        addr,
        infer,
        &tensor("input", json!([2, 28, 28, 1]), "FP32", &one),
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "needs 1568");
    post_json(
        addr,
        infer,
        &tensor("input", json!([0, 28, 28, 1]), "FP32", &[]),
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "batch >= 1");
    post_json(addr, infer, &json!({"inputs": []}))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "exactly one");
    let mut with_output = infer_body(std::slice::from_ref(&one));
    with_output["outputs"] = json!([{"name": "logits"}]);
    post_json(addr, infer, &with_output)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "unknown output 'logits'");
    post_json(
        addr,
        infer,
        &json!({"inputs": [{"name": "input", "shape": [1, 28, 28, 1], "datatype": "FP32", "data": ["x"]}]}),
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "invalid inference request JSON");

    // Invalid JSON.
    call(
        addr,
        Method::POST,
        infer,
        &[("content-type", "application/json")],
        b"{\"inputs\": [".to_vec(),
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "invalid inference request JSON");
    call(
        addr,
        Method::POST,
        "/predict",
        &[("content-type", "application/json")],
        b"[1, 2,".to_vec(),
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "invalid JSON");

    // /predict: wrong length, empty, a body that is no image, unsupported or missing media type.
    post_json(addr, "/predict", &json!(vec![0.5; 10]))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "has 10 values");
    post_json(addr, "/predict", &json!([one.clone(), vec![0.5; 3]]))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "example 2 has 3 values");
    post_json(addr, "/predict", &json!([]))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "empty");
    call(
        addr,
        Method::POST,
        "/predict",
        &[("content-type", "image/png")],
        b"GIF89a not a png".to_vec(),
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "cannot decode image");
    call(
        addr,
        Method::POST,
        "/predict",
        &[("content-type", "text/plain")],
        b"7".to_vec(),
    )
    .await
    .assert_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "text/plain");
    call(addr, Method::POST, "/predict", &[], digit_png(0))
        .await
        .assert_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "no content-type");

    // Query: top_k 0 or not a number; an unknown model.
    post_json(addr, "/predict?top_k=0", &json!(one))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "top_k");
    post_json(addr, "/predict?top_k=many", &json!(one))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "top_k");
    post_json(addr, "/predict?model=cats", &json!(one))
        .await
        .assert_error(StatusCode::NOT_FOUND, "unknown model 'cats'");
    post_json(
        addr,
        "/v2/models/cats/infer",
        &infer_body(std::slice::from_ref(&one)),
    )
    .await
    .assert_error(StatusCode::NOT_FOUND, "unknown model 'cats'");

    // Oversized bodies: 413, whether announced by Content-Length or not.
    let big = vec![b' '; 100 * 1024];
    call(
        addr,
        Method::POST,
        infer,
        &[("content-type", "application/json")],
        big.clone(),
    )
    .await
    .assert_error(StatusCode::PAYLOAD_TOO_LARGE, "65536 bytes");
    call(
        addr,
        Method::POST,
        "/predict",
        &[("content-type", "image/png")],
        big,
    )
    .await
    .assert_error(StatusCode::PAYLOAD_TOO_LARGE, "limit");

    // Unknown routes and methods answer in JSON too.
    get(addr, "/v1/models")
        .await
        .assert_error(StatusCode::NOT_FOUND, "no endpoint at /v1/models");
    get(addr, infer)
        .await
        .assert_error(StatusCode::METHOD_NOT_ALLOWED, "GET");

    // After all that, the server still answers.
    let ok = post_json(addr, infer, &infer_body(&[one])).await;
    assert_eq!(ok.status, StatusCode::OK);
    server.shutdown().await;
}

#[tokio::test]
async fn a_token_guards_everything_but_the_health_probes() {
    let server = Running::digits(ServeOptions {
        token: Some("s3cret".into()),
        ..ServeOptions::default()
    })
    .await;
    let addr = server.addr;
    assert_eq!(get(addr, "/v2/health/live").await.status, StatusCode::OK);
    assert_eq!(get(addr, "/v2/health/ready").await.status, StatusCode::OK);

    for path in ["/v2", "/v2/models/digits", "/metrics"] {
        let answer = get(addr, path).await;
        answer.assert_error(StatusCode::UNAUTHORIZED, "missing token");
        assert_eq!(
            answer.headers.get(WWW_AUTHENTICATE),
            Some(&HeaderValue::from_static("Bearer realm=\"modelsmith\""))
        );
    }
    let body = serde_json::to_vec(&json!(digit(0))).unwrap();
    let json_type = (CONTENT_TYPE.as_str(), "application/json");
    call(addr, Method::POST, "/predict", &[json_type], body.clone())
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "missing token");
    call(
        addr,
        Method::POST,
        "/predict",
        &[json_type, (AUTHORIZATION.as_str(), "Bearer s3cre")],
        body.clone(),
    )
    .await
    .assert_error(StatusCode::UNAUTHORIZED, "wrong");
    call(
        addr,
        Method::POST,
        "/predict",
        &[json_type, (AUTHORIZATION.as_str(), "Basic s3cret")],
        body.clone(),
    )
    .await
    .assert_error(StatusCode::UNAUTHORIZED, "missing token");
    let ok = call(
        addr,
        Method::POST,
        "/predict",
        &[json_type, (AUTHORIZATION.as_str(), "Bearer s3cret")],
        body,
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK);
    let metrics = call(
        addr,
        Method::GET,
        "/metrics",
        &[(AUTHORIZATION.as_str(), "bearer s3cret")],
        Vec::new(),
    )
    .await;
    assert_eq!(metrics.status, StatusCode::OK);
    server.shutdown().await;
}

// ---------------------------------------------------------------- load, batching, shutdown

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_are_batched_and_all_answered_correctly() {
    let fixture = fixture();
    let server = Running::digits(ServeOptions {
        batch: BatchConfig {
            max_batch: 16,
            max_delay: Duration::from_millis(2),
            ..BatchConfig::default()
        },
        ..ServeOptions::default()
    })
    .await;
    let addr = server.addr;
    let inputs: Vec<Vec<f32>> = (0..fixture.test.test.len()).map(digit).collect();
    let want = direct_probabilities(&fixture.model, &inputs);

    // 16 clients, each on its own keep-alive connection, 200 requests in all.
    let (tasks, requests) = (16, 200);
    let mut handles = Vec::new();
    for task in 0..tasks {
        let inputs = inputs.clone();
        handles.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .unwrap();
            tokio::spawn(connection);
            let mut answers = Vec::new();
            for r in (task..requests).step_by(tasks) {
                let i = r % inputs.len();
                let body = serde_json::to_vec(&infer_body(&[inputs[i].clone()])).unwrap();
                let request = Request::post("/v2/models/digits/infer")
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(body)))
                    .unwrap();
                let response = sender.send_request(request).await.unwrap();
                let status = response.status();
                let body = response.into_body().collect().await.unwrap().to_bytes();
                answers.push((i, status, body));
            }
            answers
        }));
    }
    let mut answered = 0;
    for handle in handles {
        for (i, status, body) in handle.await.unwrap() {
            assert_eq!(status, StatusCode::OK);
            let body: Value = serde_json::from_slice(&body).unwrap();
            let data: Vec<f32> =
                serde_json::from_value(body["outputs"][0]["data"].clone()).unwrap();
            assert_close(&data, &want[i]);
            answered += 1;
        }
    }
    assert_eq!(answered, requests);

    // Every example went through a batch, and concurrent ones shared forward passes.
    let text = String::from_utf8(get(addr, "/metrics").await.body).unwrap();
    let value = |name: &str| -> f64 {
        let line = text
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name}: {text}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert_eq!(
        value("modelsmith_batch_size_sum{model=\"digits\"}"),
        requests as f64
    );
    let batches = value("modelsmith_batch_size_count{model=\"digits\"}");
    assert!(
        batches < requests as f64,
        "{batches} forward passes for {requests} requests"
    );
    // Predictions counted, and the energy the process used so far (estimated here: no RAPL),
    // only ever growing from one scrape to the next.
    assert_eq!(
        value("modelsmith_predictions_total{model=\"digits\"}"),
        requests as f64
    );
    let joules = value("modelsmith_energy_joules_total{method=\"estimate\"}");
    assert!(joules > 0.0, "{text}");
    let again = String::from_utf8(get(addr, "/metrics").await.body).unwrap();
    let later: f64 = again
        .lines()
        .find(|l| l.starts_with("modelsmith_energy_joules_total"))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap();
    assert!(later >= joules, "{later} after {joules}");
    server.shutdown().await;
}

#[tokio::test]
async fn shutdown_finishes_in_flight_requests_then_refuses_connections() {
    // The batcher holds the lone request for 400 ms, so it is in flight when shutdown starts.
    let server = Running::digits(ServeOptions {
        batch: BatchConfig {
            max_batch: 32,
            max_delay: Duration::from_millis(400),
            ..BatchConfig::default()
        },
        ..ServeOptions::default()
    })
    .await;
    let addr = server.addr;
    let in_flight = tokio::spawn(async move {
        post_json(addr, "/v2/models/digits/infer", &infer_body(&[digit(0)])).await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.shutdown().await;
    let answer = in_flight.await.unwrap();
    assert_eq!(answer.status, StatusCode::OK);
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "still accepting"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_503_at_once_and_every_request_is_answered() {
    // One waiting request per model at most, and big requests that keep the worker busy: most
    // of 48 simultaneous ones find the queue full.
    let server = Running::digits(ServeOptions {
        batch: BatchConfig {
            max_batch: 1,
            max_queue: 1,
            ..BatchConfig::default()
        },
        ..ServeOptions::default()
    })
    .await;
    let addr = server.addr;
    let body = infer_body(&(0..64).map(|i| digit(i % 64)).collect::<Vec<_>>());
    let want = direct_probabilities(&fixture().model, &[digit(0)]);
    let requests: Vec<_> = (0..48)
        .map(|_| {
            let body = body.clone();
            tokio::spawn(async move { post_json(addr, "/v2/models/digits/infer", &body).await })
        })
        .collect();
    let (mut ok, mut refused) = (0, 0);
    for request in requests {
        let answer = request.await.unwrap();
        if answer.status == StatusCode::OK {
            let data: Vec<f32> =
                serde_json::from_value(answer.json()["outputs"][0]["data"].clone()).unwrap();
            assert_close(&data[..10], &want[0]);
            ok += 1;
        } else {
            answer.assert_error(StatusCode::SERVICE_UNAVAILABLE, "queue is full");
            assert_eq!(answer.headers["retry-after"], "1");
            refused += 1;
        }
    }
    assert_eq!(ok + refused, 48);
    assert!(ok >= 1 && refused >= 1, "{ok} answered, {refused} refused");
    // The server is still healthy afterwards.
    let after = post_json(addr, "/v2/models/digits/infer", &infer_body(&[digit(0)])).await;
    assert_eq!(after.status, StatusCode::OK);
    server.shutdown().await;
}

#[tokio::test]
async fn draining_answers_not_ready_but_still_serves_until_the_drain_ends() {
    let mut server = Running::digits(ServeOptions {
        drain: Duration::from_millis(1500),
        ..ServeOptions::default()
    })
    .await;
    let addr = server.addr;
    assert_eq!(get(addr, "/v2/health/ready").await.status, StatusCode::OK);
    let started = std::time::Instant::now();
    server.signal_shutdown();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let ready = get(addr, "/v2/health/ready").await;
    ready.assert_error(StatusCode::SERVICE_UNAVAILABLE, "shutting down");
    assert_eq!(get(addr, "/v2/health/live").await.status, StatusCode::OK);
    let infer = post_json(addr, "/v2/models/digits/infer", &infer_body(&[digit(0)])).await;
    assert_eq!(infer.status, StatusCode::OK, "still serving while draining");
    server.shutdown().await;
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "stopped after {:?}, before the drain ended",
        started.elapsed()
    );
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

// ---------------------------------------------------------------- several models

#[tokio::test]
async fn a_model_repository_serves_every_model_folder() {
    let fixture = fixture();
    let repo = tempfile::tempdir().unwrap();
    for name in ["alpha", "beta"] {
        let dir = repo.path().join(name);
        std::fs::create_dir(&dir).unwrap();
        for file in ["model.json", "weights.safetensors"] {
            std::fs::copy(fixture.model.join(file), dir.join(file)).unwrap();
        }
    }
    std::fs::create_dir(repo.path().join("notes")).unwrap();
    let sources = ModelSource::scan_repository(repo.path()).unwrap();
    let names: Vec<&str> = sources.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["alpha", "beta"]);

    let server = Running::start(&sources, ServeOptions::default()).await;
    let addr = server.addr;
    for name in ["alpha", "beta"] {
        let path = format!("/v2/models/{name}/infer");
        let answer = post_json(addr, &path, &infer_body(&[digit(1)])).await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.json()["model_name"], name);
    }
    post_json(addr, "/predict", &json!(digit(1)))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "alpha, beta");
    let picked = post_json(addr, "/predict?model=beta", &json!(digit(1))).await;
    assert_eq!(picked.json()["model"], "beta");
    server.shutdown().await;

    // Bad repositories and names are refused before serving.
    let empty = tempfile::tempdir().unwrap();
    assert!(matches!(
        ModelSource::scan_repository(empty.path()),
        Err(ServeError::Repository { .. })
    ));
    let twice = [sources[0].clone(), sources[0].clone()];
    assert!(matches!(
        Server::new(&twice, &ServeOptions::default()),
        Err(ServeError::DuplicateName { .. })
    ));
    let missing = [ModelSource::from_dir(&repo.path().join("notes"))];
    let err = Server::new(&missing, &ServeOptions::default())
        .err()
        .unwrap();
    assert!(err.is_bad_input(), "{err}");
    assert!(err.to_string().contains("notes"), "{err}");
}

// ---------------------------------------------------------------- hostile clients

/// Reads whatever the server sends until it closes the connection (or `within` passes).
async fn read_until_closed(stream: &mut tokio::net::TcpStream, within: Duration) -> Option<String> {
    use tokio::io::AsyncReadExt;
    let mut out = Vec::new();
    match tokio::time::timeout(within, stream.read_to_end(&mut out)).await {
        Ok(_) => Some(String::from_utf8_lossy(&out).into_owned()),
        Err(_) => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_and_idle_connections_are_closed_after_the_header_timeout() {
    use tokio::io::AsyncWriteExt;
    let server = Running::digits(ServeOptions {
        limits: modelsmith_server::ConnectionLimits {
            header_timeout: Duration::from_millis(300),
            ..Default::default()
        },
        ..ServeOptions::default()
    })
    .await;
    // Slowloris: a request line and half a header, then nothing.
    let mut slow = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    slow.write_all(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nX-Slow: a")
        .await
        .unwrap();
    // Idle: connected, never a byte.
    let mut idle = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    // Kept alive after one answered request, then silent.
    let mut kept = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    kept.write_all(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let answered = read_until_closed(&mut kept, Duration::from_secs(5))
        .await
        .expect("closed once idle");
    assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");
    for stream in [&mut slow, &mut idle] {
        assert!(
            read_until_closed(stream, Duration::from_secs(5))
                .await
                .is_some(),
            "the server kept a silent connection open"
        );
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_connection_cap_idle_clients_make_room_and_liveness_answers() {
    let server = Running::digits(ServeOptions {
        limits: modelsmith_server::ConnectionLimits {
            max_connections: 8,
            ..Default::default()
        },
        ..ServeOptions::default()
    })
    .await;
    // Twenty idle connections: four times the cap, as an attacker holding sockets would.
    let mut idle = Vec::new();
    for _ in 0..20 {
        idle.push(tokio::net::TcpStream::connect(server.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    for _ in 0..5 {
        let live =
            tokio::time::timeout(Duration::from_secs(5), get(server.addr, "/v2/health/live"))
                .await
                .expect("liveness answered while the cap was full");
        assert_eq!(live.status, StatusCode::OK);
    }
    // The oldest idle connections were closed to make room.
    let closed = read_until_closed(&mut idle[0], Duration::from_secs(5)).await;
    assert!(closed.is_some(), "the oldest idle connection is still open");
    server.shutdown().await;
}

#[tokio::test]
async fn a_declared_oversize_body_gets_413_before_it_is_sent() {
    use tokio::io::AsyncWriteExt;
    let server = Running::digits(ServeOptions::default()).await;
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    // 100 GB declared; not one byte of it follows.
    stream
        .write_all(
            b"POST /v2/models/digits/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              Content-Length: 100000000000\r\n\r\n",
        )
        .await
        .unwrap();
    let mut head = vec![0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(5), async {
        use tokio::io::AsyncReadExt;
        stream.read(&mut head).await.unwrap()
    })
    .await
    .expect("answered without waiting for the body");
    let text = String::from_utf8_lossy(&head[..n]);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(text.contains("--max-body-bytes"), "{text}");
    server.shutdown().await;
}

#[tokio::test]
async fn a_request_larger_than_max_batch_runs_in_passes_and_answers_every_example() {
    let server = Running::digits(ServeOptions {
        batch: BatchConfig {
            max_batch: 4,
            ..BatchConfig::default()
        },
        ..ServeOptions::default()
    })
    .await;
    let inputs: Vec<Vec<f32>> = (0..19).map(digit).collect();
    let answer = post_json(server.addr, "/v2/models/digits/infer", &infer_body(&inputs)).await;
    assert_eq!(answer.status, StatusCode::OK);
    let body = answer.json();
    let data: Vec<f32> = body["outputs"][0]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    let want = direct_probabilities(&fixture().model, &inputs);
    assert_close(&data, &want.concat());
    server.shutdown().await;
}

#[tokio::test]
async fn versioned_routes_answer_for_the_one_version() {
    let server = Running::digits(ServeOptions::default()).await;
    let meta = get(server.addr, "/v2/models/digits/versions/1").await;
    assert_eq!(meta.status, StatusCode::OK);
    assert_eq!(meta.json()["versions"], json!(["1"]));
    let ready = get(server.addr, "/v2/models/digits/versions/1/ready").await;
    assert_eq!(ready.json()["ready"], true);
    let infer = post_json(
        server.addr,
        "/v2/models/digits/versions/1/infer",
        &infer_body(&[digit(0)]),
    )
    .await;
    assert_eq!(infer.status, StatusCode::OK);
    assert_eq!(infer.json()["model_version"], "1");
    get(server.addr, "/v2/models/digits/versions/2/ready")
        .await
        .assert_error(StatusCode::NOT_FOUND, "only version is 1");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_bomb_is_refused_without_decoding_it() {
    // 8192 x 8192 RGBA (256 MiB decoded) in a PNG of a few hundred kilobytes.
    let img = image::RgbaImage::new(8192, 8192);
    let mut png = std::io::Cursor::new(Vec::new());
    img.write_to(&mut png, image::ImageFormat::Png).unwrap();
    let png = png.into_inner();
    assert!(png.len() < 2 << 20, "{}", png.len());
    let server = Running::digits(ServeOptions::default()).await;
    let answer = call(
        server.addr,
        Method::POST,
        "/predict",
        &[("content-type", "image/png")],
        png,
    )
    .await;
    answer.assert_error(StatusCode::BAD_REQUEST, "cannot decode image");
    server.shutdown().await;
}

// ---------------------------------------------------------------- arbitrary bodies

/// KServe JSON bodies near the valid form: shapes, datatypes, names and data of every kind,
/// nested or flat, with huge and negative dimensions.
fn infer_json() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    let dim = prop_oneof![
        Just(json!(1)),
        Just(json!(28)),
        Just(json!(-1)),
        Just(json!(0)),
        Just(json!(u64::MAX)),
        Just(json!(1i64 << 40)),
        Just(json!(1.5)),
        Just(json!("28")),
    ];
    let data = prop_oneof![
        proptest::collection::vec(any::<f32>().prop_map(|v| json!(v)), 0..20).prop_map(Value::from),
        Just(json!([[0.1, 0.2], [0.3]])),
        Just(json!([[[[]]]])),
        Just(json!("pixels")),
        Just(json!(null)),
        Just(json!([1e300, -1e300])),
    ];
    let input = (
        prop_oneof![Just("input"), Just("x")],
        proptest::collection::vec(dim, 0..6),
        prop_oneof![Just("FP32"), Just("UINT8"), Just("BYTES"), Just("fp32")],
        data,
    )
        .prop_map(|(name, shape, datatype, data)| {
            json!({"name": name, "shape": shape, "datatype": datatype, "data": data})
        });
    (
        proptest::collection::vec(input, 0..3),
        any::<bool>(),
        "\\PC{0,12}",
    )
        .prop_map(|(inputs, outputs, garbage)| {
            let mut body = json!({ "inputs": inputs });
            if outputs {
                body["outputs"] = json!([{"name": "probabilities"}, {"name": garbage}]);
            }
            let text = body.to_string();
            // Some bodies are cut short or have junk appended.
            match garbage.len() % 4 {
                0 => text[..text.len() / 2].to_string(),
                1 => format!("{text}{garbage}"),
                _ => text,
            }
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arbitrary_infer_and_predict_bodies_get_an_answer_never_a_5xx() {
    use proptest::test_runner::{Config, TestCaseError, TestRunner};
    use tower::ServiceExt;
    let server = Server::new(
        &[ModelSource::from_dir(&fixture().model)],
        &ServeOptions::default(),
    )
    .unwrap();
    let router = server.router();
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(200);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let handle = tokio::runtime::Handle::current();
    let result = tokio::task::spawn_blocking(move || {
        runner.run(&(infer_json(), 0usize..3), |(body, route)| {
            let (path, content_type) = [
                ("/v2/models/digits/infer", "application/json"),
                ("/v2/models/digits/versions/1/infer", "application/json"),
                ("/predict", "application/json"),
            ][route];
            let request = Request::builder()
                .method(Method::POST)
                .uri(path)
                .header(CONTENT_TYPE, content_type)
                .body(axum::body::Body::from(body.clone()))
                .unwrap();
            let response = handle.block_on(router.clone().oneshot(request)).unwrap();
            let status = response.status();
            let bytes = handle
                .block_on(response.into_body().collect())
                .unwrap()
                .to_bytes();
            if status.is_server_error() {
                return Err(TestCaseError::fail(format!("{status} for {body}")));
            }
            if !status.is_success() {
                let v: Value = serde_json::from_slice(&bytes)
                    .map_err(|_| TestCaseError::fail(format!("{status}: not JSON")))?;
                if !v["error"].is_string() {
                    return Err(TestCaseError::fail(format!("{status}: {v}")));
                }
            }
            Ok(())
        })
    })
    .await
    .unwrap();
    result.unwrap();
}

/// A binary-tensor request body (Triton's extension): the JSON header, then the raw bytes.
fn binary_request(header: &Value, binary: &[u8]) -> (Vec<u8>, String) {
    let mut body = serde_json::to_vec(header).unwrap();
    let length = body.len().to_string();
    body.extend_from_slice(binary);
    (body, length)
}

async fn post_binary(addr: SocketAddr, path: &str, header: &Value, binary: &[u8]) -> Answer {
    let (body, length) = binary_request(header, binary);
    call(
        addr,
        Method::POST,
        path,
        &[
            ("content-type", "application/octet-stream"),
            ("inference-header-content-length", &length),
        ],
        body,
    )
    .await
}

/// The output tensor of a binary response: its JSON header and its f32 values.
fn binary_output(answer: &Answer) -> (Value, Vec<f32>) {
    assert_eq!(
        answer.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let length: usize = answer.headers["inference-header-content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let header: Value = serde_json::from_slice(&answer.body[..length]).unwrap();
    let values = answer.body[length..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    (header, values)
}

#[tokio::test]
async fn binary_tensors_in_fp32_and_uint8_answer_like_the_predictor() {
    let server = Running::digits(ServeOptions::default()).await;
    let inputs: Vec<Vec<f32>> = (0..3).map(digit).collect();
    let want = direct_probabilities(&fixture().model, &inputs);
    let fp32: Vec<u8> = inputs
        .concat()
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let header = |datatype: &str, size: usize| {
        json!({"inputs": [{"name": "input", "shape": [3, 28, 28, 1], "datatype": datatype,
                           "parameters": {"binary_data_size": size}}],
               "parameters": {"binary_data_output": true}})
    };
    let path = "/v2/models/digits/infer";

    // FP32 in, binary out.
    let answer = post_binary(server.addr, path, &header("FP32", fp32.len()), &fp32).await;
    let (head, values) = binary_output(&answer);
    assert_eq!(
        head["outputs"][0]["parameters"]["binary_data_size"],
        3 * 10 * 4
    );
    assert!(head["outputs"][0].get("data").is_none());
    for (row, w) in values.chunks(10).zip(&want) {
        assert_close(row, w);
    }

    // UINT8 raw pixels (a quarter of the bytes): the server scales them by 1/255. The
    // digits are stored as pixel / 255, so the bytes are exact.
    let pixels: Vec<u8> = inputs
        .concat()
        .iter()
        .map(|&v| (v * 255.0).round() as u8)
        .collect();
    let answer = post_binary(server.addr, path, &header("UINT8", pixels.len()), &pixels).await;
    let (_, values) = binary_output(&answer);
    for (row, w) in values.chunks(10).zip(&want) {
        assert_close(row, w);
    }

    // Binary in, JSON out when the output asks for it.
    let mut json_out = header("FP32", fp32.len());
    json_out["parameters"] = json!({});
    json_out["outputs"] = json!([{"name": "probabilities", "parameters": {"binary_data": false}}]);
    let answer = post_binary(server.addr, path, &json_out, &fp32).await;
    let body = answer.json();
    let data: Vec<f32> = serde_json::from_value(body["outputs"][0]["data"].clone()).unwrap();
    assert_close(&data[..10], &want[0]);

    // JSON in, binary out through the output's own parameter.
    let mut request = infer_body(&inputs[..1]);
    request["outputs"] = json!([{"name": "probabilities", "parameters": {"binary_data": true}}]);
    let answer = post_json(server.addr, path, &request).await;
    let (_, values) = binary_output(&answer);
    assert_close(&values, &want[0]);

    // Sizes that disagree with the shape, the body or the datatype: 400 naming the tensor.
    let short = &fp32[..fp32.len() - 4];
    post_binary(server.addr, path, &header("FP32", short.len()), short)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "input 'input' has 9404 bytes");
    post_binary(server.addr, path, &header("FP32", fp32.len()), short)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "only 9404 remain");
    let mut extra = fp32.clone();
    extra.extend_from_slice(&[0; 4]);
    post_binary(server.addr, path, &header("FP32", fp32.len()), &extra)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "4 bytes of binary data follow");
    post_binary(
        server.addr,
        path,
        &header("FP16", fp32.len() / 2),
        &fp32[..fp32.len() / 2],
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "or UINT8 pixels");
    let mut nan = fp32.clone();
    nan[4..8].copy_from_slice(&f32::NAN.to_le_bytes());
    post_binary(server.addr, path, &header("FP32", nan.len()), &nan)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "finite");
    let (body, _) = binary_request(&header("FP32", fp32.len()), &fp32);
    call(
        server.addr,
        Method::POST,
        path,
        &[("inference-header-content-length", "99999999")],
        body,
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "inference-header-content-length");
    let mut json_pixels = infer_body(&inputs[..1]);
    json_pixels["inputs"][0]["datatype"] = json!("UINT8");
    post_json(server.addr, path, &json_pixels)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "whole numbers 0 to 255");
    // The server still answers.
    assert_eq!(
        get(server.addr, "/v2/health/ready").await.status,
        StatusCode::OK
    );
    server.shutdown().await;
}

#[tokio::test]
async fn model_config_and_statistics_follow_the_requests() {
    let server = Running::digits(ServeOptions::default()).await;
    let config = get(server.addr, "/v2/models/digits/config").await.json();
    assert_eq!(config["max_batch_size"], 32);
    assert_eq!(config["input"][0]["dims"], json!([28, 28, 1]));
    assert_eq!(config["output"][0]["data_type"], "TYPE_FP32");
    assert_eq!(
        get(server.addr, "/v2/models/digits/versions/1/config")
            .await
            .status,
        StatusCode::OK
    );
    get(server.addr, "/v2/models/digits/versions/2/config")
        .await
        .assert_error(StatusCode::NOT_FOUND, "no version '2'");
    let extensions = get(server.addr, "/v2").await.json()["extensions"].clone();
    assert!(extensions
        .as_array()
        .unwrap()
        .contains(&json!("statistics")));

    let stats = |v: &Value| v["model_stats"][0].clone();
    let before = stats(&get(server.addr, "/v2/models/digits/stats").await.json());
    assert_eq!(before["inference_count"], 0);
    let inputs: Vec<Vec<f32>> = (0..4).map(digit).collect();
    let ok = post_json(server.addr, "/v2/models/digits/infer", &infer_body(&inputs)).await;
    assert_eq!(ok.status, StatusCode::OK);
    let mut bad = infer_body(&inputs[..1]);
    bad["inputs"][0]["shape"] = json!([1, 27, 28, 1]);
    let refused = post_json(server.addr, "/v2/models/digits/infer", &bad).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    let after = stats(&get(server.addr, "/v2/models/digits/stats").await.json());
    assert_eq!(after["name"], "digits");
    assert_eq!(after["inference_count"], 4);
    assert_eq!(after["execution_count"], 1);
    assert_eq!(after["inference_stats"]["success"]["count"], 1);
    assert_eq!(after["inference_stats"]["fail"]["count"], 1);
    assert!(
        after["inference_stats"]["compute_infer"]["ns"]
            .as_u64()
            .unwrap()
            > 0
    );
    let all = get(server.addr, "/v2/models/stats").await.json();
    assert_eq!(all["model_stats"].as_array().unwrap().len(), 1);
    get(server.addr, "/v2/models/nope/stats")
        .await
        .assert_error(StatusCode::NOT_FOUND, "nope");
    server.shutdown().await;
}

/// NVIDIA's `tritonclient` (from PyPI), with its defaults, against this server: the Python
/// named by `MODELSMITH_TRITONCLIENT_PYTHON` runs `tests/clients/tritonclient_check.py`
/// (`scripts/test` makes that venv). Without it the test says SKIPPED, or fails under CI=true.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tritonclient_with_its_defaults_gets_the_predictors_answers() {
    let Some(python) = std::env::var_os("MODELSMITH_TRITONCLIENT_PYTHON") else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "MODELSMITH_TRITONCLIENT_PYTHON is not set (scripts/test installs tritonclient)"
        );
        eprintln!("SKIPPED: MODELSMITH_TRITONCLIENT_PYTHON is not set");
        return;
    };
    // A 1 MiB message limit: the script's 400-digit gRPC request (1.25 MB) passes it.
    let server = Running::digits(ServeOptions {
        max_body_bytes: 1 << 20,
        ..ServeOptions::default()
    })
    .await;
    let inputs: Vec<Vec<f32>> = (0..5).map(digit).collect();
    let want = direct_probabilities(&fixture().model, &inputs);
    let dir = tempfile::tempdir().unwrap();
    let inputs_path = dir.path().join("inputs.json");
    let nested: Vec<Vec<Vec<Vec<f32>>>> = inputs
        .iter()
        .map(|x| {
            x.chunks(28)
                .map(|row| row.iter().map(|&v| vec![v]).collect())
                .collect()
        })
        .collect();
    std::fs::write(&inputs_path, serde_json::to_vec(&nested).unwrap()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/tritonclient_check.py");
    let (url, grpc_url) = (server.addr.to_string(), server.grpc_addr.to_string());
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .arg(script)
            .args([url.as_str(), "digits"])
            .arg(&inputs_path)
            .args([grpc_url.as_str(), "400"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "tritonclient_check.py failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let got: Value = serde_json::from_slice(&output.stdout).unwrap();
    for key in ["live", "ready", "model_ready", "model_ready_v1"] {
        assert_eq!(got[key], true, "{key}");
    }
    assert_eq!(got["model_ready_v2"], false);
    assert_eq!(got["server_metadata"]["name"], "modelsmith");
    assert_eq!(
        got["model_metadata"]["inputs"][0]["shape"],
        json!([-1, 28, 28, 1])
    );
    assert_eq!(got["model_metadata_v1"]["name"], "digits");
    assert_eq!(got["model_config"]["max_batch_size"], 32);
    for key in ["binary", "json", "versioned", "uint8", "json_output"] {
        let rows: Vec<Vec<f32>> = serde_json::from_value(got[key].clone()).unwrap();
        assert_eq!(rows.len(), want.len(), "{key}");
        for (row, w) in rows.iter().zip(&want) {
            assert_close(row, w);
        }
    }
    let errors = &got["errors"];
    assert_eq!(errors["wrong_shape"]["status"], "400", "{errors}");
    assert_eq!(errors["wrong_datatype"]["status"], "400", "{errors}");
    assert!(errors["wrong_datatype"]["message"]
        .as_str()
        .unwrap()
        .contains("INT32"));
    assert_eq!(errors["unknown_model"]["status"], "404", "{errors}");
    assert_eq!(errors["unknown_version"]["status"], "404", "{errors}");
    let stats = &got["statistics"]["model_stats"][0];
    // Five inferences of five digits succeeded before the statistics were read; two failed
    // (the unknown version never reached the model).
    assert_eq!(stats["inference_count"], 25, "{stats}");
    assert_eq!(stats["inference_stats"]["fail"]["count"], 2, "{stats}");

    // gRPC, with tritonclient.grpc's defaults (raw input contents).
    let g = &got["grpc"];
    for key in [
        "live",
        "ready",
        "model_ready",
        "model_ready_v1",
        "still_live",
    ] {
        assert_eq!(g[key], true, "grpc {key}");
    }
    assert_eq!(g["model_ready_v2"], false);
    assert_eq!(g["server_metadata"]["name"], "modelsmith");
    assert_eq!(
        g["model_metadata"]["inputs"][0]["shape"],
        json!(["-1", "28", "28", "1"])
    );
    for key in ["raw", "versioned", "uint8"] {
        let rows: Vec<Vec<f32>> = serde_json::from_value(g[key].clone()).unwrap();
        assert_eq!(rows.len(), want.len(), "grpc {key}");
        for (row, w) in rows.iter().zip(&want) {
            assert_close(row, w);
        }
    }
    let errors = &g["errors"];
    let expect = [
        ("wrong_shape", "INVALID_ARGUMENT", "shape"),
        ("wrong_datatype", "INVALID_ARGUMENT", "INT32"),
        ("wrong_length", "INVALID_ARGUMENT", "bytes of binary data"),
        ("too_large", "RESOURCE_EXHAUSTED", "--max-body-bytes"),
        ("unknown_model", "NOT_FOUND", "no-such-model"),
        ("unknown_version", "NOT_FOUND", "no version '2'"),
    ];
    for (case, code, needle) in expect {
        let e = &errors[case];
        assert_eq!(e["status"], format!("StatusCode.{code}"), "{case}: {e}");
        assert!(
            e["message"].as_str().unwrap().contains(needle),
            "{case}: {e}"
        );
    }
    server.shutdown().await;
}

/// A unary gRPC call to `method` of the KServe v2 service with the `authorization` token.
async fn grpc_call<Req, Res>(
    addr: SocketAddr,
    method: &str,
    request: Req,
    token: Option<&str>,
) -> Result<Res, tonic::Status>
where
    Req: prost::Message + Send + Sync + 'static,
    Res: prost::Message + Default + Send + Sync + 'static,
{
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = tonic::client::Grpc::new(channel);
    client.ready().await.unwrap();
    let mut request = tonic::Request::new(request);
    if let Some(token) = token {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    let path = format!("/inference.GRPCInferenceService/{method}")
        .parse()
        .unwrap();
    client
        .unary(request, path, tonic_prost::ProstCodec::default())
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test]
async fn grpc_infers_like_the_predictor_and_maps_errors_to_codes() {
    use modelsmith_server::grpc::proto::*;
    use tonic::Code;
    let server = Running::digits(ServeOptions {
        token: Some("s3cret".into()),
        max_body_bytes: 1 << 20,
        ..ServeOptions::default()
    })
    .await;
    let g = server.grpc_addr;
    let token = Some("s3cret");
    let inputs: Vec<Vec<f32>> = (0..3).map(digit).collect();
    let want = direct_probabilities(&fixture().model, &inputs);
    let request =
        |values: &[u8], datatype: &str, shape: Vec<i64>, version: &str| ModelInferRequest {
            model_name: "digits".into(),
            model_version: version.into(),
            inputs: vec![InferInputTensor {
                name: "input".into(),
                datatype: datatype.into(),
                shape,
                ..Default::default()
            }],
            raw_input_contents: vec![values.to_vec().into()],
            ..Default::default()
        };
    let fp32: Vec<u8> = inputs
        .concat()
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let shape = vec![3, 28, 28, 1];

    // Liveness and readiness need no token; the rest do.
    let live: ServerLiveResponse = grpc_call(g, "ServerLive", ServerLiveRequest {}, None)
        .await
        .unwrap();
    assert!(live.live);
    let ready: ServerReadyResponse = grpc_call(g, "ServerReady", ServerReadyRequest {}, None)
        .await
        .unwrap();
    assert!(ready.ready);
    let refused = grpc_call::<_, ModelInferResponse>(
        g,
        "ModelInfer",
        request(&fp32, "FP32", shape.clone(), ""),
        None,
    )
    .await
    .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    let wrong = grpc_call::<_, ModelInferResponse>(
        g,
        "ModelInfer",
        request(&fp32, "FP32", shape.clone(), ""),
        Some("guess"),
    )
    .await
    .unwrap_err();
    assert_eq!(wrong.code(), Code::Unauthenticated);
    assert!(!wrong.message().contains("s3cret"));

    // Raw contents, then typed contents: the Predictor's answers.
    let answer: ModelInferResponse = grpc_call(
        g,
        "ModelInfer",
        request(&fp32, "FP32", shape.clone(), "1"),
        token,
    )
    .await
    .unwrap();
    assert_eq!(answer.outputs[0].name, "probabilities");
    assert_eq!(answer.outputs[0].shape, vec![3, 10]);
    let values: Vec<f32> = answer.raw_output_contents[0]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    for (row, w) in values.chunks(10).zip(&want) {
        assert_close(row, w);
    }
    let mut typed = request(&[], "FP32", shape.clone(), "");
    typed.raw_input_contents.clear();
    typed.inputs[0].contents = Some(InferTensorContents {
        fp32_contents: inputs.concat(),
        ..Default::default()
    });
    let answer: ModelInferResponse = grpc_call(g, "ModelInfer", typed, token).await.unwrap();
    assert_eq!(answer.raw_output_contents[0].len(), 3 * 10 * 4);

    // Bad requests: the right code and a line naming what is wrong; the server goes on.
    let cases: Vec<(ModelInferRequest, Code, &str)> = vec![
        (
            request(&fp32, "FP32", vec![3, 784], ""),
            Code::InvalidArgument,
            "shape",
        ),
        (
            request(&fp32, "INT32", shape.clone(), ""),
            Code::InvalidArgument,
            "INT32",
        ),
        (
            request(&fp32[4..], "FP32", shape.clone(), ""),
            Code::InvalidArgument,
            "bytes of binary data",
        ),
        (
            request(&vec![0; 2 << 20], "FP32", vec![668, 28, 28, 1], ""),
            Code::ResourceExhausted,
            "--max-body-bytes",
        ),
        (
            request(&fp32, "FP32", shape.clone(), "7"),
            Code::NotFound,
            "no version '7'",
        ),
        (
            ModelInferRequest {
                model_name: "nope".into(),
                ..request(&fp32, "FP32", shape.clone(), "")
            },
            Code::NotFound,
            "nope",
        ),
    ];
    for (bad, code, needle) in cases {
        let e = grpc_call::<_, ModelInferResponse>(g, "ModelInfer", bad, token)
            .await
            .unwrap_err();
        assert_eq!(e.code(), code, "{e:?}");
        assert!(e.message().contains(needle), "{e:?}");
    }
    let e = grpc_call::<_, ServerLiveResponse>(g, "ModelStreamInfer", ServerLiveRequest {}, token)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unimplemented);
    let meta: ModelMetadataResponse = grpc_call(
        g,
        "ModelMetadata",
        ModelMetadataRequest {
            name: "digits".into(),
            version: String::new(),
        },
        token,
    )
    .await
    .unwrap();
    assert_eq!(meta.inputs[0].shape, vec![-1, 28, 28, 1]);
    // gRPC calls are counted in /metrics beside the HTTP endpoints.
    let metrics = call(
        server.addr,
        Method::GET,
        "/metrics",
        &[("authorization", "Bearer s3cret")],
        Vec::new(),
    )
    .await;
    let text = String::from_utf8(metrics.body).unwrap();
    assert!(
        text.contains("endpoint=\"grpc:ModelInfer\",code=\"0\""),
        "{text}"
    );
    assert!(
        text.contains("endpoint=\"grpc:ModelInfer\",code=\"3\""),
        "{text}"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grpc_listener_holds_new_connections_at_its_cap_until_one_closes() {
    use modelsmith_server::grpc::proto::*;
    // A budget of two connections: one for HTTP, one for gRPC.
    let server = Running::digits(ServeOptions {
        limits: modelsmith_server::ConnectionLimits {
            max_connections: 2,
            ..Default::default()
        },
        ..ServeOptions::default()
    })
    .await;
    let connect = || async {
        let channel =
            tonic::transport::Endpoint::from_shared(format!("http://{}", server.grpc_addr))
                .unwrap()
                .connect_lazy();
        tonic::client::Grpc::new(channel)
    };
    let live = |mut client: tonic::client::Grpc<tonic::transport::Channel>| async move {
        client.ready().await.unwrap();
        let path = "/inference.GRPCInferenceService/ServerLive"
            .parse()
            .unwrap();
        client
            .unary::<_, ServerLiveResponse, _>(
                tonic::Request::new(ServerLiveRequest {}),
                path,
                tonic_prost::ProstCodec::default(),
            )
            .await
            .unwrap()
            .into_inner()
            .live
    };
    let first = connect().await;
    assert!(live(first.clone()).await);
    // The second connection waits: its call does not finish while the first is open.
    let second = tokio::spawn(live(connect().await));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !second.is_finished(),
        "a connection past the cap was served"
    );
    // HTTP has its own share and still answers.
    assert_eq!(
        get(server.addr, "/v2/health/live").await.status,
        StatusCode::OK
    );
    drop(first);
    let answered = tokio::time::timeout(Duration::from_secs(10), second)
        .await
        .expect("the waiting connection is served once the first closes")
        .unwrap();
    assert!(answered);
    server.shutdown().await;
}

#[tokio::test]
async fn explain_answers_attributions_like_the_library_and_refuses_bad_requests() {
    use modelsmith::explain::{Baseline, ExplainOptions, Explainer, Method};
    let server = Running::digits(ServeOptions::default()).await;
    let inputs: Vec<Vec<f32>> = (0..3).map(digit).collect();
    let mut body = infer_body(&inputs);
    body["parameters"] = json!({"method": "ig", "steps": 32});
    let answer = post_json(server.addr, "/v2/models/digits/explain", &body).await;
    assert_eq!(
        answer.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let got = answer.json();
    assert_eq!(got["id"], "req-1");
    assert_eq!(got["outputs"][0]["shape"], json!([3, 28, 28, 1]));
    // The library on the same inputs: the predicted class, the same numbers.
    let mut explainer = Explainer::load(&fixture().model).unwrap();
    let x = inputs.concat();
    let targets = explainer.default_targets(&x);
    let mut options = ExplainOptions::new(Method::IntegratedGradients, Baseline::Black);
    options.steps = 32;
    let want = explainer.explain(&x, &targets, &options).unwrap();
    let data: Vec<f32> = got["outputs"][0]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    let want_data: Vec<f32> = want.iter().flat_map(|a| a.values.clone()).collect();
    assert_close(&data, &want_data);
    for (e, w) in got["explanations"].as_array().unwrap().iter().zip(&want) {
        assert_eq!(e["target"], w.target);
        let c = &e["completeness"];
        assert!(c["relative_error"].as_f64().unwrap() <= 0.01, "{c}");
    }
    // Versioned path, another method, a named target.
    body["parameters"] = json!({"method": "gradcam", "target": "3"});
    let answer = post_json(server.addr, "/v2/models/digits/versions/1/explain", &body).await;
    assert_eq!(answer.status, StatusCode::OK);
    let got = answer.json();
    assert_eq!(got["method"], "gradcam");
    assert!(got["explanations"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["output"] == "3"));

    // Bad requests: one JSON error line each.
    let cases = [
        (json!({"method": "lime"}), "unknown explanation method"),
        (json!({"target": "dog"}), "no class of that name"),
        (json!({"target": [1]}), "give a class"),
        (json!({"steps": 0}), "give 1 to 1024"),
        (json!({"steps": 100000}), "give 1 to 1024"),
        (json!({"baseline": "mean"}), "is for tables"),
    ];
    for (parameters, needle) in cases {
        body["parameters"] = parameters;
        post_json(server.addr, "/v2/models/digits/explain", &body)
            .await
            .assert_error(StatusCode::BAD_REQUEST, needle);
    }
    let many: Vec<Vec<f32>> = (0..17).map(|i| digit(i % 8)).collect();
    post_json(server.addr, "/v2/models/digits/explain", &infer_body(&many))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "at most 16");
    post_json(server.addr, "/v2/models/nope/explain", &infer_body(&inputs))
        .await
        .assert_error(StatusCode::NOT_FOUND, "nope");

    // One explanation at a time: while a long one runs, another gets 429 with Retry-After,
    // and inference is still answered.
    let mut long = infer_body(&(0..16).map(digit).collect::<Vec<_>>());
    long["parameters"] = json!({"steps": 256});
    let addr = server.addr;
    let first =
        tokio::spawn(async move { post_json(addr, "/v2/models/digits/explain", &long).await });
    // Let it take the slot (a request is parsed in well under this) before probing.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut refused = None;
    while !first.is_finished() {
        let answer = post_json(addr, "/v2/models/digits/explain", &infer_body(&inputs[..1])).await;
        if answer.status == StatusCode::TOO_MANY_REQUESTS {
            refused = Some(answer);
            let infer = post_json(addr, "/v2/models/digits/infer", &infer_body(&inputs)).await;
            assert_eq!(infer.status, StatusCode::OK);
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let refused = refused.expect("a second explanation during a long one is refused");
    refused.assert_error(StatusCode::TOO_MANY_REQUESTS, "another explanation");
    assert_eq!(refused.headers["retry-after"], "1");
    assert_eq!(first.await.unwrap().status, StatusCode::OK);
    server.shutdown().await;
}
