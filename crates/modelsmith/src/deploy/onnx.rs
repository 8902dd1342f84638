//! ONNX export: a saved model as an ONNX graph (opset 13, IR version 7) that computes what
//! [`crate::predict::Predictor::outputs`] computes.
//!
//! The graph's contract:
//! - input `input`, f32 `[batch, ..input_shape]`: for images NHWC `[batch, h, w, c]` exactly as
//!   the engine takes it. This is the *preprocessed* tensor (pixels times `scale`, tables
//!   standardized and one-hot encoded); the preprocessing is stored as JSON in the model's
//!   `metadata_props` under `modelsmith.preprocessing`, beside `modelsmith.task` (the task with
//!   its class names or target scales), `modelsmith.class_names`, `modelsmith.input_layout` and
//!   `modelsmith.spec`.
//! - output, by task: `probabilities`, f32 `[batch, classes]`, the softmax of the logits; or
//!   `values`, f32 `[batch, targets]`, the outputs mapped back to the targets' units
//!   (`Mul` by each target's std, `Add` its mean).
//! - the batch axis is dynamic (`dim_param = "batch"`).
//!
//! Mapping, layer by layer (ONNX convolutions and pools work on NCHW, so images are transposed
//! once after the input and back to NHWC before anything flattens them, which keeps the dense
//! weights' row order the engine's):
//! - `conv2d` → `Conv` with the kernel permuted from `[out, kh, kw, in]` to `[out, in, kh, kw]`
//!   and TensorFlow's "same" padding written as explicit asymmetric `pads` (the extra row and
//!   column at the bottom and right), then its activation.
//! - `dense` → `Gemm` (`MatMul` without bias) with the engine's `[in, out]` weight as `B`; a
//!   dense layer on an image flattens it first (NHWC order), as the engine does.
//! - `max_pool2d` / `avg_pool2d` → `MaxPool` / `AveragePool` with explicit pads
//!   (`count_include_pad = 0`, the engine's "divide by the valid elements").
//! - `global_avg_pool` → `GlobalAveragePool` + `Flatten`.
//! - `flatten` → `Transpose` to NHWC + `Flatten` (nothing on an already flat tensor).
//! - `batch_norm` → `BatchNormalization` with the running statistics (inference form).
//! - `dropout` → removed (identity at inference).
//! - `add` → `Add`.
//! - activations: `Relu`, `LeakyRelu`, `Elu`, `Sigmoid`, `Tanh`; `gelu` (exact, erf form) as
//!   `x * 0.5 * (1 + Erf(x / sqrt 2))` since `Gelu` only exists from opset 20; `softmax` on the
//!   last layer is the final `Softmax` that every graph ends with.
//!
//! Initializers keep the engine's parameter names (`<layer>.weight`, `.bias`, `.gamma`,
//! `.beta`, `.running_mean`, `.running_var`), so they line up with the safetensors export (conv
//! kernels differ only in axis order, as documented above).

use std::collections::HashMap;

use modelsmith_engine::{Network, Padding};
use prost::Message;

use super::onnx_pb::{
    attribute_proto::AttributeType, tensor_proto::DataType, tensor_shape_proto, type_proto,
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto,
    TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};
use crate::model::{ActivationSpec, LayerKind, ModelMeta, PaddingSpec};
use crate::task::Task;
use crate::{Error, Result};

/// The operator set the graphs use.
pub const OPSET: i64 = 13;
/// IR version 7 is the one that goes with opset 13.
pub const IR_VERSION: i64 = 7;
/// Name of the graph input.
pub const INPUT_NAME: &str = "input";

/// Serializes a model to ONNX protobuf bytes.
pub fn encode(model: &ModelProto) -> Vec<u8> {
    model.encode_to_vec()
}

