//! The model registry of the signal predictor: every champion kept on disk by version, the
//! champion/challenger rule, promotion and rollback.
//!
//! Why a registry: self-learning replaces the live model without a restart, so a bad replacement must
//! be impossible to make silently and easy to undo. A challenger is promoted only by [`decide`], which
//! compares both models on the same most recent out-of-sample window; every promoted model stays in
//! `<models>/versions/signal_predictor/<version>.onnx|.json`, hash-checked when loaded again, and
//! `registry.json` beside them names the champion, the former champions (rollback targets, newest
//! last) and the latest challenger with its evaluation. Every file is written to a temporary name
//! and renamed, so a crash leaves either the old or the new file, never half of one. The champion is
//! also copied to `<models>/signal_predictor.onnx|.json`, the file `perpdesk train` writes and tools
//! read; a model found there that the registry does not know (a fresh `perpdesk train`) is the
//! operator's choice and becomes the champion at start-up.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{
    MlError, metrics,
    predictor::{self, SignalPredictor},
};

/// Where versions live, under the models directory.
pub const VERSIONS_DIR: &str = "versions/signal_predictor";
/// The registry's own file, in [`VERSIONS_DIR`].
pub const REGISTRY_FILE: &str = "registry.json";

/// What can go wrong in the registry. All are recoverable: the champion in memory keeps serving.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    Model(#[from] MlError),
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("no previous champion to roll back to")]
    NothingToRollBack,
    #[error("version name {0:?} is not a plain file name")]
    BadVersion(String),
}

/// A model's score on one window of labelled samples.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct WindowScore {
    pub samples: usize,
    pub positives: usize,
    pub log_loss: f64,
    /// `None` when the window has one class only.
    pub auc: Option<f64>,
}

/// Scores probabilities `p` against labels `y` (1 positive, 0 negative).
pub fn score(p: &[f32], y: &[f32]) -> WindowScore {
    WindowScore {
        samples: p.len().min(y.len()),
        positives: y.iter().filter(|y| **y > 0.5).count(),
        log_loss: metrics::log_loss(p, y),
        auc: metrics::auc(p, y),
    }
}

/// The champion/challenger rule's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    /// Fewest samples in the window for any decision to promote.
    pub min_samples: usize,
    /// Fewest samples of each class in the window.
    pub min_each_class: usize,
    /// Log loss the challenger must gain over the champion (strictly more than this).
    pub min_log_loss_gain: f64,
    /// How much lower the challenger's AUC may be than the champion's.
    pub auc_tolerance: f64,
}

impl Default for Rule {
    fn default() -> Self {
        Self {
            min_samples: 30,
            min_each_class: 5,
            min_log_loss_gain: 0.0,
            auc_tolerance: 0.01,
        }
    }
}

/// What [`decide`] concluded, with the reason in words (logged and shown in the models panel).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub promote: bool,
    pub reason: String,
}

impl Decision {
    fn keep(reason: String) -> Self {
        Self {
            promote: false,
            reason,
        }
    }
}

/// The champion/challenger decision. Both scores must come from the same window (same samples, which
/// neither model trained on). The challenger is promoted only if the window is large enough and
/// holds both classes, its log loss is lower than the champion's by more than
/// [`Rule::min_log_loss_gain`], and its AUC is not lower than the champion's by more than
/// [`Rule::auc_tolerance`] (a challenger without an AUC never replaces a champion with one). When
/// there is no champion model, `champion` is the constant predictor at the training positive rate:
/// a model goes live only if it beats what it replaces.
pub fn decide(champion: &WindowScore, challenger: &WindowScore, rule: &Rule) -> Decision {
    if champion.samples != challenger.samples || champion.positives != challenger.positives {
        return Decision::keep("the two scores are not from the same window".into());
    }
    let n = challenger.samples;
    let positives = challenger.positives;
    if n < rule.min_samples {
        return Decision::keep(format!("{n} samples in the window (need {})", rule.min_samples));
    }
    if positives < rule.min_each_class || n - positives < rule.min_each_class {
        return Decision::keep(format!(
            "{positives} targets and {} stops in the window (need {} of each)",
            n - positives,
            rule.min_each_class
        ));
    }
    if !challenger.log_loss.is_finite() || !champion.log_loss.is_finite() {
        return Decision::keep("a log loss is not finite".into());
    }
    let gain = champion.log_loss - challenger.log_loss;
    if gain <= rule.min_log_loss_gain {
        return Decision::keep(format!(
            "log loss {:.4} is not below the champion's {:.4}",
            challenger.log_loss, champion.log_loss
        ));
    }
    match (champion.auc, challenger.auc) {
        (Some(a), Some(b)) if b < a - rule.auc_tolerance => Decision::keep(format!(
            "AUC {b:.3} is more than {} below the champion's {a:.3}",
            rule.auc_tolerance
        )),
        (Some(_), None) => Decision::keep("the challenger has no AUC on the window".into()),
        _ => Decision {
            promote: true,
            reason: format!(
                "log loss {:.4} < {:.4} on {n} samples",
                challenger.log_loss, champion.log_loss
            ),
        },
    }
}

