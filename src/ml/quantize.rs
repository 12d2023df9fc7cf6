//! INT8 variants of the neural models ([`Mlp`]), checked against FP32 and used only where they pay.
//!
//! Why this module exists: `ENABLE_QUANTIZATION` asks for the INT8 model, but INT8 is only worth running if
//! it is faster on this machine and this backend *and* gives the same answers. At the neural models' size
//! (tens of inputs, 64-wide layers) it often is not: DEPENDENCIES.md measured INT8 slower than FP32 in tract.
//! So nothing here assumes INT8 wins: [`select`] builds the INT8 variants of an [`Mlp`], loads them in the
//! backend the model will run in, compares their outputs with FP32 on a representative set, times both at
//! batch 1 and 32 (interleaved, medians), and [`decide`] (a pure function of those numbers) keeps INT8 only
//! when every tolerance holds and it is faster at both batch sizes. Otherwise FP32 runs, with one log line
//! saying why; a variant that fails to build or load is simply not chosen.
//!
//! Two ONNX encodings ([`Scheme`]), both plain ONNX operators (opset 17), which tract-onnx 0.23 and ONNX
//! Runtime 1.32 both run (the contrib `QGemm`/`QLinearMatMul` form is ONNX Runtime-only, so not written):
//!
//! * **weight-only** ([`Scheme::WeightOnly`]): each layer's weights are `int8` initialisers, symmetric
//!   (zero point 0), one scale per output channel (or per tensor), through `DequantizeLinear(axis = 0)` into
//!   the same `Gemm` (`transB = 1`); activations and biases stay `f32`. The file is 4× smaller; the
//!   arithmetic is FP32 on dequantised weights (both backends fold the constant `DequantizeLinear`).
//! * **static QDQ** ([`Scheme::StaticQdq`]): additionally each layer's input goes through
//!   `QuantizeLinear` → `DequantizeLinear` (`uint8`, asymmetric, one scale and zero point per tensor,
//!   calibrated on the representative set by min/max or a percentile, the range always holding 0 so a `ReLU`
//!   output has zero point 0), and the bias is an `int32` initialiser with scale `s_input · s_weight[o]`
//!   through `DequantizeLinear`. That is the layout ONNX Runtime's QDQ selectors look for to fuse into
//!   integer `QGemm` kernels (all `Gemm` inputs from `DequantizeLinear`, bias `int32`; which kernels its
//!   session finally picked is not inspected here, only timed); tract runs the same graph in its own way.
//!   The last layer's output stays `f32`.
//!
//! Activations are per tensor (what `QGemm` takes for its `A` input); weights per channel by default
//! ([`Granularity`]). [`QuantizedMlp::forward`] is the native reference of the quantised arithmetic (round
//! half to even, saturation, `x / scale` as the ONNX spec writes it); the tests hold both backends to it.
//!
//! `ml.quantized_model_path` is not used: it names one file, and there are four neural models whose INT8
//! variants are a deterministic function of their FP32 file and representative rows, rebuilt and re-measured
//! at each load (a stored INT8 file measured on another machine would skip the measurement that decides).
//! [`QuantizedMlp::onnx_bytes`] gives the file for anyone who wants to write it.

use std::{
    fmt,
    sync::Arc,
    time::{Duration, Instant},
};

use prost::Message as _;
use tract_onnx::pb::{
    AttributeProto, ModelProto, NodeProto, TensorProto, attribute_proto::AttributeType,
    tensor_proto::DataType,
};

use super::{
    MlError,
    mlp::{INPUT, Mlp, float_tensor, gemm_relu, model_proto},
    onnxruntime::OnnxRuntime,
    runtime::{Backend, Model, TractModel},
};

/// What can go wrong building or selecting an INT8 variant. All are recoverable: the model runs in FP32.
#[derive(Debug, thiserror::Error)]
pub enum QuantError {
    /// The representative rows are missing, not whole rows, or not finite.
    #[error("representative set: {0}")]
    Representative(String),
    /// The FP32 model itself could not be loaded or run (nothing to fall back to).
    #[error(transparent)]
    Model(#[from] MlError),
}

/// How an INT8 variant is encoded (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scheme {
    /// `int8` weights through `DequantizeLinear`; `f32` activations and biases.
    WeightOnly,
    /// `int8` weights, `uint8` activations through `QuantizeLinear`/`DequantizeLinear`, `int32` biases.
    StaticQdq,
}

impl Scheme {
    pub const ALL: [Self; 2] = [Self::WeightOnly, Self::StaticQdq];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::WeightOnly => "weight_only",
            Self::StaticQdq => "static_qdq",
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The precision a model runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    Fp32,
    Int8(Scheme),
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Fp32 => f.write_str("FP32"),
            Self::Int8(scheme) => write!(f, "INT8 {scheme}"),
        }
    }
}

/// One weight scale per output channel, or one per layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Granularity {
    #[default]
    PerChannel,
    PerTensor,
}

/// How activation ranges are taken from the representative set.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Calibration {
    /// The smallest and largest value seen.
    #[default]
    MinMax,
    /// The `p` and `100 − p` percentiles (`p` in `50..=100`, e.g. 99.99): clips rare outliers so the
    /// common values get finer steps.
    Percentile(f32),
}

/// Scale and zero point of a `uint8` activation tensor: `x ≈ (q − zero_point) · scale`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct ActivationQuant {
    pub scale: f32,
    pub zero_point: u8,
}

impl ActivationQuant {
    /// The parameters for values in `[lo, hi]`; the range is widened to hold 0 (so 0, and a `ReLU`'s
    /// output floor, is exact), and a range of width 0 gets scale 1.
    pub fn from_range(lo: f32, hi: f32) -> Self {
        let (lo, hi) = (lo.min(0.0), hi.max(0.0));
        let width = hi - lo;
        if width <= f32::MIN_POSITIVE || !width.is_finite() {
            return Self {
                scale: 1.0,
                zero_point: 0,
            };
        }
        let scale = width / 255.0;
        let zero_point = (-lo / scale).round_ties_even().clamp(0.0, 255.0) as u8;
        Self { scale, zero_point }
    }

    /// `QuantizeLinear` then `DequantizeLinear`, as the ONNX spec defines them.
    pub fn fake_quantize(self, x: f32) -> f32 {
        let q = ((x / self.scale).round_ties_even() + f32::from(self.zero_point)).clamp(0.0, 255.0);
        (q - f32::from(self.zero_point)) * self.scale
    }
}

/// A layer with `int8` weights.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantizedDense {
    pub inputs: usize,
    pub outputs: usize,
    /// `[outputs][inputs]`, symmetric: `w ≈ q · scale[o]`.
    pub weights: Vec<i8>,
    /// One per output channel, or a single one ([`Granularity::PerTensor`]).
    pub weight_scales: Vec<f32>,
    /// The FP32 bias (weight-only).
    pub bias: Vec<f32>,
    /// Static QDQ: the input's parameters, the `int32` bias and its per-channel scale `s_in · s_w[o]`.
    pub activation: Option<ActivationQuant>,
    pub bias_q: Vec<i32>,
    pub bias_scales: Vec<f32>,
}