/// Builds the ONNX model for a loaded model (`meta` and its `net`, e.g. from
/// [`crate::model::load_model`]).
pub fn to_onnx(meta: &ModelMeta, net: &Network) -> Result<ModelProto> {
    let mut g = Builder::new(net);
    let shapes = net.shapes();
    if shapes[0].len() != 3 && shapes[0].len() != 1 {
        return Err(unsupported(format!(
            "input shape {:?}: ONNX export supports images [h, w, c] and tables [features]",
            shapes[0]
        )));
    }
    if net.nodes().len() != meta.spec.layers.len() {
        return Err(unsupported(
            "the network does not match model.json's layer list".into(),
        ));
    }
    // ONNX name of each engine slot's value; images are held NCHW.
    let mut values: Vec<String> = Vec::with_capacity(shapes.len());
    values.push(if shapes[0].len() == 3 {
        g.node(
            "Transpose",
            &[INPUT_NAME],
            vec![ints("perm", &[0, 3, 1, 2])],
        )
    } else {
        INPUT_NAME.to_string()
    });
    let last = net.nodes().len() - 1;
    for (i, (node, layer)) in net.nodes().iter().zip(&meta.spec.layers).enumerate() {
        let name = node.name.as_str();
        let in_shape = &shapes[node.inputs[0]];
        let x = values[node.inputs[0]].clone();
        let out = match &layer.kind {
            LayerKind::Conv2d {
                filters,
                kernel,
                stride,
                padding,
                bias,
                activation,
            } => {
                let w = g.param(name, "weight")?;
                // [out, kh, kw, in] → [out, in, kh, kw]
                let (o, k, c) = (*filters, *kernel, in_shape[2]);
                let mut oihw = vec![0.0f32; w.len()];
                for oc in 0..o {
                    for ky in 0..k {
                        for kx in 0..k {
                            for ic in 0..c {
                                oihw[((oc * c + ic) * k + ky) * k + kx] =
                                    w[((oc * k + ky) * k + kx) * c + ic];
                            }
                        }
                    }
                }
                let w_name = format!("{name}.weight");
                g.initializer(&w_name, &[o, c, k, k], &oihw);
                let mut inputs = vec![x, w_name];
                if *bias {
                    inputs.push(g.param_initializer(name, "bias")?);
                }
                let pads = pads(in_shape, *kernel, *stride, *padding);
                let conv = g.node(
                    "Conv",
                    &inputs,
                    vec![
                        ints("kernel_shape", &[k as i64, k as i64]),
                        ints("strides", &[*stride as i64, *stride as i64]),
                        ints("pads", &pads),
                    ],
                );
                g.activation(conv, *activation, i == last)
            }
            LayerKind::Dense {
                bias, activation, ..
            } => {
                let x = g.flat(x, in_shape);
                let w = g.param_initializer(name, "weight")?;
                let y = if *bias {
                    let b = g.param_initializer(name, "bias")?;
                    g.node("Gemm", &[x, w, b], vec![])
                } else {
                    g.node("MatMul", &[x, w], vec![])
                };
                g.activation(y, *activation, i == last)
            }
            LayerKind::MaxPool2d {
                pool,
                stride,
                padding,
            }
            | LayerKind::AvgPool2d {
                pool,
                stride,
                padding,
            } => {
                let stride = stride.unwrap_or(*pool);
                let mut attrs = vec![
                    ints("kernel_shape", &[*pool as i64, *pool as i64]),
                    ints("strides", &[stride as i64, stride as i64]),
                    ints("pads", &pads(in_shape, *pool, stride, *padding)),
                ];
                let op = if matches!(layer.kind, LayerKind::MaxPool2d { .. }) {
                    "MaxPool"
                } else {
                    attrs.push(int("count_include_pad", 0));
                    "AveragePool"
                };
                g.node(op, &[x], attrs)
            }
            LayerKind::GlobalAvgPool => {
                let y = g.node("GlobalAveragePool", &[x], vec![]);
                g.node("Flatten", &[y], vec![int("axis", 1)])
            }
            LayerKind::Flatten => g.flat(x, in_shape),
            LayerKind::BatchNorm { eps, .. } => {
                let inputs = [
                    x,
                    g.param_initializer(name, "gamma")?,
                    g.param_initializer(name, "beta")?,
                    g.param_initializer(name, "running_mean")?,
                    g.param_initializer(name, "running_var")?,
                ];
                g.node("BatchNormalization", &inputs, vec![float("epsilon", *eps)])
            }
            LayerKind::Dropout { .. } => x,
            LayerKind::Activation { activation } => g.activation(x, *activation, i == last),
            LayerKind::Add { .. } => {
                let other = values[node.inputs[1]].clone();
                g.node("Add", &[x, other], vec![])
            }
        };
        values.push(out);
    }
    let logits = values.last().expect("at least the input").clone();
    let task = &meta.data.task;
    let output_name = task.output_name();
    match task {
        Task::Classification { .. } => g.nodes.push(node_proto(
            "Softmax",
            &[logits],
            output_name,
            vec![int("axis", 1)],
        )),
        Task::Regression { targets } => {
            let k = targets.len();
            let std: Vec<f32> = targets.iter().map(|t| t.std as f32).collect();
            let mean: Vec<f32> = targets.iter().map(|t| t.mean as f32).collect();
            g.initializer("target_std", &[k], &std);
            g.initializer("target_mean", &[k], &mean);
            let scaled = g.node("Mul", &[logits.as_str(), "target_std"], vec![]);
            g.nodes.push(node_proto(
                "Add",
                &[scaled, "target_mean".to_string()],
                output_name,
                vec![],
            ));
        }
    }

    let mut input_dims = vec![batch_dim()];
    input_dims.extend(shapes[0].iter().map(|&d| fixed_dim(d)));
    let graph = GraphProto {
        name: Some(
            meta.spec
                .name
                .clone()
                .unwrap_or_else(|| "modelsmith".into()),
        ),
        node: g.nodes,
        initializer: g.initializers,
        input: vec![value_info(INPUT_NAME, input_dims)],
        output: vec![value_info(
            output_name,
            vec![batch_dim(), fixed_dim(meta.outputs)],
        )],
        doc_string: Some(format!(
            "input: the preprocessed {} tensor (see metadata modelsmith.preprocessing); output: {}",
            if shapes[0].len() == 3 {
                "NHWC image"
            } else {
                "feature"
            },
            if task.is_regression() {
                "values in the targets' units"
            } else {
                "class probabilities"
            }
        )),
        ..Default::default()
    };
    let json = |v: serde_json::Result<String>| v.expect("model metadata serializes");
    let metadata = [
        (
            "modelsmith.preprocessing",
            json(serde_json::to_string(&meta.data.preprocessing)),
        ),
        ("modelsmith.task", json(serde_json::to_string(task))),
        (
            "modelsmith.class_names",
            json(serde_json::to_string(meta.data.class_names())),
        ),
        (
            "modelsmith.input_layout",
            if shapes[0].len() == 3 { "NHWC" } else { "NF" }.to_string(),
        ),
        ("modelsmith.input_is_preprocessed", "true".to_string()),
        ("modelsmith.spec", json(serde_json::to_string(&meta.spec))),
    ];
    Ok(ModelProto {
        ir_version: Some(IR_VERSION),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(OPSET),
        }],
        producer_name: Some("modelsmith".into()),
        producer_version: Some(env!("CARGO_PKG_VERSION").into()),
        graph: Some(graph),
        metadata_props: metadata
            .into_iter()
            .map(|(k, v)| StringStringEntryProto {
                key: Some(k.into()),
                value: Some(v),
            })
            .collect(),
        ..Default::default()
    })
}

