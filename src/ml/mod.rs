//! Machine learning: the model runtime, the signal predictor (gradient-boosted trees) and its training.
//!
//! Why this module exists: the ICT rules say whether a setup exists; the signal predictor estimates how
//! likely it is to reach its target before its stop, learned from what the same rules' candidates did
//! in history. Layout, in the order a model is made and used:
//!
//! * [`gbdt`] trains gradient-boosted trees (logistic loss, sample weights) on `f32` rows;
//! * [`trees`] is the trained model as flat arrays and its native evaluation (the hot path);
//! * [`onnx`] writes (and reads back) the model as an ONNX `TreeEnsembleClassifier`;
//! * [`runtime`] is the [`Model`](runtime::Model) interface over the native, tract and ONNX Runtime
//!   backends; [`onnxruntime`] loads ONNX Runtime at run time when a library is configured;
//! * [`mlp`] is a small dense network (Gemm + Relu) with its native forward pass and ONNX export;
//!   [`nn`] trains it (back-propagation, Adam, losses, standardisation folded into the weights);
//! * [`quantize`] builds INT8 variants of an [`mlp::Mlp`] (weight-only and static QDQ), validates and times
//!   them against FP32 and runs one only where it is measured faster at equal accuracy
//!   (`ENABLE_QUANTIZATION`);
//! * [`predictor`] is the signal predictor: its input layout (feature vector + signal context), the
//!   model card, saving and loading `models/signal_predictor.onnx`;
//! * [`dataset`] replays kline files through the causal ICT strategy and labels every candidate with
//!   what happened after it; [`metrics`] scores predictions; [`train`] is `perpdesk train`;
//! * [`liquidity`] is the liquidity prediction model: P(price trades through the nearest unswept pool
//!   above / below within K entry bars), its dataset, training, card and `models/liquidity.onnx`;
//! * [`batch`] is the async batch predictor between the engine and a model; it swaps models between
//!   batches (hot reload);
//! * [`registry`] keeps every champion by version, decides champion vs challenger, promotes and rolls
//!   back; [`online`] turns closed positions into samples and retrains challengers.

pub mod batch;
pub mod dataset;
pub mod discovery;
pub mod evolver;
pub mod evolver_model;
pub(crate) mod files;
pub mod gbdt;
pub mod liquidity;
pub mod metrics;
pub mod mlp;
pub mod nn;
pub mod online;
pub mod onnx;
pub mod onnxruntime;
pub mod predictor;
pub mod quantize;
pub mod registry;
pub mod runtime;
pub mod structure;
pub mod train;
pub mod trees;

use std::path::PathBuf;

/// What can go wrong loading or running a model. All are recoverable: the caller runs without the
/// model (ICT rules only) and says so.
#[derive(Debug, thiserror::Error)]
pub enum MlError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("tract: {0}")]
    Tract(String),
    #[error("shape: {0}")]
    Shape(String),
    #[error("model file: {0}")]
    Format(String),
    #[error("model card {path}: {message}")]
    Card { path: PathBuf, message: String },
    #[error(transparent)]
    Tree(#[from] trees::TreeError),
    #[error(transparent)]
    OnnxRuntime(#[from] onnxruntime::OrtError),
}
