//! Bad configuration stops the real binary with exit code 2 and one exact, readable message.
//!
//! One file per error in `tests/invalid_configs/` (the habit of bottom's `tests/invalid_configs/`): each test
//! runs `perpdesk --config FILE config` from that directory, so the file name in the message is short and the
//! expected text is exact. A test fails if a file in the directory has no case here. The binary runs with an
//! empty environment and HOME/XDG directories in a temp dir, so a developer's own config cannot interfere.
//! Bad environment variables, flags, a missing file, a world-readable secrets file and a good configuration
//! (with a secret canary that must never be printed) are checked the same way.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Output},
};

const BIN: &str = env!("CARGO_BIN_EXE_perpdesk");
const CANARY: &str = "CANARY-d41d8cd98f00b204";

fn invalid_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("invalid_configs")
}

/// Run the binary in `cwd` with only the given environment variables (plus a private HOME).
fn run_in(home: &Path, cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(BIN)
        .current_dir(cwd)
        .env_clear()
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_DATA_HOME", home.join("data"))
        .envs(env.iter().copied())
        .args(args)
        .output()
        .expect("run perpdesk")
}

fn run(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let home = tempfile::tempdir().expect("tempdir");
    run_in(home.path(), cwd, args, env)
}

fn assert_config_error(output: &Output, expected: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    assert_eq!(output.status.code(), Some(2), "exit code; stderr: {stderr}");
    assert_eq!(stderr, format!("error: {expected}\n"));
    assert!(
        output.stdout.is_empty(),
        "stdout: {}",
        String::from_utf8_lossy(&output.stdout)
    );
}

fn check_file(name: &str, expected: &str) {
    let file = format!("{name}.toml");
    let output = run(&invalid_dir(), &["--config", &file, "config"], &[]);
    assert_config_error(&output, &expected.replace("FILE", &file));
}

macro_rules! bad_configs {
    ($($name:ident => $expected:expr;)*) => {
        $(
            #[test]
            fn $name() {
                check_file(stringify!($name), $expected);
            }
        )*
        const TESTED_FILES: &[&str] = &[$(stringify!($name)),*];
    };
}

bad_configs! {
    unknown_top_level_key => "FILE:2:1: unknown key `universe_size` at the top level (did you mean `size` in \
        [universe]?); accepted keys: demo, trading_enabled, strategy_mode, venue, universe, engine, ui, paths, \
        logging, ml, features, monitoring, positions, notify, secrets";
    unknown_nested_key => "FILE:3:1: unknown key `timeframe` in [universe] (did you mean `timeframes`?); accepted \
        keys: size, refresh_secs, timeframes, history_bars, ring_capacity, streams_per_connection";
    unknown_subtable => "FILE:1:5: unknown key `tuning` in [ml]; accepted keys: enable_self_learning, \
        self_learning_mode, enable_quantization, quantized_model_path, onnxruntime_library, \
        enable_batch_prediction, batch_prediction_size, batch_max_delay_ms, structure_vector_dim, feature_discovery_rate, \
        strategy_evolution_interval_secs";
    bad_strategy_mode => "FILE:1:17: invalid value for strategy_mode: expected one of ict, self_learning, hybrid, \
        found \"scalping\"";
    bad_venue_env => "FILE:2:7: invalid value for venue.env: expected one of mainnet, testnet, demo, found \"prod\"";
    universe_size_zero => "FILE:2:8: invalid value for universe.size: 0 is out of range: must be 1..=1000";
    view_fps_zero => "FILE:2:12: invalid value for engine.view_fps: 0 is out of range: must be 1..=120";
    rate_out_of_range => "FILE:2:26: invalid value for ml.feature_discovery_rate: 1.5 is out of range: must be \
        from 0 to 1";
    wrong_type_string_for_integer => "FILE:2:8: invalid value for universe.size: expected a positive integer, \
        found \"200\"";
    wrong_type_string_for_bool => "FILE:1:19: invalid value for trading_enabled: expected true or false, found \
        \"yes\"";
    table_expected => "FILE:1:12: invalid value for universe: expected a table [universe], found 200";
    bad_timeframe => "FILE:2:14: invalid value for universe.timeframes: \"10m\" is not a Binance interval: \
        expected one of 1m, 3m, 5m, 15m, 30m, 1h, 2h, 4h, 6h, 8h, 12h, 1d, 3d, 1w, 1M";
    duplicate_timeframe => "FILE:2:14: invalid value for universe.timeframes: \"5m\" is listed twice";
    empty_timeframes => "FILE:2:14: invalid value for universe.timeframes: must list at least one interval";
    bad_rest_url => "FILE:2:12: invalid value for venue.rest_url: \"fapi.binance.com\" is not a valid URL: \
        relative URL without a base";
    ws_url_wrong_scheme => "FILE:2:10: invalid value for venue.ws_url: \"https://fstream.binance.com\" must start \
        with wss:// or ws://";
    bad_log_level => "FILE:2:9: invalid value for logging.level: \"verbose\" is not valid: expected a log level \
        (trace, debug, info, warn, error, off) or a filter such as \"info,perpdesk::binance=debug\"";
    history_exceeds_ring => "universe.history_bars = 1500 (from FILE:2) is larger than universe.ring_capacity = \
        1000 (from FILE:3): the bar buffer cannot hold the history; raise ring_capacity or lower history_bars";
    trading_without_keys => "trading_enabled is true (from FILE:2) but BINANCE_API_KEY and BINANCE_API_SECRET are \
        not set: set BINANCE_API_KEY and BINANCE_API_SECRET, or use --demo, or set TRADING_ENABLED=false to trade \
        on paper";
    redacted_placeholder => "FILE:2:23: invalid value for secrets.discord_webhook_url: \"<redacted>\" is the \
        placeholder printed by `perpdesk config`, not a real value";
    syntax_error => "FILE:3:16: TOML syntax error: extra `=`, expected nothing";
    duplicate_table => "FILE:4:2: TOML syntax error: duplicate key `engine`";
}

