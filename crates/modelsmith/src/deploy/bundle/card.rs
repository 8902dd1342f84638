//! The model card: the bundle's README.md, written from `model.json`, the network and the
//! measured latency. It says what the model is, how well and how fast it works, what it is
//! for, and how to run, call and check it.

use std::fmt::Write as _;

use modelsmith_engine::Network;

use super::checksums::SUMS_FILE;
use super::latency::LatencyReport;
use super::settings::BundleSettings;
use crate::data::Preprocessing;
use crate::energy::Footprint;
use crate::explain::LooksAt;
use crate::model::{LayerKind, ModelMeta};
use crate::task::{significant, Task};

/// Everything the card reads.
pub struct CardInput<'a> {
    pub meta: &'a ModelMeta,
    pub net: &'a Network,
    pub settings: &'a BundleSettings,
    pub latency: Option<&'a LatencyReport>,
    /// Why `model.onnx` is absent, if it is.
    pub onnx_skipped: Option<&'a str>,
    /// `(path, bytes)` of every file in the bundle besides README.md and SHA256SUMS.
    pub files: &'a [(String, u64)],
    /// What the model looks at, or why that was not measured.
    pub looks_at: &'a Result<LooksAt, String>,
}

/// The README.md text.
pub fn render(input: &CardInput) -> String {
    let mut out = String::new();
    let s = input.settings;
    let meta = input.meta;
    emissions_metadata(&mut out, meta);
    let _ = writeln!(out, "# Model card: {}\n", s.name);
    let _ = writeln!(
        out,
        "A model for {} trained by [modelsmith](https://crates.io/crates/modelsmith) {}, \
         packaged for deployment by `modelsmith deploy`. Everything needed to run it is in this \
         folder; `{SUMS_FILE}` lists the SHA-256 of every file.\n",
        meta.data.task.describe(),
        env!("CARGO_PKG_VERSION")
    );
    summary(&mut out, input);
    data(&mut out, meta);
    architecture(&mut out, input);
    metrics(&mut out, meta);
    looks_at(&mut out, input.looks_at);
    cost(&mut out, meta);
    training(&mut out, meta);
    latency(&mut out, input.latency);
    intended_use(&mut out, meta);
    run_it(&mut out, input);
    call_it(&mut out, input);
    files(&mut out, input);
    out
}

