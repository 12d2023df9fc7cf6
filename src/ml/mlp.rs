//! A small dense network (fully connected layers, `ReLU` between them) with its plain-Rust forward pass
//! and its ONNX export (`Gemm` + `Relu`).
//!
//! Why this module exists: the neural models of issue 6 (structure autoencoder, feature discovery,
//! liquidity, the evolver's Q-network) are small MLPs that run in tract or ONNX Runtime from an ONNX file
//! written here. The forward pass is the reference both backends are held to (the tests compare all
//! three on the same file), and [`Mlp::seeded`] gives the starting weights training begins from.
//!
//! Layout: layer `i` holds `weights` as `[outputs][inputs]` row-major (the ONNX `Gemm` `B` input with
//! `transB = 1`) and `bias` `[outputs]`; every layer but the last is followed by `ReLU`. Sums are `f32`
//! in input order, like a plain `Gemm`; backends may reorder them, so comparisons use a tolerance.

use prost::Message as _;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tract_onnx::pb::{
    GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto, TensorShapeProto, TypeProto,
    ValueInfoProto,
    attribute_proto::AttributeType,
    tensor_proto::DataType,
    tensor_shape_proto::{Dimension, dimension},
    type_proto,
};

use super::MlError;

/// An initializer's dimensions and values.
type Initializer = (Vec<i64>, Vec<f32>);

/// Name of the graph input.
pub const INPUT: &str = "input";
/// Name of the graph output.
pub const OUTPUT: &str = "output";

/// One fully connected layer.
#[derive(Debug, Clone, PartialEq)]
pub struct Dense {
    pub inputs: usize,
    pub outputs: usize,
    /// `[outputs][inputs]`, row-major.
    pub weights: Vec<f32>,
    pub bias: Vec<f32>,
}

/// Layers applied in order, `ReLU` after every layer but the last.
#[derive(Debug, Clone, PartialEq)]
pub struct Mlp {
    layers: Vec<Dense>,
}

impl Mlp {
    /// Checks that each layer's shapes are whole and that each feeds the next.
    pub fn new(layers: Vec<Dense>) -> Result<Self, MlError> {
        if layers.is_empty() {
            return Err(MlError::Shape("an MLP needs at least one layer".into()));
        }
        for (i, layer) in layers.iter().enumerate() {
            if layer.inputs == 0
                || layer.outputs == 0
                || layer.weights.len() != layer.inputs * layer.outputs
                || layer.bias.len() != layer.outputs
            {
                return Err(MlError::Shape(format!(
                    "layer {i}: {} weights and {} biases for {}→{}",
                    layer.weights.len(),
                    layer.bias.len(),
                    layer.inputs,
                    layer.outputs
                )));
            }
            if let Some(next) = layers.get(i + 1)
                && next.inputs != layer.outputs
            {
                return Err(MlError::Shape(format!(
                    "layer {i} gives {} values, layer {} takes {}",
                    layer.outputs,
                    i + 1,
                    next.inputs
                )));
            }
            if layer.weights.iter().chain(&layer.bias).any(|v| !v.is_finite()) {
                return Err(MlError::Shape(format!(
                    "layer {i} has a value that is not finite"
                )));
            }
        }
        Ok(Self { layers })
    }

