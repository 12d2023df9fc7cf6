//! Comparing our columns with the golden files, shared by `golden_smc` (library output) and `analyze_cli`
//! (the binary's CSV): the golden CSV reader, the SPEC tolerances, and the list of documented differences
//! in `docs/smc-differences.md`, so both tests hold the output to exactly the same standard.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    fmt::Write as _,
    path::Path,
};

/// Named columns; `None` is an empty cell.
pub type Columns = BTreeMap<String, Vec<Option<f64>>>;

/// Columns the reference stores as float32 (SPEC §0.2).
const FLOAT32_SUFFIXES: [&str; 13] = [
    "bos_s5_Level",
    "bos_s10_Level",
    "_Top",
    "_Bottom",
    "_OBVolume",
    "_Percentage",
    "liq_s5_Level",
    "liq_s10_Level",
    "_End",
    "_Swept",
    "_PreviousHigh",
    "_PreviousLow",
    "_High",
];

/// The golden files' input columns, which are not compared as outputs.
pub const INPUT_COLUMNS: [&str; 8] = [
    "idx",
    "time",
    "open_time_ms",
    "open",
    "high",
    "low",
    "close",
    "volume",
];

/// A CSV with a header, in file order: (header, rows of cells; empty or text → `None`).
pub fn load_table(text: &str) -> (Vec<String>, Vec<Vec<Option<f64>>>) {
    let mut lines = text.lines();
    let header: Vec<String> = lines
        .next()
        .expect("a header line")
        .split(',')
        .map(str::to_owned)
        .collect();
    let rows: Vec<Vec<Option<f64>>> = lines
        .filter(|l| !l.is_empty())
        .map(|line| line.split(',').map(|cell| cell.parse::<f64>().ok()).collect())
        .collect();
    for (index, row) in rows.iter().enumerate() {
        assert_eq!(row.len(), header.len(), "row {index} has {} cells", row.len());
    }
    (header, rows)
}

/// A CSV with a header into named columns; empty cells are `None`, and `time` (text) is all `None`.
pub fn load_columns(text: &str) -> Columns {
    let (header, rows) = load_table(text);
    header
        .into_iter()
        .enumerate()
        .map(|(i, name)| {
            let values = rows.iter().map(|row| row[i]).collect();
            (name, values)
        })
        .collect()
}

/// Whether the reference stores `column` in float32 (SPEC §0.2).
pub fn is_float32(column: &str) -> bool {
    FLOAT32_SUFFIXES.iter().any(|s| column.ends_with(s))
        || column.ends_with("_Low") && column.starts_with("sess_")
}

/// Float32 columns to SPEC's relative 1e-6 (the package stores them, and computes some of them, in float32);
/// the rest to 1e-11 relative, because the golden CSV keeps 12 significant digits of float64 values.
pub fn same(column: &str, a: Option<f64>, b: Option<f64>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(x), Some(y)) => {
            let tolerance = if is_float32(column) && !column.starts_with("fvg") {
                1e-6
            } else {
                1e-11
            };
            x == y || (x - y).abs() <= tolerance * x.abs().max(y.abs())
        }
        _ => false,
    }
}

/// Rows where `mine` and `golden` differ, per compared column.
pub fn differences(mine: &Columns, golden: &Columns, columns: &[String]) -> BTreeMap<String, Vec<usize>> {
    let mut diffs = BTreeMap::new();
    for name in columns {
        let theirs = &golden[name];
        let ours = mine
            .get(name)
            .unwrap_or_else(|| panic!("no reconstruction for column {name}"));
        assert_eq!(ours.len(), theirs.len(), "{name}: row count");
        let rows: Vec<usize> = (0..theirs.len())
            .filter(|&r| !same(name, ours[r], theirs[r]))
            .collect();
        if !rows.is_empty() {
            diffs.insert(name.clone(), rows);
        }
    }
    diffs
}

/// `1,2,3,7` → `1-3,7`.
pub fn compress(rows: &[usize]) -> String {
    let mut text = String::new();
    let mut i = 0;
    while i < rows.len() {
        let mut j = i;
        while j + 1 < rows.len() && rows[j + 1] == rows[j] + 1 {
            j += 1;
        }
        if !text.is_empty() {
            text.push(',');
        }
        if j == i {
            write!(text, "{}", rows[i]).expect("write to a String");
        } else {
            write!(text, "{}-{}", rows[i], rows[j]).expect("write to a String");
        }
        i = j + 1;
    }
    text
}

fn expand(text: &str) -> Vec<usize> {
    let number = |s: &str| s.parse::<usize>().unwrap_or_else(|_| panic!("row number `{s}`"));
    text.split(',')
        .filter(|s| !s.trim().is_empty())
        .flat_map(|part| match part.trim().split_once('-') {
            Some((a, b)) => (number(a)..=number(b)).collect::<Vec<_>>(),
            None => vec![number(part.trim())],
        })
        .collect()
}

/// The documented differences: lines `DATASET COLUMN: rows` inside the fenced `differences` block of
/// `docs/smc-differences.md`.
pub fn documented() -> HashMap<(String, String), Vec<usize>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/smc-differences.md");
    let text = std::fs::read_to_string(&path).expect("docs/smc-differences.md");
    let block = text
        .split("```differences")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a ```differences block");
    block
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let (key, rows) = line.split_once(':').expect("`DATASET COLUMN: rows`");
            let (dataset, column) = key.trim().split_once(' ').expect("`DATASET COLUMN`");
            ((dataset.to_owned(), column.trim().to_owned()), expand(rows))
        })
        .collect()
}

/// The failures (empty if none) when `diffs` for `dataset` are not exactly the documented ones.
pub fn check_against_document(
    dataset: &str,
    diffs: &BTreeMap<String, Vec<usize>>,
    compared: &[String],
) -> String {
    let doc = documented();
    let mut report = String::new();
    let mut failures = String::new();
    for column in compared {
        let actual = diffs.get(column).cloned().unwrap_or_default();
        let expected = doc
            .get(&(dataset.to_owned(), column.clone()))
            .cloned()
            .unwrap_or_default();
        if !actual.is_empty() {
            writeln!(report, "{dataset} {column}: {}", compress(&actual)).expect("write to a String");
        }
        if actual != expected {
            let a: HashSet<_> = actual.iter().collect();
            let e: HashSet<_> = expected.iter().collect();
            let mut unlisted: Vec<_> = a.difference(&e).copied().copied().collect();
            let mut not_differing: Vec<_> = e.difference(&a).copied().copied().collect();
            unlisted.sort_unstable();
            not_differing.sort_unstable();
            writeln!(
                failures,
                "{dataset} {column}: unlisted differences at rows [{}], listed rows that match [{}]",
                compress(&unlisted),
                compress(&not_differing)
            )
            .expect("write to a String");
        }
    }
    if std::env::var_os("SMC_PRINT_DIFFERENCES").is_some() {
        println!("{report}");
    }
    failures
}