/// One champion/challenger evaluation (the newest is kept in `registry.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// When it ran (ms since the epoch, and RFC 3339).
    pub at_ms: i64,
    pub at: String,
    pub challenger: String,
    /// The champion's version; `None`: the constant-rate predictor stood in.
    pub champion: Option<String>,
    /// The window's decision times (inclusive).
    pub window_from_ms: i64,
    pub window_to_ms: i64,
    pub challenger_score: WindowScore,
    pub champion_score: WindowScore,
    /// Training samples of the challenger, of which online (closed positions).
    pub train_samples: usize,
    pub online_samples: usize,
    pub decision: Decision,
}

/// `registry.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RegistryState {
    pub champion: Option<String>,
    /// Former champions, newest last: rollback goes to the last one.
    pub previous: Vec<String>,
    /// Champions replaced by a rollback (kept on disk, no longer rollback targets).
    #[serde(default)]
    pub retired: Vec<String>,
    pub last_evaluation: Option<Evaluation>,
}

/// One stored version (for listings).
#[derive(Debug, Clone, PartialEq)]
pub struct VersionInfo {
    pub version: String,
    pub created: String,
    pub champion: bool,
}

/// The registry over one models directory.
#[derive(Debug, Clone)]
pub struct Registry {
    models_dir: PathBuf,
    pub state: RegistryState,
}