    /// An MLP with the given layer widths (`sizes[0]` inputs … `sizes[last]` outputs), weights drawn
    /// uniformly in ±√(6 / fan-in) (He initialisation for `ReLU`) and small biases, from `seed`.
    pub fn seeded(sizes: &[usize], seed: u64) -> Result<Self, MlError> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let layers = sizes
            .windows(2)
            .map(|pair| {
                let (inputs, outputs) = (pair[0], pair[1]);
                let limit = (6.0 / inputs.max(1) as f32).sqrt();
                Dense {
                    inputs,
                    outputs,
                    weights: (0..inputs * outputs)
                        .map(|_| rng.random_range(-limit..limit))
                        .collect(),
                    bias: (0..outputs).map(|_| rng.random_range(-0.1..0.1)).collect(),
                }
            })
            .collect();
        Self::new(layers)
    }

    pub fn layers(&self) -> &[Dense] {
        &self.layers
    }

    /// The layers' values for training ([`super::nn`]): shapes stay as they are; a trainer hands the
    /// network back through [`Mlp::new`] so non-finite values are caught.
    pub(crate) fn layers_mut(&mut self) -> &mut [Dense] {
        &mut self.layers
    }

    /// The layers, by value (to rebuild a changed network through [`Mlp::new`]).
    pub fn into_layers(self) -> Vec<Dense> {
        self.layers
    }

    pub fn inputs(&self) -> usize {
        self.layers[0].inputs
    }

    pub fn outputs(&self) -> usize {
        self.layers[self.layers.len() - 1].outputs
    }

    /// The forward pass of a row-major batch into `out` (`outputs()` values per row). The reference the
    /// backends are compared with; it allocates two scratch rows per call.
    pub fn forward(&self, input: &[f32], out: &mut [f32]) -> Result<(), MlError> {
        let rows = input.len() / self.inputs();
        if input.len() != rows * self.inputs() || out.len() != rows * self.outputs() {
            return Err(MlError::Shape(format!(
                "{} inputs and {} output slots for rows of {}→{}",
                input.len(),
                out.len(),
                self.inputs(),
                self.outputs()
            )));
        }
        let widest = self.layers.iter().map(|l| l.outputs).max().unwrap_or(0);
        let (mut a, mut b) = (vec![0.0_f32; widest], vec![0.0_f32; widest]);
        let last = self.layers.len() - 1;
        for (row, dest) in input
            .chunks_exact(self.inputs())
            .zip(out.chunks_exact_mut(self.outputs()))
        {
            for (i, layer) in self.layers.iter().enumerate() {
                let x: &[f32] = if i == 0 { row } else { &a[..layer.inputs] };
                for (o, slot) in b[..layer.outputs].iter_mut().enumerate() {
                    let w = &layer.weights[o * layer.inputs..(o + 1) * layer.inputs];
                    let sum = w.iter().zip(x).fold(0.0_f32, |s, (w, x)| s + w * x) + layer.bias[o];
                    *slot = if i < last { sum.max(0.0) } else { sum };
                }
                std::mem::swap(&mut a, &mut b);
            }
            dest.copy_from_slice(&a[..self.outputs()]);
        }
        Ok(())
    }

    /// The ONNX model: input `input` `float[N, inputs]`, output `output` `float[N, outputs]`, one `Gemm`
    /// (`transB = 1`) per layer with `Relu` between; weights as `raw_data` initializers; opset 17, IR 8.
    pub fn to_onnx(&self, graph_name: &str) -> ModelProto {
        let mut nodes = Vec::new();
        let mut initializers = Vec::new();
        let mut current = INPUT.to_owned();
        let last = self.layers.len() - 1;
        for (i, layer) in self.layers.iter().enumerate() {
            let (w, b) = (format!("w{i}"), format!("b{i}"));
            initializers.push(float_tensor(
                &w,
                &[layer.outputs as i64, layer.inputs as i64],
                &layer.weights,
            ));
            initializers.push(float_tensor(&b, &[layer.outputs as i64], &layer.bias));
            current = gemm_relu(&mut nodes, i, i == last, current, w, b);
        }
        model_proto(graph_name, nodes, initializers, self.inputs(), self.outputs())
    }

    /// Reads a `Gemm`(`transB = 1`)/`Relu` MLP written by [`Mlp::to_onnx`] back: the initializers `w{i}`
    /// `[outputs, inputs]` and `b{i}` `[outputs]` (little-endian `raw_data` or `float_data`). Anything
    /// else in the graph is refused, so a file that is not one of ours never loads as a network.
    pub fn from_onnx(bytes: &[u8]) -> Result<Self, MlError> {
        let model = ModelProto::decode(bytes).map_err(|e| MlError::Format(e.to_string()))?;
        let graph = model.graph.ok_or_else(|| MlError::Format("no graph".into()))?;
        let tensor = |name: &str| -> Result<Option<Initializer>, MlError> {
            let Some(t) = graph.initializer.iter().find(|t| t.name == name) else {
                return Ok(None);
            };
            if t.data_type != DataType::Float as i32 {
                return Err(MlError::Format(format!("{name} is not float")));
            }
            let values: Vec<f32> = if t.raw_data.is_empty() {
                t.float_data.clone()
            } else {
                if t.raw_data.len() % 4 != 0 {
                    return Err(MlError::Format(format!(
                        "{name}: raw data of {} bytes",
                        t.raw_data.len()
                    )));
                }
                t.raw_data
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect()
            };
            Ok(Some((t.dims.clone(), values)))
        };
        let mut layers = Vec::new();
        for i in 0.. {
            let (Some((w_dims, weights)), Some((_, bias))) =
                (tensor(&format!("w{i}"))?, tensor(&format!("b{i}"))?)
            else {
                break;
            };
            let [outputs, inputs] = w_dims[..] else {
                return Err(MlError::Format(format!("w{i} has shape {w_dims:?}")));
            };
            layers.push(Dense {
                inputs: usize::try_from(inputs).map_err(|e| MlError::Format(e.to_string()))?,
                outputs: usize::try_from(outputs).map_err(|e| MlError::Format(e.to_string()))?,
                weights,
                bias,
            });
        }
        let gemms = graph.node.iter().filter(|n| n.op_type == "Gemm").count();
        if gemms != layers.len()
            || graph
                .node
                .iter()
                .any(|n| n.op_type != "Gemm" && n.op_type != "Relu")
        {
            return Err(MlError::Format("not a Gemm/Relu MLP written by perpdesk".into()));
        }
        Self::new(layers)
    }

    /// The protobuf bytes of [`Self::to_onnx`].
    pub fn onnx_bytes(&self, graph_name: &str) -> Vec<u8> {
        self.to_onnx(graph_name).encode_to_vec()
    }
}

