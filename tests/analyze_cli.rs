//! `perpdesk analyze`, the real binary, on the golden inputs and on real klines.
//!
//! * On each golden input, run with the parameters of `out/<DS>_meta.json`, the output has the golden
//!   header — input columns, every `_ta.csv` column, every `_smc.csv` column, in their order — with one
//!   `<prefix>_KnownAt` column after each event family; the input columns are byte-identical to the golden
//!   files'; every indicator column matches to 1e-9 relative with the same empty cells (as
//!   `golden_indicators`); every SMC column matches under `golden_smc`'s tolerances except exactly the rows
//!   `docs/smc-differences.md` lists; integral golden cells (flags, indices) are the same text. `KnownAt`
//!   is checked against what SPEC §1 says about when each family can be known.
//! * On a real kline CSV (86 k bars' worth of BTCUSDT 1m is 43 199 rows here), with and without its header
//!   line: row count, order, and the same invariants.
//! * A bad file exits 2 with a message naming the file and the line; so do inconsistent parameters.
//!
//! The golden and kline files come from `../shared` (see `tests/common`).

// Test code: a failed unwrap is a failed test with its location.
#![allow(clippy::unwrap_used)]

mod common;

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use common::golden::{
    Columns, INPUT_COLUMNS, check_against_document, differences, documented, is_float32, load_columns,
    load_table,
};

const DATASETS: [&str; 3] = ["ETHUSDT_15m", "XRPUSDT_5m", "EURUSD_15M"];

/// The event families that get a `KnownAt` column, with the column whose presence marks a record.
const FAMILIES: [(&str, &str); 19] = [
    ("fvg", "FVG"),
    ("fvgj", "FVG"),
    ("swing_s5", "HighLow"),
    ("bos_s5", "Level"),
    ("ob_s5", "OB"),
    ("liq_s5", "Liquidity"),
    ("ret_s5", ""),
    ("swing_s10", "HighLow"),
    ("bos_s10", "Level"),
    ("ob_s10", "OB"),
    ("liq_s10", "Liquidity"),
    ("ret_s10", ""),
    ("phl_4h", "PreviousHigh"),
    ("phl_1D", "PreviousHigh"),
    ("phl_W", "PreviousHigh"),
    ("sess_Sydney", "Active"),
    ("sess_London", "Active"),
    ("sess_New_York", "Active"),
    ("sess_New_York_kill_zone", "Active"),
];

fn perpdesk(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_perpdesk"))
        .arg("analyze")
        .args(args)
        .output()
        .unwrap()
}

