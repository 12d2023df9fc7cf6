//! Secrets (API secret, Ed25519 private key, later the Discord webhook URL) in a type that cannot leak.
//!
//! A secret that reaches a log line, a panic message, the journal or a `Debug` dump of a config struct is
//! compromised, and Binance API keys move money. So the value lives in [`SecretString`], whose `Debug`
//! and `Display` print a fixed placeholder, which has no `Serialize`, and whose memory is overwritten
//! with zeros when it is dropped (`zeroize`). The only way to the text is the explicit
//! [`SecretString::expose_secret`], which makes every use greppable.
//!
//! Secrets come from an environment variable or from a file that only its owner can read: on Unix a
//! file whose mode grants anything to group or others (`mode & 0o077 != 0`, e.g. 0644) is refused with a
//! message naming the file and its mode. The mode is read from the opened handle, so the file checked
//! is the file read. The owner's uid is not compared with the process's (that needs `getuid`, i.e.
//! libc); a 0600 file owned by someone else cannot be opened by us anyway unless we are root.

use std::{
    ffi::OsString,
    fmt,
    io::Read,
    path::{Path, PathBuf},
};

use zeroize::Zeroize;

/// Placeholder printed instead of a secret by `Debug` and `Display`.
pub const REDACTED: &str = "[REDACTED]";

/// A secret text value: redacted in `Debug`/`Display`, zeroed on drop, never serialised.
///
/// Surrounding whitespace (a trailing newline in a key file, say) is trimmed when loading, because
/// Binance keys never contain whitespace and a stray `\n` would silently break every signature.
/// No `PartialEq`: comparing secrets with `==` is not constant-time, and nothing here needs it.
#[derive(Clone)]
pub struct SecretString(String);

impl SecretString {
    /// Wraps a value already in memory (tests, keys typed by the operator).
    pub fn new(value: String) -> Self {
        Self(value)
    }

    /// The secret text. Call it only where the bytes are consumed (signing, a header value).
    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    /// Reads the secret from the environment variable `var`.
    pub fn from_env(var: &str) -> Result<Self, SecretError> {
        Self::from_env_with(var, |name| std::env::var_os(name))
    }

    /// [`Self::from_env`] over an injected lookup (edition 2024 makes `set_var` unsafe, so tests
    /// cannot set real variables).
    fn from_env_with(var: &str, lookup: impl Fn(&str) -> Option<OsString>) -> Result<Self, SecretError> {
        let raw = lookup(var).ok_or_else(|| SecretError::EnvMissing { var: var.to_owned() })?;
        let mut text = raw
            .into_string()
            .map_err(|_| SecretError::EnvNotUnicode { var: var.to_owned() })?;
        let secret = Self::trimmed(&text);
        text.zeroize();
        secret.ok_or_else(|| SecretError::Empty {
            source_name: format!("environment variable {var}"),
        })
    }

    /// Reads the secret from `path`, which must be readable by its owner only (Unix mode `0600` or
    /// `0400`).
    pub fn from_file(path: &Path) -> Result<Self, SecretError> {
        let io = |source| SecretError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut file = std::fs::File::open(path).map_err(io)?;
        let meta = file.metadata().map_err(io)?;
        if !meta.is_file() {
            return Err(SecretError::NotAFile {
                path: path.to_path_buf(),
            });
        }
        check_mode(path, &meta)?;
        let mut bytes = Vec::new();
        let read = file.read_to_end(&mut bytes);
        if let Err(source) = read {
            bytes.zeroize();
            return Err(io(source));
        }
        let Ok(text) = std::str::from_utf8(&bytes) else {
            bytes.zeroize();
            return Err(SecretError::NotUtf8 {
                path: path.to_path_buf(),
            });
        };
        let secret = Self::trimmed(text);
        bytes.zeroize();
        secret.ok_or_else(|| SecretError::Empty {
            source_name: format!("file {}", path.display()),
        })
    }

    fn trimmed(text: &str) -> Option<Self> {
        let t = text.trim();
        (!t.is_empty()).then(|| Self(t.to_owned()))
    }
}

impl Drop for SecretString {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretString({REDACTED})")
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

#[cfg(unix)]
fn check_mode(path: &Path, meta: &std::fs::Metadata) -> Result<(), SecretError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o7777;
    let group_and_other = mode & 0o077;
    if group_and_other == 0 {
        Ok(())
    } else {
        Err(SecretError::InsecureMode {
            path: path.to_path_buf(),
            mode,
        })
    }
}

#[cfg(not(unix))]
fn check_mode(_path: &Path, _meta: &std::fs::Metadata) -> Result<(), SecretError> {
    // No portable mode bits outside Unix; the operator is responsible for the file's ACL there.
    Ok(())
}

