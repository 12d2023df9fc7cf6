//! Number, time and age formatting for narrow terminal columns.
//!
//! A scanner column is 7 characters wide, so every number here has a fixed shape: prices with the
//! symbol's own decimals and thousands separators, signed percentages, compact volumes (`456.7M`).
//! The UTC clock is a small civil-date conversion (days since the epoch → year/month/day, after Howard
//! Hinnant's `civil_from_days`) so the UI crate needs no date library for one line of text.

use crate::view::{BreakBadge, ZoneBadge};

/// Shown where a number is missing or not finite.
pub const MISSING: &str = "—";

/// A price with `decimals` decimals and thousands separators: `97,234.50`, `0.0215432`.
pub fn format_price(value: f64, decimals: u8) -> String {
    if !value.is_finite() {
        return MISSING.to_owned();
    }
    let plain = format!("{:.*}", usize::from(decimals), value.abs());
    let (integer, fraction) = plain
        .split_once('.')
        .map_or((plain.as_str(), None), |(i, f)| (i, Some(f)));
    let mut out = String::with_capacity(plain.len() + plain.len() / 3 + 1);
    // "-0.00" would read as a falling price; only show the sign when something non-zero is left.
    if value < 0.0 && plain.bytes().any(|byte| byte.is_ascii_digit() && byte != b'0') {
        out.push('-');
    }
    out.push_str(&group_thousands(integer));
    if let Some(fraction) = fraction {
        out.push('.');
        out.push_str(fraction);
    }
    out
}

/// A count with thousands separators: `123,456`.
pub fn format_count(value: u64) -> String {
    group_thousands(&value.to_string())
}

fn group_thousands(digits: &str) -> String {
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// A signed percentage that fits 7 columns: `+2.34%`, `-12.50%`, `+123.4%`, `+1234%`.
pub fn format_pct(value: f64) -> String {
    if !value.is_finite() {
        return MISSING.to_owned();
    }
    // Fewer decimals as the integer part grows, so the text never exceeds 7 columns.
    let magnitude = value.abs();
    let decimals: usize = match magnitude {
        m if m < 99.995 => 2,
        m if m < 999.95 => 1,
        _ => 0,
    };
    format!("{value:+.decimals$}%")
}

/// A volume in at most 6 characters: `1.23B`, `456.7M`, `12.3K`, `999`.
pub fn format_compact(value: f64) -> String {
    const UNITS: [(f64, &str); 4] = [(1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")];
    if !value.is_finite() {
        return MISSING.to_owned();
    }
    let sign = if value < 0.0 { "-" } else { "" };
    let magnitude = value.abs();
    for (index, (scale, suffix)) in UNITS.iter().enumerate() {
        let scaled = magnitude / scale;
        if scaled < 1.0 {
            continue;
        }
        let decimals = if scaled < 9.995 { 2 } else { 1 };
        let text = format!("{scaled:.decimals$}");
        // 999.96M rounds to "1000.0M"; one unit up reads better ("1.00B").
        if text.starts_with("1000") && index > 0 {
            return format!("{sign}1.00{}", UNITS[index - 1].1);
        }
        return format!("{sign}{text}{suffix}");
    }
    let text = format!("{magnitude:.0}");
    if text == "1000" {
        format!("{sign}1.00K")
    } else {
        format!("{sign}{text}")
    }
}

/// The direction marker of a bullish (`▲`) or bearish (`▼`) structure.
pub fn direction_marker(bullish: bool) -> &'static str {
    if bullish { "▲" } else { "▼" }
}

/// The bars-ago count of a break, capped at `999+` so the column stays narrow.
pub fn format_bars_ago(bars_ago: u32) -> String {
    if bars_ago > 999 {
        "999+".to_owned()
    } else {
        bars_ago.to_string()
    }
}

/// A structure break for the scanner's `Break` column: `CHoCH▲15m 3`.
pub fn format_break(badge: &BreakBadge) -> String {
    format!(
        "{}{}{} {}",
        badge.kind,
        direction_marker(badge.bullish),
        badge.timeframe,
        format_bars_ago(badge.bars_ago)
    )
}

/// An active zone for the scanner's `Zone` column: `OB▼1h -0.42%`, or `OB▼1h in` when the last price
/// is inside the zone.
pub fn format_zone(badge: &ZoneBadge) -> String {
    let distance = if badge.distance_pct == 0.0 {
        "in".to_owned()
    } else {
        format_pct(badge.distance_pct)
    };
    format!(
        "{}{}{} {distance}",
        badge.kind,
        direction_marker(badge.bullish),
        badge.timeframe
    )
}

/// How long ago, in at most 6 characters: `0.4s`, `12s`, `3m12s`, `2h05m`.
pub fn format_age(age_ms: u64) -> String {
    let seconds = age_ms / 1000;
    if age_ms < 10_000 {
        format!("{}.{}s", age_ms / 1000, age_ms % 1000 / 100)
    } else if seconds < 60 {
        format!("{seconds}s")
    } else if seconds < 3600 {
        format!("{}m{:02}s", seconds / 60, seconds % 60)
    } else {
        format!("{}h{:02}m", seconds / 3600, seconds % 3600 / 60)
    }
}

/// A UTC instant split into calendar fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UtcDateTime {
    pub year: i64,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
}

impl UtcDateTime {
    /// The calendar fields of `epoch_ms` (milliseconds since 1970-01-01T00:00:00Z, may be negative).
    pub fn from_epoch_ms(epoch_ms: i64) -> Self {
        const MS_PER_DAY: i64 = 86_400_000;
        let days = epoch_ms.div_euclid(MS_PER_DAY);
        let ms_of_day = epoch_ms.rem_euclid(MS_PER_DAY);
        let seconds_of_day = ms_of_day / 1000;
        let (year, month, day) = civil_from_days(days);
        Self {
            year,
            month,
            day,
            hour: (seconds_of_day / 3600) as u8,
            minute: (seconds_of_day % 3600 / 60) as u8,
            second: (seconds_of_day % 60) as u8,
        }
    }
}

/// Year, month (1-12), day (1-31) of the proleptic Gregorian calendar for days since 1970-01-01.
fn civil_from_days(days_since_epoch: i64) -> (i64, u8, u8) {
    // Shift the epoch to 0000-03-01 so that leap days fall at the end of each 400-year era.
    let days = days_since_epoch + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month as u8, day as u8)
}

