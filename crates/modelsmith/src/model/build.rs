//! Builds an engine [`Network`] from a [`ModelSpec`], checking every layer's parameters and that
//! shapes chain, with errors that name the layer.

use std::collections::HashMap;

use modelsmith_engine::{
    ActivationLayer, Add, AvgPool2d, BatchNorm, Conv2d, Dense, Dropout, Flatten, GlobalAvgPool,
    MaxPool2d, Padding,
};
use modelsmith_engine::{Layer, Network};

use super::spec::{LayerKind, ModelSpec, PaddingSpec};
use super::ModelError;
use crate::model::activation::ActivationSpec;

/// Builds the network for examples of `input_shape` (`[h, w, c]` or `[features]`) whose last layer
/// must output `num_classes` logits. `seed` fixes the initial weights.
pub fn build_network(
    spec: &ModelSpec,
    input_shape: &[usize],
    num_classes: usize,
    seed: u64,
) -> Result<Network, ModelError> {
    if spec.layers.is_empty() {
        return Err(ModelError::Invalid("the model has no layers".into()));
    }
    let mut net = Network::new(input_shape);
    let mut slots: HashMap<String, usize> = HashMap::new();
    let mut counts: HashMap<&'static str, usize> = HashMap::new();
    let mut current = 0usize;
    let last = spec.layers.len() - 1;
    for (index, layer) in spec.layers.iter().enumerate() {
        let type_name = layer.kind.type_name();
        let count = counts.entry(type_name).or_insert(0);
        *count += 1;
        let name = layer
            .name
            .clone()
            .unwrap_or_else(|| format!("{type_name}_{count}"));
        let at = |msg: String| ModelError::Invalid(format!("layer {} '{name}': {msg}", index + 1));
        if slots.contains_key(&name) {
            return Err(at("a layer with this name already exists".into()));
        }
        if let Some(input) = &layer.input {
            current = *slots
                .get(input)
                .ok_or_else(|| at(format!("input '{input}' is not an earlier layer's name")))?;
        }
        if index != last && matches!(layer_activation(&layer.kind), Some(ActivationSpec::Softmax)) {
            return Err(at(
                "softmax is only supported on the last layer (it is folded into the loss)".into(),
            ));
        }
        let in_shape = net.shapes()[current].clone();
        let layer_seed = seed
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .wrapping_add(index as u64 + 1);
        let mut inputs = vec![current];
        let engine_layer: Box<dyn Layer> = match &layer.kind {
            LayerKind::Conv2d {
                filters,
                kernel,
                stride,
                padding,
                bias,
                activation,
            } => {
                positive(*filters, "filters").map_err(at)?;
                positive(*kernel, "kernel").map_err(at)?;
                positive(*stride, "stride").map_err(at)?;
                if in_shape.len() != 3 {
                    return Err(at(format!(
                        "conv2d needs image input [height, width, channels], got {in_shape:?} (use a CSV model such as mlp, or remove flatten/dense before it)"
                    )));
                }
                bounded_params(&[*kernel, *kernel, in_shape[2], *filters]).map_err(at)?;
                Box::new(Conv2d::new(
                    in_shape[2],
                    *filters,
                    *kernel,
                    *kernel,
                    *stride,
                    padding_of(*padding),
                    *bias,
                    activation.to_engine(),
                    layer_seed,
                ))
            }
            LayerKind::Dense {
                units,
                bias,
                activation,
            } => {
                positive(*units, "units").map_err(at)?;
                let fan_in = in_shape.iter().product();
                bounded_params(&[fan_in, *units]).map_err(at)?;
                Box::new(Dense::new(
                    fan_in,
                    *units,
                    *bias,
                    activation.to_engine(),
                    layer_seed,
                ))
            }
            LayerKind::MaxPool2d {
                pool,
                stride,
                padding,
            } => {
                let (k, stride, padding) = pool_window(*pool, *stride, *padding).map_err(at)?;
                Box::new(MaxPool2d::new(k, stride, padding))
            }
            LayerKind::AvgPool2d {
                pool,
                stride,
                padding,
            } => {
                let (k, stride, padding) = pool_window(*pool, *stride, *padding).map_err(at)?;
                Box::new(AvgPool2d::new(k, stride, padding))
            }
            LayerKind::GlobalAvgPool => Box::new(GlobalAvgPool::new()),
            LayerKind::Flatten => Box::new(Flatten::new()),
            LayerKind::BatchNorm { momentum, eps } => {
                if !(0.0..1.0).contains(momentum) {
                    return Err(at(format!("momentum must be in [0, 1), got {momentum}")));
                }
                if eps.is_nan() || *eps <= 0.0 {
                    return Err(at(format!("eps must be > 0, got {eps}")));
                }
                let channels = *in_shape.last().unwrap_or(&0);
                Box::new(
                    BatchNorm::new(channels)
                        .with_momentum(*momentum)
                        .with_eps(*eps),
                )
            }
            LayerKind::Dropout { rate } => {
                if !(0.0..1.0).contains(rate) {
                    return Err(at(format!("rate must be in [0, 1), got {rate}")));
                }
                Box::new(Dropout::new(*rate, layer_seed))
            }
            LayerKind::Activation { activation } => {
                Box::new(ActivationLayer::new(activation.to_engine()))
            }
            LayerKind::Add { with } => {
                let other = *slots
                    .get(with)
                    .ok_or_else(|| at(format!("'with = {with}' is not an earlier layer's name")))?;
                if other == current {
                    return Err(at(format!(
                        "adds '{with}' to itself; name a different earlier layer"
                    )));
                }
                inputs.push(other);
                Box::new(Add::new())
            }
        };
        current = net
            .push(name.clone(), engine_layer, &inputs)
            .map_err(|e| at(e.to_string()))?;
        let out_shape = &net.shapes()[current];
        if crate::size::checked_product(out_shape).is_none_or(|n| n > MAX_ACTIVATION_VALUES) {
            return Err(at(format!(
                "outputs {out_shape:?} per example, more than the {MAX_ACTIVATION_VALUES} values a layer may produce"
            )));
        }
        slots.insert(name, current);
    }
    let out = net.output_shape();
    if out != [num_classes] {
        return Err(ModelError::Invalid(format!(
            "the last layer outputs shape {out:?} but the data has {num_classes} classes: end the model with a dense layer of {num_classes} units"
        )));
    }
    Ok(net)
}