fn unsupported(msg: String) -> Error {
    Error::Config(format!("cannot export to ONNX: {msg}"))
}

/// ONNX `pads` `[top, left, bottom, right]` for a square window on an NHWC per-example shape:
/// none for "valid"; for "same" TensorFlow's split, the extra element at the bottom/right.
fn pads(in_shape: &[usize], k: usize, stride: usize, padding: PaddingSpec) -> Vec<i64> {
    if padding == PaddingSpec::Valid {
        return vec![0; 4];
    }
    let axis = |len: usize| {
        let (out, before) = Padding::Same
            .output_and_pad(len, k, stride)
            .expect("same padding always fits");
        let total = ((out - 1) * stride + k).saturating_sub(len);
        (before as i64, (total - before) as i64)
    };
    let (top, bottom) = axis(in_shape[0]);
    let (left, right) = axis(in_shape[1]);
    vec![top, left, bottom, right]
}

/// Accumulates nodes and initializers with unique value names.
struct Builder<'a> {
    params: HashMap<String, (Vec<usize>, &'a [f32])>,
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    counter: usize,
}

impl<'a> Builder<'a> {
    fn new(net: &'a Network) -> Builder<'a> {
        let mut params = HashMap::new();
        for (name, p) in net.params() {
            params.insert(name, (p.value.shape.clone(), p.value.data.as_slice()));
        }
        for (name, t) in net.buffers() {
            params.insert(name, (t.shape.clone(), t.data.as_slice()));
        }
        Builder {
            params,
            nodes: Vec::new(),
            initializers: Vec::new(),
            counter: 0,
        }
    }

    fn param(&self, layer: &str, param: &str) -> Result<&'a [f32]> {
        self.params
            .get(&format!("{layer}.{param}"))
            .map(|(_, v)| *v)
            .ok_or_else(|| unsupported(format!("layer '{layer}' has no parameter '{param}'")))
    }

    /// Adds the engine parameter `<layer>.<param>` unchanged as an initializer; returns its name.
    fn param_initializer(&mut self, layer: &str, param: &str) -> Result<String> {
        let name = format!("{layer}.{param}");
        let (shape, values) =
            self.params.get(&name).cloned().ok_or_else(|| {
                unsupported(format!("layer '{layer}' has no parameter '{param}'"))
            })?;
        self.initializer(&name, &shape, values);
        Ok(name)
    }

