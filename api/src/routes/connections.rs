//! Connections in Airflow's shape (`/api/v2/connections`): the ones weir
//! keeps, which tasks use when neither the worker's environment nor its
//! `weir.toml` names the id. Secrets are never answered: a password is
//! `***`, and so are the values of secret-looking keys of `extra`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use weir_core::scheduler::connections::Connection;
use weir_core::scheduler::variables::MASK;
use weir_core::store::SaveMode;

use super::{Page, one_order_by, order_by, update_mask};
use crate::AppState;
use crate::auth::{Operator, Viewer};
use crate::error::{ApiError, ApiResult, Body, Path, Query, ReadErrors, WriteErrors};
use crate::models::{ConnectionCollection, ConnectionResponse};

impl From<&Connection> for ConnectionResponse {
    fn from(c: &Connection) -> Self {
        ConnectionResponse {
            connection_id: c.conn_id.clone(),
            conn_type: c.conn_type.clone(),
            description: c.description.clone(),
            host: c.host.clone(),
            login: c.login.clone(),
            schema: c.schema.clone(),
            port: c.port,
            password: c.password.as_ref().map(|_| MASK.to_owned()),
            extra: c.shown_extra(),
            team_name: None,
        }
    }
}

/// Filters and order of the connection list.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConnectionListParams {
    /// Sort by `connection_id` (or `id`), `conn_type`, `description`, `host`
    /// or `port`; `-` for descending. One key: a second is refused.
    #[serde(default)]
    pub order_by: Vec<String>,
    /// Ids containing this text (case-insensitive; `%` matches any run of
    /// characters, `_` any one).
    pub connection_id_pattern: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    Id,
    Type,
    Description,
    Host,
    Port,
}

/// Stored connections, by id.
#[utoipa::path(get, path = "/api/v2/connections", tag = "Connection", params(Page, ConnectionListParams),
    responses((status = 200, body = ConnectionCollection), ReadErrors))]
pub async fn list_connections(
    State(state): State<AppState>,
    _: Viewer,
    Query(page): Query<Page>,
    Query(p): Query<ConnectionListParams>,
) -> ApiResult<Json<ConnectionCollection>> {
    let order = order_by(
        one_order_by(&p.order_by, "connections")?,
        &[
            ("connection_id", Order::Id),
            ("id", Order::Id),
            ("conn_type", Order::Type),
            ("description", Order::Description),
            ("host", Order::Host),
            ("port", Order::Port),
        ],
    )?;
    let pattern = p
        .connection_id_pattern
        .filter(|s| !s.is_empty() && s != "~");
    let records = state.scheduler.list_connections(pattern.as_deref()).await?;
    let mut all = Vec::with_capacity(records.len());
    for r in &records {
        all.push(state.scheduler.open_connection(r).await?);
    }
    if let Some((by, desc)) = order {
        all.sort_by(|a, b| {
            let key = match by {
                Order::Id => std::cmp::Ordering::Equal,
                Order::Type => a.conn_type.cmp(&b.conn_type),
                Order::Description => a.description.cmp(&b.description),
                Order::Host => a.host.cmp(&b.host),
                Order::Port => a.port.cmp(&b.port),
            };
            key.then(a.conn_id.cmp(&b.conn_id))
        });
        if desc {
            all.reverse();
        }
    }
    let (shown, total) = page.of(all)?;
    Ok(Json(ConnectionCollection {
        connections: shown.iter().map(ConnectionResponse::from).collect(),
        total_entries: total,
    }))
}

/// One stored connection.
#[utoipa::path(get, path = "/api/v2/connections/{connection_id}", tag = "Connection",
    params(("connection_id" = String, Path, description = "The connection's id")),
    responses((status = 200, body = ConnectionResponse), ReadErrors))]
pub async fn get_connection(
    State(state): State<AppState>,
    _: Viewer,
    Path(id): Path<String>,
) -> ApiResult<Json<ConnectionResponse>> {
    let c = state.scheduler.get_connection(&id).await?;
    Ok(Json(ConnectionResponse::from(&c)))
}

/// A connection as given (Airflow's `ConnectionBody`).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectionBody {
    /// 1 to 200 letters, digits, `_`, `-` or `.`.
    pub connection_id: String,
    /// The URL scheme: `postgres`, `sqlite`, …
    pub conn_type: String,
    #[serde(default)]
    pub description: Option<String>,
    /// Host (for `sqlite`, the database file).
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub login: Option<String>,
    /// The database.
    #[serde(default)]
    pub schema: Option<String>,
    #[serde(default)]
    pub port: Option<i64>,
    /// Kept sealed; `***` (as answered) keeps the current one.
    #[serde(default)]
    pub password: Option<String>,
    /// A JSON object as text, kept sealed; its entries become URL
    /// parameters. A `***` value (as answered) keeps the current one.
    #[serde(default)]
    pub extra: Option<String>,
    /// Must be absent or null: weir has no teams.
    #[serde(default)]
    pub team_name: Option<String>,
}

