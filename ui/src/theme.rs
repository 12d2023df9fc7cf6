//! Colour themes: one colour per role on screen, loaded from TOML.
//!
//! Widgets never name a colour; they ask the [`Theme`] for a role (`up`, `alert`, `selection_bg`…), so
//! a light terminal, a high-contrast setup or a user's own file changes every screen at once. The
//! built-in themes are the files in the top-level `themes/` folder, embedded at compile time so the
//! binary works from any directory. Colours are written as names or 256-colour indexes: those render
//! the same on every xterm-256color terminal, over SSH and inside tmux, where true colour often does
//! not; `#rrggbb` is accepted for users who know their terminal supports it.
//!
//! Every key is required and unknown keys are refused, so a typo in a theme file is an error that
//! names the key instead of a silently default-coloured widget.

use std::{fmt, path::Path};

use ratatui::style::Color;
use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

/// The built-in themes, by the name `Theme::builtin` accepts, with their TOML source.
pub const BUILTIN_THEMES: &[(&str, &str)] = &[
    ("default", include_str!("../../themes/default.toml")),
    ("light", include_str!("../../themes/light.toml")),
    ("high-contrast", include_str!("../../themes/high-contrast.toml")),
];

/// Why a theme could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ThemeError {
    #[error("no built-in theme named {name:?}; the built-in themes are default, light and high-contrast")]
    UnknownBuiltin { name: String },
    #[error("cannot read theme file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("theme {origin}: {source}")]
    Syntax {
        origin: String,
        source: Box<toml::de::Error>,
    },
    #[error(
        "theme {origin}: key `{key}` has the bad colour {value}: {reason}; write a name such as \"red\" \
         or \"dark_gray\", a 256-colour index 0-255 such as \"196\" or 196, or \"#rrggbb\""
    )]
    BadColour {
        origin: String,
        key: &'static str,
        value: String,
        reason: &'static str,
    },
}

/// Colour names accepted in theme files, with the ratatui colour each stands for.
///
/// `gray` is ANSI colour 7 and `white` is bright white (15), as ratatui names them.
const COLOUR_NAMES: &[(&str, Color)] = &[
    ("reset", Color::Reset),
    ("black", Color::Black),
    ("red", Color::Red),
    ("green", Color::Green),
    ("yellow", Color::Yellow),
    ("blue", Color::Blue),
    ("magenta", Color::Magenta),
    ("cyan", Color::Cyan),
    ("gray", Color::Gray),
    ("dark_gray", Color::DarkGray),
    ("light_red", Color::LightRed),
    ("light_green", Color::LightGreen),
    ("light_yellow", Color::LightYellow),
    ("light_blue", Color::LightBlue),
    ("light_magenta", Color::LightMagenta),
    ("light_cyan", Color::LightCyan),
    ("white", Color::White),
];

