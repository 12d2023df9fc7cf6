//! One interface over the ways a model runs: natively (tree ensembles), through tract (any ONNX file,
//! always available) and through ONNX Runtime (when a library is configured, see `onnxruntime`).
//!
//! Why: the engine must not care where a prediction comes from, and every shipped model must give the
//! same numbers however it runs (the tests compare backends on many inputs). [`Model`] takes a
//! row-major batch and writes `outputs()` values per row. tract is always available (pure Rust, nothing
//! to install); its plan is built once with a symbolic batch `N` and shared. Tree ensembles run
//! [`NativeTrees`] in the hot path, because tract's `TreeEnsembleClassifier` is 100–500× slower (see
//! `trees`); loading them in tract remains the check that the exported file is right.
//!
//! [`onnx_model`] picks the backend for an ONNX file: ONNX Runtime when it is loaded, else tract. Tree
//! ensembles stay native even then, because the native walk is faster than either (benches/ml.rs).

use std::{fmt, path::Path, sync::Arc};

use tract_onnx::prelude::{
    Framework, InferenceModelExt, IntoRunnable, IntoTValue, Tensor, TypedModel, TypedRunnableModel, tvec,
};

use super::{MlError, onnxruntime::OnnxRuntime, trees::TreeEnsemble};

/// Where a model runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// Plain Rust evaluation (tree ensembles).
    Native,
    /// tract-onnx.
    Tract,
    /// ONNX Runtime through `ort`, loaded at run time.
    #[serde(rename = "onnxruntime")]
    OnnxRuntime,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Native => "native",
            Self::Tract => "tract",
            Self::OnnxRuntime => "onnxruntime",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A loaded model.
pub trait Model: Send + Sync + fmt::Debug {
    fn backend(&self) -> Backend;
    /// Values per input row.
    fn inputs(&self) -> usize;
    /// Values per output row.
    fn outputs(&self) -> usize;
    /// Predicts `input.len() / inputs()` rows into `out` (`outputs()` values per row).
    fn predict(&self, input: &[f32], out: &mut [f32]) -> Result<(), MlError>;
}

/// Checks a batch's shapes against a model; returns the row count.
pub(crate) fn rows_of(model: &dyn Model, input: &[f32], out: &[f32]) -> Result<usize, MlError> {
    let inputs = model.inputs();
    if inputs == 0 || !input.len().is_multiple_of(inputs) {
        return Err(MlError::Shape(format!(
            "{} input values are not whole rows of {inputs}",
            input.len()
        )));
    }
    let rows = input.len() / inputs;
    if out.len() != rows * model.outputs() {
        return Err(MlError::Shape(format!(
            "{} output slots for {rows} rows of {} outputs",
            out.len(),
            model.outputs()
        )));
    }
    Ok(rows)
}

/// A binary tree ensemble evaluated natively; outputs `[1 − p, p]` per row, like the ONNX classifier.
#[derive(Debug, Clone)]
pub struct NativeTrees {
    pub ensemble: Arc<TreeEnsemble>,
}

impl Model for NativeTrees {
    fn backend(&self) -> Backend {
        Backend::Native
    }

    fn inputs(&self) -> usize {
        self.ensemble.inputs()
    }

    fn outputs(&self) -> usize {
        2
    }

    fn predict(&self, input: &[f32], out: &mut [f32]) -> Result<(), MlError> {
        rows_of(self, input, out)?;
        for (row, pair) in input.chunks_exact(self.inputs()).zip(out.chunks_exact_mut(2)) {
            let p = self.ensemble.probability(row);
            // tract and ONNX Runtime compute the complement the same way.
            pair[0] = 1.0 - p;
            pair[1] = p;
        }
        Ok(())
    }
}

/// An ONNX model run by tract, one output of it exposed.
#[derive(Clone)]
pub struct TractModel {
    plan: Arc<TypedRunnableModel>,
    inputs: usize,
    output: usize,
    width: usize,
}

impl fmt::Debug for TractModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TractModel")
            .field("inputs", &self.inputs)
            .field("output", &self.output)
            .field("width", &self.width)
            .finish_non_exhaustive()
    }
}

fn tract_error(error: &tract_onnx::prelude::TractError) -> MlError {
    MlError::Tract(format!("{error:#}"))
}

impl TractModel {
    /// Loads ONNX bytes whose single input is `float[N, inputs]`, exposing output number `output`
    /// (graph order) with `width` values per row.
    pub fn from_bytes(bytes: &[u8], inputs: usize, output: usize, width: usize) -> Result<Self, MlError> {
        let model = tract_onnx::onnx()
            .model_for_read(&mut &bytes[..])
            .map_err(|e| tract_error(&e))?;
        let plan = model
            .into_optimized()
            .and_then(TypedModel::into_runnable)
            .map_err(|e| tract_error(&e))?;
        Ok(Self {
            plan,
            inputs,
            output,
            width,
        })
    }

    pub fn from_path(path: &Path, inputs: usize, output: usize, width: usize) -> Result<Self, MlError> {
        let bytes = std::fs::read(path).map_err(|source| MlError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_bytes(&bytes, inputs, output, width)
    }
}

impl Model for TractModel {
    fn backend(&self) -> Backend {
        Backend::Tract
    }

    fn inputs(&self) -> usize {
        self.inputs
    }

    fn outputs(&self) -> usize {
        self.width
    }

    fn predict(&self, input: &[f32], out: &mut [f32]) -> Result<(), MlError> {
        let rows = rows_of(self, input, out)?;
        let tensor = Tensor::from_shape(&[rows, self.inputs], input).map_err(|e| tract_error(&e))?;
        let results = self
            .plan
            .run(tvec![tensor.into_tvalue()])
            .map_err(|e| tract_error(&e))?;
        let result = results
            .get(self.output)
            .ok_or_else(|| MlError::Shape(format!("the model has no output {}", self.output)))?;
        let view = result.to_plain_array_view::<f32>().map_err(|e| tract_error(&e))?;
        if view.len() != out.len() {
            return Err(MlError::Shape(format!(
                "output {} has {} values, expected {}",
                self.output,
                view.len(),
                out.len()
            )));
        }
        for (slot, value) in out.iter_mut().zip(view.iter()) {
            *slot = *value;
        }
        Ok(())
    }
}

/// An ONNX model (single input `float[N, inputs]`, output number `output` with `width` values per row) in
/// ONNX Runtime when `ort` is given, else in tract. A file ONNX Runtime refuses (an operator it lacks, a
/// session error) falls back to tract with a log line, so a model never goes missing for that reason.
pub fn onnx_model(
    bytes: &[u8],
    inputs: usize,
    output: usize,
    width: usize,
    ort: Option<&OnnxRuntime>,
) -> Result<Box<dyn Model>, MlError> {
    if let Some(runtime) = ort {
        match runtime.model(bytes, inputs, output, width) {
            Ok(model) => return Ok(Box::new(model)),
            Err(error) => tracing::warn!(%error, "ONNX Runtime refused the model: it runs in tract"),
        }
    }
    Ok(Box::new(TractModel::from_bytes(bytes, inputs, output, width)?))
}
