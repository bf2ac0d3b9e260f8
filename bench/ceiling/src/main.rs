//! The load benchmark's ceiling: the fastest answer axum can give, fixed
//! bytes for every request, so sbx's figures read as a share of it.
//!
//! Usage: sbx-bench-ceiling ADDR BODY_FILE

use axum::{Router, http::header, response::IntoResponse};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:4012".to_owned());
    let body: &'static [u8] = match args.next() {
        Some(path) => Vec::leak(std::fs::read(path)?),
        None => br#"{"ok":true}"#,
    };
    let app = Router::new().fallback(move || async move {
        ([(header::CONTENT_TYPE, "application/json")], body).into_response()
    });
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    axum::serve(listener, app).await
}
