//! What a bundle is generated from: the user's [`BundleOptions`], checked and completed into
//! [`BundleSettings`] (a valid Kubernetes name, an image reference, quantities that parse).

use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// KServe derives longer names from an InferenceService's (`<name>-predictor-…`) that must
/// stay within the 63-character DNS label limit, so names are kept shorter than that.
pub const MAX_NAME_LEN: usize = 45;

/// The smallest port a non-root server can bind without extra capabilities.
const MIN_UNPRIVILEGED_PORT: u16 = 1024;

/// Container resources as Kubernetes quantities (`500m`, `2`, `256Mi`, `1Gi`).
#[derive(Clone, Debug, PartialEq)]
pub struct Resources {
    pub cpu_request: String,
    pub cpu_limit: String,
    pub memory_request: String,
    pub memory_limit: String,
}

impl Default for Resources {
    /// Enough for the small CNNs modelsmith trains: a forward pass at batch 32 needs a few MB;
    /// the limit leaves room for concurrent requests.
    fn default() -> Resources {
        Resources {
            cpu_request: "500m".into(),
            cpu_limit: "2".into(),
            memory_request: "256Mi".into(),
            memory_limit: "1Gi".into(),
        }
    }
}

/// The choices `modelsmith deploy` offers; [`BundleOptions::default`] gives sane values.
#[derive(Clone, Debug)]
pub struct BundleOptions {
    /// Kubernetes name of every object and the model's name on the server; default: derived
    /// from the model folder's name.
    pub name: Option<String>,
    /// Image reference in the manifests; default `<name>:<first 12 hex digits of the weights'
    /// SHA-256>`, so a new model never hides behind an old tag.
    pub image: Option<String>,
    pub replicas: u32,
    /// Autoscaler ceiling; default `max(10, replicas)`.
    pub max_replicas: Option<u32>,
    pub target_cpu_percent: u32,
    /// The port the server listens on inside the container.
    pub port: u16,
    pub resources: Resources,
    /// The `modelsmith` executable to put at `bin/modelsmith` (Linux x86-64, as the runtime
    /// image runs it); `None` writes a Dockerfile that takes it from a build context instead.
    pub binary: Option<PathBuf>,
    /// Replace a non-empty output folder.
    pub force: bool,
    /// Timed predictions per batch size for the model card (0: don't measure).
    pub latency_runs: usize,
}

impl Default for BundleOptions {
    fn default() -> BundleOptions {
        BundleOptions {
            name: None,
            image: None,
            replicas: 2,
            max_replicas: None,
            target_cpu_percent: 70,
            port: 8080,
            resources: Resources::default(),
            binary: None,
            force: false,
            latency_runs: 100,
        }
    }
}

/// Checked settings every generated file reads.
#[derive(Clone, Debug, PartialEq)]
pub struct BundleSettings {
    pub name: String,
    pub image: String,
    pub replicas: u32,
    pub max_replicas: u32,
    pub target_cpu_percent: u32,
    pub port: u16,
    pub resources: Resources,
    /// Whether `bin/modelsmith` is in the bundle.
    pub with_binary: bool,
}

impl BundleSettings {
    /// The gRPC port (KServe v2's GRPCInferenceService): the one after the HTTP port.
    pub fn grpc_port(&self) -> u16 {
        self.port + 1
    }

