//! The browser surfaces. The TypeScript app lives in `web/app`; `scripts/web-build`
//! builds it into `web/app/dist`, and every Lyceum process serves that folder
//! itself (no separate web server): hashed assets under `/assets/` with a year
//! of caching, and `index.html` for every other path that is not an API or
//! operational route, so the app's client-side routes survive a reload.
//!
//! tower-http does the file work: `ServeDir` and `ServeFile` read and stream
//! the files, refuse paths that leave `dist`, guess content types, answer
//! `HEAD`, ranges and `If-Modified-Since` (from `Last-Modified`; they send no
//! `ETag`), and send the `.br`/`.gz` files `scripts/web-build` writes next to
//! the built ones to browsers that accept them. What stays here is the
//! routing policy around them: which paths are the app's and which are a real
//! 404, the cache headers, and the JSON errors every process answers with.
//!
//! The app is served by one process but talks to the control plane and to
//! edges on other ports, so this crate also owns the CORS allow-list that the
//! shared HTTP scaffolding puts in front of every route, as a tower-http
//! `CorsLayer`.

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tower::{Service, ServiceExt};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::services::{ServeDir, ServeFile};

/// Where `scripts/web-build` puts the built app (fixed at compile time).
pub const DIST_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/app/dist");

/// Path prefixes that belong to the processes, never to the app: a miss
/// there is a real 404, not the app's `index.html`.
pub const RESERVED_PREFIXES: [&str; 5] =
    ["/api/", "/healthz", "/readyz", "/metrics", "/.well-known/"];

/// `Cache-Control` of content-hashed assets: their names change when they do.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// `Cache-Control` of `index.html`: always revalidate, so a new build shows.
const NO_CACHE: &str = "no-cache";

/// How long a browser may reuse a preflight answer (`Access-Control-Max-Age`).
const CORS_MAX_AGE: Duration = Duration::from_secs(600);

/// Routes for the browser app, merged into every process's router.
pub fn router() -> Router {
    router_from(PathBuf::from(DIST_DIR))
}

/// Routes serving the built app from `dist` (a folder with `index.html`).
pub fn router_from(dist: PathBuf) -> Router {
    let app = App {
        shell: ServeFile::new(dist.join("index.html"))
            .precompressed_br()
            .precompressed_gzip(),
        // A folder is not a page: without this, `/assets` would answer with a
        // redirect to `/assets/` instead of the app.
        files: ServeDir::new(dist)
            .append_index_html_on_directories(false)
            .precompressed_br()
            .precompressed_gzip(),
    };
    Router::new()
        .route("/", get(serve))
        .fallback(serve)
        .with_state(app)
}

/// Whether the built app is where [`router`] looks for it.
pub fn app_is_built() -> bool {
    Path::new(DIST_DIR).join("index.html").is_file()
}

#[derive(Clone, Debug)]
struct App {
    /// Every file of `dist`.
    files: ServeDir,
    /// `index.html`, for the app's client-side routes.
    shell: ServeFile,
}

async fn serve(State(app): State<App>, request: Request) -> Response {
    let path = request.uri().path();
    if RESERVED_PREFIXES
        .iter()
        .any(|p| path.starts_with(p) || path == p.trim_end_matches('/'))
        || (request.method() != Method::GET && request.method() != Method::HEAD)
    {
        return not_found();
    }
    let asset = path.starts_with("/assets/");
    let (parts, _body) = request.into_parts();
    let mut response = send(app.files, &parts).await;
    if response.status() == StatusCode::NOT_FOUND {
        if asset {
            return not_found();
        }
        response = send(app.shell, &parts).await;
        if response.status() == StatusCode::NOT_FOUND {
            return not_built();
        }
    }
    if response.status().is_success() || response.status() == StatusCode::NOT_MODIFIED {
        let headers = response.headers_mut();
        let cache = if asset { IMMUTABLE } else { NO_CACHE };
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
        // The same URL answers with a `.br`, `.gz` or plain body.
        headers.append(header::VARY, HeaderValue::from_static("accept-encoding"));
        say_utf8(headers);
    }
    response
}