/// Why a secret could not be loaded. No variant ever holds any part of the secret's value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("environment variable {var} is not set")]
    EnvMissing { var: String },
    #[error("environment variable {var} is not valid UTF-8")]
    EnvNotUnicode { var: String },
    #[error("the secret in {source_name} is empty")]
    Empty { source_name: String },
    #[error("cannot read secret file {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("secret file {} is not a regular file", path.display())]
    NotAFile { path: PathBuf },
    #[error(
        "secret file {} has mode {mode:04o}, which lets other users read it; \
         it must be readable by its owner only (run: chmod 600 {})",
        path.display(),
        path.display()
    )]
    InsecureMode { path: PathBuf, mode: u32 },
    #[error("secret file {} is not valid UTF-8", path.display())]
    NotUtf8 { path: PathBuf },
}

#[cfg(test)]
mod tests {
    use std::{io::Write, os::unix::fs::PermissionsExt};

    use super::*;

    const CANARY: &str = "CANARY-7f3a9c1e-do-not-leak";

    fn count(haystack: &str) -> usize {
        haystack.matches(CANARY).count()
    }

    fn secret_file(contents: &[u8], mode: u32) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().expect("temp file");
        f.write_all(contents).expect("write");
        std::fs::set_permissions(f.path(), std::fs::Permissions::from_mode(mode)).expect("chmod");
        f
    }

    #[test]
    fn canary_never_appears_in_debug_or_display() {
        #[derive(Debug)]
        #[allow(dead_code)] // only read through Debug
        struct Config {
            api_secret: SecretString,
            nested: Option<Vec<SecretString>>,
        }
        let s = SecretString::new(CANARY.to_owned());
        assert_eq!(s.expose_secret(), CANARY);
        let cfg = Config {
            api_secret: s.clone(),
            nested: Some(vec![s.clone()]),
        };
        for text in [
            format!("{s:?}"),
            format!("{s:#?}"),
            format!("{s}"),
            format!("{cfg:?}"),
            format!("{cfg:#?}"),
        ] {
            assert_eq!(count(&text), 0, "leaked in {text}");
            assert!(text.contains(REDACTED), "no placeholder in {text}");
        }
    }

    #[test]
    fn file_with_mode_0600_or_0400_loads_trimmed() {
        for mode in [0o600, 0o400] {
            let f = secret_file(format!("{CANARY}\n").as_bytes(), mode);
            let s = SecretString::from_file(f.path()).expect("0600/0400 accepted");
            assert_eq!(s.expose_secret(), CANARY);
        }
    }

    #[test]
    fn group_or_world_readable_file_is_refused_naming_file_and_mode() {
        for (mode, shown) in [(0o644, "0644"), (0o640, "0640"), (0o604, "0604"), (0o660, "0660")] {
            let f = secret_file(CANARY.as_bytes(), mode);
            let err = SecretString::from_file(f.path()).expect_err("insecure mode refused");
            let msg = err.to_string();
            assert!(matches!(err, SecretError::InsecureMode { mode: m, .. } if m == mode));
            assert!(msg.contains(&f.path().display().to_string()), "{msg}");
            assert!(msg.contains(shown), "{msg}");
            assert!(msg.contains("chmod 600"), "{msg}");
            assert_eq!(count(&msg), 0);
            assert_eq!(count(&format!("{err:?}")), 0);
        }
    }

    #[test]
    fn other_file_errors_name_the_file_and_never_the_content() {
        let mut not_utf8 = CANARY.as_bytes().to_vec();
        not_utf8.push(0xFF);
        let f = secret_file(&not_utf8, 0o600);
        let err = SecretString::from_file(f.path()).expect_err("not utf-8");
        assert!(matches!(err, SecretError::NotUtf8 { .. }));
        assert_eq!(count(&err.to_string()) + count(&format!("{err:?}")), 0);

        let empty = secret_file(b" \n", 0o600);
        let err = SecretString::from_file(empty.path()).expect_err("empty");
        assert!(matches!(err, SecretError::Empty { .. }), "{err}");

        let dir = tempfile::tempdir().expect("dir");
        let missing = dir.path().join("nope.key");
        let err = SecretString::from_file(&missing).expect_err("missing");
        assert!(err.to_string().contains("nope.key"), "{err}");
        let err = SecretString::from_file(dir.path()).expect_err("a directory");
        assert!(
            matches!(err, SecretError::NotAFile { .. } | SecretError::Io { .. }),
            "{err}"
        );
    }

    #[test]
    fn env_lookup_trims_and_reports_missing_or_empty() {
        let lookup = |name: &str| match name {
            "SET" => Some(OsString::from(format!("  {CANARY}\n"))),
            "BLANK" => Some(OsString::from("   ")),
            _ => None,
        };
        let s = SecretString::from_env_with("SET", lookup).expect("set");
        assert_eq!(s.expose_secret(), CANARY);
        let err = SecretString::from_env_with("BLANK", lookup).expect_err("blank");
        assert_eq!(
            err.to_string(),
            "the secret in environment variable BLANK is empty"
        );
        let err = SecretString::from_env_with("UNSET", lookup).expect_err("unset");
        assert_eq!(err.to_string(), "environment variable UNSET is not set");
        let err = SecretString::from_env("PERPDESK_TEST_VARIABLE_THAT_IS_NEVER_SET").expect_err("unset");
        assert!(matches!(err, SecretError::EnvMissing { .. }));
    }
}