impl QuantizedDense {
    fn weight_scale(&self, output: usize) -> f32 {
        if self.weight_scales.len() == 1 {
            self.weight_scales[0]
        } else {
            self.weight_scales[output]
        }
    }
}

/// An [`Mlp`] with `int8` weights (and, for static QDQ, calibrated activations).
#[derive(Debug, Clone, PartialEq)]
pub struct QuantizedMlp {
    pub scheme: Scheme,
    pub layers: Vec<QuantizedDense>,
}

/// Symmetric `int8` weights of one layer and their scales.
fn quantize_weights(weights: &[f32], inputs: usize, granularity: Granularity) -> (Vec<i8>, Vec<f32>) {
    let scale_of = |values: &[f32]| {
        let max = values.iter().fold(0.0_f32, |m, w| m.max(w.abs()));
        // An all-zero channel: any scale gives zeros; 1 keeps it finite.
        if max > 0.0 { max / 127.0 } else { 1.0 }
    };
    let scales: Vec<f32> = match granularity {
        Granularity::PerTensor => vec![scale_of(weights)],
        Granularity::PerChannel => weights.chunks_exact(inputs).map(scale_of).collect(),
    };
    let q = weights
        .chunks_exact(inputs)
        .enumerate()
        .flat_map(|(o, row)| {
            let scale = if scales.len() == 1 { scales[0] } else { scales[o] };
            row.iter()
                .map(move |w| (w / scale).round_ties_even().clamp(-127.0, 127.0) as i8)
        })
        .collect();
    (q, scales)
}

/// Checks the representative rows against `mlp`; returns the row count.
fn check_rows(mlp: &Mlp, rows: &[f32]) -> Result<usize, QuantError> {
    let inputs = mlp.inputs();
    if rows.is_empty() || !rows.len().is_multiple_of(inputs) {
        return Err(QuantError::Representative(format!(
            "{} values are not whole rows of {inputs} (at least one row is needed)",
            rows.len()
        )));
    }
    if rows.iter().any(|v| !v.is_finite()) {
        return Err(QuantError::Representative("a value is not finite".into()));
    }
    Ok(rows.len() / inputs)
}

/// The `[lo, hi]` of `values` by `calibration`; `values` is reordered.
fn range_of(values: &mut [f32], calibration: Calibration) -> (f32, f32) {
    match calibration {
        Calibration::MinMax => values
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            }),
        Calibration::Percentile(p) => {
            values.sort_unstable_by(f32::total_cmp);
            let last = values.len() - 1;
            let at = |fraction: f32| values[((fraction * last as f32).round() as usize).min(last)];
            let p = (p / 100.0).clamp(0.5, 1.0);
            (at(1.0 - p), at(p))
        }
    }
}

/// Each layer's input values over the representative rows (the `f32` forward pass; layer `i > 0` sees
/// the `ReLU` of layer `i − 1`), one `Vec` per layer.
fn layer_inputs(mlp: &Mlp, rows: &[f32]) -> Vec<Vec<f32>> {
    let mut seen: Vec<Vec<f32>> = vec![rows.to_vec()];
    let last = mlp.layers().len() - 1;
    for (i, layer) in mlp.layers().iter().enumerate().take(last) {
        let input = &seen[i];
        let mut out = Vec::with_capacity(input.len() / layer.inputs * layer.outputs);
        for row in input.chunks_exact(layer.inputs) {
            for o in 0..layer.outputs {
                let w = &layer.weights[o * layer.inputs..(o + 1) * layer.inputs];
                let sum = w.iter().zip(row).fold(0.0_f32, |s, (w, x)| s + w * x) + layer.bias[o];
                out.push(sum.max(0.0));
            }
        }
        seen.push(out);
    }
    seen
}

impl QuantizedMlp {
    /// The weight-only variant (no calibration needed).
    pub fn weight_only(mlp: &Mlp, granularity: Granularity) -> Self {
        let layers = mlp
            .layers()
            .iter()
            .map(|layer| {
                let (weights, weight_scales) = quantize_weights(&layer.weights, layer.inputs, granularity);
                QuantizedDense {
                    inputs: layer.inputs,
                    outputs: layer.outputs,
                    weights,
                    weight_scales,
                    bias: layer.bias.clone(),
                    activation: None,
                    bias_q: Vec::new(),
                    bias_scales: Vec::new(),
                }
            })
            .collect();
        Self {
            scheme: Scheme::WeightOnly,
            layers,
        }
    }

    /// The static QDQ variant, its activation ranges taken from `representative` (row-major rows of
    /// `mlp.inputs()` values).
    pub fn static_qdq(
        mlp: &Mlp,
        representative: &[f32],
        calibration: Calibration,
        granularity: Granularity,
    ) -> Result<Self, QuantError> {
        check_rows(mlp, representative)?;
        let mut seen = layer_inputs(mlp, representative);
        let layers = mlp
            .layers()
            .iter()
            .zip(&mut seen)
            .map(|(layer, values)| {
                let (lo, hi) = range_of(values, calibration);
                let activation = ActivationQuant::from_range(lo, hi);
                let (weights, weight_scales) = quantize_weights(&layer.weights, layer.inputs, granularity);
                let bias_scales: Vec<f32> = (0..layer.outputs)
                    .map(|o| {
                        let ws = if weight_scales.len() == 1 {
                            weight_scales[0]
                        } else {
                            weight_scales[o]
                        };
                        activation.scale * ws
                    })
                    .collect();
                let bias_q = layer
                    .bias
                    .iter()
                    .zip(&bias_scales)
                    .map(|(b, s)| {
                        (f64::from(*b) / f64::from(*s))
                            .round_ties_even()
                            .clamp(f64::from(i32::MIN), f64::from(i32::MAX)) as i32
                    })
                    .collect();
                QuantizedDense {
                    inputs: layer.inputs,
                    outputs: layer.outputs,
                    weights,
                    weight_scales,
                    bias: layer.bias.clone(),
                    activation: Some(activation),
                    bias_q,
                    bias_scales,
                }
            })
            .collect();
        Ok(Self {
            scheme: Scheme::StaticQdq,
            layers,
        })
    }

    pub fn inputs(&self) -> usize {
        self.layers[0].inputs
    }

    pub fn outputs(&self) -> usize {
        self.layers[self.layers.len() - 1].outputs
    }