/// Layer `i`'s `Gemm` (`transB = 1`, node `gemm{i}`) of `current` by `w` and `b`, then its `Relu`
/// (node `relu{i}`) unless it is the `last` layer, whose `Gemm` writes the graph output. Returns the
/// tensor the next layer reads. Shared by the FP32 and the INT8 writers, so both graphs keep one shape.
pub(crate) fn gemm_relu(
    nodes: &mut Vec<NodeProto>,
    i: usize,
    last: bool,
    current: String,
    w: String,
    b: String,
) -> String {
    let gemm_out = if last {
        OUTPUT.to_owned()
    } else {
        format!("gemm{i}")
    };
    nodes.push(NodeProto {
        input: vec![current, w, b],
        output: vec![gemm_out.clone()],
        name: format!("gemm{i}"),
        op_type: "Gemm".into(),
        attribute: vec![tract_onnx::pb::AttributeProto {
            name: "transB".into(),
            r#type: AttributeType::Int as i32,
            i: 1,
            ..Default::default()
        }],
        ..NodeProto::default()
    });
    if last {
        return gemm_out;
    }
    let relu_out = format!("relu{i}");
    nodes.push(NodeProto {
        input: vec![gemm_out],
        output: vec![relu_out.clone()],
        name: relu_out.clone(),
        op_type: "Relu".into(),
        ..NodeProto::default()
    });
    relu_out
}

/// The model around a graph of `nodes` from `float[N, inputs]` to `float[N, outputs]`: opset 17, IR 8.
pub(crate) fn model_proto(
    graph_name: &str,
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    inputs: usize,
    outputs: usize,
) -> ModelProto {
    let graph = GraphProto {
        node: nodes,
        name: graph_name.into(),
        initializer: initializers,
        input: vec![float_info(INPUT, inputs)],
        output: vec![float_info(OUTPUT, outputs)],
        ..GraphProto::default()
    };
    ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: 17,
        }],
        producer_name: "perpdesk".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        graph: Some(graph),
        ..ModelProto::default()
    }
}

pub(crate) fn float_tensor(name: &str, dims: &[i64], values: &[f32]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: DataType::Float as i32,
        // ONNX stores raw tensor data little-endian whatever the host.
        raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..TensorProto::default()
    }
}

