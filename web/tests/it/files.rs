//! Serving the built app: hashed assets with a year of caching, the app's
//! `index.html` for client routes, real 404s under `/assets/` and the
//! reserved prefixes, precompressed bodies, HEAD and conditional GET. Most
//! tests use a small `dist` written here; one reads what `scripts/web-build`
//! built.

use std::path::Path;

use axum::Router;
use expect_test::{expect, Expect};

use crate::{render, request};

/// The bytes of the fake `.gz`: the server sends them as they are, it never
/// looks inside.
const GZIPPED: &str = "<gzip of app-1a2b3c.js>";

/// A `dist` like Vite's, inside a folder that also holds a file the server
/// must never hand out.
fn dist() -> tempfile::TempDir {
    let root = tempfile::tempdir().expect("tempdir");
    let write = |path: &str, text: &str| {
        let path = root.path().join(path);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    };
    write("secret.txt", "not for browsers");
    write("dist/index.html", "<!doctype html><title>Lyceum</title>");
    write("dist/favicon.svg", "<svg/>");
    write("dist/assets/app-1a2b3c.js", "console.log('app')");
    write("dist/assets/app-1a2b3c.js.gz", GZIPPED);
    write("dist/assets/app-4d5e6f.css", "body{margin:0}");
    root
}

fn app(root: &Path) -> Router {
    web::router_from(root.join("dist"))
}

/// Sends `GET uri` with `headers` to the app over [`dist`].
async fn check(uri: &str, headers: &[(&str, &str)], expect: &Expect) {
    let root = dist();
    expect.assert_eq(&render(app(root.path()), request("GET", uri, headers)).await);
}