/// Defines [`Theme`], its file form and the list of keys from one list of roles, so that the struct,
/// the parser and the "every key is present" check cannot drift apart.
macro_rules! theme_roles {
    ($($(#[doc = $doc:literal])+ $role:ident,)+) => {
        /// The colour of every role on screen.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct Theme {
            $($(#[doc = $doc])+ pub $role: Color,)+
        }

        /// A theme file as written: every role required, nothing else allowed.
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct ThemeFile {
            $($role: ColourValue,)+
        }

        impl ThemeFile {
            fn resolve(self, origin: &str) -> Result<Theme, ThemeError> {
                Ok(Theme { $($role: self.$role.resolve(origin, stringify!($role))?,)+ })
            }
        }

        impl Theme {
            /// Every key a theme file must have, in the order of the struct.
            pub const KEYS: &'static [&'static str] = &[$(stringify!($role),)+];
        }

        impl Serialize for Theme {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                use serde::ser::SerializeStruct;
                let mut file = serializer.serialize_struct("Theme", Self::KEYS.len())?;
                $(file.serialize_field(stringify!($role), &colour_to_text(self.$role))?;)+
                file.end()
            }
        }
    };
}

theme_roles! {
    /// Ordinary text.
    text,
    /// Fill of the whole screen (`reset` keeps the terminal's own background).
    background,
    /// Secondary text: column headings, units, hints, axis labels.
    muted,
    /// Pane borders.
    border,
    /// Pane titles.
    title,
    /// Keys in hints and help, the sorted column, the filter being typed.
    accent,
    /// Text of the top line.
    header_fg,
    /// Background of the top line.
    header_bg,
    /// Text of the `PAPER` badge.
    paper_fg,
    /// Background of the `PAPER` badge.
    paper_bg,
    /// Text of the `LIVE` badge: real orders are being sent.
    live_fg,
    /// Background of the `LIVE` badge; must stand out from everything else.
    live_bg,
    /// Healthy state: all streams connected.
    ok,
    /// Attention: degraded or connecting, a mode change in flight, a slow stream.
    warning,
    /// Something is wrong: disconnected, stale data.
    alert,
    /// Rising prices and positive changes.
    up,
    /// Falling prices and negative changes.
    down,
    /// Text of the selected scanner row.
    selection_fg,
    /// Background of the selected scanner row.
    selection_bg,
    /// Text of the bottom line.
    status_fg,
    /// Background of the bottom line.
    status_bg,
    /// Background of the help overlay.
    overlay_bg,
    /// Background of bullish order-block and fair-value-gap bands on the chart (candles draw on top).
    zone_bull_bg,
    /// Background of bearish order-block and fair-value-gap bands on the chart.
    zone_bear_bg,
    /// Liquidity levels (pools of equal highs / lows) on the chart.
    liquidity,
    /// Risk score up to 0.2 (checked every 5 s): heatmap cells, the 5 s scheduler lane.
    risk_low,
    /// Risk score above 0.2 (every 2 s).
    risk_medium,
    /// Risk score above 0.5 (every 500 ms).
    risk_high,
    /// Risk score above 0.8 (every 100 ms): at the stop, the target or liquidation.
    risk_critical,
}

impl Theme {
    /// The built-in theme `default`, `light` or `high-contrast`.
    pub fn builtin(name: &str) -> Result<Self, ThemeError> {
        let (_, source) = BUILTIN_THEMES
            .iter()
            .find(|(builtin, _)| *builtin == name)
            .ok_or_else(|| ThemeError::UnknownBuiltin {
                name: name.to_owned(),
            })?;
        Self::from_toml_str(source, &format!("built-in {name:?}"))
    }

    /// A theme from a TOML file of the same shape as `themes/default.toml`.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ThemeError> {
        let path = path.as_ref();
        let origin = path.display().to_string();
        let source = std::fs::read_to_string(path).map_err(|source| ThemeError::Read {
            path: origin.clone(),
            source,
        })?;
        Self::from_toml_str(&source, &origin)
    }

    /// A theme from TOML text; `origin` names it in errors (a path, or `built-in "light"`).
    pub fn from_toml_str(source: &str, origin: &str) -> Result<Self, ThemeError> {
        let file: ThemeFile = toml::from_str(source).map_err(|source| ThemeError::Syntax {
            origin: origin.to_owned(),
            source: Box::new(source),
        })?;
        file.resolve(origin)
    }
}

impl Default for Theme {
    /// The built-in `default` theme. Falls back to terminal colours only if the embedded file were
    /// broken, which the unit tests rule out.
    fn default() -> Self {
        Self::builtin("default").unwrap_or(Self {
            text: Color::Reset,
            background: Color::Reset,
            muted: Color::DarkGray,
            border: Color::DarkGray,
            title: Color::Reset,
            accent: Color::Cyan,
            header_fg: Color::Reset,
            header_bg: Color::Reset,
            paper_fg: Color::Black,
            paper_bg: Color::Cyan,
            live_fg: Color::White,
            live_bg: Color::Red,
            ok: Color::Green,
            warning: Color::Yellow,
            alert: Color::Red,
            up: Color::Green,
            down: Color::Red,
            selection_fg: Color::Black,
            selection_bg: Color::Gray,
            status_fg: Color::Reset,
            status_bg: Color::Reset,
            overlay_bg: Color::Reset,
            zone_bull_bg: Color::Indexed(22),
            zone_bear_bg: Color::Indexed(52),
            liquidity: Color::Yellow,
            risk_low: Color::Green,
            risk_medium: Color::Yellow,
            risk_high: Color::LightRed,
            risk_critical: Color::LightMagenta,
        })
    }
}

/// A theme embedded in a larger config file (e.g. a `[theme]` table) deserialises the same way as a
/// theme file.
impl<'de> Deserialize<'de> for Theme {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        ThemeFile::deserialize(deserializer)?
            .resolve("table")
            .map_err(de::Error::custom)
    }
}

/// A colour as written in the file, before it is checked.
#[derive(Debug)]
enum ColourValue {
    Index(i64),
    Text(String),
}

impl ColourValue {
    fn resolve(self, origin: &str, key: &'static str) -> Result<Color, ThemeError> {
        let bad = |value: String, reason| ThemeError::BadColour {
            origin: origin.to_owned(),
            key,
            value,
            reason,
        };
        match self {
            Self::Index(index) => u8::try_from(index)
                .map(Color::Indexed)
                .map_err(|_| bad(index.to_string(), "a colour index must be 0-255")),
            Self::Text(text) => parse_colour(&text).map_err(|reason| bad(format!("{text:?}"), reason)),
        }
    }
}