    fn initializer(&mut self, name: &str, shape: &[usize], values: &[f32]) {
        self.initializers.push(TensorProto {
            name: Some(name.into()),
            dims: shape.iter().map(|&d| d as i64).collect(),
            data_type: Some(DataType::Float as i32),
            raw_data: Some(values.iter().flat_map(|v| v.to_le_bytes()).collect()),
            ..Default::default()
        });
    }

    /// A scalar f32 constant initializer.
    fn scalar(&mut self, value: f32) -> String {
        self.counter += 1;
        let name = format!("const_{}", self.counter);
        self.initializer(&name, &[], &[value]);
        name
    }

    /// Appends a node with one fresh output; returns the output's name.
    fn node(&mut self, op: &str, inputs: &[impl AsRef<str>], attrs: Vec<AttributeProto>) -> String {
        self.counter += 1;
        let out = format!("{}_{}", op.to_ascii_lowercase(), self.counter);
        self.nodes.push(node_proto(op, inputs, &out, attrs));
        out
    }

    /// `x` as `[batch, features]`: images go back to NHWC and are flattened in the engine's order.
    fn flat(&mut self, x: String, per_example: &[usize]) -> String {
        if per_example.len() == 3 {
            let nhwc = self.node("Transpose", &[x], vec![ints("perm", &[0, 2, 3, 1])]);
            self.node("Flatten", &[nhwc], vec![int("axis", 1)])
        } else {
            x
        }
    }

    fn activation(&mut self, x: String, act: ActivationSpec, last: bool) -> String {
        match act {
            ActivationSpec::Linear => x,
            // Only valid on the last layer (checked when the network was built): the graph's
            // final Softmax applies it.
            ActivationSpec::Softmax => {
                debug_assert!(last);
                x
            }
            ActivationSpec::Relu => self.node("Relu", &[x], vec![]),
            ActivationSpec::LeakyRelu(a) => self.node("LeakyRelu", &[x], vec![float("alpha", a)]),
            ActivationSpec::Elu(a) => self.node("Elu", &[x], vec![float("alpha", a)]),
            ActivationSpec::Sigmoid => self.node("Sigmoid", &[x], vec![]),
            ActivationSpec::Tanh => self.node("Tanh", &[x], vec![]),
            ActivationSpec::Gelu => {
                // x * 0.5 * (1 + erf(x / sqrt(2)))
                let sqrt2 = self.scalar(std::f32::consts::SQRT_2);
                let one = self.scalar(1.0);
                let half = self.scalar(0.5);
                let scaled = self.node("Div", &[x.clone(), sqrt2], vec![]);
                let erf = self.node("Erf", &[scaled], vec![]);
                let cdf = self.node("Add", &[erf, one], vec![]);
                let half_cdf = self.node("Mul", &[cdf, half], vec![]);
                self.node("Mul", &[x, half_cdf], vec![])
            }
        }
    }
}

fn node_proto(
    op: &str,
    inputs: &[impl AsRef<str>],
    output: &str,
    attribute: Vec<AttributeProto>,
) -> NodeProto {
    NodeProto {
        input: inputs.iter().map(|s| s.as_ref().to_string()).collect(),
        output: vec![output.to_string()],
        name: Some(output.to_string()),
        op_type: Some(op.to_string()),
        attribute,
        ..Default::default()
    }
}

fn ints(name: &str, values: &[i64]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Ints as i32),
        ints: values.to_vec(),
        ..Default::default()
    }
}

fn int(name: &str, value: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Int as i32),
        i: Some(value),
        ..Default::default()
    }
}

fn float(name: &str, value: f32) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Float as i32),
        f: Some(value),
        ..Default::default()
    }
}

fn batch_dim() -> tensor_shape_proto::Dimension {
    tensor_shape_proto::Dimension {
        value: Some(tensor_shape_proto::dimension::Value::DimParam(
            "batch".into(),
        )),
        ..Default::default()
    }
}

fn fixed_dim(d: usize) -> tensor_shape_proto::Dimension {
    tensor_shape_proto::Dimension {
        value: Some(tensor_shape_proto::dimension::Value::DimValue(d as i64)),
        ..Default::default()
    }
}

fn value_info(name: &str, dims: Vec<tensor_shape_proto::Dimension>) -> ValueInfoProto {
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(DataType::Float as i32),
                shape: Some(TensorShapeProto { dim: dims }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}
