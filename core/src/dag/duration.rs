//! Durations as written in DAG files: `90s`, `15m`, `2h`, `1d`.

use std::fmt;
use std::str::FromStr;

use super::text::text_value;

/// A whole number of seconds, written with one unit: `s`, `m`, `h` or `d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(u64);

impl Duration {
    /// A duration of `secs` seconds.
    pub const fn from_secs(secs: u64) -> Self {
        Duration(secs)
    }

    /// The duration in seconds.
    pub const fn as_secs(self) -> u64 {
        self.0
    }

    /// As a standard library duration.
    pub const fn to_std(self) -> std::time::Duration {
        std::time::Duration::from_secs(self.0)
    }

    /// As an ISO 8601 duration (`PT0S`, `PT1H30M`, `P1DT2S`), the way Airflow
    /// writes a `timedelta` in its API.
    pub fn to_iso8601(self) -> String {
        let (d, h, m, s) = (
            self.0 / 86_400,
            self.0 % 86_400 / 3600,
            self.0 % 3600 / 60,
            self.0 % 60,
        );
        let mut out = String::from("P");
        if d > 0 {
            out.push_str(&format!("{d}D"));
        }
        if h + m + s > 0 || d == 0 {
            out.push('T');
            for (n, unit) in [(h, 'H'), (m, 'M'), (s, 'S')] {
                if n > 0 {
                    out.push_str(&format!("{n}{unit}"));
                }
            }
            if h + m + s == 0 {
                out.push_str("0S");
            }
        }
        out
    }
}

impl FromStr for Duration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!("invalid duration `{s}`; expected a number and a unit, like 90s, 15m, 2h or 1d")
        };
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let (n, unit) = t.split_at(split);
        let n: u64 = n.parse().map_err(|_| bad())?;
        let mul = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => return Err(bad()),
        };
        n.checked_mul(mul).map(Duration).ok_or_else(bad)
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        match s {
            0 => f.write_str("0s"),
            _ if s.is_multiple_of(86_400) => write!(f, "{}d", s / 86_400),
            _ if s.is_multiple_of(3600) => write!(f, "{}h", s / 3600),
            _ if s.is_multiple_of(60) => write!(f, "{}m", s / 60),
            _ => write!(f, "{s}s"),
        }
    }
}

text_value!(
    Duration,
    "a duration: a whole number and a unit s, m, h or d (90s, 15m, 2h, 1d)",
    "^[0-9]+[smhd]$"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_iso8601() {
        for (secs, iso) in [
            (0, "PT0S"),
            (90, "PT1M30S"),
            (3600, "PT1H"),
            (5400, "PT1H30M"),
            (86_400, "P1D"),
            (86_402, "P1DT2S"),
            (2 * 86_400 + 3 * 3600 + 4 * 60 + 5, "P2DT3H4M5S"),
        ] {
            assert_eq!(Duration::from_secs(secs).to_iso8601(), iso, "{secs}s");
        }
    }

    #[test]
    fn parses_and_prints_units() {
        for (text, secs) in [("90s", 90), ("15m", 900), ("2h", 7200), ("1d", 86_400)] {
            let d: Duration = text.parse().unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(d.as_secs(), secs);
            assert_eq!(d.to_string(), text);
        }
        for bad in ["", "10", "m", "1.5h", "-3s", "3 weeks", "10ms"] {
            assert!(bad.parse::<Duration>().is_err(), "{bad} should fail");
        }
    }
}
