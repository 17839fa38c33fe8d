//! Numbers as a scenario writes them: every one carries its unit
//! (`400/s`, `300ms`, `0.5%`, `+0.1pp`, `1.25x`), and a number without one
//! is an error that says which unit was expected.

use std::fmt;
use std::time::Duration;

pub use podnet_proto::model::parse_duration;

/// A rate in requests per second: `400/s`, `2/ms`, `600/min`.
pub fn parse_rate(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let Some((num, unit)) = t.split_once('/') else {
        return Err(format!(
            "{s:?} has no unit: a rate is written like 400/s (per s, ms or min)"
        ));
    };
    let n = number(num, s)?;
    let per_second = match unit.trim() {
        "s" => n,
        "ms" => n * 1e3,
        "m" | "min" => n / 60.0,
        other => {
            return Err(format!(
                "{s:?} has an unknown unit /{other}: use /s, /ms or /min"
            ));
        }
    };
    if !(per_second.is_finite() && per_second >= 0.0) || per_second > MAX_RATE {
        return Err(format!("{s:?} is out of range: 0/s to {MAX_RATE}/s"));
    }
    Ok(per_second)
}

/// The largest rate a flow may ask for.
pub const MAX_RATE: f64 = 1_000_000.0;

/// A share: `0.5%` is 0.005.
pub fn parse_percent(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let Some(num) = t.strip_suffix('%') else {
        return Err(format!("{s:?} has no unit: a share is written like 0.5%"));
    };
    let n = number(num, s)?;
    if !(0.0..=100.0).contains(&n) {
        return Err(format!("{s:?} is out of range: 0% to 100%"));
    }
    Ok(n / 100.0)
}

/// A change of a share in percentage points: `+0.1pp` is 0.001.
pub fn parse_points(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let Some(num) = t.strip_suffix("pp") else {
        return Err(format!(
            "{s:?} has no unit: a change of a share is written like +0.1pp"
        ));
    };
    let n = number(num.trim_start_matches('+'), s)?;
    if !(-100.0..=100.0).contains(&n) {
        return Err(format!("{s:?} is out of range: -100pp to +100pp"));
    }
    Ok(n / 100.0)
}

/// A multiple: `1.25x`.
pub fn parse_multiple(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let Some(num) = t.strip_suffix('x') else {
        return Err(format!(
            "{s:?} has no unit: a multiple is written like 1.25x"
        ));
    };
    let n = number(num, s)?;
    if !(n.is_finite() && n >= 0.0) {
        return Err(format!("{s:?} must be a multiple of at least 0x"));
    }
    Ok(n)
}

/// A count: a whole number, the one kind of number without a unit.
pub fn parse_count(s: &str) -> Result<f64, String> {
    let t = s.trim();
    t.parse::<u64>()
        .map(|n| n as f64)
        .map_err(|_| format!("{s:?} is not a count (a whole number like 0 or 12)"))
}

fn number(num: &str, whole: &str) -> Result<f64, String> {
    let n: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("{whole:?} does not start with a number"))?;
    if n.is_finite() {
        Ok(n)
    } else {
        Err(format!("{whole:?} is not a finite number"))
    }
}

/// What a metric measures, which decides the unit its limits are written
/// in and how values are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dimension {
    /// Latencies and times: `300ms`.
    Time,
    /// Shares: `0.5%`.
    Share,
    /// Rates: `390/s`.
    Rate,
    /// Counts: `0`.
    Count,
}

impl Dimension {
    /// Parses a literal limit in this dimension's unit, to the value the
    /// metric computes (seconds, a share in 0..=1, per second, a count).
    pub fn parse(self, s: &str) -> Result<f64, String> {
        match self {
            Dimension::Time => parse_duration(s).map(|d| d.as_secs_f64()),
            Dimension::Share => parse_percent(s),
            Dimension::Rate => parse_rate(s),
            Dimension::Count => parse_count(s),
        }
    }

    /// A value of this dimension for people.
    pub fn show(self, v: f64) -> Shown {
        Shown(self, v)
    }
}

/// [`Dimension::show`]'s display.
pub struct Shown(Dimension, f64);

impl fmt::Display for Shown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Shown(dim, v) = *self;
        if v.is_nan() {
            return f.write_str("n/a");
        }
        match dim {
            Dimension::Time if v < 1e-3 => write!(f, "{:.0}us", v * 1e6),
            Dimension::Time if v < 10.0 => write!(f, "{:.1}ms", v * 1e3),
            Dimension::Time => write!(f, "{v:.2}s"),
            Dimension::Share => write!(f, "{:.3}%", v * 100.0),
            Dimension::Rate => write!(f, "{v:.1}/s"),
            Dimension::Count => write!(f, "{v:.0}"),
        }
    }
}

/// A duration in seconds as a scenario offset (`12.345s`).
pub fn seconds(d: Duration) -> f64 {
    d.as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_number_needs_its_unit() {
        assert_eq!(parse_rate("400/s"), Ok(400.0));
        assert_eq!(parse_rate(" 2/ms "), Ok(2000.0));
        assert_eq!(parse_rate("600/min"), Ok(10.0));
        assert!(parse_rate("400").unwrap_err().contains("no unit"));
        assert!(parse_rate("400/h").unwrap_err().contains("unknown unit"));
        assert!(parse_rate("-1/s").is_err());
        assert!(parse_rate("2000000/s").is_err());
        assert_eq!(parse_percent("0.5%"), Ok(0.005));
        assert!(parse_percent("0.5").unwrap_err().contains("no unit"));
        assert!(parse_percent("101%").is_err());
        assert_eq!(parse_points("+0.1pp"), Ok(0.001));
        assert!(parse_points("0.1").is_err());
        assert_eq!(parse_multiple("1.25x"), Ok(1.25));
        assert!(parse_multiple("1.25").is_err());
        assert_eq!(parse_count("0"), Ok(0.0));
        assert!(parse_count("0.5").is_err());
        assert_eq!(Dimension::Time.parse("300ms"), Ok(0.3));
        assert!(
            Dimension::Time
                .parse("300")
                .unwrap_err()
                .contains("no unit")
        );
        assert!(parse_rate("nan/s").is_err());
    }

    #[test]
    fn values_are_shown_in_their_unit() {
        assert_eq!(Dimension::Time.show(0.0123).to_string(), "12.3ms");
        assert_eq!(Dimension::Time.show(0.0004).to_string(), "400us");
        assert_eq!(Dimension::Time.show(12.0).to_string(), "12.00s");
        assert_eq!(Dimension::Share.show(0.005).to_string(), "0.500%");
        assert_eq!(Dimension::Rate.show(399.5).to_string(), "399.5/s");
        assert_eq!(Dimension::Count.show(3.0).to_string(), "3");
        assert_eq!(Dimension::Count.show(f64::NAN).to_string(), "n/a");
    }
}