fn run_to_file(input: &Path, output: &Path, extra: &[&str]) -> String {
    let mut args = vec![
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = perpdesk(&args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "perpdesk analyze failed: {stderr}");
    std::fs::read_to_string(output).unwrap()
}

/// The golden parameters as flags: per set (s5, s10) swing length, close break, close mitigation and
/// range percent.
fn meta_flags(meta: &str) -> Vec<String> {
    let meta: serde_json::Value = serde_json::from_str(meta).unwrap();
    let sets = ["s5", "s10"].map(|p| &meta["smc"][p]);
    let list = |key: &str| {
        sets.iter()
            .map(|s| s[key].to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    vec![
        "--swing-length".to_owned(),
        list("swing_length"),
        "--close-break".to_owned(),
        list("bos_choch.close_break"),
        "--close-mitigation".to_owned(),
        list("ob.close_mitigation"),
        "--liquidity-range-percent".to_owned(),
        list("liquidity.range_percent"),
    ]
}

fn known_at_columns(header: &[String]) -> Vec<&str> {
    header
        .iter()
        .map(String::as_str)
        .filter(|c| c.ends_with("_KnownAt"))
        .collect()
}

/// The family a column belongs to: the longest family prefix it starts with (`sess_New_York_kill_zone_Low`
/// belongs to `sess_New_York_kill_zone`, not `sess_New_York`).
fn family_of(column: &str) -> Option<&'static str> {
    FAMILIES
        .iter()
        .map(|(prefix, _)| *prefix)
        .filter(|prefix| column.starts_with(&format!("{prefix}_")))
        .max_by_key(|prefix| prefix.len())
}

/// The `KnownAt` columns sit right after their family and obey SPEC §1's timing; returns how many cells
/// were checked.
fn check_known_at(label: &str, header: &[String], ours: &Columns) -> usize {
    let rows = ours["idx"].len();
    let expected: Vec<String> = FAMILIES.iter().map(|(p, _)| format!("{p}_KnownAt")).collect();
    assert_eq!(known_at_columns(header), expected, "{label}: KnownAt columns");
    let mut checked = 0;
    for (prefix, marker) in FAMILIES {
        let position = header
            .iter()
            .position(|c| *c == format!("{prefix}_KnownAt"))
            .unwrap();
        assert_eq!(
            family_of(&header[position - 1]),
            Some(prefix),
            "{label}: {prefix}_KnownAt follows {}",
            header[position - 1]
        );
        if let Some(next) = header.get(position + 1) {
            assert_ne!(
                family_of(next),
                Some(prefix),
                "{label}: {prefix}_KnownAt is not last"
            );
        }
        let known = &ours[&format!("{prefix}_KnownAt")];
        for r in 0..rows {
            let has_record = if marker.is_empty() {
                known[r].is_some()
            } else if prefix.starts_with("sess_") {
                ours[&format!("{prefix}_{marker}")][r] == Some(1.0)
            } else {
                ours[&format!("{prefix}_{marker}")][r].is_some()
            };
            assert_eq!(known[r].is_some(), has_record, "{label} {prefix}_KnownAt row {r}");
            let Some(k) = known[r] else { continue };
            checked += 1;
            let row = r as f64;
            assert!(
                k >= row,
                "{label} {prefix} row {r}: known at {k}, before its own bar"
            );
            assert!(
                k < rows as f64,
                "{label} {prefix} row {r}: known at {k}, after the data"
            );
            // SPEC §1: a gap needs the next bar; a swing of length n needs n more bars (the row-0
            // bookend comes with the first swing); calendar families are known at their bar.
            match prefix {
                "fvg" => assert_eq!(k, row + 1.0, "{label} fvg row {r}"),
                "fvgj" => assert!(k > row, "{label} fvgj row {r}"),
                "swing_s5" if r > 0 => assert!(k >= row + 5.0, "{label} swing_s5 row {r}: {k}"),
                "swing_s10" if r > 0 => assert!(k >= row + 10.0, "{label} swing_s10 row {r}: {k}"),
                "bos_s5" => {
                    assert!(k >= row + 5.0, "{label} bos_s5 row {r}: {k}");
                    assert!(
                        ours["bos_s5_BrokenIndex"][r].unwrap() <= k,
                        "{label} bos_s5 row {r}"
                    );
                }
                "bos_s10" => {
                    assert!(k >= row + 10.0, "{label} bos_s10 row {r}: {k}");
                    assert!(
                        ours["bos_s10_BrokenIndex"][r].unwrap() <= k,
                        "{label} bos_s10 row {r}"
                    );
                }
                p if p.starts_with("phl_") || p.starts_with("sess_") => {
                    assert_eq!(k, row, "{label} {p} row {r}");
                }
                p if p.starts_with("ret_") => assert!(k > row, "{label} {p} row {r}: {k}"),
                _ => {}
            }
        }
    }
    checked
}

#[test]
fn golden_inputs_reproduce_the_golden_columns() {
    let dir = tempfile::tempdir().unwrap();
    for dataset in DATASETS {
        let Some(input) = common::shared_path(&format!("golden/inputs/{dataset}.csv")) else {
            return;
        };
        let Some(meta) = common::read_shared(&format!("golden/out/{dataset}_meta.json")) else {
            return;
        };
        let Some(ta_text) = common::read_shared(&format!("golden/out/{dataset}_ta.csv")) else {
            return;
        };
        let Some(smc_text) = common::read_shared(&format!("golden/out/{dataset}_smc.csv")) else {
            return;
        };
        let output = dir.path().join(format!("{dataset}.csv"));
        let flags = meta_flags(&meta);
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        let text = run_to_file(&input, &output, &flags);

        // Header: the golden columns in the golden order, plus the KnownAt columns.
        let (header, _) = load_table(&text);
        let (ta_header, _) = load_table(&ta_text);
        let (smc_header, _) = load_table(&smc_text);
        let golden_header: Vec<&String> = ta_header
            .iter()
            .chain(smc_header.iter().skip(INPUT_COLUMNS.len()))
            .collect();
        let without_known_at: Vec<&String> = header.iter().filter(|c| !c.ends_with("_KnownAt")).collect();
        assert_eq!(without_known_at, golden_header, "{dataset}: header");

        // Input columns: the same text as in the golden files (integers, time, %.12g prices).
        let cells = |t: &str| -> Vec<Vec<String>> {
            t.lines()
                .skip(1)
                .map(|l| {
                    l.split(',')
                        .take(INPUT_COLUMNS.len())
                        .map(str::to_owned)
                        .collect()
                })
                .collect()
        };
        assert_eq!(cells(&text), cells(&ta_text), "{dataset}: input columns");

        let ours = load_columns(&text);
        let ta = load_columns(&ta_text);
        let smc = load_columns(&smc_text);

        // Indicators: SPEC §0.3's rule, as in tests/golden_indicators.rs.
        for column in ta_header.iter().skip(INPUT_COLUMNS.len()) {
            for (r, (mine, theirs)) in ours[column].iter().zip(&ta[column]).enumerate() {
                match (mine, theirs) {
                    (None, None) => {}
                    (Some(m), Some(t)) if *t == 0.0 => assert_eq!(*m, 0.0, "{dataset} {column}[{r}]"),
                    (Some(m), Some(t)) => assert!(
                        (m - t).abs() <= 1e-9 * t.abs(),
                        "{dataset} {column}[{r}]: ours {m:e}, golden {t:e}"
                    ),
                    _ => panic!("{dataset} {column}[{r}]: ours {mine:?}, golden {theirs:?}"),
                }
            }
        }

        // SMC: golden_smc's tolerances, differing exactly on the documented rows.
        let compared: Vec<String> = smc_header.iter().skip(INPUT_COLUMNS.len()).cloned().collect();
        assert_eq!(compared.len(), 70, "{dataset}: golden SMC column count");
        let diffs = differences(&ours, &smc, &compared);
        let failures = check_against_document(dataset, &diffs, &compared);
        assert!(failures.is_empty(), "differences not as documented:\n{failures}");

        // Encoding: where the golden cell is an integer (flags, indices, 0 for "never"), ours is the
        // same text, outside the documented rows. Float32 columns are excluded: there an integer can be
        // float32 rounding (a volume of 8815362.3 stored as 8815362).
        let doc = documented();
        let our_rows: Vec<Vec<&str>> = text.lines().skip(1).map(|l| l.split(',').collect()).collect();
        let golden_rows: Vec<Vec<&str>> = smc_text.lines().skip(1).map(|l| l.split(',').collect()).collect();
        let mut integral = 0;
        for column in compared.iter().filter(|c| !is_float32(c)) {
            let ours_at = header.iter().position(|c| c == column).unwrap();
            let theirs_at = smc_header.iter().position(|c| c == column).unwrap();
            let listed = doc.get(&(dataset.to_owned(), column.clone()));
            for (r, (mine, theirs)) in our_rows.iter().zip(&golden_rows).enumerate() {
                let golden_cell = theirs[theirs_at];
                if golden_cell.parse::<i64>().is_ok() && !listed.is_some_and(|rows| rows.contains(&r)) {
                    integral += 1;
                    assert_eq!(mine[ours_at], golden_cell, "{dataset} {column}[{r}]: encoding");
                }
            }
        }
        assert!(
            integral > 10 * our_rows.len(),
            "{dataset}: {integral} integral cells compared"
        );

        let checked = check_known_at(dataset, &header, &ours);
        assert!(checked > our_rows.len(), "{dataset}: {checked} KnownAt cells");
    }
}

fn kline_file() -> Option<PathBuf> {
    common::shared_path("data/klines/usdm_alpergulsen/BTCUSDT_1m.csv")
}

#[test]
fn real_klines_with_and_without_header() {
    let Some(input) = kline_file() else {
        return;
    };
    let source = std::fs::read_to_string(&input).unwrap();
    let lines: Vec<&str> = source.lines().collect();
    assert!(lines[0].starts_with("open_time_ms,"), "the file has a header");
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("btc.csv");
    let text = run_to_file(&input, &output, &[]);

    let (header, rows) = load_table(&text);
    assert_eq!(rows.len(), lines.len() - 1, "one output row per bar");
    let ours = load_columns(&text);
    for (r, line) in lines[1..].iter().enumerate() {
        let open_time: f64 = line.split(',').next().unwrap().parse().unwrap();
        assert_eq!(ours["idx"][r], Some(r as f64));
        assert_eq!(ours["open_time_ms"][r], Some(open_time));
        let [high, low, close] = ["high", "low", "close"].map(|c| ours[c][r].unwrap());
        assert!(low <= close && close <= high, "row {r}");
        if let Some(rsi) = ours["rsi14"][r] {
            assert!((0.0..=100.0).contains(&rsi), "rsi14[{r}] = {rsi}");
        }
        if let (Some(top), Some(bottom)) = (ours["fvg_Top"][r], ours["fvg_Bottom"][r]) {
            assert!(top > bottom, "fvg row {r}");
        }
    }
    assert!(ours["ema200"][198].is_none() && ours["ema200"][199].is_some());
    let checked = check_known_at("BTCUSDT_1m", &header, &ours);
    assert!(checked > rows.len(), "{checked} KnownAt cells");

    // The same bars without the header line give the same output.
    let headerless = dir.path().join("btc_no_header.csv");
    std::fs::write(&headerless, lines[1..].join("\n")).unwrap();
    let again = run_to_file(&headerless, &dir.path().join("btc2.csv"), &[]);
    assert!(again == text, "headerless input gives a different output");
}

#[test]
fn output_goes_to_stdout_without_output_flag() {
    let Some(input) = common::read_shared("golden/inputs/XRPUSDT_5m.csv") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("small.csv");
    let head: Vec<&str> = input.lines().take(301).collect();
    std::fs::write(&small, head.join("\n")).unwrap();
    let out = perpdesk(&["--input", small.to_str().unwrap()]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let in_file = run_to_file(&small, &dir.path().join("small_out.csv"), &[]);
    assert_eq!(text, in_file);
    assert_eq!(text.lines().count(), 301);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("analyze: 300 rows, 126 columns"), "{stderr}");
}

#[test]
fn bad_input_exits_2_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        "open_time_ms,open,high,low,close,volume\n\
         1689678780000,29996.9,30002,29996.9,30001.9,60.905\n\
         1689678840000,30002,30002,oops,30001.4,65.706\n",
    )
    .unwrap();
    let out = perpdesk(&["--input", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        stderr.trim(),
        format!("error: {}:3: `low` is not a number: `oops`", bad.display())
    );
    assert!(out.stdout.is_empty());

    let unordered = dir.path().join("unordered.csv");
    std::fs::write(&unordered, "2,1,2,0.5,1,1\n1,1,2,0.5,1,1\n").unwrap();
    let out = perpdesk(&["--input", unordered.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains(&format!("{}:2: open time 1 is not after", unordered.display())),
        "{stderr}"
    );

    let missing = dir.path().join("missing.csv");
    let out = perpdesk(&["--input", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("missing.csv: cannot read")
    );
}

#[test]
fn inconsistent_parameters_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let bars = dir.path().join("bars.csv");
    std::fs::write(&bars, "1,1,2,0.5,1,1\n2,1,2,0.5,1,1\n").unwrap();
    let path = bars.to_str().unwrap();
    let out = perpdesk(&[
        "--input",
        path,
        "--swing-length",
        "5,10,20",
        "--close-break",
        "true,false",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8(out.stderr).unwrap().trim(),
        "error: --close-break takes one value, or one per --swing-length (3); got 2"
    );
    let out = perpdesk(&["--input", path, "--sessions", "Berlin"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("unknown session `Berlin`")
    );
    // One set with a causal, fixed tolerance; a custom session; only the joined gaps.
    let out = perpdesk(&[
        "--input",
        path,
        "--swing-length",
        "3",
        "--liquidity-pip-range",
        "0.5",
        "--sessions",
        "07:00-10:00",
        "--previous-timeframes",
        "1h",
        "--join-consecutive",
        "yes",
    ]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let header = text.lines().next().unwrap();
    assert!(
        header.contains(",fvgj_FVG,") && !header.contains(",fvg_FVG,"),
        "{header}"
    );
    assert!(
        header.contains(",swing_s3_HighLow,") && !header.contains("s5"),
        "{header}"
    );
    assert!(header.contains(",phl_1h_PreviousHigh,") && header.ends_with("sess_07:00-10:00_KnownAt"));
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("liquidity pip range: s3 0.5")
    );
}