/// Asks a tower-http file service about the request described by `parts`.
/// Both services ignore the body, so each gets an empty one.
async fn send<S>(service: S, parts: &Parts) -> Response
where
    S: Service<Request, Error = Infallible>,
    S::Response: IntoResponse,
{
    let request = Request::from_parts(parts.clone(), Body::empty());
    match service.oneshot(request).await {
        Ok(response) => response.into_response(),
        Err(never) => match never {},
    }
}

/// Adds `charset=utf-8` to a text content type: Vite writes UTF-8, and a
/// browser left to guess a stylesheet's charset may guess wrong.
fn say_utf8(headers: &mut HeaderMap) {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.starts_with("text/") && !v.contains(';'))
        .map(|v| format!("{v}; charset=utf-8"))
    else {
        return;
    };
    if let Ok(value) = HeaderValue::from_str(&value) {
        headers.insert(header::CONTENT_TYPE, value);
    }
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"error":{"code":"not_found","message":"no such route"}}"#,
    )
        .into_response()
}

fn not_built() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"error":{"code":"web_app_not_built","message":"the browser app is not built; run scripts/web-build"}}"#,
    )
        .into_response()
}

/// The origins allowed to call this process's API from a browser
/// (`http.cors_allowed_origins`). An entry is an exact origin
/// (`http://127.0.0.1:7400`) or one with any port (`http://127.0.0.1:*`).
#[derive(Clone, Debug, Default)]
pub struct Cors {
    allowed: Vec<String>,
}

impl Cors {
    /// An allow-list from configured entries.
    pub fn new(allowed: Vec<String>) -> Self {
        Self { allowed }
    }

    /// Whether `origin` may call the API.
    pub fn allows(&self, origin: &str) -> bool {
        self.allowed
            .iter()
            .any(|entry| match entry.strip_suffix(":*") {
                Some(base) => origin
                    .strip_prefix(base)
                    .and_then(|rest| rest.strip_prefix(':'))
                    .is_some_and(|port| {
                        !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit())
                    }),
                None => entry == origin,
            })
    }

    /// The layer that puts this allow-list in front of every route.
    ///
    /// It answers every `OPTIONS` request itself, as a preflight, with the
    /// methods, headers and max-age below; an allowed origin is echoed in
    /// `Access-Control-Allow-Origin`, any other gets no such header, so the
    /// browser refuses to hand it the answer. Credentials are not allowed.
    /// Every response says `Vary: origin` (and the preflight headers), so a
    /// shared cache never hands one origin's answer to another.
    pub fn layer(self) -> CorsLayer {
        CorsLayer::new()
            .allow_origin(AllowOrigin::predicate(move |origin, _| {
                origin.to_str().is_ok_and(|origin| self.allows(origin))
            }))
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::DELETE,
                Method::OPTIONS,
            ])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::ACCEPT,
                HeaderName::from_static("x-request-id"),
            ])
            .max_age(CORS_MAX_AGE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cors_matches_exact_and_any_port_entries() {
        let cors = Cors::new(vec![
            "http://127.0.0.1:*".into(),
            "https://lyceum.example".into(),
        ]);
        assert!(cors.allows("http://127.0.0.1:7400"));
        assert!(cors.allows("https://lyceum.example"));
        assert!(!cors.allows("http://127.0.0.1:"));
        assert!(!cors.allows("http://127.0.0.1:74x"));
        assert!(!cors.allows("http://127.0.0.10:7400"));
        assert!(!cors.allows("https://evil.example"));
    }

    /// Fails (does not skip) when the app was not built: CI must build it.
    #[test]
    fn the_built_app_is_present() {
        assert!(
            app_is_built(),
            "{DIST_DIR}/index.html is missing: run scripts/web-build before cargo"
        );
    }
}
