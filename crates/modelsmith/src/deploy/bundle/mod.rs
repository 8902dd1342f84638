//! The deployment bundle: `modelsmith deploy --model DIR --out BUNDLE` writes a folder that
//! runs the model anywhere without anything else:
//!
//! ```text
//! model/                    model.json, weights.safetensors (+ metrics.jsonl): what `serve` loads
//! model.onnx                the same model for ONNX runtimes (Triton, ONNX Runtime, KServe)
//! bin/modelsmith            the server binary (unless --no-binary)
//! Dockerfile, .dockerignore verify stage (sha256sum -c) + slim non-root runtime with HEALTHCHECK
//! k8s/                      deployment.yaml, service.yaml, hpa.yaml, kustomization.yaml
//! kserve/                   inferenceservice.yaml (custom predictor, v2 protocol)
//! client.py                 stdlib-only example client (/predict and v2 infer)
//! README.md                 the model card (data, metrics, architecture, FLOPs, latency, usage)
//! SHA256SUMS                SHA-256 of every other file, `sha256sum -c` format
//! ```
//!
//! The folder is assembled in a hidden sibling and renamed into place at the end, so a failure
//! never leaves something at `--out` that looks like a finished bundle. [`verify`] checks a
//! bundle against its SHA256SUMS.

pub mod card;
pub mod checksums;
pub mod dockerfile;
pub mod k8s;
pub mod latency;
pub mod settings;

use std::path::{Path, PathBuf};

use serde::Serialize;

pub use checksums::{verify, Problem, VerifyReport, SUMS_FILE};
pub use latency::LatencyReport;
pub use settings::{BundleOptions, BundleSettings, Resources};

use crate::model::load_model;
use crate::predict::Predictor;
use crate::{Error, Result};

/// The example client, with `__CONFIG__` replaced by the model's name, shape and preprocessing.
const CLIENT_TEMPLATE: &str = include_str!("client.py");

/// Files of the model folder the bundle carries (checkpoints stay behind).
const MODEL_FILES: [&str; 3] = ["model.json", "weights.safetensors", "metrics.jsonl"];

/// One file of a written bundle.
#[derive(Clone, Debug, Serialize)]
pub struct BundleFile {
    pub path: String,
    pub bytes: u64,
}

/// What [`write_bundle`] wrote.
#[derive(Clone, Debug, Serialize)]
pub struct BundleSummary {
    pub bundle: String,
    pub name: String,
    pub image: String,
    /// Every file, SHA256SUMS included, sorted by path.
    pub files: Vec<BundleFile>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency: Option<LatencyReport>,
    /// Why there is no `model.onnx`, if there isn't.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub onnx_skipped: Option<String>,
}

/// Writes the bundle for the model folder `model_dir` to `out`.
pub fn write_bundle(
    model_dir: &Path,
    out: &Path,
    options: &BundleOptions,
) -> Result<BundleSummary> {
    if !model_dir.is_dir() {
        return Err(Error::Config(format!(
            "--model {}: not a folder (give a model folder written by `modelsmith train --out DIR`)",
            model_dir.display()
        )));
    }
    // Loading checks model.json and the weights before anything is written.
    let (meta, net) = load_model(model_dir)?;
    if let Some(binary) = &options.binary {
        if !binary.is_file() {
            return Err(Error::Config(format!(
                "{}: the modelsmith binary to bundle is not a file",
                binary.display()
            )));
        }
    }
    let weights_sha = checksums::sha256_file(&model_dir.join("weights.safetensors"))?;
    let settings = BundleSettings::resolve(options, model_dir, &weights_sha)?;
    check_out(model_dir, out, options.force)?;

    let latency = match options.latency_runs {
        0 => None,
        runs => Some(latency::measure(&mut Predictor::load(model_dir)?, runs)?),
    };

    let staging = sibling(out, "partial")?;
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(|e| Error::io(&staging, e))?;
    }
    create_dir(&staging)?;
    let contents = Contents {
        model_dir,
        meta: &meta,
        net: &net,
        settings: &settings,
        latency: latency.as_ref(),
        binary: options.binary.as_deref(),
    };
    let written = contents.write(&staging).and_then(|onnx_skipped| {
        let files = checksums::write_sums(&staging)?;
        Ok((onnx_skipped, files))
    });
    let (onnx_skipped, _) = match written {
        Ok(w) => w,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    move_into_place(&staging, out)?;
    let mut files = Vec::new();
    for path in checksums::bundle_files(out)?
        .into_iter()
        .chain([SUMS_FILE.to_string()])
    {
        files.push(BundleFile {
            bytes: file_len(&out.join(&path))?,
            path,
        });
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(BundleSummary {
        bundle: out.display().to_string(),
        name: settings.name,
        image: settings.image,
        files,
        latency,
        onnx_skipped,
    })
}

/// Everything that goes into the folder.
struct Contents<'a> {
    model_dir: &'a Path,
    meta: &'a crate::model::ModelMeta,
    net: &'a modelsmith_engine::Network,
    settings: &'a BundleSettings,
    latency: Option<&'a LatencyReport>,
    binary: Option<&'a Path>,
}