impl<'de> Deserialize<'de> for ColourValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ColourVisitor;

        impl de::Visitor<'_> for ColourVisitor {
            type Value = ColourValue;

            fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
                formatter.write_str("a colour name such as \"red\", a 256-colour index 0-255, or \"#rrggbb\"")
            }

            fn visit_i64<E: de::Error>(self, value: i64) -> Result<ColourValue, E> {
                Ok(ColourValue::Index(value))
            }

            fn visit_u64<E: de::Error>(self, value: u64) -> Result<ColourValue, E> {
                Ok(ColourValue::Index(i64::try_from(value).unwrap_or(i64::MAX)))
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<ColourValue, E> {
                Ok(ColourValue::Text(value.to_owned()))
            }
        }

        deserializer.deserialize_any(ColourVisitor)
    }
}

/// Parses `"red"`, `"dark_gray"`, `"196"` or `"#1e90ff"`; the error says what was wrong.
fn parse_colour(text: &str) -> Result<Color, &'static str> {
    let normalised = text
        .trim()
        .to_ascii_lowercase()
        .replace(['-', ' '], "_")
        .replace("grey", "gray");
    if let Some(hex) = normalised.strip_prefix('#') {
        if hex.len() != 6 || !hex.bytes().all(|byte| byte.is_ascii_hexdigit()) {
            return Err("a true colour must be written #rrggbb with six hex digits");
        }
        let channel = |at: usize| u8::from_str_radix(&hex[at..at + 2], 16).unwrap_or(0);
        return Ok(Color::Rgb(channel(0), channel(2), channel(4)));
    }
    if !normalised.is_empty() && normalised.bytes().all(|byte| byte.is_ascii_digit()) {
        return normalised
            .parse::<u8>()
            .map(Color::Indexed)
            .map_err(|_| "a colour index must be 0-255");
    }
    COLOUR_NAMES
        .iter()
        .find(|(name, _)| *name == normalised)
        .map(|(_, colour)| *colour)
        .ok_or("unknown colour name")
}

