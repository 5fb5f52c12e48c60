//! Who is looking at a page: the session cookie set by the login form, and
//! the CSRF token every form post must carry.
//!
//! The session cookie holds the same JWT `POST /auth/token` hands out, but
//! only the UI reads it: the REST API accepts bearer tokens alone, so a page
//! of another site cannot make a browser call the API with its cookie. The
//! CSRF token is derived from the session (a hash of it), so it needs no
//! storage and changes with every login.

use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use weir_core::access::Role;

use super::PageError;
use crate::AppState;
use crate::auth::tokens;

/// The session cookie's name.
pub const SESSION: &str = "weir_session";
/// The cookie carrying the login form's CSRF token (there is no session yet).
pub const LOGIN_CSRF: &str = "weir_login";

/// The signed-in person, as pages see them.
#[derive(Debug, Clone, Serialize)]
pub struct Me {
    /// User name.
    pub name: String,
    /// Role.
    #[serde(skip)]
    pub role: Role,
    /// The role's name.
    #[serde(rename = "role")]
    pub role_name: &'static str,
    /// The token forms must send back.
    pub csrf: String,
    /// May trigger, clear, mark and pause.
    pub operate: bool,
    /// May edit pools.
    pub admin: bool,
}

impl Me {
    /// Refuses (403) unless the person has `role` or a higher one.
    pub fn require(&self, role: Role) -> Result<(), PageError> {
        if self.role.allows(role) {
            Ok(())
        } else {
            Err(PageError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "this needs the {role} role; {} has the {} role",
                    self.name, self.role
                ),
            ))
        }
    }
}

/// The value of cookie `name` in `headers`.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The CSRF token of a session.
pub fn csrf_of(session: &str) -> String {
    tokens::hex(&Sha256::digest(
        format!("weir-ui-csrf:{session}").as_bytes(),
    ))
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, for the whole site.
fn set_cookie(name: &str, value: &str, max_age: i64) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("weir_invalid=; Max-Age=0"))
}

impl FromRequestParts<AppState> for Me {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Me, Response> {
        let to_login = || {
            let next = parts
                .uri
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/");
            Redirect::to(&format!(
                "/login?next={}",
                super::percent_encode(next, b"-_.~/")
            ))
            .into_response()
        };
        let Some(session) = cookie(&parts.headers, SESSION) else {
            return Err(to_login());
        };
        let Ok(claims) = state.auth.jwt().verify(session) else {
            return Err(to_login());
        };
        let user = match state.scheduler.store().get_user(&claims.sub).await {
            Ok(Some(u)) => u,
            Ok(None) => return Err(to_login()),
            Err(e) => return Err(PageError::from(e).into_response()),
        };
        Ok(Me {
            operate: user.role.allows(Role::Operator),
            admin: user.role.allows(Role::Admin),
            csrf: csrf_of(session),
            name: user.username,
            role_name: user.role.as_str(),
            role: user.role,
        })
    }
}

/// A form post from a signed-in person whose CSRF token matches their
/// session; anything else is refused with 403 before the handler runs.
#[derive(Debug)]
pub struct Posted<T> {
    /// Who posted.
    pub me: Me,
    /// The form's fields.
    pub form: T,
}

#[derive(Deserialize)]
struct CsrfField {
    #[serde(default)]
    csrf: String,
}

impl<T: DeserializeOwned> FromRequest<AppState> for Posted<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let me = Me::from_request_parts(&mut parts, state).await?;
        let bytes = axum::body::to_bytes(body, crate::BODY_LIMIT)
            .await
            .map_err(|e| {
                PageError::bad_request(format!("reading the form: {e}")).into_response()
            })?;
        let field: CsrfField = serde_html_form::from_bytes(&bytes).map_err(|e| {
            PageError::bad_request(format!("the form does not read: {e}")).into_response()
        })?;
        if !tokens::same(&field.csrf, &me.csrf) {
            return Err(PageError::new(
                StatusCode::FORBIDDEN,
                "the form's CSRF token is missing or stale: reload the page and try again",
            )
            .into_response());
        }
        let form = serde_html_form::from_bytes(&bytes).map_err(|e| {
            PageError::unprocessable(format!("the form has a bad field: {e}")).into_response()
        })?;
        Ok(Posted { me, form })
    }
}

/// `?next=` of the login page.
#[derive(Debug, Deserialize)]
pub struct Next {
    next: Option<String>,
}

impl Next {
    /// Where to go after login: a path of this site, never another site.
    fn target(&self) -> &str {
        super::local_path(self.next.as_deref(), "/")
    }
}

/// The login form.
pub async fn login_page(
    State(_): State<AppState>,
    axum::extract::Query(next): axum::extract::Query<Next>,
) -> Result<Response, PageError> {
    login_form(next.target(), None)
}

fn login_form(next: &str, error: Option<&str>) -> Result<Response, PageError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| PageError::internal(&e))?;
    let token = tokens::hex(&bytes);
    let html = super::render(
        "login.html",
        super::ctx! { next => next, csrf => token, error => error },
    )?;
    let status = if error.is_some() {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::OK
    };
    let mut response = (status, html).into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, set_cookie(LOGIN_CSRF, &token, 3600));
    Ok(response)
}

/// The login form's fields.
#[derive(Debug, Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf: String,
    next: Option<String>,
}

/// Checks the password and sets the session cookie.
pub async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    axum::extract::Form(form): axum::extract::Form<LoginForm>,
) -> Result<Response, PageError> {
    let next = Next {
        next: form.next.clone(),
    };
    let expected = cookie(&headers, LOGIN_CSRF).unwrap_or_default();
    if expected.is_empty() || !tokens::same(&form.csrf, expected) {
        return Err(PageError::new(
            StatusCode::FORBIDDEN,
            "the login form is stale or came from another site: open the login page again",
        ));
    }
    let Some((_, session)) = crate::auth::log_in(&state, &form.username, form.password).await?
    else {
        return login_form(next.target(), Some("Invalid username or password."));
    };
    let ttl = state.auth.ttl();
    let mut response = Redirect::to(next.target()).into_response();
    let h = response.headers_mut();
    h.append(
        header::SET_COOKIE,
        set_cookie(SESSION, &session, ttl.num_seconds()),
    );
    h.append(header::SET_COOKIE, set_cookie(LOGIN_CSRF, "", 0));
    Ok(response)
}

/// Ends the session (the cookie is dropped).
pub async fn logout(Posted { .. }: Posted<serde::de::IgnoredAny>) -> Response {
    let mut response = Redirect::to("/login").into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, set_cookie(SESSION, "", 0));
    response
}