fn summary(out: &mut String, input: &CardInput) {
    let meta = input.meta;
    let figure = |key: &str| meta.metrics.get(key).and_then(|v| v.as_f64());
    let not_recorded = || "not recorded".to_string();
    let headline = if meta.data.task.is_regression() {
        let units = meta.data.task.targets().len() == 1;
        (
            "Test RMSE / MAE / R²",
            match (figure("test_rmse"), figure("test_mae"), figure("test_r2")) {
                (Some(rmse), Some(mae), Some(r2)) => format!(
                    "{} / {} / {r2:.4}{}",
                    significant(rmse as f32),
                    significant(mae as f32),
                    if units {
                        " (in the target's units)"
                    } else {
                        " (averaged over targets)"
                    }
                ),
                _ => not_recorded(),
            },
        )
    } else {
        (
            "Test accuracy",
            figure("test_accuracy")
                .map(|a| format!("{:.2}%", a * 100.0))
                .unwrap_or_else(not_recorded),
        )
    };
    let output = match &meta.data.task {
        Task::Classification { .. } => format!(
            "`probabilities`, FP32 `[batch, {}]` (softmax)",
            meta.outputs
        ),
        Task::Regression { targets } => format!(
            "`values`, FP32 `[batch, {}]` ({} in their own units)",
            meta.outputs,
            targets
                .iter()
                .map(|t| format!("`{}`", t.name))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let _ = writeln!(out, "| | |\n|---|---|");
    let rows = [
        (
            "Model name (server, Kubernetes)",
            format!("`{}`", input.settings.name),
        ),
        ("Image", format!("`{}`", input.settings.image)),
        (headline.0, headline.1),
        ("Parameters", thousands(meta.params as u64)),
        (
            "FLOPs per example (forward)",
            format!(
                "{} ({} multiply-accumulates × 2)",
                thousands(meta.macs_per_example * 2),
                thousands(meta.macs_per_example)
            ),
        ),
        ("Input", input_description(meta)),
        ("Output", output),
    ];
    for (key, value) in rows {
        let _ = writeln!(out, "| {key} | {value} |");
    }
    out.push('\n');
}

fn input_description(meta: &ModelMeta) -> String {
    let mut shape = vec!["batch".to_string()];
    shape.extend(meta.input_shape.iter().map(usize::to_string));
    let layout = if meta.input_shape.len() == 3 {
        " (NHWC)"
    } else {
        ""
    };
    format!("`input`, FP32 `[{}]`{layout}", shape.join(", "))
}

fn data(out: &mut String, meta: &ModelMeta) {
    let _ = writeln!(out, "## Data\n");
    match &meta.data.task {
        Task::Classification { classes } => {
            let _ = writeln!(
                out,
                "Trained on `{}`. Classes (index: name): {}.\n",
                meta.data.spec,
                classes
                    .iter()
                    .enumerate()
                    .map(|(i, c)| format!("{i}: `{c}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        Task::Regression { targets } => {
            let _ = writeln!(
                out,
                "Trained on `{}`. Regression targets (the network learns each standardized; answers are in the target's units): {}.\n",
                meta.data.spec,
                targets
                    .iter()
                    .map(|t| format!(
                        "`{}` (train mean {}, std {})",
                        t.name,
                        significant(t.mean as f32),
                        significant(t.std as f32)
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    let _ = writeln!(out, "**Preprocessing** (the server applies it to images and CSV rows; clients sending tensors to the v2 endpoint must apply it themselves):\n");
    match &meta.data.preprocessing {
        Preprocessing::Image {
            height,
            width,
            channels,
            scale,
        } => {
            let colour = if *channels == 1 {
                "grayscale (sRGB luma)"
            } else {
                "RGB"
            };
            let _ = writeln!(
                out,
                "- images are converted to {colour}, resized to {height}×{width} (bilinear) if needed, laid out HWC;\n- each 0–255 pixel value is multiplied by {scale} (so values lie in [0, {:.3}]).\n",
                255.0 * scale
            );
        }
        Preprocessing::Table { target, columns } => {
            let _ = writeln!(
                out,
                "- table rows: {} feature columns (target column `{target}` ignored), standardized or one-hot encoded as recorded in `model/model.json`; missing values are imputed.\n",
                columns.len()
            );
        }
    }
}

fn layer_details(kind: &LayerKind) -> String {
    match kind {
        LayerKind::Conv2d {
            filters,
            kernel,
            stride,
            padding,
            activation,
            ..
        } => format!(
            "{filters} filters {kernel}×{kernel}, stride {stride}, {padding:?} padding, {activation:?}"
        ),
        LayerKind::Dense {
            units, activation, ..
        } => format!("{units} units, {activation:?}"),
        LayerKind::MaxPool2d { pool, stride, .. } | LayerKind::AvgPool2d { pool, stride, .. } => {
            format!("{pool}×{pool}, stride {}", stride.unwrap_or(*pool))
        }
        LayerKind::BatchNorm { momentum, eps } => format!("momentum {momentum}, eps {eps}"),
        LayerKind::Dropout { rate } => format!("rate {rate} (identity at inference)"),
        LayerKind::Activation { activation } => format!("{activation:?}"),
        LayerKind::Add { with } => format!("+ `{with}`"),
        LayerKind::GlobalAvgPool | LayerKind::Flatten => String::new(),
    }
}

fn architecture(out: &mut String, input: &CardInput) {
    let _ = writeln!(out, "## Architecture\n");
    if let Some(name) = &input.meta.spec.name {
        let _ = writeln!(out, "Spec `{name}`.\n");
    }
    let _ = writeln!(
        out,
        "| # | layer | type | details | output shape | parameters |\n|---|---|---|---|---|---|"
    );
    let shapes = input.net.shapes();
    for (i, (spec, node)) in input
        .meta
        .spec
        .layers
        .iter()
        .zip(input.net.nodes())
        .enumerate()
    {
        let params: usize = node.layer.params().iter().map(|p| p.value.len()).sum();
        let _ = writeln!(
            out,
            "| {} | `{}` | {} | {} | {:?} | {} |",
            i + 1,
            node.name,
            spec.kind.type_name(),
            layer_details(&spec.kind),
            shapes.get(i + 1).cloned().unwrap_or_default(),
            thousands(params as u64)
        );
    }
    let _ = writeln!(
        out,
        "\nTotal: {} parameters, {} FLOPs per example.\n",
        thousands(input.meta.params as u64),
        thousands(input.meta.macs_per_example * 2)
    );
}

/// A JSON scalar as a table cell; nested values as compact JSON.
fn cell(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => format!("`{s}`"),
        serde_json::Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => format!("{}", (f * 1e6).round() / 1e6),
            _ => n.to_string(),
        },
        other => format!("`{other}`"),
    }
}

fn key_value_table(out: &mut String, value: &serde_json::Value, skip: &[&str]) {
    let Some(map) = value.as_object().filter(|m| !m.is_empty()) else {
        let _ = writeln!(out, "Not recorded in `model.json`.\n");
        return;
    };
    let _ = writeln!(out, "| | |\n|---|---|");
    for (key, value) in map {
        if !skip.contains(&key.as_str()) && !value.is_null() {
            let _ = writeln!(out, "| {key} | {} |", cell(value));
        }
    }
    out.push('\n');
}

fn metrics(out: &mut String, meta: &ModelMeta) {
    let _ = writeln!(out, "## Metrics\n");
    let _ = writeln!(
        out,
        "From training: the test split was evaluated once, after training; early stopping and any search used the validation split only.\n"
    );
    // `out` is the training machine's path, meaningless here; the footprint has its section.
    key_value_table(out, &meta.metrics, &["out", "footprint"]);
}

/// The training's footprint from `model.json`, if it recorded one.
fn footprint(meta: &ModelMeta) -> Option<Footprint> {
    serde_json::from_value(meta.metrics.get("footprint")?.clone()).ok()
}

/// Hugging Face's `co2_eq_emissions` model-card metadata (YAML front matter; emissions in
/// grams), when the training recorded its footprint.
fn emissions_metadata(out: &mut String, meta: &ModelMeta) {
    let Some(f) = footprint(meta) else {
        return;
    };
    let quote = |s: &str| serde_json::to_string(s).expect("strings serialize");
    let _ = writeln!(
        out,
        "---\nco2_eq_emissions:\n  emissions: {:.6}\n  source: {}\n  training_type: {}\n  \
         hardware_used: {}\n---\n",
        f.co2e_grams,
        quote(&format!(
            "modelsmith {} ({}); {} g CO2e/kWh: {}",
            f.energy.method.name(),
            f.energy.source,
            f.carbon_intensity.g_per_kwh,
            f.carbon_intensity.source
        )),
        quote("pre-training"),
        quote(&format!(
            "CPU, {:.0} CPU-seconds over {:.0} s",
            f.energy.cpu_seconds, f.energy.seconds
        )),
    );
}

fn cost(out: &mut String, meta: &ModelMeta) {
    let _ = writeln!(out, "## Training cost\n");
    let Some(f) = footprint(meta) else {
        let _ = writeln!(
            out,
            "Not recorded (trained before modelsmith metered energy).\n"
        );
        return;
    };
    let _ = writeln!(
        out,
        "Training used {} ({} CPU-seconds over {} s): {} CO2e at {} g/kWh ({}). How: {}; a \
         search's other trials are counted in its study, not here.\n",
        crate::energy::format_joules(f.energy.joules),
        significant(f.energy.cpu_seconds as f32),
        significant(f.energy.seconds as f32),
        crate::energy::format_grams(f.co2e_grams),
        f.carbon_intensity.g_per_kwh,
        f.carbon_intensity.source,
        f.energy.source
    );
}

fn looks_at(out: &mut String, looks_at: &Result<LooksAt, String>) {
    let _ = writeln!(out, "## What the model looks at\n");
    match looks_at {
        Ok(found) => out.push_str(&crate::explain::looks_at_markdown(found)),
        Err(why) => {
            let _ = writeln!(
                out,
                "Not measured when this bundle was written: {why}. Run `modelsmith explain \
                 --model model --data SPEC` on held-out data.\n"
            );
        }
    }
}

fn training(out: &mut String, meta: &ModelMeta) {
    let _ = writeln!(out, "## Training configuration\n");
    key_value_table(out, &meta.training, &[]);
}

fn latency(out: &mut String, report: Option<&LatencyReport>) {
    let _ = writeln!(out, "## Measured latency\n");
    let Some(report) = report else {
        let _ = writeln!(
            out,
            "Not measured (`--latency-runs 0`). Run `modelsmith deploy` without it to time the model.\n"
        );
        return;
    };
    let _ = writeln!(
        out,
        "The model's forward pass (`Predictor`, preprocessed inputs, no HTTP) on the machine that ran `modelsmith deploy`: {}, {} logical CPUs, {} engine threads. Each batch size ran {} times after a warm-up; HTTP and JSON add to these figures.\n",
        report.cpu,
        report.logical_cpus,
        report.threads,
        report.batches.first().map_or(0, |b| b.runs)
    );
    let _ = writeln!(
        out,
        "| batch | p50 ms | p99 ms | examples/s (at p50) |\n|---|---|---|---|"
    );
    for b in &report.batches {
        let _ = writeln!(
            out,
            "| {} | {:.3} | {:.3} | {} |",
            b.batch,
            b.p50_ms,
            b.p99_ms,
            thousands(b.images_per_s.round() as u64)
        );
    }
    out.push('\n');
}

fn intended_use(out: &mut String, meta: &ModelMeta) {
    let _ = writeln!(out, "## Intended use and limitations\n");
    if meta.data.task.is_regression() {
        let _ = writeln!(
            out,
            "- Intended for estimating {} for rows like those of `{}`.\n\
             - It always answers with a number: rows unlike the training data (values outside the \
               training range, unseen categories) get an answer as confident as any other, and \
               the error can be far larger than the test RMSE.\n\
             - The test figures hold for data distributed like the test split; measure them on your \
               own data before relying on them (`modelsmith evaluate --model model --data SPEC`).\n\
             - Not evaluated for fairness, robustness to adversarial inputs or safety-critical use.\n",
            meta.data.task.describe().trim_start_matches("regression of "),
            meta.data.spec
        );
        return;
    }
    let _ = writeln!(
        out,
        "- Intended for classifying inputs like those of `{}` into the {} classes above.\n\
         - It always answers with one of these classes: it cannot say \"none of these\", so inputs \
           unlike the training data (other sizes, colours, subjects) get confident but meaningless \
           answers. Check the probability before acting on a prediction.\n\
         - The test accuracy holds for data distributed like the test split; measure it on your own \
           data before relying on it (`modelsmith evaluate --model model --data SPEC`).\n\
         - Not evaluated for fairness, robustness to adversarial inputs or safety-critical use.\n",
        meta.data.spec, meta.outputs
    );
}

fn run_it(out: &mut String, input: &CardInput) {
    let s = input.settings;
    let _ = writeln!(out, "## Run it\n");
    let _ = writeln!(out, "Check the files first:\n\n```sh\nsha256sum -c {SUMS_FILE}        # or: modelsmith deploy --verify .\n```\n");
    let build = if s.with_binary {
        format!("docker build -t {} .", s.image)
    } else {
        format!(
            "# this bundle has no bin/modelsmith: give the folder holding a Linux x86-64 modelsmith\ndocker build --build-context {}=/path/to/dir -t {} .",
            super::dockerfile::BINARY_CONTEXT,
            s.image
        )
    };
    let _ = writeln!(
        out,
        "Locally, without a container (`--name`: the folder here is `model/`, the image names it `{name}`):\n\n```sh\n{bin} serve --model model --name {name} --addr 127.0.0.1:{port} --grpc-addr 127.0.0.1:{grpc}\n```\n\n\
         With Docker (the build fails if any file does not match `{SUMS_FILE}`):\n\n```sh\n{build}\n\
         docker run --rm -p {port}:{port} -p {grpc}:{grpc} -e MODELSMITH_TOKEN=secret {image}\n```\n\n\
         On Kubernetes (`k8s/`: Deployment with readiness and liveness probes on `/v2/health/ready` and \
         `/v2/health/live`, a ClusterIP Service on port 80 (HTTP) and {grpc_service} (gRPC), a HorizontalPodAutoscaler at {cpu}% CPU, \
         {min}–{max} replicas):\n\n```sh\n\
         kubectl create secret generic {secret} --from-literal=token=CHANGE-ME   # optional: without it the server needs no token\n\
         kubectl apply -k k8s/\n\
         kubectl port-forward service/{name} {port}:80 {grpc}:{grpc_service}\n```\n\n\
         With KServe (`kserve/inferenceservice.yaml`: the same image as a custom predictor speaking the v2 protocol; \
         KServe's serverless mode routes one port per predictor, here the HTTP one):\n\n```sh\n\
         kubectl apply -f kserve/inferenceservice.yaml\n```\n",
        bin = if s.with_binary { "bin/modelsmith" } else { "modelsmith" },
        port = s.port,
        grpc = s.grpc_port(),
        grpc_service = super::k8s::GRPC_SERVICE_PORT,
        image = s.image,
        cpu = s.target_cpu_percent,
        min = s.replicas,
        max = s.max_replicas,
        secret = s.token_secret_name(),
        name = s.name,
    );
    match input.onnx_skipped {
        None => {
            let _ = writeln!(
                out,
                "`model.onnx` (opset 13, input `input` = the preprocessed tensor above, output \
                 `probabilities`, dynamic batch) serves ONNX runtimes directly, e.g. KServe's ONNX \
                 model format (Triton or ONNX Runtime) with `modelFormat: {{name: onnx}}` and a \
                 `storageUri` holding `model.onnx`.\n"
            );
        }
        Some(why) => {
            let _ = writeln!(out, "No `model.onnx` in this bundle: {why}\n");
        }
    }
}

fn call_it(out: &mut String, input: &CardInput) {
    let s = input.settings;
    let shape: Vec<String> = std::iter::once("1".to_string())
        .chain(input.meta.input_shape.iter().map(usize::to_string))
        .collect();
    let values: usize = input.meta.input_shape.iter().product();
    let _ = writeln!(out, "## Call it\n");
    let _ = writeln!(
        out,
        "Add `-H \"Authorization: Bearer $MODELSMITH_TOKEN\"` when the server has a token.\n\n```sh\n\
         # an image file, preprocessed by the server; top 3 classes\n\
         curl -s --data-binary @digit.png -H 'Content-Type: image/png' 'http://localhost:{port}/predict?top_k=3'\n\n\
         # KServe v2 (Open Inference Protocol): the preprocessed tensor, {values} values per example\n\
         curl -s http://localhost:{port}/v2/models/{name}/infer -H 'Content-Type: application/json' \\\n  \
         -d '{{\"inputs\": [{{\"name\": \"input\", \"shape\": [{shape}], \"datatype\": \"FP32\", \"data\": [/* {values} numbers */]}}]}}'\n\n\
         curl -s http://localhost:{port}/v2/health/ready       # readiness\n\
         curl -s http://localhost:{port}/v2/models/{name}      # model metadata\n\
         curl -s http://localhost:{port}/metrics               # Prometheus metrics\n```\n",
        port = s.port,
        name = s.name,
        shape = shape.join(", "),
    );
    let _ = writeln!(
        out,
        "From Python (standard library only; `client.py` in this folder does the same with argument parsing and errors):\n\n```python\n\
         import json, urllib.request\n\n\
         with open(\"digit.png\", \"rb\") as f:\n    \
         request = urllib.request.Request(\"http://localhost:{port}/predict?top_k=3\", data=f.read(),\n        \
         headers={{\"Content-Type\": \"image/png\"}})\n\
         print(json.load(urllib.request.urlopen(request)))\n```\n\n\
         ```sh\npython3 client.py digit.png                  # POST /predict\n\
         python3 client.py --protocol v2 digit.png    # v2 infer with binary tensors, preprocessing done by the client\n\
         python3 client.py --protocol grpc digit.png  # v2 gRPC on port {grpc} (pip install 'tritonclient[grpc]' numpy)\n```\n\n\
         Existing KServe v2 / Triton clients work unchanged: `tritonclient.http` (binary tensors by default; UINT8 \
         raw pixels are accepted and scaled by the server) on port {port}, `tritonclient.grpc` on port {grpc}.\n",
        port = s.port,
        grpc = s.grpc_port()
    );
}

fn files(out: &mut String, input: &CardInput) {
    let _ = writeln!(out, "## Files\n\n| file | bytes |\n|---|---|");
    for (path, bytes) in input.files {
        let _ = writeln!(out, "| `{path}` | {} |", thousands(*bytes));
    }
    let _ = writeln!(
        out,
        "| `README.md` | this card |\n| `{SUMS_FILE}` | SHA-256 of every other file |\n"
    );
}

/// `1234567` as `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    digits
        .as_bytes()
        .rchunks(3)
        .rev()
        .map(|group| std::str::from_utf8(group).expect("ASCII digits"))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    #[test]
    fn thousands_separators() {
        assert_eq!(super::thousands(0), "0");
        assert_eq!(super::thousands(999), "999");
        assert_eq!(super::thousands(1000), "1,000");
        assert_eq!(super::thousands(1234567), "1,234,567");
    }
}
