//! weir-api: the HTTP server. The REST API under `/api/v2` (Airflow 3's
//! paths and fields where weir shares the concept), login at `/auth/token`,
//! Prometheus metrics at `/metrics`, and the OpenAPI document generated from
//! the router at `/api/v2/openapi.json`, and the web UI at `/`.

pub mod auth;
pub mod error;
pub mod metrics;
pub mod models;
pub mod routes;
pub mod try_log;
pub mod ui;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio_util::sync::CancellationToken;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use weir_core::scheduler::Scheduler;

use crate::error::ApiError;
use crate::routes::{
    assets, audit, auth as login, backfills, connections, dag_runs, dag_stats, dags, datasets,
    import_errors, logs, monitor, notifications, pools, run_wait, task_instance_patch,
    task_instances, tokens, variables, worker_api, workers, xcom,
};

/// The largest request body accepted.
pub const BODY_LIMIT: usize = 1 << 20;

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The scheduler (and through it the store).
    pub scheduler: Scheduler,
    /// Token signing.
    pub auth: auth::Auth,
    /// Where try logs are.
    pub logs_dir: PathBuf,
    /// Gauges for `/metrics`.
    pub metrics: Arc<metrics::ApiMetrics>,
    /// A hash to check passwords of unknown users against (constant timing).
    dummy_hash: Arc<str>,
    /// Reads data files for the UI's quarantine view (`None`: not here).
    pub rows: Option<Arc<dyn weir_core::catalog::RowReader>>,
    /// Cancelled when the server stops: ends the UI's event streams.
    pub closing: CancellationToken,
}

/// A state failed to build.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] weir_core::store::Error),
    /// Hashing failed.
    #[error(transparent)]
    Password(#[from] auth::password::PasswordError),
}

impl AppState {
    /// The state for `scheduler`: JWTs signed with `jwt_secret` (default: a
    /// secret kept in the database) lasting `ttl`.
    pub async fn new(
        scheduler: Scheduler,
        logs_dir: PathBuf,
        jwt_secret: Option<&str>,
        ttl: chrono::Duration,
    ) -> Result<Self, Error> {
        let auth = auth::Auth::new(scheduler.store().as_ref(), jwt_secret, ttl).await?;
        let dummy = tokio::task::spawn_blocking(|| auth::password::hash("not a password"))
            .await
            .map_err(|e| auth::password::PasswordError::from_join(&e))??;
        Ok(AppState {
            metrics: Arc::new(metrics::ApiMetrics::new(&scheduler)),
            scheduler,
            auth,
            logs_dir,
            dummy_hash: dummy.into(),
            rows: None,
            closing: CancellationToken::new(),
        })
    }

    /// The state with `reader` for the data files.
    pub fn with_rows(mut self, reader: Arc<dyn weir_core::catalog::RowReader>) -> Self {
        self.rows = Some(reader);
        self
    }

    /// The state whose event streams end when `cancel` fires (graceful
    /// shutdown waits for open connections).
    pub fn closing_on(mut self, cancel: &CancellationToken) -> Self {
        self.closing = cancel.child_token();
        self
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "weir",
        description = "The REST API of weir, a workflow orchestrator for data pipelines. \
            Paths and fields follow Airflow 3's public API where weir shares the concept. \
            Every endpoint except health and login needs `Authorization: Bearer <token>`."
    ),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT or weir API token")
                    .build(),
            ),
        );
    }
}

