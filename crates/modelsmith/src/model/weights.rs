//! Network weights in safetensors: every parameter and buffer under its full name
//! (`<layer>.<param>`), so checkpoints, exported weights and ONNX initializers agree.

use std::collections::HashMap;
use std::path::Path;

use modelsmith_engine::Network;
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

use super::ModelError;

/// Tensors by name: (shape, values).
pub type NamedTensors = HashMap<String, (Vec<usize>, Vec<f32>)>;

/// Serializes all parameters and buffers of `net` (plus any `extra` named tensors, e.g. optimizer
/// state in a checkpoint) to safetensors bytes.
pub fn weights_to_bytes(net: &Network, extra: &[(String, Vec<usize>, &[f32])]) -> Vec<u8> {
    let mut named: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, p) in net.params() {
        named.push((name, p.value.shape.clone(), le_bytes(&p.value.data)));
    }
    for (name, t) in net.buffers() {
        named.push((name, t.shape.clone(), le_bytes(&t.data)));
    }
    for (name, shape, data) in extra {
        named.push((name.clone(), shape.clone(), le_bytes(data)));
    }
    let views: Vec<(String, TensorView)> = named
        .iter()
        .map(|(n, shape, bytes)| {
            let view = TensorView::new(Dtype::F32, shape.clone(), bytes).expect("consistent sizes");
            (n.clone(), view)
        })
        .collect();
    safetensors::serialize(views, &None).expect("serializing in-memory tensors cannot fail")
}

fn le_bytes(data: &[f32]) -> Vec<u8> {
    data.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Writes the weights to `path` atomically (see [`write_atomic`]).
pub fn write_weights_file(
    path: &Path,
    net: &Network,
    extra: &[(String, Vec<usize>, &[f32])],
) -> Result<(), ModelError> {
    write_atomic(path, &weights_to_bytes(net, extra))
}

/// Writes `bytes` to `path` so that a crash or a concurrent writer never leaves a torn file: the
/// bytes go to a temporary name of this process's own (two writers never share one), are flushed
/// to disk, then renamed over `path`, and the rename is flushed by syncing the folder.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ModelError> {
    use std::io::Write;
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = path.with_file_name(format!(
        ".{name}.tmp-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let written = std::fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(bytes).and_then(|_| f.sync_all()))
        .and_then(|_| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(ModelError::file(path, format!("cannot write: {e}")));
    }
    sync_parent(path);
    Ok(())
}

/// Flushes a rename in `path`'s folder to disk. Best effort: some file systems refuse to open
/// or sync a folder, and the rename itself has already happened.
fn sync_parent(path: &Path) {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if let Ok(dir) = std::fs::File::open(parent) {
        let _ = dir.sync_all();
    }
}

/// Reads every tensor of a safetensors file as f32 values with shapes.
pub fn read_weights_file(path: &Path) -> Result<NamedTensors, ModelError> {
    let bytes =
        std::fs::read(path).map_err(|e| ModelError::file(path, format!("cannot read: {e}")))?;
    parse_weights(&bytes, path)
}

/// Parses safetensors bytes read from `path` (named in errors).
pub(crate) fn parse_weights(bytes: &[u8], path: &Path) -> Result<NamedTensors, ModelError> {
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| ModelError::file(path, format!("not a valid safetensors file: {e}")))?;
    let mut out = HashMap::new();
    for (name, view) in st.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(ModelError::file(
                path,
                format!("tensor '{name}' has dtype {:?}, expected F32", view.dtype()),
            ));
        }
        let values = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        out.insert(name, (view.shape().to_vec(), values));
    }
    Ok(out)
}

/// Copies tensors into `net`'s parameters and buffers, checking that every one is present with
/// the right shape.
pub fn load_weights(
    net: &mut Network,
    tensors: &NamedTensors,
    source: &Path,
) -> Result<(), ModelError> {
    for (name, p) in net.params_mut() {
        copy_into(name, &mut p.value, tensors, source)?;
    }
    for (name, t) in net.buffers_mut() {
        copy_into(name, t, tensors, source)?;
    }
    Ok(())
}

