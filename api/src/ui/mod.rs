//! The web UI: server-rendered pages (minijinja templates embedded in the
//! binary), a small script for live updates over Server-Sent Events, and
//! the forms that trigger, clear, mark and pause. Pages read and write
//! through the same scheduler and store calls as the REST API, with the same
//! role rules; they need a session cookie (see [`session`]), never a bearer
//! token.

mod admin;
mod ansi;
mod assets;
mod dag;
mod data;
mod forms;
mod graph;
mod home;
mod live;
mod logs;
pub mod session;
mod templates;

use std::sync::LazyLock;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use minijinja::Environment;
use serde::Serialize;

use crate::AppState;
use crate::error::ApiError;

pub use session::Me;

/// Where pages may load from: this site only, no inline script or style.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; \
    frame-ancestors 'none'; base-uri 'none'";

/// A template context: `ctx! { name => value, … }` with serializable values.
macro_rules! ctx {
    ($($key:ident => $value:expr),* $(,)?) => {{
        let mut map = serde_json::Map::new();
        $(map.insert(
            stringify!($key).to_owned(),
            serde_json::to_value(&$value).unwrap_or(serde_json::Value::Null),
        );)*
        serde_json::Value::Object(map)
    }};
}
pub(crate) use ctx;

static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(templates::environment);

/// The UI's routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(home::page))
        .route("/login", get(session::login_page).post(session::login))
        .route("/logout", post(session::logout))
        .route("/static/{file}", get(assets::serve))
        .route("/dags/{dag_id}", get(dag::page))
        .route("/dags/{dag_id}/pause", post(home::pause))
        .route("/dags/{dag_id}/events", get(live::grid_events))
        .route("/dags/{dag_id}/trigger", post(forms::trigger))
        .route("/dags/{dag_id}/backfill", post(forms::backfill))
        .route(
            "/dags/{dag_id}/backfill/preview",
            get(forms::backfill_preview),
        )
        .route("/dags/{dag_id}/batch", post(forms::batch))
        .route("/dags/{dag_id}/runs/{run_id}", get(dag::run_page))
        .route(
            "/dags/{dag_id}/runs/{run_id}/tasks/{task_id}",
            get(dag::task_page),
        )
        .route(
            "/dags/{dag_id}/runs/{run_id}/tasks/{task_id}/clear",
            post(forms::clear),
        )
        .route(
            "/dags/{dag_id}/runs/{run_id}/tasks/{task_id}/mark",
            post(forms::mark),
        )
        .route(
            "/dags/{dag_id}/runs/{run_id}/tasks/{task_id}/log",
            get(logs::page),
        )
        .route(
            "/dags/{dag_id}/runs/{run_id}/tasks/{task_id}/log/earlier",
            get(logs::earlier),
        )
        .route(
            "/dags/{dag_id}/runs/{run_id}/tasks/{task_id}/log/follow",
            get(logs::follow),
        )
        .route(
            "/dags/{dag_id}/runs/{run_id}/tasks/{task_id}/log/download",
            get(logs::download),
        )
        .route(
            "/dags/{dag_id}/runs/{run_id}/tasks/{task_id}/quarantine",
            get(data::quarantine),
        )
        .route("/dags/{dag_id}/tasks/{task_id}/quality", get(data::quality))
        .route("/datasets", get(data::list))
        .route("/datasets/{name}", get(data::dataset))
        .route("/audit", get(admin::audit))
        .route("/pools", get(admin::pools).post(admin::save_pool))
        .route("/pools/{name}/delete", post(admin::delete_pool))
        .route(
            "/variables",
            get(admin::variables).post(admin::save_variable),
        )
        .route("/variables/{key}/delete", post(admin::delete_variable))
        .route(
            "/connections",
            get(admin::connections).post(admin::save_connection),
        )
        .route("/connections/{id}/delete", post(admin::delete_connection))
        .route("/workers", get(admin::workers))
        .route("/workers/{name}/drain", post(admin::drain_worker))
}