/// `float[N, width]` with a symbolic batch, so one plan or session serves batch 1 and 32.
pub(crate) fn float_info(name: &str, width: usize) -> ValueInfoProto {
    let dims = vec![
        Dimension {
            value: Some(dimension::Value::DimParam("N".into())),
            ..Dimension::default()
        },
        Dimension {
            value: Some(dimension::Value::DimValue(width as i64)),
            ..Dimension::default()
        },
    ];
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: DataType::Float as i32,
                shape: Some(TensorShapeProto { dim: dims }),
            })),
            ..TypeProto::default()
        }),
        ..ValueInfoProto::default()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use crate::ml::runtime::{Model, TractModel};

    #[test]
    fn from_onnx_reads_back_what_to_onnx_wrote_and_refuses_other_graphs() {
        let mlp = Mlp::seeded(&[5, 7, 3, 2], 11).unwrap();
        let bytes = mlp.onnx_bytes("roundtrip");
        assert_eq!(Mlp::from_onnx(&bytes).unwrap(), mlp);
        assert!(Mlp::from_onnx(b"not onnx").is_err());
        // A node we never write (a Sigmoid head) makes it someone else's graph.
        let mut model = mlp.to_onnx("extra");
        let graph = model.graph.as_mut().unwrap();
        graph.node.push(NodeProto {
            input: vec![OUTPUT.into()],
            output: vec!["p".into()],
            op_type: "Sigmoid".into(),
            ..NodeProto::default()
        });
        let err = Mlp::from_onnx(&model.encode_to_vec()).unwrap_err();
        assert!(err.to_string().contains("not a Gemm/Relu MLP"), "{err}");
    }

    #[test]
    fn forward_follows_the_layers_by_hand() {
        // 2 → 2 (ReLU) → 1.
        let mlp = Mlp::new(vec![
            Dense {
                inputs: 2,
                outputs: 2,
                weights: vec![1.0, -1.0, 0.5, 0.5],
                bias: vec![0.0, 1.0],
            },
            Dense {
                inputs: 2,
                outputs: 1,
                weights: vec![2.0, -1.0],
                bias: vec![0.25],
            },
        ])
        .unwrap();
        let mut out = [0.0; 2];
        mlp.forward(&[1.0, 3.0, 3.0, 1.0], &mut out).unwrap();
        // Row 1: hidden = relu([-2, 3]) = [0, 3] → 0·2 − 3 + 0.25. Row 2: relu([2, 3]) → 4 − 3 + 0.25.
        assert_eq!(out, [-2.75, 1.25]);
    }

    #[test]
    fn malformed_layers_are_refused() {
        let layer = |inputs, outputs, weights: usize| Dense {
            inputs,
            outputs,
            weights: vec![0.1; weights],
            bias: vec![0.0; outputs],
        };
        assert!(Mlp::new(vec![]).is_err());
        assert!(Mlp::new(vec![layer(2, 2, 3)]).is_err());
        assert!(Mlp::new(vec![layer(2, 3, 6), layer(2, 1, 2)]).is_err());
        let mut nan = layer(1, 1, 1);
        nan.bias[0] = f32::NAN;
        assert!(Mlp::new(vec![nan]).is_err());
        let mlp = Mlp::seeded(&[3, 4, 2], 1).unwrap();
        assert_eq!((mlp.inputs(), mlp.outputs(), mlp.layers().len()), (3, 2, 2));
        assert!(matches!(
            mlp.forward(&[0.0; 4], &mut [0.0; 2]),
            Err(MlError::Shape(_))
        ));
    }

    #[test]
    fn the_exported_file_gives_the_forward_pass_in_tract() {
        let mlp = Mlp::seeded(&[32, 64, 64, 3], 7).unwrap();
        let tract = TractModel::from_bytes(&mlp.onnx_bytes("test"), 32, 0, 3).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(8);
        let rows: Vec<f32> = (0..32 * 32).map(|_| rng.random_range(-2.0..2.0)).collect();
        let (mut a, mut b) = (vec![0.0; 96], vec![0.0; 96]);
        mlp.forward(&rows, &mut a).unwrap();
        tract.predict(&rows, &mut b).unwrap();
        let worst = a
            .iter()
            .zip(&b)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0_f32, f32::max);
        assert!(worst <= 1e-5, "max |native − tract| = {worst}");
    }
}