#[test]
fn every_invalid_config_file_has_a_test() {
    let mut files: Vec<String> = fs::read_dir(invalid_dir())
        .expect("read tests/invalid_configs")
        .map(|e| e.expect("dir entry").file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let mut tested: Vec<String> = TESTED_FILES.iter().map(|n| format!("{n}.toml")).collect();
    tested.sort();
    assert_eq!(files, tested);
}

#[test]
fn missing_config_file() {
    let output = run(
        &invalid_dir(),
        &["--config", "does_not_exist.toml", "config"],
        &[],
    );
    assert_config_error(
        &output,
        "config file does_not_exist.toml not found (given with --config)",
    );
}

#[test]
fn bad_environment_variables() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "TRADING_ENABLED",
            "yes please",
            "expected true or false, found \"yes please\"",
        ),
        (
            "BATCH_PREDICTION_SIZE",
            "abc",
            "expected a positive integer, found \"abc\"",
        ),
        (
            "BATCH_PREDICTION_SIZE",
            "0",
            "0 is out of range: must be 1..=4096",
        ),
        (
            "BATCH_MAX_DELAY",
            "0.1",
            "expected a positive integer (milliseconds), found \"0.1\"",
        ),
        ("MAX_POSITIONS", "-3", "-3 is out of range: must be 1..=100000"),
        (
            "STRATEGY_MODE",
            "scalp",
            "expected one of ict, self_learning, hybrid, found \"scalp\"",
        ),
        (
            "PERPDESK_ENV",
            "prod",
            "expected one of mainnet, testnet, demo, found \"prod\"",
        ),
        (
            "FEATURE_DISCOVERY_RATE",
            "lots",
            "expected a number from 0 to 1, found \"lots\"",
        ),
        (
            "STRATEGY_EVOLUTION_INTERVAL",
            "5",
            "5 is out of range: must be 60..=604800",
        ),
    ];
    let cwd = std::env::temp_dir();
    for (var, value, problem) in cases {
        let output = run(&cwd, &["config"], &[(var, value)]);
        assert_config_error(&output, &format!("invalid environment variable {var}: {problem}"));
    }
}

#[test]
fn bad_secret_variable_is_named_but_not_echoed() {
    let value = format!("http://hooks.example/{CANARY}");
    let output = run(
        &std::env::temp_dir(),
        &["config"],
        &[("DISCORD_WEBHOOK_URL", &value)],
    );
    assert_config_error(
        &output,
        "invalid environment variable DISCORD_WEBHOOK_URL: expected an https:// URL (value not shown: it is a \
         secret)",
    );
}