/// The text a theme file would use for `colour` (the inverse of [`parse_colour`]).
fn colour_to_text(colour: Color) -> String {
    if let Color::Indexed(index) = colour {
        return index.to_string();
    }
    if let Color::Rgb(red, green, blue) = colour {
        return format!("#{red:02x}{green:02x}{blue:02x}");
    }
    COLOUR_NAMES
        .iter()
        .find(|(_, named)| *named == colour)
        .map_or_else(|| "reset".to_owned(), |(name, _)| (*name).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_theme_parses_with_every_key() {
        for (name, source) in BUILTIN_THEMES {
            let theme = Theme::builtin(name).unwrap_or_else(|error| panic!("{error}"));
            let table: toml::Table = toml::from_str(source).unwrap();
            let mut keys: Vec<&str> = table.keys().map(String::as_str).collect();
            let mut expected = Theme::KEYS.to_vec();
            keys.sort_unstable();
            expected.sort_unstable();
            assert_eq!(keys, expected, "theme {name} must set exactly the theme keys");
            assert_ne!(theme.up, theme.down, "theme {name}: up and down must differ");
            assert_ne!(
                theme.live_bg, theme.paper_bg,
                "theme {name}: LIVE must not look like PAPER"
            );
            assert_ne!(
                theme.zone_bull_bg, theme.zone_bear_bg,
                "theme {name}: bullish and bearish zones must differ"
            );
            let risk = [
                theme.risk_low,
                theme.risk_medium,
                theme.risk_high,
                theme.risk_critical,
            ];
            for (index, colour) in risk.iter().enumerate() {
                assert!(
                    !risk[index + 1..].contains(colour) && *colour != theme.background,
                    "theme {name}: the four risk bands must differ from each other and the background"
                );
            }
            for zone in [theme.zone_bull_bg, theme.zone_bear_bg] {
                assert!(
                    ![theme.up, theme.down, theme.background].contains(&zone),
                    "theme {name}: candles must stay readable on a zone band"
                );
            }
        }
    }

    #[test]
    fn builtin_themes_avoid_true_colour() {
        for (name, _) in BUILTIN_THEMES {
            let theme = Theme::builtin(name).unwrap();
            let table = toml::Table::try_from(theme).unwrap();
            for (key, value) in &table {
                assert!(
                    !value.as_str().unwrap().starts_with('#'),
                    "theme {name}: {key} is true colour"
                );
            }
        }
    }

    #[test]
    fn unknown_builtin_is_named() {
        let error = Theme::builtin("solarized").unwrap_err();
        assert_eq!(
            error.to_string(),
            "no built-in theme named \"solarized\"; the built-in themes are default, light and high-contrast"
        );
    }

    fn default_source_with(key: &str, line: &str) -> String {
        let (_, source) = BUILTIN_THEMES[0];
        source
            .lines()
            .map(|existing| {
                if existing.starts_with(&format!("{key} =")) {
                    line
                } else {
                    existing
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn colours_parse_from_names_indexes_and_hex() {
        assert_eq!(parse_colour("red"), Ok(Color::Red));
        assert_eq!(parse_colour("dark_gray"), Ok(Color::DarkGray));
        assert_eq!(parse_colour("Dark-Grey"), Ok(Color::DarkGray));
        assert_eq!(parse_colour("196"), Ok(Color::Indexed(196)));
        assert_eq!(parse_colour("#1e90FF"), Ok(Color::Rgb(0x1e, 0x90, 0xff)));
        assert_eq!(parse_colour("reset"), Ok(Color::Reset));
        let source = default_source_with("up", "up = 46");
        assert_eq!(
            Theme::from_toml_str(&source, "test").unwrap().up,
            Color::Indexed(46)
        );
    }

    #[test]
    fn bad_colour_names_the_key_and_the_value() {
        let source = default_source_with("alert", "alert = \"blood\"");
        let error = Theme::from_toml_str(&source, "my.toml").unwrap_err();
        assert!(matches!(error, ThemeError::BadColour { key: "alert", .. }));
        assert!(
            error.to_string().starts_with(
                "theme my.toml: key `alert` has the bad colour \"blood\": unknown colour name; write a name"
            ),
            "{error}"
        );
    }

    #[test]
    fn out_of_range_index_names_the_key_and_the_value() {
        let source = default_source_with("down", "down = 300");
        let error = Theme::from_toml_str(&source, "my.toml").unwrap_err();
        assert!(
            error.to_string().starts_with(
                "theme my.toml: key `down` has the bad colour 300: a colour index must be 0-255"
            )
        );
        let source = default_source_with("down", "down = \"256\"");
        let error = Theme::from_toml_str(&source, "my.toml").unwrap_err();
        assert!(
            error
                .to_string()
                .contains("key `down` has the bad colour \"256\": a colour index must be 0-255")
        );
        let source = default_source_with("down", "down = \"#12345\"");
        let error = Theme::from_toml_str(&source, "my.toml").unwrap_err();
        assert!(
            error
                .to_string()
                .contains("key `down` has the bad colour \"#12345\": a true colour must be")
        );
    }

    #[test]
    fn missing_and_unknown_keys_are_refused_by_name() {
        let missing = default_source_with("selection_bg", "");
        let error = Theme::from_toml_str(&missing, "my.toml").unwrap_err().to_string();
        assert!(error.contains("missing field `selection_bg`"), "{error}");

        let unknown = format!("{}\nselection_background = \"red\"\n", BUILTIN_THEMES[0].1);
        let error = Theme::from_toml_str(&unknown, "my.toml").unwrap_err().to_string();
        assert!(error.contains("unknown field `selection_background`"), "{error}");

        let wrong_type = default_source_with("muted", "muted = true");
        let error = Theme::from_toml_str(&wrong_type, "my.toml")
            .unwrap_err()
            .to_string();
        assert!(error.contains("a colour name such as \"red\""), "{error}");
    }

    #[test]
    fn from_file_reads_and_names_a_missing_file() {
        let dir = std::env::temp_dir().join(format!("perpdesk-ui-theme-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("mine.toml");
        std::fs::write(&path, default_source_with("accent", "accent = \"magenta\"")).unwrap();
        assert_eq!(Theme::from_file(&path).unwrap().accent, Color::Magenta);
        std::fs::remove_file(&path).unwrap();
        let error = Theme::from_file(&path).unwrap_err().to_string();
        assert!(
            error.starts_with(&format!("cannot read theme file {}: ", path.display())),
            "{error}"
        );
        std::fs::remove_dir(&dir).unwrap();
    }

    #[test]
    fn theme_round_trips_through_toml() {
        for (name, _) in BUILTIN_THEMES {
            let theme = Theme::builtin(name).unwrap();
            let text = toml::to_string(&theme).unwrap();
            assert_eq!(Theme::from_toml_str(&text, "round trip").unwrap(), theme);
            let embedded: Theme = toml::from_str(&text).unwrap();
            assert_eq!(embedded, theme);
        }
    }
}
