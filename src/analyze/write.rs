//! Writing an [`Analysis`] as CSV in exactly the golden files' encoding, fast enough for 10⁵–10⁶ rows.
//!
//! The golden files were written by pandas with `float_format="%.12g"`, so a reader (or a diff) can put our
//! output next to them: `idx` and `open_time_ms` as integers, `time` as `YYYY-mm-dd HH:MM:SS` (the bar's
//! open time, UTC), every other value with C's `%.12g` — at most 12 significant digits, no trailing zeros,
//! integers without a decimal point (`1`, not `1.0`; flags are `1`/`-1`/`0`), exponent form below 1e-4 and
//! from 1e12 (`1.5e-05`) — and an empty cell for NaN ("no event"). There are no booleans: flags are numbers,
//! as in the goldens. The reference stores some columns in float32 (SPEC §0.2); we write our float64
//! values, so those cells can differ from the golden ones in the 7th significant digit.
//!
//! Rows are formatted into one reusable byte buffer and written through a 1 MiB `BufWriter`; integral
//! values (most flags and indices) skip float formatting entirely.

use std::io::{self, Write};

use super::{Analysis, INPUT_COLUMNS};
use crate::domain::{Bar, civil_from_days};

/// Appends `value` formatted as C's `%.12g` (empty for NaN).
pub fn push_g12(out: &mut Vec<u8>, value: f64) {
    if value.is_nan() {
        return;
    }
    if value.is_infinite() {
        out.extend_from_slice(if value > 0.0 { b"inf" } else { b"-inf" });
        return;
    }
    if value == 0.0 {
        out.extend_from_slice(if value.is_sign_negative() { b"-0" } else { b"0" });
        return;
    }
    if value.fract() == 0.0 && value.abs() < 1e12 {
        // Exact: |value| < 2^53, and %.12g prints up to 12 integer digits without an exponent.
        let _ = write!(out, "{}", value as i64);
        return;
    }
    // Round once, to 12 significant digits; then lay the digits out as %g does.
    let scientific = format!("{:.11e}", value.abs());
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let digits: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).collect();
    let significant = digits.len() - digits.iter().rev().take_while(|&&d| d == b'0').count();
    let digits = &digits[..significant.max(1)];
    if value < 0.0 {
        out.push(b'-');
    }
    if !(-4..12).contains(&exponent) {
        out.push(digits[0]);
        if digits.len() > 1 {
            out.push(b'.');
            out.extend_from_slice(&digits[1..]);
        }
        let _ = write!(
            out,
            "e{}{:02}",
            if exponent < 0 { '-' } else { '+' },
            exponent.abs()
        );
    } else if exponent < 0 {
        out.extend_from_slice(b"0.");
        out.extend(std::iter::repeat_n(b'0', (-exponent - 1) as usize));
        out.extend_from_slice(digits);
    } else {
        let integer = (exponent + 1) as usize;
        if digits.len() <= integer {
            out.extend_from_slice(digits);
            out.extend(std::iter::repeat_n(b'0', integer - digits.len()));
        } else {
            out.extend_from_slice(&digits[..integer]);
            out.push(b'.');
            out.extend_from_slice(&digits[integer..]);
        }
    }
}

/// Appends the UTC open time as `YYYY-mm-dd HH:MM:SS`.
fn push_time(out: &mut Vec<u8>, open_time_ms: i64) {
    let seconds = open_time_ms.div_euclid(1000);
    let (y, m, d) = civil_from_days(seconds.div_euclid(86_400));
    let s = seconds.rem_euclid(86_400);
    let _ = write!(
        out,
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        s / 3600,
        s % 3600 / 60,
        s % 60
    );
}

/// Writes the header and one line per bar. `bars` must be the bars `analysis` was computed from.
pub fn write_csv(bars: &[Bar], analysis: &Analysis, out: impl Write) -> io::Result<()> {
    let mut out = io::BufWriter::with_capacity(1 << 20, out);
    let header: Vec<&str> = analysis.header().collect();
    out.write_all(header.join(",").as_bytes())?;
    out.write_all(b"\n")?;
    let mut line: Vec<u8> = Vec::with_capacity(64 * header.len());
    debug_assert_eq!(INPUT_COLUMNS.len(), 8);
    for (row, bar) in bars.iter().enumerate() {
        line.clear();
        let _ = write!(line, "{row},");
        push_time(&mut line, bar.open_time);
        let _ = write!(line, ",{}", bar.open_time);
        for value in [bar.open, bar.high, bar.low, bar.close, bar.volume] {
            line.push(b',');
            push_g12(&mut line, value);
        }
        for column in &analysis.columns {
            line.push(b',');
            push_g12(&mut line, column.values[row]);
        }
        line.push(b'\n');
        out.write_all(&line)?;
    }
    out.flush()
}

#[cfg(test)]
// Literals are written as they appear in the golden files and in Python's output.
#[allow(clippy::unreadable_literal)]
mod tests {
    use super::*;

    fn g(value: f64) -> String {
        let mut out = Vec::new();
        push_g12(&mut out, value);
        String::from_utf8(out).expect("ascii")
    }

    #[test]
    fn formats_like_c_percent_12g() {
        // Expected strings are Python's `"%.12g" % x`.
        let cases: [(f64, &str); 22] = [
            (f64::NAN, ""),
            (0.0, "0"),
            (1.0, "1"),
            (-1.0, "-1"),
            (1636934400000.0, "1.6369344e+12"),
            (9289043.5, "9289043.5"),
            (1.1954, "1.1954"),
            (1.2065000000000001, "1.2065"),
            (1.19286666667, "1.19286666667"),
            (1.192866666666666, "1.19286666667"),
            (-0.00700469996856, "-0.00700469996856"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (0.000012345678901234, "1.23456789012e-05"),
            (123456789012.0, "123456789012"),
            (123456789012.5, "123456789012"),
            (999999999999.95, "1e+12"),
            (9.999999999995, "9.99999999999"),
            (-130193287.5, "-130193287.5"),
            (83.0, "83"),
            (0.30000000000000004, "0.3"),
            (27.131594457000001, "27.131594457"),
        ];
        for (value, expected) in cases {
            assert_eq!(g(value), expected, "{value:e}");
        }
    }

    #[test]
    fn time_is_utc_open_time() {
        let mut out = Vec::new();
        push_time(&mut out, 1_636_934_700_000);
        assert_eq!(out, b"2021-11-15 00:05:00");
    }
}