#[tokio::test]
async fn a_hashed_asset_has_its_type_and_a_year_of_cache() {
    check(
        "/assets/app-4d5e6f.css",
        &[],
        &expect![[r#"
            200 OK
            content-type: text/css; charset=utf-8
            content-length: 14
            cache-control: public, max-age=31536000, immutable
            vary: accept-encoding
            last-modified: <set>
            body{margin:0}"#]],
    )
    .await;
    check(
        "/assets/app-1a2b3c.js",
        &[],
        &expect![[r#"
            200 OK
            content-type: text/javascript; charset=utf-8
            content-length: 18
            cache-control: public, max-age=31536000, immutable
            vary: accept-encoding
            last-modified: <set>
            console.log('app')"#]],
    )
    .await;
}

#[tokio::test]
async fn a_precompressed_asset_goes_to_browsers_that_accept_it() {
    check(
        "/assets/app-1a2b3c.js",
        &[("accept-encoding", "gzip, deflate, br")],
        &expect![[r#"
            200 OK
            content-type: text/javascript; charset=utf-8
            content-encoding: gzip
            content-length: 23
            cache-control: public, max-age=31536000, immutable
            vary: accept-encoding
            last-modified: <set>
            <gzip of app-1a2b3c.js>"#]],
    )
    .await;
    // No `.gz` of the stylesheet: the plain file, whatever the browser accepts.
    check(
        "/assets/app-4d5e6f.css",
        &[("accept-encoding", "gzip")],
        &expect![[r#"
            200 OK
            content-type: text/css; charset=utf-8
            content-length: 14
            cache-control: public, max-age=31536000, immutable
            vary: accept-encoding
            last-modified: <set>
            body{margin:0}"#]],
    )
    .await;
}

#[tokio::test]
async fn client_routes_get_the_app_which_is_always_revalidated() {
    let shell = expect![[r#"
        200 OK
        content-type: text/html; charset=utf-8
        content-length: 36
        cache-control: no-cache
        vary: accept-encoding
        last-modified: <set>
        <!doctype html><title>Lyceum</title>"#]];
    for uri in [
        "/",
        "/index.html",
        "/courses/rust-101/lessons/3",
        "/assets",
        "/courses/",
        "/%2e%2e/secret.txt",
    ] {
        check(uri, &[], &shell).await;
    }
    check(
        "/favicon.svg",
        &[],
        &expect![[r#"
            200 OK
            content-type: image/svg+xml
            content-length: 6
            cache-control: no-cache
            vary: accept-encoding
            last-modified: <set>
            <svg/>"#]],
    )
    .await;
}

#[tokio::test]
async fn a_missing_asset_or_process_route_is_a_json_404() {
    let not_found = expect![[r#"
        404 Not Found
        content-type: application/json
        content-length: 56
        {"error":{"code":"not_found","message":"no such route"}}"#]];
    for uri in [
        "/assets/app-000000.js",
        "/assets/",
        "/assets/..%2f..%2fsecret.txt",
        "/api/v1/nothing",
        "/api",
        "/healthz",
        "/metrics",
        "/.well-known/security.txt",
    ] {
        check(uri, &[], &not_found).await;
    }
    let root = dist();
    for method in ["POST", "PUT", "DELETE"] {
        let answer = render(app(root.path()), request(method, "/courses", &[])).await;
        not_found.assert_eq(&answer);
    }
}

#[tokio::test]
async fn head_answers_the_headers_of_get_without_a_body() {
    let root = dist();
    let answer = render(
        app(root.path()),
        request("HEAD", "/assets/app-1a2b3c.js", &[]),
    )
    .await;
    expect![[r#"
        200 OK
        content-type: text/javascript; charset=utf-8
        content-length: 18
        cache-control: public, max-age=31536000, immutable
        vary: accept-encoding
        last-modified: <set>
    "#]]
    .assert_eq(&answer);
}

#[tokio::test]
async fn an_unchanged_file_is_a_304() {
    let root = dist();
    for uri in ["/assets/app-4d5e6f.css", "/courses/rust-101"] {
        let first = tower::ServiceExt::oneshot(app(root.path()), request("GET", uri, &[]))
            .await
            .expect("infallible");
        let since = first.headers()["last-modified"]
            .to_str()
            .expect("ascii")
            .to_owned();
        let answer = render(
            app(root.path()),
            request("GET", uri, &[("if-modified-since", &since)]),
        )
        .await;
        let cache = if uri.starts_with("/assets/") {
            "public, max-age=31536000, immutable"
        } else {
            "no-cache"
        };
        assert_eq!(
            answer,
            format!("304 Not Modified\ncontent-length: 0\ncache-control: {cache}\nvary: accept-encoding\n"),
            "{uri}"
        );
    }
    // A date before the file was written: the file, not a 304.
    let answer = render(
        app(root.path()),
        request(
            "GET",
            "/assets/app-4d5e6f.css",
            &[("if-modified-since", "Thu, 01 Jan 1970 00:00:00 GMT")],
        ),
    )
    .await;
    assert!(answer.starts_with("200 OK\n"), "{answer}");
}

#[tokio::test]
async fn without_a_built_app_client_routes_say_so() {
    let root = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(root.path().join("dist")).expect("mkdir");
    let answer = render(app(root.path()), request("GET", "/courses", &[])).await;
    expect![[r#"
        503 Service Unavailable
        content-type: application/json
        content-length: 102
        {"error":{"code":"web_app_not_built","message":"the browser app is not built; run scripts/web-build"}}"#]]
    .assert_eq(&answer);
}

/// What `scripts/web-build` built: `index.html` names its assets, and each
/// is served, gzipped to a browser that accepts it (the build writes a
/// `.gz` of every large text file). Fails, not skips, when the app was not
/// built.
#[tokio::test]
async fn the_built_app_and_its_precompressed_assets_are_served() {
    let index = std::fs::read_to_string(Path::new(web::DIST_DIR).join("index.html"))
        .expect("run scripts/web-build before cargo test");
    let assets: Vec<&str> = index
        .split('"')
        .filter(|part| part.starts_with("/assets/"))
        .collect();
    assert!(!assets.is_empty(), "no /assets/ in {index}");
    for asset in assets {
        let answer = render(
            web::router(),
            request("GET", asset, &[("accept-encoding", "gzip")]),
        )
        .await;
        let big = std::fs::metadata(format!("{}{asset}", web::DIST_DIR))
            .expect("asset")
            .len()
            > 1024;
        assert!(answer.starts_with("200 OK\n"), "{asset}: {answer}");
        assert!(
            answer.contains("cache-control: public, max-age=31536000, immutable\n"),
            "{asset}: {answer}"
        );
        assert_eq!(
            answer.contains("content-encoding: gzip\n"),
            big,
            "{asset}: {answer}"
        );
    }
}
