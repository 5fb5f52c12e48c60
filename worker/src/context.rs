//! The template context of a try (§2): `ds`, `ts`, `run_id`, `params`,
//! `conf`, `var`, `tasks`, `item` and `map_index` (mapped instances),
//! `secret(name)` and the rest, and the `WEIR_*` environment.

use std::sync::Arc;

use minijinja::value::{Enumerator, Object};
use minijinja::{Environment, Error, ErrorKind, Value};
use weir_core::dag::Dag;
use weir_core::outputs::TaskOutputs;
use weir_core::protocol::RunContext;
use weir_core::scheduler::variables::Variables;
use weir_core::store::Claim;

use crate::secrets::Secrets;

/// Everything a try needs to render its templates.
#[derive(Debug, Clone)]
pub struct TryContext {
    /// The DAG version the run is pinned to.
    pub dag: Arc<Dag>,
    /// The run, as templates see it.
    pub run: RunContext,
    /// The claim that started the try.
    pub claim: Claim,
    /// Variables, as `var.value.<key>` and `var.json.<key>` read them.
    pub variables: Arc<Variables>,
    /// The outputs of upstream tasks its templates read, by task id.
    pub outputs: Arc<TaskOutputs>,
    /// The URLs of the stored connections its task names, by id (lower case).
    pub connections: Arc<weir_core::scheduler::connections::ConnectionUrls>,
}

/// `tasks`: `tasks.<id>.output` is the output of an upstream task in this run.
#[derive(Debug)]
struct TasksView {
    outputs: Arc<TaskOutputs>,
}

impl Object for TasksView {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let output = self.outputs.get(key.as_str()?)?;
        Some(minijinja::context! { output => Value::from(minijinja::value::Serde(output)) })
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        names(self.outputs.keys())
    }
}

/// `var.value` (each value as text) or `var.json` (each parsed as JSON; one
/// that is not JSON is undefined), read only when a template asks.
#[derive(Debug)]
struct VarView {
    variables: Arc<Variables>,
    json: bool,
}

impl Object for VarView {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let text = self.variables.get(key.as_str()?)?;
        if self.json {
            let parsed: serde_json::Value = serde_json::from_str(text).ok()?;
            Some(Value::from(minijinja::value::Serde(&parsed)))
        } else {
            Some(Value::from(text.as_str()))
        }
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        names(self.variables.keys())
    }
}

/// The names a view lists when a template loops over it.
fn names<'a>(keys: impl Iterator<Item = &'a String>) -> Enumerator {
    Enumerator::Values(keys.map(|k| Value::from(k.as_str())).collect())
}

impl TryContext {
    fn logical_date(&self) -> chrono::DateTime<chrono::Utc> {
        self.run.logical_date.unwrap_or(self.run.run_after)
    }

    /// The moment the run's data is judged at (freshness): the end of its
    /// data interval, else its logical date.
    pub fn data_as_of(&self) -> chrono::DateTime<chrono::Utc> {
        self.run
            .data_interval_end
            .unwrap_or_else(|| self.logical_date())
    }

    /// The item a mapped instance runs (`None` for a task's own instance).
    pub fn item(&self) -> Option<serde_json::Value> {
        let text = self.claim.map_item.as_deref()?;
        Some(serde_json::from_str(text).unwrap_or(serde_json::Value::Null))
    }

    /// The variables templates see.
    pub fn values(&self) -> Value {
        let ld = self.logical_date();
        let ts = |t: Option<chrono::DateTime<chrono::Utc>>| t.unwrap_or(ld).to_rfc3339();
        let conf: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&self.run.conf).unwrap_or_default();
        let mut params = self.dag.params.clone();
        for (k, v) in &conf {
            params.insert(k.clone(), v.clone());
        }
        let mapped = match self.item() {
            Some(item) => minijinja::context! {
                item => Value::from(minijinja::value::Serde(&item)),
                map_index => self.claim.map_index,
            },
            None => minijinja::context! {},
        };
        minijinja::context! {
            ds => ld.format("%Y-%m-%d").to_string(),
            ds_nodash => ld.format("%Y%m%d").to_string(),
            ts => ld.to_rfc3339(),
            logical_date => ld.to_rfc3339(),
            data_interval_start => ts(self.run.data_interval_start),
            data_interval_end => ts(self.run.data_interval_end),
            run_id => self.run.run_id.clone(),
            dag_id => self.claim.dag_id.clone(),
            task_id => self.claim.task_id.clone(),
            try_number => self.claim.try_number,
            params => Value::from(minijinja::value::Serde(&params)),
            conf => Value::from(minijinja::value::Serde(&conf)),
            tasks => Value::from_object(TasksView { outputs: self.outputs.clone() }),
            var => minijinja::context! {
                value => Value::from_object(VarView { variables: self.variables.clone(), json: false }),
                json => Value::from_object(VarView { variables: self.variables.clone(), json: true }),
            },
            ..mapped
        }
    }

    /// The `WEIR_*` variables every task process gets.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            ("WEIR_DAG_ID".into(), self.claim.dag_id.clone()),
            ("WEIR_RUN_ID".into(), self.run.run_id.clone()),
            ("WEIR_TASK_ID".into(), self.claim.task_id.clone()),
            ("WEIR_TRY_NUMBER".into(), self.claim.try_number.to_string()),
            ("WEIR_LOGICAL_DATE".into(), self.logical_date().to_rfc3339()),
        ];
        if let Some(item) = &self.claim.map_item {
            env.push(("WEIR_MAP_INDEX".into(), self.claim.map_index.to_string()));
            env.push(("WEIR_MAP_ITEM".into(), item.clone()));
        }
        env
    }
}

/// The template environment of tries: weir's settings plus `secret(name)`.
pub fn environment(secrets: Arc<Secrets>) -> Environment<'static> {
    let mut env = weir_core::template::environment();
    env.add_function("secret", move |name: String| -> Result<String, Error> {
        secrets.get(&name).map(str::to_owned).ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidOperation,
                format!(
                    "secret `{name}` is not set (set WEIR_SECRET_{})",
                    name.to_ascii_uppercase()
                ),
            )
        })
    });
    env
}
