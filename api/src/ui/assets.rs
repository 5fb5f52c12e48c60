//! The stylesheet, script and icon, embedded in the binary.

use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::PageError;

const FILES: &[(&str, &str, &str)] = &[
    (
        "weir.css",
        "text/css; charset=utf-8",
        include_str!("assets/weir.css"),
    ),
    (
        "weir.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/weir.js"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_str!("assets/favicon.svg"),
    ),
];

/// One asset, cached by the browser for an hour.
pub async fn serve(Path(file): Path<String>) -> Response {
    match FILES.iter().find(|(name, _, _)| *name == file) {
        Some((_, kind, body)) => (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static(kind)),
                (
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("public, max-age=3600"),
                ),
            ],
            *body,
        )
            .into_response(),
        None => PageError::not_found(format!("no asset `{file}`")).into_response(),
    }
}
