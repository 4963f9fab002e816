//! The browser surfaces. Issue 7 adds the TypeScript app under `web/app`;
//! its built assets are compiled into this crate so that every Lyceum process
//! serves them itself, with no separate web server. The foundation serves a
//! small landing page that links the operational endpoints.

use axum::response::Html;
use axum::routing::get;
use axum::Router;

const INDEX_HTML: &str = include_str!("../static/index.html");

/// Routes for the browser-facing pages, merged into every process's router.
pub fn router() -> Router {
    Router::new().route("/", get(|| async { Html(INDEX_HTML) }))
}
