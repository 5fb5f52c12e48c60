//! API errors: every failure answers JSON `{"title", "status", "detail"}`
//! with the fitting 4xx code; internal failures are logged in full and
//! answered with a generic 500.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use weir_core::{scheduler, store};

/// The body of every error response.
#[derive(Debug, Clone, Serialize, serde::Deserialize, ToSchema)]
pub struct ErrorBody {
    /// The HTTP reason phrase.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong, naming the input at fault.
    pub detail: String,
}

/// An error answered to the client.
#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    detail: String,
}

impl ApiError {
    /// An error with this status and detail.
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        ApiError {
            status,
            detail: detail.into(),
        }
    }

    /// 400: the request is malformed.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, detail)
    }

    /// 401: no valid credentials.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, detail)
    }

    /// 403: valid credentials, not enough rights.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, detail)
    }

    /// 404: no such thing.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, detail)
    }

    /// 409: the state does not allow it.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, detail)
    }

    /// 422: well-formed, but a value is not acceptable.
    pub fn unprocessable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, detail)
    }

    /// 500: logs `cause` and answers without it.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!("internal error answering a request: {cause}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the server failed to answer; the error is in its log",
        )
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// What went wrong, for people.
    pub fn detail(&self) -> &str {
        &self.detail
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            title: self.status.canonical_reason().unwrap_or("Error").to_owned(),
            status: self.status.as_u16(),
            detail: self.detail,
        };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<store::Error> for ApiError {
    fn from(e: store::Error) -> Self {
        match e {
            store::Error::NotFound(what) => ApiError::not_found(format!("{what} not found")),
            store::Error::Conflict(m)
            | store::Error::IllegalTransition(m)
            | store::Error::Plan(m) => ApiError::conflict(m),
            store::Error::Refused(r) => ApiError::conflict(r.to_string()),
            other => ApiError::internal(&other),
        }
    }
}

impl From<scheduler::remote::Fenced> for ApiError {
    fn from(e: scheduler::remote::Fenced) -> Self {
        use scheduler::remote::Fenced;
        match e {
            Fenced::MovedOn { .. } => ApiError::conflict(e.to_string()),
            Fenced::Gone(_) => ApiError::new(StatusCode::GONE, e.to_string()),
            Fenced::Failed(e) => e.into(),
        }
    }
}

impl From<scheduler::Error> for ApiError {
    fn from(e: scheduler::Error) -> Self {
        match e {
            scheduler::Error::Store(e) => e.into(),
            scheduler::Error::Invalid(m) => ApiError::unprocessable(m),
            // The site's key is a setting to fix, said as it is (never a secret).
            scheduler::Error::Key(k) => {
                tracing::error!("secret key: {k}");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, k.to_string())
            }
            other => ApiError::internal(&other),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let status = match &r {
            JsonRejection::JsonDataError(_) => StatusCode::UNPROCESSABLE_ENTITY,
            JsonRejection::MissingJsonContentType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            JsonRejection::JsonSyntaxError(_) => StatusCode::BAD_REQUEST,
            _ => r.status(),
        };
        let status = if status.is_server_error() {
            StatusCode::BAD_REQUEST
        } else {
            status
        };
        ApiError::new(status, format!("request body: {}", r.body_text()))
    }
}

impl From<axum_extra::extract::QueryRejection> for ApiError {
    fn from(r: axum_extra::extract::QueryRejection) -> Self {
        ApiError::unprocessable(format!("query parameters: {}", r.body_text()))
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        ApiError::unprocessable(format!("path: {}", r.body_text()))
    }
}

/// A JSON body; bad bodies answer 400/413/415/422 as JSON errors.
#[derive(Debug, Clone, Copy, Default, axum::extract::FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Body<T>(pub T);

/// Query parameters (repeated keys make lists); bad ones answer 422.
#[derive(Debug, Clone, Copy, Default, axum::extract::FromRequestParts)]
#[from_request(via(axum_extra::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

/// Path parameters; bad ones answer 422.
#[derive(Debug, Clone, Copy, Default, axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

/// The result type of handlers.
pub type ApiResult<T> = Result<T, ApiError>;

/// Error responses of an endpoint that reads, for the OpenAPI document.
#[derive(Debug, utoipa::IntoResponses)]
pub enum ReadErrors {
    /// Missing or invalid credentials.
    #[response(status = 401)]
    Unauthorized(#[to_schema] ErrorBody),
    /// Not allowed for this role.
    #[response(status = 403)]
    Forbidden(ErrorBody),
    /// Not found.
    #[response(status = 404)]
    NotFound(ErrorBody),
    /// A parameter is not acceptable.
    #[response(status = 422)]
    Unprocessable(ErrorBody),
}

/// Error responses of an endpoint that changes something.
#[derive(Debug, utoipa::IntoResponses)]
pub enum WriteErrors {
    /// The request is malformed.
    #[response(status = 400)]
    BadRequest(#[to_schema] ErrorBody),
    /// Missing or invalid credentials.
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// Not allowed for this role.
    #[response(status = 403)]
    Forbidden(ErrorBody),
    /// Not found.
    #[response(status = 404)]
    NotFound(ErrorBody),
    /// The state does not allow it.
    #[response(status = 409)]
    Conflict(ErrorBody),
    /// The body is too large.
    #[response(status = 413)]
    TooLarge(ErrorBody),
    /// The body is not JSON.
    #[response(status = 415)]
    UnsupportedMediaType(ErrorBody),
    /// A value is not acceptable.
    #[response(status = 422)]
    Unprocessable(ErrorBody),
}

/// Error responses of the worker endpoints.
#[derive(Debug, utoipa::IntoResponses)]
pub enum WorkerErrors {
    /// The request is malformed, or speaks another protocol version.
    #[response(status = 400)]
    BadRequest(#[to_schema] ErrorBody),
    /// Missing or invalid credentials.
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// Not a worker token.
    #[response(status = 403)]
    Forbidden(ErrorBody),
    /// Not found.
    #[response(status = 404)]
    NotFound(ErrorBody),
    /// The try no longer runs under this lease: kill it.
    #[response(status = 409)]
    Conflict(ErrorBody),
    /// The task instance no longer exists: kill the try.
    #[response(status = 410)]
    Gone(ErrorBody),
    /// The body is too large.
    #[response(status = 413)]
    TooLarge(ErrorBody),
    /// The body is not JSON.
    #[response(status = 415)]
    UnsupportedMediaType(ErrorBody),
    /// A value is not acceptable.
    #[response(status = 422)]
    Unprocessable(ErrorBody),
}
