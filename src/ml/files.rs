//! File handling shared by every model's save and load: I/O errors that name the path, card errors,
//! whole-file reads and atomic writes.
//!
//! Why one module: five models (signal predictor, liquidity, structure, discovery, strategy evolver)
//! each write an ONNX file and a JSON card and read them back with the same checks; the error
//! wording and the write discipline (temporary file, then rename, so a crash leaves the old file or
//! the new one, never half of one) should not differ between them.

use std::{fs, path::Path};

use super::MlError;

/// Maps an I/O error on `path` into [`MlError::Io`] naming it.
pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> MlError + '_ {
    move |source| MlError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A card that is unreadable, inconsistent or for another layout.
pub(crate) fn card_error(path: &Path, message: impl Into<String>) -> MlError {
    MlError::Card {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// The whole file.
pub(crate) fn read(path: &Path) -> Result<Vec<u8>, MlError> {
    fs::read(path).map_err(io(path))
}

/// The model file `file` (relative to `dir`) named by the card at `card_path`, refused unless its
/// SHA-256 is the card's `sha256`: an altered file, or a card copied beside another model, never loads.
pub(crate) fn read_model_file(
    dir: &Path,
    file: &str,
    sha256: &str,
    card_path: &Path,
) -> Result<Vec<u8>, MlError> {
    let bytes = read(&dir.join(file))?;
    if super::predictor::sha256_hex(&bytes) != sha256 {
        return Err(card_error(
            card_path,
            format!(
                "{file} does not match the card's sha256 (altered, or the card belongs to another model): \
                 run `perpdesk train` again or restore both files together"
            ),
        ));
    }
    Ok(bytes)
}

/// Writes `bytes` to `path` through `<path>.tmp` and a rename.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), MlError> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, bytes)
        .and_then(|()| fs::rename(&tmp, path))
        .map_err(io(path))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn an_atomic_write_replaces_the_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("card.json");
        write_atomic(&path, b"old").unwrap();
        write_atomic(&path, b"new").unwrap();
        assert_eq!(read(&path).unwrap(), b"new");
        assert!(!dir.path().join("card.tmp").exists());
        let missing = read(&dir.path().join("nothing.json")).unwrap_err();
        assert!(missing.to_string().contains("nothing.json"), "{missing}");
        let err = read_model_file(dir.path(), "card.json", "00", &path).unwrap_err();
        assert!(
            err.to_string()
                .contains("card.json does not match the card's sha256"),
            "{err}"
        );
        let sha = crate::ml::predictor::sha256_hex(b"new");
        assert_eq!(
            read_model_file(dir.path(), "card.json", &sha, &path).unwrap(),
            b"new"
        );
        let card = card_error(&path, "for another layout");
        assert!(
            card.to_string().contains("card.json: for another layout"),
            "{card}"
        );
    }
}