impl Contents<'_> {
    /// Writes every file but SHA256SUMS into `dir`; returns why ONNX was skipped, if it was.
    fn write(&self, dir: &Path) -> Result<Option<String>> {
        let s = self.settings;
        create_dir(&dir.join("model"))?;
        for name in MODEL_FILES {
            let from = self.model_dir.join(name);
            if from.is_file() {
                copy(&from, &dir.join("model").join(name))?;
            }
        }
        let onnx_skipped = match super::onnx::to_onnx(self.meta, self.net) {
            Ok(model) => {
                write(&dir.join("model.onnx"), super::onnx::encode(&model))?;
                None
            }
            // The server does not need it: the bundle is still complete without it.
            Err(e) => Some(e.to_string()),
        };
        if let Some(binary) = self.binary {
            create_dir(&dir.join("bin"))?;
            copy(binary, &dir.join("bin").join("modelsmith"))?;
        }
        let instructions = dockerfile::instructions(s);
        write(&dir.join("Dockerfile"), dockerfile::render(&instructions))?;
        write(&dir.join(".dockerignore"), dockerfile::dockerignore())?;

        let k8s_dir = dir.join("k8s");
        create_dir(&k8s_dir)?;
        write(
            &k8s_dir.join("deployment.yaml"),
            k8s::to_yaml(&k8s::deployment(s)),
        )?;
        write(
            &k8s_dir.join("service.yaml"),
            k8s::to_yaml(&k8s::service(s)),
        )?;
        write(&k8s_dir.join("hpa.yaml"), k8s::to_yaml(&k8s::hpa(s)))?;
        let kustomization = k8s::kustomization(&["deployment.yaml", "service.yaml", "hpa.yaml"]);
        write(
            &k8s_dir.join("kustomization.yaml"),
            k8s::to_yaml(&kustomization),
        )?;
        create_dir(&dir.join("kserve"))?;
        write(
            &dir.join("kserve").join("inferenceservice.yaml"),
            k8s::to_yaml(&k8s::inference_service(s)),
        )?;
        write(&dir.join("client.py"), self.client())?;
        let looks_at = self.explain(dir);

        let mut files = Vec::new();
        for path in checksums::bundle_files(dir)? {
            files.push((path.clone(), file_len(&dir.join(&path))?));
        }
        let card = card::render(&card::CardInput {
            meta: self.meta,
            net: self.net,
            settings: s,
            latency: self.latency,
            onnx_skipped: onnx_skipped.as_deref(),
            files: &files,
            looks_at: &looks_at,
        });
        write(&dir.join("README.md"), card)?;
        Ok(onnx_skipped)
    }

    /// What the model looks at, for the card: an overview of its held-out data (class maps
    /// written to `explain/`), or why there is none (the data is not on this machine, say).
    fn explain(&self, dir: &Path) -> std::result::Result<crate::explain::LooksAt, String> {
        crate::explain::looks_at(self.model_dir, dir).map_err(|e| e.to_string())
    }

    fn client(&self) -> String {
        let config = serde_json::json!({
            "name": self.settings.name,
            "input_shape": self.meta.input_shape,
            "class_names": self.meta.data.class_names(),
            "task": self.meta.data.task,
            "preprocessing": self.meta.data.preprocessing,
        });
        // A JSON string literal is also a valid Python string literal.
        let literal = serde_json::to_string(&config.to_string()).expect("strings serialize");
        CLIENT_TEMPLATE.replace("__CONFIG__", &literal)
    }
}