    /// Checks `options`; `model_dir` names the default, `weights_sha256` tags the default image.
    pub fn resolve(
        options: &BundleOptions,
        model_dir: &Path,
        weights_sha256: &str,
    ) -> Result<BundleSettings> {
        let name = match &options.name {
            Some(name) => {
                check_name(name)?;
                name.clone()
            }
            None => default_name(model_dir),
        };
        let image = match &options.image {
            Some(image) => {
                check_image(image)?;
                image.clone()
            }
            None => format!("{name}:{}", &weights_sha256[..12]),
        };
        if options.replicas == 0 {
            return Err(Error::Config("--replicas must be at least 1".into()));
        }
        let max_replicas = options.max_replicas.unwrap_or(options.replicas.max(10));
        if max_replicas < options.replicas {
            return Err(Error::Config(format!(
                "--max-replicas {max_replicas} is below --replicas {}",
                options.replicas
            )));
        }
        if !(1..=100).contains(&options.target_cpu_percent) {
            return Err(Error::Config(format!(
                "--target-cpu {} must be a percentage from 1 to 100",
                options.target_cpu_percent
            )));
        }
        if options.port == u16::MAX {
            return Err(Error::Config(format!(
                "--port {}: the gRPC port is the next one, so the HTTP port must be below {}",
                options.port,
                u16::MAX
            )));
        }
        if options.port < MIN_UNPRIVILEGED_PORT {
            return Err(Error::Config(format!(
                "--port {}: the server runs as a non-root user and cannot bind ports below {MIN_UNPRIVILEGED_PORT}",
                options.port
            )));
        }
        check_resources(&options.resources)?;
        Ok(BundleSettings {
            name,
            image,
            replicas: options.replicas,
            max_replicas,
            target_cpu_percent: options.target_cpu_percent,
            port: options.port,
            resources: options.resources.clone(),
            with_binary: options.binary.is_some(),
        })
    }

    /// Where the image keeps the model; its last component is the model's name on the server.
    pub fn model_path_in_image(&self) -> String {
        format!("/models/{}", self.name)
    }

    /// The optional Secret holding the bearer token.
    pub fn token_secret_name(&self) -> String {
        format!("{}-token", self.name)
    }
}

/// A DNS-1035 label (what Services and KServe require; stricter than DNS-1123: it starts with a
/// letter): lowercase letters, digits and `-`, starting with a letter, ending with a letter or
/// digit, at most [`MAX_NAME_LEN`] characters.
pub fn check_name(name: &str) -> Result<()> {
    let problem = if name.is_empty() {
        Some("it is empty".to_string())
    } else if name.len() > MAX_NAME_LEN {
        Some(format!(
            "it has {} characters, at most {MAX_NAME_LEN} are allowed",
            name.len()
        ))
    } else if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        Some(format!("'{c}' is not allowed"))
    } else if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        Some("it must start with a lowercase letter".to_string())
    } else if name.ends_with('-') {
        Some("it must end with a letter or digit".to_string())
    } else {
        None
    };
    match problem {
        None => Ok(()),
        Some(why) => Err(Error::Config(format!(
            "--name '{name}' is not a valid Kubernetes name: {why} (use lowercase letters, digits and '-', e.g. 'digits-cnn')"
        ))),
    }
}

/// A valid name made from the model folder's name: `runs/My_Model.v2` gives `my-model-v2`.
pub fn default_name(model_dir: &Path) -> String {
    let folder = std::fs::canonicalize(model_dir)
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .or_else(|| {
            model_dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_default();
    let mut name = String::new();
    for c in folder.chars().map(|c| c.to_ascii_lowercase()) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            name.push(c);
        } else if !name.ends_with('-') {
            name.push('-');
        }
    }
    let mut name = name.trim_matches('-').to_string();
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        name = format!("model-{name}");
    }
    name.truncate(MAX_NAME_LEN);
    name.trim_end_matches('-').to_string()
}

/// An image reference: no spaces or control characters, and something before any `:tag`.
fn check_image(image: &str) -> Result<()> {
    let bad = image.is_empty()
        || image.starts_with(':')
        || image.starts_with('@')
        || image.chars().any(|c| c.is_whitespace() || c.is_control())
        || image.ends_with(':');
    if bad {
        return Err(Error::Config(format!(
            "--image '{image}' is not an image reference (e.g. registry.example.com/digits:1.0)"
        )));
    }
    Ok(())
}