impl ConnectionBody {
    fn connection(&self) -> ApiResult<Connection> {
        if self.team_name.is_some() {
            return Err(ApiError::unprocessable("team_name: weir has no teams"));
        }
        Ok(Connection {
            conn_id: self.connection_id.clone(),
            conn_type: self.conn_type.clone(),
            description: self.description.clone(),
            host: self.host.clone(),
            schema: self.schema.clone(),
            login: self.login.clone(),
            password: self.password.clone(),
            port: self.port,
            extra: self.extra.clone(),
        })
    }
}

/// Creates a connection (operator); 409 if the id is taken.
#[utoipa::path(post, path = "/api/v2/connections", tag = "Connection", request_body = ConnectionBody,
    responses((status = 201, body = ConnectionResponse), WriteErrors))]
pub async fn create_connection(
    State(state): State<AppState>,
    Operator(who): Operator,
    Body(body): Body<ConnectionBody>,
) -> ApiResult<(StatusCode, Json<ConnectionResponse>)> {
    let conn = body.connection()?;
    if conn.password.as_deref() == Some(MASK) {
        return Err(ApiError::unprocessable(format!(
            "connection `{}`: `{MASK}` is how a password is answered, not a password",
            conn.conn_id
        )));
    }
    state
        .scheduler
        .set_connection(&who.name, &conn, SaveMode::Create)
        .await?;
    let saved = state.scheduler.get_connection(&conn.conn_id).await?;
    Ok((StatusCode::CREATED, Json(ConnectionResponse::from(&saved))))
}

/// Which fields a patch changes.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConnectionMask {
    /// Any of `conn_type`, `description`, `host`, `login`, `schema`, `port`,
    /// `password`, `extra` (default: all).
    #[serde(default)]
    pub update_mask: Vec<String>,
}

/// The extra settings to save: values answered as `***` keep the current ones.
fn merged_extra(new: Option<&str>, current: Option<&str>) -> Option<String> {
    let new = new?;
    let (Ok(serde_json::Value::Object(mut map)), Some(Ok(serde_json::Value::Object(old)))) = (
        serde_json::from_str::<serde_json::Value>(new),
        current.map(serde_json::from_str::<serde_json::Value>),
    ) else {
        return Some(new.to_owned());
    };
    for (k, v) in map.iter_mut() {
        if v.as_str() == Some(MASK)
            && let Some(was) = old.get(k)
        {
            *v = was.clone();
        }
    }
    Some(serde_json::Value::Object(map).to_string())
}

/// Changes a connection (operator).
#[utoipa::path(patch, path = "/api/v2/connections/{connection_id}", tag = "Connection",
    params(("connection_id" = String, Path, description = "The connection's id"), ConnectionMask),
    request_body = ConnectionBody,
    responses((status = 200, body = ConnectionResponse), WriteErrors))]
pub async fn patch_connection(
    State(state): State<AppState>,
    Operator(who): Operator,
    Path(id): Path<String>,
    Query(mask): Query<ConnectionMask>,
    Body(body): Body<ConnectionBody>,
) -> ApiResult<Json<ConnectionResponse>> {
    if body.connection_id != id {
        return Err(ApiError::bad_request(format!(
            "the body's connection_id `{}` is not the path's `{id}`",
            body.connection_id
        )));
    }
    let new = body.connection()?;
    let current = state.scheduler.get_connection(&id).await?;
    const FIELDS: [&str; 8] = [
        "conn_type",
        "description",
        "host",
        "login",
        "schema",
        "port",
        "password",
        "extra",
    ];
    let fields = update_mask(&mask.update_mask, &FIELDS)?;
    let take = |f: &str| fields.is_empty() || fields.contains(&f);
    let pick = |f: &str, new: &Option<String>, old: &Option<String>| {
        if take(f) { new.clone() } else { old.clone() }
    };
    let password = if !take("password") || new.password.as_deref() == Some(MASK) {
        current.password.clone()
    } else {
        new.password.clone()
    };
    let extra = if take("extra") {
        merged_extra(new.extra.as_deref(), current.extra.as_deref())
    } else {
        current.extra.clone()
    };
    let conn = Connection {
        conn_id: id.clone(),
        conn_type: if take("conn_type") {
            new.conn_type.clone()
        } else {
            current.conn_type.clone()
        },
        description: pick("description", &new.description, &current.description),
        host: pick("host", &new.host, &current.host),
        schema: pick("schema", &new.schema, &current.schema),
        login: pick("login", &new.login, &current.login),
        password,
        port: if take("port") { new.port } else { current.port },
        extra,
    };
    state
        .scheduler
        .set_connection(&who.name, &conn, SaveMode::Update)
        .await?;
    let saved = state.scheduler.get_connection(&id).await?;
    Ok(Json(ConnectionResponse::from(&saved)))
}

/// Deletes a connection (operator).
#[utoipa::path(delete, path = "/api/v2/connections/{connection_id}", tag = "Connection",
    params(("connection_id" = String, Path, description = "The connection's id")),
    responses((status = 204), WriteErrors))]
pub async fn delete_connection(
    State(state): State<AppState>,
    Operator(who): Operator,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state.scheduler.delete_connection(&who.name, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