    /// The native reference of the quantised arithmetic: dequantised weights, fake-quantised inputs and
    /// `int32` biases (static QDQ), `f32` sums in input order, `ReLU` between layers.
    pub fn forward(&self, input: &[f32], out: &mut [f32]) -> Result<(), MlError> {
        let (inputs, outputs) = (self.inputs(), self.outputs());
        let rows = input.len() / inputs;
        if input.len() != rows * inputs || out.len() != rows * outputs {
            return Err(MlError::Shape(format!(
                "{} inputs and {} output slots for rows of {inputs}→{outputs}",
                input.len(),
                out.len()
            )));
        }
        let widest = self
            .layers
            .iter()
            .map(|l| l.inputs.max(l.outputs))
            .max()
            .unwrap_or(0);
        let (mut a, mut b) = (vec![0.0_f32; widest], vec![0.0_f32; widest]);
        let last = self.layers.len() - 1;
        for (row, dest) in input.chunks_exact(inputs).zip(out.chunks_exact_mut(outputs)) {
            a[..inputs].copy_from_slice(row);
            for (i, layer) in self.layers.iter().enumerate() {
                if let Some(quant) = layer.activation {
                    for x in &mut a[..layer.inputs] {
                        *x = quant.fake_quantize(*x);
                    }
                }
                for (o, slot) in b[..layer.outputs].iter_mut().enumerate() {
                    let scale = layer.weight_scale(o);
                    let w = &layer.weights[o * layer.inputs..(o + 1) * layer.inputs];
                    let bias = if layer.activation.is_some() {
                        layer.bias_q[o] as f32 * layer.bias_scales[o]
                    } else {
                        layer.bias[o]
                    };
                    let sum = w
                        .iter()
                        .zip(&a[..layer.inputs])
                        .fold(0.0_f32, |s, (w, x)| s + f32::from(*w) * scale * x)
                        + bias;
                    *slot = if i < last { sum.max(0.0) } else { sum };
                }
                std::mem::swap(&mut a, &mut b);
            }
            dest.copy_from_slice(&a[..outputs]);
        }
        Ok(())
    }

    /// The ONNX model: the same input and output as [`Mlp::to_onnx`] (`float[N, inputs]` →
    /// `float[N, outputs]`), opset 17, IR 8, with the quantisation nodes of [`Self::scheme`].
    pub fn to_onnx(&self, graph_name: &str) -> ModelProto {
        let mut nodes = Vec::new();
        let mut initializers = Vec::new();
        let mut current = INPUT.to_owned();
        let last = self.layers.len() - 1;
        for (i, layer) in self.layers.iter().enumerate() {
            if let Some(quant) = layer.activation {
                let (scale, zero, q, dq) = (
                    format!("x{i}_scale"),
                    format!("x{i}_zero_point"),
                    format!("x{i}_q"),
                    format!("x{i}_dq"),
                );
                initializers.push(float_tensor(&scale, &[], &[quant.scale]));
                initializers.push(raw_tensor(&zero, &[], DataType::Uint8, vec![quant.zero_point]));
                nodes.push(node(
                    "QuantizeLinear",
                    &q,
                    vec![current, scale.clone(), zero.clone()],
                    None,
                ));
                nodes.push(node("DequantizeLinear", &dq, vec![q, scale, zero], None));
                current = dq;
            }
            let (wq, ws, wz, w) = (
                format!("w{i}_q"),
                format!("w{i}_scale"),
                format!("w{i}_zero_point"),
                format!("w{i}"),
            );
            let per_channel = layer.weight_scales.len() > 1;
            let scale_dims: &[i64] = if per_channel { &[layer.outputs as i64] } else { &[] };
            initializers.push(raw_tensor(
                &wq,
                &[layer.outputs as i64, layer.inputs as i64],
                DataType::Int8,
                layer.weights.iter().map(|q| q.to_le_bytes()[0]).collect(),
            ));
            initializers.push(float_tensor(&ws, scale_dims, &layer.weight_scales));
            initializers.push(raw_tensor(
                &wz,
                scale_dims,
                DataType::Int8,
                vec![0; layer.weight_scales.len()],
            ));
            nodes.push(node(
                "DequantizeLinear",
                &w,
                vec![wq, ws, wz],
                per_channel.then_some(0),
            ));
            let b = format!("b{i}");
            if layer.activation.is_some() {
                let (bq, bs) = (format!("b{i}_q"), format!("b{i}_scale"));
                initializers.push(raw_tensor(
                    &bq,
                    &[layer.outputs as i64],
                    DataType::Int32,
                    layer.bias_q.iter().flat_map(|v| v.to_le_bytes()).collect(),
                ));
                initializers.push(float_tensor(&bs, &[layer.outputs as i64], &layer.bias_scales));
                // The bias's zero point is 0 by definition; ONNX Runtime's QDQ `Gemm` fusion reads the
                // `int32` values as they are.
                nodes.push(node("DequantizeLinear", &b, vec![bq, bs], Some(0)));
            } else {
                initializers.push(float_tensor(&b, &[layer.outputs as i64], &layer.bias));
            }
            current = gemm_relu(&mut nodes, i, i == last, current, w, b);
        }
        model_proto(graph_name, nodes, initializers, self.inputs(), self.outputs())
    }

    /// The protobuf bytes of [`Self::to_onnx`].
    pub fn onnx_bytes(&self, graph_name: &str) -> Vec<u8> {
        self.to_onnx(graph_name).encode_to_vec()
    }
}

/// A node named after its single output, with an optional `axis` attribute.
fn node(op: &str, output: &str, input: Vec<String>, axis: Option<i64>) -> NodeProto {
    NodeProto {
        input,
        output: vec![output.to_owned()],
        name: output.to_owned(),
        op_type: op.into(),
        attribute: axis
            .map(|axis| AttributeProto {
                name: "axis".into(),
                r#type: AttributeType::Int as i32,
                i: axis,
                ..AttributeProto::default()
            })
            .into_iter()
            .collect(),
        ..NodeProto::default()
    }
}

/// An initializer from little-endian bytes.
fn raw_tensor(name: &str, dims: &[i64], data_type: DataType, raw_data: Vec<u8>) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: data_type as i32,
        raw_data,
        ..TensorProto::default()
    }
}

/// How a model's outputs are read, for the decision agreement.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Head {
    /// Values only (an autoencoder's reconstruction): no decision to agree on.
    Values,
    /// One output per row, the decision is `output ≥ threshold` (a probability or a logit head).
    Threshold(f32),
    /// The decision is the index of the largest output (a Q-network's action, a class).
    ArgMax,
}

impl Head {
    fn decision(self, row: &[f32]) -> Option<usize> {
        match self {
            Self::Values => None,
            Self::Threshold(t) => Some(usize::from(row[0] >= t)),
            Self::ArgMax => row
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map(|(i, _)| i),
        }
    }
}

/// INT8 against FP32 on the representative rows.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Validation {
    pub rows: usize,
    pub max_abs_diff: f32,
    pub mean_abs_diff: f32,
    /// The largest |FP32 output| on the set: the differences are judged relative to it.
    pub output_scale: f32,
    /// Share of rows whose decision ([`Head`]) is the same; `None` for [`Head::Values`].
    pub agreement: Option<f64>,
}