fn layer_activation(kind: &LayerKind) -> Option<ActivationSpec> {
    match kind {
        LayerKind::Conv2d { activation, .. }
        | LayerKind::Dense { activation, .. }
        | LayerKind::Activation { activation } => Some(*activation),
        _ => None,
    }
}

/// Most parameters one layer may have (1 GiB of `f32`), checked before its weights are allocated:
/// a spec read from a file may ask for any size.
pub const MAX_LAYER_PARAMS: u64 = 1 << 28;
/// Most values one layer may output per example (1 GiB of `f32`).
pub const MAX_ACTIVATION_VALUES: u64 = 1 << 28;

fn bounded_params(factors: &[usize]) -> Result<(), String> {
    match crate::size::checked_product(factors) {
        Some(n) if n <= MAX_LAYER_PARAMS => Ok(()),
        _ => Err(format!(
            "its weights ({}) exceed the {MAX_LAYER_PARAMS} parameters a layer may have",
            factors
                .iter()
                .map(|f| f.to_string())
                .collect::<Vec<_>>()
                .join(" x ")
        )),
    }
}

fn positive(value: usize, field: &str) -> Result<(), String> {
    if value == 0 {
        Err(format!("{field} must be at least 1"))
    } else {
        Ok(())
    }
}

/// A pooling window's (size, stride, padding); the stride defaults to the size, as in Keras.
fn pool_window(
    pool: usize,
    stride: Option<usize>,
    padding: PaddingSpec,
) -> Result<(usize, usize, Padding), String> {
    positive(pool, "pool")?;
    let stride = stride.unwrap_or(pool);
    positive(stride, "stride")?;
    Ok((pool, stride, padding_of(padding)))
}

fn padding_of(p: PaddingSpec) -> Padding {
    match p {
        PaddingSpec::Valid => Padding::Valid,
        PaddingSpec::Same => Padding::Same,
    }
}
