//! Locating the shared research bundle (`../shared`: venue fixtures, real klines, golden files) from
//! integration tests, with one policy for every test that reads it.
//!
//! The bundle sits next to the repository on the team's machines and in CI, but not in a user's clone,
//! where `cargo test` must still pass. So a test asks [`shared_path`] for its file and returns early on
//! `None`, after a loud `SKIP:` line on stderr. Skipping is only allowed when the bundle is absent as a
//! whole: with `PERPDESK_REQUIRE_SHARED` set (CI sets it), or when `../shared` is there but the file is
//! not (a renamed or deleted fixture), the helper panics, so the test fails instead of passing silently.

// Each integration-test binary compiles this module and uses only part of it.
#![allow(dead_code)]

pub mod golden;

use std::{
    env,
    path::{Path, PathBuf},
};

/// Environment variable that turns every missing shared file into a test failure.
pub const REQUIRE_SHARED_ENV: &str = "PERPDESK_REQUIRE_SHARED";

/// File whose presence marks `../shared` as the research bundle (and not some unrelated folder).
const BUNDLE_MARKER: &str = "PROVENANCE.md";

/// `<repo>/../shared`.
pub fn shared_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared")
}

/// Path of `rel` inside the shared bundle, or `None` (after printing a `SKIP:` line) when the bundle
/// is not on this machine.
///
/// Panics when `PERPDESK_REQUIRE_SHARED` is set and the file is missing, and when the bundle is present
/// but the file is not.
pub fn shared_path(rel: &str) -> Option<PathBuf> {
    let root = shared_root();
    let path = root.join(rel);
    if path.exists() {
        return Some(path);
    }
    assert!(
        env::var_os(REQUIRE_SHARED_ENV).is_none(),
        "{REQUIRE_SHARED_ENV} is set but ../shared/{rel} does not exist ({} is missing)",
        first_missing(&root, rel).display()
    );
    assert!(
        !root.join(BUNDLE_MARKER).is_file(),
        "../shared is present but ../shared/{rel} is not ({} is missing): \
         a shared file was renamed or deleted",
        first_missing(&root, rel).display()
    );
    eprintln!(
        "SKIP: ../shared/{rel} not found ({} is missing); this test did not run. \
         Set {REQUIRE_SHARED_ENV}=1 to make a missing bundle a failure.",
        first_missing(&root, rel).display()
    );
    None
}

/// Reads a shared text file; `None` under the same rules as [`shared_path`].
pub fn read_shared(rel: &str) -> Option<String> {
    let path = shared_path(rel)?;
    Some(std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display())))
}

/// The shallowest missing path on the way from `../shared` to `rel`, so a message names what is
/// actually absent (the whole bundle, a section such as `fixtures/binance`, or one file).
fn first_missing(root: &Path, rel: &str) -> PathBuf {
    let mut path = root.to_path_buf();
    if !path.exists() {
        return path;
    }
    for part in Path::new(rel).components() {
        path.push(part);
        if !path.exists() {
            break;
        }
    }
    path
}

/// Environment variable that turns "no ONNX Runtime library" into a test failure (`.ci/run` sets it).
pub const REQUIRE_ONNXRUNTIME_ENV: &str = "PERPDESK_REQUIRE_ONNXRUNTIME";

/// ONNX Runtime loaded from `ORT_DYLIB_PATH`, or `None` (after a `SKIP:` line) when the variable is not
/// set. Panics when `PERPDESK_REQUIRE_ONNXRUNTIME` is set and the library is missing, and whenever the
/// configured library does not load (a wrong path or too old a version is a real error, not a skip).
pub fn onnxruntime() -> Option<std::sync::Arc<perpdesk::ml::onnxruntime::OnnxRuntime>> {
    use perpdesk::ml::onnxruntime::{ENV_VAR, OnnxRuntime, library_from_env};
    let Some(path) = library_from_env() else {
        assert!(
            env::var_os(REQUIRE_ONNXRUNTIME_ENV).is_none(),
            "{REQUIRE_ONNXRUNTIME_ENV} is set but {ENV_VAR} is not: run .ci/run, or point {ENV_VAR} at \
             libonnxruntime.so.<version>"
        );
        eprintln!(
            "SKIP: the ONNX Runtime part of this test did not run: {ENV_VAR} is not set (see the README: \
             `pip download --no-deps onnxruntime`, then point {ENV_VAR} at onnxruntime/capi/libonnxruntime.so.*). \
             Set {REQUIRE_ONNXRUNTIME_ENV}=1 to make a missing library a failure."
        );
        return None;
    };
    match OnnxRuntime::load(&path) {
        Ok(runtime) => Some(runtime),
        Err(error) => panic!("{ENV_VAR} is set but ONNX Runtime does not load: {error}"),
    }
}
