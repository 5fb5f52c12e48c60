//! The page templates, embedded in the binary, and the filters they use.

use minijinja::{Environment, Value};

/// Every template, by name.
const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("templates/base.html")),
    ("macros.html", include_str!("templates/macros.html")),
    ("login.html", include_str!("templates/login.html")),
    ("error.html", include_str!("templates/error.html")),
    ("home.html", include_str!("templates/home.html")),
    ("dag.html", include_str!("templates/dag.html")),
    ("log.html", include_str!("templates/log.html")),
    ("datasets.html", include_str!("templates/datasets.html")),
    ("dataset.html", include_str!("templates/dataset.html")),
    ("quality.html", include_str!("templates/quality.html")),
    ("quarantine.html", include_str!("templates/quarantine.html")),
    ("audit.html", include_str!("templates/audit.html")),
    ("pools.html", include_str!("templates/pools.html")),
    ("variables.html", include_str!("templates/variables.html")),
    (
        "connections.html",
        include_str!("templates/connections.html"),
    ),
    ("workers.html", include_str!("templates/workers.html")),
];

/// The environment pages render with (HTML auto-escaping on).
pub fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    for (name, source) in TEMPLATES {
        if let Err(e) = env.add_template(name, source) {
            // A broken template is a fault in weir: its test renders every page.
            tracing::error!("template {name} does not parse: {e:#}");
        }
    }
    env.add_filter("dt", dt);
    env.add_filter("dur", dur);
    env.add_filter("bytes", bytes);
    env.add_filter("seg", seg);
    env.add_filter("clip", clip);
    env
}

/// `2026-12-02T11:38:13.123Z` → `2026-12-02 11:38:13`; nothing → `—`.
fn dt(value: Value) -> String {
    let Some(s) = value.as_str() else {
        return "—".into();
    };
    match chrono::DateTime::parse_from_rfc3339(s) {
        Ok(t) => t
            .with_timezone(&chrono::Utc)
            .format("%Y-%m-%d %H:%M:%S")
            .to_string(),
        Err(_) => s.to_owned(),
    }
}

/// Seconds → `850 ms`, `12.3 s`, `4 min 05 s`, `2 h 03 min`.
pub fn dur(value: Value) -> String {
    let Some(secs) = value
        .as_i64()
        .map(|i| i as f64)
        .or_else(|| f64::try_from(value.clone()).ok())
    else {
        return "—".into();
    };
    if secs < 1.0 {
        format!("{:.0} ms", secs * 1000.0)
    } else if secs < 60.0 {
        format!("{secs:.1} s")
    } else if secs < 3600.0 {
        let s = secs as u64;
        format!("{} min {:02} s", s / 60, s % 60)
    } else {
        let s = secs as u64;
        format!("{} h {:02} min", s / 3600, (s % 3600) / 60)
    }
}

/// A byte count for people: `1.5 MB`.
fn bytes(value: Value) -> String {
    let Some(n) = value.as_i64() else {
        return "—".into();
    };
    let mut v = n as f64;
    for unit in ["B", "KB", "MB", "GB", "TB"] {
        if v < 1000.0 || unit == "TB" {
            return if unit == "B" {
                format!("{n} B")
            } else {
                format!("{v:.1} {unit}")
            };
        }
        v /= 1000.0;
    }
    format!("{n} B")
}

/// At most `n` characters, with `…` when cut.
fn clip(value: String, n: usize) -> String {
    if value.chars().count() <= n {
        value
    } else {
        let mut out: String = value.chars().take(n.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

/// A value made safe for one path segment (or a query value) of a URL.
fn seg(value: Value) -> String {
    match value.as_str() {
        Some(s) => super::seg(s),
        None => super::seg(&value.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_parses() {
        let env = environment();
        for (name, _) in TEMPLATES {
            assert!(env.get_template(name).is_ok(), "{name} does not parse");
        }
    }

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(dur(Value::from(0.25)), "250 ms");
        assert_eq!(dur(Value::from(12.34)), "12.3 s");
        assert_eq!(dur(Value::from(245)), "4 min 05 s");
        assert_eq!(dur(Value::from(7380)), "2 h 03 min");
        assert_eq!(dur(Value::from(())), "—");
    }

    #[test]
    fn path_segments_escape_what_a_run_id_holds() {
        assert_eq!(
            seg(Value::from("manual__2026-01-01T00:00:00+00:00")),
            "manual__2026-01-01T00%3A00%3A00%2B00%3A00"
        );
        assert_eq!(seg(Value::from("a/b c")), "a%2Fb%20c");
    }
}
