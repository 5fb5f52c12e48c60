//! Authentication and roles. Every endpoint except health needs
//! `Authorization: Bearer <token>`: a JWT from `POST /auth/token` or an API
//! token. The role of the user (looked up on every request, so a deleted or
//! demoted user loses access at once) or of the API token decides what the
//! request may do.

pub mod jwt;
pub mod password;
pub mod tokens;

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use chrono::Utc;
use weir_core::access::Role;
use weir_core::store::Store;

use crate::AppState;
use crate::error::ApiError;

/// How long an access token from `POST /auth/token` lasts by default.
pub const DEFAULT_TTL: chrono::Duration = chrono::Duration::hours(24);

/// The signing keys and token lifetime.
#[derive(Debug, Clone)]
pub struct Auth {
    jwt: Arc<jwt::Jwt>,
    ttl: chrono::Duration,
}

impl Auth {
    /// Keys from `secret`, or from the database's shared secret (made once,
    /// so every API process of a site accepts the others' tokens).
    pub async fn new(
        store: &dyn Store,
        secret: Option<&str>,
        ttl: chrono::Duration,
    ) -> Result<Auth, weir_core::store::Error> {
        let secret = match secret {
            Some(s) if !s.is_empty() => s.to_owned(),
            _ => {
                let mut bytes = [0u8; 32];
                getrandom::fill(&mut bytes)
                    .map_err(|e| weir_core::store::Error::Corrupt(format!("random source: {e}")))?;
                store
                    .setting_or_insert("jwt_secret", &tokens::hex(&bytes))
                    .await?
            }
        };
        Ok(Auth {
            jwt: Arc::new(jwt::Jwt::new(secret.as_bytes())),
            ttl,
        })
    }

    /// The token signer.
    pub fn jwt(&self) -> &jwt::Jwt {
        &self.jwt
    }

    /// How long access tokens last.
    pub fn ttl(&self) -> chrono::Duration {
        self.ttl
    }
}

/// Checks `password` for `username` and, when it is theirs, issues an access
/// token and records the login. Unknown users are hashed against a dummy
/// hash, so timing does not tell which names exist. `None`: wrong name or
/// password.
pub async fn log_in(
    state: &AppState,
    username: &str,
    password: String,
) -> Result<Option<(weir_core::access::UserRecord, String)>, ApiError> {
    let store = state.scheduler.store();
    let user = store.get_user(username).await?;
    let hash = user
        .as_ref()
        .map(|u| u.password_hash.clone())
        .unwrap_or_else(|| state.dummy_hash.to_string());
    let ok = tokio::task::spawn_blocking(move || password::verify(&password, &hash))
        .await
        .map_err(|e| ApiError::internal(&e))?;
    let Some(user) = user.filter(|_| ok) else {
        tracing::info!(username, "failed login");
        return Ok(None);
    };
    let now = Utc::now();
    let token = state
        .auth
        .jwt()
        .issue(&user.username, now, now + state.auth.ttl())
        .map_err(|e| ApiError::internal(&e))?;
    store.record_login(&user.username, now).await?;
    Ok(Some((user, token)))
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The user name, or `token:<id>` for an API token.
    pub name: String,
    /// What they may do.
    pub role: Role,
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let value = parts.headers.get(header::AUTHORIZATION).ok_or_else(|| {
            ApiError::unauthorized("an `Authorization: Bearer <token>` header is required")
        })?;
        let text = value
            .to_str()
            .map_err(|_| ApiError::unauthorized("the Authorization header is not text"))?;
        let token = text
            .strip_prefix("Bearer ")
            .or_else(|| text.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::unauthorized("the Authorization header must be `Bearer <token>`")
            })?;
        let store = state.scheduler.store();
        let now = Utc::now();
        if let Some((id, secret)) = tokens::parse(token) {
            let record = store
                .get_token(id)
                .await?
                .filter(|r| tokens::same(&tokens::hash_secret(secret), &r.secret_hash))
                .ok_or_else(|| ApiError::unauthorized("unknown API token"))?;
            if !record.is_valid(now) {
                return Err(ApiError::unauthorized(
                    "the API token is revoked or expired",
                ));
            }
            if record
                .last_used_at
                .is_none_or(|t| now - t > chrono::Duration::minutes(1))
            {
                store.record_token_use(id, now).await?;
            }
            return Ok(Principal {
                name: format!("token:{id}"),
                role: record.role,
            });
        }
        let claims = state
            .auth
            .jwt()
            .verify(token)
            .map_err(|e| ApiError::unauthorized(format!("invalid access token: {e}")))?;
        let user = store
            .get_user(&claims.sub)
            .await?
            .ok_or_else(|| ApiError::unauthorized("the token's user no longer exists"))?;
        Ok(Principal {
            name: user.username,
            role: user.role,
        })
    }
}

/// Extractors that let a handler run only for a role (or a higher one).
macro_rules! role_guard {
    ($(#[$m:meta])* $name:ident => $role:expr) => {
        $(#[$m])*
        #[derive(Debug, Clone)]
        pub struct $name(pub Principal);

        impl FromRequestParts<AppState> for $name {
            type Rejection = ApiError;

            async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
                let p = Principal::from_request_parts(parts, state).await?;
                if p.role.allows($role) {
                    Ok($name(p))
                } else {
                    Err(ApiError::forbidden(format!(
                        "this needs the {} role; {} has the {} role",
                        $role, p.name, p.role
                    )))
                }
            }
        }
    };
}

role_guard!(
    /// Any person (viewer, operator or admin).
    Viewer => Role::Viewer
);
role_guard!(
    /// An operator or admin.
    Operator => Role::Operator
);
role_guard!(
    /// An admin.
    Admin => Role::Admin
);
role_guard!(
    /// A remote worker (a `worker` token): it reaches the worker endpoints
    /// and nothing else, and nobody else reaches them.
    WorkerToken => Role::Worker
);