fn copy_into(
    name: String,
    target: &mut modelsmith_engine::Tensor,
    tensors: &NamedTensors,
    source: &Path,
) -> Result<(), ModelError> {
    let (shape, values) = tensors.get(&name).ok_or_else(|| {
        ModelError::file(
            source,
            format!("tensor '{name}' is missing (does the weights file match model.json?)"),
        )
    })?;
    if *shape != target.shape {
        return Err(ModelError::file(
            source,
            format!(
                "tensor '{name}' has shape {shape:?}, the model expects {:?}",
                target.shape
            ),
        ));
    }
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(ModelError::file(
            source,
            format!(
                "tensor '{name}' holds {} at index {i}: the training that wrote it diverged; train again (e.g. with a lower --lr or --clip-norm 1)",
                values[i]
            ),
        ));
    }
    target.data.copy_from_slice(values);
    Ok(())
}

/// An in-memory copy of all parameters and buffers, for restoring the best epoch's weights.
#[derive(Clone, Debug, Default)]
pub struct WeightSnapshot {
    values: Vec<Vec<f32>>,
}

impl WeightSnapshot {
    pub fn take(net: &Network) -> WeightSnapshot {
        let mut values: Vec<Vec<f32>> = net
            .params()
            .iter()
            .map(|(_, p)| p.value.data.clone())
            .collect();
        values.extend(net.buffers().iter().map(|(_, t)| t.data.clone()));
        WeightSnapshot { values }
    }

    /// Overwrites `snapshot` in place (no allocation once sizes are known).
    pub fn update(&mut self, net: &Network) {
        if self.values.is_empty() {
            *self = WeightSnapshot::take(net);
            return;
        }
        let sources = net
            .params()
            .into_iter()
            .map(|(_, p)| &p.value.data)
            .chain(net.buffers().into_iter().map(|(_, t)| &t.data));
        for (dst, src) in self.values.iter_mut().zip(sources) {
            dst.copy_from_slice(src);
        }
    }

    pub fn restore(&self, net: &mut Network) {
        let mut values = self.values.iter();
        for (_, p) in net.params_mut() {
            p.value
                .data
                .copy_from_slice(values.next().expect("same network"));
        }
        for (_, t) in net.buffers_mut() {
            t.data.copy_from_slice(values.next().expect("same network"));
        }
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The snapshot's values under the network's tensor names (empty when nothing was taken).
    pub fn named<'a>(&'a self, net: &Network) -> Vec<(String, &'a [f32])> {
        let names = net
            .params()
            .into_iter()
            .map(|(n, _)| n)
            .chain(net.buffers().into_iter().map(|(n, _)| n));
        names
            .zip(&self.values)
            .map(|(n, v)| (n, v.as_slice()))
            .collect()
    }

    /// Rebuilds a snapshot from named values, checking each against `net`.
    pub fn from_named(
        net: &Network,
        tensors: &[(String, Vec<f32>)],
    ) -> Result<WeightSnapshot, String> {
        let lookup: HashMap<&str, &Vec<f32>> =
            tensors.iter().map(|(n, v)| (n.as_str(), v)).collect();
        let expected = net
            .params()
            .into_iter()
            .map(|(n, p)| (n, p.value.len()))
            .chain(net.buffers().into_iter().map(|(n, t)| (n, t.len())));
        let mut values = Vec::new();
        for (name, len) in expected {
            let v = lookup
                .get(name.as_str())
                .ok_or_else(|| format!("best weights: tensor '{name}' is missing"))?;
            if v.len() != len {
                return Err(format!(
                    "best weights: tensor '{name}' has {} values, expected {len}",
                    v.len()
                ));
            }
            values.push((*v).clone());
        }
        Ok(WeightSnapshot { values })
    }
}