/// Refuses an output that would clobber something: a file, a non-empty folder without
/// `force`, a folder that is not a bundle even with `force`, the model folder or its parents.
fn check_out(model_dir: &Path, out: &Path, force: bool) -> Result<()> {
    let model_abs = std::fs::canonicalize(model_dir).map_err(|e| Error::io(model_dir, e))?;
    let out_abs = absolute(out)?;
    if out_abs.starts_with(&model_abs) {
        return Err(Error::Config(format!(
            "--out {} is inside the model folder {}: choose a folder outside it",
            out.display(),
            model_dir.display()
        )));
    }
    if model_abs.starts_with(&out_abs) {
        return Err(Error::Config(format!(
            "--out {} holds the model folder {}: writing the bundle there would replace the model",
            out.display(),
            model_dir.display()
        )));
    }
    if out.exists() && !out.is_dir() {
        return Err(Error::Config(format!(
            "--out {} is a file, not a folder",
            out.display()
        )));
    }
    let non_empty = out.is_dir()
        && std::fs::read_dir(out)
            .map_err(|e| Error::io(out, e))?
            .next()
            .is_some();
    if non_empty && !force {
        return Err(Error::Config(format!(
            "--out {} is not empty: choose a new folder, or pass --force to replace the bundle in it",
            out.display()
        )));
    }
    if non_empty && !out.join(SUMS_FILE).is_file() {
        return Err(Error::Config(format!(
            "--out {} is not a bundle (no {SUMS_FILE}): --force only replaces bundles; remove the folder yourself",
            out.display()
        )));
    }
    Ok(())
}

/// `path` made absolute with its existing part canonicalized (symlinks resolved), so
/// containment checks see through `..` and links.
fn absolute(path: &Path) -> Result<PathBuf> {
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| Error::io(path, e))?
            .join(path)
    };
    let mut existing = joined.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(canonical) = std::fs::canonicalize(existing) {
            return Ok(rest.iter().rev().fold(canonical, |p: PathBuf, c| p.join(c)));
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                existing = parent;
            }
            _ => return Ok(joined),
        }
    }
}

/// A hidden folder beside `out` (same file system, so renames are atomic).
fn sibling(out: &Path, what: &str) -> Result<PathBuf> {
    let name = out
        .file_name()
        .ok_or_else(|| Error::Config(format!("--out {}: needs a folder name", out.display())))?;
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    create_dir(parent)?;
    Ok(parent.join(format!(
        ".{}.{what}-{}",
        name.to_string_lossy(),
        std::process::id()
    )))
}

/// Renames the finished `staging` folder to `out`, replacing an existing (checked) one.
fn move_into_place(staging: &Path, out: &Path) -> Result<()> {
    if !out.exists() {
        return std::fs::rename(staging, out).map_err(|e| Error::io(out, e));
    }
    let old = sibling(out, "old")?;
    std::fs::rename(out, &old).map_err(|e| Error::io(out, e))?;
    if let Err(e) = std::fs::rename(staging, out) {
        // Put the previous bundle back rather than leave nothing.
        let _ = std::fs::rename(&old, out);
        return Err(Error::io(out, e));
    }
    std::fs::remove_dir_all(&old).map_err(|e| Error::io(&old, e))
}

fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))
}

fn write(path: &Path, contents: impl AsRef<[u8]>) -> Result<()> {
    std::fs::write(path, contents).map_err(|e| Error::io(path, e))
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    std::fs::copy(from, to)
        .map(|_| ())
        .map_err(|e| Error::io(from, format!("cannot copy to {}: {e}", to.display())))
}

fn file_len(path: &Path) -> Result<u64> {
    Ok(std::fs::metadata(path)
        .map_err(|e| Error::io(path, e))?
        .len())
}
