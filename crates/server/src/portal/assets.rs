//! The portal's stylesheet and scripts, compiled into the binary and
//! served under a versioned URL, so a browser caches them for good and a
//! new build is fetched anew.

use axum::{
    extract::Path,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};

/// `(name, media type, contents)`.
const ASSETS: [(&str, &str, &str); 6] = [
    (
        "portal.css",
        "text/css; charset=utf-8",
        include_str!("assets/portal.css"),
    ),
    (
        "portal.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/portal.js"),
    ),
    (
        "spec.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/spec.js"),
    ),
    (
        "logs.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/logs.js"),
    ),
    (
        "explorer.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/explorer.js"),
    ),
    (
        "console.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/console.js"),
    ),
];

/// Pages link `…?v={VERSION}`: the build's version changes the URLs.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

pub async fn serve(Path(name): Path<String>) -> Response {
    let Some((_, media_type, contents)) = ASSETS.iter().find(|(n, _, _)| *n == name) else {
        return (StatusCode::NOT_FOUND, "no such portal asset").into_response();
    };
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(media_type)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        *contents,
    )
        .into_response()
}
