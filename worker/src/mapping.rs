//! Dynamic task mapping on the worker: a mapped task's own try evaluates
//! its items (the instances that run them are made when it reports), and a
//! try whose output mapped tasks expand over is checked before it succeeds.

use std::sync::Arc;

use minijinja::{Environment, Value};
use weir_core::dag::{Expand, Items, Task};
use weir_core::scheduler::{Ended, Outcome};

use crate::context::TryContext;

/// The expansion of a mapped task's own try: the ended try (its output is
/// the list) and how many items, or why it fails.
pub fn expand(
    expand: &Expand,
    env: &Environment<'static>,
    values: &Value,
    silent: &[&str],
) -> Result<(Ended, usize), String> {
    let items = match &expand.items {
        Items::List(list) => list.clone(),
        Items::Expression(expr) => {
            let value = weir_core::template::evaluate(env, expr, values).map_err(|e| {
                let hint = if silent.is_empty() {
                    String::new()
                } else {
                    format!(" (no output in this run from: {})", silent.join(", "))
                };
                format!("expand.items: {e}{hint}")
            })?;
            list_of(value)
                .map_err(|what| format!("expand.items: `{expr}` gives {what}, not a list"))?
        }
    };
    let count = items.len();
    if count > expand.max_items as usize {
        return Err(format!(
            "expand.items: {count} items, more than the {} a mapped task expands into (expand.max_items)",
            expand.max_items
        ));
    }
    let ended = Ended::expanded(items).map_err(|e| format!("expand.items: {e}"))?;
    Ok((ended, count))
}

/// Checks a successful try's output against the mapped tasks downstream
/// that expand over it: each must get a list within its `max_items`. An
/// expression that also needs what this try cannot see is left to the
/// expansion.
pub fn check_feeds(
    ctx: &TryContext,
    task: &Task,
    env: &Environment<'static>,
    ended: &Ended,
) -> Result<(), String> {
    // A mapped instance's output is one item of its task's list, which only
    // exists once every instance ended: the expansion downstream checks it.
    if task.feeds_maps.is_empty() || ended.outcome != Outcome::Success || ctx.claim.map_index >= 0 {
        return Ok(());
    }
    let own = ended
        .output
        .as_deref()
        .and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or(serde_json::Value::Null);
    let mut outputs = (*ctx.outputs).clone();
    outputs.insert(task.id.to_string(), own);
    let seen = TryContext {
        outputs: Arc::new(outputs),
        ..ctx.clone()
    };
    let values = seen.values();
    for mapped in &task.feeds_maps {
        let Some(Expand {
            items: Items::Expression(expr),
            max_items,
            ..
        }) = ctx.dag.tasks.get(mapped).and_then(|t| t.expand.as_ref())
        else {
            continue;
        };
        let Ok(value) = weir_core::template::evaluate(env, expr, &values) else {
            continue;
        };
        match list_of(value) {
            Err(what) => {
                return Err(format!(
                    "`{mapped}` expands over `{expr}`, which is {what} here, not a list"
                ));
            }
            Ok(items) if items.len() > *max_items as usize => {
                return Err(format!(
                    "`{mapped}` expands over `{expr}`, which has {} items: more than the {max_items} it may expand into (raise its expand.max_items or split the list)",
                    items.len()
                ));
            }
            Ok(_) => {}
        }
    }
    Ok(())
}

/// The items of a JSON list, or what the value is instead.
fn list_of(value: serde_json::Value) -> Result<Vec<serde_json::Value>, &'static str> {
    use serde_json::Value as J;
    match value {
        J::Array(items) => Ok(items),
        J::Null => Err("null"),
        J::Bool(_) => Err("a boolean"),
        J::Number(_) => Err("a number"),
        J::String(_) => Err("a string"),
        J::Object(_) => Err("an object"),
    }
}
