//! ONNX Runtime as a second backend, loaded at run time from a library the user provides.
//!
//! Why this module exists: tract (pure Rust, always there) is as fast as ONNX Runtime on small MLPs, but
//! ONNX Runtime runs operators tract lacks (`TreeEnsembleRegressor`, `QGemm`…) and tree ensembles 100×
//! faster than tract. The library is 35 MB, not in Debian, and must not be downloaded at build time, so
//! `ort` is built with `load-dynamic`: nothing is linked, and [`OnnxRuntime::load`] opens
//! `libonnxruntime.so.<version>` (the one inside the `onnxruntime` wheel on the Python package registry, or a system copy) from
//! the path in `ml.onnxruntime_library` / `ORT_DYLIB_PATH`. Without a library, or when it fails to load,
//! [`init`] logs one line saying why and the models run in tract (tree ensembles natively).
//!
//! One process holds one library and one ONNX Runtime environment (ONNX Runtime allows one per process),
//! so the loaded runtime is process-wide: a second load of the same file returns it, another file is
//! refused with [`OrtError::AlreadyLoaded`] rather than silently ignored (which is what `ort` itself
//! would do). [`OrtModel`] runs one session behind a `Mutex`, because `Session::run` takes `&mut self`
//! and [`Model::predict`] is called from shared references; sessions use one intra-op thread (the
//! machine has two cores and the engine owns one).

use std::{
    fmt,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

use ort::{
    session::{Session, builder::GraphOptimizationLevel},
    value::TensorRef,
};

use super::{
    MlError,
    runtime::{Backend, Model, rows_of},
};

/// The environment variable `ort` itself reads, and the one `ml.onnxruntime_library` is set from.
pub const ENV_VAR: &str = "ORT_DYLIB_PATH";

/// The oldest ONNX Runtime this build accepts: `1.<MINIMUM_MINOR>` (the `api-NN` feature of `ort`).
pub const MINIMUM_MINOR: u32 = ort::MINOR_VERSION;

/// Why ONNX Runtime could not be used. All are recoverable: the model runs in tract (or natively)
/// instead, and the log says which of these happened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrtError {
    #[error(
        "ONNX Runtime library {path} does not exist (point {ENV_VAR} or ml.onnxruntime_library at \
         libonnxruntime.so.<version>, e.g. onnxruntime/capi/ inside the onnxruntime wheel)"
    )]
    NotFound { path: PathBuf },
    #[error("{path} could not be opened as a shared library: {message}")]
    Open { path: PathBuf, message: String },
    #[error("{path} is not ONNX Runtime: it exports no OrtGetApiBase")]
    NotOnnxRuntime { path: PathBuf },
    #[error("{path} is ONNX Runtime {found}, too old: perpdesk needs 1.{required} or newer")]
    TooOld {
        path: PathBuf,
        found: String,
        required: u32,
    },
    #[error("{path} reports a malformed version string")]
    BadVersion { path: PathBuf },
    #[error(
        "ONNX Runtime is already loaded from {loaded}; one process uses one library, so {requested} is not loaded"
    )]
    AlreadyLoaded { loaded: PathBuf, requested: PathBuf },
    #[error("ONNX Runtime environment: {0}")]
    Environment(String),
    #[error("ONNX Runtime session: {0}")]
    Session(String),
}

impl OrtError {
    /// Maps `ort`'s loading error, whose `Display` does not say what to do about it.
    fn from_load(error: ort::LoadDynamicError, requested: &Path) -> Self {
        match error {
            ort::LoadDynamicError::Dlopen { error, path } => Self::Open {
                path,
                message: error.to_string(),
            },
            ort::LoadDynamicError::MissingApi { path } => Self::NotOnnxRuntime { path },
            ort::LoadDynamicError::BadVersion { version_str, path } => Self::TooOld {
                path,
                found: version_str,
                required: MINIMUM_MINOR,
            },
            ort::LoadDynamicError::InvalidVersionString => Self::BadVersion {
                path: requested.to_path_buf(),
            },
        }
    }
}

/// The loaded library and its environment.
pub struct OnnxRuntime {
    env: ort::environment::Environment,
    path: PathBuf,
    version: Option<String>,
}

impl fmt::Debug for OnnxRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OnnxRuntime")
            .field("path", &self.path)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// The process-wide runtime, once loaded.
