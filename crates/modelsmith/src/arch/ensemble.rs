//! Several trainings of one MLP genome (other seeds) as one network that averages their
//! outputs, so the ensemble is an ordinary model: predict, serve and ONNX need nothing new.
//!
//! Members side by side in each hidden layer: the first layer's weights are the members'
//! columns together (every member reads the same input), every later hidden layer is
//! block-diagonal (a member reads only its own units), per-unit vectors (biases, batch-norm
//! parameters and statistics) are concatenated, and the output layer stacks the members' rows
//! divided by their count, with their mean bias: its pre-activation is the mean of the
//! members'. A classifier thus averages logits before its softmax; a regression averages
//! values. Dropout and activations act per unit, so they are unchanged. Without hidden layers
//! (a linear model) the members' output weights are simply averaged.
//!
//! The cost: a hidden layer after the first does members² times the multiply-adds (the
//! off-diagonal blocks are zeros), which on a table's MLP is still microseconds per row.

use crate::model::NamedTensors;

use super::space::{hidden_layer, LOGITS};
use super::{ArchError, TableGenome};

/// `genome` with every hidden layer `members` times as wide (the ensemble's genome).
pub fn ensemble_genome(genome: &TableGenome, members: usize) -> TableGenome {
    let mut wide = genome.clone();
    for h in &mut wide.hidden {
        h.units *= members.max(1);
    }
    wide
}

/// The weights of [`ensemble_genome`] whose outputs are the mean of `members`' outputs, each
/// member being `genome`'s trained weights. Errors name a tensor the members disagree on or
/// that the genome does not explain.
pub fn ensemble_weights(
    genome: &TableGenome,
    members: &[NamedTensors],
) -> Result<NamedTensors, ArchError> {
    let first = members
        .first()
        .ok_or_else(|| ArchError::Genome("an ensemble needs at least one member".into()))?;
    let n = members.len();
    let first_hidden = genome.hidden.first().map(|h| h.id);
    let role = |name: &str| -> Option<Role> {
        let (layer, _) = name.split_once('.')?;
        if layer == LOGITS {
            return Some(Role::Output);
        }
        let id = genome
            .hidden
            .iter()
            .find(|h| layer == hidden_layer(h.id, "dense") || layer == hidden_layer(h.id, "bn"))?
            .id;
        Some(if Some(id) == first_hidden {
            Role::FirstHidden
        } else {
            Role::Hidden
        })
    };
    let mut out = NamedTensors::new();
    for (name, (shape, _)) in first {
        let role = role(name).ok_or_else(|| {
            ArchError::Genome(format!("tensor '{name}' is not part of the MLP's layers"))
        })?;
        let parts: Vec<&[f32]> = members
            .iter()
            .map(|m| match m.get(name) {
                Some((s, v)) if s == shape => Ok(v.as_slice()),
                Some((s, _)) => Err(ArchError::Genome(format!(
                    "tensor '{name}' has shape {s:?} in one member and {shape:?} in another"
                ))),
                None => Err(ArchError::Genome(format!(
                    "tensor '{name}' is missing from a member"
                ))),
            })
            .collect::<Result<_, _>>()?;
        let merged = match (shape.as_slice(), role) {
            ([units], Role::FirstHidden | Role::Hidden) => (vec![units * n], parts.concat()),
            ([_], Role::Output) => (shape.clone(), mean(&parts)),
            // No hidden layer: every member reads the input itself, so the mean of linear
            // maps is the linear map of the means.
            ([_, _], Role::Output) if genome.hidden.is_empty() => (shape.clone(), mean(&parts)),
            (&[rows, cols], Role::FirstHidden) => {
                (vec![rows, cols * n], side_by_side(&parts, rows, cols))
            }
            (&[rows, cols], Role::Hidden) => {
                (vec![rows * n, cols * n], block_diagonal(&parts, rows, cols))
            }
            (&[rows, cols], Role::Output) => {
                let scale = 1.0 / n as f32;
                let stacked = parts.concat().into_iter().map(|v| v * scale).collect();
                (vec![rows * n, cols], stacked)
            }
            _ => {
                return Err(ArchError::Genome(format!(
                    "tensor '{name}' has shape {shape:?}, not a dense layer's"
                )))
            }
        };
        out.insert(name.clone(), merged);
    }
    Ok(out)
}

#[derive(Clone, Copy)]
enum Role {
    FirstHidden,
    Hidden,
    Output,
}

fn mean(parts: &[&[f32]]) -> Vec<f32> {
    let n = parts.len() as f32;
    (0..parts[0].len())
        .map(|i| parts.iter().map(|p| p[i]).sum::<f32>() / n)
        .collect()
}

/// `[rows, cols]` matrices (row-major) as one `[rows, cols × n]`: member k's columns at k·cols.
fn side_by_side(parts: &[&[f32]], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(rows * cols * parts.len());
    for r in 0..rows {
        for p in parts {
            out.extend_from_slice(&p[r * cols..(r + 1) * cols]);
        }
    }
    out
}

/// `[rows, cols]` matrices as one `[rows × n, cols × n]` with member k's at block (k, k).
fn block_diagonal(parts: &[&[f32]], rows: usize, cols: usize) -> Vec<f32> {
    let n = parts.len();
    let width = cols * n;
    let mut out = vec![0.0; rows * n * width];
    for (k, p) in parts.iter().enumerate() {
        for r in 0..rows {
            let at = (k * rows + r) * width + k * cols;
            out[at..at + cols].copy_from_slice(&p[r * cols..(r + 1) * cols]);
        }
    }
    out
}
