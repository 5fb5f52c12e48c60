//! The audit log, the pools (editable by admins), the variables and the
//! connections (editable by operators) and the workers.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use weir_core::access::Role;
use weir_core::scheduler::variables::shown;

use super::session::Posted;
use super::{Me, PageError, PageResult};
use crate::AppState;
use crate::routes::pools;

/// Audit entries per page.
const AUDIT_PAGE: i64 = 50;

/// `?offset=` and `?dag_id=`.
#[derive(Debug, Default, Deserialize)]
pub struct AuditQuery {
    #[serde(default)]
    offset: i64,
    dag_id: Option<String>,
}

/// `/audit`: who did what, newest first.
pub async fn audit(
    State(state): State<AppState>,
    me: Me,
    Query(q): Query<AuditQuery>,
) -> PageResult {
    let offset = q.offset.max(0);
    let dag = q.dag_id.as_deref().filter(|d| !d.is_empty());
    let (entries, total) = state
        .scheduler
        .store()
        .list_audit(
            &weir_core::store::AuditFilter {
                dag_id: dag.map(str::to_owned),
                ..Default::default()
            },
            AUDIT_PAGE,
            offset,
        )
        .await?;
    super::page(
        "audit.html",
        &me,
        super::ctx! {
            entries => entries.iter().map(|e| super::ctx! {
                at => e.at, actor => &e.actor, action => e.action.as_str(),
                dag_id => &e.dag_id, run_id => &e.run_id, task_id => &e.task_id, detail => &e.detail,
            }).collect::<Vec<_>>(),
            total => total, offset => offset, dag_id => dag,
            newer => (offset > 0).then(|| (offset - AUDIT_PAGE).max(0)),
            older => (offset + AUDIT_PAGE < total).then_some(offset + AUDIT_PAGE),
        },
    )
}

/// `/pools`.
pub async fn pools(State(state): State<AppState>, me: Me) -> PageResult {
    let list = state.scheduler.store().list_pools().await?;
    super::page(
        "pools.html",
        &me,
        super::ctx! {
            pools => list.iter().map(|p| super::ctx! {
                name => &p.name, slots => p.slots, description => &p.description,
                running => p.running, queued => p.queued, scheduled => p.scheduled,
            }).collect::<Vec<_>>(),
        },
    )
}

/// `/workers`: who runs tries, what they serve and how they stand.
pub async fn workers(State(state): State<AppState>, me: Me) -> PageResult {
    let view = state.scheduler.workers_view().await?;
    super::page(
        "workers.html",
        &me,
        super::ctx! {
            workers => view.iter().map(|w| super::ctx! {
                name => &w.life.name, hostname => &w.life.hostname, version => &w.life.version,
                queues => &w.life.queues, slots => w.life.slots, remote => w.life.remote,
                running => w.running, heartbeat_at => w.life.heartbeat_at, state => w.standing.as_str(),
            }).collect::<Vec<_>>(),
        },
    )
}

/// `POST /workers/{name}/drain` (admin): the worker claims nothing more.
pub async fn drain_worker(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Posted { me, .. }: Posted<serde::de::IgnoredAny>,
) -> PageResult<Response> {
    me.require(Role::Admin)?;
    state.scheduler.drain_worker(&name, &me.name).await?;
    Ok(Redirect::to("/workers").into_response())
}

/// The pool form.
#[derive(Debug, Deserialize)]
pub struct PoolForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    slots: String,
    #[serde(default)]
    description: String,
}

/// `POST /pools` (admin): create or change a pool.
pub async fn save_pool(
    State(state): State<AppState>,
    Posted { me, form }: Posted<PoolForm>,
) -> PageResult<Response> {
    me.require(Role::Admin)?;
    let slots: i64 = form.slots.trim().parse().map_err(|_| {
        PageError::unprocessable(format!("slots: `{}` is not a whole number", form.slots))
    })?;
    let description = Some(form.description.trim()).filter(|d| !d.is_empty());
    pools::save(&state, &me.name, form.name.trim(), slots, description).await?;
    Ok(Redirect::to("/pools").into_response())
}