static LOADED: Mutex<Option<Arc<OnnxRuntime>>> = Mutex::new(None);

fn loaded_guard() -> MutexGuard<'static, Option<Arc<OnnxRuntime>>> {
    // The slot is only ever replaced whole, so a panic elsewhere cannot leave it half-written.
    LOADED.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The runtime loaded earlier in this process, if any.
pub fn loaded() -> Option<Arc<OnnxRuntime>> {
    loaded_guard().clone()
}

/// The library path in the environment (`ORT_DYLIB_PATH`), if set and not empty.
pub fn library_from_env() -> Option<PathBuf> {
    std::env::var_os(ENV_VAR)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// ONNX Runtime's version for the log: from the library's file name (`libonnxruntime.so.1.32.0`, after
/// symlinks are resolved), else from its build string (`git-branch=rel-1.32.0`, which source builds
/// have; the wheel's says `HEAD`). The C API only hands the version string to the loader, which checks
/// it (`TooOld`) but does not expose it.
fn version_of(path: &Path, info: &str) -> Option<String> {
    let is_version = |v: &str| v.split('.').count() >= 2 && v.split('.').all(|p| p.parse::<u32>().is_ok());
    path.file_name()
        .and_then(|name| name.to_str())
        .and_then(|name| name.split_once(".so."))
        .map(|(_, v)| v)
        .filter(|v| is_version(v))
        .or_else(|| {
            info.split([',', ' '])
                .find_map(|part| part.strip_prefix("git-branch=rel-"))
                .filter(|v| is_version(v))
        })
        .map(str::to_owned)
}

impl OnnxRuntime {
    /// Loads ONNX Runtime from `path` (once per process; the same path again returns the same runtime).
    pub fn load(path: &Path) -> Result<Arc<Self>, OrtError> {
        if !path.is_file() {
            return Err(OrtError::NotFound {
                path: path.to_path_buf(),
            });
        }
        let requested = path.canonicalize().map_err(|e| OrtError::Open {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let mut slot = loaded_guard();
        if let Some(runtime) = slot.as_ref() {
            return if runtime.path == requested {
                Ok(Arc::clone(runtime))
            } else {
                Err(OrtError::AlreadyLoaded {
                    loaded: runtime.path.clone(),
                    requested,
                })
            };
        }
        let env = ort::init_from(&requested)
            .map_err(|e| OrtError::from_load(e, &requested))?
            .with_name("perpdesk")
            .with_telemetry(false)
            .build()
            .map_err(|e| OrtError::Environment(e.to_string()))?;
        let runtime = Arc::new(Self {
            env,
            version: version_of(&requested, ort::info()),
            path: requested,
        });
        *slot = Some(Arc::clone(&runtime));
        Ok(runtime)
    }

    /// The canonical path of the loaded library.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// ONNX Runtime's version (`1.32.0`) when the file name or build string tells it; it is at least
    /// `1.MINIMUM_MINOR` in any case (the loader checked).
    pub fn version(&self) -> Option<&str> {
        self.version.as_deref()
    }

    /// A session over ONNX `bytes` whose single input is `float[N, inputs]`, exposing output number
    /// `output` (graph order) with `width` values per row, like [`super::runtime::TractModel`].
    pub fn model(
        &self,
        bytes: &[u8],
        inputs: usize,
        output: usize,
        width: usize,
    ) -> Result<OrtModel, MlError> {
        let session = Session::builder(&self.env)
            .and_then(|b| b.with_intra_threads(1).map_err(Into::into))
            .and_then(|b| {
                b.with_optimization_level(GraphOptimizationLevel::All)
                    .map_err(Into::into)
            })
            .and_then(|mut b| b.commit_from_memory(bytes))
            .map_err(|e| OrtError::Session(e.to_string()))?;
        if session.inputs().len() != 1 {
            return Err(MlError::Shape(format!(
                "the model has {} inputs, expected one",
                session.inputs().len()
            )));
        }
        if output >= session.outputs().len() {
            return Err(MlError::Shape(format!("the model has no output {output}")));
        }
        Ok(OrtModel {
            session: Mutex::new(session),
            inputs,
            output,
            width,
        })
    }
}

/// Loads the configured library (`configured`, else `ORT_DYLIB_PATH`) and logs one line saying which
/// backend the models will use. `None`: no library configured, or it failed to load (the line says why).
pub fn init(configured: Option<&Path>) -> Option<Arc<OnnxRuntime>> {
    let path = configured.map(Path::to_path_buf).or_else(library_from_env);
    let Some(path) = path else {
        tracing::info!(
            "ONNX Runtime not configured (set {ENV_VAR} or ml.onnxruntime_library): models run in tract, tree ensembles natively"
        );
        return None;
    };
    match OnnxRuntime::load(&path) {
        Ok(runtime) => {
            tracing::info!(
                path = %runtime.path().display(),
                version = runtime.version().unwrap_or("unknown"),
                "ONNX Runtime loaded: ONNX models run in it, tree ensembles natively"
            );
            Some(runtime)
        }
        Err(error) => {
            tracing::warn!(%error, "ONNX Runtime not used: models run in tract, tree ensembles natively");
            None
        }
    }
}

/// An ONNX model run by ONNX Runtime, one output of it exposed.
pub struct OrtModel {
    session: Mutex<Session>,
    inputs: usize,
    output: usize,
    width: usize,
}

impl fmt::Debug for OrtModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OrtModel")
            .field("inputs", &self.inputs)
            .field("output", &self.output)
            .field("width", &self.width)
            .finish_non_exhaustive()
    }
}

fn run_error(error: &ort::Error) -> MlError {
    MlError::OnnxRuntime(OrtError::Session(error.to_string()))
}

impl Model for OrtModel {
    fn backend(&self) -> Backend {
        Backend::OnnxRuntime
    }

    fn inputs(&self) -> usize {
        self.inputs
    }

    fn outputs(&self) -> usize {
        self.width
    }

    fn predict(&self, input: &[f32], out: &mut [f32]) -> Result<(), MlError> {
        let rows = rows_of(self, input, out)?;
        // A view of the caller's rows: ONNX Runtime reads them in place, nothing is copied in.
        let tensor = TensorRef::from_array_view(([rows, self.inputs], input)).map_err(|e| run_error(&e))?;
        let mut session = self.session.lock().unwrap_or_else(PoisonError::into_inner);
        let results = session.run(ort::inputs![tensor]).map_err(|e| run_error(&e))?;
        let (_, values) = results[self.output]
            .try_extract_tensor::<f32>()
            .map_err(|e| run_error(&e))?;
        if values.len() != out.len() {
            return Err(MlError::Shape(format!(
                "output {} has {} values, expected {}",
                self.output,
                values.len(),
                out.len()
            )));
        }
        out.copy_from_slice(values);
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn the_version_comes_from_the_file_name_or_the_build_string() {
        let wheel = "ORT Build Info: git-branch=HEAD, git-commit-id=fab30a4, build type=Release";
        let source = "ORT Build Info: git-branch=rel-1.31.1, git-commit-id=abc, build type=Release";
        let versioned = Path::new("/x/libonnxruntime.so.1.32.0");
        let plain = Path::new("/usr/lib/libonnxruntime.so");
        assert_eq!(version_of(versioned, wheel).as_deref(), Some("1.32.0"));
        assert_eq!(version_of(plain, source).as_deref(), Some("1.31.1"));
        assert_eq!(version_of(plain, wheel), None);
        assert_eq!(version_of(Path::new("/x/libonnxruntime.so.1"), wheel), None);
    }

    #[test]
    fn loading_errors_say_what_is_wrong() {
        let old = OrtError::from_load(
            ort::LoadDynamicError::BadVersion {
                version_str: "1.20.1".into(),
                path: "/opt/ort/libonnxruntime.so.1.20.1".into(),
            },
            Path::new("x"),
        );
        assert_eq!(
            old.to_string(),
            format!(
                "/opt/ort/libonnxruntime.so.1.20.1 is ONNX Runtime 1.20.1, too old: perpdesk needs 1.{MINIMUM_MINOR} or newer"
            )
        );
        let missing = OnnxRuntime::load(Path::new("/nonexistent/libonnxruntime.so.1.32.0")).unwrap_err();
        assert!(matches!(missing, OrtError::NotFound { .. }));
        assert!(missing.to_string().contains(ENV_VAR), "{missing}");
        let api = OrtError::from_load(
            ort::LoadDynamicError::MissingApi {
                path: "/lib/libm.so.6".into(),
            },
            Path::new("x"),
        );
        assert!(api.to_string().contains("not ONNX Runtime"), "{api}");
    }
}