impl Validation {
    /// Compares `int8` with `fp32` (row-major, `outputs` values per row).
    pub fn compare(fp32: &[f32], int8: &[f32], outputs: usize, head: Head) -> Self {
        let rows = fp32.len() / outputs.max(1);
        let mut max = 0.0_f32;
        let mut sum = 0.0_f64;
        for (a, b) in fp32.iter().zip(int8) {
            let d = (a - b).abs();
            max = max.max(d);
            sum += f64::from(d);
        }
        let output_scale = fp32.iter().fold(0.0_f32, |m, v| m.max(v.abs()));
        let agreement = (head != Head::Values && rows > 0).then(|| {
            let same = fp32
                .chunks_exact(outputs)
                .zip(int8.chunks_exact(outputs))
                .filter(|(a, b)| head.decision(a) == head.decision(b))
                .count();
            same as f64 / rows as f64
        });
        Self {
            rows,
            max_abs_diff: max,
            mean_abs_diff: (sum / fp32.len().max(1) as f64) as f32,
            output_scale,
            agreement,
        }
    }

    /// `max_abs_diff / output_scale` (the scale floored at 1e-6).
    pub fn max_relative(&self) -> f32 {
        self.max_abs_diff / self.output_scale.max(1e-6)
    }

    /// `mean_abs_diff / output_scale`.
    pub fn mean_relative(&self) -> f32 {
        self.mean_abs_diff / self.output_scale.max(1e-6)
    }
}

/// What "equal accuracy" and "faster" mean for [`decide`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Tolerance {
    /// Largest allowed `max |INT8 − FP32| / max |FP32|` on the representative set.
    pub max_relative: f32,
    /// Largest allowed `mean |INT8 − FP32| / max |FP32|`.
    pub mean_relative: f32,
    /// Smallest allowed share of rows with the same decision (classifier and Q-network heads).
    pub min_agreement: f64,
    /// INT8 must take at most `1 − min_speedup` of FP32's time at batch 1 and at batch 32, so that
    /// measurement noise alone never switches precision.
    pub min_speedup: f64,
}

impl Default for Tolerance {
    /// 5 % of the output scale at worst, 1 % on average, 99 % of decisions the same, 10 % faster.
    fn default() -> Self {
        Self {
            max_relative: 0.05,
            mean_relative: 0.01,
            min_agreement: 0.99,
            min_speedup: 0.10,
        }
    }
}

/// Median time per call at batch 1 and batch 32, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Latency {
    pub batch1_us: f64,
    pub batch32_us: f64,
}

/// What was measured of one INT8 variant: its latency and validation, or why it could not be measured.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Candidate {
    pub scheme: Scheme,
    pub measured: Result<(Latency, Validation), String>,
}

/// The choice and why.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Decision {
    pub precision: Precision,
    pub reason: String,
}

/// The decision from the numbers alone: the INT8 candidate within every tolerance and faster than FP32
/// by `min_speedup` at both batch sizes (the one with the largest smaller speed-up if several), else FP32.
/// The reason names the chosen variant's gain, or for FP32 what ruled out each candidate.
pub fn decide(fp32: Latency, candidates: &[Candidate], tolerance: &Tolerance) -> Decision {
    let mut best: Option<(f64, Scheme, Latency, Validation)> = None;
    let mut refusals = Vec::new();
    for candidate in candidates {
        let (latency, validation) = match &candidate.measured {
            Ok(measured) => *measured,
            Err(error) => {
                refusals.push(format!("{} did not run ({error})", candidate.scheme));
                continue;
            }
        };
        // A NaN difference exceeds every limit.
        let exceeds = |value: f32, limit: f32| value.is_nan() || value > limit;
        let accuracy = if exceeds(validation.max_relative(), tolerance.max_relative) {
            Some(format!(
                "max difference {:.2} % of the output scale > {:.2} %",
                validation.max_relative() * 100.0,
                tolerance.max_relative * 100.0
            ))
        } else if exceeds(validation.mean_relative(), tolerance.mean_relative) {
            Some(format!(
                "mean difference {:.2} % of the output scale > {:.2} %",
                validation.mean_relative() * 100.0,
                tolerance.mean_relative * 100.0
            ))
        } else {
            validation
                .agreement
                .filter(|a| *a < tolerance.min_agreement)
                .map(|a| {
                    format!(
                        "decisions agree on {:.1} % of rows < {:.1} %",
                        a * 100.0,
                        tolerance.min_agreement * 100.0
                    )
                })
        };
        if let Some(why) = accuracy {
            refusals.push(format!("{}: {why}", candidate.scheme));
            continue;
        }
        let limit = 1.0 - tolerance.min_speedup;
        let faster = |int8: f64, fp32: f64| int8.is_finite() && fp32.is_finite() && int8 <= fp32 * limit;
        if !(faster(latency.batch1_us, fp32.batch1_us) && faster(latency.batch32_us, fp32.batch32_us)) {
            refusals.push(format!(
                "{} not faster ({:.1} vs {:.1} µs at batch 1, {:.1} vs {:.1} µs at batch 32)",
                candidate.scheme, latency.batch1_us, fp32.batch1_us, latency.batch32_us, fp32.batch32_us
            ));
            continue;
        }
        let speedup = (fp32.batch1_us / latency.batch1_us).min(fp32.batch32_us / latency.batch32_us);
        if best.as_ref().is_none_or(|(s, ..)| speedup > *s) {
            best = Some((speedup, candidate.scheme, latency, validation));
        }
    }
    match best {
        Some((_, scheme, latency, validation)) => Decision {
            precision: Precision::Int8(scheme),
            reason: format!(
                "INT8 {scheme}: {:.2}× faster at batch 1, {:.2}× at batch 32, max difference {:.2} % of the output scale{}",
                fp32.batch1_us / latency.batch1_us,
                fp32.batch32_us / latency.batch32_us,
                validation.max_relative() * 100.0,
                validation
                    .agreement
                    .map(|a| format!(", decisions agree on {:.1} %", a * 100.0))
                    .unwrap_or_default()
            ),
        },
        None if refusals.is_empty() => Decision {
            precision: Precision::Fp32,
            reason: "FP32: no INT8 variant was built".into(),
        },
        None => Decision {
            precision: Precision::Fp32,
            reason: format!("FP32: {}", refusals.join("; ")),
        },
    }
}

/// How [`select`] quantises and measures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SelectOptions {
    pub head: Head,
    pub tolerance: Tolerance,
    pub calibration: Calibration,
    pub granularity: Granularity,
    /// Timed calls per model at batch 1 and at batch 32 (interleaved; the medians count).
    pub rounds_batch1: usize,
    pub rounds_batch32: usize,
    /// At most this many representative rows are compared (the first ones).
    pub max_validation_rows: usize,
}

impl Default for SelectOptions {
    fn default() -> Self {
        Self {
            head: Head::Values,
            tolerance: Tolerance::default(),
            calibration: Calibration::default(),
            granularity: Granularity::default(),
            rounds_batch1: 201,
            rounds_batch32: 41,
            max_validation_rows: 1024,
        }
    }
}