#[test]
fn trading_enabled_without_keys() {
    let output = run(&std::env::temp_dir(), &["config"], &[("TRADING_ENABLED", "true")]);
    assert_config_error(
        &output,
        "trading_enabled is true (from environment variable TRADING_ENABLED) but BINANCE_API_KEY and \
         BINANCE_API_SECRET are not set: set BINANCE_API_KEY and BINANCE_API_SECRET, or use --demo, or set \
         TRADING_ENABLED=false to trade on paper",
    );
    // The built-in simulator needs no keys.
    let output = run(
        &std::env::temp_dir(),
        &["--demo", "config"],
        &[("TRADING_ENABLED", "true")],
    );
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn bad_flags() {
    let cwd = std::env::temp_dir();
    let output = run(&cwd, &["config", "--universe-size", "0"], &[]);
    assert_config_error(
        &output,
        "invalid value for --universe-size: 0 is out of range: must be 1..=1000",
    );
    let output = run(&cwd, &["--timeframes", "5m,45m", "config"], &[]);
    assert_config_error(
        &output,
        "invalid value for --timeframes: \"45m\" is not a Binance interval: expected one of 1m, 3m, 5m, 15m, 30m, \
         1h, 2h, 4h, 6h, 8h, 12h, 1d, 3d, 1w, 1M",
    );
    // Values clap itself rejects also exit with 2, with clap's message.
    let output = run(&cwd, &["config", "--mode", "scalp"], &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.starts_with("error: invalid value 'scalp' for '--mode <MODE>'"),
        "{stderr}"
    );
}

#[cfg(unix)]
#[test]
fn secrets_in_a_readable_file_are_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("perpdesk.toml");
    fs::write(
        &path,
        format!("[secrets]\ndiscord_webhook_url = \"https://discord.com/api/webhooks/1/{CANARY}\"\n"),
    )
    .expect("write");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
    let output = run(dir.path(), &["--config", "perpdesk.toml", "config"], &[]);
    assert_config_error(
        &output,
        "perpdesk.toml contains secrets but other users can read it (mode 0644): run `chmod 600 perpdesk.toml` \
         or move the secrets to environment variables",
    );
}

#[test]
fn good_config_prints_effective_values_without_secrets() {
    let home = tempfile::tempdir().expect("tempdir");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("perpdesk.toml");
    fs::write(
        &path,
        format!(
            "strategy_mode = \"hybrid\"\n\n[universe]\nsize = 100\ntimeframes = [\"15m\", \"1h\"]\n\n\
             [secrets]\ndiscord_webhook_url = \"https://discord.com/api/webhooks/1/{CANARY}\"\n"
        ),
    )
    .expect("write");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    let env = [
        ("TRADING_ENABLED", "true"),
        ("BINANCE_API_KEY", CANARY),
        ("BINANCE_API_SECRET", CANARY),
        ("DISCORD_TOKEN", CANARY),
        ("DISCORD_CHANNEL_ID", "1234567890"),
        ("MAX_POSITIONS", "12"),
    ];
    let output = run_in(
        home.path(),
        dir.path(),
        &["--config", "perpdesk.toml", "config", "--universe-size", "50"],
        &env,
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "stderr: {stderr}");
    assert!(stderr.is_empty(), "stderr: {stderr}");
    assert!(
        !stdout.contains(CANARY) && !stderr.contains(CANARY),
        "secret leaked:\n{stdout}"
    );
    assert!(!stdout.contains("1234567890"), "channel id leaked:\n{stdout}");

    let lines: Vec<&str> = stdout.lines().collect();
    for expected in [
        "# config file: perpdesk.toml",
        "trading_enabled = true                   # env TRADING_ENABLED",
        "strategy_mode = \"hybrid\"                 # file, line 1",
        "size = 50                                # flag --universe-size",
        "timeframes = [\"15m\", \"1h\"]               # file, line 5",
        "history_bars = 500                       # default",
        "max_positions = 12                       # env MAX_POSITIONS",
        "batch_prediction_size = 32               # default (env BATCH_PREDICTION_SIZE)",
        "# binance_api_key = \"<redacted>\"         # env BINANCE_API_KEY",
        "# binance_api_secret = \"<redacted>\"      # env BINANCE_API_SECRET",
        "# discord_webhook_url = \"<redacted>\"     # file, line 8",
    ] {
        assert!(
            lines.contains(&expected),
            "missing line {expected:?} in:\n{stdout}"
        );
    }
    let data_dir = home.path().join("data").join("perpdesk");
    let data_line = format!("data_dir = \"{}\"", data_dir.display());
    assert!(lines.iter().any(|l| l.starts_with(&data_line)), "{stdout}");

    // The output is itself a valid config file (secrets still come from the environment).
    let again = dir.path().join("again.toml");
    fs::write(&again, stdout.as_bytes()).expect("write");
    let output = run_in(
        home.path(),
        dir.path(),
        &["--config", "again.toml", "config"],
        &env[..3],
    );
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("size = 50                                # file,")
    );
}

#[test]
fn default_config_file_is_found_in_the_platform_config_dir() {
    let home = tempfile::tempdir().expect("tempdir");
    let cfg_dir = home.path().join("config").join("perpdesk");
    fs::create_dir_all(&cfg_dir).expect("mkdir");
    fs::write(cfg_dir.join("perpdesk.toml"), "[engine]\nview_fps = 12\n").expect("write");
    let output = run_in(home.path(), home.path(), &["config"], &[]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains(&format!(
            "# config file: {}",
            cfg_dir.join("perpdesk.toml").display()
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("view_fps = 12                            # file, line 2\n"),
        "{stdout}"
    );
}