/// The API's routes and their OpenAPI document.
pub fn api() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(monitor::health))
        .routes(routes!(monitor::version))
        .routes(routes!(login::login))
        .routes(routes!(dags::list_dags))
        .routes(routes!(dags::get_dag, dags::patch_dag))
        .routes(routes!(dags::dag_details))
        .routes(routes!(dags::list_tasks))
        .routes(routes!(dags::get_task))
        .routes(routes!(dag_stats::dag_stats))
        .routes(routes!(dag_stats::dag_source))
        .routes(routes!(dag_runs::list_runs, dag_runs::trigger_run))
        .routes(routes!(
            dag_runs::get_run,
            dag_runs::patch_run,
            dag_runs::delete_run
        ))
        .routes(routes!(dag_runs::clear_run))
        .routes(routes!(dag_runs::list_runs_batch))
        .routes(routes!(task_instances::list_task_instances))
        .routes(routes!(
            task_instances::get_task_instance,
            task_instance_patch::patch_task_instance
        ))
        .routes(routes!(task_instance_patch::patch_task_instance_dry_run))
        .routes(routes!(
            task_instances::get_mapped_instance,
            task_instance_patch::patch_mapped_instance
        ))
        .routes(routes!(task_instances::list_mapped))
        .routes(routes!(task_instances::list_mapped_tries))
        .routes(routes!(task_instances::get_mapped_try))
        .routes(routes!(task_instances::list_task_instances_batch))
        .routes(routes!(run_wait::wait_for_run))
        .routes(routes!(task_instances::list_tries))
        .routes(routes!(task_instances::get_try))
        .routes(routes!(task_instances::clear_task_instances))
        .routes(routes!(logs::get_log))
        .routes(routes!(
            connections::list_connections,
            connections::create_connection
        ))
        .routes(routes!(
            connections::get_connection,
            connections::patch_connection,
            connections::delete_connection
        ))
        .routes(routes!(notifications::list_notifications))
        .routes(routes!(assets::list_assets))
        .routes(routes!(
            assets::list_asset_events,
            assets::create_asset_event
        ))
        .routes(routes!(assets::get_asset))
        .routes(routes!(xcom::list_xcom_entries))
        .routes(routes!(xcom::get_xcom_entry))
        .routes(routes!(import_errors::list_import_errors))
        .routes(routes!(import_errors::get_import_error))
        .routes(routes!(pools::list_pools, pools::create_pool))
        .routes(routes!(
            pools::get_pool,
            pools::patch_pool,
            pools::delete_pool
        ))
        .routes(routes!(
            variables::list_variables,
            variables::create_variable
        ))
        .routes(routes!(
            variables::get_variable,
            variables::patch_variable,
            variables::delete_variable
        ))
        .routes(routes!(
            backfills::list_backfills,
            backfills::create_backfill
        ))
        .routes(routes!(backfills::get_backfill))
        .routes(routes!(backfills::pause_backfill))
        .routes(routes!(backfills::unpause_backfill))
        .routes(routes!(backfills::cancel_backfill))
        .routes(routes!(audit::list_audit))
        .routes(routes!(audit::list_event_logs))
        .routes(routes!(audit::get_event_log))
        .routes(routes!(tokens::list_tokens, tokens::create_token))
        .routes(routes!(tokens::revoke_token))
        .routes(routes!(workers::list_workers))
        .routes(routes!(workers::drain_worker))
        .routes(routes!(worker_api::register))
        .routes(routes!(worker_api::claim))
        .routes(routes!(worker_api::heartbeat))
        .routes(routes!(worker_api::push_log))
        .routes(routes!(worker_api::report))
        .routes(routes!(worker_api::catalog))
        .routes(routes!(worker_api::version))
        .routes(routes!(worker_api::stop))
        .routes(routes!(datasets::list_datasets))
        .routes(routes!(datasets::get_dataset))
        .routes(routes!(datasets::run_quality))
        .split_for_parts()
}

/// The HTTP application.
pub fn app(state: AppState) -> Router {
    let (router, doc) = api();
    let doc = Arc::new(doc);
    // Pages are gzipped (a grid page is mostly repeated markup); event
    // streams are not, so they flow.
    let ui = ui::router()
        .route_layer(axum::middleware::from_fn(ui::security_headers))
        .layer(tower_http::compression::CompressionLayer::new());
    router
        .merge(ui)
        .route(
            "/api/v2/openapi.json",
            get(move || {
                let doc = doc.clone();
                async move { Json(doc.as_ref().clone()) }
            }),
        )
        .route("/metrics", get(metrics::metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(panicked))
        .with_state(state)
}

async fn not_found(uri: axum::http::Uri, headers: axum::http::HeaderMap) -> Response {
    let browser = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    if browser && !uri.path().starts_with("/api/") {
        return ui::not_found_page(uri.path());
    }
    ApiError::not_found(format!("no endpoint at {}", uri.path())).into_response()
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{method} is not allowed on {}", uri.path()),
    )
}

fn panicked(cause: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let what = cause
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| cause.downcast_ref::<&str>().copied())
        .unwrap_or("unknown");
    ApiError::internal(&format!("a handler panicked: {what}")).into_response()
}

/// Serves `app` on `listener` until `cancel` fires (in-flight requests finish).
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move { cancel.cancelled().await })
    .await
}