/// `2026-11-24 08:31:07 UTC`.
pub fn format_utc(epoch_ms: i64) -> String {
    let t = UtcDateTime::from_epoch_ms(epoch_ms);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
}

/// `08:31:07 UTC`, for headers too narrow for the date.
pub fn format_utc_time(epoch_ms: i64) -> String {
    let t = UtcDateTime::from_epoch_ms(epoch_ms);
    format!("{:02}:{:02}:{:02} UTC", t.hour, t.minute, t.second)
}

/// `11-24 08:30`, for chart time labels.
pub fn format_month_day_minute(epoch_ms: i64) -> String {
    let t = UtcDateTime::from_epoch_ms(epoch_ms);
    format!("{:02}-{:02} {:02}:{:02}", t.month, t.day, t.hour, t.minute)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breaks_and_zones_read_kind_direction_timeframe_and_distance() {
        let choch = BreakBadge {
            kind: "CHoCH".to_owned(),
            bullish: true,
            timeframe: "15m".to_owned(),
            bars_ago: 3,
        };
        assert_eq!(format_break(&choch), "CHoCH▲15m 3");
        let old_bos = BreakBadge {
            kind: "BOS".to_owned(),
            bullish: false,
            timeframe: "5m".to_owned(),
            bars_ago: 12_345,
        };
        assert_eq!(format_break(&old_bos), "BOS▼5m 999+");
        let below = ZoneBadge {
            kind: "OB".to_owned(),
            bullish: false,
            timeframe: "1h".to_owned(),
            distance_pct: -0.4249,
        };
        assert_eq!(format_zone(&below), "OB▼1h -0.42%");
        let inside = ZoneBadge {
            kind: "FVG".to_owned(),
            bullish: true,
            timeframe: "5m".to_owned(),
            distance_pct: 0.0,
        };
        assert_eq!(format_zone(&inside), "FVG▲5m in");
        let far = ZoneBadge {
            distance_pct: f64::NAN,
            ..inside
        };
        assert_eq!(format_zone(&far), "FVG▲5m —");
    }

    #[test]
    fn prices_use_their_decimals_and_group_thousands() {
        assert_eq!(format_price(97_234.5, 2), "97,234.50");
        assert_eq!(format_price(1_234_567.891, 1), "1,234,567.9");
        assert_eq!(format_price(999.0, 0), "999");
        assert_eq!(format_price(0.021_543_2, 7), "0.0215432");
        assert_eq!(format_price(-1234.5, 2), "-1,234.50");
        assert_eq!(format_price(-0.001, 2), "0.00");
        assert_eq!(format_price(f64::NAN, 2), "—");
    }

    #[test]
    fn counts_group_thousands() {
        assert_eq!(format_count(0), "0");
        assert_eq!(format_count(999), "999");
        assert_eq!(format_count(1000), "1,000");
        assert_eq!(format_count(123_456_789), "123,456,789");
    }

    #[test]
    fn percentages_are_signed_and_fit_seven_columns() {
        assert_eq!(format_pct(2.344), "+2.34%");
        assert_eq!(format_pct(-0.5), "-0.50%");
        assert_eq!(format_pct(0.0), "+0.00%");
        assert_eq!(format_pct(-12.5), "-12.50%");
        assert_eq!(format_pct(99.999), "+100.0%");
        assert_eq!(format_pct(123.45), "+123.5%");
        assert_eq!(format_pct(-1234.4), "-1234%");
        assert_eq!(format_pct(f64::INFINITY), "—");
        for value in [-999.9, -99.99, -12.345, 0.0, 45.678, 999.9] {
            assert!(format_pct(value).chars().count() <= 7, "{value}");
        }
    }

    #[test]
    fn volumes_are_compact() {
        assert_eq!(format_compact(1_234_000_000.0), "1.23B");
        assert_eq!(format_compact(456_700_000.0), "456.7M");
        assert_eq!(format_compact(12_340.0), "12.3K");
        assert_eq!(format_compact(9_999.0), "10.0K");
        assert_eq!(format_compact(999_960_000.0), "1.00B");
        assert_eq!(format_compact(999.7), "1.00K");
        assert_eq!(format_compact(999.0), "999");
        assert_eq!(format_compact(0.0), "0");
        assert_eq!(format_compact(2.5e12), "2.50T");
        assert_eq!(format_compact(-3_400_000.0), "-3.40M");
    }

    #[test]
    fn ages_are_short() {
        assert_eq!(format_age(0), "0.0s");
        assert_eq!(format_age(420), "0.4s");
        assert_eq!(format_age(9_999), "9.9s");
        assert_eq!(format_age(12_000), "12s");
        assert_eq!(format_age(192_000), "3m12s");
        assert_eq!(format_age(7_500_000), "2h05m");
    }

    #[test]
    fn utc_clock_matches_known_instants() {
        assert_eq!(format_utc(0), "1970-01-01 00:00:00 UTC");
        // 2026-11-24T08:31:07Z, checked with `date -u -d @1795509067`.
        assert_eq!(format_utc(1_795_509_067_000), "2026-11-24 08:31:07 UTC");
        // Leap day and the day after.
        assert_eq!(format_utc(951_782_400_000), "2000-02-29 00:00:00 UTC");
        assert_eq!(format_utc(951_868_800_000), "2000-03-01 00:00:00 UTC");
        // Last millisecond of 1999 and a negative instant.
        assert_eq!(format_utc(946_684_799_999), "1999-12-31 23:59:59 UTC");
        assert_eq!(format_utc(-1), "1969-12-31 23:59:59 UTC");
        assert_eq!(format_utc_time(1_795_509_067_999), "08:31:07 UTC");
        assert_eq!(format_month_day_minute(1_795_509_067_000), "11-24 08:31");
    }

    #[test]
    fn civil_dates_agree_with_a_day_by_day_walk() {
        // Walk forward from 1970-01-01 for 200 years and compare with the conversion.
        let (mut year, mut month, mut day) = (1970_i64, 1_u8, 1_u8);
        for days in 0..(200 * 366) {
            assert_eq!(civil_from_days(days), (year, month, day), "day {days}");
            let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
            let month_length = match month {
                2 if leap => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            day += 1;
            if day > month_length {
                day = 1;
                month += 1;
                if month > 12 {
                    month = 1;
                    year += 1;
                }
            }
        }
    }
}