/// What the models panel shows about a model's precision.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct QuantReport {
    pub model: String,
    pub backend: Backend,
    pub enabled: bool,
    pub precision: Precision,
    pub reason: String,
    /// FP32's latency on `backend`; `None` when quantisation is off (nothing was measured).
    pub fp32: Option<Latency>,
    pub candidates: Vec<Candidate>,
}

/// The model to run and the report of how it was chosen.
#[derive(Debug, Clone)]
pub struct Selected {
    pub model: Arc<dyn Model>,
    pub report: QuantReport,
}

/// ONNX bytes in `backend` (`ort` when given, else tract), with no fallback between backends: an INT8
/// variant is measured where the FP32 model runs, or not at all.
fn load(
    bytes: &[u8],
    inputs: usize,
    outputs: usize,
    ort: Option<&OnnxRuntime>,
) -> Result<Arc<dyn Model>, MlError> {
    Ok(match ort {
        Some(runtime) => Arc::new(runtime.model(bytes, inputs, 0, outputs)?),
        None => Arc::new(TractModel::from_bytes(bytes, inputs, 0, outputs)?),
    })
}

/// Median per-call latency of each model at batch 1 and 32, the models called in turn each round (so a
/// change of machine load hits them alike), or the error a model gave (it is not called again). `rows`
/// holds at least one row; batch 32 tiles it if short.
fn time_models(models: &[&dyn Model], rows: &[f32], options: &SelectOptions) -> Vec<Result<Latency, String>> {
    let Some(first) = models.first() else {
        return Vec::new();
    };
    let (inputs, outputs) = (first.inputs(), first.outputs());
    let count = rows.len() / inputs;
    let batch32: Vec<f32> = (0..32)
        .flat_map(|r| {
            rows[(r % count) * inputs..(r % count + 1) * inputs]
                .iter()
                .copied()
        })
        .collect();
    let mut out = vec![0.0_f32; 32 * outputs];
    let median = |samples: &mut Vec<Duration>| {
        samples.sort_unstable();
        samples
            .get(samples.len() / 2)
            .map_or(f64::NAN, |d| d.as_secs_f64() * 1e6)
    };
    let mut failed: Vec<Option<String>> = vec![None; models.len()];
    let mut one: Vec<Vec<Duration>> = vec![Vec::with_capacity(options.rounds_batch1); models.len()];
    let mut many: Vec<Vec<Duration>> = vec![Vec::with_capacity(options.rounds_batch32); models.len()];
    // Warm-up: plans, sessions and caches settle before anything counts.
    for (model, failure) in models.iter().zip(&mut failed) {
        for _ in 0..3 {
            if let Err(error) = model
                .predict(&batch32[..inputs], &mut out[..outputs])
                .and_then(|()| model.predict(&batch32, &mut out))
            {
                *failure = Some(error.to_string());
                break;
            }
        }
    }
    let mut timed = |input: &[f32], samples: &mut [Vec<Duration>], failed: &mut [Option<String>]| {
        let slots = &mut out[..input.len() / inputs * outputs];
        for ((model, samples), failure) in models.iter().zip(samples.iter_mut()).zip(failed.iter_mut()) {
            if failure.is_some() {
                continue;
            }
            let start = Instant::now();
            match model.predict(input, slots) {
                Ok(()) => samples.push(start.elapsed()),
                Err(error) => *failure = Some(error.to_string()),
            }
        }
    };
    for round in 0..options.rounds_batch1.max(1) {
        let row = &rows[(round % count) * inputs..(round % count + 1) * inputs];
        timed(row, &mut one, &mut failed);
    }
    for _ in 0..options.rounds_batch32.max(1) {
        timed(&batch32, &mut many, &mut failed);
    }
    one.iter_mut()
        .zip(&mut many)
        .zip(failed)
        .map(|((a, b), failure)| match failure {
            Some(error) => Err(error),
            None => Ok(Latency {
                batch1_us: median(a),
                batch32_us: median(b),
            }),
        })
        .collect()
}

/// The INT8 variants [`select`] tries, as ONNX bytes (or why one could not be built).
pub fn variants(
    mlp: &Mlp,
    representative: &[f32],
    options: &SelectOptions,
) -> Vec<(Scheme, Result<Vec<u8>, String>)> {
    Scheme::ALL
        .iter()
        .map(|&scheme| {
            let built = match scheme {
                Scheme::WeightOnly => Ok(QuantizedMlp::weight_only(mlp, options.granularity)),
                Scheme::StaticQdq => {
                    QuantizedMlp::static_qdq(mlp, representative, options.calibration, options.granularity)
                }
            };
            (
                scheme,
                built
                    .map(|q| q.onnx_bytes(scheme.as_str()))
                    .map_err(|e| e.to_string()),
            )
        })
        .collect()
}

/// Measures FP32 and each INT8 variant in the backend (`ort` when given, else tract), decides, logs one
/// line, and returns the model to run with its report. The variants come as ONNX bytes so that a file
/// that fails to load is just a refused candidate; only an FP32 model that does not load is an error.
/// `(inputs, outputs)` is the width of a row in and out.
pub fn select_from(
    name: &str,
    fp32_bytes: &[u8],
    (inputs, outputs): (usize, usize),
    variants: Vec<(Scheme, Result<Vec<u8>, String>)>,
    representative: &[f32],
    ort: Option<&OnnxRuntime>,
    options: &SelectOptions,
) -> Result<Selected, QuantError> {
    if inputs == 0 || representative.is_empty() || !representative.len().is_multiple_of(inputs) {
        return Err(QuantError::Representative(format!(
            "{} values are not whole rows of {inputs} (at least one row is needed)",
            representative.len()
        )));
    }
    let fp32 = load(fp32_bytes, inputs, outputs, ort)?;
    let backend = fp32.backend();
    let compared = (representative.len() / inputs).min(options.max_validation_rows.max(1));
    let set = &representative[..compared * inputs];
    let mut reference = vec![0.0_f32; compared * outputs];
    fp32.predict(set, &mut reference)?;
    let mut loaded: Vec<(Scheme, Arc<dyn Model>, Validation)> = Vec::new();
    let mut candidates = Vec::new();
    for (scheme, bytes) in variants {
        let model_and_validation = bytes.and_then(|bytes| {
            let model = load(&bytes, inputs, outputs, ort).map_err(|e| e.to_string())?;
            let mut out = vec![0.0_f32; compared * outputs];
            model.predict(set, &mut out).map_err(|e| e.to_string())?;
            Ok((
                model,
                Validation::compare(&reference, &out, outputs, options.head),
            ))
        });
        match model_and_validation {
            Ok((model, validation)) => loaded.push((scheme, model, validation)),
            Err(error) => candidates.push(Candidate {
                scheme,
                measured: Err(error),
            }),
        }
    }
    let mut models: Vec<&dyn Model> = vec![fp32.as_ref()];
    models.extend(loaded.iter().map(|(_, m, _)| m.as_ref()));
    let mut latencies = time_models(&models, representative, options).into_iter();
    let fp32_latency = match latencies.next() {
        Some(Ok(latency)) => latency,
        Some(Err(error)) => {
            return Err(QuantError::Model(MlError::Shape(format!(
                "FP32 model failed while timed: {error}"
            ))));
        }
        None => return Err(QuantError::Model(MlError::Shape("no FP32 model to time".into()))),
    };
    for ((scheme, _, validation), latency) in loaded.iter().zip(latencies) {
        candidates.push(Candidate {
            scheme: *scheme,
            measured: latency.map(|latency| (latency, *validation)),
        });
    }
    candidates.sort_by_key(|c| Scheme::ALL.iter().position(|s| *s == c.scheme));
    let decision = decide(fp32_latency, &candidates, &options.tolerance);
    let model = match decision.precision {
        Precision::Int8(chosen) => loaded
            .iter()
            .find(|(scheme, ..)| *scheme == chosen)
            .map_or_else(|| Arc::clone(&fp32), |(_, m, _)| Arc::clone(m)),
        Precision::Fp32 => Arc::clone(&fp32),
    };
    tracing::info!(
        model = name,
        %backend,
        precision = %decision.precision,
        fp32_batch1_us = fp32_latency.batch1_us,
        fp32_batch32_us = fp32_latency.batch32_us,
        "quantisation: {}",
        decision.reason
    );
    Ok(Selected {
        model,
        report: QuantReport {
            model: name.to_owned(),
            backend,
            enabled: true,
            precision: decision.precision,
            reason: decision.reason,
            fp32: Some(fp32_latency),
            candidates,
        },
    })
}