/// `POST /pools/{name}/delete` (admin).
pub async fn delete_pool(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Posted { me, .. }: Posted<serde::de::IgnoredAny>,
) -> PageResult<Response> {
    me.require(Role::Admin)?;
    pools::remove(&state, &me.name, &name).await?;
    Ok(Redirect::to("/pools").into_response())
}

/// `/variables`: keys, values (secret ones masked) and descriptions.
pub async fn variables(State(state): State<AppState>, me: Me) -> PageResult {
    let list = state
        .scheduler
        .list_variables(&weir_core::store::VariableFilter::default())
        .await?;
    super::page(
        "variables.html",
        &me,
        super::ctx! {
            variables => list.iter().map(|v| super::ctx! {
                key => &v.key, value => shown(&v.key, &v.value), description => &v.description,
                updated_at => v.updated_at,
            }).collect::<Vec<_>>(),
        },
    )
}

/// The variable form.
#[derive(Debug, Deserialize)]
pub struct VariableForm {
    #[serde(default)]
    key: String,
    #[serde(default)]
    value: String,
    #[serde(default)]
    description: String,
}

/// `POST /variables` (operator): create or change a variable.
pub async fn save_variable(
    State(state): State<AppState>,
    Posted { me, form }: Posted<VariableForm>,
) -> PageResult<Response> {
    me.require(Role::Operator)?;
    let description = Some(form.description.trim()).filter(|d| !d.is_empty());
    state
        .scheduler
        .set_variable(
            &me.name,
            form.key.trim(),
            &form.value,
            description,
            weir_core::store::SaveMode::Upsert,
        )
        .await?;
    Ok(Redirect::to("/variables").into_response())
}

/// `POST /variables/{key}/delete` (operator).
pub async fn delete_variable(
    State(state): State<AppState>,
    Path(key): Path<String>,
    Posted { me, .. }: Posted<serde::de::IgnoredAny>,
) -> PageResult<Response> {
    me.require(Role::Operator)?;
    state.scheduler.delete_variable(&me.name, &key).await?;
    Ok(Redirect::to("/variables").into_response())
}

/// `/connections`: stored connections, their secrets masked.
pub async fn connections(State(state): State<AppState>, me: Me) -> PageResult {
    let mut list = Vec::new();
    for r in state.scheduler.list_connections(None).await? {
        // A connection that cannot be opened (another key) is still listed.
        list.push(super::ctx! {
            id => &r.conn_id, conn_type => &r.conn_type, host => &r.host, port => r.port,
            schema => &r.schema_name, login => &r.login, password => r.password.is_some(),
            description => &r.description,
        });
    }
    super::page("connections.html", &me, super::ctx! { connections => list })
}

/// The connection form: a URL without its password, and the password apart.
#[derive(Debug, Deserialize)]
pub struct ConnectionForm {
    #[serde(default)]
    id: String,
    #[serde(default)]
    url: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    description: String,
}

/// `POST /connections` (operator): create or replace a connection.
pub async fn save_connection(
    State(state): State<AppState>,
    Posted { me, form }: Posted<ConnectionForm>,
) -> PageResult<Response> {
    me.require(Role::Operator)?;
    let mut conn =
        weir_core::scheduler::connections::Connection::from_url(form.id.trim(), form.url.trim())?;
    if !form.password.is_empty() {
        conn.password = Some(form.password);
    }
    conn.description = Some(form.description.trim().to_owned()).filter(|d| !d.is_empty());
    state
        .scheduler
        .set_connection(&me.name, &conn, weir_core::store::SaveMode::Upsert)
        .await?;
    Ok(Redirect::to("/connections").into_response())
}

/// `POST /connections/{id}/delete` (operator).
pub async fn delete_connection(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Posted { me, .. }: Posted<serde::de::IgnoredAny>,
) -> PageResult<Response> {
    me.require(Role::Operator)?;
    state.scheduler.delete_connection(&me.name, &id).await?;
    Ok(Redirect::to("/connections").into_response())
}
