//! `lyceum control-plane` as its own process on PostgreSQL, and the shared
//! HTTP limits at their edges, each answered with a JSON error code.

use std::str::FromStr as _;

use serde_json::{json, Value};
use sqlx::ConnectOptions as _;

use crate::support::{client, eventually, lyceum, ready_url, Proc, START_LIMIT};

const POSTGRES_URL_VAR: &str = "LYCEUM_TEST_DATABASE_URL";

/// Creates a fresh PostgreSQL database and returns its URL.
pub(crate) async fn fresh_postgres() -> String {
    let admin_url = std::env::var(POSTGRES_URL_VAR).unwrap_or_else(|_| {
        panic!("{POSTGRES_URL_VAR} is not set: run the suite through scripts/test, which starts PostgreSQL")
    });
    let name = format!("lyceum_t_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::postgres::PgConnectOptions::from_str(&admin_url)
        .expect("postgres url")
        .connect()
        .await
        .unwrap_or_else(|err| panic!("cannot reach PostgreSQL at {admin_url}: {err}"));
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .expect("create database");
    let (base, _) = admin_url.rsplit_once('/').expect("url with a database");
    format!("{base}/{name}")
}

/// Drops a database made by [`fresh_postgres`] once nothing uses it.
pub(crate) async fn drop_postgres(database_url: &str) {
    let admin_url = std::env::var(POSTGRES_URL_VAR).expect("set when the database was made");
    let (_, name) = database_url.rsplit_once('/').expect("url with a database");
    let mut admin = sqlx::postgres::PgConnectOptions::from_str(&admin_url)
        .expect("postgres url")
        .connect()
        .await
        .expect("reconnect to PostgreSQL");
    for _ in 0..6 {
        if sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
            .execute(&mut admin)
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // Autovacuum may hold a fresh database for a while; a leftover test
    // database is harmless, so warn instead of failing the test it served.
    eprintln!("warning: test database {name} left behind");
}

async fn start(env: &[(&str, &str)], extra: &[&str]) -> (Proc, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let ready = dir.path().join("cp.ready.json");
    let mut command = lyceum();
    command
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args([
            "control-plane",
            "--listen",
            "127.0.0.1:0",
            "--seed-dev",
            "--ready-file",
        ])
        .arg(&ready)
        .args(extra);
    for (k, v) in env {
        command.env(k, v);
    }
    let cp = Proc::spawn(command, &dir.path().join("cp.log"));
    let url = eventually("control plane ready file", START_LIMIT, || {
        let ready = ready.clone();
        async move { ready_url(&ready) }
    })
    .await;
    (cp, url, dir)
}

async fn post(url: &str, body: &Value) -> (u16, Value) {
    let response = client().post(url).json(body).send().await.expect("post");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn sign_in_body(role: &str) -> Value {
    json!({"email": format!("{role}@dev.lyceum.test"), "password": format!("lyceum-dev-{role}")})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_plane_runs_on_postgres() {
    let database_url = fresh_postgres().await;
    let (cp, url, _dir) = start(&[], &["--database-url", &database_url]).await;
    let (status, ready) = eventually("control plane ready", START_LIMIT, || {
        let url = url.clone();
        async move {
            let answer = crate::support::get_json(&format!("{url}/readyz"), None).await?;
            (answer.0 == 200).then_some(answer)
        }
    })
    .await;
    assert_eq!(status, 200);
    assert_eq!(ready["checks"]["database"], "ok");
    let (status, body) = post(
        &format!("{url}/api/v1/auth/sign-in"),
        &sign_in_body("operator"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().expect("token");
    let (status, me) = crate::support::get_json(&format!("{url}/api/v1/me"), Some(token))
        .await
        .expect("me");
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["role"], "operator");
    assert!(
        !cp.log_text().contains("lyceum.db"),
        "a PostgreSQL control plane must not open SQLite"
    );
    drop(cp);
    drop_postgres(&database_url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_limits_answer_with_stable_codes() {
    let (_cp, url, _dir) = start(&[("LYCEUM_HTTP__REQUEST_BODY_BYTES_MAX", "256")], &[]).await;
    let sign_in = format!("{url}/api/v1/auth/sign-in");

    // At the body limit the request is read; one byte over, it is refused.
    let padded = |total: usize| {
        let base = json!({"email": "", "password": "x"}).to_string().len();
        json!({"email": "e".repeat(total - base), "password": "x"})
    };
    let at_limit = padded(256);
    assert_eq!(at_limit.to_string().len(), 256);
    let (status, body) = post(&sign_in, &at_limit).await;
    // Read and checked: it is the credentials that are wrong, not the size.
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (401, json!("unauthenticated")),
        "{body}"
    );
    let (status, body) = post(&sign_in, &padded(257)).await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (413, json!("payload_too_large")),
        "{body}"
    );

    let response = client()
        .post(&sign_in)
        .body("{")
        .header("content-type", "application/json")
        .send()
        .await
        .expect("post");
    assert_eq!(response.status().as_u16(), 400);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"]["code"], "bad_request");

    let (status, body) = post(
        &sign_in,
        &json!({"email": "a@b", "password": "x", "extra": 1}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (400, json!("bad_request")),
        "{body}"
    );
    let (status, body) = post(
        &sign_in,
        &json!({"email": "learner@dev.lyceum.test", "password": "nope"}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (401, json!("unauthenticated")),
        "{body}"
    );

    // Heads hyper refuses before any of our code runs still get our JSON
    // error shape, and a path just under the limit reaches the router.
    // (Over 64 KiB, `http::Uri` cannot even hold the target, so this one
    // goes over a raw socket.)
    let answer = {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let addr = url.trim_start_matches("http://").to_owned();
        let mut socket = tokio::net::TcpStream::connect(&addr)
            .await
            .expect("connect");
        let request = format!(
            "GET /api/v1/{} HTTP/1.1\r\nhost: {addr}\r\n\r\n",
            "a".repeat(70_000)
        );
        socket.write_all(request.as_bytes()).await.expect("send");
        let mut answer = String::new();
        socket.read_to_string(&mut answer).await.expect("read");
        answer
    };
    let (head, body) = answer.split_once("\r\n\r\n").expect("a whole answer");
    assert!(head.starts_with("HTTP/1.1 414 "), "{answer}");
    let body: Value = serde_json::from_str(body).expect("a JSON body");
    assert_eq!(body["error"]["code"], "uri_too_long", "{answer}");
    let (status, body) =
        crate::support::get_json(&format!("{url}/api/v1/{}", "a".repeat(60_000)), None)
            .await
            .expect("get");
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (404, json!("not_found")),
        "{body}"
    );
    let response = client()
        .get(format!("{url}/api/v1/regions"))
        .header("x-padding", "p".repeat(600_000))
        .send()
        .await
        .expect("get");
    assert_eq!(response.status().as_u16(), 431);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"]["code"], "headers_too_large", "{body}");

    // API paths never fall through to the browser app: a miss is a JSON 404.
    let (status, body) = crate::support::get_json(&format!("{url}/api/v1/no/such/route"), None)
        .await
        .expect("get");
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (404, json!("not_found"))
    );
    let (status, body) = crate::support::get_json(&sign_in, None).await.expect("get");
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (405, json!("method_not_allowed"))
    );
    let (status, body) = crate::support::get_json(&format!("{url}/api/v1/me"), Some("not-a-token"))
        .await
        .expect("me");
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (401, json!("unauthenticated"))
    );

    // Every response carries a request id, and a given one is echoed back.
    let response = client()
        .get(format!("{url}/healthz"))
        .header("x-request-id", "test-request-42")
        .send()
        .await
        .expect("healthz");
    assert_eq!(response.headers()["x-request-id"], "test-request-42");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_and_concurrency_limits_answer_with_stable_codes() {
    // Password hashing takes far longer than 1 ms, so sign-in times out.
    let (_cp, url, _dir) = start(&[("LYCEUM_HTTP__REQUEST_TIMEOUT_MS", "1")], &[]).await;
    let (status, body) = post(
        &format!("{url}/api/v1/auth/sign-in"),
        &sign_in_body("learner"),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (408, json!("request_timeout")),
        "{body}"
    );

    // One request at a time: of many concurrent sign-ins, some are shed.
    let (_cp, url, _dir) = start(&[("LYCEUM_HTTP__REQUESTS_IN_FLIGHT_MAX", "1")], &[]).await;
    let sign_in = format!("{url}/api/v1/auth/sign-in");
    // Spawn them all before awaiting any, released together by a barrier.
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(16));
    let attempts: Vec<_> = (0..16)
        .map(|_| {
            let (sign_in, barrier) = (sign_in.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                post(&sign_in, &sign_in_body("learner")).await
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for attempt in attempts {
        let (status, body) = attempt.await.expect("task");
        if status == 503 {
            assert_eq!(body["error"]["code"], "overloaded", "{body}");
        }
        statuses.push(status);
    }
    assert!(statuses.contains(&200), "{statuses:?}");
    assert!(statuses.contains(&503), "{statuses:?}");
    let metrics = client()
        .get(format!("{url}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("lyceum_http_requests_shed_total"),
        "{metrics}"
    );
}