/// [`select_from`] on `mlp`'s FP32 file and its [`variants`].
pub fn select(
    name: &str,
    mlp: &Mlp,
    representative: &[f32],
    ort: Option<&OnnxRuntime>,
    options: &SelectOptions,
) -> Result<Selected, QuantError> {
    check_rows(mlp, representative)?;
    select_from(
        name,
        &mlp.onnx_bytes(name),
        (mlp.inputs(), mlp.outputs()),
        variants(mlp, representative, options),
        representative,
        ort,
        options,
    )
}

/// The entry point for the neural models' loaders: with `enable_quantization` (`ENABLE_QUANTIZATION`) the
/// measured choice of [`select`]; without it, or when the representative rows are unusable (a warning
/// says so), the FP32 model, unmeasured. Runs in ONNX Runtime when `ort` is given, else tract. Only an FP32
/// model that does not load is an error.
pub fn load_mlp(
    name: &str,
    mlp: &Mlp,
    representative: &[f32],
    enable_quantization: bool,
    ort: Option<&OnnxRuntime>,
    options: &SelectOptions,
) -> Result<Selected, QuantError> {
    let reason = if enable_quantization {
        match select(name, mlp, representative, ort, options) {
            Ok(selected) => return Ok(selected),
            // Nothing to calibrate or compare on: FP32, unmeasured, and the log says why.
            Err(QuantError::Representative(why)) => {
                let reason = format!("FP32: no INT8 variant measured, representative set: {why}");
                tracing::warn!(model = name, "quantisation: {reason}");
                reason
            }
            Err(error) => return Err(error),
        }
    } else {
        "FP32: ENABLE_QUANTIZATION is off".to_owned()
    };
    let model = load(&mlp.onnx_bytes(name), mlp.inputs(), mlp.outputs(), ort)?;
    let backend = model.backend();
    Ok(Selected {
        model,
        report: QuantReport {
            model: name.to_owned(),
            backend,
            enabled: enable_quantization,
            precision: Precision::Fp32,
            reason,
            fp32: None,
            candidates: Vec::new(),
        },
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    fn rows(count: usize, width: usize, seed: u64) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..count * width).map(|_| rng.random_range(-2.0..2.0)).collect()
    }

    fn outputs_of(
        f: impl Fn(&[f32], &mut [f32]) -> Result<(), MlError>,
        input: &[f32],
        n: usize,
    ) -> Vec<f32> {
        let mut out = vec![0.0; n];
        f(input, &mut out).unwrap();
        out
    }

    fn worst(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max)
    }

    #[test]
    fn activation_parameters_hold_zero_exactly_and_round_like_onnx() {
        // A ReLU output: the range starts at 0, so the zero point is 0 and 0 stays 0.
        let relu = ActivationQuant::from_range(0.0, 5.1);
        assert_eq!(relu.zero_point, 0);
        assert!((relu.scale - 0.02).abs() < 1e-7);
        assert_eq!(relu.fake_quantize(0.0), 0.0);
        // Saturation at both ends.
        assert_eq!(relu.fake_quantize(-3.0), 0.0);
        assert!((relu.fake_quantize(100.0) - 5.1).abs() < 1e-5);
        // An input range around 0: the zero point sits where 0 falls, and 0 is still exact.
        let both = ActivationQuant::from_range(-1.0, 3.0);
        assert_eq!(both.zero_point, 64);
        assert_eq!(both.fake_quantize(0.0), 0.0);
        // A range that excludes 0 is widened to hold it; an empty range gets scale 1.
        assert_eq!(ActivationQuant::from_range(2.0, 4.0).zero_point, 0);
        assert_eq!(ActivationQuant::from_range(0.0, 0.0).scale, 1.0);
        // Halves round to even, as QuantizeLinear does: 0.5 → 0, 1.5 → 2 steps.
        let unit = ActivationQuant {
            scale: 1.0,
            zero_point: 0,
        };
        assert_eq!(unit.fake_quantize(0.5), 0.0);
        assert_eq!(unit.fake_quantize(1.5), 2.0);
        assert_eq!(unit.fake_quantize(2.5), 2.0);
    }

    #[test]
    fn weights_are_symmetric_int8_per_channel_or_per_tensor() {
        let weights = [0.5, -1.0, 0.25, 0.03, -0.04, 0.0];
        let (q, scales) = quantize_weights(&weights, 3, Granularity::PerChannel);
        assert_eq!(scales, vec![1.0 / 127.0, 0.04 / 127.0]);
        assert_eq!(q, vec![64, -127, 32, 95, -127, 0]);
        let (q, scales) = quantize_weights(&weights, 3, Granularity::PerTensor);
        assert_eq!(scales, vec![1.0 / 127.0]);
        // The small channel loses its resolution with one scale for the tensor.
        assert_eq!(q, vec![64, -127, 32, 4, -5, 0]);
        // An all-zero layer stays finite.
        let (q, scales) = quantize_weights(&[0.0; 4], 2, Granularity::PerChannel);
        assert_eq!((q, scales), (vec![0; 4], vec![1.0, 1.0]));
    }

    #[test]
    fn percentile_calibration_clips_an_outlier_that_min_max_keeps() {
        let mut values: Vec<f32> = (0..10_000).map(|i| i as f32 / 10_000.0).collect();
        values.push(1_000.0);
        let (lo, hi) = range_of(&mut values.clone(), Calibration::MinMax);
        assert_eq!((lo, hi), (0.0, 1_000.0));
        let (lo, hi) = range_of(&mut values, Calibration::Percentile(99.9));
        assert!(lo < 0.01 && (0.99..1.0).contains(&hi), "{lo} {hi}");
    }

    #[test]
    fn the_native_int8_reference_stays_close_to_fp32() {
        let mlp = Mlp::seeded(&[32, 64, 16, 64, 32], 11).unwrap();
        let input = rows(256, 32, 12);
        let n = 256 * 32;
        let fp32 = outputs_of(|i, o| mlp.forward(i, o), &input, n);
        for q in [
            QuantizedMlp::weight_only(&mlp, Granularity::PerChannel),
            QuantizedMlp::static_qdq(&mlp, &input, Calibration::MinMax, Granularity::PerChannel).unwrap(),
            QuantizedMlp::static_qdq(
                &mlp,
                &input,
                Calibration::Percentile(99.99),
                Granularity::PerTensor,
            )
            .unwrap(),
        ] {
            let int8 = outputs_of(|i, o| q.forward(i, o), &input, n);
            let v = Validation::compare(&fp32, &int8, 32, Head::Values);
            // The documented bound (Tolerance::default): 5 % of the output scale at worst, 1 % on average.
            assert!(
                v.max_relative() <= 0.05 && v.mean_relative() <= 0.01,
                "{:?}: {v:?}",
                q.scheme
            );
            assert!(v.max_abs_diff > 0.0, "{:?} changed nothing", q.scheme);
        }
    }

    #[test]
    fn int8_files_reload_in_tract_and_give_the_native_reference() {
        let mlp = Mlp::seeded(&[20, 64, 64, 8], 13).unwrap();
        let input = rows(200, 20, 14);
        for q in [
            QuantizedMlp::weight_only(&mlp, Granularity::PerChannel),
            QuantizedMlp::weight_only(&mlp, Granularity::PerTensor),
            QuantizedMlp::static_qdq(&mlp, &input, Calibration::MinMax, Granularity::PerChannel).unwrap(),
            QuantizedMlp::static_qdq(&mlp, &input, Calibration::MinMax, Granularity::PerTensor).unwrap(),
        ] {
            let tract = TractModel::from_bytes(&q.onnx_bytes("t"), 20, 0, 8).unwrap();
            let native = outputs_of(|i, o| q.forward(i, o), &input, 200 * 8);
            let in_tract = outputs_of(|i, o| tract.predict(i, o), &input, 200 * 8);
            let v = Validation::compare(&native, &in_tract, 8, Head::ArgMax);
            // Summation order and a rare rounding tie resolved the other way (tract multiplies by 1/scale
            // where the spec divides) may move a hidden value by one step: 0.5 % of the scale at worst.
            assert!(v.max_relative() <= 5e-3, "{:?}: {v:?}", q.scheme);
            assert!(v.mean_relative() <= 1e-4, "{:?}: {v:?}", q.scheme);
        }
    }

    fn latency(batch1_us: f64, batch32_us: f64) -> Latency {
        Latency {
            batch1_us,
            batch32_us,
        }
    }

    fn validation(max_relative: f32, mean_relative: f32, agreement: Option<f64>) -> Validation {
        Validation {
            rows: 100,
            max_abs_diff: max_relative * 2.0,
            mean_abs_diff: mean_relative * 2.0,
            output_scale: 2.0,
            agreement,
        }
    }

    fn candidate(scheme: Scheme, l: Latency, v: Validation) -> Candidate {
        Candidate {
            scheme,
            measured: Ok((l, v)),
        }
    }

    #[test]
    fn the_decision_table() {
        let t = Tolerance::default();
        let fp32 = latency(10.0, 30.0);
        let good = validation(0.01, 0.002, Some(1.0));
        let w = Scheme::WeightOnly;
        let s = Scheme::StaticQdq;
        let int8 = |scheme| Precision::Int8(scheme);
        let cases: Vec<(&str, Vec<Candidate>, Precision, &str)> = vec![
            ("no candidate", vec![], Precision::Fp32, "no INT8 variant"),
            (
                "faster and accurate",
                vec![candidate(s, latency(5.0, 10.0), good)],
                int8(s),
                "2.00× faster at batch 1",
            ),
            (
                "slower at batch 1 (the measured case on tract)",
                vec![candidate(s, latency(250.0, 20.0), good)],
                Precision::Fp32,
                "static_qdq not faster",
            ),
            (
                "faster at batch 1 only",
                vec![candidate(s, latency(5.0, 31.0), good)],
                Precision::Fp32,
                "not faster",
            ),
            (
                "faster, but within the noise margin",
                vec![candidate(s, latency(9.5, 28.0), good)],
                Precision::Fp32,
                "not faster",
            ),
            (
                "faster, max difference too large",
                vec![candidate(s, latency(5.0, 10.0), validation(0.08, 0.002, None))],
                Precision::Fp32,
                "max difference 8.00 %",
            ),
            (
                "faster, mean difference too large",
                vec![candidate(s, latency(5.0, 10.0), validation(0.04, 0.02, None))],
                Precision::Fp32,
                "mean difference 2.00 %",
            ),
            (
                "faster, decisions disagree",
                vec![candidate(
                    s,
                    latency(5.0, 10.0),
                    validation(0.01, 0.002, Some(0.95)),
                )],
                Precision::Fp32,
                "agree on 95.0 %",
            ),
            (
                "a NaN difference is refused",
                vec![candidate(
                    s,
                    latency(5.0, 10.0),
                    validation(f32::NAN, 0.002, None),
                )],
                Precision::Fp32,
                "max difference NaN",
            ),
            (
                "a NaN latency never wins",
                vec![candidate(s, latency(f64::NAN, 10.0), good)],
                Precision::Fp32,
                "not faster",
            ),
            (
                "did not load",
                vec![Candidate {
                    scheme: s,
                    measured: Err("tract: unsupported".into()),
                }],
                Precision::Fp32,
                "static_qdq did not run (tract: unsupported)",
            ),
            (
                "two qualify: the larger worst-case speed-up wins",
                vec![
                    candidate(w, latency(4.0, 25.0), good),
                    candidate(s, latency(6.0, 15.0), good),
                ],
                int8(s),
                "INT8 static_qdq",
            ),
            (
                "one fails, the other qualifies",
                vec![
                    Candidate {
                        scheme: w,
                        measured: Err("x".into()),
                    },
                    candidate(s, latency(5.0, 10.0), good),
                ],
                int8(s),
                "INT8 static_qdq",
            ),
        ];
        for (what, candidates, precision, reason) in cases {
            let d = decide(fp32, &candidates, &t);
            assert_eq!(d.precision, precision, "{what}: {}", d.reason);
            assert!(d.reason.contains(reason), "{what}: {}", d.reason);
        }
    }

    fn quick() -> SelectOptions {
        SelectOptions {
            rounds_batch1: 5,
            rounds_batch32: 3,
            ..SelectOptions::default()
        }
    }

    #[test]
    fn an_int8_file_that_does_not_load_falls_back_to_fp32() {
        let mlp = Mlp::seeded(&[42, 64, 32, 1], 15).unwrap();
        let input = rows(64, 42, 16);
        let selected = select_from(
            "broken",
            &mlp.onnx_bytes("broken"),
            (42, 1),
            vec![
                (Scheme::WeightOnly, Ok(b"not an onnx file".to_vec())),
                (Scheme::StaticQdq, Err("calibration failed".into())),
            ],
            &input,
            None,
            &quick(),
        )
        .unwrap();
        assert_eq!(selected.report.precision, Precision::Fp32);
        assert_eq!(selected.model.backend(), Backend::Tract);
        assert!(
            selected.report.reason.contains("weight_only did not run"),
            "{}",
            selected.report.reason
        );
        assert!(
            selected.report.reason.contains("calibration failed"),
            "{}",
            selected.report.reason
        );
        assert!(selected.report.fp32.is_some());
        // The model handed back is the FP32 one: it gives the forward pass.
        let expected = outputs_of(|i, o| mlp.forward(i, o), &input, 64);
        let got = outputs_of(|i, o| selected.model.predict(i, o), &input, 64);
        assert!(worst(&expected, &got) <= 1e-5);
    }

    #[test]
    fn select_measures_both_variants_and_returns_the_model_it_names() {
        let mlp = Mlp::seeded(&[42, 64, 32, 1], 17).unwrap();
        let input = rows(128, 42, 18);
        let options = SelectOptions {
            head: Head::Threshold(0.0),
            ..quick()
        };
        let selected = select("discovery", &mlp, &input, None, &options).unwrap();
        let report = &selected.report;
        assert!(report.enabled);
        assert_eq!(report.backend, Backend::Tract);
        assert_eq!(report.candidates.len(), 2);
        for c in &report.candidates {
            let (l, v) = c.measured.as_ref().unwrap();
            assert!(l.batch1_us > 0.0 && l.batch32_us > 0.0, "{c:?}");
            assert_eq!(v.rows, 128);
            assert!(v.agreement.is_some());
        }
        // Whatever was chosen, it agrees with the numbers in the report.
        let again = decide(report.fp32.unwrap(), &report.candidates, &options.tolerance);
        assert_eq!(again.precision, report.precision);
        let n = 128;
        let got = outputs_of(|i, o| selected.model.predict(i, o), &input, n);
        let want = match report.precision {
            Precision::Fp32 => outputs_of(|i, o| mlp.forward(i, o), &input, n),
            Precision::Int8(Scheme::WeightOnly) => {
                let q = QuantizedMlp::weight_only(&mlp, options.granularity);
                outputs_of(|i, o| q.forward(i, o), &input, n)
            }
            Precision::Int8(Scheme::StaticQdq) => {
                let q =
                    QuantizedMlp::static_qdq(&mlp, &input, options.calibration, options.granularity).unwrap();
                outputs_of(|i, o| q.forward(i, o), &input, n)
            }
        };
        let scale = want.iter().fold(0.0_f32, |m, v| m.max(v.abs()));
        assert!(
            worst(&want, &got) <= 5e-3 * scale.max(1.0),
            "{:?}",
            report.precision
        );
    }

    #[test]
    fn with_quantisation_off_the_fp32_model_loads_unmeasured() {
        let mlp = Mlp::seeded(&[32, 64, 16, 64, 32], 19).unwrap();
        let input = rows(8, 32, 20);
        let selected = load_mlp("autoencoder", &mlp, &input, false, None, &quick()).unwrap();
        assert_eq!(selected.report.precision, Precision::Fp32);
        assert!(!selected.report.enabled && selected.report.fp32.is_none());
        assert!(selected.report.reason.contains("ENABLE_QUANTIZATION is off"));
        // No usable representative rows with quantisation on: FP32 all the same, and the report says why.
        let fallback = load_mlp("autoencoder", &mlp, &input[..5], true, None, &quick()).unwrap();
        assert_eq!(fallback.report.precision, Precision::Fp32);
        assert!(fallback.report.enabled);
        assert!(
            fallback.report.reason.contains("representative set"),
            "{}",
            fallback.report.reason
        );
        let mut out = vec![0.0; 8 * 32];
        fallback.model.predict(&input, &mut out).unwrap();
        let mut nan = input.clone();
        nan[3] = f32::NAN;
        assert!(matches!(
            select("autoencoder", &mlp, &nan, None, &quick()),
            Err(QuantError::Representative(_))
        ));
    }

    /// A model that fails on its `fail_at`-th call.
    #[derive(Debug)]
    struct FailsLater {
        calls: std::sync::atomic::AtomicUsize,
        fail_at: usize,
    }

    impl Model for FailsLater {
        fn backend(&self) -> Backend {
            Backend::Tract
        }
        fn inputs(&self) -> usize {
            2
        }
        fn outputs(&self) -> usize {
            1
        }
        fn predict(&self, _: &[f32], out: &mut [f32]) -> Result<(), MlError> {
            let n = self.calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if n >= self.fail_at {
                return Err(MlError::Tract("gave up".into()));
            }
            out.fill(0.0);
            Ok(())
        }
    }

    #[test]
    fn a_model_that_fails_while_timed_is_reported_and_the_others_are_timed() {
        let fine = FailsLater {
            calls: 0.into(),
            fail_at: usize::MAX,
        };
        let breaks = FailsLater {
            calls: 0.into(),
            // Six warm-up calls and five at batch 1 succeed; the first at batch 32 fails.
            fail_at: 11,
        };
        let timed = time_models(&[&fine, &breaks], &[0.5; 6], &quick());
        assert!(timed[0].as_ref().is_ok_and(|l| l.batch1_us >= 0.0), "{timed:?}");
        assert_eq!(timed[1], Err("tract: gave up".to_owned()));
        // Once failed it is not called again.
        assert_eq!(breaks.calls.load(std::sync::atomic::Ordering::Relaxed), 12);
    }

    #[test]
    fn validation_counts_differences_and_decisions() {
        let fp32 = [0.0, 2.0, 1.0, -1.0];
        let int8 = [0.1, 1.9, -1.5, -1.0];
        let v = Validation::compare(&fp32, &int8, 2, Head::ArgMax);
        assert_eq!(v.rows, 2);
        assert!((v.max_abs_diff - 2.5).abs() < 1e-6);
        assert!((v.mean_abs_diff - 0.675).abs() < 1e-6);
        assert_eq!(v.output_scale, 2.0);
        // Row 1: argmax 1 both; row 2: 0 vs 1.
        assert_eq!(v.agreement, Some(0.5));
        let v = Validation::compare(&[0.4, 0.6], &[0.6, 0.6], 1, Head::Threshold(0.5));
        assert_eq!(v.agreement, Some(0.5));
        assert_eq!(Validation::compare(&fp32, &int8, 2, Head::Values).agreement, None);
    }
}