fn check_resources(r: &Resources) -> Result<()> {
    let cpu_request = parse_quantity("--cpu-request", &r.cpu_request)?;
    let cpu_limit = parse_quantity("--cpu-limit", &r.cpu_limit)?;
    let memory_request = parse_quantity("--memory-request", &r.memory_request)?;
    let memory_limit = parse_quantity("--memory-limit", &r.memory_limit)?;
    if cpu_request > cpu_limit {
        return Err(Error::Config(format!(
            "--cpu-request {} is above --cpu-limit {}",
            r.cpu_request, r.cpu_limit
        )));
    }
    if memory_request > memory_limit {
        return Err(Error::Config(format!(
            "--memory-request {} is above --memory-limit {}",
            r.memory_request, r.memory_limit
        )));
    }
    Ok(())
}

/// A Kubernetes quantity in base units: a positive decimal number with an optional SI
/// (`m`, `k`, `M`, `G`, `T`) or binary (`Ki`, `Mi`, `Gi`, `Ti`) suffix.
pub fn parse_quantity(flag: &str, text: &str) -> Result<f64> {
    const SUFFIXES: &[(&str, f64)] = &[
        ("Ki", 1024.0),
        ("Mi", 1024.0 * 1024.0),
        ("Gi", 1024.0 * 1024.0 * 1024.0),
        ("Ti", 1024.0 * 1024.0 * 1024.0 * 1024.0),
        ("m", 1e-3),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
    ];
    let (number, factor) = SUFFIXES
        .iter()
        .find_map(|(suffix, factor)| text.strip_suffix(suffix).map(|n| (n, *factor)))
        .unwrap_or((text, 1.0));
    let numeric = !number.is_empty()
        && number.chars().all(|c| c.is_ascii_digit() || c == '.')
        && number.matches('.').count() <= 1;
    match number.parse::<f64>() {
        Ok(v) if numeric && v > 0.0 => Ok(v * factor),
        _ => Err(Error::Config(format!(
            "{flag} '{text}' is not a positive Kubernetes quantity (e.g. 500m, 2, 256Mi, 1Gi)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_names_are_valid_labels() {
        for (folder, expected) in [
            ("runs/latest", "latest"),
            ("runs/My_Model.v2", "my-model-v2"),
            ("runs/2024-digits", "model-2024-digits"),
            ("runs/---", "model"),
            ("runs/ÉtéCNN", "t-cnn"),
        ] {
            let name = default_name(Path::new(folder));
            assert_eq!(name, expected, "{folder}");
            check_name(&name).unwrap();
        }
        let long = default_name(Path::new(&"a".repeat(80)));
        assert_eq!(long.len(), MAX_NAME_LEN);
    }

    #[test]
    fn invalid_names_are_refused_with_the_reason() {
        for (name, reason) in [
            ("Digits", "'D' is not allowed"),
            ("digits_cnn", "'_' is not allowed"),
            ("1digits", "start with a lowercase letter"),
            ("digits-", "end with a letter or digit"),
            ("", "empty"),
        ] {
            let err = check_name(name).unwrap_err().to_string();
            assert!(err.contains(reason), "{name}: {err}");
        }
        assert!(check_name(&"a".repeat(MAX_NAME_LEN + 1)).is_err());
    }

    #[test]
    fn quantities_parse_and_bad_ones_are_refused() {
        assert_eq!(parse_quantity("x", "500m").unwrap(), 0.5);
        assert_eq!(parse_quantity("x", "2").unwrap(), 2.0);
        assert_eq!(parse_quantity("x", "256Mi").unwrap(), 268435456.0);
        assert_eq!(parse_quantity("x", "1.5G").unwrap(), 1.5e9);
        for bad in ["", "-1", "0", "1.2.3", "12 Mi", "lots", "Mi", "1e3"] {
            assert!(parse_quantity("x", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn requests_above_limits_are_refused() {
        let r = Resources {
            cpu_request: "4".into(),
            ..Resources::default()
        };
        assert!(check_resources(&r)
            .unwrap_err()
            .to_string()
            .contains("above"));
        let r = Resources {
            memory_request: "2Gi".into(),
            ..Resources::default()
        };
        assert!(check_resources(&r).is_err());
        check_resources(&Resources::default()).unwrap();
    }
}