fn file_error(path: &Path, message: &dyn std::fmt::Display) -> RegistryError {
    RegistryError::File {
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

/// A version must be a plain file name: it names files in the versions directory.
fn check_version(version: &str) -> Result<(), RegistryError> {
    let plain = !version.is_empty()
        && version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !version.starts_with('.');
    if plain {
        Ok(())
    } else {
        Err(RegistryError::BadVersion(version.to_owned()))
    }
}

impl Registry {
    /// Opens the registry of `models_dir` (empty when it has none yet).
    pub fn open(models_dir: &Path) -> Result<Self, RegistryError> {
        let path = models_dir.join(VERSIONS_DIR).join(REGISTRY_FILE);
        let state = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| file_error(&path, &e))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => RegistryState::default(),
            Err(e) => return Err(file_error(&path, &e)),
        };
        Ok(Self {
            models_dir: models_dir.to_path_buf(),
            state,
        })
    }

    pub fn versions_dir(&self) -> PathBuf {
        self.models_dir.join(VERSIONS_DIR)
    }

    fn save_state(&self) -> Result<(), RegistryError> {
        let dir = self.versions_dir();
        std::fs::create_dir_all(&dir).map_err(|e| file_error(&dir, &e))?;
        let path = dir.join(REGISTRY_FILE);
        let json = serde_json::to_vec_pretty(&self.state).map_err(|e| file_error(&path, &e))?;
        Ok(super::files::write_atomic(&path, &json)?)
    }

    /// Whether `version` has files in the versions directory.
    pub fn has_version(&self, version: &str) -> bool {
        self.versions_dir().join(format!("{version}.json")).exists()
    }

    /// Loads a stored version (card and SHA-256 checked).
    pub fn load(&self, version: &str) -> Result<SignalPredictor, RegistryError> {
        check_version(version)?;
        Ok(SignalPredictor::load_card(
            &self.versions_dir(),
            &format!("{version}.json"),
        )?)
    }

    /// The champion, loaded, if there is one.
    pub fn champion(&self) -> Result<Option<SignalPredictor>, RegistryError> {
        self.state.champion.as_deref().map(|v| self.load(v)).transpose()
    }

    /// A version name not used yet, from `version` (suffixed `.2`, `.3`, … when taken).
    fn unique(&self, version: &str) -> String {
        let mut name = version.to_owned();
        let mut n = 2;
        while self.has_version(&name) {
            name = format!("{version}.{n}");
            n += 1;
        }
        name
    }

    /// Stores `predictor` as a version and makes it the champion (the old one becomes the rollback
    /// target), records `evaluation`, and copies it to the models directory's top-level files.
    pub fn promote(
        &mut self,
        predictor: &mut SignalPredictor,
        evaluation: Option<Evaluation>,
    ) -> Result<(), RegistryError> {
        predictor.card.version = self.unique(&predictor.card.version);
        let version = predictor.card.version.clone();
        check_version(&version)?;
        predictor.save_as(
            &self.versions_dir(),
            &format!("{version}.onnx"),
            &format!("{version}.json"),
        )?;
        if let Some(old) = self.state.champion.replace(version.clone())
            && old != version
        {
            self.state.previous.push(old);
        }
        if evaluation.is_some() {
            self.state.last_evaluation = evaluation;
        }
        self.save_state()?;
        self.publish(predictor)?;
        tracing::info!(%version, "signal predictor promoted to champion");
        Ok(())
    }

    /// Records an evaluation whose challenger was not promoted.
    pub fn record(&mut self, evaluation: Evaluation) -> Result<(), RegistryError> {
        self.state.last_evaluation = Some(evaluation);
        self.save_state()
    }

    /// Makes the previous champion the champion again (its files hash-checked first; nothing changes
    /// if they fail), and returns it.
    pub fn rollback(&mut self) -> Result<SignalPredictor, RegistryError> {
        let target = self
            .state
            .previous
            .last()
            .cloned()
            .ok_or(RegistryError::NothingToRollBack)?;
        let mut predictor = self.load(&target)?;
        self.state.previous.pop();
        if let Some(old) = self.state.champion.replace(target.clone()) {
            self.state.retired.push(old);
        }
        self.save_state()?;
        self.publish(&mut predictor)?;
        tracing::warn!(version = %target, "signal predictor rolled back");
        Ok(predictor)
    }

    /// Copies the champion to `<models>/signal_predictor.onnx|.json`.
    fn publish(&self, predictor: &mut SignalPredictor) -> Result<(), RegistryError> {
        predictor.save(&self.models_dir)?;
        Ok(())
    }

    /// Every stored version, oldest first by name order of promotion: previous, retired, champion.
    pub fn list(&self) -> Vec<VersionInfo> {
        let mut names: Vec<&String> = self.state.previous.iter().collect();
        names.extend(&self.state.retired);
        names.extend(&self.state.champion);
        names
            .into_iter()
            .map(|version| VersionInfo {
                version: version.clone(),
                created: self
                    .load(version)
                    .map_or_else(|e| format!("unreadable: {e}"), |p| p.card.created),
                champion: self.state.champion.as_ref() == Some(version),
            })
            .collect()
    }

    /// The model to serve at start-up: a top-level model the registry does not know (a fresh
    /// `perpdesk train`) is imported as the new champion; otherwise the registry's champion; with no
    /// registry, the top-level model imported as the first version. `None`: no usable model.
    pub fn startup(&mut self) -> Result<Option<SignalPredictor>, RegistryError> {
        let top = self.models_dir.join(predictor::CARD_FILE);
        let found = if top.exists() {
            SignalPredictor::load(&self.models_dir)
                .map_err(|error| {
                    tracing::warn!(%error, "top-level signal predictor unreadable: the registry's champion replaces it");
                })
                .ok()
        } else {
            None
        };
        if let Some(mut found) = found {
            let known = self.state.champion.as_deref() == Some(found.card.version.as_str())
                || self.state.previous.contains(&found.card.version)
                || self.state.retired.contains(&found.card.version);
            if !known {
                tracing::info!(version = %found.card.version, "signal predictor from the models directory registered as champion");
                self.promote(&mut found, None)?;
                return Ok(Some(found));
            }
        }
        let Some(mut champion) = self.champion()? else {
            return Ok(None);
        };
        // The top-level files are what the console loads and tools read: they follow the champion.
        let current = SignalPredictor::load(&self.models_dir).ok();
        if current.is_none_or(|c| c.card.version != champion.card.version) {
            self.publish(&mut champion)?;
        }
        Ok(Some(champion))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::ml::{
        predictor::{INPUTS, tests::card},
        trees::{Node, TreeEnsemble},
    };

    fn predictor(version: &str, leaf: f32) -> SignalPredictor {
        let ensemble = TreeEnsemble::new(INPUTS, &[vec![Node::leaf(leaf)]]).unwrap();
        let mut card = card();
        card.version = version.into();
        SignalPredictor::new(ensemble, card)
    }

    fn ws(samples: usize, positives: usize, log_loss: f64, auc: Option<f64>) -> WindowScore {
        WindowScore {
            samples,
            positives,
            log_loss,
            auc,
        }
    }

    #[test]
    fn decide_promotes_only_a_better_challenger_on_a_large_enough_window() {
        let rule = Rule::default();
        let champion = ws(100, 40, 0.65, Some(0.60));
        assert!(decide(&champion, &ws(100, 40, 0.60, Some(0.62)), &rule).promote);
        // Worse or equal log loss.
        assert!(!decide(&champion, &ws(100, 40, 0.66, Some(0.70)), &rule).promote);
        assert!(!decide(&champion, &ws(100, 40, 0.65, Some(0.70)), &rule).promote);
        // Better log loss, AUC too far below.
        let d = decide(&champion, &ws(100, 40, 0.60, Some(0.55)), &rule);
        assert!(!d.promote && d.reason.contains("AUC"), "{d:?}");
        // Too few samples, one class short, different windows.
        assert!(!decide(&ws(10, 4, 0.7, None), &ws(10, 4, 0.1, None), &rule).promote);
        assert!(!decide(&ws(100, 2, 0.7, None), &ws(100, 2, 0.1, None), &rule).promote);
        assert!(!decide(&ws(90, 40, 0.7, None), &ws(100, 40, 0.1, None), &rule).promote);
        assert!(!decide(&champion, &ws(100, 40, f64::NAN, None), &rule).promote);
    }

    proptest! {
        /// Whatever the predictions, a promoted challenger scored better on the window: lower log
        /// loss, AUC within the tolerance.
        #[test]
        fn decide_never_promotes_a_worse_model(
            rows in prop::collection::vec((0.0_f32..1.0, 0.0_f32..1.0, any::<bool>()), 0..120),
        ) {
            let y: Vec<f32> = rows.iter().map(|r| if r.2 { 1.0 } else { 0.0 }).collect();
            let a: Vec<f32> = rows.iter().map(|r| r.0).collect();
            let b: Vec<f32> = rows.iter().map(|r| r.1).collect();
            let (champion, challenger) = (score(&a, &y), score(&b, &y));
            let rule = Rule { min_samples: 10, min_each_class: 2, ..Rule::default() };
            let decision = decide(&champion, &challenger, &rule);
            if decision.promote {
                prop_assert!(challenger.log_loss < champion.log_loss);
                if let (Some(ca), Some(cb)) = (champion.auc, challenger.auc) {
                    prop_assert!(cb >= ca - rule.auc_tolerance);
                }
                prop_assert!(challenger.samples >= rule.min_samples);
            }
            // The same model never replaces itself.
            prop_assert!(!decide(&champion, &champion, &rule).promote);
        }
    }

    #[test]
    fn promote_keeps_versions_and_rollback_returns_to_the_previous_champion() {
        let dir = tempfile::tempdir().unwrap();
        let mut registry = Registry::open(dir.path()).unwrap();
        assert!(registry.champion().unwrap().is_none());
        assert!(matches!(
            registry.rollback(),
            Err(RegistryError::NothingToRollBack)
        ));
        let mut first = predictor("v1", 0.1);
        registry.promote(&mut first, None).unwrap();
        let mut second = predictor("v2", 0.2);
        registry.promote(&mut second, None).unwrap();
        // A reopened registry sees the same state; the top-level file is the champion.
        let mut registry = Registry::open(dir.path()).unwrap();
        assert_eq!(registry.state.champion.as_deref(), Some("v2"));
        assert_eq!(registry.state.previous, vec!["v1".to_owned()]);
        assert_eq!(SignalPredictor::load(dir.path()).unwrap().card.version, "v2");
        assert_eq!(registry.list().len(), 2);
        // A same-named challenger gets a fresh version rather than overwriting a kept one.
        let mut again = predictor("v1", 0.3);
        registry.promote(&mut again, None).unwrap();
        assert_eq!(again.card.version, "v1.2");
        assert_eq!(registry.rollback().unwrap().card.version, "v2");
        let back = registry.rollback().unwrap();
        assert_eq!(back.card.version, "v1");
        assert_eq!(back.ensemble(), first.ensemble());
        assert_eq!(SignalPredictor::load(dir.path()).unwrap().card.version, "v1");
        assert_eq!(registry.state.retired, vec!["v1.2".to_owned(), "v2".to_owned()]);
        assert!(matches!(
            registry.rollback(),
            Err(RegistryError::NothingToRollBack)
        ));
    }

    /// A champion with derived inputs is stored, reloaded and rolled back to with its layout, next to a
    /// base-layout one: hot reload serves either.
    #[test]
    fn versions_with_and_without_derived_inputs_promote_and_roll_back_with_their_layouts() {
        let dir = tempfile::tempdir().unwrap();
        let mut registry = Registry::open(dir.path()).unwrap();
        let mut derived = crate::ml::predictor::tests::derived_predictor();
        derived.card.version = "with-derived".into();
        registry.promote(&mut derived, None).unwrap();
        let mut base = predictor("base", 0.2);
        registry.promote(&mut base, None).unwrap();
        assert!(registry.champion().unwrap().unwrap().derived().is_empty());
        let back = registry.rollback().unwrap();
        assert_eq!(back.card.version, "with-derived");
        assert_eq!(back.derived(), derived.derived());
        assert_eq!(back.ensemble(), derived.ensemble());
        let row = [0.5_f32; crate::ml::predictor::INPUTS];
        assert_eq!(back.probability(&row), derived.probability(&row));
        assert_eq!(
            SignalPredictor::load(dir.path()).unwrap().card.derived_inputs,
            derived.card.derived_inputs
        );
    }

    #[test]
    fn rollback_refuses_an_altered_version_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut registry = Registry::open(dir.path()).unwrap();
        registry.promote(&mut predictor("v1", 0.1), None).unwrap();
        registry.promote(&mut predictor("v2", 0.2), None).unwrap();
        let path = registry.versions_dir().join("v1.onnx");
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        let err = registry.rollback().unwrap_err();
        assert!(err.to_string().contains("sha256"), "{err}");
        assert_eq!(registry.state.champion.as_deref(), Some("v2"));
        assert_eq!(
            Registry::open(dir.path()).unwrap().state.champion.as_deref(),
            Some("v2")
        );
    }

    #[test]
    fn startup_imports_a_freshly_trained_model_and_otherwise_serves_the_champion() {
        let dir = tempfile::tempdir().unwrap();
        let mut registry = Registry::open(dir.path()).unwrap();
        assert!(registry.startup().unwrap().is_none());
        // `perpdesk train` wrote a model: it becomes the first version.
        predictor("trained", 0.1).save(dir.path()).unwrap();
        assert_eq!(registry.startup().unwrap().unwrap().card.version, "trained");
        registry.promote(&mut predictor("online", 0.2), None).unwrap();
        let mut registry = Registry::open(dir.path()).unwrap();
        assert_eq!(registry.startup().unwrap().unwrap().card.version, "online");
        assert_eq!(registry.state.previous, vec!["trained".to_owned()]);
        // Lost top-level files are restored from the champion's version.
        std::fs::remove_file(dir.path().join(predictor::MODEL_FILE)).unwrap();
        assert_eq!(registry.startup().unwrap().unwrap().card.version, "online");
        assert_eq!(SignalPredictor::load(dir.path()).unwrap().card.version, "online");
        assert!(matches!(registry.load("../x"), Err(RegistryError::BadVersion(_))));
    }
}