/// Adds the security headers every UI answer carries.
pub async fn security_headers(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

/// Renders template `name` with `ctx`.
pub fn render(name: &str, ctx: impl Serialize) -> Result<Html<String>, PageError> {
    TEMPLATES
        .get_template(name)
        .and_then(|t| t.render(minijinja::Value::from(minijinja::value::Serde(&ctx))))
        .map(Html)
        .map_err(|e| PageError::internal(&format!("rendering {name}: {e:#}")))
}

/// Renders a page for `me`: the template sees `me` beside `ctx`'s fields.
pub fn page(name: &str, me: &Me, ctx: impl Serialize) -> Result<Html<String>, PageError> {
    let mut ctx = serde_json::to_value(&ctx).map_err(|e| PageError::internal(&e))?;
    let nav = match name {
        "datasets.html" | "dataset.html" | "quality.html" | "quarantine.html" => "datasets",
        "pools.html" => "pools",
        "variables.html" => "variables",
        "connections.html" => "connections",
        "workers.html" => "workers",
        "audit.html" => "audit",
        _ => "dags",
    };
    if let serde_json::Value::Object(map) = &mut ctx {
        map.insert(
            "me".into(),
            serde_json::to_value(me).map_err(|e| PageError::internal(&e))?,
        );
        map.insert("nav".into(), nav.into());
    }
    render(name, ctx)
}

/// A page that could not be shown: rendered as an HTML error page.
#[derive(Debug)]
pub struct PageError {
    status: StatusCode,
    detail: String,
}

impl PageError {
    /// An error with `status`.
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        PageError {
            status,
            detail: detail.into(),
        }
    }

    /// 404.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, detail)
    }

    /// 400.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, detail)
    }

    /// 422.
    pub fn unprocessable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, detail)
    }

    /// 500, logged.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        let e = ApiError::internal(cause);
        Self::new(e.status(), "weir failed to answer; the server log says why")
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// What went wrong, for people.
    pub fn detail(&self) -> &str {
        &self.detail
    }
}

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> Self {
        PageError::new(e.status(), e.detail().to_owned())
    }
}

impl From<weir_core::store::Error> for PageError {
    fn from(e: weir_core::store::Error) -> Self {
        ApiError::from(e).into()
    }
}

impl From<weir_core::scheduler::Error> for PageError {
    fn from(e: weir_core::scheduler::Error) -> Self {
        ApiError::from(e).into()
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let title = self.status.canonical_reason().unwrap_or("Error");
        let body = TEMPLATES
            .get_template("error.html")
            .and_then(|t| {
                t.render(minijinja::context! {
                    status => self.status.as_u16(), title => title, detail => &self.detail,
                })
            })
            .unwrap_or_else(|_| format!("{} {title}: {}", self.status.as_u16(), self.detail));
        (self.status, Html(body)).into_response()
    }
}

/// An HTML 404 page for a path nothing answers (browsers ask for HTML).
pub fn not_found_page(path: &str) -> Response {
    PageError::not_found(format!("there is no page at {path}")).into_response()
}

/// `s` made safe for one path segment or query value of a URL: everything
/// but letters, digits and `-_.~` percent-encoded.
pub fn seg(s: &str) -> String {
    percent_encode(s, b"-_.~")
}

/// `s` with every byte but letters, digits and `keep` percent-encoded.
fn percent_encode(s: &str, keep: &[u8]) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || keep.contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `path` when it is a path of this site (never `//host` or another
/// site), else `default`: where a form may send the browser back to.
pub fn local_path<'a>(path: Option<&'a str>, default: &'a str) -> &'a str {
    match path {
        Some(p) if p.starts_with('/') && !p.starts_with("//") && !p.contains('\\') => p,
        _ => default,
    }
}

/// The result of a page handler.
pub type PageResult<T = Html<String>> = Result<T, PageError>;
