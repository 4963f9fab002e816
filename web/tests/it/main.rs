//! The web crate's one integration-test binary: the built app as a browser
//! fetches it (`files`) and the CORS allow-list in front of every route
//! (`cors`). Each test sends requests through a router and compares what
//! comes back, rendered by [`render`], with a snapshot.

mod cors;
mod files;

use axum::body::Body;
use axum::http::Request;
use axum::Router;
use tower::ServiceExt;

/// The headers a snapshot shows, in this order. `last-modified` is shown as
/// `<set>`: it is a file's mtime, which differs from run to run.
const SHOWN: [&str; 14] = [
    "content-type",
    "content-encoding",
    "content-length",
    "cache-control",
    "vary",
    "last-modified",
    "location",
    "allow",
    "access-control-allow-origin",
    "access-control-allow-methods",
    "access-control-allow-headers",
    "access-control-max-age",
    "access-control-allow-credentials",
    "access-control-expose-headers",
];

/// Sends `request` to `app` and renders the answer: status, the [`SHOWN`]
/// headers present, and the body (as text, or its length).
async fn render(app: Router, request: Request<Body>) -> String {
    let response = app.oneshot(request).await.expect("infallible");
    let mut out = format!("{}\n", response.status());
    for name in SHOWN {
        for value in response.headers().get_all(name) {
            let value = value.to_str().expect("ascii header");
            let value = if name == "last-modified" {
                "<set>"
            } else {
                value
            };
            out.push_str(&format!("{name}: {value}\n"));
        }
    }
    let body = axum::body::to_bytes(response.into_body(), 1 << 24)
        .await
        .expect("body");
    match std::str::from_utf8(&body) {
        Ok(text) if text.len() <= 200 => out.push_str(text),
        _ => out.push_str(&format!("<{} bytes>", body.len())),
    }
    out
}

/// A request with `headers`.
fn request(method: &str, uri: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(Body::empty()).expect("request")
}
