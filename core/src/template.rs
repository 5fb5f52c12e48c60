//! Templates in DAG files (minijinja): syntax checks at load time and rendering
//! at run time with one environment configuration.

use minijinja::{Environment, UndefinedBehavior};

/// A template that does not parse or does not render.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("template error on line {line}: {message}")]
pub struct Error {
    /// The line inside the template (1-based).
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl Error {
    fn from_minijinja(e: &minijinja::Error) -> Self {
        let message = match e.detail() {
            Some(d) => format!("{}: {d}", e.kind()),
            None => e.kind().to_string(),
        };
        Error {
            line: e.line().unwrap_or(1),
            message,
        }
    }
}

/// The environment every DAG template is parsed and rendered with: strict
/// about undefined variables, no HTML escaping, newlines kept.
pub fn environment<'s>() -> Environment<'s> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env
}

/// Checks that `source` parses as a template.
pub fn check_syntax(source: &str) -> Result<(), Error> {
    if !source.contains("{{") && !source.contains("{%") && !source.contains("{#") {
        return Ok(());
    }
    let env = environment();
    env.template_from_str(source)
        .map(|_| ())
        .map_err(|e| Error::from_minijinja(&e))
}

/// The expression inside `text` when `text` is exactly one `{{ … }}`.
pub fn lone_expression(text: &str) -> Option<&str> {
    let inner = text.trim().strip_prefix("{{")?.strip_suffix("}}")?;
    (!inner.contains("{{") && !inner.contains("}}")).then(|| inner.trim())
}

/// Checks that `expr` parses as an expression.
pub fn check_expression(expr: &str) -> Result<(), Error> {
    environment()
        .compile_expression(expr)
        .map(|_| ())
        .map_err(|e| Error::from_minijinja(&e))
}

/// Evaluates `expr` with `context` in `env`, keeping the value's type (a
/// list stays a list), as JSON.
pub fn evaluate(
    env: &Environment<'_>,
    expr: &str,
    context: &minijinja::Value,
) -> Result<serde_json::Value, Error> {
    let compiled = env
        .compile_expression(expr)
        .map_err(|e| Error::from_minijinja(&e))?;
    let value = compiled
        .eval(context)
        .map_err(|e| Error::from_minijinja(&e))?;
    if value.is_undefined() {
        return Err(Error {
            line: 1,
            message: format!("`{expr}` is undefined"),
        });
    }
    serde_json::to_value(&value).map_err(|e| Error {
        line: 1,
        message: format!("`{expr}` is not a JSON value: {e}"),
    })
}

/// Whether `source` reads one of `names` as a variable of its own (not one
/// it sets itself); `false` when it does not parse.
pub fn reads_any(source: &str, names: &[&str]) -> bool {
    if !names.iter().any(|n| source.contains(n)) || !source.contains("{") {
        return false;
    }
    let env = environment();
    let Ok(tmpl) = env.template_from_str(source) else {
        return false;
    };
    tmpl.undeclared_variables(false)
        .iter()
        .any(|v| names.contains(&v.as_str()))
}

/// The task outputs templates read: the tasks named as `tasks.<id>`, and
/// whether `tasks` is reached some other way (`tasks['<id>']`, a loop).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutputReads {
    /// Task ids read as `tasks.<id>`.
    pub named: std::collections::BTreeSet<String>,
    /// `tasks` is used without a plain task id after it.
    pub unnamed: bool,
}

impl OutputReads {
    /// Adds what `source` reads (nothing when it does not parse: its syntax
    /// error is reported where it is checked).
    pub fn add(&mut self, source: &str) {
        if !source.contains("tasks") || !(source.contains("{{") || source.contains("{%")) {
            return;
        }
        let env = environment();
        let Ok(tmpl) = env.template_from_str(source) else {
            return;
        };
        for name in tmpl.undeclared_variables(true) {
            let mut parts = name.split('.');
            if parts.next() != Some("tasks") {
                continue;
            }
            match parts.next() {
                Some(id) => {
                    self.named.insert(id.to_owned());
                }
                None => self.unnamed = true,
            }
        }
    }
}

/// Renders `source` with `context` in `env` (which may carry functions such as `secret`).
pub fn render(
    env: &Environment<'_>,
    source: &str,
    context: &minijinja::Value,
) -> Result<String, Error> {
    if !source.contains("{{") && !source.contains("{%") && !source.contains("{#") {
        return Ok(source.to_owned());
    }
    let tmpl = env
        .template_from_str(source)
        .map_err(|e| Error::from_minijinja(&e))?;
    tmpl.render(context).map_err(|e| Error::from_minijinja(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_reads_name_the_tasks() {
        let mut r = OutputReads::default();
        r.add("echo {{ tasks.extract.output.rows }} {{ tasks.b.output }} {{ ds }}");
        r.add("no template mentions tasks");
        assert_eq!(
            r.named.iter().map(String::as_str).collect::<Vec<_>>(),
            ["b", "extract"]
        );
        assert!(!r.unnamed);
        r.add("{% for t in tasks %}{{ t }}{% endfor %}");
        assert!(r.unnamed);
        let mut s = OutputReads::default();
        s.add("{{ tasks['my-task'].output }}");
        assert!(s.unnamed && s.named.is_empty());
        let mut own = OutputReads::default();
        own.add("{% set tasks = 1 %}{{ tasks }}");
        assert_eq!(own, OutputReads::default());
    }

    #[test]
    fn reads_any_sees_variables_not_text() {
        assert!(reads_any("echo {{ item }}", &["item"]));
        assert!(reads_any("{{ map_index + 1 }}", &["item", "map_index"]));
        assert!(!reads_any("echo item {{ ds }}", &["item"]));
        assert!(!reads_any("{% set item = 1 %}{{ item }}", &["item"]));
    }

    #[test]
    fn lone_expressions_evaluate_to_typed_values() {
        assert_eq!(lone_expression(" {{ params.x }} "), Some("params.x"));
        assert_eq!(lone_expression("a {{ x }}"), None);
        assert_eq!(lone_expression("{{ x }}{{ y }}"), None);
        assert!(check_expression("tasks.a.output.files").is_ok());
        assert!(check_expression("tasks.a.output +").is_err());
        let env = environment();
        let ctx = minijinja::context! { params => minijinja::context! { r => vec!["eu", "us"] } };
        assert_eq!(
            evaluate(&env, "params.r", &ctx),
            Ok(serde_json::json!(["eu", "us"]))
        );
        assert!(evaluate(&env, "params.nope", &ctx).is_err());
    }

    #[test]
    fn syntax_errors_name_the_line() {
        assert!(check_syntax("echo {{ ds }}").is_ok());
        let e = check_syntax("line one\necho {{ ds ").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("syntax error"), "{}", e.message);
    }

    #[test]
    fn undefined_variables_fail_rendering() {
        let env = environment();
        let ctx = minijinja::context! { ds => "2026-01-01" };
        assert_eq!(
            render(&env, "d={{ ds }}", &ctx).as_deref(),
            Ok("d=2026-01-01")
        );
        assert!(render(&env, "{{ nope }}", &ctx).is_err());
        // `tojson` writes a value as JSON a shell command can quote.
        let list = minijinja::context! { xs => vec!["eu", "it's"] };
        assert_eq!(
            render(&env, "'{{ xs | tojson }}'", &list).as_deref(),
            Ok("'[\"eu\", \"it\\u0027s\"]'")
        );
    }
}
