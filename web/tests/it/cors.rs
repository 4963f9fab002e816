//! The CORS allow-list: preflights and requests from an allowed origin get
//! the `access-control-*` answers, others get none, so the browser keeps the
//! answer from the page that asked.

use axum::routing::get;
use axum::Router;
use expect_test::{expect, Expect};

use crate::{render, request};

/// An API route behind the allow-list, as the node's scaffolding puts it.
fn app() -> Router {
    Router::new()
        .route("/api/v1/ping", get(|| async { "pong" }))
        .layer(
            web::Cors::new(vec![
                "http://127.0.0.1:*".into(),
                "https://lyceum.example".into(),
            ])
            .layer(),
        )
}

async fn check(method: &str, headers: &[(&str, &str)], expect: Expect) {
    expect.assert_eq(&render(app(), request(method, "/api/v1/ping", headers)).await);
}

#[tokio::test]
async fn a_preflight_from_an_allowed_origin_is_answered() {
    for origin in ["http://127.0.0.1:7400", "https://lyceum.example"] {
        let answer = render(
            app(),
            request(
                "OPTIONS",
                "/api/v1/ping",
                &[
                    ("origin", origin),
                    ("access-control-request-method", "POST"),
                    ("access-control-request-headers", "content-type"),
                ],
            ),
        )
        .await;
        expect![[r#"
            200 OK
            content-length: 0
            vary: origin, access-control-request-method, access-control-request-headers
            allow: GET,HEAD
            access-control-allow-origin: ORIGIN
            access-control-allow-methods: GET,POST,PUT,DELETE,OPTIONS
            access-control-allow-headers: authorization,content-type,accept,x-request-id
            access-control-max-age: 600
        "#]]
        .assert_eq(&answer.replace(origin, "ORIGIN"));
    }
}

#[tokio::test]
async fn a_preflight_from_a_refused_origin_gets_no_allow_origin() {
    for origin in [
        "https://evil.example",
        "http://127.0.0.10:7400",
        "http://127.0.0.1:",
        "https://lyceum.example.evil",
    ] {
        let answer = render(
            app(),
            request(
                "OPTIONS",
                "/api/v1/ping",
                &[
                    ("origin", origin),
                    ("access-control-request-method", "POST"),
                ],
            ),
        )
        .await;
        expect![[r#"
            200 OK
            content-length: 0
            vary: origin, access-control-request-method, access-control-request-headers
            allow: GET,HEAD
            access-control-allow-methods: GET,POST,PUT,DELETE,OPTIONS
            access-control-allow-headers: authorization,content-type,accept,x-request-id
            access-control-max-age: 600
        "#]]
        .assert_eq(&answer);
    }
}

#[tokio::test]
async fn a_request_from_an_allowed_origin_may_be_read_and_others_may_not() {
    check(
        "GET",
        &[("origin", "http://127.0.0.1:5173")],
        expect![[r#"
            200 OK
            content-type: text/plain; charset=utf-8
            content-length: 4
            vary: origin, access-control-request-method, access-control-request-headers
            access-control-allow-origin: http://127.0.0.1:5173
            pong"#]],
    )
    .await;
    check(
        "GET",
        &[("origin", "https://evil.example")],
        expect![[r#"
            200 OK
            content-type: text/plain; charset=utf-8
            content-length: 4
            vary: origin, access-control-request-method, access-control-request-headers
            pong"#]],
    )
    .await;
    check(
        "GET",
        &[],
        expect![[r#"
            200 OK
            content-type: text/plain; charset=utf-8
            content-length: 4
            vary: origin, access-control-request-method, access-control-request-headers
            pong"#]],
    )
    .await;
}
